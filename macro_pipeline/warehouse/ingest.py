"""Ingestion: validate a whole file first, then bulk-load it through COPY in one transaction.

File formats (CSV with a header row, or Parquet; dates ISO 8601 ``YYYY-MM-DD``; timestamps ISO 8601,
naive ones taken as UTC). ``known_at`` is optional everywhere: when absent, the instrument's
release rule (``warehouse/release.py``) fills it.

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

What happens, in order:
1. read the file (pyarrow; empty lines are kept so line numbers stay true);
2. validate every rule over every row and raise ``IngestValidationError`` listing each broken rule
   with the file, the first few line numbers and a count; nothing has been written;
3. in one transaction, serialized with other ingests by an advisory lock: fill known_at from the
   release rules if the file has none, refuse prices known before their session's close on their
   instrument's calendar (``known-before-close``), take ``recorded_at`` from the database clock,
   COPY the rows into staging, then a set-based ``INSERT ... SELECT`` stores the rows that are
   new: a key never seen (added) or a key whose stored version with the same ``known_at`` has
   other values (a revision or correction). Rows identical to their stored version are skipped,
   so re-ingesting a file adds nothing (and then not even a batch row is written). When known_at
   came from the rule, a row over a stored key is refused (``rewrites-history``: rolled back, rows
   named with stored and new values) unless ``correction=True``: the rule would give the new value
   the first print's known_at. Files of more than ``STAGE_CHUNK_ROWS`` rows are staged and
   inserted in chunks that never split a key (``_Staging``): a second connection COPYs chunk k + 1
   into an unlogged table while the transaction inserts chunk k, so the COPY overlaps the INSERT.

Speed (5M price rows; ``bench/ingest.py``): the file is memory-mapped, not copied; text columns
become Categoricals, so string work is per distinct id; known_at is computed per (instrument
rule, calendar, distinct day); the staging COPY is binary (``pgcopy``: no text formatting, no
parsing in the server), ``FREEZE``, in the unique index's order (so the INSERT appends at the
B-tree's right edge) and overlapped with the INSERT. Most of the time left is the INSERT itself
(~2 s per million rows): per row, a heap insert, a unique B-tree insert, a BRIN update and seven
CHECKs, with their WAL; all of it is the schema's own work, none is the staging's.
``logging`` at DEBUG shows the time of each step.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa
from tqdm.auto import tqdm

from macro_pipeline.warehouse import pgcopy, release
from macro_pipeline.warehouse.errors import IngestValidationError, Problem

log = logging.getLogger(__name__)
from macro_pipeline.warehouse.pit import INGEST_LOCK  # noqa: E402  (shared with readers)

SAFE_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(?i:inf|infinity|nan)")
# dates every layer can hold: pandas' nanosecond timestamps span 1677-09-21..2262-04-11; a day
# inside at both ends, so a date's whole session (and a release rule's later known_at) fits
FIRST_DATE, LAST_DATE = pd.Timestamp("1677-09-22"), pd.Timestamp("2262-04-10")
COPY_READ_BYTES = 1 << 20  # bytes the driver takes per read of the COPY stream
CALENDAR_LOCK = 13_007  # advisory lock namespace (two-key form) of calendar registration
STAGE_SCHEMA = "ingest_staging"  # sql/005_ingest_staging.sql
# rows per staging table: small enough that the first INSERT starts soon (the COPY of the first
# chunk is the only one not overlapped), large enough that per-statement costs stay negligible
STAGE_CHUNK_ROWS = 500_000


@dataclass(frozen=True)
class KindSpec:
    """How one kind of file maps onto its bitemporal table."""

    kind: str
    table: str
    entity: str  # column referencing instruments
    keys: tuple[str, ...]  # natural key without known_at
    valid_col: str  # the valid-time column (date or timestamp)
    values: tuple[str, ...]  # compared to detect revisions
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    timestamp_valid: bool = False  # valid time is a timestamp (funding), else a date
    default_rule: str | None = None  # None: the instrument's own release rule
    known_before_valid_ok: bool = False  # corporate actions/universe are announced in advance
    positive: tuple[str, ...] = ()  # must be > 0
    finite: tuple[str, ...] = ()  # must be finite when present
    names: tuple[str, ...] = ()  # text columns restricted to a safe character set
    register_kind: str = "spot"

    @property
    def columns(self) -> tuple[str, ...]:
        return self.keys + tuple(v for v in self.values if v not in self.keys) + ("known_at",)


SPECS: dict[str, KindSpec] = {
    s.kind: s
    for s in (
        KindSpec(
            "prices", "prices", "instrument_id", ("instrument_id", "obs_date"), "obs_date",
            ("open", "high", "low", "close", "volume"),
            required=("instrument_id", "obs_date", "close"),
            optional=("open", "high", "low", "volume", "known_at"),
            positive=("open", "high", "low", "close"), finite=("open", "high", "low", "close", "volume"),
        ),
        KindSpec(
            "macro", "macro_observations", "series_id", ("series_id", "obs_date"), "obs_date",
            ("value",), required=("series_id", "obs_date", "value"), optional=("known_at",),
            finite=("value",), register_kind="macro",
        ),
        KindSpec(
            "funding", "funding_rates", "instrument_id", ("instrument_id", "ts"), "ts",
            ("rate", "interval_hours"), required=("instrument_id", "ts", "rate", "interval_hours"),
            optional=("known_at",), timestamp_valid=True, default_rule="settlement",
            positive=("interval_hours",), finite=("rate", "interval_hours"), register_kind="perp",
        ),
        KindSpec(
            "corporate-actions", "corporate_actions", "instrument_id",
            ("instrument_id", "ex_date", "action"), "ex_date", ("value",),
            required=("instrument_id", "ex_date", "action", "value"), optional=("known_at",),
            default_rule="same_day", known_before_valid_ok=True, positive=("value",), finite=("value",),
        ),
        KindSpec(
            "universe", "universe_membership", "instrument_id",
            ("universe", "instrument_id", "valid_from"), "valid_from", ("valid_to",),
            required=("universe", "instrument_id", "valid_from"), optional=("valid_to", "known_at"),
            default_rule="same_day", known_before_valid_ok=True, names=("universe",),
        ),
        KindSpec(
            "signals", "external_signals", "instrument_id",
            ("signal_name", "instrument_id", "obs_date"), "obs_date", ("value",),
            required=("signal_name", "instrument_id", "obs_date", "value"), optional=("known_at",),
            finite=("value",), names=("signal_name",),
        ),
    )
}
KINDS = tuple(SPECS) + ("instruments",)
DATE_COLS = {"obs_date", "ex_date", "valid_from", "valid_to"}
TEXT_COLS = {"instrument_id", "series_id", "universe", "signal_name", "action"}

INSTRUMENT_COLUMNS = ("instrument_id", "asset_class", "currency", "kind", "calendar", "release_rule", "description")
INSTRUMENT_DEFAULTS = {"currency": "USD", "calendar": "XNYS", "release_rule": None, "description": ""}
INSTRUMENT_KINDS = ("spot", "perp", "index", "macro")


@dataclass
class IngestReport:
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


@contextlib.contextmanager
def _phase(what: str):
    """Log how long a step took (DEBUG level): where an ingest spends its time."""
    start = time.perf_counter()
    yield
    log.debug("%s: %.2f s", what, time.perf_counter() - start)


# --------------------------------------------------------------------------- reading


@dataclass
class RawFile:
    frame: pd.DataFrame
    row_labels: np.ndarray  # what a person looks for: file line numbers (CSV) or row numbers
    row_word: str
    sha256: str | None


def read_file(path: str | Path) -> RawFile:
    """Read CSV (optionally .gz) or Parquet without coercing types (validation does that).

    The file is memory-mapped (no copy of it in memory; pyarrow parses the mapped pages) and its
    SHA-256 is computed on another thread while it is parsed (hashlib releases the GIL).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        what = "a directory" if path.is_dir() else "not a regular file (a device, FIFO or socket)"
        raise IngestValidationError(str(path), [Problem("not-a-file", f"{path} is {what}; give a CSV or Parquet file", [])])
    data = pa.memory_map(str(path)).read_buffer()  # unmapped when the last reference goes
    with ThreadPoolExecutor(max_workers=1) as pool:
        sha = pool.submit(lambda: hashlib.sha256(memoryview(data)).hexdigest())
        frame, row_labels, row_word = _parse(path, data)
        return RawFile(frame, row_labels, row_word, sha.result())


