"""The pipeline's automation through Dagster's own evaluation: the point-in-time sensor, the
strategy-registration sensor, the nightly schedule, transient-error retries, and chain invariance
(months one by one == a range in one run == one engine call). Dagster's instance is on PostgreSQL.
"""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from macro_pipeline.backtest.months import run_months, stitched_equity
from macro_pipeline.backtest.one_off import run_backtest
from macro_pipeline.backtest.reruns import history_rerun, newest_month
from macro_pipeline.defs import defs
from macro_pipeline.defs.automation.jobs import RANGE_END_TAG, RANGE_START_TAG, STRATEGY_TAG
from macro_pipeline.defs.automation.schedules import nightly_schedule
from macro_pipeline.defs.automation.sensors import point_in_time_sensor, strategy_registry_sensor
from macro_pipeline.defs.resources import WarehouseResource, retry_transient
from macro_pipeline.strategies.config import StrategyConfig, load_builtin_configs
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline.warehouse.strategies import register_strategy
from macro_pipeline_tests.conftest import demo_with_strategies, postgres_instance

BUILTIN = sorted(c.strategy_id for c in load_builtin_configs())
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _resources(engine: sa.Engine) -> dict:
    return {"warehouse": WarehouseResource(url=engine.url.render_as_string(hide_password=False))}


