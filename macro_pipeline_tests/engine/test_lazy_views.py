"""What `BacktestResult` builds on first access: the fills frame's notional and cost, the
round trips replayed from the fill log, and the open round trips of the end state."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.engine import simulate
from macro_pipeline_tests.engine.frames import config, sessions

COST = 25.0  # bps


def _case(seed: int):
    """Long/short weights that add, trim, close and flip, with missing prices, universe exits
    and splits."""
    rng = np.random.default_rng(seed)
    T, N = 30, 3
    idx = sessions("2021-03-01", T)
    cols = ["A", "B", "C"]
    prices = 50 * np.exp(np.cumsum(rng.normal(0, 0.05, (T, N)), axis=0))
    prices[rng.random(prices.shape) < 0.1] = np.nan
    w = rng.choice([-0.6, -0.2, 0.0, 0.3, 0.6], size=(T, N))
    universe = pd.DataFrame(rng.random((T, N)) > 0.1, index=idx, columns=cols)
    splits = pd.DataFrame({"ex_date": idx[[5, 17]], "instrument": ["A", "B"], "ratio": [2.0, 0.5]})
    return (
        pd.DataFrame(prices, index=idx, columns=cols),
        pd.DataFrame(w, index=idx, columns=cols),
        dict(universe=universe, splits=splits),
    )


def _oracle_round_trips(r, splits: pd.DataFrame) -> pd.DataFrame:
    """Average-cost round trips recomputed from scratch in plain Python from the fills frame
    (the convention of the ``kernel`` module docstring)."""
    ratio = {(pd.Timestamp(d), i): x for d, i, x in splits.itertuples(index=False)}
    held: dict[str, float] = {}
    open_: dict[str, list] = {}  # instrument -> [entry date, units, entry notional, entry costs]
    rows = []
    last_date = None
    trades = r.fills[r.fills["side"] != "none"]
    for date, inst, q, p, cost, reason in trades[
        ["date", "instrument", "quantity", "price", "cost", "reason"]
    ].itertuples(index=False):
        if date != last_date:  # splits at the open of this fill's session (and any before)
            for (d, i), x in ratio.items():
                if (last_date is None or d > last_date) and d <= date:
                    held[i] = held.get(i, 0.0) * x
                    if i in open_:
                        open_[i][1] *= x
            last_date = date
        cur = held.get(inst, 0.0)
        after = 0.0 if reason == "universe_exit" else cur + q
        if abs(after) <= 1e-9 * abs(q):  # a sum of fills, not the kernel's target: snap to flat
            after = 0.0
        if cur == 0.0:
            open_[inst] = [date, abs(q), abs(q) * p, cost]
        elif (q > 0) == (cur > 0):
            o = open_[inst]
            o[1], o[2], o[3] = o[1] + abs(q), o[2] + abs(q) * p, o[3] + cost
        else:
            entry, units_open, notional, costs = open_[inst]
            flip = after != 0.0 and (after > 0) != (cur > 0) and reason != "universe_exit"
            whole = flip or reason == "universe_exit" or abs(q) >= units_open * (1 - 1e-12)
            units = units_open if whole else abs(q)
            frac = units / units_open
            exit_costs = cost * units / abs(q) if flip else cost
            d = 1.0 if cur > 0 else -1.0
            pnl = d * (units * p - notional * frac) - costs * frac - exit_costs
            rows.append((inst, entry, date, d * units, pnl, pnl / (notional * frac)))
            if flip:
                rest = abs(q) - units
                open_[inst] = [date, rest, rest * p, cost - exit_costs]
            elif whole:
                del open_[inst]
            else:
                o = open_[inst]
                o[1], o[2], o[3] = o[1] * (1 - frac), o[2] * (1 - frac), o[3] * (1 - frac)
        held[inst] = after
    return pd.DataFrame(
        rows, columns=["instrument", "entry_date", "exit_date", "quantity", "pnl", "return"]
    )


@pytest.mark.parametrize("seed", range(6))
def test_round_trips_replayed_from_the_fill_log_equal_a_from_scratch_oracle(seed: int) -> None:
    prices, weights, events = _case(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = simulate(prices, weights, config(transaction_cost_bps=COST), **events)
    expect = _oracle_round_trips(r, events["splits"])
    got = r.round_trips
    assert len(got) == len(expect) > 0
    assert got["instrument"].astype(str).tolist() == expect["instrument"].tolist()
    assert (got["entry_date"].to_numpy() == expect["entry_date"].to_numpy()).all()
    assert (got["exit_date"].to_numpy() == expect["exit_date"].to_numpy()).all()
    for col in ("quantity", "pnl", "return"):
        np.testing.assert_allclose(got[col], expect[col], rtol=1e-9, atol=1e-9, err_msg=col)


def test_fills_notional_and_cost_are_the_cash_the_kernel_moved() -> None:
    """Recomputed on access with the kernel's operations: quantity x price and
    abs(notional) x cost rate exactly; no-trade rows 0; the costs series sums them."""
    prices, weights, events = _case(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = simulate(prices, weights, config(transaction_cost_bps=COST), **events)
    f = r.fills
    trade = (f["side"] != "none").to_numpy()
    q, p = f["quantity"].to_numpy(), f["price"].to_numpy()
    assert (f["notional"].to_numpy()[trade] == q[trade] * p[trade]).all()
    assert (f["cost"].to_numpy() == np.abs(f["notional"].to_numpy()) * (COST / 1e4)).all()
    assert (f.loc[~trade, ["notional", "cost"]].to_numpy() == 0.0).all()
    assert not trade.all()  # the case has no-trade rows
    per_session = f.groupby("date")["cost"].sum().reindex(r.sessions, fill_value=0.0)
    np.testing.assert_allclose(per_session, r.costs, rtol=1e-12, atol=0)


def test_end_state_is_the_same_before_and_after_the_round_trips_are_built() -> None:
    """The end state (open round trips) and checkpoint states come from a replay that writes
    no rows when the round trips were not asked for, and from the round trips' own replay
    when they were: the same numbers either way."""
    prices, weights, events = _case(1)
    cfg = config(transaction_cost_bps=COST)
    checkpoints = [prices.index[7], prices.index[20]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = simulate(prices, weights, cfg, checkpoints=checkpoints, **events)
        second = simulate(prices, weights, cfg, checkpoints=checkpoints, **events)
    assert "_trips" not in first.__dict__
    early = (first.end_state, first.states)
    assert "_trips" not in first.__dict__  # the end state did not build the round trips
    _ = second.round_trips
    assert (second.end_state, second.states) == early
    assert len(early[0].open_lots) > 0


def test_two_results_own_their_arrays() -> None:
    """Each result's fill log and round trips are its own: a later call (same shapes) does
    not write into an earlier result's frames."""
    prices, weights, events = _case(2)
    cfg = config(transaction_cost_bps=COST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = simulate(prices, weights, cfg, **events)
        fills, trips = a.fills.copy(), a.round_trips.copy()
        b = simulate(prices, -weights, cfg, **events)
        _ = b.fills, b.round_trips
    pd.testing.assert_frame_equal(a.fills, fills)
    pd.testing.assert_frame_equal(a.round_trips, trips)
    for col in ("quantity", "price"):
        assert not np.shares_memory(a.fills[col].to_numpy(), b.fills[col].to_numpy())
    assert not np.shares_memory(a.round_trips["pnl"].to_numpy(), b.round_trips["pnl"].to_numpy())
