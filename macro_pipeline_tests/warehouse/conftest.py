"""Fixtures of the warehouse tests."""

from __future__ import annotations

import pandas as pd
import pytest

from macro_pipeline.warehouse.ingest import ingest


@pytest.fixture
def results_wh(engine):
    """A migrated warehouse with two instruments (AAA, BBB) and one strategy (s1, params hash h1):
    what snapshots and runs reference."""
    ingest(engine, "instruments", pd.DataFrame({"instrument_id": ["AAA", "BBB"], "asset_class": "equity", "kind": "spot"}))
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO strategies (strategy_id, kind, params, params_hash, universe) "
                             "VALUES ('s1', 'buy_and_hold', '{}', 'h1', 'U')")
    return engine
