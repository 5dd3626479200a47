"""FIFO round trips: hand-worked lot matching, and the pipelined matcher equals the serial one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import macro_pipeline.engine.simulation as simulate_module
from macro_pipeline.engine import simulate
from macro_pipeline.engine.inputs import readonly
from macro_pipeline.engine.kernel import Fifo, fifo_step, open_lots
from macro_pipeline_tests.engine.frames import config, dirichlet_weights, equities

DAY = 86_400 * 10**9


def match(fills: list[tuple[int, float, float, float]], splits=()) -> Fifo:
    """Run the matcher over (day, quantity, price, cost) fills of instrument 0."""
    ns = np.array([d * DAY for d, *_ in fills], dtype=np.int64)
    vals = np.zeros((4, len(fills)))
    vals[0] = [q for _, q, _, _ in fills]
    vals[1] = [p for _, _, p, _ in fills]
    vals[3] = [c for *_, c in fills]
    vals[2] = vals[0] * vals[1]
    s_ns = np.array([d * DAY for d, _ in splits], dtype=np.int64)
    s_ratio = np.array([r for _, r in splits], dtype=float)
    fifo = Fifo(1, len(fills), (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((3, 0))))
    fifo_step(
        *map(readonly, (ns, np.zeros(len(fills), np.int32), vals)), 0, len(fills),
        *map(readonly, (s_ns, np.zeros(len(splits), np.int64), s_ratio)), True, *fifo.arrays(),
    )  # fmt: skip
    return fifo


def test_a_sell_closes_the_oldest_lots_first_one_round_trip_per_closing_fill() -> None:
    fifo = match([(1, 10, 100.0, 1.0), (2, 10, 110.0, 2.0), (5, -15, 120.0, 3.0)])
    inst, dates, days, vals = fifo.trips()
    assert len(inst) == 1
    units, pnl, ret = vals[:, 0]
    assert units == 15  # a long round trip of 15 units
    cost = 10 * (1.0 / 10) + 5 * (2.0 / 10) + 15 * (3.0 / 15)  # entry costs pro rata + exit cost
    assert pnl == pytest.approx(10 * (120 - 100) + 5 * (120 - 110) - cost)
    assert ret == pytest.approx(pnl / (10 * 100 + 5 * 110))
    assert (dates[0, 0], dates[1, 0], days[0]) == (1 * DAY, 5 * DAY, 4)  # entry = oldest lot closed
    o_i, o_ns, o_f = open_lots(fifo.lot_f, fifo.lot_i, fifo.head, fifo.count)
    assert o_ns.tolist() == [2 * DAY]
    assert o_f[:, 0].tolist() == pytest.approx([5, 110.0, 0.2])  # quantity, price, cost per unit


def test_a_flip_closes_everything_and_opens_a_short_lot_with_the_rest() -> None:
    fifo = match([(1, 10, 100.0, 0.0), (3, -25, 90.0, 0.0), (4, 15, 80.0, 0.0)])
    inst, dates, days, vals = fifo.trips()
    assert vals[0].tolist() == [10, -15]  # long round trip, then short round trip
    assert vals[1].tolist() == pytest.approx([10 * (90 - 100), -15 * (80 - 90)])
    assert dates[0].tolist() == [1 * DAY, 3 * DAY]
    assert fifo.count[0] - fifo.count[1] == 0  # nothing open


def test_splits_rescale_open_lots_before_the_ex_date_fills() -> None:
    fifo = match([(1, 10, 100.0, 0.0), (3, -20, 55.0, 0.0)], splits=[(3, 2.0)])
    _, _, _, vals = fifo.trips()
    assert vals[0].tolist() == [20]
    assert vals[1].tolist() == pytest.approx([20 * (55 - 50)])


@pytest.mark.parametrize("frequency", ["daily", "weekly"])
def test_pipelined_matching_equals_serial(monkeypatch: pytest.MonkeyPatch, frequency: str) -> None:
    prices = equities().loc["2015":]
    weights = dirichlet_weights(prices.index, prices.columns, 0.95, seed=4)
    cfg = config(rebalance_frequency=frequency, transaction_cost_bps=5.0)
    serial = simulate(prices, weights, cfg)
    monkeypatch.setattr(simulate_module, "_PIPELINE_MIN_ROWS", 0)
    monkeypatch.setattr(simulate_module.os, "cpu_count", lambda: 2)
    piped = simulate(prices, weights, cfg)
    assert piped._matcher.finished  # matched while simulating, not on first use
    pd.testing.assert_frame_equal(piped.round_trips, serial.round_trips)
    pd.testing.assert_frame_equal(piped.fills, serial.fills)
    pd.testing.assert_series_equal(piped.equity, serial.equity)
    assert piped.end_state == serial.end_state