def _parse(path: Path, data: pa.Buffer) -> tuple[pd.DataFrame, np.ndarray, str]:
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pq.read_table(pa.BufferReader(data)).to_pandas(date_as_object=False)
            return frame, np.arange(1, len(frame) + 1), "row"
        table = _read_csv(data, name)
        # pyarrow's type inference reads what the formats do not allow: a date with a time zone
        # becomes a UTC instant (Tokyo 2019-03-04 00:00 the 3rd) and 0x10 an integer (16). Such
        # columns are read again as text, which validation parses by the formats' own rules.
        ints = any(pa.types.is_integer(t) for t in table.schema.types)
        hexa = ints and _has_hex(data, name)
        retype = {c: pa.string() for c, t in zip(table.column_names, table.schema.types, strict=True)
                  if (c.strip() in DATE_COLS and pa.types.is_timestamp(t)) or (pa.types.is_integer(t) and hexa)}
        if retype:
            table = _read_csv(data, name, retype)
    except (pa.ArrowInvalid, OSError) as exc:
        if "Empty CSV file" in str(exc):
            raise IngestValidationError(str(path), [Problem("empty-file", "the file is empty (not even a header)", [])]) from None
        raise IngestValidationError(str(path), [Problem("malformed-file", f"cannot parse: {exc}",
                                                        _bad_field_count_line(data, name))]) from None
    if any(pa.types.is_binary(t) or pa.types.is_large_binary(t) for t in table.schema.types):
        raise IngestValidationError(str(path), [_not_utf8(data, name)])  # pyarrow keeps such text as bytes
    names = [str(c).strip() for c in table.column_names]
    if dup := sorted({c for c in names if names.count(c) > 1}):
        raise IngestValidationError(str(path), [Problem("duplicate-column", f"column(s) {dup} appear more than once "
                                                        "in the header", [1])])
    # dates as datetime64 (not millions of datetime.date objects); validation still checks them
    frame = table.to_pandas(date_as_object=False)
    return frame, np.arange(2, len(frame) + 2), "line"


def _bad_field_count_line(data: pa.Buffer, name: str) -> list[int]:
    """The first line whose number of fields differs from the header's (pyarrow's "Expected 3
    columns, got 4" names the row's text, not its line); [] when the file is no such CSV."""
    if name.endswith((".parquet", ".pq")):
        return []
    try:
        raw = bytes(data) if not name.endswith(".gz") else pa.input_stream(pa.BufferReader(data), compression="gzip").read()
        reader = csv.reader(io.StringIO(raw.decode("utf-8", errors="replace"), newline=""))
        width = len(next(reader))
        for row in reader:
            if row and len(row) != width:
                return [reader.line_num]
    except (csv.Error, StopIteration, OSError):
        pass
    return []


def _read_csv(data: pa.Buffer, name: str, column_types: dict | None = None) -> pa.Table:
    return pacsv.read_csv(
        pa.BufferReader(data) if not name.endswith(".gz") else pa.input_stream(pa.BufferReader(data), compression="gzip"),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(strings_can_be_null=True, quoted_strings_can_be_null=True,
                                             column_types=column_types or {}),
    )


def _has_hex(data: pa.Buffer, name: str) -> bool:
    """Whether the file has ``0x`` anywhere (searched in place, no copy; a gzip file is inflated)."""
    text = memoryview(data) if not name.endswith(".gz") else pa.input_stream(pa.BufferReader(data), compression="gzip").read()
    return re.search(rb"0[xX]", text) is not None


def _not_utf8(data: pa.Buffer, name: str) -> Problem:
    """The first line that is not UTF-8 (a Latin-1 file, say): pyarrow keeps such a column as
    bytes, and converting them to text failed later with no file or line."""
    raw = bytes(data) if not name.endswith(".gz") else pa.input_stream(pa.BufferReader(data), compression="gzip").read()
    try:
        raw.decode("utf-8")
        return Problem("not-utf8", "the file is not UTF-8; save it as UTF-8", [])
    except UnicodeDecodeError as bad:
        return Problem("not-utf8", f"not UTF-8 (byte {raw[bad.start:bad.start + 1]!r}: {bad.reason}); "
                       "save the file as UTF-8", [raw.count(b"\n", 0, bad.start) + 1])


def frame_input(frame: pd.DataFrame) -> RawFile:
    """An in-memory frame (demo data, tests) goes through exactly the same validation."""
    return RawFile(frame.reset_index(drop=True), np.arange(1, len(frame) + 1), "row", None)


# --------------------------------------------------------------------------- validation


class _Checker:
    def __init__(self, raw: RawFile):
        self.raw = raw
        self.problems: list[Problem] = []

    def add(self, rule: str, detail: str, mask: np.ndarray | None = None) -> None:
        rows = [] if mask is None else self.raw.row_labels[np.asarray(mask, dtype=bool)].tolist()
        if mask is None or rows:
            self.problems.append(Problem(rule, detail, rows, self.raw.row_word))

    def header(self, rule: str, detail: str) -> None:
        """A problem of the header: line 1 of a CSV file (a Parquet file has no lines: the whole file)."""
        self.problems.append(Problem(rule, detail, _header_line(self.raw), self.raw.row_word))


def _header_line(raw: RawFile) -> list[int]:
    return [1] if raw.row_word == "line" else []


