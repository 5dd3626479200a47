"""Partitions of the strategy side: ``strategy`` (dynamic, one key per registered configuration)
x ``month`` (monthly windows from the start of the demo history, the current month included)."""

import dagster as dg

HISTORY_START = "1990-01-01"

strategy_partitions = dg.DynamicPartitionsDefinition(name="strategy")
month_partitions = dg.MonthlyPartitionsDefinition(start_date=HISTORY_START, end_offset=1)
strategy_month_partitions = dg.MultiPartitionsDefinition({"month": month_partitions, "strategy": strategy_partitions})


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
