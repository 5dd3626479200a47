"""Per-partition materialization metadata for runs that cover many partitions (a single-run
backfill of a strategy x month range).

Dagster's public ``context.add_asset_metadata(..., partition_key=k)`` attaches metadata to the
materialization of one partition of the run. ``add_partition_metadata`` checks every key against
``context.partition_keys`` first, so a key the run does not target fails with the keys named,
before any metadata is added.

Cost: Dagster re-lists the run's partition range on each call (with a dynamic-partitions query),
so a run of n partitions spends O(n^2) here; Dagster has no public per-partition call without
that check (dagster-io/dagster#18123). The earlier shortcut wrote the step's private metadata
accumulator; it is gone: public API only (``bench/backfill.py`` measures a full-history run).
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg


def add_partition_metadata(context: dg.AssetExecutionContext,
                           metadata_by_partition: Mapping[str, Mapping[str, Any]],
                           asset_key: dg.AssetKey | None = None) -> None:
    """``metadata_by_partition``: partition key string -> metadata of that partition's
    materialization (of ``asset_key``, default the step's asset)."""
    if not metadata_by_partition:
        return
    targeted = {str(k) for k in context.partition_keys}
    stray = sorted(set(metadata_by_partition) - targeted)
    if stray:
        raise ValueError(f"metadata for partition(s) this run does not target: {stray[:5]}")
    for key, metadata in metadata_by_partition.items():
        context.add_asset_metadata(dict(metadata), asset_key=asset_key, partition_key=key)
