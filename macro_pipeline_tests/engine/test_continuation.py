"""`start_state`: simulating [a, c] equals [a, b] then (b, c] from the first end state."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.engine import BacktestResult, EndState, simulate
from macro_pipeline_tests.engine.frames import config, dirichlet_weights, equities, panel

RTOL = 1e-12


def _chain(prices, weights, cfg_kw: dict, cuts: list[str], via_json: bool = True, **events):
    """Run [first, cut_1], (cut_1, cut_2], ... each continuing from the previous end state."""
    results: list[BacktestResult] = []
    state = None
    bounds = [None, *cuts, None]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        cfg = config(
            **{
                **cfg_kw,
                "start": None if lo is None else pd.Timestamp(lo) + pd.Timedelta(days=1),
                "end": hi,
            }
        )
        r = simulate(prices, weights, cfg, start_state=state, **events)
        results.append(r)
        state = r.end_state
        if via_json:
            state = EndState.from_dict(json.loads(json.dumps(state.to_dict())))
    return results


def _assert_same(whole: BacktestResult, parts: list[BacktestResult]) -> None:
    for name in ("equity", "cash", "drawdown", "turnover", "returns", "costs", "funding"):
        joined = pd.concat([getattr(p, name) for p in parts])
        assert joined.index.equals(whole.sessions)
        np.testing.assert_allclose(
            joined.to_numpy(), getattr(whole, name).to_numpy(), rtol=RTOL, atol=1e-9, err_msg=name
        )
    np.testing.assert_allclose(
        pd.concat([p.positions for p in parts]).to_numpy(),
        whole.positions.to_numpy(),
        rtol=RTOL,
        atol=1e-9,
    )
    for name in ("fills", "round_trips"):
        joined = pd.concat([getattr(p, name) for p in parts], ignore_index=True)
        expect = getattr(whole, name)
        assert len(joined) == len(expect), name
        for col in expect.columns:
            if expect[col].dtype.kind == "f":
                np.testing.assert_allclose(
                    joined[col], expect[col], rtol=RTOL, atol=1e-9, err_msg=f"{name}.{col}"
                )
            else:
                assert joined[col].astype(str).tolist() == expect[col].astype(str).tolist(), (
                    f"{name}.{col}"
                )
    a, b = parts[-1].end_state, whole.end_state
    assert (a.date, a.close_ns, a.pending_orders) == (b.date, b.close_ns, b.pending_orders)
    assert a.cash == pytest.approx(b.cash, rel=RTOL)
    assert a.high_water_mark == pytest.approx(b.high_water_mark, rel=RTOL)
    assert a.quantities == pytest.approx(b.quantities, rel=RTOL)
    assert a.open_lots.instrument == b.open_lots.instrument
    assert a.open_lots.quantity == pytest.approx(b.open_lots.quantity, rel=RTOL)


@pytest.mark.parametrize(
    ("frequency", "lag", "cuts"),
    [
        ("monthly", 1, ["2008-06-17"]),  # cut mid-month
        ("monthly", 1, ["2008-09-30", "2008-10-31", "2008-11-28"]),  # monthly partitions
        ("weekly", 2, ["2008-10-09"]),
        ("daily", 3, ["2008-10-09", "2008-10-10"]),  # a pending order spans a whole call
    ],
)
def test_real_equities_chained_calls_equal_one_call(
    frequency: str, lag: int, cuts: list[str]
) -> None:
    prices = equities().loc["2007-06-01":"2009-06-30"]
    weights = dirichlet_weights(prices.index, prices.columns, 0.95, seed=7)
    kw = dict(
        rebalance_frequency=frequency, execution_lag=lag, transaction_cost_bps=5.0, slippage_bps=2.0
    )
    whole = simulate(prices, weights, config(**kw))
    _assert_same(whole, _chain(prices, weights, kw, cuts))


def test_continuation_with_shorts_carry_events_and_universe() -> None:
    rng = np.random.default_rng(3)
    n = 40
    names = ["A", "B", "C", "D"]
    prices = panel(
        "2021-03-01", **{k: list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))) for k in names}
    )
    prices.iloc[5:8, 1] = np.nan
    prices.iloc[20:, 0] *= 0.5  # unadjusted 2-for-1 split of A on session 20
    w = rng.normal(0, 0.4, (n, 4))
    weights = pd.DataFrame(w, index=prices.index, columns=names)
    universe = pd.DataFrame(True, index=prices.index, columns=names)
    universe.iloc[25:33, 3] = False
    events = dict(
        splits=pd.DataFrame({"ex_date": [prices.index[20]], "instrument": ["A"], "ratio": [2.0]}),
        dividends=pd.DataFrame(
            {"ex_date": prices.index[[10, 21]], "instrument": ["C", "C"], "amount": [0.5, 0.7]}
        ),
        universe=universe,
    )
    kw = dict(execution_lag=2, transaction_cost_bps=3.0, max_leverage=1.5, borrow_cost_bps=40.0,
              risk_free={"2021-01-01": 0.02, "2021-03-20": 0.03})  # fmt: skip
    whole = simulate(prices, weights, config(**kw), **events)
    assert (whole.fills["reason"] == "universe_exit").any()
    for cuts in (["2021-03-10"], ["2021-03-26", "2021-03-29", "2021-04-05"]):
        _assert_same(whole, _chain(prices, weights, kw, cuts, **events))


def test_continuation_of_a_perpetual_with_8h_funding() -> None:
    rng = np.random.default_rng(5)
    prices = panel(
        "2021-01-01", calendar="24/7", PERP=list(30000 * np.exp(np.cumsum(rng.normal(0, 0.03, 30))))
    )
    stamps = pd.date_range("2020-12-31 08:00", periods=3 * 32, freq="8h", tz="UTC")
    funding = pd.DataFrame(
        {"ts": stamps, "instrument": "PERP", "rate": rng.normal(1e-4, 1e-4, len(stamps))}
    )
    weights = pd.DataFrame({"PERP": rng.choice([-1.0, 0.5, 1.0], 30)}, index=prices.index)
    kw = dict(calendar="24/7", transaction_cost_bps=2.0)
    whole = simulate(prices, weights, config(**kw), funding=funding)
    assert (whole.funding != 0).sum() > 20
    _assert_same(whole, _chain(prices, weights, kw, ["2021-01-09", "2021-01-17"], funding=funding))


def test_end_state_json_round_trip_is_exact() -> None:
    prices = equities().loc["2020-01-01":"2020-12-31"]
    r = simulate(
        prices, dirichlet_weights(prices.index, prices.columns, 0.9, 1), config(execution_lag=2)
    )
    state = r.end_state
    again = EndState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    assert len(state.pending_orders) == 2
    assert len(state.open_lots) > 0


def test_start_state_must_match_calendar_and_lag() -> None:
    prices = panel("2021-03-01", A=[100.0, 101.0, 102.0, 103.0])
    first = simulate(prices, None, config(end="2021-03-02"))
    with pytest.raises(ValueError, match="execution_lag 1 differs"):
        simulate(prices, None, config(execution_lag=2), start_state=first.end_state)
    with pytest.raises(ValueError, match="leaves a gap after start_state.date 2021-03-02"):
        simulate(prices, None, config(start="2021-03-04"), start_state=first.end_state)