def _current_runs(engine: sa.Engine, strategy_id: str) -> dict[str, str]:
    """month -> run id of the current pipeline run."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT to_char(window_start, 'YYYY-MM-01'), run_id FROM backtest_runs WHERE strategy_id = :s "
            "AND superseded_by IS NULL AND summary ->> 'pipeline' = 'true'"), {"s": strategy_id}).all()
    return dict(rows)


def _run_request(engine: sa.Engine, instance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(request.job_name).execute_in_process(
        instance=instance, tags=dict(request.tags), run_config=QUIET, resources=_resources(engine))


@pytest.fixture(scope="module")
def world(databases):
    """A demo warehouse where carry-simple and atr-index have their whole history stored."""
    engine = demo_with_strategies(databases)
    for sid in ("carry-simple", "atr-index"):
        run_months(engine, sid, history_rerun(engine, sid).months)
    with postgres_instance(databases) as instance:
        instance.add_dynamic_partitions("strategy", BUILTIN)
        yield engine, instance


def _tick(instance, engine, cursor):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=_resources(engine),
                                  repository_def=defs.get_repository_def())
    return point_in_time_sensor(ctx)


def test_definitions_hold_every_asset_check_job_sensor_and_schedule():
    repo = defs.get_repository_def()
    assets = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert assets == {"instruments", "prices", "macro_observations", "funding_rates", "corporate_actions",
                      "universe_membership", "external_signals", "signals", "backtest", "backtest_metrics", "leaderboard",
                      "sweep"}
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert checks == {"prices_positive_and_finite", "prices_no_duplicate_keys", "backtest_equity_invariant",
                      "signals_within_leverage", "signals_no_lookahead"}
    assert {j.name for j in repo.get_all_jobs()} >= {"ingest_job", "backtest_job", "leaderboard_job"}
    assert {s.name for s in repo.sensor_defs} == {"point_in_time_sensor", "strategy_registry_sensor", "leaderboard_sensor",
                                                  "sweep_registry_sensor"}
    assert sorted(s.name for s in repo.schedule_defs) == ["nightly_schedule", "sweep_schedule"]
    schedule = repo.get_schedule_def("nightly_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    # the engine is an op of its own inside the backtest asset
    backtest = defs.resolve_assets_def("backtest")
    assert {n.name for n in backtest.node_def.node_defs} == {"backtest_stretches", "backtest_inputs", "backtest_engine",
                                                             "backtest_store", "backtest_publish"}


def test_nightly_time_zone_and_cron_come_from_the_environment():
    from macro_pipeline.settings import load_settings

    s = load_settings({"MACRO_PIPELINE_NIGHTLY_TZ": "America/New_York", "MACRO_PIPELINE_NIGHTLY_CRON": "30 1 * * 1-5"})
    assert (s.nightly_tz, s.nightly_cron) == ("America/New_York", "30 1 * * 1-5")
    with pytest.raises(ValueError, match="MACRO_PIPELINE_NIGHTLY_TZ='Mars/Olympus' is not an IANA time zone"):
        load_settings({"MACRO_PIPELINE_NIGHTLY_TZ": "Mars/Olympus"})


def test_point_in_time_sensor_reruns_exactly_the_affected_months(world):
    engine, instance = world
    first = _tick(instance, engine, None)
    assert first.run_requests == [] and first.cursor
    quiet = _tick(instance, engine, first.cursor)  # nothing new: no runs, cursor moves on
    assert quiet.run_requests == []
    cursor = quiet.cursor

    # a late correction of an old BTC-PERP close, known since 2020-03-11: carry-simple reads it,
    # atr-index does not (carry-composite reads it too but has no history yet: registration's job)
    with engine.connect() as conn:
        close = conn.execute(sa.text("SELECT close FROM prices WHERE instrument_id = 'BTC-PERP' "
                                     "AND obs_date = '2020-03-10' ORDER BY recorded_at DESC LIMIT 1")).scalar_one()
    ingest(engine, "prices", pd.DataFrame({"instrument_id": ["BTC-PERP"], "obs_date": ["2020-03-10"],
                                           "close": [close * 1.01], "known_at": ["2020-03-11T00:00:00Z"]}))
    before = {s: _current_runs(engine, s) for s in ("carry-simple", "atr-index")}
    result = _tick(instance, engine, cursor)
    backtests = [r for r in result.run_requests if r.job_name == "backtest_job"]
    assert [r.tags[STRATEGY_TAG] for r in backtests] == ["carry-simple"]
    (req,) = backtests
    assert req.tags[RANGE_START_TAG] == "2020-03-01|carry-simple"
    newest = newest_month(engine, "carry-simple")  # the demo data ends in 2022: so do the histories
    assert newest == "2022-12-01"
    assert req.tags[RANGE_END_TAG] == f"{newest}|carry-simple"
    new_mark = json.loads(result.cursor)["recorded_at"]
    assert new_mark > json.loads(cursor)["recorded_at"]
    assert req.run_key == f"pit:carry-simple:2020-03-01:{newest}:{new_mark}"  # revision identity in the key
    # the leaderboard is requested by leaderboard_sensor after the rerun succeeds, not alongside it
    assert all(r.job_name == "backtest_job" for r in result.run_requests)

    run = _run_request(engine, instance, req)
    assert run.success
    after = {s: _current_runs(engine, s) for s in ("carry-simple", "atr-index")}
    assert after["atr-index"] == before["atr-index"]  # unaffected strategy: untouched
    old = {m: r for m, r in before["carry-simple"].items() if m < "2020-03-01"}
    assert {m: after["carry-simple"][m] for m in old} == old  # months before the change: untouched
    rerun = [m for m in after["carry-simple"] if m >= "2020-03-01"]
    assert rerun and all(after["carry-simple"][m] != before["carry-simple"][m] for m in rerun)
    assert sorted(e.partition for e in run.get_asset_materialization_events()
                  if e.asset_key.to_user_string() == "backtest")[0] == "2020-03-01|carry-simple"

    # the same data seen again: nothing to do
    assert [r for r in _tick(instance, engine, result.cursor).run_requests] == []


def test_a_revision_known_today_of_an_old_date_reruns_nothing_no_stored_decision_saw(world):
    """atr-index reads SPX, but its newest stored month ends in 2018 (where SPX ends): no stored
    decision was taken after today's revision was known, so recomputing changes nothing."""
    engine, instance = world
    cursor = _tick(instance, engine, None).cursor
    now = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(seconds=5)
    ingest(engine, "prices", pd.DataFrame({"instrument_id": ["SPX"], "obs_date": ["2016-05-02"], "close": [2100.0],
                                           "known_at": [now.isoformat()]}))
    result = _tick(instance, engine, cursor)
    assert [r for r in result.run_requests if r.job_name == "backtest_job"] == []
    assert result.run_requests == [] and "no registered strategy affected" in str(result.skip_reason)


def test_registration_sensor_adds_partition_keys_and_backfills_full_history(databases, world):
    engine, _ = world
    with postgres_instance(databases) as fresh:
        ctx = dg.build_sensor_context(instance=fresh, resources=_resources(engine), repository_def=defs.get_repository_def())
        result = strategy_registry_sensor(ctx)
        (add,) = result.dynamic_partitions_requests
        assert sorted(add.partition_keys) == BUILTIN
        starts = {r.tags[STRATEGY_TAG]: r.tags[RANGE_START_TAG] for r in result.run_requests}
        assert starts["bh-us-eq20"] == "1990-01-01|bh-us-eq20" and starts["carry-simple"] == "2015-01-01|carry-simple"
        assert all(r.tags[RANGE_END_TAG] == f"{newest_month(engine, r.tags[STRATEGY_TAG])}|{r.tags[STRATEGY_TAG]}"
                   for r in result.run_requests)
        with engine.connect() as conn:
            h = conn.execute(sa.text("SELECT params_hash FROM strategies WHERE strategy_id = 'bh-us-eq20'")).scalar()
        bh_end = newest_month(engine, "bh-us-eq20")
        assert {r.run_key for r in result.run_requests} >= {f"register:bh-us-eq20:1990-01-01:{bh_end}:{h}"}

        fresh.add_dynamic_partitions("strategy", BUILTIN)
        cfg = StrategyConfig("bh-crypto-test", "buy_and_hold", {}, universe="CRYPTO", rebalance="monthly", calendar="24/7")
        register_strategy(engine, cfg)  # what `macro-pipeline strategies add` does
        again = strategy_registry_sensor(ctx)
        assert [r.tags[STRATEGY_TAG] for r in again.run_requests] == ["bh-crypto-test"]
        assert again.run_requests[0].tags[RANGE_START_TAG] == "2015-01-01|bh-crypto-test"
        assert again.dynamic_partitions_requests[0].partition_keys == ["bh-crypto-test"]


