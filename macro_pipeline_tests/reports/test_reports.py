"""HTML reports: every section with the stored numbers, edge cases said in words, clear errors,
and a real headless Chromium that draws every chart with no network and no console error."""

from __future__ import annotations

import os
import shutil
import socket
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.backtest.months import run_months, stitched_equity
from macro_pipeline.backtest.one_off import run_backtest
from macro_pipeline.engine.metrics import METRIC_KEYS
from macro_pipeline.reports import (
    ReportWriteError,
    UnknownSubject,
    write_comparison,
    write_run_report,
    write_strategy_report,
)
from macro_pipeline.reports import server as report_server
from macro_pipeline.reports.data import load_run_subject, load_strategy_subject, resolve_subject
from macro_pipeline.strategies.config import StrategyConfig
from macro_pipeline.warehouse.pit import PointInTimeReader
from macro_pipeline.warehouse.runs import load_run
from macro_pipeline.warehouse.strategies import register_strategy
from macro_pipeline_tests.conftest import cli_runner, demo_with_strategies

RUN_SECTIONS = {"summary", "equity", "monthly-returns", "rolling", "exposure", "turnover", "stress", "tearsheet",
                "metrics", "trades", "costs", "lineage"}
SCALARS = [k for k in METRIC_KEYS if k != "monthly_returns"]
CARRY_MONTHS = ["2015-01-01", "2015-02-01", "2015-03-01", "2015-04-01"]


class Page(HTMLParser):
    """What the tests read from a report: tag balance, sections, charts, data-* values, text."""

    VOID = {"meta", "br", "hr", "img", "link", "input", "area", "base", "col", "embed", "source", "wbr"}

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.sections: list[str] = []
        self.charts: list[str] = []
        self.tags: dict[str, list[dict]] = {}
        self.metric: dict[str, str] = {}
        self.month: dict[str, str] = {}
        self.year: dict[str, str] = {}
        self.lineage: dict[str, str] = {}
        self._lineage_key: str | None = None
        self.text: list[str] = []
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed {self.stack}")

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.setdefault(tag, []).append(a)
        if tag == "section":
            self.sections.append(a["id"])
        if tag == "svg" and "chart" in (a.get("class") or ""):
            self.charts.append(a["data-chart"])
        if "data-metric" in a:
            self.metric.setdefault(a["data-metric"], a["data-value"])
        if "data-month" in a:
            self.month[a["data-month"]] = a["data-value"]
        if "data-year" in a:
            self.year[a["data-year"]] = a["data-value"]
        self._lineage_key = a.get("data-lineage")
        if tag not in self.VOID:  # <x/> arrives as start + end (handle_startendtag)
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._lineage_key:
            self.lineage[self._lineage_key] = data
            self._lineage_key = None

    @property
    def body(self) -> str:
        return " ".join(" ".join(self.text).split())


def read(path: Path) -> Page:
    page = Page(path.read_text(encoding="utf-8"))
    assert page.errors == [], page.errors[:5]
    return page


def assert_self_contained(page: Page) -> None:
    for tag in ("script", "link", "img", "iframe", "object", "embed"):
        for attrs in page.tags.get(tag, []):
            for key in ("src", "href", "data"):
                assert not str(attrs.get(key, "")).lower().startswith(("http:", "https:", "//")), (tag, attrs)
    assert "script" not in page.tags and "link" not in page.tags  # no script at all, styles inline


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo(databases):
    engine = demo_with_strategies(databases)
    # funding never reaches 1% per settlement in the demo data: a strategy that never trades
    register_strategy(engine, StrategyConfig("carry-never", "funding_carry",
                                             {"mode": "simple", "entry_threshold": 0.01, "exit_threshold": 0.0}))
    return engine


