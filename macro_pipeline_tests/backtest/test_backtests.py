"""One-off backtests: snapshot lineage, storage, reproducibility as of a watermark, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from macro_pipeline import cli
from macro_pipeline.backtest.one_off import run_backtest
from macro_pipeline.settings import DATABASE_URL_ENV
from macro_pipeline.strategies.config import StrategyConfig
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline.warehouse.runs import list_runs, load_run
from macro_pipeline.warehouse.snapshots import read_snapshot
from macro_pipeline.warehouse.strategies import register_strategy
from macro_pipeline_tests.conftest import demo_with_strategies, table_state


@pytest.fixture(scope="module")
def demo(databases):
    return demo_with_strategies(databases)


@pytest.fixture
def run_cli(demo, monkeypatch, capsys):
    url = demo.url.render_as_string(hide_password=False)
    monkeypatch.setenv(DATABASE_URL_ENV, url)

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def test_lineage_round_trip_run_to_snapshot_to_rows(demo):
    out = run_backtest(demo, "bh-us-eq20", "2012-01-01", "2013-12-31")
    rec = load_run(demo, out.run_id)
    assert rec.meta["signal_snapshot_id"] == out.snapshot_id
    assert rec.meta["system_as_of"] == out.system_as_of.to_pydatetime()
    snap = read_snapshot(demo, out.snapshot_id)
    assert snap.strategy_id == "bh-us-eq20" and snap.window_start.isoformat() == "2012-01-03"
    # monthly equal weight over the 20 members: every decision row sums to 1
    np.testing.assert_allclose(snap.weights.sum(axis=1), 1.0)
    assert len(rec.equity) == len(out.result.equity)
    np.testing.assert_array_equal(rec.equity["equity"].to_numpy(), out.result.equity.to_numpy())
    assert rec.metrics["total_return"] == pytest.approx(out.metrics["total_return"], rel=0, abs=0)


def test_same_inputs_reuse_the_snapshot_and_a_rerun_supersedes(demo):
    a = run_backtest(demo, "rsi-us-eq20", "2014-01-01", "2014-06-30")
    b = run_backtest(demo, "rsi-us-eq20", "2014-01-01", "2014-06-30")
    assert a.snapshot_id == b.snapshot_id and not b.snapshot_new
    assert b.superseded == a.run_id
    current = list_runs(demo, "rsi-us-eq20", current_only=True)
    assert list(current["run_id"]) == [b.run_id]


def test_rerun_as_of_a_stored_watermark_reproduces_it_after_revisions(demo):
    first = run_backtest(demo, "ema-us-eq20", "2016-01-01", "2016-12-31")
    # later revisions of data inside the window, and new data after it
    revised = pd.DataFrame({"instrument_id": ["AAPL", "MSFT"], "obs_date": ["2016-06-01", "2016-09-01"],
                            "close": [1.0, 1.0]})
    assert ingest(demo, "prices", revised, correction=True).revisions_added == 2
    moved = run_backtest(demo, "ema-us-eq20", "2016-01-01", "2016-12-31")
    assert moved.snapshot_id != first.snapshot_id
    assert not np.array_equal(moved.result.equity.to_numpy(), first.result.equity.to_numpy())
    again = run_backtest(demo, "ema-us-eq20", "2016-01-01", "2016-12-31", system_as_of=first.system_as_of)
    assert again.snapshot_id == first.snapshot_id
    assert again.reproduction and again.reproduces == moved.run_id and again.superseded is None
    np.testing.assert_array_equal(again.result.equity.to_numpy(), first.result.equity.to_numpy())
    assert {k: v for k, v in again.metrics.items() if k != "monthly_returns"} == pytest.approx(
        {k: v for k, v in first.metrics.items() if k != "monthly_returns"}, rel=0, abs=0, nan_ok=True)


def test_a_reproduction_as_of_an_old_watermark_never_replaces_the_current_run(demo, run_cli):
    # regression: `backtest --system-as-of TS` with TS older than the data became the current run,
    # replacing the run on newer data
    window = ("--strategy", "ema-us-eq20", "--start", "2017-01-01", "--end", "2017-06-30")
    code, out, _ = run_cli("backtest", *window, "--json")
    first = json.loads(out)
    assert code == 0 and first["reproduction"] is False and first["reproduces"] is None
    revised = pd.DataFrame({"instrument_id": ["AAPL"], "obs_date": ["2017-03-01"], "close": [1.0],
                            "known_at": ["2017-03-02T15:00:00Z"]})
    assert ingest(demo, "prices", revised).revisions_added == 1
    code, out, _ = run_cli("backtest", *window, "--system-as-of", first["system_as_of"], "--json")
    repro = json.loads(out)
    assert code == 0 and repro["reproduction"] is True and repro["reproduces"] == first["run_id"]
    assert repro["signal_snapshot_id"] == first["signal_snapshot_id"]
    a, b = load_run(demo, first["run_id"]), load_run(demo, repro["run_id"])
    np.testing.assert_array_equal(b.equity.to_numpy(), a.equity.to_numpy())  # bit for bit
    assert b.meta["reproduction"] and b.meta["reproduces"] == first["run_id"] and b.meta["superseded_by"] is None
    assert a.meta["superseded_by"] is None and not a.meta["reproduction"]
    current = list_runs(demo, "ema-us-eq20", current_only=True)
    assert first["run_id"] in set(current["run_id"]) and repro["run_id"] not in set(current["run_id"])
    code, out, _ = run_cli("runs", "list", "--strategy", "ema-us-eq20")
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert lines[first["run_id"]].rstrip().endswith("current")
    assert lines[repro["run_id"]].rstrip().endswith(f"reproduction of {first['run_id'][:12]}")
    code, out, _ = run_cli("runs", "list", "--strategy", "ema-us-eq20", "--current")
    assert repro["run_id"] not in out and first["run_id"] in out

    # a run as of now (no --system-as-of) is the current result: it supersedes as before, and the
    # reproduction stays what it was
    now = run_backtest(demo, "ema-us-eq20", "2017-01-01", "2017-06-30")
    assert not now.reproduction and now.superseded == first["run_id"]
    assert not np.array_equal(now.result.equity.to_numpy(), a.equity["equity"].to_numpy())  # sees the revision
    runs = list_runs(demo, "ema-us-eq20").set_index("run_id")
    assert runs.loc[first["run_id"], "superseded_by"] == now.run_id
    assert pd.isna(runs.loc[repro["run_id"], "superseded_by"]) and runs.loc[repro["run_id"], "reproduction"]


def test_a_watermark_nothing_was_recorded_after_is_not_a_reproduction(demo):
    # it reads exactly what a run made now reads, so it is the current result
    first = run_backtest(demo, "rsi-us-eq20", "2015-01-01", "2015-03-31")
    again = run_backtest(demo, "rsi-us-eq20", "2015-01-01", "2015-03-31", system_as_of=first.system_as_of)
    assert not again.reproduction and again.superseded == first.run_id


def test_pipeline_months_refuse_an_old_watermark(demo):
    from macro_pipeline.backtest.months import run_months

    with pytest.raises(ValueError, match="pipeline months of carry-simple are current results"):
        run_months(demo, "carry-simple", ["2015-01-01"], system_as_of="2000-01-01T00:00:00Z")


def test_clean_mode_has_no_costs_and_beats_realistic(demo):
    real = run_backtest(demo, "ema-us-eq20", "2018-01-01", "2018-12-31")
    clean = run_backtest(demo, "ema-us-eq20", "2018-01-01", "2018-12-31", clean=True)
    assert clean.result.costs.sum() == 0 and real.result.costs.sum() > 0
    assert clean.result.equity.iloc[-1] > real.result.equity.iloc[-1]
    assert real.snapshot_id == clean.snapshot_id  # same signals, different execution


def test_window_outside_the_data_is_a_clear_error(demo):
    before = table_state(demo)
    with pytest.raises(ValueError, match="window ends 1975-12-31, before"):
        run_backtest(demo, "bh-us-eq20", "1970-01-01", "1975-12-31")
    with pytest.raises(ValueError, match="universe 'US_EQ20' has no members known by 1989-12-29"):
        run_backtest(demo, "bh-us-eq20", "1989-01-01", "1989-12-29")
    with pytest.raises(ValueError, match="unknown strategy"):
        run_backtest(demo, "no-such-strategy", "2010-01-01", "2010-12-31")
    with pytest.raises(ValueError, match="after --end"):
        run_backtest(demo, "bh-us-eq20", "2010-12-31", "2010-01-01")
    assert table_state(demo) == before  # nothing written


def test_cli_backtest_json_runs_show_and_compare(run_cli):
    code, out, _ = run_cli("backtest", "--strategy", "external-demo", "--start", "2019-01-01", "--end", "2019-12-31", "--json")
    assert code == 0
    payload = json.loads(out)
    assert set(payload) == {"run_id", "signal_snapshot_id", "system_as_of", "config", "metrics", "reproduction",
                            "reproduces"}
    assert payload["config"]["rebalance_frequency"] == "monthly" and "sharpe" in payload["metrics"]
    code, out, _ = run_cli("runs", "show", payload["run_id"], "--json")
    shown = json.loads(out)
    assert shown["signal_snapshot_id"] == payload["signal_snapshot_id"] and shown["system_as_of"] == payload["system_as_of"]
    code, clean_out, _ = run_cli("backtest", "--strategy", "external-demo", "--start", "2019-01-01", "--end", "2019-12-31",
                                 "--clean", "--json")
    clean_id = json.loads(clean_out)["run_id"]
    code, out, _ = run_cli("compare", payload["run_id"], clean_id)
    assert code == 0 and "external-demo (clean)" in out and "sharpe" in out
    code, out, _ = run_cli("runs", "list", "--strategy", "external-demo")
    assert payload["run_id"] in out and clean_id in out


def test_cli_strategies_list_and_add_validation(run_cli, demo):
    code, out, _ = run_cli("strategies", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:2] == ["strategy_id", "kind"]
    kinds = {line.split()[1] for line in lines[2:]}
    assert kinds == {"buy_and_hold", "ema_crossover", "rsi_mean_revert", "atr_breakout", "ts_momentum",
                     "macro_regime", "funding_carry", "external"}
    code, out, _ = run_cli("strategies", "add", "--id", "ema-fast", "--kind", "ema_crossover", "--param", "fast=5", "--param", "slow=30")
    assert code == 0 and out.startswith("added: ema-fast")
    before = table_state(demo)
    for args, words in [
        (["--id", "x'; DROP TABLE strategies;--", "--kind", "buy_and_hold"], "x'; DROP TABLE strategies;--"),
        (["--id", "ok-id", "--kind", "no_such_kind"], "no_such_kind"),
        (["--id", "ok-id", "--kind", "ema_crossover", "--param", "fast=abc"], "fast"),
        (["--id", "ok-id", "--kind", "ema_crossover", "--param", "fast=50", "--param", "slow=10"], "fast"),
        (["--id", "ema-fast", "--kind", "ema_crossover", "--param", "fast=6", "--param", "slow=30"], "already registered"),
    ]:
        code, _, err = run_cli("strategies", "add", *args)
        assert code == 2 and words in err and err.startswith("error:"), (args, err)
    assert table_state(demo) == before


def test_changing_parameters_needs_a_new_id(demo):
    cfg = StrategyConfig("param-change", "ema_crossover", {"fast": 10, "slow": 50}, universe="US_EQ20")
    assert register_strategy(demo, cfg) == "added"
    assert register_strategy(demo, cfg) == "exists"
    with pytest.raises(ValueError, match="already registered with other parameters"):
        register_strategy(demo, StrategyConfig("param-change", "ema_crossover", {"fast": 11, "slow": 50}, universe="US_EQ20"))
