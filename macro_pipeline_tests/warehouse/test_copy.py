"""Binary COPY encoder: byte-exact against an independent decoder, and a round trip through PostgreSQL."""

from __future__ import annotations

import datetime as dt
import math
import struct

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.warehouse import copy as pgcopy

UTC = dt.UTC
TEXT = ["AAA", None, "émoji 🚀", "", "AAA", "x" * 40, "日本", None]
FLOATS = [1.5, -2.25, None, 0.0, -0.0, 1e300, -1e-300, float("nan")]
DATES = ["2020-01-02", "1999-12-31", None, "1900-03-01", "1969-12-31", "2000-01-01", "2099-12-31", "1970-01-01"]
STAMPS = [
    "2020-01-02T21:00:00Z", "1999-12-31T23:59:59.999999Z", None, "1950-06-01T12:34:56.5Z",
    "1969-12-31T23:00:00Z", "2000-01-01T00:00:00Z", "2038-01-19T03:14:08Z", "2020-06-30T00:00:00.000001Z",
]
INTS = [0, -1, 2**40, None, 7, -(2**62), 1, 42]


def _columns() -> list[pgcopy.Column]:
    floats = np.array([np.nan if v is None else v for v in FLOATS])
    float_nulls = np.array([v is None for v in FLOATS])
    ints = np.array([0 if v is None else v for v in INTS], dtype="int64")
    return [
        pgcopy.text(TEXT),
        pgcopy.float8(floats, nulls=float_nulls),
        pgcopy.date(pd.to_datetime(pd.Series(DATES))),
        pgcopy.timestamptz(pd.to_datetime(pd.Series(STAMPS), utc=True, format="ISO8601")),
        pgcopy.int8(ints, nulls=np.array([v is None for v in INTS])),
    ]


def _expected() -> list[tuple]:
    dates = [None if d is None else dt.date.fromisoformat(d) for d in DATES]
    stamps = [None if s is None else dt.datetime.fromisoformat(s.replace("Z", "+00:00")) for s in STAMPS]
    return list(zip(TEXT, FLOATS, dates, stamps, INTS, strict=True))


def decode(data: bytes, types: list[str]) -> list[tuple]:
    """An independent, row-by-row reader of the binary COPY format."""
    assert data[:11] == b"PGCOPY\n\xff\r\n\x00"
    (ext,) = struct.unpack_from(">i", data, 15)
    pos, rows = 19 + ext, []
    while True:
        (count,) = struct.unpack_from(">h", data, pos)
        pos += 2
        if count == -1:
            assert pos == len(data)
            return rows
        assert count == len(types)
        row = []
        for kind in types:
            (size,) = struct.unpack_from(">i", data, pos)
            pos += 4
            if size == -1:
                row.append(None)
                continue
            raw, pos = data[pos : pos + size], pos + size
            if kind == "text":
                row.append(raw.decode("utf-8"))
            elif kind == "float8":
                row.append(struct.unpack(">d", raw)[0])
            elif kind == "int8":
                row.append(struct.unpack(">q", raw)[0])
            elif kind == "date":
                row.append(dt.date(2000, 1, 1) + dt.timedelta(days=struct.unpack(">i", raw)[0]))
            else:
                epoch = dt.datetime(2000, 1, 1, tzinfo=UTC)
                row.append(epoch + dt.timedelta(microseconds=struct.unpack(">q", raw)[0]))
        rows.append(tuple(row))


def _same(a: tuple, b: tuple) -> bool:
    def eq(x, y):
        if isinstance(x, float) and isinstance(y, float):
            return (math.isnan(x) and math.isnan(y)) or (x == y and math.copysign(1, x) == math.copysign(1, y))
        return x == y

    return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b, strict=True))


def _sorted(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=repr)


TYPES = ["text", "float8", "date", "timestamptz", "int8"]


@pytest.mark.parametrize("chunk_rows", [1, 3, 1000])
def test_encoding_decodes_to_the_input_rows(chunk_rows):
    data = b"".join(pgcopy.encode(_columns(), chunk_rows=chunk_rows))
    got, want = _sorted(decode(data, TYPES)), _sorted(_expected())
    assert len(got) == len(want)
    assert all(_same(g, w) for g, w in zip(got, want, strict=True)), (got, want)


def test_one_layout_keeps_row_order_and_groups_keep_order_inside():
    n = 10
    ids = [f"I{i:03d}" for i in range(n)]
    data = b"".join(pgcopy.encode([pgcopy.text(ids), pgcopy.float8(np.arange(n, dtype=float))]))
    assert [r[0] for r in decode(data, ["text", "float8"])] == ids  # one layout: file order
    mixed = ["a", "bb", "c", "dd", "e"]
    rows = decode(b"".join(pgcopy.encode([pgcopy.text(mixed)])), ["text"])
    assert [r[0] for r in rows] == ["a", "c", "e", "bb", "dd"]  # grouped by length, order kept inside


def test_progress_counts_every_row_and_reader_serves_any_read_size():
    seen = []
    pieces = list(pgcopy.encode([pgcopy.float8(np.ones(10))], chunk_rows=4, on_rows=seen.append))
    assert seen == [4, 4, 2]
    reader = pgcopy.Reader(pieces)
    out = b""
    while chunk := reader.read(7):
        out += chunk
    assert out == b"".join(pieces) and reader.read(7) == b""


def test_nul_in_text_is_refused():
    with pytest.raises(ValueError, match="NUL"):
        pgcopy.text(["a\0b"])


def test_round_trip_through_postgresql(databases):
    engine = databases.new(migrated=False)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute("SET TIME ZONE 'America/New_York'")  # binary timestamptz does not depend on it
            cur.execute("CREATE TEMP TABLE t (s text, f float8, d date, ts timestamptz, i int8)")
            cur.copy_expert("COPY t FROM STDIN WITH (FORMAT binary)", pgcopy.Reader(pgcopy.encode(_columns(), chunk_rows=3)))
            cur.execute("SELECT s, f, d, ts, i FROM t")
            got = [tuple(r) for r in cur.fetchall()]
        raw.rollback()
    finally:
        raw.close()
    got = [(s, f, d, None if ts is None else ts.astimezone(UTC), i) for s, f, d, ts, i in got]
    want = _expected()
    assert len(got) == len(want)
    got, want = _sorted(got), _sorted(want)
    assert all(_same(g, w) for g, w in zip(got, want, strict=True)), (got, want)
