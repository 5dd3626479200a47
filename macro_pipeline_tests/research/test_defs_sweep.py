"""The `sweep` asset family through Dagster's own machinery, instance storage in PostgreSQL."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from macro_pipeline.defs import defs
from macro_pipeline.defs.research.sweep import sweep, sweep_registry_sensor, sweep_schedule
from macro_pipeline.defs.resources import WarehouseResource
from macro_pipeline.research.config import SWEEPS_FILE_ENV
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline_tests.conftest import demo_with_strategies, postgres_instance

SWEEPS = """
[[sweep]]
name = "ema-small"
kind = "ema_crossover"
rebalance = "monthly"
start = "2004-01-01"
end = "2007-12-31"
walk_forward = "train=24M,test=12M"
grid = { fast = [10, 20], slow = "100..150:50" }

[[sweep]]
name = "bh-gross"
kind = "buy_and_hold"
rebalance = "monthly"
start = "2004-01-01"
end = "2005-12-31"
grid = { gross = "0.5..1.0:0.25" }
"""


@pytest.fixture(scope="module")
def warehouse(databases):
    return demo_with_strategies(databases)


@pytest.fixture(scope="module")
def instance(databases):
    with postgres_instance(databases) as inst:
        yield inst


@pytest.fixture
def sweeps_file(tmp_path, monkeypatch):
    path = tmp_path / "sweeps.toml"
    path.write_text(SWEEPS)
    monkeypatch.setenv(SWEEPS_FILE_ENV, str(path))
    return path


def _resources(engine):
    return {"warehouse": WarehouseResource(url=engine.url.render_as_string(hide_password=False))}


def _materialization(result):
    (event,) = result.get_asset_materialization_events()
    return event.step_materialization_data.materialization


def test_registry_sensor_adds_each_declared_sweep_as_a_partition(instance, sweeps_file):
    with dg.build_sensor_context(instance=instance) as ctx:
        out = sweep_registry_sensor(ctx)
    assert out.run_requests == []  # a sweep is launched from the UI or the schedule
    assert list(out.dynamic_partitions_requests[0].partition_keys) == ["ema-small", "bh-gross"]
    instance.add_dynamic_partitions("sweep", ["ema-small", "bh-gross"])
    with dg.build_sensor_context(instance=instance) as ctx:
        again = sweep_registry_sensor(ctx)
    assert again.dynamic_partitions_requests == [] and again.run_requests == []
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=pd.Timestamp("2026-12-06T04:00Z")) as sctx:
        weekly = sweep_schedule(sctx)
    assert sorted(r.partition_key for r in weekly) == ["bh-gross", "ema-small"]


def test_materialized_sweep_carries_its_statistics_and_a_revision_gives_a_new_version(
        warehouse, instance, sweeps_file):  # fmt: skip
    assert defs.resolve_job_def("sweep_job") is not None
    instance.add_dynamic_partitions("sweep", ["ema-small"])
    first = dg.materialize([sweep], partition_key="ema-small", instance=instance, resources=_resources(warehouse))
    meta = _materialization(first).metadata
    assert meta["n_trials"].value == 4 and meta["stored"].value == "new"
    assert 0 <= meta["dsr"].value <= 1 and 0 <= meta["pbo"].value <= 1
    assert meta["best_configuration"].value.startswith("fast=")
    assert meta["report"].value.endswith(".html") and "chosen_per_fold" in meta
    version = _materialization(first).tags["dagster/data_version"]
    assert version == meta["sweep_id"].value
    again = dg.materialize([sweep], partition_key="ema-small", instance=instance, resources=_resources(warehouse))
    assert _materialization(again).metadata["stored"].value == "reproduced (already stored)"
    assert _materialization(again).tags["dagster/data_version"] == version
    revised = pd.DataFrame({"instrument_id": ["AAPL"], "obs_date": ["2006-06-01"], "close": [1.0]})
    assert ingest(warehouse, "prices", revised, correction=True).revisions_added == 1
    moved = dg.materialize([sweep], partition_key="ema-small", instance=instance, resources=_resources(warehouse))
    assert _materialization(moved).metadata["stored"].value == "new"
    assert _materialization(moved).tags["dagster/data_version"] != version