def _night(instance, engine):
    ctx = dg.build_schedule_context(instance=instance, resources=_resources(engine),
                                    scheduled_execution_time=pd.Timestamp.now(tz="UTC").floor("D").to_pydatetime(),
                                    repository_def=defs.get_repository_def())
    return nightly_schedule.evaluate_tick(ctx)


def test_nightly_schedule_fills_missing_histories_and_leaves_complete_ones_alone(world):
    engine, instance = world
    requests = {r.tags[STRATEGY_TAG]: r for r in _night(instance, engine).run_requests}
    # carry-simple and atr-index have every month stored, complete: nothing to do for them
    assert set(requests) == set(BUILTIN) - {"carry-simple", "atr-index"}
    assert requests["macro-regime"].tags[RANGE_START_TAG] == "1986-01-01|macro-regime"  # nothing stored yet
    assert all(r.tags[RANGE_END_TAG] == f"{newest_month(engine, s)}|{s}" for s, r in requests.items())
    assert all(r.run_key.startswith("nightly:") for r in requests.values())


def _current_pipeline_run_ids(engine: sa.Engine, strategy_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT run_id FROM backtest_runs WHERE strategy_id = :s AND superseded_by IS NULL AND status = 'success' "
            "AND summary ->> 'pipeline' = 'true' ORDER BY window_start"), {"s": strategy_id}).scalars())


def test_a_night_with_nothing_new_requests_nothing_and_the_leaderboard_ranks_only_current_runs(databases):
    # regression: the nightly schedule reran every strategy's newest month every night, new data or not
    from macro_pipeline.backtest.leaderboard import runs_digest
    from macro_pipeline.defs.automation.sensors import leaderboard_sensor

    engine = demo_with_strategies(databases)
    months = history_rerun(engine, "carry-simple").months
    assert months[-1] == "2022-12-01"  # the demo data ends in 2022: the history is stable whatever today is
    run_months(engine, "carry-simple", months[:-2])
    replaced = _current_runs(engine, "carry-simple")["2022-10-01"]
    run_months(engine, "carry-simple", ["2022-10-01"])  # a rerun: the first 2022-10 run is superseded
    sys_before = pd.Timestamp.now(tz="UTC")
    ingest(engine, "prices", pd.DataFrame({"instrument_id": ["SPX"], "obs_date": ["2016-05-02"], "close": [2100.0],
                                           "known_at": ["2016-05-03T15:00:00Z"]}))
    repro = run_backtest(engine, "carry-simple", "2022-10-01", "2022-10-31", system_as_of=sys_before)
    assert repro.reproduction
    with postgres_instance(databases) as instance:
        instance.add_dynamic_partitions("strategy", ["carry-simple"])
        (req,) = _night(instance, engine).run_requests  # the two missing months, in one run
        assert (req.tags[RANGE_START_TAG], req.tags[RANGE_END_TAG]) == ("2022-11-01|carry-simple", "2022-12-01|carry-simple")
        run = _run_request(engine, instance, req)
        assert run.success

        again = _night(instance, engine)  # complete now, and nothing new: nothing to do
        assert again.run_requests == [] and "every history complete" in again.skip_message

        # the backtest run's success requests the leaderboard, which ranks exactly the current runs
        (event,) = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records
        ctx = dg.build_run_status_sensor_context(sensor_name="leaderboard_sensor", dagster_instance=instance,
                                                 dagster_run=run.dagster_run,
                                                 dagster_event=event.event_log_entry.dagster_event)
        board_req = leaderboard_sensor(ctx)
        assert board_req.job_name == "leaderboard_job" and board_req.run_key == f"leaderboard:after:{run.run_id}"
        board = _run_request(engine, instance, board_req)
        assert board.success
        (mat,) = [e for e in board.get_asset_materialization_events() if e.asset_key.to_user_string() == "leaderboard"]
        meta = mat.step_materialization_data.materialization.metadata
        current = _current_pipeline_run_ids(engine, "carry-simple")
        assert len(current) == len(months) and replaced not in current and repro.run_id not in current
        assert meta["ranked_runs"].value == {"carry-simple": {"runs": len(months), "runs_sha256": runs_digest(current),
                                                              "newest_run": current[-1]}}
        assert meta["runs/carry-simple"].value == len(months) and meta["runs_ranked"].value == len(months)

        # a burst of backtest runs ranks once: a leaderboard run still waiting in the queue covers them
        queued = instance.create_run_for_job(defs.resolve_job_def("leaderboard_job"), status=dg.DagsterRunStatus.NOT_STARTED)
        skipped = leaderboard_sensor(ctx)
        assert isinstance(skipped, dg.SkipReason) and queued.run_id in skipped.skip_message


