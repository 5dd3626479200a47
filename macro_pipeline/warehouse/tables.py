"""Room: warehouse/tables. The one registry of the bitemporal fact tables (``sql/001``, ``sql/002``).

Every module that names a fact table, its key or its columns takes them from here: ingestion
(``ingest/spec.py`` adds the file format rules), point-in-time reads (``pit.py``, ``view.py``) and
the inventory (``inventory.py``). Each row of a fact table is one vintage: a value of
``keys`` at its valid time, known from ``known_at``, stored at ``recorded_at`` by ``batch_id``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FactTable:
    """One bitemporal fact table.

    ``source``: the name readers use (``PointInTimeReader`` reads, ``run_reads.source``);
    ``kind``: the ingest kind (the file format's name, ``macro-pipeline ingest <kind>``).
    """

    source: str
    kind: str
    table: str
    entity: str  # the column referencing instruments (or macro series)
    keys: tuple[str, ...]  # natural key without known_at, in the unique index's order
    valid: str  # the valid-time column: a date, or a timestamp when ``timestamp_valid``
    values: tuple[str, ...]  # the columns compared to detect a revision
    timestamp_valid: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns a file's rows fill: key, values, known_at."""
        return self.keys + tuple(v for v in self.values if v not in self.keys) + ("known_at",)

    @property
    def read_values(self) -> tuple[str, ...]:
        """What a point-in-time read returns besides entity and valid time: the other key
        columns (a corporate action's ``action``, a signal's ``signal_name``), then the values."""
        return tuple(k for k in self.keys if k not in (self.entity, self.valid)) + self.values


FACT_TABLES: tuple[FactTable, ...] = (
    FactTable("prices", "prices", "prices", "instrument_id", ("instrument_id", "obs_date"), "obs_date",
              ("open", "high", "low", "close", "volume")),
    FactTable("macro", "macro", "macro_observations", "series_id", ("series_id", "obs_date"), "obs_date",
              ("value",)),
    FactTable("funding", "funding", "funding_rates", "instrument_id", ("instrument_id", "ts"), "ts",
              ("rate", "interval_hours"), timestamp_valid=True),
    FactTable("corporate_actions", "corporate-actions", "corporate_actions", "instrument_id",
              ("instrument_id", "ex_date", "action"), "ex_date", ("value",)),
    FactTable("universe", "universe", "universe_membership", "instrument_id",
              ("universe", "instrument_id", "valid_from"), "valid_from", ("valid_to",)),
    FactTable("signals", "signals", "external_signals", "instrument_id",
              ("signal_name", "instrument_id", "obs_date"), "obs_date", ("value",)),
)
BY_SOURCE: dict[str, FactTable] = {t.source: t for t in FACT_TABLES}
BY_KIND: dict[str, FactTable] = {t.kind: t for t in FACT_TABLES}
# what ``macro-pipeline ingest`` loads: every fact table's kind, and the instruments themselves
# (``ingest/spec.py`` gives each its file format)
INGEST_KINDS: tuple[str, ...] = (*BY_KIND, "instruments")

# the other tables, reference data and results (row counts in the inventory)
OTHER_TABLES = ("instruments", "ingest_batches", "strategies", "signal_snapshots", "signals",
                "backtest_runs", "daily_equity", "fills", "round_trips", "metrics")
