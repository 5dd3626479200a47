"""Asset checks of ingested data the backtests rely on: separate ``@asset_check``s, since
``prices`` is unpartitioned and only the ingest job writes it. Blocking: a failure stops the
downstream materializations. Each check is one SQL query over the warehouse.

(No ``from __future__ import annotations``: Dagster resolves resource types from annotations.)
"""

import dagster as dg
import sqlalchemy as sa

from macro_pipeline.defs.resources import WarehouseResource


def _count(warehouse: WarehouseResource, sql: str) -> int:
    with warehouse.engine().connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


@dg.asset_check(asset="prices", blocking=True, description="Every stored price is finite and positive; high >= low.")
def prices_positive_and_finite(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    bad = _count(warehouse, "SELECT count(*) FROM prices WHERE NOT (close > 0 AND close < 'Infinity'::float8) "
                            "OR (high IS NOT NULL AND low IS NOT NULL AND high < low)")
    return dg.AssetCheckResult(passed=bad == 0, metadata={"bad_rows": bad})


@dg.asset_check(asset="prices", blocking=True, description="No duplicate (instrument, date, known_at, recorded_at) keys.")
def prices_no_duplicate_keys(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    dups = _count(warehouse, "SELECT count(*) FROM (SELECT 1 FROM prices GROUP BY instrument_id, obs_date, known_at, "
                             "recorded_at HAVING count(*) > 1) d")
    return dg.AssetCheckResult(passed=dups == 0, metadata={"duplicate_keys": dups})


ASSET_CHECKS = [prices_positive_and_finite, prices_no_duplicate_keys]