@pytest.fixture(scope="module")
def runs(demo):
    out = {
        "main": run_backtest(demo, "ema-us-eq20", "2014-01-01", "2016-12-31"),
        "clean": run_backtest(demo, "ema-us-eq20", "2014-01-01", "2016-12-31", clean=True),
        "negative": run_backtest(demo, "bh-us-eq20", "2008-01-01", "2008-12-31"),
        "one_day": run_backtest(demo, "ema-us-eq20", "2016-03-01", "2016-03-01"),
        "no_trades": run_backtest(demo, "carry-never", "2015-02-01", "2015-03-31"),
    }
    months = run_months(demo, "carry-simple", CARRY_MONTHS)
    assert [m.status for m in months] == ["stored"] * 4
    ids = {k: v.run_id for k, v in out.items()}
    ids["months"] = [m.run_id for m in months]
    ids["month_snapshots"] = [m.snapshot_id for m in months]
    return ids


@pytest.fixture
def run_cli(demo, monkeypatch, capsys, tmp_path):
    return cli_runner(demo, monkeypatch, capsys, tmp_path)


# --------------------------------------------------------------------------- one run


def test_run_report_has_every_section_with_the_stored_numbers(demo, runs, tmp_path):
    run_id = runs["main"]
    path = write_run_report(demo, run_id, tmp_path)
    assert path == (tmp_path / f"run-{run_id}.html").resolve()
    page = read(path)
    assert_self_contained(page)
    assert RUN_SECTIONS <= set(page.sections)
    assert sorted(page.charts) == sorted(["equity", "rolling", "exposure", "turnover", "worst-drawdowns", "yearly",
                                          "monthly-distribution", "distribution", "daily-returns", "quantiles",
                                          "vol-matched", "rolling-beta", "holding", "costs"])
    rec = load_run(demo, run_id)
    # the full metrics table: every compute_metrics key, with the stored value
    assert set(page.metric) == set(SCALARS)
    for k in SCALARS:
        stored = rec.metrics.get(k)
        if stored is None:
            assert page.metric[k] == ""
        else:
            assert float(page.metric[k]) == pytest.approx(stored, rel=1e-12, abs=1e-15), k
    # the heatmap equals the engine's monthly table stored on the run; the year total compounds it
    stored_months = rec.meta["monthly_returns"]
    for year, months in stored_months.items():
        for month, value in months.items():
            key = f"{year}-{int(month):02d}"
            if value is None:
                assert page.month[key] == ""
            else:
                assert float(page.month[key]) == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert float(page.year["2015"]) == pytest.approx(
        np.prod([1 + v for v in stored_months["2015"].values() if v is not None]) - 1, rel=1e-9)
    assert float(page.year["2015"]) == pytest.approx(
        rec.equity["equity"].loc["2015"].iloc[-1] / rec.equity["equity"].loc[:"2014"].iloc[-1] - 1, rel=1e-9)
    # lineage block
    m = rec.meta
    assert page.lineage["run id"] == run_id
    assert page.lineage["strategy id"] == "ema-us-eq20"
    assert page.lineage["signal snapshot id"] == m["signal_snapshot_id"]
    assert page.lineage["system_as_of (watermark)"] == pd.Timestamp(m["system_as_of"]).isoformat()
    assert page.lineage["engine version"] == m["engine_version"]
    assert page.lineage["orchestrator run id"].startswith("none")
    assert '"fast": 20' in page.lineage["strategy params"] and '"transaction_cost_bps": 5.0' in page.body
    # benchmark, trade statistics, costs and the clean counterpart's cost drag, in words and numbers
    body = page.body
    # the default benchmark is the strategy's own universe held; SPX on request, labelled honestly
    assert "Benchmark: equal-weight buy-and-hold of US_EQ20, rebalanced monthly, no costs (total return" in body
    assert "Against the benchmark over the common window (2014-01-03 .. 2016-12-30, 755 sessions)" in body
    spx_body = read(write_run_report(demo, run_id, tmp_path / "spx.html", "SPX")).body
    assert "SPX (price index, excludes dividends), rebased" in spx_body
    spx = PointInTimeReader(demo, "2017-01-10", m["system_as_of"]).price_panel(["SPX"], "2014-01-01", "2016-12-31")["SPX"]
    spx_total = spx.dropna().iloc[-1] / spx.dropna().iloc[0] - 1
    assert f"benchmark total return (2014-01-03 .. 2016-12-30, 755 sessions) {100 * spx_total:.2f}%" in spx_body
    assert f"win rate (share of round trips with P&L > 0) {100 * rec.metrics['win_rate']:.2f}%" in body
    assert f"trading costs paid {m['summary']['costs_paid']:,.2f}" in body
    assert "90th percentile" in body and "Holding periods" in body
    clean = load_run(demo, runs["clean"])
    drag = 100 * (clean.metrics["total_return"] - rec.metrics["total_return"])
    assert f"{runs['clean'][:12]}" in body and f"{drag:.2f} pp" in body
    assert "Read this first" not in body  # nothing unusual about this run


