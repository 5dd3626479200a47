"""The Dagster code location (loaded by ``workspace.yaml``)."""

from __future__ import annotations

import dagster as dg

from macro_pipeline.defs.backtest_assets import BACKTEST_ASSETS
from macro_pipeline.defs.checks import ASSET_CHECKS
from macro_pipeline.defs.ingest_assets import INGEST_ASSETS
from macro_pipeline.defs.resources import WarehouseResource

ingest_job = dg.define_asset_job("ingest_job", selection=dg.AssetSelection.groups("ingest"))

defs = dg.Definitions(
    assets=[*INGEST_ASSETS, *BACKTEST_ASSETS],
    asset_checks=ASSET_CHECKS,
    jobs=[ingest_job],
    resources={"warehouse": WarehouseResource()},
)
