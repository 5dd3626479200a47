"""The sensors. Thin: ``macro_pipeline.backtest.reruns`` decides what to run; these turn its plans into
run requests (``defs/automation/jobs.py``).

(No ``from __future__ import annotations``: Dagster resolves resource types from annotations.)
"""

import json

import dagster as dg
import pandas as pd

from macro_pipeline.backtest.configs import sync_builtin_strategies
from macro_pipeline.backtest.reruns import changes_between, history_rerun, pit_reruns
from macro_pipeline.defs.automation.jobs import (
    backtest_job,
    leaderboard_job,
    leaderboard_request,
    rerun_request,
)
from macro_pipeline.defs.backtest.partitions import STRATEGY_DIMENSION, strategy_month_partitions
from macro_pipeline.defs.resources import WarehouseResource
from macro_pipeline.strategies.params import StrategyError
from macro_pipeline.warehouse.pit import current_watermark
from macro_pipeline.warehouse.strategies import params_hashes, registered

_NOT_STARTED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[backtest_job],
                      request_job=leaderboard_job, minimum_interval_seconds=30,
                      default_status=dg.DefaultSensorStatus.RUNNING,
                      description="Re-ranks the leaderboard after every successful backtest_job run (whoever "
                                  "launched it: sensors, schedule, UI, backfills), once per burst of runs.")
def leaderboard_sensor(context: dg.RunStatusSensorContext):
    """A run-status sensor (evaluated by the daemon, cursor on the run-status events): every
    change to stored backtests comes from a backtest_job run, so a successful one requests
    ``leaderboard_job``. A leaderboard run that has not started yet will read the warehouse after
    this run's commit, so it already covers it: then nothing more is requested (a night of nine
    strategy runs ranks once or twice, not nine times)."""
    waiting = context.instance.get_runs(dg.RunsFilter(job_name=leaderboard_job.name, statuses=_NOT_STARTED), limit=1)
    if waiting:
        return dg.SkipReason(f"leaderboard run {waiting[0].run_id} has not started yet: it will rank "
                             f"{context.dagster_run.run_id}'s results")
    return leaderboard_request(f"after:{context.dagster_run.run_id}")


@dg.sensor(jobs=[backtest_job], minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Point-in-time sensor: reruns exactly the months new rows (or revisions) can affect, "
                       "per affected strategy, from the first affected month to the newest.")
def point_in_time_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    engine = warehouse.engine()
    upto = current_watermark(engine)  # waits for ingests in flight: nothing can appear below it later
    cursor = json.dumps({"recorded_at": upto.isoformat()})
    if not context.cursor:
        return dg.SensorResult(cursor=cursor, skip_reason=f"first evaluation: watching rows recorded after {upto.isoformat()}")
    after = pd.Timestamp(json.loads(context.cursor)["recorded_at"])
    changes = changes_between(engine, after, upto)
    known = set(context.instance.get_dynamic_partitions(STRATEGY_DIMENSION))
    reruns = [r for r in pit_reruns(engine, changes) if r.strategy_id in known]
    for r in reruns:
        context.log.info(f"{r.strategy_id}: {r.first_month[:7]}..{r.last_month[:7]} ({r.reason})")
    requests = [rerun_request(r, "pit", upto.isoformat()) for r in reruns]
    if not requests:
        return dg.SensorResult(cursor=cursor, skip_reason=f"{sum(c.rows for c in changes)} new row(s) since "
                                                          f"{after.isoformat()}; no registered strategy affected")
    # the leaderboard is re-ranked by `leaderboard_sensor` once these runs have stored their results
    return dg.SensorResult(run_requests=requests, cursor=cursor)


@dg.sensor(jobs=[backtest_job], minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="New strategy configurations (strategies.toml or `macro-pipeline strategies add`) become "
                       "`strategy` partition keys and get their full history backfilled.")
def strategy_registry_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    engine = warehouse.engine()
    sync_builtin_strategies(engine)
    known = set(context.instance.get_dynamic_partitions(STRATEGY_DIMENSION))
    new = [sid for sid in registered(engine) if sid not in known]
    if not new:
        return dg.SensorResult(skip_reason=f"{len(known)} strategies, none new")
    hashes = params_hashes(engine)
    requests = []
    for sid in new:
        try:
            rerun = history_rerun(engine, sid)
        except StrategyError as exc:  # one unusable configuration must not stop the others
            context.log.warning(f"{sid}: not backfilled: {exc}")
            continue
        if rerun is not None:
            requests.append(rerun_request(rerun, "register", hashes[sid]))
    return dg.SensorResult(run_requests=requests,
                           dynamic_partitions_requests=[strategy_month_partitions.get_partitions_def_for_dimension(
                               STRATEGY_DIMENSION).build_add_request(new)])


SENSORS = [point_in_time_sensor, strategy_registry_sensor, leaderboard_sensor]