def test_carry_and_costs_from_the_ledger_equal_the_stored_totals(demo, runs):
    # carry-simple shorts the perpetual: funding is its only carry (risk-free 0, no borrow fee, no
    # dividends), so the cash ledger's carry must add up to the funding total the engine stored
    s = load_strategy_subject(demo, "carry-simple")
    assert s.funding_paid != 0
    assert s.carry_daily.sum() == pytest.approx(s.funding_paid, rel=1e-9)
    assert s.costs_daily.sum() == pytest.approx(s.costs_paid, rel=1e-9)
    one = load_run_subject(demo, runs["months"][1])
    summary = load_run(demo, runs["months"][1]).meta["summary"]
    assert one.carry_daily.sum() == pytest.approx(summary["funding_paid"], rel=1e-9)
    # funding and costs are stored per session too (sql/006): the same numbers, day by day
    pd.testing.assert_series_equal(s.funding_daily, s.carry_daily, check_names=False, rtol=1e-9, atol=1e-6)
    assert s.equity["costs"].sum() == pytest.approx(s.costs_paid, rel=1e-9)


def test_strategy_report_stitches_the_monthly_runs(demo, runs, tmp_path):
    path = write_strategy_report(demo, "carry-simple", tmp_path / "nested" / "carry.html")
    page = read(path)
    assert_self_contained(page)
    assert RUN_SECTIONS <= set(page.sections)
    body = page.body
    for run_id, snapshot_id in zip(runs["months"], runs["month_snapshots"], strict=True):
        assert run_id in body and snapshot_id in body
    # total return of the history = the monthly runs' stored returns compounded
    monthly = [load_run(demo, r).metrics["total_return"] for r in runs["months"]]
    assert float(page.metric["total_return"]) == pytest.approx(np.prod([1 + r for r in monthly]) - 1, rel=1e-9)
    s = load_strategy_subject(demo, "carry-simple")
    pd.testing.assert_series_equal(s.equity["equity"], stitched_equity(demo, "carry-simple"), check_names=False,
                                   check_freq=False)
    assert len(s.round_trips) == sum(len(load_run(demo, r).round_trips) for r in runs["months"])
    assert "4 monthly pipeline runs stitched" in body and 'id="monthly-runs"' in path.read_text()


# --------------------------------------------------------------------------- edge cases


def test_a_run_with_no_trades_says_so(demo, runs, tmp_path):
    page = read(write_run_report(demo, runs["no_trades"], tmp_path))
    assert "No trades: this run never traded" in page.body
    assert "no fill in this window" in page.body
    assert "holding" not in page.charts and "equity" in page.charts
    assert page.metric["trade_count"] == "0.0" and page.metric["win_rate"] == ""


def test_a_one_session_run_says_so(demo, runs, tmp_path):
    page = read(write_run_report(demo, runs["one_day"], tmp_path))
    body = page.body
    assert "covers a single session (2016-03-01)" in body
    assert "a one-session run cannot trade" in body
    assert "Rolling 12-month statistics need 252 sessions; this run has 1" in body
    assert "rolling" not in page.charts and {"equity", "exposure", "turnover", "costs"} <= set(page.charts)
    assert page.metric["sharpe"] == "" and "n/a" in body


def test_a_losing_run_says_so(demo, runs, tmp_path):
    page = read(write_run_report(demo, runs["negative"], tmp_path))
    total = load_run(demo, runs["negative"]).metrics["total_return"]
    assert total < 0
    assert f"Negative total return: this run lost {-100 * total:.2f}%" in page.body
    assert 'class="neg"' in (tmp_path / f"run-{runs['negative']}.html").read_text()