def _as_date(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Parse ISO dates; returns (datetime64 normalized, mask of unparseable non-null values)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        # a zoned value's date is the one written in its own zone (Tokyo 2019-03-04 00:00 is the
        # 4th, not the UTC 3rd): a date column holds calendar dates, not instants
        out = s.dt.tz_localize(None) if getattr(s.dt, "tz", None) else s
        return out.dt.normalize().astype("datetime64[us]"), np.zeros(len(s), bool)
    if s.dtype == object and len(s) and isinstance(s.dropna().iloc[0] if s.notna().any() else None, (pd.Timestamp, datetime)):
        s = s.map(lambda v: v.isoformat() if isinstance(v, (pd.Timestamp, datetime)) else v)
    text = s.astype("string")
    out = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce").astype("datetime64[us]")
    bad_fmt = out.isna() & text.notna()
    if bad_fmt.any():
        # ISO with a time part (and maybe an offset, even mixed ones) is accepted: the date is
        # the one written, checked to be a real timestamp first
        rest = text[bad_fmt]
        real = pd.to_datetime(rest, format="ISO8601", errors="coerce", utc=True).notna()
        written = pd.to_datetime(rest.str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
        out[bad_fmt] = written.where(real & rest.str.match(r"^\d{4}-\d{2}-\d{2}[T ]")).astype("datetime64[us]")
    bad = (out.isna() & s.notna()).to_numpy()
    return out.dt.normalize().astype("datetime64[us]"), bad


def _as_timestamp(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s
    else:
        out = pd.to_datetime(s.astype("string"), format="ISO8601", errors="coerce", utc=True)
    out = out.dt.tz_localize("UTC") if getattr(out.dt, "tz", None) is None else out.dt.tz_convert("UTC")
    bad = (out.isna() & s.notna()).to_numpy()
    return out.astype("datetime64[us, UTC]"), bad


def _as_float(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.astype("float64"), np.zeros(len(s), bool)
    text = s.astype("string")
    out = pd.to_numeric(text, errors="coerce").astype("float64")
    # pyarrow's cast also reads hexadecimal (0x10 -> 16) and other notations: only decimal
    # numbers (and inf/nan words, which their own rules refuse) count, checked per distinct value
    codes, uniques = pd.factorize(text.str.strip())
    plain = pd.Series(uniques, dtype="string").str.fullmatch(DECIMAL.pattern).fillna(False).to_numpy(dtype=bool)
    out[~np.append(plain, True)[codes]] = np.nan
    bad = (out.isna() & s.notna() & (text.str.strip() != "")).to_numpy()
    return out, bad


def _outside(when: pd.Series) -> np.ndarray:
    """Rows dated outside ``FIRST_DATE..LAST_DATE`` (every kind: prices failed later with a raw
    out-of-bounds error, the other kinds stored such dates)."""
    tz = getattr(when.dt, "tz", None)
    lo, hi = (FIRST_DATE, LAST_DATE) if tz is None else (FIRST_DATE.tz_localize(tz), LAST_DATE.tz_localize(tz))
    return ((when < lo) | (when > hi + pd.Timedelta(days=1))).to_numpy(dtype=bool, na_value=False)


def _unsafe(text: pd.Series, pattern: re.Pattern) -> np.ndarray:
    """Rows whose (non-null) text breaks ``pattern``; each distinct value is matched once."""
    codes, uniques = pd.factorize(text)
    bad = ~pd.Series(uniques, dtype="string").str.fullmatch(pattern.pattern).fillna(True).to_numpy(dtype=bool)
    return np.append(bad, False)[codes]  # code -1 (null) -> the appended False


def _text(s: pd.Series) -> pd.Series:
    """Stripped text as a Categorical.

    Ids repeat millions of times over a few thousand distinct values: stripping, pattern checks,
    instrument lookups and UTF-8 encoding then run once per distinct value, rows carry codes.
    """
    codes, uniques = pd.factorize(s)
    stripped = pd.Series(uniques, dtype="string").str.strip()
    remap, categories = pd.factorize(stripped)  # " AAA" and "AAA" become one category
    codes = np.where(codes >= 0, np.append(remap, -1)[codes], -1)
    return pd.Series(pd.Categorical.from_codes(codes, categories=categories.astype("string")), index=s.index)


def _row_codes(parts: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """One int64 per row ordering rows like the tuple of their codes (a mixed-radix number).

    ``parts``: (codes in [0, base), base) per column, most significant first. Before the number
    could overflow, the partial result is renumbered by dense rank (which keeps its order).
    """
    combined, radix = np.zeros(len(parts[0][0]), dtype="int64"), 1
    for codes, base in parts:
        if radix * base >= 2**62:
            combined = np.unique(combined, return_inverse=True)[1].reshape(-1).astype("int64")
            radix = int(combined.max()) + 1
        combined = combined * base + codes
        radix *= base
    return combined


def _order_codes(s: pd.Series) -> tuple[np.ndarray, int]:
    """(codes, base): integers in [0, base) ordered like the values, 0 for null.

    Dates (validated: whole days) use their day number, no hashing; other columns are factorized
    with sorted uniques (a Categorical by its categories).
    """
    if s.name in DATE_COLS and s.dtype == "datetime64[us]":
        values = s.to_numpy()
        nat = np.isnat(values)
        days = values.astype("datetime64[D]").view("int64")
        lo = 0 if nat.all() else int(days[~nat].min())
        codes = np.where(nat, 0, days - lo + 1)
        return codes, int(codes.max()) + 1
    codes, uniques = pd.factorize(s, sort=True)
    return codes.astype("int64") + 1, len(uniques) + 1


def _is_increasing(codes: np.ndarray) -> bool:
    return len(codes) < 2 or bool(np.all(codes[1:] > codes[:-1]))


def _duplicated(frame: pd.DataFrame, key: list[str]) -> np.ndarray:
    """Rows whose key occurs more than once (all of them), through one int64 code per row.

    Files usually come sorted by key: a strictly increasing code proves there is no duplicate
    without hashing. Nulls compare equal to each other, as in ``DataFrame.duplicated``.
    """
    combined = _row_codes([_order_codes(frame[c]) for c in key])
    if _is_increasing(combined):
        return np.zeros(len(frame), dtype=bool)
    return pd.Series(combined).duplicated(keep=False).to_numpy()


def validate(
    spec: KindSpec, raw: RawFile, source: str, known_instruments: set[str] | None = None
) -> pd.DataFrame:
    """Check every rule; return the typed frame or raise listing every broken rule.

    ``known_instruments``: registered ids; others are an error (None: not checked).
    """
    df = raw.frame
    chk = _Checker(raw)
    cols = [str(c).strip() for c in df.columns]
    df = df.set_axis(cols, axis=1)
    missing = [c for c in spec.required if c not in cols]
    unknown = [c for c in cols if c not in spec.required + spec.optional]
    if missing:
        chk.header("missing-columns", f"required column(s) {missing} not in header {cols}")
    if unknown:
        chk.header("unknown-columns", f"column(s) {unknown} are not part of the {spec.kind} format "
                f"(expected {list(spec.required)} and optionally {list(spec.optional)})")
    if missing or unknown:
        raise IngestValidationError(source, chk.problems)
    if len(df) == 0:
        raise IngestValidationError(source, [Problem("empty-file", "the file has no data rows (only a header)",
                                                     _header_line(raw), raw.row_word)])

    out = pd.DataFrame(index=df.index)
    blank = df.isna().all(axis=1).to_numpy()
    chk.add("blank-row", "empty line", blank)
    for c in cols:
        s = df[c]
        if c in TEXT_COLS:
            out[c] = text = _text(s)
            if c in spec.required:
                chk.add("missing-value", f"{c} is empty", (text.isna() | (text == "")).to_numpy() & ~blank)
        elif c in DATE_COLS:
            out[c], bad = _as_date(s)
            chk.add("unparseable-date", f"{c} is not an ISO date (YYYY-MM-DD)", bad)
            chk.add("date-out-of-range", f"{c} outside {FIRST_DATE.date()}..{LAST_DATE.date()}", _outside(out[c]))
            if c in spec.required:
                chk.add("missing-value", f"{c} is empty", s.isna().to_numpy() & ~blank)
        elif c in ("ts", "known_at"):
            out[c], bad = _as_timestamp(s)
            chk.add("unparseable-date", f"{c} is not an ISO 8601 timestamp", bad)
            chk.add("date-out-of-range", f"{c} outside {FIRST_DATE.date()}..{LAST_DATE.date()}", _outside(out[c]))
            if c in spec.required:
                chk.add("missing-value", f"{c} is empty", s.isna().to_numpy() & ~blank)
            elif c == "known_at":
                chk.add("missing-value", "known_at is empty (omit the column to use the release rule)",
                        s.isna().to_numpy() & ~blank)
        else:
            out[c], bad = _as_float(s)
            chk.add("unparseable-number", f"{c} is not a number", bad)
            v = out[c].to_numpy()
            if c in spec.required:
                chk.add("missing-value", f"{c} is empty or NaN", np.isnan(v) & ~bad & ~blank)
            if c in spec.finite:
                chk.add("non-finite", f"{c} is infinite", np.isinf(v))
            if c in spec.positive:
                chk.add("non-positive", f"{c} must be > 0", (v <= 0) & np.isfinite(v))

    if spec.kind == "prices" and {"high", "low"} <= set(cols):
        chk.add("high-below-low", "high < low", (out["high"] < out["low"]).to_numpy())
    if spec.kind == "prices":
        for c in ("open", "close"):
            if c in cols and {"high", "low"} <= set(cols):
                v, hi, lo = out[c], out["high"], out["low"]
                sane = np.isfinite(v.to_numpy()) & (v.to_numpy() > 0)
                chk.add("outside-high-low", f"{c} outside [low, high]", ((v > hi) | (v < lo)).to_numpy() & sane)
        if "volume" in cols:
            chk.add("negative-volume", "volume < 0", (out["volume"] < 0).to_numpy())
    if spec.kind == "corporate-actions" and "action" in out:
        bad = ~out["action"].isin(["split", "dividend"]).to_numpy() & out["action"].notna().to_numpy()
        chk.add("unknown-action", "action must be 'split' or 'dividend'", bad)
    if spec.kind == "universe" and "valid_to" in out:
        chk.add("empty-interval", "valid_to must be after valid_from",
                (out["valid_to"] <= out["valid_from"]).to_numpy())

    ids = out[spec.entity]
    chk.add("unsafe-id", f"{spec.entity} must match [A-Za-z0-9_.-]{{1,32}}", _unsafe(ids, SAFE_ID))
    for c in spec.names:
        chk.add("unsafe-id", f"{c} must match [A-Za-z0-9_.-]{{1,64}}", _unsafe(out[c], SAFE_NAME))

    if "known_at" in out and not spec.known_before_valid_ok:
        valid = out[spec.valid_col]
        start = valid.dt.tz_localize("UTC") if not spec.timestamp_valid else valid
        chk.add("known-before-valid", f"known_at before {spec.valid_col}: a value cannot be known "
                "before the time it is about", (out["known_at"] < start).to_numpy())

    key = list(spec.keys) + (["known_at"] if "known_at" in out else [])
    if not chk.problems:
        dup = _duplicated(out, key)
        chk.add("duplicate-key", f"duplicate key ({', '.join(key)}) within the file", dup)
    if known_instruments is not None:
        unknown = sorted(set(ids.dropna().unique()) - set(known_instruments))
        if unknown:
            chk.add("unknown-instrument",
                    f"{spec.entity} not registered: {unknown[:10]}{' ...' if len(unknown) > 10 else ''} "
                    "(register them with `ingest instruments` or pass --register-instruments)",
                    ids.isin(unknown).to_numpy())
    if chk.problems:
        raise IngestValidationError(source, chk.problems)
    for c in spec.values:  # optional value columns the file left out are stored as NULL
        if c not in out:
            out[c] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[us]") if c in DATE_COLS else np.nan
    return out


# --------------------------------------------------------------------------- writing


def _instrument_rows(conn: sa.Connection, ids: list[str]) -> pd.DataFrame:
    rows = conn.execute(
        sa.text("SELECT instrument_id, kind, calendar, release_rule FROM instruments WHERE instrument_id = ANY(:ids)"),
        {"ids": ids},
    ).all()
    return pd.DataFrame(rows, columns=["instrument_id", "kind", "calendar", "release_rule"])


def _register(conn: sa.Connection, spec: KindSpec, ids: list[str], rule: str | None = None) -> None:
    """Register unknown ids with defaults for the kind; ``rule`` overrides the release rule
    (a daily macro series such as a yield needs ``close``, not the quarterly default)."""
    kind = spec.register_kind
    calendar = release.ALWAYS_OPEN if kind == "perp" else "XNYS"
    rule = rule or {"macro": "quarterly_30d", "perp": "close"}.get(kind, "close")
    conn.execute(
        sa.text(
            "INSERT INTO instruments (instrument_id, asset_class, kind, calendar, release_rule, description) "
            "VALUES (:i, 'unknown', :k, :c, :r, 'registered by ingest') ON CONFLICT DO NOTHING"
        ),
        [{"i": i, "k": kind, "c": calendar, "r": rule} for i in ids],
    )
    ensure_calendars(conn, [calendar])


def ensure_calendars(conn: sa.Connection, calendars: list[str]) -> None:
    """Store the sessions (with real close times) of each exchange calendar in use, once.

    Two ingests registering instruments on a new calendar at once both found it missing and both
    copied it (one failed on the primary key): a transaction-scoped advisory lock per calendar
    makes the second wait for the first's commit, then find the sessions stored."""
    for name in sorted(set(calendars) - {release.ALWAYS_OPEN}):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:c))"), {"ns": CALENDAR_LOCK, "c": name})
        if conn.execute(sa.text("SELECT 1 FROM calendar_sessions WHERE calendar = :c LIMIT 1"), {"c": name}).first():
            continue
        closes = release.session_closes(name)
        buf = io.StringIO()
        pd.DataFrame({"c": name, "d": closes.index.strftime("%Y-%m-%d"), "t": closes.dt.strftime("%Y-%m-%dT%H:%M:%SZ")}).to_csv(
            buf, index=False, header=False
        )
        buf.seek(0)
        dbapi = conn.connection.dbapi_connection
        with dbapi.cursor() as cur:
            cur.copy_expert("COPY calendar_sessions (calendar, session_date, close_at) FROM STDIN WITH (FORMAT csv)", buf)


def _fill_known_at(conn: sa.Connection, spec: KindSpec, frame: pd.DataFrame, model: release.ReleaseModel) -> pd.DataFrame:
    """Add known_at from the release rules when the file has none.

    The rule and calendar belong to the instrument, so rows are mapped to instruments by integer
    code (``pd.factorize``) and the rule is evaluated per distinct day (``release.known_at_by_group``).
    """
    if "known_at" in frame:
        return frame
    if spec.default_rule is not None:
        group = np.zeros(len(frame), dtype="int64")
        rules, calendars = [spec.default_rule], [release.ALWAYS_OPEN]
    else:
        group, ids = pd.factorize(frame[spec.entity])
        meta = _instrument_rows(conn, ids.tolist()).set_index("instrument_id").reindex(ids)
        rules, calendars = meta["release_rule"].tolist(), meta["calendar"].tolist()
    known = release.known_at_by_group(frame[spec.valid_col], group, rules, calendars, model)
    return frame.assign(known_at=pd.Series(known, index=frame.index).dt.tz_localize("UTC"))


def _collation_rank(conn: sa.Connection, values: list[str]) -> np.ndarray:
    """Rank of each distinct text value in the database's collation (the order its indexes use)."""
    positions = conn.execute(
        sa.text("SELECT ord FROM unnest(CAST(:v AS text[])) WITH ORDINALITY AS u(v, ord) ORDER BY v"), {"v": values}
    ).scalars().all()
    rank = np.empty(len(values), dtype="int64")
    rank[np.asarray(positions, dtype="int64") - 1] = np.arange(len(values))
    return rank


def _index_order(conn: sa.Connection, spec: KindSpec, frame: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray]:
    """(order, keys): the row order of the table's unique index (key ascending, known_at
    descending), None when the rows are in that order already (files usually are); and one int64
    per row, in that order, equal for the rows of one key (for ``_chunk_bounds``).

    Rows stored in index order append at the right edge of the B-tree. A file sorted another way
    (by date, then instrument) makes the INSERT split pages all over the index instead: 1.7x
    slower at 1M rows. Text keys are ranked in the database's collation, as the index is.
    """
    parts = []
    for c in spec.keys:
        if c in TEXT_COLS:
            codes, uniques = pd.factorize(frame[c])
            parts.append((_collation_rank(conn, [str(u) for u in uniques])[codes], len(uniques)))
        else:
            parts.append(_order_codes(frame[c]))
    keys = _row_codes(parts)
    if _is_increasing(keys):  # keys strictly increasing: known_at cannot matter
        return None, keys
    codes, base = _order_codes(frame["known_at"])
    order = np.argsort(_row_codes(parts + [(base - codes, base + 1)]), kind="stable")
    return order, keys[order]


def _copy_columns(frame: pd.DataFrame) -> list[pgcopy.Column]:
    """The frame's columns as binary COPY columns; NaN in a float column is stored as NULL."""
    out = []
    for c in frame.columns:
        s = frame[c]
        if c in DATE_COLS:
            out.append(pgcopy.date(s))
        elif pd.api.types.is_datetime64_any_dtype(s):
            out.append(pgcopy.timestamptz(s))
        elif pd.api.types.is_float_dtype(s):
            values = s.to_numpy(dtype="float64")
            out.append(pgcopy.float8(values, nulls=np.isnan(values)))
        else:
            out.append(pgcopy.text(s))
    return out


def _copy_frame(cur, table: str, frame: pd.DataFrame) -> None:
    """Binary COPY of the frame into ``table``: no text formatting here, no parsing in the server.

    The stream is encoded piece by piece as the driver reads it, so the server stores one piece
    while Python encodes the next.
    """
    stream = pgcopy.encode(_copy_columns(frame))
    # FREEZE (the table was created in this transaction): rows are stored frozen, so reading them
    # back does not set hint bits, which would dirty and rewrite every page of the staging table
    cur.copy_expert(f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN WITH (FORMAT binary, FREEZE)",
                    pgcopy.Reader(stream), size=COPY_READ_BYTES)


def _chunk_bounds(keys: np.ndarray, rows: int) -> list[tuple[int, int]]:
    """Row ranges ``[start, stop)`` of about ``rows`` rows that never split a key.

    ``keys``: one code per row in index order (``_index_order``), so the rows of one key (several
    ``known_at``) are adjacent and stay in one chunk: whether such a key is *added* or a
    *revision* is then decided by one statement, exactly as if the file were inserted at once.
    """
    n = len(keys)
    if n <= rows:
        return [(0, n)]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])  # first row of each key
    at = np.searchsorted(starts, np.arange(rows, n, rows))  # the next key start from each multiple
    cuts = np.unique(starts[at[at < len(starts)]])
    edges = [0, *[int(c) for c in cuts if 0 < c < n], n]
    return list(zip(edges[:-1], edges[1:], strict=True))


class _Staging:
    """Staging tables COPYed on a second connection while the ingest's transaction inserts from them.

    ``start`` copies each chunk of the frame into its own unlogged table in the ``ingest_staging``
    schema (``sql/005_ingest_staging.sql``), created, filled (``FREEZE``) and committed one after
    the other on a thread; ``tables`` yields each name once it is committed. So the transaction's
    INSERT of chunk k runs in one server process while another stores chunk k + 1: with a core
    to spare, the COPY no longer adds to the time of the INSERT. The staged rows are scratch: the
    fact tables are written only by the ingest's own transaction, after validation, all or
    nothing. A frame of one chunk is staged in a temporary table of the transaction instead.

    Leaving the context drops the tables; use it around the transaction, whose INSERTs lock them
    until it ends. Tables of an ingest whose process died are dropped by the next ingest of any
    size, and by any command at start when no ingest runs (``drop_stale_staging``).
    """

    def __init__(self, engine: sa.Engine):
        self.engine = self._engine = engine
        self._dbapi = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready: queue.Queue = queue.Queue()
        self._created: list[str] = []
        self._count = 0

    def __enter__(self) -> _Staging:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._dbapi is None:
            return
        try:
            self._dbapi.rollback()  # a failed COPY leaves the connection in an aborted transaction
            with self._dbapi.cursor() as cur:
                for name in self._created:
                    cur.execute(f"DROP TABLE IF EXISTS {name}")
            self._dbapi.commit()
        except Exception as exc:  # noqa: BLE001 - never hide the ingest's own outcome; the next command drops them
            # one line (the trace at DEBUG): the ingest's own error, printed after it, is what matters
            log.warning("could not drop the staging tables %s (%s); the next command drops them", self._created,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                        exc_info=log.isEnabledFor(logging.DEBUG))
        finally:
            self._dbapi.close()

    def start(self, conn: sa.Connection, spec: KindSpec, batch_id: int, frame: pd.DataFrame,
              bounds: list[tuple[int, int]]) -> None:
        """Stage ``frame[lo:hi]`` for each of ``bounds``; ``conn`` is the ingest's transaction,
        holding the ingest lock."""
        if len(bounds) == 1:  # nothing to overlap: a temporary table on the transaction's connection
            name = f"stage_{spec.table}"
            conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS "
                                 f"SELECT {', '.join(frame.columns)} FROM {spec.table} WITH NO DATA")
            with conn.connection.dbapi_connection.cursor() as cur:
                _copy_frame(cur, name, frame)
            self._count = 1
            self._ready.put(name)
            return
        self._dbapi = self._engine.raw_connection()
        self._dbapi.detach()  # closed when done, not kept in the pool: one big ingest needs it once
        names = [f"{STAGE_SCHEMA}.{spec.table}_{batch_id}_{k}" for k in range(len(bounds))]
        self._count = len(names)
        self._thread = threading.Thread(
            target=self._fill, args=(spec, frame, list(zip(names, bounds, strict=True))), name="ingest-staging", daemon=True)
        self._thread.start()

    def _fill(self, spec: KindSpec, frame: pd.DataFrame, chunks: list[tuple[str, tuple[int, int]]]) -> None:
        try:
            for name, (lo, hi) in chunks:
                if self._stop.is_set():
                    return
                with self._dbapi.cursor() as cur:
                    self._created.append(name)
                    cur.execute(f"CREATE UNLOGGED TABLE {name} AS SELECT {', '.join(frame.columns)} FROM {spec.table} WITH NO DATA")
                    _copy_frame(cur, name, frame.iloc[lo:hi])
                self._dbapi.commit()
                self._ready.put(name)
        except BaseException as exc:  # noqa: BLE001 - handed to the transaction's thread, raised there
            self._ready.put(exc)

    def tables(self) -> Iterator[str]:
        """Each chunk's table, in order, as soon as it is committed (raises what the COPY raised)."""
        for _ in range(self._count):
            item = self._ready.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        """No further chunk is staged; returns once the one being copied (if any) is done."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def drop_stale_staging(engine: sa.Engine, *, wait: bool = True) -> int:
    """Drop the staging tables of ingests whose process died (kill -9, out of memory) before
    dropping them: up to 10 tables, hundreds of MB, were left until the next ingest of more than
    one chunk. Every ingest calls it (holding the ingest lock: ``wait``), and every command at
    start (``wait=False``: only when no ingest holds the lock, else nothing). Returns how many
    were dropped. A table still locked by an ingest that is dropping its own is left to it."""
    dropped = 0
    with engine.connect() as conn:
        stale = conn.exec_driver_sql(
            "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = %s", (STAGE_SCHEMA,)).scalars().all()
        if not stale:
            conn.rollback()
            return 0
        locked = not wait and conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": INGEST_LOCK}).scalar_one()
        conn.commit()
        if not wait and not locked:
            return 0  # an ingest is running: its own tables are not stale; the next ingest drops them
        try:
            for name in stale:
                try:
                    conn.exec_driver_sql("SET LOCAL lock_timeout = '1s'")
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {STAGE_SCHEMA}.{name}")
                    conn.commit()
                    dropped += 1
                except sa.exc.DBAPIError:  # in use or gone: not ours to insist on
                    conn.rollback()
        finally:
            if locked:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": INGEST_LOCK})
                conn.commit()
    if dropped:
        log.info("dropped %d staging table(s) of killed ingests", dropped)
    return dropped


def _store(conn: sa.Connection, spec: KindSpec, frame: pd.DataFrame, report: IngestReport,
           source_sha: str | None, staging: _Staging, show_progress: bool, refuse_rewrites: bool) -> None:
    """Stage and insert ``frame``; with ``refuse_rewrites``, raise ``_Rewrites`` (the caller's
    transaction then rolls back) when a row would be stored over a key already stored."""
    cols = list(spec.columns)
    frame = frame[cols]
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({INGEST_LOCK})")
    # no other ingest is staging now (the lock): what is in the staging schema was left by a
    # killed one; dropped on another connection, outside this transaction
    drop_stale_staging(staging.engine)
    # JIT: these row estimates trigger compilation with inlining and optimization, ~0.3 s per
    # statement (so per chunk), for per-row work too plain to gain from it: re-ingesting 1M
    # unchanged rows took 3.0-3.3 s with JIT, 2.8 s without. Memoize caches the index probes by
    # key, but every staged key is distinct: 5M misses, pure overhead.
    conn.exec_driver_sql("SET LOCAL jit = off")
    conn.exec_driver_sql("SET LOCAL enable_memoize = off")
    with _phase("index order"):
        order, keys = _index_order(conn, spec, frame)
        if order is not None:
            frame = frame.take(order)
    recorded_at = conn.exec_driver_sql("SELECT clock_timestamp()").scalar_one()
    batch_id = conn.execute(
        sa.text(
            "INSERT INTO ingest_batches (kind, source, source_sha256, rows_in_file, rows_added, revisions_added, unchanged, recorded_at) "
            "VALUES (:k, :s, :h, :n, 0, 0, 0, :r) RETURNING batch_id"
        ),
        {"k": spec.kind, "s": report.source, "h": source_sha, "n": report.rows_in_file, "r": recorded_at},
    ).scalar_one()
    bounds = _chunk_bounds(keys, STAGE_CHUNK_ROWS)
    staging.start(conn, spec, batch_id, frame, bounds)
    bar = tqdm(total=len(frame), desc=f"ingest {spec.kind}", unit="row", disable=not show_progress, leave=False)
    added = revisions = 0
    rewrites: _Rewrites | None = None
    with _phase(f"COPY to staging and INSERT, {len(bounds)} chunk(s)"):
        try:
            for (lo, hi), stage in zip(bounds, staging.tables(), strict=True):
                if rewrites is None:
                    a, r = _insert_new(conn, spec, stage, frame[spec.entity].iloc[lo:hi], recorded_at, batch_id)
                    added, revisions = added + a, revisions + r
                    # the INSERT counted them for free: the check costs nothing when it passes
                    if refuse_rewrites and r:
                        rewrites = _Rewrites()
                if rewrites is not None:  # this chunk and the rest: find them, insert nothing more
                    rewrites.add(*_find_rewrites(conn, spec, stage, batch_id))
                bar.update(hi - lo)
        finally:
            staging.stop()  # after a failure, before the transaction ends: no COPY carries on
    bar.close()
    if rewrites is not None:
        raise rewrites
    report.rows_added, report.revisions_added = int(added), int(revisions)
    report.unchanged = report.rows_in_file - report.rows_added - report.revisions_added
    report.batch_id, report.recorded_at = int(batch_id), recorded_at
    conn.execute(
        sa.text("UPDATE ingest_batches SET rows_added = :a, revisions_added = :r, unchanged = :u WHERE batch_id = :b"),
        {"a": report.rows_added, "r": report.revisions_added, "u": report.unchanged, "b": batch_id},
    )


def _stored_probe_sql(spec: KindSpec) -> str:
    """Whether any row is stored for the entities ``:ids``: one index probe per id.

    A semi-join driven by the id list. ``WHERE entity = ANY(:ids)`` instead lets the planner pick
    a sequential scan that expects an early match; when there is none (new instruments: this
    very case) it reads the whole table, comparing each row with every id. Chunk after chunk of
    one ingest the table has no statistics for the planner to know better: that cost 1.8 s of
    server time in the 5M-row bench.
    """
    return (f"SELECT EXISTS (SELECT 1 FROM unnest(CAST(:ids AS text[])) AS u(id) "
            f"WHERE EXISTS (SELECT 1 FROM {spec.table} t WHERE t.{spec.entity} = u.id))")


def _any_stored(conn: sa.Connection, spec: KindSpec, ids: list[str]) -> bool:
    return bool(conn.execute(sa.text(_stored_probe_sql(spec)), {"ids": ids}).scalar_one())


def _insert_new(conn: sa.Connection, spec: KindSpec, stage: str, entities: pd.Series,
                recorded_at: datetime, batch_id: int) -> tuple[int, int]:
    """One set-based INSERT of the staged rows that are new; returns (added, revisions)."""
    cols = list(spec.columns)
    params = {"rec": recorded_at, "batch": batch_id}
    target_cols = ", ".join(cols)
    seen = _any_stored(conn, spec, entities.unique().tolist())
    if not seen:
        # fast path: nothing stored yet for these instruments, every row is new
        added = conn.execute(
            sa.text(f"INSERT INTO {spec.table} ({target_cols}, recorded_at, batch_id) "
                    f"SELECT {target_cols}, :rec, :batch FROM {stage}"),
            params,
        ).rowcount
        return int(added), 0
    # per staged row (in index order): one probe for the stored version with the same known_at,
    # and for rows that differ from it, one probe telling a new key from a revision
    same = " AND ".join(f"t.{k} = s.{k}" for k in spec.keys)
    differs = " OR ".join(f"s.{v} IS DISTINCT FROM cur.{v}" for v in spec.values)
    s_cols = ", ".join(f"s.{c}" for c in cols)
    row = conn.execute(
        sa.text(
            f"""
            WITH cand AS (
                SELECT {s_cols},
                       EXISTS (SELECT 1 FROM {spec.table} t WHERE {same}) AS key_seen
                FROM {stage} s
                LEFT JOIN LATERAL (
                    SELECT true AS present, {', '.join('t.' + v for v in spec.values)}
                    FROM {spec.table} t
                    WHERE {same} AND t.known_at = s.known_at
                    ORDER BY t.recorded_at DESC LIMIT 1
                ) cur ON true
                WHERE cur.present IS NULL OR {differs}
            ), ins AS (
                INSERT INTO {spec.table} ({target_cols}, recorded_at, batch_id)
                SELECT {target_cols}, :rec, :batch FROM cand
                RETURNING 1
            )
            SELECT count(*) FILTER (WHERE NOT key_seen), count(*) FILTER (WHERE key_seen),
                   (SELECT count(*) FROM ins)
            FROM cand
            """
        ),
        params,
    ).one()
    added, revisions, inserted = int(row[0]), int(row[1]), int(row[2])
    assert inserted == added + revisions
    return added, revisions


class _NothingNew(Exception):
    pass


REWRITE_EXAMPLES = 10  # rows of a refused rewrite shown with their stored and new values


class _Rewrites(Exception):
    """Rows of a file without known_at that differ from stored rows: a count and the first few."""

    def __init__(self) -> None:
        super().__init__("rows would rewrite stored history")
        self.count = 0
        self.examples: list[dict] = []

    def add(self, count: int, examples: list[dict]) -> None:
        self.count += count
        self.examples = sorted(self.examples + examples, key=lambda r: r["_order"])[:REWRITE_EXAMPLES]


def _find_rewrites(conn: sa.Connection, spec: KindSpec, stage: str, batch_id: int) -> tuple[int, list[dict]]:
    """Staged rows whose key is stored (by another batch) and that are not identical to the stored
    version with the same known_at: (how many, the first ``REWRITE_EXAMPLES`` in key order).

    Each comes with the stored row it would supersede: the one with the same known_at if any,
    else the latest vintage. One set-based statement; it runs only once an ingest is refused.
    """
    same = " AND ".join(f"t.{k} = s.{k}" for k in spec.keys)
    differs = " OR ".join(f"s.{v} IS DISTINCT FROM cur.{v}" for v in spec.values)
    keys = ", ".join(f"s.{k}" for k in spec.keys)
    new = ", ".join(f"s.{v} AS new_{v}" for v in spec.values)
    old = ", ".join(f"shown.{v} AS old_{v}" for v in spec.values)
    t_values = ", ".join(f"t.{v}" for v in spec.values)
    rows = conn.execute(
        sa.text(
            f"""
            SELECT {keys}, s.known_at AS new_known_at, {new}, shown.known_at AS old_known_at, {old},
                   count(*) OVER () AS n
            FROM {stage} s
            JOIN LATERAL (
                SELECT t.known_at, {t_values} FROM {spec.table} t
                WHERE {same} AND t.batch_id <> :batch
                ORDER BY t.known_at = s.known_at DESC, t.known_at DESC, t.recorded_at DESC LIMIT 1
            ) shown ON true
            LEFT JOIN LATERAL (
                SELECT true AS present, {t_values} FROM {spec.table} t
                WHERE {same} AND t.known_at = s.known_at AND t.batch_id <> :batch
                ORDER BY t.recorded_at DESC LIMIT 1
            ) cur ON true
            WHERE cur.present IS NULL OR {differs}
            ORDER BY {keys}
            LIMIT :limit
            """
        ),
        {"batch": batch_id, "limit": REWRITE_EXAMPLES},
    ).mappings().all()
    examples = [dict(r, _order=tuple(r[k] for k in spec.keys)) for r in rows]
    return (int(rows[0]["n"]) if rows else 0), examples


def _shown(v: object) -> str:
    """A stored or new value as a person reads it: floats in full (repr), dates ISO, NULL as empty."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "empty"
    if isinstance(v, pd.Timestamp | datetime):
        return pd.Timestamp(v).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S UTC") if pd.Timestamp(v).tz else v.isoformat()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return repr(v) if isinstance(v, float) else str(v)