def test_chain_invariance_months_one_by_one_equal_a_range_and_one_engine_call(databases):
    months = ["2015-01-01", "2015-02-01", "2015-03-01", "2015-04-01"]
    one_by_one, ranged = demo_with_strategies(databases), demo_with_strategies(databases)
    with postgres_instance(databases) as instance:
        instance.add_dynamic_partitions("strategy", ["carry-simple"])
        job = defs.resolve_job_def("backtest_job")
        for m in months:
            assert job.execute_in_process(instance=instance, partition_key=f"{m}|carry-simple", run_config=QUIET,
                                          resources=_resources(one_by_one)).success
        assert job.execute_in_process(instance=instance, run_config=QUIET, resources=_resources(ranged),
                                      tags={RANGE_START_TAG: "2015-01-01|carry-simple",
                                            RANGE_END_TAG: "2015-04-01|carry-simple"}).success
    a, b = stitched_equity(one_by_one, "carry-simple"), stitched_equity(ranged, "carry-simple")
    direct = run_backtest(ranged, "carry-simple", "2015-01-01", "2015-04-30", store=False).result.equity
    assert a.index[0] == pd.Timestamp("2015-01-01") and a.index[-1] == pd.Timestamp("2015-04-30")
    pd.testing.assert_series_equal(a, b, check_names=False, rtol=0, atol=0)
    assert list(direct.index) == list(a.index)
    assert abs(a.to_numpy() / direct.to_numpy() - 1).max() < 1e-12


def test_transient_database_errors_retry_the_step_and_other_errors_fail_at_once(dagster_instance):
    calls = {"flaky": 0, "broken": 0}

    @dg.op
    def flaky(context):
        calls["flaky"] += 1
        with retry_transient(context):
            if calls["flaky"] == 1:
                raise sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
        return 1

    @dg.op
    def broken(context):
        calls["broken"] += 1
        with retry_transient(context):
            raise ValueError("weights break the leverage limit")

    import macro_pipeline.defs.resources as res

    wait = res.RETRY_WAIT_SECONDS
    res.RETRY_WAIT_SECONDS = 0.0
    try:
        ok = dg.GraphDefinition("g1", node_defs=[flaky]).to_job(executor_def=dg.in_process_executor)
        assert ok.execute_in_process(instance=dagster_instance).success and calls["flaky"] == 2
        bad = dg.GraphDefinition("g2", node_defs=[broken]).to_job(executor_def=dg.in_process_executor)
        assert not bad.execute_in_process(instance=dagster_instance, raise_on_error=False).success
        assert calls["broken"] == 1
    finally:
        res.RETRY_WAIT_SECONDS = wait


def test_one_unusable_configuration_does_not_stop_the_night_of_the_others(world, monkeypatch):
    # found by the soak: a configuration whose legs are not in its universe raised StrategyError
    # inside newest_month, and the whole nightly tick failed, for every strategy
    from macro_pipeline.backtest import reruns
    from macro_pipeline.strategies.params import StrategyError

    engine, instance = world
    real = reruns.newest_month

    def broken_for_one(engine, sid, *args, **kwargs):
        if sid == "macro-regime":
            raise StrategyError("funding_carry needs BTC-PERP in universe CRYPTO")
        return real(engine, sid, *args, **kwargs)

    monkeypatch.setattr(reruns, "newest_month", broken_for_one)
    with pytest.warns(UserWarning, match="macro-regime: skipped tonight: funding_carry needs BTC-PERP"):
        requests = {r.tags[STRATEGY_TAG] for r in _night(instance, engine).run_requests}
    assert requests == set(BUILTIN) - {"carry-simple", "atr-index", "macro-regime"}