# --------------------------------------------------------------------------- comparison


def test_comparison_of_runs_and_a_strategy_history(demo, runs, tmp_path):
    path = write_comparison(demo, [runs["main"], runs["clean"][:10], "carry-simple"], tmp_path / "cmp.html")
    page = read(path)
    assert_self_contained(page)
    assert {"equity", "metrics", "cost-drag", "lineage"} <= set(page.sections)
    assert page.charts == ["overlay"]
    real, clean = load_run(demo, runs["main"]).metrics, load_run(demo, runs["clean"]).metrics
    drag = 100 * (clean["total_return"] - real["total_return"])
    assert f"{drag:.2f} pp" in page.body and drag > 0  # costs cost something
    assert "carry-simple full history" in page.body and "a pipeline history has no clean counterpart" in page.body


def test_ids_resolve_to_runs_or_strategies_with_clear_errors(demo, runs):
    assert resolve_subject(demo, runs["main"][:8]).ident == runs["main"]
    assert resolve_subject(demo, "carry-simple").kind == "strategy"
    with pytest.raises(UnknownSubject, match="neither a stored run id nor a strategy id"):
        resolve_subject(demo, "no-such-thing")
    with pytest.raises(UnknownSubject, match="has no monthly pipeline runs yet"):
        resolve_subject(demo, "rsi-us-eq20")
    # a strategy id that is also a run id prefix is ambiguous
    register_strategy(demo, StrategyConfig(runs["negative"][:8], "buy_and_hold", {}))
    with pytest.raises(UnknownSubject, match="ambiguous: it is a strategy id and matches run"):
        resolve_subject(demo, runs["negative"][:8])


# --------------------------------------------------------------------------- bad input


def test_unknown_run_and_unwritable_path_are_one_line_errors(run_cli, runs, tmp_path):
    code, _, err = run_cli("report", "0" * 32)
    assert code == 2 and err == f"error: no backtest run {'0' * 32!r} (see `macro-pipeline runs list`)\n"
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = run_cli("report", runs["main"], "--out", str(blocker / "r.html"))
    assert code == 2 and err.startswith("error: cannot write report to") and "is not a directory" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    code, _, err = run_cli("--verbose", "report", runs["main"], "--out", str(blocker / "r.html"))
    assert code == 2 and "Traceback" in err
    code, _, err = run_cli("report", runs["main"], "--benchmark", "NOPE")
    assert code == 2 and err == "error: unknown benchmark instrument 'NOPE' (not in the warehouse's instruments)\n"
    code, _, err = run_cli("compare", runs["main"], "nope")
    assert code == 2 and "'nope' is neither a stored run id nor a strategy id" in err
    code, _, err = run_cli("report")
    assert code == 2 and "report needs a RUN_ID" in err