def _same(a: object, b: object) -> bool:
    na = a is None or (isinstance(a, float) and np.isnan(a))
    nb = b is None or (isinstance(b, float) and np.isnan(b))
    return na and nb or (not na and not nb and a == b)


def _rows_of_key(spec: KindSpec, frame: pd.DataFrame, key: dict) -> np.ndarray:
    """Positions (the frame's index: validated row numbers) of the rows with this key."""
    mask = np.ones(len(frame), dtype=bool)
    for k in spec.keys:
        col, v = frame[k], key[k]
        if k in DATE_COLS or k == "ts":
            v = pd.Timestamp(v)
        mask &= (col == v).to_numpy(dtype=bool, na_value=False)
    return frame.index[mask].to_numpy()


def _rewrite_problem(spec: KindSpec, frame: pd.DataFrame, raw: RawFile, found: _Rewrites) -> Problem:
    """The refusal of a rule-dated file that changes stored values, naming rows, values and the ways out."""
    labels, lines = [], []
    for ex in found.examples:
        at = _rows_of_key(spec, frame, ex)
        label = raw.row_labels[at[0]] if len(at) else "?"
        labels.append(label)
        diffs = [f"{v} {_shown(ex['old_' + v])} -> {_shown(ex['new_' + v])}"
                 for v in spec.values if not _same(ex["old_" + v], ex["new_" + v])]
        when = f"stored known_at {_shown(ex['old_known_at'])}"
        if ex["old_known_at"] != ex["new_known_at"]:
            when += f", the rule gives {_shown(ex['new_known_at'])}"
        if not diffs:
            diffs = [", ".join(f"{v} {_shown(ex['new_' + v])}" for v in spec.values) + " (equal to a stored vintage)"]
        lines.append(f"{raw.row_word} {label}: {' '.join(_shown(ex[k]) for k in spec.keys)}: "
                     f"{', '.join(diffs)} ({when})")
    detail = (
        "values differ from stored rows and the file has no known_at: the release rule would date them "
        "at the stored print's knowledge time and silently replace it for every past decision. Either "
        "give known_at in the file (a revision, known from then on) or pass --correction "
        "(correction=True): a restatement that keeps the original known_at, recorded after the old row"
    )
    return Problem("rewrites-history", detail, labels, raw.row_word, total=found.count, examples=lines)


