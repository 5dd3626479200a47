"""The nightly schedule: per strategy, the months ``backtest.reruns.nightly_reruns`` finds missing or
incomplete, as run requests (``defs/automation/jobs.py``).

(No ``from __future__ import annotations``: Dagster resolves resource types from annotations.)
"""

import dagster as dg
import pandas as pd

from macro_pipeline.backtest.reruns import nightly_reruns
from macro_pipeline.defs.automation.jobs import backtest_job, rerun_request
from macro_pipeline.defs.backtest.partitions import STRATEGY_DIMENSION
from macro_pipeline.defs.resources import WarehouseResource
from macro_pipeline.settings import load_settings

_settings = load_settings()


@dg.schedule(job=backtest_job, cron_schedule=_settings.nightly_cron, execution_timezone=_settings.nightly_tz,
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Nightly: per strategy, from its first missing or incomplete month (a month stored "
                         "before its last session in the data) to the newest; nothing when every history is complete.")
def nightly_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    engine = warehouse.engine()
    night = (context.scheduled_execution_time or pd.Timestamp.now(tz="UTC")).isoformat()
    strategies = sorted(context.instance.get_dynamic_partitions(STRATEGY_DIMENSION))
    reruns = nightly_reruns(engine, strategies)
    if not reruns:
        return dg.SkipReason(f"{len(strategies)} strategies, every history complete: nothing new to run")
    return [rerun_request(r, "nightly", night) for r in reruns]


SCHEDULES = [nightly_schedule]
