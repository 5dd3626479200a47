"""The Dagster code location (loaded by ``workspace.yaml``).

Runs use the in-process executor: every job here is a chain of steps that each need the whole
machine (2 cores: one run per strategy at a time is the concurrency that pays), and starting a
process per step would cost more than most steps take.
"""

import dagster as dg

from macro_pipeline.defs.automation import JOBS, SCHEDULES, SENSORS
from macro_pipeline.defs.backtest_assets import BACKTEST_ASSETS
from macro_pipeline.defs.checks import ASSET_CHECKS
from macro_pipeline.defs.ingest_assets import INGEST_ASSETS
from macro_pipeline.defs.resources import WarehouseResource
from macro_pipeline.defs.sweep_assets import (
    SWEEP_ASSETS,
    SWEEP_JOBS,
    SWEEP_SCHEDULES,
    SWEEP_SENSORS,
)

defs = dg.Definitions(
    assets=[*INGEST_ASSETS, *BACKTEST_ASSETS, *SWEEP_ASSETS],
    asset_checks=ASSET_CHECKS,
    jobs=[*JOBS, *SWEEP_JOBS],
    sensors=[*SENSORS, *SWEEP_SENSORS],
    schedules=[*SCHEDULES, *SWEEP_SCHEDULES],
    resources={"warehouse": WarehouseResource()},
    executor=dg.in_process_executor,
)
