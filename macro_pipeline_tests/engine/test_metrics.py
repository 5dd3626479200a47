"""`compute_metrics`: hand-worked on four returns, and equal to empyrical on real returns."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pandas as pd
import pytest

from macro_pipeline.engine import METRIC_KEYS, compute_metrics, simulate
from macro_pipeline.engine.metrics import (
    drawdown_periods,
    relative_metrics,
    stress_table,
    tail_risk,
)
from macro_pipeline_tests.engine.frames import config, dirichlet_weights, equities

R = [0.10, -0.05, 0.02, -0.03]
DATES = pd.to_datetime(["2021-01-29", "2021-02-01", "2021-02-02", "2021-02-03"])


def test_exactly_the_issue_keys() -> None:
    m = compute_metrics(pd.Series(R, index=DATES), calendar="XNYS")
    assert list(m) == list(METRIC_KEYS)
    assert len(METRIC_KEYS) == 21


def test_hand_worked_return_metrics() -> None:
    m = compute_metrics(pd.Series(R, index=DATES), calendar="XNYS")
    r = np.array(R)
    wealth = np.cumprod(1 + r)  # 1.1, 1.045, 1.0659, 1.033923
    total = wealth[-1] - 1
    # elapsed calendar time: from the close before the first return (Thu 2021-01-28, the
    # previous XNYS session) to 2021-02-03 = 6 days, in 365-day years
    cagr = (1 + total) ** (365 / 6) - 1
    sd = np.sqrt(((r - r.mean()) ** 2).sum() / 3)  # ddof = 1
    downside = np.sqrt((0.05**2 + 0.03**2) / 4) * np.sqrt(252)  # over all four periods
    mdd = wealth[-1] / 1.1 - 1  # peak 1.1 on 01-29, never regained
    assert m["total_return"] == pytest.approx(total, rel=1e-14)
    assert m["cagr"] == pytest.approx(cagr, rel=1e-12)
    assert m["annual_volatility"] == pytest.approx(sd * np.sqrt(252), rel=1e-14)
    assert m["sharpe"] == pytest.approx(r.mean() / sd * np.sqrt(252), rel=1e-14)
    assert m["sortino"] == pytest.approx(r.mean() * 252 / downside, rel=1e-14)
    assert m["max_drawdown"] == pytest.approx(mdd, rel=1e-14)
    assert m["calmar"] == pytest.approx(cagr / abs(mdd), rel=1e-12)
    assert m["max_drawdown_duration_days"] == (DATES[-1] - DATES[0]).days
    # sorted: -0.05, -0.03, 0.02, 0.10; the 5th percentile sits 0.15 of the way to -0.03
    assert m["var_95"] == pytest.approx(-0.05 + 0.15 * 0.02, rel=1e-14)
    assert m["cvar_95"] == pytest.approx(-0.05)  # the int(3 * 0.05) + 1 = 1 worst return
    table = m["monthly_returns"]
    assert table.loc[2021, 1] == pytest.approx(0.10)
    assert table.loc[2021, 2] == pytest.approx(0.95 * 1.02 * 0.97 - 1, rel=1e-14)
    assert math.isnan(table.loc[2021, 3])


def test_risk_free_is_subtracted_per_period() -> None:
    rf = 0.0001
    m = compute_metrics(pd.Series(R, index=DATES), calendar="XNYS", risk_free=rf)
    adj = np.array(R) - rf
    assert m["sharpe"] == pytest.approx(adj.mean() / adj.std(ddof=1) * np.sqrt(252), rel=1e-14)


def test_trade_statistics_from_round_trips() -> None:
    trips = pd.DataFrame({"pnl": [10.0, -5.0, 20.0, 0.0], "holding_days": [1, 3, 5, 7]})
    m = compute_metrics(pd.Series(R, index=DATES), trips, calendar="XNYS")
    assert m["trade_count"] == 4
    assert m["win_rate"] == 2 / 4
    assert m["profit_factor"] == (10.0 + 20.0) / 5.0
    assert m["avg_win"] == (10.0 + 20.0) / 2
    assert m["avg_loss"] == -5.0
    assert m["avg_holding_days"] == (1 + 3 + 5 + 7) / 4


def test_exposure_and_turnover_averages() -> None:
    exposure = pd.DataFrame(
        {"gross": [1.0, 1.2, 0.8, 1.0], "net": [0.2, 0.0, -0.2, 0.4]}, index=DATES
    )
    turnover = pd.Series([0.5, 0.0, 0.1, 0.0], index=DATES)
    m = compute_metrics(pd.Series(R, index=DATES), calendar="XNYS", exposure=exposure, turnover=turnover)
    assert m["gross_exposure"] == pytest.approx(1.0)
    assert m["net_exposure"] == pytest.approx(0.1)
    assert m["turnover"] == pytest.approx(0.6 / 4 * 252)


def test_no_trades_and_flat_returns_give_nan_not_errors() -> None:
    m = compute_metrics(pd.Series([0.0, 0.0, 0.0], index=DATES[:3]), calendar="XNYS")
    assert m["trade_count"] == 0 and math.isnan(m["win_rate"])
    assert math.isnan(m["sharpe"]) and math.isnan(m["sortino"]) and math.isnan(m["calmar"])
    assert m["max_drawdown"] == 0.0 and m["max_drawdown_duration_days"] == 0.0


def test_hill_tail_index_of_pareto_losses() -> None:
    rng = np.random.default_rng(0)
    losses = (rng.pareto(3.0, 200_000) + 1) * 0.01  # Pareto tail exponent 3
    m = compute_metrics(pd.Series(-losses), periods_per_year=252)
    assert m["tail_index"] == pytest.approx(3.0, rel=0.05)


@pytest.fixture(scope="module")
def real_returns() -> pd.Series:
    prices = equities()
    r = simulate(prices, dirichlet_weights(prices.index, prices.columns, 0.95, 11),
                 config(rebalance_frequency="monthly", transaction_cost_bps=5.0))  # fmt: skip
    return r.returns


@pytest.mark.parametrize("risk_free", [0.0, 0.02 / 252])
def test_equal_to_empyrical_on_real_returns(real_returns: pd.Series, risk_free: float) -> None:
    m = compute_metrics(real_returns, calendar="XNYS", risk_free=risk_free)
    r = real_returns
    # CAGR over elapsed calendar time = empyrical's CAGR with the annualization that makes its
    # n / annualization years the elapsed 365-day years
    assert r.index[0] == pd.Timestamp("1990-01-02")  # first XNYS session of 1990; the one before:
    years = (r.index[-1] - pd.Timestamp("1989-12-29")).days / 365
    expected = {
        "sharpe": empyrical.sharpe_ratio(r, risk_free=risk_free),
        "sortino": empyrical.sortino_ratio(r, required_return=risk_free),
        "max_drawdown": empyrical.max_drawdown(r),
        "cagr": empyrical.cagr(r, annualization=len(r) / years),
        "calmar": empyrical.calmar_ratio(r, annualization=len(r) / years),
        "annual_volatility": empyrical.annual_volatility(r),
        "var_95": empyrical.value_at_risk(r, cutoff=0.05),
        "cvar_95": empyrical.conditional_value_at_risk(r, cutoff=0.05),
        "total_return": empyrical.cum_returns_final(r),
    }
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_compute_metrics_needs_a_calendar() -> None:
    """Regression: the leaderboard called compute_metrics without a calendar and got 252 on 24/7."""
    with pytest.raises(TypeError, match="calendar"):
        compute_metrics(pd.Series(R, index=DATES))


def test_hand_worked_24_7_conventions() -> None:
    """On 24/7 every calendar day is a session: P = 365, and CAGR over n daily returns is
    (1 + total) ^ (365 / n) - 1 (the first return is measured from the previous midnight)."""
    r = np.array([0.01, -0.02, 0.005, 0.0, 0.003])
    dates = pd.date_range("2020-02-27", periods=5, freq="D")  # crosses 2020-02-29
    m = compute_metrics(pd.Series(r, index=dates), calendar="24/7")
    total = np.prod(1 + r) - 1
    sd = r.std(ddof=1)
    assert m["cagr"] == pytest.approx((1 + total) ** (365 / 5) - 1, rel=1e-12)
    assert m["annual_volatility"] == pytest.approx(sd * np.sqrt(365), rel=1e-14)
    assert m["sharpe"] == pytest.approx(r.mean() / sd * np.sqrt(365), rel=1e-14)
    downside = np.sqrt(0.02**2 / 5) * np.sqrt(365)
    assert m["sortino"] == pytest.approx(r.mean() * 365 / downside, rel=1e-14)
    # the same numbers on an exchange calendar annualise with 252
    x = compute_metrics(pd.Series(r, index=dates), calendar="XNYS")
    assert x["annual_volatility"] == pytest.approx(sd * np.sqrt(252), rel=1e-14)


def test_eight_years_of_24_7_is_eight_years() -> None:
    """The issue's carry-simple case: 2,922 daily sessions 2015-01-01..2022-12-31 returning 22.25 %
    in all have a CAGR of 1.2225 ^ (365 / 2922) - 1 (about 2.54 %), not 1.2225 ^ (252 / 2922) - 1."""
    dates = pd.date_range("2015-01-01", "2022-12-31", freq="D")
    assert len(dates) == 2922
    r = np.full(len(dates), 1.2225 ** (1 / len(dates)) - 1)
    m = compute_metrics(pd.Series(r, index=dates), calendar="24/7")
    assert m["cagr"] == pytest.approx(1.2225 ** (365 / 2922) - 1, rel=1e-9)
    assert round(m["cagr"], 4) == 0.0254


def test_hand_worked_relative_metrics_over_the_common_window() -> None:
    """Strategy returns on four sessions, benchmark on three of them plus one the strategy lacks:
    only the three common dates count."""
    dates = pd.to_datetime(["2021-02-01", "2021-02-02", "2021-02-03", "2021-02-04", "2021-02-05"])
    r = pd.Series([0.02, -0.01, 0.03, 0.01], index=dates[:4])
    b = pd.Series([0.01, -0.02, 0.02, 0.05], index=dates[[1, 2, 3, 4]])
    m = relative_metrics(r, b, calendar="XNYS")
    rr, bb = np.array([-0.01, 0.03, 0.01]), np.array([0.01, -0.02, 0.02])  # 02-02 .. 02-04
    assert m["sessions"] == 3 and str(m["first"]) == "2021-02-02" and str(m["last"]) == "2021-02-04"
    beta = np.mean((bb - bb.mean()) * (rr - rr.mean())) / np.mean((bb - bb.mean()) ** 2)
    assert m["beta"] == pytest.approx(beta, rel=1e-12)
    assert m["alpha"] == pytest.approx((1 + np.mean(rr - beta * bb)) ** 252 - 1, rel=1e-12)
    a = rr - bb
    assert m["tracking_error"] == pytest.approx(a.std(ddof=1) * np.sqrt(252), rel=1e-12)
    assert m["information_ratio"] == pytest.approx(a.mean() * 252 / (a.std(ddof=1) * np.sqrt(252)), rel=1e-12)
    assert m["correlation"] == pytest.approx(np.corrcoef(rr, bb)[0, 1], rel=1e-12)
    # up days of the benchmark: 02-02 and 02-04; down: 02-03
    up = ((1 - 0.01) * 1.01) ** (252 / 2) - 1, (1.01 * 1.02) ** (252 / 2) - 1
    assert m["up_capture"] == pytest.approx(up[0] / up[1], rel=1e-12)
    assert m["down_capture"] == pytest.approx((1.03**252 - 1) / (0.98**252 - 1), rel=1e-12)
    assert m["total_return"] == pytest.approx(0.99 * 1.03 * 1.01 - 1, rel=1e-14)
    assert m["benchmark_total_return"] == pytest.approx(1.01 * 0.98 * 1.02 - 1, rel=1e-14)


def test_relative_metrics_equal_empyrical_on_real_returns(real_returns: pd.Series) -> None:
    prices = equities()
    bench = prices.iloc[:, 0].pct_change().dropna()  # one stock as the "benchmark"
    m = relative_metrics(real_returns, bench, calendar="XNYS")
    r, b = real_returns.align(bench, join="inner")
    alpha, beta = empyrical.alpha_beta(r, b)
    assert m["alpha"] == pytest.approx(alpha, rel=1e-9) and m["beta"] == pytest.approx(beta, rel=1e-9)
    assert m["up_capture"] == pytest.approx(empyrical.up_capture(r, b), rel=1e-9)
    assert m["down_capture"] == pytest.approx(empyrical.down_capture(r, b), rel=1e-9)
    assert m["information_ratio"] == pytest.approx(empyrical.excess_sharpe(r, b) * np.sqrt(252), rel=1e-9)


def test_hand_worked_drawdown_periods_and_tails() -> None:
    dates = pd.date_range("2021-03-01", periods=8, freq="D")  # Mon 03-01 .. Mon 03-08
    r = pd.Series([0.10, -0.20, 0.05, 0.20, -0.05, -0.05, 0.02, 0.30], index=dates)
    dd = drawdown_periods(r, 5)
    # wealth 1.1, .88, .924, 1.1088 (new peak), 1.05336, 1.000692, 1.0207, 1.3269 (recovered)
    assert list(dd["start"]) == [dates[1], dates[4]]
    assert dd.loc[0, "depth"] == pytest.approx(0.88 / 1.1 - 1, rel=1e-12)
    assert dd.loc[0, "recovery"] == dates[3] and dd.loc[0, "days"] == 2 and dd.loc[0, "sessions"] == 2
    assert dd.loc[1, "trough"] == dates[5] and dd.loc[1, "depth"] == pytest.approx(0.95 * 0.95 - 1, rel=1e-12)
    t = tail_risk(r)
    assert t["worst_day"] == -0.20 and str(t["worst_day_date"]) == "2021-03-02"
    week1 = 1.1 * 0.8 * 1.05 * 1.2 * 0.95 * 0.95 * 1.02 - 1  # Mon 03-01 .. Sun 03-07
    assert t["worst_week"] == pytest.approx(min(week1, 0.30), rel=1e-12)
    assert t["es_95"] == -0.20 and t["es_99"] == -0.20  # int(7 x a) + 1 = 1 worst return


def test_stress_table_covers_windows_fully_or_partly() -> None:
    dates = pd.bdate_range("2020-02-18", "2020-03-10")
    r = pd.Series(np.linspace(-0.01, 0.01, len(dates)), index=dates)
    t = stress_table(r, calendar="XNYS").set_index("window")
    assert list(t.index) == ["2020-02/03 COVID crash"]
    row = t.loc["2020-02/03 COVID crash"]
    inside = r.loc["2020-02-19":"2020-03-23"]
    assert row["coverage"] == "partial" and row["sessions"] == len(inside)
    assert row["total_return"] == pytest.approx(np.prod(1 + inside) - 1, rel=1e-12)


def test_drawdown_periods_equal_quantstats_on_real_returns(real_returns: pd.Series) -> None:
    qs = pytest.importorskip("quantstats")
    mine = drawdown_periods(real_returns, 5)
    theirs = qs.stats.drawdown_details(qs.stats.to_drawdown_series(real_returns)).sort_values(
        "max drawdown", kind="stable").head(5).reset_index(drop=True)
    assert [d.strftime("%Y-%m-%d") for d in mine["start"]] == list(theirs["start"])
    assert [d.strftime("%Y-%m-%d") for d in mine["trough"]] == list(theirs["valley"])
    assert [d.strftime("%Y-%m-%d") for d in mine["end"]] == list(theirs["end"])
    assert list(mine["days"]) == list(theirs["days"])
    np.testing.assert_allclose(mine["depth"] * 100, theirs["max drawdown"], rtol=1e-9)
