"""Per-partition materialization metadata for runs that cover many partitions.

``context.add_asset_metadata(..., partition_key=k)`` re-lists every partition of the run's range
on each call (with a dynamic-partitions query per key), which makes a full-history run quadratic:
about 10 s of a 25 s run at 143 months, minutes at 491. ``add_partition_metadata`` checks the
keys once against ``context.partition_keys`` and records each partition's metadata on the step's
metadata accumulator, which is what ``add_asset_metadata`` itself does after its check. That
accumulator is Dagster-internal (checked on dagster 1.13; ``pyproject.toml`` pins <1.14): if it
is missing, the public call is used instead (slower, same result), and a test asserts that
per-partition metadata reaches the materializations.

Why not the public call only (issue #11 asked): measured on an in-memory instance, per asset, the
public call costs 1.3 s at 143 months and 16.7 s at 491 (0.07 s and 0.17 s here); three assets
pay it per run, more on PostgreSQL. Dagster has no public per-partition call without that check
(dagster-io/dagster#18123). Throughput (issue #14) decides: the shortcut stays, behind the check.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg


def add_partition_metadata(context: dg.AssetExecutionContext, metadata_by_partition: Mapping[str, Mapping[str, Any]],
                           asset_key: dg.AssetKey | None = None) -> None:
    """``metadata_by_partition``: partition key string -> metadata of that partition's
    materialization (of ``asset_key``, default the step's asset). A key the run does not target
    fails with the keys named, before any metadata is added."""
    if not metadata_by_partition:
        return
    targeted = {str(k) for k in context.partition_keys}
    stray = sorted(set(metadata_by_partition) - targeted)
    if stray:
        raise ValueError(f"metadata for partition(s) this run does not target: {stray[:5]}")
    step = getattr(context, "_step_execution_context", None)
    accumulator = getattr(step, "_metadata_accumulator", None)
    if step is None or not hasattr(accumulator, "with_additional_asset_metadata"):
        for key, metadata in metadata_by_partition.items():
            context.add_asset_metadata(dict(metadata), asset_key=asset_key, partition_key=key)
        return
    asset_key = asset_key or step.assets_def.key
    for key, metadata in metadata_by_partition.items():
        accumulator = accumulator.with_additional_asset_metadata(asset_key=asset_key, partition_key=key,
                                                                 metadata=dict(metadata))
    step._metadata_accumulator = accumulator
