"""Ingest assets, one per source kind: thin wrappers over ``warehouse.ingest``.

(No ``from __future__ import annotations`` here: Dagster resolves config and resource types from
real annotations.)

Each reads its source (the bundled demo data, or the files named in its run config), stores it
through the validated, transactional ingestion path and reports rows added, revisions added and the
new ``recorded_at`` watermark as materialization metadata.
"""


import dagster as dg
import pandas as pd

from macro_pipeline.defs.resources import WarehouseResource
from macro_pipeline.demo.load import load_demo_frames
from macro_pipeline.warehouse.ingest import IngestReport, ingest
from macro_pipeline.warehouse.inventory import table_shape
from macro_pipeline.warehouse.tables import BY_KIND, BY_SOURCE, FACT_TABLES, FactTable

GROUP = "ingest"


class IngestConfig(dg.Config):
    """Files to ingest (CSV or Parquet); none: the bundled demo data for this kind."""

    files: list[str] = []
    register_instruments: bool = False


def _demo_frame(key: str) -> pd.DataFrame:
    return load_demo_frames()[key]


def _materialize(context: dg.AssetExecutionContext, warehouse: WarehouseResource, kind: str,
                 demo_key: str, config: IngestConfig) -> dg.MaterializeResult:
    engine = warehouse.engine()
    reports: list[IngestReport] = []
    if config.files:
        for path in config.files:
            reports.append(ingest(engine, kind, path, register_unknown=config.register_instruments))
    else:
        frame = _demo_frame(demo_key)
        if not frame.empty:
            reports.append(ingest(engine, kind, frame, name=f"demo:{demo_key}"))
    for r in reports:
        context.log.info(r.summary())
    marks = [r.recorded_at for r in reports if r.recorded_at is not None]
    return dg.MaterializeResult(metadata={
        "rows_in_files": dg.MetadataValue.int(sum(r.rows_in_file for r in reports)),
        "rows_added": dg.MetadataValue.int(sum(r.rows_added for r in reports)),
        "revisions_added": dg.MetadataValue.int(sum(r.revisions_added for r in reports)),
        "unchanged": dg.MetadataValue.int(sum(r.unchanged for r in reports)),
        "recorded_at_watermark": dg.MetadataValue.text(max(marks).isoformat() if marks else "nothing new"),
        "sources": dg.MetadataValue.text(", ".join(r.source for r in reports) or "none"),
        **_table_metadata(engine, BY_KIND[kind].table if kind in BY_KIND else kind),
    })


def _table_metadata(engine, table: str) -> dict:
    """Dagster's own keys: the table's row count and column schema after the ingest."""
    rows, cols = table_shape(engine, table)
    schema = dg.TableSchema(columns=[dg.TableColumn(name, type_, constraints=dg.TableColumnConstraints(
        nullable=nullable)) for name, type_, nullable in cols])
    return {"dagster/row_count": dg.MetadataValue.int(rows), "dagster/column_schema": dg.MetadataValue.table_schema(schema)}


@dg.asset(group_name=GROUP, description="Instrument reference data (kind, calendar, release rule).")
def instruments(context: dg.AssetExecutionContext, warehouse: WarehouseResource, config: IngestConfig) -> dg.MaterializeResult:
    return _materialize(context, warehouse, "instruments", "instruments", config)


def _fact_asset(fact: FactTable, description: str) -> dg.AssetsDefinition:
    """The asset of one fact table: named by the table, ingesting its kind (demo frame: its source)."""
    @dg.asset(name=fact.table, group_name=GROUP, deps=[instruments], description=description)
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource, config: IngestConfig) -> dg.MaterializeResult:
        return _materialize(context, warehouse, fact.kind, fact.source, config)

    return _asset


prices = _fact_asset(BY_SOURCE["prices"], "Daily OHLCV prices, bitemporal.")
macro_observations = _fact_asset(BY_SOURCE["macro"], "Macro releases with their vintages.")
funding_rates = _fact_asset(BY_SOURCE["funding"], "Perpetual-futures funding rates per settlement.")
corporate_actions = _fact_asset(BY_SOURCE["corporate_actions"], "Splits and cash dividends by ex-date.")
universe_membership = _fact_asset(BY_SOURCE["universe"], "Universe membership intervals.")
external_signals = _fact_asset(BY_SOURCE["signals"], "Externally produced signals, as ingested.")

# what every downstream asset depends on: the fact assets, named by their tables
FACT_ASSET_KEYS = [t.table for t in FACT_TABLES]
INGEST_ASSETS = [instruments, prices, macro_observations, funding_rates, corporate_actions,
                 universe_membership, external_signals]
