"""Partitions of the strategy side: ``strategy`` (dynamic, one key per registered configuration)
x ``month`` (monthly windows from the start of the data, the current month included).

The month dimension starts at ``HISTORY_START`` (``MACRO_PIPELINE_HISTORY_START``, default
1986-01-01, the first month of the bundled demo data). Months before a strategy's first data are
valid partitions that store nothing ("before-data")."""

import dagster as dg

from macro_pipeline.settings import load_settings

HISTORY_START = load_settings().history_start
STRATEGY_DIMENSION = "strategy"

strategy_partitions = dg.DynamicPartitionsDefinition(name=STRATEGY_DIMENSION)
month_partitions = dg.MonthlyPartitionsDefinition(start_date=HISTORY_START, end_offset=1)
strategy_month_partitions = dg.MultiPartitionsDefinition({"month": month_partitions, "strategy": strategy_partitions})


def partition_key(month: str, strategy_id: str) -> str:
    """The multi-partition key string of (month, strategy): "YYYY-MM-01|strategy-id"."""
    return f"{month}|{strategy_id}"


def months_by_strategy(keys) -> dict[str, list[str]]:
    """Group a run's partition keys (any mix of strategies and months) by strategy, months sorted.

    A single-run backfill of a two-dimension range may group by either dimension, so an asset
    must never assume one strategy per run."""
    out: dict[str, list[str]] = {}
    for key in keys:
        dims = key.keys_by_dimension if isinstance(key, dg.MultiPartitionKey) else dict(
            zip(("month", "strategy"), str(key).split("|"), strict=True))
        out.setdefault(dims["strategy"], []).append(dims["month"])
    return {s: sorted(set(m)) for s, m in sorted(out.items())}
