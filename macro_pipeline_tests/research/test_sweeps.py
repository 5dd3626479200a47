"""Sweeps on the real demo warehouse: each configuration equals its own backtest, lineage and
storage, reproduction as of a watermark after revisions, walk-forward choices immune to data
after their training window, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from macro_pipeline import cli
from macro_pipeline.backtest.one_off import backtest_config, engine_inputs, strategy_view
from macro_pipeline.engine import simulate
from macro_pipeline.research.grid import GridError
from macro_pipeline.research.sweep import SweepSpec, compute_sweep, run_sweep
from macro_pipeline.settings import DATABASE_URL_ENV
from macro_pipeline.strategies.config import build
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline.warehouse.sweeps import load_returns, load_sweep
from macro_pipeline_tests.conftest import demo_with_strategies


@pytest.fixture(scope="module")
def demo(databases):
    return demo_with_strategies(databases)


def small_spec(**kw) -> SweepSpec:
    base = dict(rebalance="monthly")
    base.update(kw)
    return SweepSpec.build("ema_crossover", {"fast": "10,20", "slow": "100..150:50"}, "2005-01-01", "2008-12-31",
                           **base)


def test_each_configuration_equals_its_own_backtest(demo):
    spec = small_spec()
    out = compute_sweep(demo, spec)
    assert out.returns.shape == (len(out.sessions), 4)
    assert out.labels == ["fast=10,slow=100", "fast=10,slow=150", "fast=20,slow=100", "fast=20,slow=150"]
    for k, cfg in enumerate(spec.configs()):
        view = strategy_view(demo, cfg, spec.end, out.system_as_of)
        w = build(cfg).weights(view, since=spec.start).loc[: spec.end]
        inputs = engine_inputs(view, cfg, list(w.columns), spec.start, spec.end)
        res = simulate(inputs.pop("prices"), w, backtest_config(cfg, spec.start, spec.end), **inputs)
        np.testing.assert_array_equal(out.returns[:, k], res.returns.to_numpy())
        for m in ("sharpe", "cagr", "max_drawdown", "sortino", "annual_volatility"):
            assert out.metrics[m][k] == pytest.approx(res.metrics[m], rel=1e-12, abs=0), m
    best = int(np.nanargmax(out.metrics["sharpe"]))
    assert out.best == best and out.stats["best_label"] == out.labels[best]
    assert 0.0 <= out.stats["dsr"] <= 1.0 and 0.0 <= out.stats["pbo"] <= 1.0
    assert out.stats["n_trials"] == 4 and len(out.stats["pbo_logits"]) == 12870


def test_stored_with_lineage_and_a_rerun_is_checked_bit_for_bit(demo):
    spec = small_spec(name="small")
    first = run_sweep(demo, spec)
    assert first.new and not first.reproduced
    sw = load_sweep(demo, first.sweep_id)
    assert sw.meta["kind"] == "ema_crossover" and sw.meta["n_configs"] == 4 and sw.meta["name"] == "small"
    assert sw.meta["input_watermarks"] == first.input_watermarks
    assert sw.meta["system_as_of"] == first.system_as_of.to_pydatetime()
    assert list(sw.configs["label"]) == first.labels  # one metrics row per configuration
    np.testing.assert_array_equal(sw.configs["sharpe"].to_numpy(), first.metrics["sharpe"])
    assert sw.meta["stats"]["dsr"] == first.stats["dsr"] and sw.meta["stats"]["pbo"] == first.stats["pbo"]
    assert load_returns(demo, first.sweep_id).tobytes() == np.ascontiguousarray(first.returns).tobytes()
    assert list(sw.sessions) == list(first.sessions)
    again = run_sweep(demo, spec)
    assert again.sweep_id == first.sweep_id and not again.new and again.reproduced
    with demo.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM sweeps WHERE sweep_id = :s"),
                            {"s": first.sweep_id}).scalar() == 1
    other = run_sweep(demo, small_spec(clean=True))  # other settings: another sweep
    assert other.sweep_id != first.sweep_id


def test_an_invalid_grid_is_refused_before_anything_is_read():
    nowhere = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:1/nothing")  # any read would fail
    with pytest.raises(GridError, match="refuses 1 of 2 combination"):
        spec = SweepSpec.build("ema_crossover", {"fast": "10,100", "slow": "100"}, "2005-01-01", "2008-12-31")
        run_sweep(nowhere, spec)


def _perturbed_closes(engine, start: str, end: str, factor: float) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = pd.DataFrame(conn.execute(sa.text(
            "SELECT DISTINCT ON (instrument_id, obs_date) instrument_id, obs_date, close FROM prices "
            "WHERE instrument_id IN (SELECT instrument_id FROM universe_membership WHERE universe = 'US_EQ20') "
            "AND obs_date BETWEEN :a AND :b ORDER BY instrument_id, obs_date, known_at DESC, recorded_at DESC"),
            {"a": start, "b": end}).mappings().all())
    rows["close"] = rows["close"] * factor
    rows["obs_date"] = pd.to_datetime(rows["obs_date"]).dt.strftime("%Y-%m-%d")
    return rows


def test_walk_forward_choices_ignore_data_after_their_training_and_system_as_of_reproduces(demo):
    spec = SweepSpec.build("ema_crossover", {"fast": "10,20,40", "slow": "100,150"}, "2000-01-01", "2005-12-30",
                           rebalance="monthly", walk_forward="train=24M,test=12M")
    first = run_sweep(demo, spec)
    assert [f["test_start"].isoformat()[:4] for f in first.folds] == ["2002", "2003", "2004", "2005"]
    # each fold's run continues from the previous one: the stitched equity has no gap or restart
    wf = first.walk_forward
    assert len(wf["sessions"]) == sum(1 for d in first.sessions if d >= pd.Timestamp(first.folds[0]["test_start"]))
    # perturb every US_EQ20 close of June 2003 (corrections: known when the closes were)
    cut = pd.Timestamp("2003-06-02")
    assert ingest(demo, "prices", _perturbed_closes(demo, "2003-06-02", "2003-06-30", 1.07),
                  correction=True).revisions_added > 0
    moved = run_sweep(demo, spec)
    assert moved.sweep_id != first.sweep_id
    before = first.sessions < cut
    np.testing.assert_array_equal(moved.returns[before], first.returns[before])
    assert not np.array_equal(moved.returns[~before], first.returns[~before])  # the perturbation bites
    for a, b in zip(first.folds, moved.folds, strict=True):
        if pd.Timestamp(a["train_end"]) < cut:  # folds 0 and 1: trained before the perturbation
            assert a["chosen_config"] == b["chosen_config"]
            np.testing.assert_array_equal(a["is_metric"], b["is_metric"])
        else:
            assert not np.array_equal(a["is_metric"], b["is_metric"])
    # as of the first sweep's watermark: the same id and the same bits, after the corrections
    again = run_sweep(demo, spec, system_as_of=first.system_as_of)
    assert again.sweep_id == first.sweep_id and again.reproduced
    np.testing.assert_array_equal(again.returns, first.returns)
    np.testing.assert_array_equal(again.walk_forward["equity"], first.walk_forward["equity"])
    assert [f["chosen_config"] for f in again.folds] == [f["chosen_config"] for f in first.folds]


def test_cli_sweep_json_and_refusals(demo, monkeypatch, capsys):
    monkeypatch.setenv(DATABASE_URL_ENV, demo.url.render_as_string(hide_password=False))
    code = cli.main(["sweep", "--kind", "ema_crossover", "--grid", "fast=10,20", "--grid", "bogus=1",
                     "--start", "2005-01-01", "--end", "2006-12-31"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown parameter 'bogus' for kind 'ema_crossover'" in err
    code = cli.main(["sweep", "--kind", "ema_crossover", "--grid", "slow=300..200:10",
                     "--start", "2005-01-01", "--end", "2006-12-31"])
    assert code == 2 and "empty range 300..200" in capsys.readouterr().err
    code = cli.main(["sweep", "--kind", "ema_crossover", "--grid", "fast=10,20", "--grid", "slow=100",
                     "--rebalance", "monthly", "--start", "2005-01-01", "--end", "2006-12-31", "--json"])
    body = json.loads(capsys.readouterr().out)
    assert code == 0 and body["n_configs"] == 2 and body["new"]
    assert set(body["stats"]) >= {"dsr", "pbo", "min_backtest_years", "n_trials"}
    assert cli.main(["sweeps", "show", body["sweep_id"][:10], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [c["label"] for c in shown["configs"]] == ["fast=10,slow=100", "fast=20,slow=100"]


def test_shared_view_memos_never_cross_a_vintage_epoch(demo):
    # a revision known later than its first print starts a new vintage epoch: the shared view's
    # memoised panels and features must give, bit for bit, what a plain view gives
    from macro_pipeline.research.sweep import sweep_view

    revision = pd.DataFrame({"instrument_id": ["MSFT"], "obs_date": ["2007-03-01"], "close": [1.0],
                             "known_at": ["2007-06-01T21:00:00Z"]})
    assert ingest(demo, "prices", revision).revisions_added == 1
    spec = SweepSpec.build("ema_crossover", {"fast": "5,10", "slow": "20,40"}, "2007-01-01", "2007-12-31")
    cfgs = spec.configs()
    shared = sweep_view(demo, cfgs[0], spec.end, None)
    for cfg in cfgs:
        strategy = build(cfg)
        got = strategy.weights(shared, since=spec.start)
        assert strategy.epochs > 1
        plain = strategy_view(demo, cfg, spec.end, shared.system_as_of)
        pd.testing.assert_frame_equal(got, build(cfg).weights(plain, since=spec.start), check_exact=True)
    assert len(shared.feature_cache) > 0


def test_report_is_self_contained_and_chromium_draws_it(demo, tmp_path):
    import re
    import shutil

    from macro_pipeline.reports.files import write_sweep_report

    spec = SweepSpec.build("ema_crossover", {"fast": "10,20", "slow": "100,150"}, "2000-01-01", "2004-12-31",
                           rebalance="monthly", walk_forward="train=24M,test=12M", name="report-check")
    out = run_sweep(demo, spec)
    path = write_sweep_report(demo, "report-check", tmp_path)
    assert path.name == f"sweep-{out.sweep_id[:16]}.html"
    html = path.read_text()
    assert "<script" not in html and not re.search(r"""(src|href)=["']?https?:""", html)
    # the heatmap holds every configuration's Sharpe at full precision
    for k, label in enumerate(out.labels):
        assert f'data-cell="{label}" data-value="{float(out.metrics["sharpe"][k])!r}"' in html
    assert out.sweep_id in html and out.system_as_of.isoformat() in html
    charts = re.findall(r'data-chart="([^"]+)"', html)
    assert charts == ["is-oos", "cscv-logits", "walk-forward"]
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser_path is None:
        pytest.skip("no chromium executable on PATH (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, headless=True)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
            requests: list[str] = []
            context.route("**/*", lambda route: (requests.append(route.request.url),
                                                 route.continue_() if route.request.url.startswith("file://")
                                                 else route.abort()))
            page = context.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(path.as_uri(), wait_until="load")
            boxes = page.eval_on_selector_all("svg.chart", """els => els.map(e => {
                const r = e.getBoundingClientRect();
                const drawn = [...e.querySelectorAll('path, rect, use')].filter(x => {
                    const b = x.getBoundingClientRect(); return b.width > 0 || b.height > 0; }).length;
                return [e.dataset.chart, r.width, r.height, drawn]; })""")
            assert [b[0] for b in boxes] == charts
            for name, width, height, drawn in boxes:
                assert width > 300 and height > 100 and drawn > 5, (name, width, height, drawn)
            assert page.is_visible("table.sweep-grid") and page.is_visible("table.folds")
            assert problems == []
        finally:
            browser.close()
    assert requests == [path.as_uri()]
