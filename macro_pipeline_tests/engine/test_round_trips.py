"""Round trips: vectorbt's exit-trades convention (average cost), by hand and against vectorbt."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.engine import EndState, rebalance_dates, simulate
from macro_pipeline_tests.engine.frames import (
    config,
    dirichlet_weights,
    equities,
    panel,
    weights_at,
)

C = 10.0 / 1e4  # cost rate of these tests


def test_average_cost_round_trips_through_add_trim_flip_and_close() -> None:
    prices = panel("2021-03-01", A=[100.0, 100.0, 110.0, 120.0, 90.0, 80.0])
    weights = weights_at(
        prices, {0: {"A": 0.5}, 1: {"A": 1.0}, 2: {"A": 0.25}, 3: {"A": -0.5}, 4: {"A": 0.0}}
    )
    r = simulate(prices, weights, config(transaction_cost_bps=10.0))
    f = r.fills
    q = f["quantity"].to_numpy()
    c = f["cost"].to_numpy()
    d = prices.index

    # session 1 buys q0 at 100, session 2 adds q1 at 110: one open trade, entry 03-02
    units = q[0] + q[1]
    avg = (q[0] * 100.0 + q[1] * 110.0) / units
    costs = c[0] + c[1]
    # session 3 trims at 120: closes -q2 units at the average entry price
    closed = -q[2]
    trim_pnl = closed * (120.0 - avg) - costs * closed / units - c[2]
    left = units - closed
    left_costs = costs * left / units
    # session 4 flips to short at 90: closes the rest, opens -(q3 + left) short units
    flip_exit_costs = c[3] * left / -q[3]
    flip_pnl = left * (90.0 - avg) - left_costs - flip_exit_costs
    short = -(q[3] + left)
    # session 5 buys the short back at 80
    short_pnl = -(short * 80.0 - short * 90.0) - (c[3] - flip_exit_costs) - c[4]

    t = r.round_trips
    assert t["quantity"].tolist() == pytest.approx([closed, left, -short])
    assert t["pnl"].tolist() == pytest.approx([trim_pnl, flip_pnl, short_pnl], rel=1e-12)
    assert t["return"].tolist() == pytest.approx(
        [trim_pnl / (closed * avg), flip_pnl / (left * avg), short_pnl / (short * 90.0)], rel=1e-12
    )
    assert t["entry_date"].tolist() == [d[1], d[1], d[4]]
    assert t["exit_date"].tolist() == [d[3], d[4], d[5]]
    assert t["holding_days"].tolist() == [
        (d[3] - d[1]).days,
        (d[4] - d[1]).days,
        (d[5] - d[4]).days,
    ]
    assert len(r.end_state.open_lots) == 0
    # every cost and price move is in some round trip: their pnl is the equity change
    assert t["pnl"].sum() == pytest.approx(r.equity.iloc[-1] - 1000.0, rel=1e-12)


def test_open_round_trip_carries_over_a_continuation_exactly() -> None:
    prices = panel("2021-03-01", A=[100.0, 100.0, 110.0, 120.0, 90.0, 80.0])
    weights = weights_at(prices, {0: {"A": 0.5}, 1: {"A": 1.0}, 2: {"A": 0.25}, 3: {"A": 0.0}})
    whole = simulate(prices, weights, config(transaction_cost_bps=10.0))
    first = simulate(prices, weights, config(transaction_cost_bps=10.0, end=prices.index[2]))
    state = EndState.from_dict(json.loads(json.dumps(first.end_state.to_dict())))
    lots = state.open_lots
    assert lots.instrument == ("A",) and lots.entry_date == (prices.index[1].date(),)
    second = simulate(
        prices, weights, config(transaction_cost_bps=10.0, start=prices.index[3]), start_state=state
    )
    joined = pd.concat([first.round_trips, second.round_trips], ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole.round_trips, check_exact=False, rtol=1e-12)


@pytest.mark.parametrize("frequency", ["monthly", "daily"])
def test_round_trips_equal_vectorbt_exit_trades(frequency: str) -> None:
    vbt = pytest.importorskip("vectorbt")
    prices = equities().loc["2012":]
    weights = dirichlet_weights(prices.index, prices.columns, 0.95, seed=9)
    rng = np.random.default_rng(9)
    weights = weights.where(rng.random(weights.shape) > 0.3, 0.0)  # positions close and reopen
    r = simulate(prices, weights, config(rebalance_frequency=frequency, transaction_cost_bps=7.0))

    acted = (
        weights.index
        if frequency == "daily"
        else rebalance_dates("XNYS", frequency, prices.index[0], prices.index[-1])
    )
    acted = acted[acted.isin(weights.index)]
    rows = prices.index.get_indexer(acted) + 1
    keep = rows < len(prices)
    size = np.full(prices.shape, np.nan)
    size[rows[keep]] = weights.loc[acted].to_numpy()[keep]
    pf = vbt.Portfolio.from_orders(
        prices, size, size_type="targetpercent", cash_sharing=True, group_by=True,
        call_seq="auto", fees=7e-4, init_cash=1000.0,
    )  # fmt: skip
    rec = pd.DataFrame(pf.exit_trades.records)
    rec = rec[rec["status"] == 1].sort_values(["exit_idx", "col"], kind="stable")
    ours = r.round_trips
    assert len(ours) == len(rec) > 100
    assert ours["instrument"].cat.codes.tolist() == rec["col"].tolist()
    assert ours["exit_date"].tolist() == prices.index[rec["exit_idx"]].tolist()
    assert ours["entry_date"].tolist() == prices.index[rec["entry_idx"]].tolist()
    np.testing.assert_allclose(ours["quantity"], rec["size"], rtol=1e-9)
    np.testing.assert_allclose(ours["pnl"], rec["pnl"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours["return"], rec["return"], rtol=1e-9, atol=1e-12)