def _before_close_problem(conn: sa.Connection, frame: pd.DataFrame, raw: RawFile, rule_dated: bool) -> Problem | None:
    """Prices known before their own session's close on their instrument's calendar (vectorized,
    per distinct day and calendar); a date that is no session of the calendar is not checked.
    ``rule_dated``: known_at came from the release rules; the ``close`` rule gives the close itself,
    so when every instrument uses it there is nothing to check."""
    group, ids = pd.factorize(frame["instrument_id"])
    meta = _instrument_rows(conn, [str(i) for i in ids]).set_index("instrument_id").reindex([str(i) for i in ids])
    if rule_dated and (meta["release_rule"] == "close").all():
        return None
    close = release.session_close_by_group(frame["obs_date"], group, meta["calendar"].tolist())
    known = frame["known_at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    early = ~np.isnat(close) & (known < close)
    if not early.any():
        return None
    at = np.flatnonzero(early)
    labels = raw.row_labels[frame.index.to_numpy()[at]]
    utc = lambda x: pd.Timestamp(x).strftime("%Y-%m-%d %H:%M UTC")  # noqa: E731
    lines = [f"{raw.row_word} {label}: {frame['instrument_id'].iloc[i]} {frame['obs_date'].iloc[i].date()}: "
             f"known_at {utc(known[i])} < close {utc(close[i])}"
             for label, i in zip(labels[:REWRITE_EXAMPLES], at[:REWRITE_EXAMPLES], strict=True)]
    return Problem("known-before-close", "known_at before the close of the price's own session on its "
                   "instrument's calendar (24/7: 00:00 UTC of the next day): a price cannot be known before "
                   "it happened", labels.tolist(), raw.row_word, examples=lines)


def ingest(
    engine: sa.Engine,
    kind: str,
    source: str | Path | pd.DataFrame,
    *,
    register_unknown: bool = False,
    register_release_rule: str | None = None,
    name: str | None = None,
    release_model: release.ReleaseModel = release.DEFAULT_MODEL,
    show_progress: bool = False,
    correction: bool = False,
) -> IngestReport:
    """Validate ``source`` (a file path or a DataFrame) as ``kind`` and store it.

    Raises ``IngestValidationError`` (nothing written) on any broken rule, including instruments
    that are not registered unless ``register_unknown`` (then registered with the kind's default
    release rule, or ``register_release_rule``). All-or-nothing: one transaction.

    A source without ``known_at`` (the release rule dates it) whose values differ from stored rows
    of the same key is refused (rule ``rewrites-history``): the rule would give the new value the
    first print's known_at, rewriting what every past decision saw. Give ``known_at`` (a revision)
    or pass ``correction=True``: a restatement at the rule's (the original) known_at, ordered after
    the stored row by ``recorded_at``. ``correction`` has no effect on a source with ``known_at``.
    Prices known before their session's close on their calendar are refused (``known-before-close``).
    """
    if register_release_rule is not None and register_release_rule not in release.INSTRUMENT_RULES:
        raise ValueError(f"release rule {register_release_rule!r} is not one of {release.INSTRUMENT_RULES}")
    if kind == "instruments":
        return ingest_instruments(engine, source, name=name)
    if kind not in SPECS:
        raise ValueError(f"unknown ingest kind {kind!r}; choose one of {', '.join(KINDS)}")
    spec = SPECS[kind]
    with _phase("read"):
        raw = frame_input(source) if isinstance(source, pd.DataFrame) else read_file(source)
    label = name or (str(source) if not isinstance(source, pd.DataFrame) else f"<{kind} frame>")
    with engine.connect() as conn:
        registered = None if register_unknown else set(
            r[0] for r in conn.exec_driver_sql("SELECT instrument_id FROM instruments").all()
        )
    with _phase("validate"):
        frame = validate(spec, raw, label, registered)
    report = IngestReport(kind, label, len(frame))
    rule_dated = "known_at" not in frame
    try:
        # the staging context is left after the transaction: its INSERTs lock the staging tables
        with _Staging(engine) as staging, engine.begin() as conn:
            ids = sorted(frame[spec.entity].unique().tolist())
            known = set(_instrument_rows(conn, ids)["instrument_id"])
            unknown = [i for i in ids if i not in known]
            if unknown and not register_unknown:  # validated above; instruments are never deleted
                raise IngestValidationError(label, [Problem("unknown-instrument", f"{unknown[:10]} not registered", [])])
            if unknown:
                _register(conn, spec, unknown, register_release_rule)
                report.instruments_registered = unknown
            with _phase("known_at"):
                frame = _fill_known_at(conn, spec, frame, release_model)
            if not spec.known_before_valid_ok:
                start = frame[spec.valid_col] if spec.timestamp_valid else frame[spec.valid_col].dt.tz_localize("UTC")
                early = (frame["known_at"] < start).to_numpy()
                if early.any():
                    raise IngestValidationError(label, [Problem("known-before-valid", "release rule gave known_at before the valid time", raw.row_labels[early].tolist(), raw.row_word)])
            if spec.kind == "prices" and (problem := _before_close_problem(conn, frame, raw, rule_dated)) is not None:
                raise IngestValidationError(label, [problem])
            try:
                _store(conn, spec, frame, report, raw.sha256, staging, show_progress,
                       refuse_rewrites=rule_dated and not correction)
            except _Rewrites as found:  # raised inside the transaction: it rolls back
                raise IngestValidationError(label, [_rewrite_problem(spec, frame, raw, found)]) from None
            if report.rows_added + report.revisions_added == 0 and not report.instruments_registered:
                raise _NothingNew
    except _NothingNew:
        report.batch_id = report.recorded_at = None  # rolled back: not even a batch row
    return report


def ingest_instruments(engine: sa.Engine, source: str | Path | pd.DataFrame, *, name: str | None = None) -> IngestReport:
    """Register instruments (reference data). Existing ids with other attributes are an error."""
    raw = frame_input(source) if isinstance(source, pd.DataFrame) else read_file(source)
    label = name or (str(source) if not isinstance(source, pd.DataFrame) else "<instruments frame>")
    df = raw.frame.set_axis([str(c).strip() for c in raw.frame.columns], axis=1)
    chk = _Checker(raw)
    required = ("instrument_id", "asset_class", "kind")
    missing = [c for c in required if c not in df.columns]
    unknown = [c for c in df.columns if c not in INSTRUMENT_COLUMNS]
    if missing:
        chk.header("missing-columns", f"required column(s) {missing} not in header {list(df.columns)}")
    if unknown:
        chk.header("unknown-columns", f"column(s) {unknown} are not instrument attributes {list(INSTRUMENT_COLUMNS)}")
    if chk.problems:
        raise IngestValidationError(label, chk.problems)
    if len(df) == 0:  # like every other kind
        raise IngestValidationError(label, [Problem("empty-file", "the file has no data rows (only a header)",
                                                    _header_line(raw), raw.row_word)])
    df = df.copy()
    for c, default in INSTRUMENT_DEFAULTS.items():
        if c not in df:
            df[c] = default
    df["release_rule"] = df["release_rule"].where(df["release_rule"].notna(), np.where(df["kind"] == "macro", "quarterly_30d", "close"))
    df = df[list(INSTRUMENT_COLUMNS)].astype(object).where(df[list(INSTRUMENT_COLUMNS)].notna(), None)
    ids = df["instrument_id"].astype("string")
    chk.add("unsafe-id", "instrument_id must match [A-Za-z0-9_.-]{1,32}", (~ids.str.fullmatch(SAFE_ID.pattern).fillna(False)).to_numpy())
    chk.add("unknown-kind", f"kind must be one of {INSTRUMENT_KINDS}", (~df["kind"].isin(INSTRUMENT_KINDS)).to_numpy())
    chk.add("unknown-release-rule", f"release_rule must be one of {release.INSTRUMENT_RULES}", (~df["release_rule"].isin(release.INSTRUMENT_RULES)).to_numpy())
    chk.add("missing-value", "asset_class is empty", df["asset_class"].isna().to_numpy())
    cal_ok = df["calendar"].map(_calendar_ok).to_numpy()
    chk.add("unknown-calendar", "calendar is not an exchange_calendars code nor '24/7'", ~cal_ok)
    chk.add("duplicate-key", "duplicate instrument_id within the file", df["instrument_id"].duplicated(keep=False).to_numpy())
    if chk.problems:
        raise IngestValidationError(label, chk.problems)
    report = IngestReport("instruments", label, len(df))
    with engine.begin() as conn:
        existing = conn.execute(
            sa.text(f"SELECT {', '.join(INSTRUMENT_COLUMNS)} FROM instruments WHERE instrument_id = ANY(:ids)"),
            {"ids": df["instrument_id"].tolist()},
        ).all()
        stored = {r.instrument_id: tuple(r) for r in existing}
        conflicts = [i for i, row in zip(df["instrument_id"], df.itertuples(index=False), strict=True) if i in stored and tuple(row) != stored[i]]
        if conflicts:
            mask = df["instrument_id"].isin(conflicts).to_numpy()
            raise IngestValidationError(label, [Problem("instrument-conflict", f"already registered with other attributes: {conflicts[:10]}", raw.row_labels[mask].tolist(), raw.row_word)])
        new = df[~df["instrument_id"].isin(stored.keys())]
        if len(new):
            conn.execute(
                sa.text(f"INSERT INTO instruments ({', '.join(INSTRUMENT_COLUMNS)}) VALUES ({', '.join(':' + c for c in INSTRUMENT_COLUMNS)})"),
                new.to_dict("records"),
            )
            ensure_calendars(conn, new["calendar"].tolist())
        report.rows_added, report.unchanged = len(new), len(df) - len(new)
        report.recorded_at = conn.exec_driver_sql("SELECT clock_timestamp()").scalar_one() if len(new) else None
    return report


def _calendar_ok(name: object) -> bool:
    if name == release.ALWAYS_OPEN:
        return True
    import exchange_calendars as xcals

    return isinstance(name, str) and name in xcals.get_calendar_names(include_aliases=True)
