"""Asset checks of ingested data the backtests rely on: separate ``@asset_check``s, since
``prices`` is unpartitioned and only the ingest job writes it. Blocking: a failure stops the
downstream materializations. Each check is one query of ``warehouse/checks.py``.

(No ``from __future__ import annotations``: Dagster resolves resource types from annotations.)
"""

import dagster as dg

from macro_pipeline.defs.resources import WarehouseResource
from macro_pipeline.warehouse.checks import bad_prices, duplicate_price_keys


@dg.asset_check(asset="prices", blocking=True, description="Every stored price is finite and positive; high >= low.")
def prices_positive_and_finite(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    bad = bad_prices(warehouse.engine())
    return dg.AssetCheckResult(passed=bad == 0, metadata={"bad_rows": bad})


@dg.asset_check(asset="prices", blocking=True, description="No duplicate (instrument, date, known_at, recorded_at) keys.")
def prices_no_duplicate_keys(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    dups = duplicate_price_keys(warehouse.engine())
    return dg.AssetCheckResult(passed=dups == 0, metadata={"duplicate_keys": dups})


ASSET_CHECKS = [prices_positive_and_finite, prices_no_duplicate_keys]
