"""The Dagster ``Definitions`` of the code location (``macro_pipeline.defs``, named by ``workspace.yaml``
and ``deploy/k8s``, re-exports ``defs`` from here).

The executor is one setting, ``MACRO_PIPELINE_EXECUTOR`` (``defs/executors.py``): in-process by
default (on one machine a process per step would cost more than most steps take), or Dagster's
Celery executor, whose steps run on ``macro-pipeline worker`` processes anywhere.
"""

import dagster as dg

from macro_pipeline import __version__
from macro_pipeline.defs.automation.jobs import JOBS
from macro_pipeline.defs.automation.schedules import SCHEDULES
from macro_pipeline.defs.automation.sensors import SENSORS
from macro_pipeline.defs.backtest.assets import BACKTEST_ASSETS
from macro_pipeline.defs.executors import executor_def
from macro_pipeline.defs.ingest.assets import INGEST_ASSETS
from macro_pipeline.defs.ingest.checks import ASSET_CHECKS
from macro_pipeline.defs.research.sweep import (
    SWEEP_ASSETS,
    SWEEP_JOBS,
    SWEEP_SCHEDULES,
    SWEEP_SENSORS,
)
from macro_pipeline.defs.resources import WarehouseResource
from macro_pipeline.engine.version import ENGINE_VERSION
from macro_pipeline.strategies.base import CODE_VERSION

OWNERS = ["team:macro-pipeline"]


def _code_version(key: str) -> str:
    """What a code change that could change an asset's values bumps: the strategies' code for the
    signals, the engine (and the strategies) for backtests and what is derived from them, the
    package version for ingestion. A new code version shows the asset as stale in the UI."""
    if key == "signals":
        return CODE_VERSION
    if key in ("backtest", "backtest_metrics", "leaderboard", "sweep"):
        return f"engine-{ENGINE_VERSION}+{CODE_VERSION}"
    return f"ingest-{__version__}"


def _with_ownership(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Owners, kinds, tags and a code version on every asset, in one place."""
    key = spec.key.to_user_string()
    layer = spec.group_name if spec.group_name in ("backtest", "research") else "ingest"
    kinds = {"postgres", "python"} | ({"html"} if key in ("backtest_metrics", "leaderboard", "sweep") else set())
    return spec.replace_attributes(
        owners=[*spec.owners, *(o for o in OWNERS if o not in spec.owners)],
        kinds=set(spec.kinds) | kinds,
        tags={**spec.tags, "layer": layer},
        code_version=spec.code_version or _code_version(key),
    )


defs = dg.Definitions(
    assets=dg.map_asset_specs(_with_ownership, [*INGEST_ASSETS, *BACKTEST_ASSETS, *SWEEP_ASSETS]),
    asset_checks=ASSET_CHECKS,
    jobs=[*JOBS, *SWEEP_JOBS],
    sensors=[*SENSORS, *SWEEP_SENSORS],
    schedules=[*SCHEDULES, *SWEEP_SCHEDULES],
    resources={"warehouse": WarehouseResource()},
    executor=executor_def(),
)
