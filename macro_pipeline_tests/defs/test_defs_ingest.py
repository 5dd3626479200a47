"""The code location loads, and its ingest assets store the demo data through Dagster."""

from __future__ import annotations

import dagster as dg

from macro_pipeline.defs import defs
from macro_pipeline.defs.ingest.assets import INGEST_ASSETS
from macro_pipeline.defs.resources import WarehouseResource


def test_definitions_load_with_every_ingest_asset():
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"instruments", "prices", "macro_observations", "funding_rates", "corporate_actions",
            "universe_membership", "external_signals"} <= keys
    assert defs.resolve_job_def("ingest_job") is not None


def test_ingest_assets_materialize_and_report_rows_and_watermark(engine):
    url = engine.url.render_as_string(hide_password=False)
    result = dg.materialize(INGEST_ASSETS,
                            resources={"warehouse": WarehouseResource(url=url)})
    assert result.success
    meta = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert meta["prices"]["rows_added"].value == 195_600 + 2922  # + the synthetic BTC-SPOT days
    assert meta["macro_observations"]["revisions_added"].value == 0
    assert meta["prices"]["recorded_at_watermark"].value.startswith("20")
    again = dg.materialize(INGEST_ASSETS, resources={"warehouse": WarehouseResource(url=url)})
    meta2 = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
             for e in again.get_asset_materialization_events()}
    assert meta2["prices"]["rows_added"].value == 0 and meta2["prices"]["recorded_at_watermark"].value == "nothing new"
