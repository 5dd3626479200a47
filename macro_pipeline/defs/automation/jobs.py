"""The jobs, and the run request every sensor and schedule builds: one strategy's stretch of months
as ONE run (a partition range, so the engine simulates the stretch once, in order), tagged
``macro_pipeline/strategy`` (the run queue allows one run per strategy at a time, see
``dagster.yaml``).
"""

import dagster as dg

from macro_pipeline.backtest.reruns import Rerun
from macro_pipeline.defs.backtest.assets import backtest, backtest_metrics, leaderboard, signals
from macro_pipeline.defs.backtest.partitions import partition_key, strategy_month_partitions

STRATEGY_TAG = "macro_pipeline/strategy"
TRIGGER_TAG = "macro_pipeline/trigger"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

ingest_job = dg.define_asset_job("ingest_job", selection=dg.AssetSelection.groups("ingest"),
                                 description="Every ingest asset (the bundled demo data unless files are configured).")
backtest_job = dg.define_asset_job(
    "backtest_job", selection=dg.AssetSelection.assets(signals, backtest, backtest_metrics),
    partitions_def=strategy_month_partitions,
    description="signals -> backtest (inputs, engine, store) -> backtest_metrics for a strategy x month range.")
leaderboard_job = dg.define_asset_job("leaderboard_job", selection=dg.AssetSelection.assets(leaderboard),
                                      description="Rank every strategy on its stitched full history.")


def rerun_request(rerun: Rerun, trigger: str, identity: str) -> dg.RunRequest:
    """One run over ``rerun``'s months. ``identity`` names what caused it (the recorded_at
    watermark of a batch, a params hash, a night): run keys are deduplicated forever, so the same
    stretch is requested again when new data arrives again."""
    return dg.RunRequest(
        run_key=f"{trigger}:{rerun.strategy_id}:{rerun.first_month}:{rerun.last_month}:{identity}",
        job_name=backtest_job.name,
        tags={RANGE_START_TAG: partition_key(rerun.first_month, rerun.strategy_id),
              RANGE_END_TAG: partition_key(rerun.last_month, rerun.strategy_id),
              STRATEGY_TAG: rerun.strategy_id, TRIGGER_TAG: trigger,
              "macro_pipeline/reason": rerun.reason[:200]},
    )


def leaderboard_request(identity: str) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"leaderboard:{identity}", job_name=leaderboard_job.name,
                         tags={TRIGGER_TAG: "leaderboard"})


JOBS = [ingest_job, backtest_job, leaderboard_job]
