"""The code location loads, and its ingest assets store the demo data through Dagster."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from macro_pipeline.defs import defs
from macro_pipeline.defs.ingest.assets import INGEST_ASSETS
from macro_pipeline.defs.resources import WarehouseResource
from macro_pipeline.demo.load import load_demo_frames

# asset -> (the packaged demo frame it ingests, the warehouse table it writes)
DEMO_OF = {"instruments": ("instruments", "instruments"), "prices": ("prices", "prices"),
           "macro_observations": ("macro", "macro_observations"), "funding_rates": ("funding", "funding_rates"),
           "corporate_actions": ("corporate_actions", "corporate_actions"),
           "universe_membership": ("universe", "universe_membership"),
           "external_signals": ("signals", "external_signals")}


@pytest.fixture
def instance():
    """An explicit Dagster instance: the suite's current one may belong to one another test closed."""
    with dg.instance_for_test() as inst:
        yield inst


def test_definitions_load_with_every_ingest_asset():
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"instruments", "prices", "macro_observations", "funding_rates", "corporate_actions",
            "universe_membership", "external_signals"} <= keys
    assert defs.resolve_job_def("ingest_job") is not None


def test_ingest_assets_materialize_and_report_rows_and_watermark(engine, instance):
    url = engine.url.render_as_string(hide_password=False)
    result = dg.materialize(INGEST_ASSETS,
                            resources={"warehouse": WarehouseResource(url=url)}, instance=instance)
    assert result.success
    meta = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert meta["prices"]["rows_added"].value == 195_600 + 2922  # + the synthetic BTC-SPOT days
    assert meta["macro_observations"]["revisions_added"].value == 0
    assert meta["prices"]["recorded_at_watermark"].value.startswith("20")
    again = dg.materialize(INGEST_ASSETS, resources={"warehouse": WarehouseResource(url=url)}, instance=instance)
    meta2 = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
             for e in again.get_asset_materialization_events()}
    assert meta2["prices"]["rows_added"].value == 0 and meta2["prices"]["recorded_at_watermark"].value == "nothing new"


def test_ingest_assets_store_every_packaged_row_once(engine, instance):
    """Worked numbers: on an empty warehouse each ingest asset stores every row of its packaged
    demo frame (rows added = rows read = the table's row count, nothing revised or unchanged);
    a second materialization adds nothing and finds every row unchanged."""
    url = engine.url.render_as_string(hide_password=False)
    frames = load_demo_frames()
    first = dg.materialize(INGEST_ASSETS, resources={"warehouse": WarehouseResource(url=url)}, instance=instance)
    meta = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
            for e in first.get_asset_materialization_events()}
    assert set(meta) == set(DEMO_OF)
    with engine.connect() as conn:
        stored = {a: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for a, (_, t) in DEMO_OF.items()}
    # the demo data has no split or dividend: its corporate-actions frame is empty, and the asset
    # then stores nothing and names no source
    assert [a for a, (key, _) in DEMO_OF.items() if frames[key].empty] == ["corporate_actions"]
    for asset, (key, _) in DEMO_OF.items():
        m, n = meta[asset], len(frames[key])
        assert m["rows_in_files"].value == n, asset
        assert m["rows_added"].value == n, asset
        assert m["revisions_added"].value == 0 and m["unchanged"].value == 0, asset
        assert m["dagster/row_count"].value == stored[asset] == n, asset
        assert m["sources"].value == (f"demo:{key}" if n else "none"), asset
    again = dg.materialize(INGEST_ASSETS, resources={"warehouse": WarehouseResource(url=url)}, instance=instance)
    meta2 = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
             for e in again.get_asset_materialization_events()}
    for asset, (key, _) in DEMO_OF.items():
        m, n = meta2[asset], len(frames[key])
        assert (m["rows_added"].value, m["unchanged"].value, m["dagster/row_count"].value) == (0, n, n), asset
        assert m["recorded_at_watermark"].value == "nothing new", asset