def test_a_failed_write_leaves_no_file(demo, runs, tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_text", refuse)
    with pytest.raises(ReportWriteError, match="cannot write report to .*: Permission denied"):
        write_run_report(demo, runs["one_day"], tmp_path / "r.html")
    assert list(tmp_path.iterdir()) == []


def test_cli_report_default_dir_bulk_progress_and_compare_html(run_cli, runs, tmp_path):
    code, out, _ = run_cli("report", runs["one_day"])
    expected = tmp_path / "home" / "reports" / f"run-{runs['one_day']}.html"
    assert code == 0 and out == f"wrote {expected}\n" and expected.exists()
    code, out, err = run_cli("report", runs["negative"], "--strategy", "carry-simple", "--out", str(tmp_path / "bulk"))
    assert code == 0 and "reports: 100%" in err and "2/2" in err
    assert sorted(p.name for p in (tmp_path / "bulk").iterdir()) == sorted(
        [f"run-{runs['negative']}.html", "strategy-carry-simple.html"])
    code, out, _ = run_cli("compare", runs["main"], "carry-simple", "--html", str(tmp_path / "c.html"))
    assert code == 0 and "carry-simple full history" in out and out.endswith(f"wrote {tmp_path / 'c.html'}\n")


# --------------------------------------------------------------------------- a real browser


def _chromium() -> str | None:
    for name in (os.environ.get("MACRO_PIPELINE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    return None


def test_chromium_draws_every_chart_offline_without_console_errors(demo, runs, tmp_path):
    browser_path = _chromium()
    if browser_path is None:
        reason = "no chromium executable on PATH (Debian: apt-get install chromium; .ci/run installs it)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import (
        sync_playwright,  # the test extra installs it; a missing one fails
    )

    pages = [write_run_report(demo, runs["main"], tmp_path), write_strategy_report(demo, "carry-simple", tmp_path),
             write_run_report(demo, runs["one_day"], tmp_path),
             write_comparison(demo, [runs["main"], runs["clean"], "carry-simple"], tmp_path / "cmp.html")]
    # the tearsheet's charts (quantstats parity) are among those every page is checked for (the
    # carry history here is under a year: no full rolling window)
    assert TEARSHEET_CHARTS <= set(read(pages[0]).charts)
    assert TEARSHEET_CHARTS - {"rolling", "rolling-beta"} <= set(read(pages[1]).charts)
    port = _free_port()
    served, _ = report_server.start(tmp_path, port)  # as `macro-pipeline dev` serves the reports directory
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, headless=True)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
            requests: list[str] = []

            def only_the_file(route):
                requests.append(route.request.url)
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    route.abort()

            context.route("**/*", only_the_file)
            for path in pages:
                page = context.new_page()
                problems: list[str] = []
                page.on("console", lambda m, problems=problems: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e, problems=problems: problems.append(str(e)))
                page.goto(path.as_uri(), wait_until="load")
                expected = read(path).charts
                boxes = page.eval_on_selector_all("svg.chart", """els => els.map(e => {
                    const r = e.getBoundingClientRect();
                    const drawn = [...e.querySelectorAll('path, rect, use')].filter(x => {
                        const b = x.getBoundingClientRect(); return b.width > 0 || b.height > 0; }).length;
                    return [e.dataset.chart, r.width, r.height, drawn]; })""")
                assert [b[0] for b in boxes] == expected and len(expected) >= 1, path.name
                for name, width, height, drawn in boxes:
                    assert width > 300 and height > 100 and drawn > 5, (path.name, name, width, height, drawn)
                # the comparison's tables (strategies as rows) and the stress tables fit the page
                overflow = page.eval_on_selector_all("table.side-by-side, table.stress, table.relative", """els =>
                    els.map(e => [e.className, e.parentElement.scrollWidth - e.parentElement.clientWidth])
                       .filter(x => x[1] > 1)""")
                assert overflow == [], (path.name, overflow)
                if path.name.startswith("strategy-"):
                    page.click("#monthly-runs summary")
                    assert page.is_visible("table.monthly-runs")
                assert problems == [], (path.name, problems)
                page.close()
            # the strategy report as the Dagster UI's link opens it: over HTTP from the report server
            url = f"http://127.0.0.1:{port}/{pages[1].name}"
            _wait_listening(port)
            web = browser.new_context(viewport={"width": 1200, "height": 900})
            fetched: list[str] = []
            web.route("**/*", lambda route: (fetched.append(route.request.url), route.continue_()))
            page = web.new_page()
            problems = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            assert page.goto(url, wait_until="load").status == 200
            boxes = page.eval_on_selector_all("svg.chart", """els => els.map(e => {
                const r = e.getBoundingClientRect(); return [e.dataset.chart, r.width, r.height]; })""")
            assert [b[0] for b in boxes] == read(pages[1]).charts
            assert all(w > 300 and h > 100 for _, w, h in boxes) and problems == [] and fetched == [url]
            web.close()
        finally:
            browser.close()
            served.terminate()
            served.wait(10)
    assert requests == [p.as_uri() for p in pages]  # the file itself, nothing else


TEARSHEET_CHARTS = {"yearly", "monthly-distribution", "distribution", "daily-returns", "quantiles", "vol-matched",
                    "rolling-beta", "worst-drawdowns", "rolling"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answers on 127.0.0.1:{port}")
