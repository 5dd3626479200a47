"""The tearsheet sections a quant expects from quantstats' full tearsheet (README, Reports: the
side-by-side table), on a strategy history stored in PostgreSQL from the demo data: every
section present, and every number a quantstats function computes too equal to it."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.backtest.months import run_months
from macro_pipeline.engine.metrics import drawdown_periods
from macro_pipeline.reports.data import (
    default_benchmark_curve,
    load_strategy_subject,
    period_returns,
    return_statistics,
    rolling_stats,
)
from macro_pipeline.reports.render import render_subject
from macro_pipeline_tests.conftest import demo_with_strategies

qs = pytest.importorskip("quantstats")

STRATEGY = "bh-us-eq20"  # equities 1990-1998 (1990, 1998 drawdowns), its benchmark on the same sessions
TEARSHEET_CHARTS = {"yearly", "monthly-distribution", "distribution", "daily-returns", "quantiles", "vol-matched",
                    "rolling-beta"}


@pytest.fixture(scope="module")
def history(databases):
    engine = demo_with_strategies(databases)
    months = [d.strftime("%Y-%m-01") for d in pd.date_range("1990-01-01", "1998-12-01", freq="MS")]
    assert {m.status for m in run_months(engine, STRATEGY, months)} == {"stored"}
    subject = load_strategy_subject(engine, STRATEGY)
    bench, _ = default_benchmark_curve(engine, subject)
    return engine, subject, bench, render_subject(engine, subject)


def _section(page: str, ident: str) -> str:
    return re.search(rf'<section id="{ident}">(.*?)</section>', page, re.S).group(1)


def test_every_quantstats_section_has_its_counterpart_in_the_report(history) -> None:
    _, s, _, page = history
    tearsheet, stress, rolling = _section(page, "tearsheet"), _section(page, "stress"), _section(page, "rolling")
    charts = set(re.findall(r'data-chart="([^"]+)"', tearsheet))
    assert charts == TEARSHEET_CHARTS
    assert 'data-chart="worst-drawdowns"' in stress and "Five worst drawdowns" in stress
    assert "Rolling Sortino" in rolling and 'data-chart="rolling"' in rolling
    for heading in ("Returns by period", "Return statistics", "Returns by calendar year"):
        assert heading in tearsheet
    # ours beside theirs: lineage, costs and carry, P&amp;L attribution stay
    for ident in ("lineage", "costs", "trades", "equity", "monthly-returns"):
        assert f'<section id="{ident}">' in page
    # every period row and statistic shown, with a benchmark value (same sessions, same end)
    for label in ("MTD", "3M", "6M", "YTD", "1Y", "3Y (ann.)", "5Y (ann.)", "all-time (ann.)"):
        assert f"<td>{label}</td>" in tearsheet
    assert "<td>10Y (ann.)</td><td>n/a</td>" in tearsheet  # nine years of history: no 10-year window


def test_period_returns_and_statistics_equal_quantstats(history) -> None:
    _, s, bench, _ = history
    r = s.returns
    today = r.index[-1]
    mine = period_returns(r, s.calendar)
    expected = {"MTD": r[r.index >= today.replace(day=1)], "3M": r[r.index >= today - pd.DateOffset(months=3)],
                "6M": r[r.index >= today - pd.DateOffset(months=6)], "YTD": r[r.index >= today.replace(month=1, day=1)],
                "1Y": r[r.index >= today - pd.DateOffset(years=1)]}
    for label, part in expected.items():
        assert mine[label] == pytest.approx(qs.stats.comp(part), rel=1e-12, abs=1e-15), label
    assert mine["all-time (ann.)"] == pytest.approx(s.metrics["cagr"], rel=1e-12)  # the CAGR metric
    assert mine["10Y (ann.)"] is None
    st = return_statistics(r)
    assert st["best_day"] == pytest.approx(qs.stats.best(r), rel=1e-12)
    assert st["worst_day"] == pytest.approx(qs.stats.worst(r), rel=1e-12)
    for agg, key in (("ME", "month"), ("YE", "year")):
        assert st[f"best_{key}"] == pytest.approx(qs.stats.best(r, aggregate=agg), rel=1e-12)
        assert st[f"worst_{key}"] == pytest.approx(qs.stats.worst(r, aggregate=agg), rel=1e-12)
    assert st["win_days"] == pytest.approx(qs.stats.win_rate(r), rel=1e-12)
    for agg, key in (("ME", "months"), ("QE", "quarters"), ("YE", "years")):
        assert st[f"win_{key}"] == pytest.approx(qs.stats.win_rate(r, aggregate=agg), rel=1e-12), key
    assert st["avg_up_month"] == pytest.approx(qs.stats.avg_win(r, aggregate="ME"), rel=1e-12)
    assert st["avg_down_month"] == pytest.approx(qs.stats.avg_loss(r, aggregate="ME"), rel=1e-12)
    assert st["skew"] == pytest.approx(qs.stats.skew(r), rel=1e-12)
    assert st["kurtosis"] == pytest.approx(qs.stats.kurtosis(r), rel=1e-12)
    assert st["tail_ratio"] == pytest.approx(qs.stats.tail_ratio(r), rel=1e-12)
    assert st["gain_pain"] == pytest.approx(qs.stats.gain_to_pain_ratio(r), rel=1e-12)
    assert st["ulcer_index"] == pytest.approx(qs.stats.ulcer_index(r), rel=1e-12)


def test_rolling_sortino_sharpe_and_beta_equal_quantstats(history) -> None:
    _, s, bench, _ = history
    r, window = s.returns, s.periods_per_year
    mine = rolling_stats(r, window, s.periods_per_year).dropna()
    sortino = qs.stats.rolling_sortino(r, rolling_period=window, periods_per_year=window).reindex(mine.index)
    sharpe = qs.stats.rolling_sharpe(r, rolling_period=window, periods_per_year=window).reindex(mine.index)
    np.testing.assert_allclose(mine["sortino"], sortino, rtol=1e-8)
    np.testing.assert_allclose(mine["sharpe"], sharpe, rtol=1e-8)
    b = bench.pct_change().dropna()
    both = pd.concat([r.rename("r"), b.rename("b")], axis=1, join="inner").dropna()
    beta = (both["r"].rolling(126).cov(both["b"]) / both["b"].rolling(126).var()).dropna()  # as render does
    theirs = qs.stats.rolling_greeks(both["r"], both["b"], periods=126)["beta"].reindex(beta.index)
    np.testing.assert_allclose(beta, theirs, rtol=1e-8)


def test_worst_drawdowns_table_equals_quantstats_drawdown_details(history) -> None:
    """The five worst drawdowns of the stored history, as the report shows them, equal
    quantstats' ``drawdown_details`` (start, valley, end, days, depth) on the same returns."""
    _, s, _, page = history
    mine = drawdown_periods(s.returns, 5)
    theirs = qs.stats.drawdown_details(qs.stats.to_drawdown_series(s.returns)).sort_values(
        "max drawdown", kind="stable").head(5).reset_index(drop=True)
    assert len(mine) == 5
    assert [d.strftime("%Y-%m-%d") for d in mine["start"]] == list(theirs["start"])
    assert [d.strftime("%Y-%m-%d") for d in mine["trough"]] == list(theirs["valley"])
    assert [d.strftime("%Y-%m-%d") for d in mine["end"]] == list(theirs["end"])
    assert list(mine["days"]) == list(theirs["days"])
    np.testing.assert_allclose(mine["depth"] * 100, theirs["max drawdown"], rtol=1e-9)
    table = re.search(r'<table class="drawdowns">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr><td>(\d{4}-\d\d-\d\d)</td><td>(\d{4}-\d\d-\d\d)</td><td>(\d{4}-\d\d-\d\d)</td>"
                      r"<td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td>", table)
    assert [(a, b, c) for a, b, c, *_ in rows] == list(zip(theirs["start"], theirs["valley"], theirs["end"],
                                                           strict=True))
    assert [f"{float(d):.2f}%" for d in theirs["max drawdown"]] == [row[4] for row in rows]
    assert [f"{int(d):,}" for d in theirs["days"]] == [row[5] for row in rows]
    print("\n" + STRATEGY + " five worst drawdowns:\n" + mine.to_string())
