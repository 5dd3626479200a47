"""The ``sweep`` asset family: one dynamic partition per sweep declared in ``sweeps.toml``
(``$MACRO_PIPELINE_SWEEPS_FILE``, default the package's file). Thin: the asset reads its
partition key, calls ``research.sweep.run_sweep`` and ``reports.sweep.write_sweep_report``.

- ``sweep`` (group ``research``): materialised from the UI (pick a sweep partition), by
  ``sweep_schedule`` (weekly); ``sweep_registry_sensor`` adds each newly declared sweep as a
  partition (it launches nothing).
  Metadata: best configuration, its Sharpe, DSR, PBO, number of trials, minimum backtest length,
  sweep id and the report path. Its data version is the sweep id (a hash of the spec, the input
  watermarks and the code versions), so an unchanged sweep rerun keeps its version and a revision
  of anything it read gives a new one. It depends on the ingest assets: a new ingest (a revision)
  marks it stale like the backtests, and ``code_version`` follows ``SWEEP_VERSION``.

(No ``from __future__ import annotations``: Dagster resolves resource types from annotations.)
"""

import dagster as dg

from macro_pipeline.defs.ingest.assets import FACT_ASSET_KEYS
from macro_pipeline.defs.resources import WarehouseResource, retry_transient
from macro_pipeline.reports.files import write_sweep_report
from macro_pipeline.research.config import find_sweep, load_sweeps_file
from macro_pipeline.research.sweep import SWEEP_VERSION, run_sweep
from macro_pipeline.warehouse.finite import finite_or_none

GROUP = "research"
SWEEP_DIMENSION = "sweep"
sweep_partitions = dg.DynamicPartitionsDefinition(name=SWEEP_DIMENSION)


@dg.asset(
    partitions_def=sweep_partitions,
    group_name=GROUP,
    deps=FACT_ASSET_KEYS,
    code_version=SWEEP_VERSION,
    description="A declared parameter sweep: every configuration backtested point in time in batched engine "
                "calls, with the Deflated Sharpe Ratio, the PBO by CSCV, the minimum backtest length and, if "
                "declared, a walk-forward. One partition per [[sweep]] of sweeps.toml.",
)
def sweep(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:

    spec = find_sweep(context.partition_key)
    with retry_transient(context):
        engine = warehouse.engine()
        out = run_sweep(engine, spec, orchestrator_run_id=context.run.run_id)
        report = write_sweep_report(engine, out.sweep_id)
    st = out.stats
    best = {k: finite_or_none(v[out.best]) for k, v in out.metrics.items()}
    metadata = {
        "sweep_id": out.sweep_id,
        "best_configuration": out.labels[out.best],
        "best_sharpe": best["sharpe"],
        "dsr": finite_or_none(st["dsr"]),
        "pbo": finite_or_none(st["pbo"]),
        "n_trials": len(out.labels),
        "min_backtest_years": finite_or_none(st["min_backtest_years"]),
        "sample_years": finite_or_none(st["years"]),
        "stored": "new" if out.new else "reproduced (already stored)",
        "system_as_of": out.system_as_of.isoformat(),
        "report": dg.MetadataValue.path(str(report)),
    }
    if out.walk_forward is not None:
        metadata["walk_forward_sharpe"] = finite_or_none(out.walk_forward["metrics"]["sharpe"])
        metadata["chosen_per_fold"] = dg.MetadataValue.md(
            "| fold | test | chosen |\n|---|---|---|\n" + "\n".join(
                f"| {f['fold']} | {f['test_start']}..{f['test_end']} | {out.labels[f['chosen_config']]} |"
                for f in out.folds))
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(out.sweep_id))


sweep_job = dg.define_asset_job("sweep_job", selection=dg.AssetSelection.assets(sweep), partitions_def=sweep_partitions)


@dg.sensor(job=sweep_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Adds every sweep declared in sweeps.toml as a `sweep` partition, so the UI can "
                       "materialize it; it launches nothing (a sweep is minutes of compute: the UI or "
                       "sweep_schedule runs it).")
def sweep_registry_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:

    known = set(context.instance.get_dynamic_partitions(SWEEP_DIMENSION))
    new = [s.name for s in load_sweeps_file() if s.name not in known]
    if not new:
        return dg.SensorResult(skip_reason=f"{len(known)} sweeps, none new")
    return dg.SensorResult(dynamic_partitions_requests=[sweep_partitions.build_add_request(new)])


@dg.schedule(job=sweep_job, cron_schedule="0 4 * * 0", execution_timezone="UTC",
             description="Weekly: every declared sweep (an unchanged one is recomputed and checked bit for bit "
                         "against its stored result; a changed input gives a new sweep).")
def sweep_schedule(context: dg.ScheduleEvaluationContext):
    names = sorted(context.instance.get_dynamic_partitions(SWEEP_DIMENSION))
    stamp = context.scheduled_execution_time.isoformat()
    return [dg.RunRequest(run_key=f"sweep-weekly:{n}:{stamp}", partition_key=n) for n in names] or \
        dg.SkipReason("no sweep partitions yet")


SWEEP_ASSETS = [sweep]
SWEEP_JOBS = [sweep_job]
SWEEP_SENSORS = [sweep_registry_sensor]
SWEEP_SCHEDULES = [sweep_schedule]
