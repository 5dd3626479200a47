"""Room: warehouse/ingest/spec. The file formats: which columns each kind of file has, the rules
its values follow, and how it maps onto its fact table (``warehouse/tables.py``).

File formats (CSV with a header row, or Parquet; dates ISO 8601 ``YYYY-MM-DD``; timestamps ISO
8601, naive ones taken as UTC). ``known_at`` is optional everywhere: when absent, the instrument's
release rule (``ingest/release.py``) fills it.

| kind                | columns (required, *optional*)                                          |
|---------------------|-------------------------------------------------------------------------|
| ``prices``          | instrument_id, obs_date, close, *open, high, low, volume, known_at*     |
| ``macro``           | series_id, obs_date, value, *known_at*                                  |
| ``funding``         | instrument_id, ts, rate, interval_hours, *known_at*                     |
| ``corporate-actions``| instrument_id, ex_date, action (split|dividend), value, *known_at*     |
| ``universe``        | universe, instrument_id, valid_from, *valid_to, known_at*               |
| ``signals``         | signal_name, instrument_id, obs_date, value, *known_at*                 |
| ``instruments``     | instrument_id, asset_class, kind, *currency, calendar, release_rule,    |
|                     | description*                                                            |
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from macro_pipeline.warehouse.tables import BY_KIND, INGEST_KINDS, FactTable

SAFE_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# dates every layer can hold: pandas' nanosecond timestamps span 1677-09-21..2262-04-11; a day
# inside at both ends, so a date's whole session (and a release rule's later known_at) fits
FIRST_DATE, LAST_DATE = pd.Timestamp("1677-09-22"), pd.Timestamp("2262-04-10")


@dataclass(frozen=True)
class KindSpec:
    """How one kind of file maps onto its fact table, and the rules its rows follow."""

    fact: FactTable
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    default_rule: str | None = None  # None: the instrument's own release rule
    known_before_valid_ok: bool = False  # corporate actions/universe are announced in advance
    positive: tuple[str, ...] = ()  # must be > 0
    finite: tuple[str, ...] = ()  # must be finite when present
    names: tuple[str, ...] = ()  # text columns restricted to a safe character set
    register_kind: str = "spot"  # the kind an unknown instrument is registered with

    # the fact table's own attributes, named as ``FactTable`` names them
    kind = property(lambda self: self.fact.kind)
    table = property(lambda self: self.fact.table)
    entity = property(lambda self: self.fact.entity)
    keys = property(lambda self: self.fact.keys)
    valid = property(lambda self: self.fact.valid)
    values = property(lambda self: self.fact.values)
    timestamp_valid = property(lambda self: self.fact.timestamp_valid)
    columns = property(lambda self: self.fact.columns)


SPECS: dict[str, KindSpec] = {
    s.kind: s
    for s in (
        KindSpec(
            BY_KIND["prices"], required=("instrument_id", "obs_date", "close"),
            optional=("open", "high", "low", "volume", "known_at"),
            positive=("open", "high", "low", "close"), finite=("open", "high", "low", "close", "volume"),
        ),
        KindSpec(
            BY_KIND["macro"], required=("series_id", "obs_date", "value"), optional=("known_at",),
            finite=("value",), register_kind="macro",
        ),
        KindSpec(
            BY_KIND["funding"], required=("instrument_id", "ts", "rate", "interval_hours"),
            optional=("known_at",), default_rule="settlement",
            positive=("interval_hours",), finite=("rate", "interval_hours"), register_kind="perp",
        ),
        KindSpec(
            BY_KIND["corporate-actions"], required=("instrument_id", "ex_date", "action", "value"),
            optional=("known_at",), default_rule="same_day", known_before_valid_ok=True,
            positive=("value",), finite=("value",),
        ),
        KindSpec(
            BY_KIND["universe"], required=("universe", "instrument_id", "valid_from"),
            optional=("valid_to", "known_at"), default_rule="same_day", known_before_valid_ok=True,
            names=("universe",),
        ),
        KindSpec(
            BY_KIND["signals"], required=("signal_name", "instrument_id", "obs_date", "value"),
            optional=("known_at",), finite=("value",), names=("signal_name",),
        ),
    )
}
KINDS = INGEST_KINDS  # SPECS has one entry per fact table, in their order
DATE_COLS = {"obs_date", "ex_date", "valid_from", "valid_to"}
TEXT_COLS = {"instrument_id", "series_id", "universe", "signal_name", "action"}

INSTRUMENT_COLUMNS = ("instrument_id", "asset_class", "currency", "kind", "calendar", "release_rule", "description")
INSTRUMENT_DEFAULTS = {"currency": "USD", "calendar": "XNYS", "release_rule": None, "description": ""}
INSTRUMENT_KINDS = ("spot", "perp", "index", "macro")


@dataclass
class IngestReport:
    """What one ingest did: rows read, added, revisions, unchanged; its batch and recorded_at."""

    kind: str
    source: str
    rows_in_file: int
    rows_added: int = 0
    revisions_added: int = 0
    unchanged: int = 0
    batch_id: int | None = None
    recorded_at: datetime | None = None
    instruments_registered: list[str] = field(default_factory=list)

    def summary(self) -> str:
        mark = self.recorded_at.isoformat() if self.recorded_at else "nothing new"
        reg = f", registered {len(self.instruments_registered)} instrument(s)" if self.instruments_registered else ""
        return (
            f"{self.source}: {self.kind}: {self.rows_in_file} rows read, {self.rows_added} added, "
            f"{self.revisions_added} revision(s), {self.unchanged} unchanged{reg}; recorded_at={mark}"
        )
