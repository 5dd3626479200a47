"""The Dagster code location (loaded by ``workspace.yaml``).

The executor is one setting, ``MACRO_PIPELINE_EXECUTOR`` (``defs/executors.py``): in-process by
default (on one machine a process per step would cost more than most steps take), or Dagster's
Celery executor, whose steps run on ``macro-pipeline worker`` processes anywhere.
"""

import dagster as dg

from macro_pipeline.defs.automation import JOBS, SCHEDULES, SENSORS
from macro_pipeline.defs.backtest_assets import BACKTEST_ASSETS
from macro_pipeline.defs.checks import ASSET_CHECKS
from macro_pipeline.defs.executors import executor_def
from macro_pipeline.defs.ingest_assets import INGEST_ASSETS
from macro_pipeline.defs.resources import WarehouseResource

defs = dg.Definitions(
    assets=[*INGEST_ASSETS, *BACKTEST_ASSETS],
    asset_checks=ASSET_CHECKS,
    jobs=JOBS,
    sensors=SENSORS,
    schedules=SCHEDULES,
    resources={"warehouse": WarehouseResource()},
    executor=executor_def(),
)
