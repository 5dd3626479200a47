"""Partitioned strategy assets through Dagster's own execution, on a real warehouse."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from macro_pipeline.backtest.months import stitched_equity
from macro_pipeline.defs import defs
from macro_pipeline.defs.backtest.assets import backtest, backtest_metrics, leaderboard, signals
from macro_pipeline.defs.resources import WarehouseResource
from macro_pipeline.strategies.config import load_builtin_configs
from macro_pipeline_tests.conftest import demo_with_strategies, postgres_instance

ASSETS = [signals, backtest, backtest_metrics]


@pytest.fixture(scope="module")
def warehouse(databases):
    return demo_with_strategies(databases)


@pytest.fixture(scope="module")
def instance(databases):
    with postgres_instance(databases) as inst:
        inst.add_dynamic_partitions("strategy", [c.strategy_id for c in load_builtin_configs()])
        yield inst


def _resources(engine):
    return {"warehouse": WarehouseResource(url=engine.url.render_as_string(hide_password=False))}


def _events(result, asset):
    return [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]


def _meta(result, asset):
    return _events(result, asset)[0].step_materialization_data.materialization.metadata


def test_definitions_have_partitioned_strategy_assets():
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"signals", "backtest", "backtest_metrics", "leaderboard"} <= keys
    assert isinstance(signals.partitions_def, dg.MultiPartitionsDefinition)


def test_materialize_partitions_records_lineage_in_metadata_and_warehouse(warehouse, instance):
    for month in ("2015-01-01", "2015-02-01"):
        key = dg.MultiPartitionKey({"month": month, "strategy": "carry-simple"})
        result = dg.materialize(ASSETS, partition_key=key, instance=instance, resources=_resources(warehouse))
        assert result.success
        meta = _meta(result, "backtest")
        run_id, snap = meta["run_id"].value, meta["signal_snapshot_id"].value
        with warehouse.connect() as conn:
            row = conn.execute(sa.text("SELECT signal_snapshot_id, orchestrator_run_id, window_start FROM backtest_runs "
                                       "WHERE run_id = :r"), {"r": run_id}).one()
        assert row[0] == snap and row[1] == result.run_id and row[2].strftime("%Y-%m") == month[:7]
        metrics_meta = _meta(result, "backtest_metrics")
        assert metrics_meta["run_id"].value == run_id
        # plotted over partitions: the full history to the month's end, rounded for display (the
        # one-month annualised numbers are gone); regression: a one-month "CAGR of 55"
        from macro_pipeline.backtest.months import history_to_date_metrics
        from macro_pipeline.reports.formatting import display_float

        if month == "2015-02-01":  # the first month has the same history to date as itself
            full = history_to_date_metrics(warehouse, "carry-simple", [month])[month]
            assert metrics_meta["sharpe_to_date"].value == display_float(full["sharpe"])
            assert metrics_meta["cagr_to_date"].value == display_float(full["cagr"])
            assert len(repr(abs(metrics_meta["cagr_to_date"].value)).lstrip("0.").replace(".", "")) <= 4
        assert "sharpe" not in metrics_meta and "trade_count" in metrics_meta
        assert f"| carry-simple | {month[:7]} |" in metrics_meta["summary"].value
        report = Path(metrics_meta["report"].value)
        assert report.name == "strategy-carry-simple.html" and "<svg" in report.read_text()
        signal_event = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "signals"][0]
        assert signal_event.step_materialization_data.materialization.tags.get("dagster/data_version") == snap


def test_a_range_of_months_in_one_run_continues_the_chain(warehouse, instance):
    tags = {"dagster/asset_partition_range_start": "2015-03-01|carry-simple",
            "dagster/asset_partition_range_end": "2015-05-01|carry-simple"}
    result = dg.materialize(ASSETS, instance=instance, resources=_resources(warehouse), tags=tags)
    assert result.success
    assert _meta(result, "backtest")["runs_stored_in_this_run"].value == 3
    assert sorted(e.partition for e in _events(result, "backtest")) == [
        "2015-03-01|carry-simple", "2015-04-01|carry-simple", "2015-05-01|carry-simple"]
    equity = stitched_equity(warehouse, "carry-simple")
    assert equity.index[0].strftime("%Y-%m") == "2015-01" and equity.index[-1].strftime("%Y-%m") == "2015-05"
    board = dg.materialize([leaderboard], instance=instance, resources=_resources(warehouse))
    meta = _meta(board, "leaderboard")
    assert meta["best_strategy"].value == "carry-simple"
    assert isinstance(meta["sharpe/carry-simple"].value, float)
    assert Path(meta["comparison_report"].value).read_text().count("carry-simple") > 0


def test_check_results_attach_to_the_materialization_they_checked(warehouse, instance):
    # regression: the checks ran as steps of their own, after other runs had materialized the same
    # assets, and attached to those materializations: the UI showed the latest one as never checked
    job = defs.resolve_job_def("backtest_job")
    for sid, first, last in (("carry-simple", "2015-06-01", "2015-08-01"), ("carry-simple", "2015-09-01", "2015-10-01")):
        result = job.execute_in_process(instance=instance, resources=_resources(warehouse),
                                        tags={"dagster/asset_partition_range_start": f"{first}|{sid}",
                                              "dagster/asset_partition_range_end": f"{last}|{sid}"})
        assert result.success
        for asset, checks in (("signals", ("signals_within_leverage", "signals_no_lookahead")),
                              ("backtest", ("backtest_equity_invariant",))):
            (latest,) = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
            assert latest.run_id == result.run_id
            keys = [dg.AssetCheckKey(dg.AssetKey(asset), name) for name in checks]
            executions = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
            for key in keys:
                evaluation = executions[key].event.dagster_event.event_specific_data
                assert evaluation.target_materialization_data.storage_id == latest.storage_id, key
                assert evaluation.passed and executions[key].run_id == result.run_id, key


def test_a_run_over_several_strategies_fans_out_one_independent_branch_per_strategy(warehouse, instance):
    job = defs.resolve_job_def("backtest_job")

    def run(first: str, last: str):
        return job.execute_in_process(instance=instance, resources=_resources(warehouse), raise_on_error=False,
                                      tags={"dagster/asset_partition_range_start": first,
                                            "dagster/asset_partition_range_end": last})

    def stored_months(sid: str) -> list[str]:
        with warehouse.connect() as conn:
            return [r[0] for r in conn.execute(sa.text(
                "SELECT to_char(window_start, 'YYYY-MM') FROM backtest_runs WHERE strategy_id = :s AND superseded_by "
                "IS NULL AND summary ->> 'pipeline' = 'true' ORDER BY window_start"), {"s": sid})]

    result = run("1990-01-01|bh-us-eq20", "1990-02-01|ema-us-eq20")
    assert result.success
    steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    for op in ("backtest_inputs", "backtest_engine", "backtest_store"):
        assert {f"backtest.{op}[bh_us_eq20]", f"backtest.{op}[ema_us_eq20]"} <= steps
    assert _meta(result, "backtest")["runs_stored_in_this_run"].value == 4
    assert stored_months("bh-us-eq20") == stored_months("ema-us-eq20") == ["1990-01", "1990-02"]
    # rsi-us-eq20 has no 1990-02 to continue from: its branch fails alone, storing nothing, and the
    # other strategies' months are stored whole
    failed = run("1990-03-01|bh-us-eq20", "1990-03-01|rsi-us-eq20")
    assert not failed.success
    failures = {e.step_key for e in failed.all_events if e.event_type_value == "STEP_FAILURE"}
    assert failures == {"backtest.backtest_inputs[rsi_us_eq20]"}
    assert stored_months("bh-us-eq20") == stored_months("ema-us-eq20") == ["1990-01", "1990-02", "1990-03"]
    assert stored_months("rsi-us-eq20") == []


def test_asset_checks_pass_on_stored_results_and_catch_a_broken_invariant(warehouse, instance):
    from macro_pipeline.defs.backtest.checks import (
        backtest_equity_invariant,
        signals_no_lookahead,
        signals_within_leverage,
    )
    from macro_pipeline.defs.ingest.checks import (
        ASSET_CHECKS,
        prices_no_duplicate_keys,
        prices_positive_and_finite,
    )

    res = _resources(warehouse)["warehouse"]
    for check in (prices_positive_and_finite, prices_no_duplicate_keys):
        out = check(warehouse=res)
        assert out.passed, (check, out.metadata)
    for check in (backtest_equity_invariant, signals_no_lookahead, signals_within_leverage):
        out = check(warehouse)
        assert out.passed, (check, out.metadata)
    with warehouse.begin() as conn:  # result rows are not append-only facts: corrupt one on purpose
        conn.exec_driver_sql("UPDATE daily_equity SET cash = cash + 1000 WHERE ctid = (SELECT ctid FROM daily_equity LIMIT 1)")
    broken = backtest_equity_invariant(warehouse)
    assert not broken.passed and broken.metadata["violating_sessions"].value == 1
    assert len(ASSET_CHECKS) == 2
    # blocking: a failed invariant fails the backtest step after its materializations, and
    # backtest_metrics (downstream) does not run
    result = dg.materialize(ASSETS, instance=instance, resources=_resources(warehouse), raise_on_error=False,
                            tags={"dagster/asset_partition_range_start": "2015-11-01|carry-simple",
                                  "dagster/asset_partition_range_end": "2015-11-01|carry-simple"})
    assert not result.success
    assert _events(result, "backtest") and not _events(result, "backtest_metrics")
    (evaluation,) = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
                     and e.event_specific_data.asset_key == dg.AssetKey("backtest")]
    assert not evaluation.passed and evaluation.blocking
