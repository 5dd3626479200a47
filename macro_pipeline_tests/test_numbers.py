"""Numbers a quant trusts (issue 12) on the real demo data in PostgreSQL: conventions per
calendar checked against empyrical-reloaded, and the leaderboard using them."""

from __future__ import annotations

import empyrical
import pandas as pd
import pytest

from macro_pipeline.backtests import leaderboard_frame, run_backtest, run_months, stitched_equity
from macro_pipeline.engine.metrics import compute_metrics
from macro_pipeline.warehouse.runs import load_run
from macro_pipeline_tests.conftest import demo_with_strategies


def months(first: str, last: str) -> list[str]:
    return [d.strftime("%Y-%m-01") for d in pd.date_range(first, last, freq="MS")]


@pytest.fixture(scope="module")
def demo(databases):
    return demo_with_strategies(databases)


@pytest.fixture(scope="module")
def carry_run(demo):
    return run_backtest(demo, "carry-simple", "2015-01-01", "2022-12-31")


@pytest.fixture(scope="module")
def board(demo):
    for strategy_id, first in (("carry-simple", "2015-01-01"), ("bh-us-eq20", "1990-01-01")):
        assert {m.status for m in run_months(demo, strategy_id, months(first, "2022-12-01"))} == {"stored"}
    return leaderboard_frame(demo)


def test_24_7_run_metrics_equal_empyrical_with_annualization_365(demo, carry_run) -> None:
    rec = load_run(demo, carry_run.run_id)
    r = rec.equity["equity"].pct_change()
    r.iloc[0] = rec.equity["equity"].iloc[0] / 1_000_000.0 - 1  # the first return is from the capital
    assert pd.Timestamp(r.index[0]) == pd.Timestamp("2015-01-01") and len(r) == 2922
    expected = {
        "total_return": empyrical.cum_returns_final(r),
        "cagr": empyrical.cagr(r, annualization=365),
        "annual_volatility": empyrical.annual_volatility(r, annualization=365),
        "sharpe": empyrical.sharpe_ratio(r, annualization=365),
        "sortino": empyrical.sortino_ratio(r, annualization=365),
        "calmar": empyrical.calmar_ratio(r, annualization=365),
        "max_drawdown": empyrical.max_drawdown(r),
    }
    for key, value in expected.items():
        assert rec.metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    # over 2922 days = 8.005 365-day years, not 2922 / 252 = 11.6 "years"
    assert rec.metrics["cagr"] == pytest.approx((1 + rec.metrics["total_return"]) ** (365 / 2922) - 1, rel=1e-12)
    print(f"\ncarry-simple 2015-2022: {rec.metrics['total_return']:.6f} total, {rec.metrics['cagr']:.6f} CAGR, "
          f"{rec.metrics['annual_volatility']:.6f} vol, {rec.metrics['sharpe']:.4f} Sharpe")


def test_leaderboard_annualises_each_strategy_with_its_calendar(demo, board) -> None:
    """Regression: leaderboard_frame called compute_metrics without a calendar (252 for 24/7)."""
    assert board.loc["carry-simple", "calendar"] == "24/7"
    assert board.loc["bh-us-eq20", "calendar"] == "XNYS"
    for strategy_id, ppy in (("carry-simple", 365), ("bh-us-eq20", 252)):
        r = stitched_equity(demo, strategy_id).pct_change().dropna()
        assert board.loc[strategy_id, "sharpe"] == pytest.approx(
            empyrical.sharpe_ratio(r, annualization=ppy), rel=1e-9)
        assert board.loc[strategy_id, "annual_volatility"] == pytest.approx(
            empyrical.annual_volatility(r, annualization=ppy), rel=1e-9)
    r = stitched_equity(demo, "carry-simple").pct_change().dropna()
    assert board.loc["carry-simple", "cagr"] == pytest.approx(empyrical.cagr(r, annualization=365), rel=1e-9)
    assert board.loc["carry-simple", "cagr"] == pytest.approx(
        compute_metrics(r, calendar="24/7")["cagr"], rel=1e-15)
