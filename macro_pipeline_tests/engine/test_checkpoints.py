"""`simulate(checkpoints=...)`: the state at the close of each checkpoint session equals the
end state of a run ending there, and continuing from it reproduces the rest of the run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.engine import EndState, simulate
from macro_pipeline_tests.engine.frames import config, dirichlet_weights, equities, panel

RTOL = 1e-12


def _check(prices, weights, kw: dict, checkpoints, **events) -> None:
    plain = simulate(prices, weights, config(**kw), **events)
    whole = simulate(prices, weights, config(**kw), checkpoints=checkpoints, **events)
    # checkpoints change nothing in the run itself
    np.testing.assert_array_equal(whole.equity.to_numpy(), plain.equity.to_numpy())
    assert whole.end_state == plain.end_state
    pd.testing.assert_frame_equal(whole.fills, plain.fills)
    pd.testing.assert_frame_equal(whole.round_trips, plain.round_trips)
    stamps = sorted({pd.Timestamp(c) for c in checkpoints})
    assert list(whole.states) == stamps
    for b in stamps:
        state = whole.states[b]
        assert whole.state_at(b) is state
        head = simulate(prices, weights, config(**{**kw, "end": b}), **events)
        assert state == head.end_state, b  # bit for bit
        if b == whole.sessions[-1]:
            continue
        restored = EndState.from_dict(json.loads(json.dumps(state.to_dict())))
        tail = simulate(
            prices, weights, config(**{**kw, "start": b + pd.Timedelta(days=1)}),
            start_state=restored, **events,
        )  # fmt: skip
        expect = whole.equity[whole.sessions > b]
        assert tail.equity.index.equals(expect.index)
        np.testing.assert_allclose(tail.equity.to_numpy(), expect.to_numpy(), rtol=RTOL, atol=0)
        assert tail.end_state.cash == pytest.approx(whole.end_state.cash, rel=RTOL)
        assert tail.end_state.quantities == pytest.approx(whole.end_state.quantities, rel=RTOL)
        assert tail.end_state.pending_orders == whole.end_state.pending_orders


@pytest.mark.parametrize(("frequency", "lag"), [("monthly", 1), ("weekly", 2), ("daily", 3)])
def test_checkpoints_at_month_ends_on_real_equities(frequency: str, lag: int) -> None:
    prices = equities().loc["2007-06-01":"2009-06-30"]
    weights = dirichlet_weights(prices.index, prices.columns, 0.95, seed=7)
    kw = dict(
        rebalance_frequency=frequency, execution_lag=lag, transaction_cost_bps=5.0, slippage_bps=2.0
    )
    month_ends = prices.index.to_series().groupby(prices.index.to_period("M")).max()
    checkpoints = list(month_ends)  # includes the last session of the run
    if frequency == "daily":
        assert all(  # lag 3: every month end has orders decided before it, executed after
            len(s.pending_orders) == 3
            for s in simulate(
                prices, weights, config(**kw), checkpoints=checkpoints
            ).states.values()
        )
    _check(prices, weights, kw, checkpoints)


def test_checkpoints_with_pending_orders_shorts_carry_events_and_universe_exits() -> None:
    rng = np.random.default_rng(3)
    n = 40
    names = ["A", "B", "C", "D"]
    prices = panel(
        "2021-03-01", **{k: list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))) for k in names}
    )
    prices.iloc[5:8, 1] = np.nan
    prices.iloc[20:, 0] *= 0.5  # unadjusted 2-for-1 split of A on session 20
    weights = pd.DataFrame(rng.normal(0, 0.4, (n, 4)), index=prices.index, columns=names)
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
    # around the split, the dividends, inside and at the end of the universe gap
    checkpoints = [prices.index[i] for i in (0, 7, 19, 20, 24, 25, 26, 32, 33, 39)]
    whole = simulate(prices, weights, config(**kw), checkpoints=checkpoints, **events)
    assert (whole.fills["reason"] == "universe_exit").any()
    # lag 2, daily decisions: two orders span every boundary (one at the first session)
    assert [len(s.pending_orders) for s in whole.states.values()] == [1] + [2] * 9
    _check(prices, weights, kw, checkpoints, **events)
    # a chain continuing from a state that itself carries pending orders
    first = whole.states[prices.index[19]]
    kw2 = {**kw, "start": prices.index[20]}
    cont = simulate(prices, weights, config(**kw2), start_state=first,
                    checkpoints=[prices.index[20], prices.index[30]], **events)  # fmt: skip
    for b in (prices.index[20], prices.index[30]):
        head = simulate(prices, weights, config(**{**kw2, "end": b}), start_state=first, **events)
        assert cont.states[b] == head.end_state
    np.testing.assert_allclose(
        cont.equity.to_numpy(), whole.equity[cont.sessions].to_numpy(), rtol=RTOL, atol=0
    )


def test_checkpoints_of_a_perpetual_with_8h_funding() -> None:
    rng = np.random.default_rng(5)
    prices = panel(
        "2021-01-01", calendar="24/7", PERP=list(30000 * np.exp(np.cumsum(rng.normal(0, 0.03, 30))))
    )
    stamps = pd.date_range("2020-12-31 08:00", periods=3 * 32, freq="8h", tz="UTC")
    funding = pd.DataFrame(
        {"ts": stamps, "instrument": "PERP", "rate": rng.normal(1e-4, 1e-4, len(stamps))}
    )
    weights = pd.DataFrame({"PERP": rng.choice([-1.0, 0.5, 1.0], 30)}, index=prices.index)
    kw = dict(calendar="24/7", transaction_cost_bps=2.0, execution_lag=2)
    _check(prices, weights, kw, ["2021-01-09", "2021-01-17", "2021-01-30"], funding=funding)


def test_checkpoints_must_be_simulated_sessions() -> None:
    prices = equities().loc["2020-01-01":"2020-03-31"]
    weights = dirichlet_weights(prices.index, prices.columns, 0.9, seed=1)
    cfg = config(start="2020-01-15")
    with pytest.raises(ValueError, match="2020-01-04"):  # a Saturday
        simulate(prices, weights, cfg, checkpoints=["2020-01-31", "2020-01-04"])
    with pytest.raises(ValueError, match="2020-01-10"):  # a session before config.start
        simulate(prices, weights, cfg, checkpoints=["2020-01-10"])
    with pytest.raises(ValueError, match="2020-04-30"):  # after the last price
        simulate(prices, weights, cfg, checkpoints=[pd.Timestamp("2020-04-30")])
    r = simulate(prices, weights, cfg, checkpoints=["2020-02-28", "2020-01-31", "2020-02-28"])
    assert list(r.states) == [pd.Timestamp("2020-01-31"), pd.Timestamp("2020-02-28")]
    assert simulate(prices, weights, cfg).states == {}
    assert simulate(prices, weights, cfg, checkpoints=[]).states == {}
    with pytest.raises(KeyError, match="2020-02-03"):
        r.state_at("2020-02-03")
