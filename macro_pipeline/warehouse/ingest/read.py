"""Room: warehouse/ingest/read. Reading a file (CSV, optionally gzipped, or Parquet) or taking an
in-memory frame, without coercing types: validation (``validate.py``) does that.

Empty lines are kept so that line numbers stay true; a person looks for the file's line numbers
(CSV) or row numbers (Parquet, frames) in every problem reported.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from macro_pipeline.warehouse.errors import IngestValidationError, Problem
from macro_pipeline.warehouse.ingest.spec import DATE_COLS


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
