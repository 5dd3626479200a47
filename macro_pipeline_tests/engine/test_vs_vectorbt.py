"""Cross-check against vectorbt's `Portfolio.from_orders` on the real 20-equity data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.engine import rebalance_dates, simulate, simulate_many
from macro_pipeline_tests.engine.frames import config, dirichlet_weights, equities

vbt = pytest.importorskip("vectorbt")

COST_BPS, SLIPPAGE_BPS = 5.0, 2.0


def vectorbt_value(
    prices: pd.DataFrame, weights: pd.DataFrame, frequency: str, lag: int
) -> pd.Series:
    """The same target weights, shifted to their execution row, through from_orders."""
    if frequency == "daily":
        acted = weights.index
    else:
        acted = rebalance_dates("XNYS", frequency, prices.index[0], prices.index[-1]).intersection(
            weights.index
        )
    rows = prices.index.get_indexer(acted) + lag
    keep = rows < len(prices)
    size = np.full(prices.shape, np.nan)
    size[rows[keep]] = weights.loc[acted].to_numpy()[keep]
    pf = vbt.Portfolio.from_orders(
        prices, size, size_type="targetpercent", cash_sharing=True, group_by=True,
        call_seq="auto", fees=(COST_BPS + SLIPPAGE_BPS) / 1e4, init_cash=1000.0,
    )  # fmt: skip
    return pf.value()


@pytest.mark.parametrize(
    ("frequency", "lag"), [("monthly", 1), ("weekly", 1), ("daily", 1), ("monthly", 3)]
)
def test_final_value_equals_vectorbt_from_orders(frequency: str, lag: int) -> None:
    prices = equities()
    weights = dirichlet_weights(prices.index, prices.columns, 0.95, seed=1)  # leaves 5 % cash
    cfg = config(rebalance_frequency=frequency, execution_lag=lag,
                 transaction_cost_bps=COST_BPS, slippage_bps=SLIPPAGE_BPS)  # fmt: skip
    ours = simulate(prices, weights, cfg)
    theirs = vectorbt_value(prices, weights, frequency, lag)
    assert ours.final_value == pytest.approx(theirs.iloc[-1], rel=1e-9)
    np.testing.assert_allclose(ours.equity.to_numpy(), theirs.to_numpy(), rtol=1e-9)


def test_batched_sweep_equals_vectorbt_and_simulate() -> None:
    prices = equities().loc["2010":]
    months = rebalance_dates("XNYS", "monthly", prices.index[0], prices.index[-1])
    schedules = [dirichlet_weights(months, prices.columns, 0.95, seed=s) for s in range(6)]
    cfg = config(
        rebalance_frequency="monthly", transaction_cost_bps=COST_BPS, slippage_bps=SLIPPAGE_BPS
    )
    sweep = simulate_many(prices, schedules, cfg)
    assert sweep.equity.shape == (len(prices), 6)
    for s, weights in enumerate(schedules):
        assert sweep.final_value[s] == pytest.approx(
            vectorbt_value(prices, weights, "monthly", 1).iloc[-1], rel=1e-9
        )
        np.testing.assert_array_equal(
            sweep.equity[s].to_numpy(), simulate(prices, weights, cfg).equity.to_numpy()
        )
    assert sweep.result(2).final_value == sweep.final_value[2]
    # the array form gives the same numbers
    array = np.stack([w.to_numpy() for w in schedules])
    again = simulate_many(prices, array, cfg, decision_dates=months)
    np.testing.assert_array_equal(again.equity_matrix, sweep.equity_matrix)
