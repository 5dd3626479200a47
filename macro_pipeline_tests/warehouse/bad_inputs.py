"""The generated bad-input matrix (issue 13): malformed files of every kind, each one mutation of
a valid file, grouped by what breaks: encodings, delimiters, headers, far and mixed-zone dates,
numbers in odd notations, duplicates, unknown ids, metacharacters, kind-specific rules.

``cases()`` yields ``Case``s; ``test_bad_input_matrix.py`` writes each to a file, ingests it
through the CLI and expects exit 2, one message naming the file, the line(s) and the rule, and
the database unchanged.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str  # unique, used as the file name
    kind: str  # the ingest kind
    group: str  # encodings, delimiters, headers, dates, numbers, duplicates, unknown-ids, metacharacters, rules
    data: bytes | None  # None: a directory instead of a file
    suffix: str = ".csv"


@dataclass(frozen=True)
class Layout:
    """A valid file of one kind: header and rows (rows[1] is the one mutated, line 3)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    dates: tuple[str, ...] = ()  # calendar-date columns
    stamps: tuple[str, ...] = ()  # timestamp columns
    numbers: tuple[str, ...] = ()
    required_numbers: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    entity: str | None = None  # the column naming registered instruments


LAYOUTS = {
    "prices": Layout(("instrument_id", "obs_date", "open", "high", "low", "close", "volume"),
                     (("AAA", "2021-03-01", "10", "11", "9", "10.5", "100"),
                      ("AAA", "2021-03-02", "10", "11", "9", "10.5", "100"),
                      ("AAA", "2021-03-03", "10", "11", "9", "10.5", "100")),
                     dates=("obs_date",), numbers=("open", "high", "low", "close", "volume"),
                     required_numbers=("close",), ids=("instrument_id",), entity="instrument_id"),
    "macro": Layout(("series_id", "obs_date", "value"),
                    (("GDP", "2021-03-31", "1.0"), ("GDP", "2021-06-30", "2.0"), ("GDP", "2021-09-30", "3.0")),
                    dates=("obs_date",), numbers=("value",), required_numbers=("value",), ids=("series_id",),
                    entity="series_id"),
    "funding": Layout(("instrument_id", "ts", "rate", "interval_hours"),
                      (("PERP", "2021-03-01T00:00:00Z", "0.0001", "8"), ("PERP", "2021-03-01T08:00:00Z", "0.0001", "8"),
                       ("PERP", "2021-03-01T16:00:00Z", "0.0001", "8")),
                      stamps=("ts",), numbers=("rate", "interval_hours"), required_numbers=("rate", "interval_hours"),
                      ids=("instrument_id",), entity="instrument_id"),
    "corporate-actions": Layout(("instrument_id", "ex_date", "action", "value"),
                                (("AAA", "2021-03-01", "dividend", "0.5"), ("AAA", "2021-04-01", "split", "2"),
                                 ("AAA", "2021-05-03", "dividend", "0.5")),
                                dates=("ex_date",), numbers=("value",), required_numbers=("value",),
                                ids=("instrument_id",), entity="instrument_id"),
    "universe": Layout(("universe", "instrument_id", "valid_from", "valid_to"),
                       (("U1", "AAA", "2021-01-01", "2021-02-01"), ("U1", "AAA", "2021-03-01", "2021-04-01"),
                        ("U1", "AAA", "2021-05-01", "")),
                       dates=("valid_from", "valid_to"), ids=("universe", "instrument_id"), entity="instrument_id"),
    "signals": Layout(("signal_name", "instrument_id", "obs_date", "value"),
                      (("sig1", "AAA", "2021-03-01", "0.5"), ("sig1", "AAA", "2021-03-02", "0.5"),
                       ("sig1", "AAA", "2021-03-03", "0.5")),
                      dates=("obs_date",), numbers=("value",), required_numbers=("value",),
                      ids=("signal_name", "instrument_id"), entity="instrument_id"),
    "instruments": Layout(("instrument_id", "asset_class", "kind", "calendar", "release_rule"),
                          (("NEW1", "equity", "spot", "XNYS", "close"), ("NEW2", "equity", "spot", "XNYS", "close"),
                           ("NEW3", "equity", "spot", "XNYS", "close")),
                          ids=("instrument_id",)),
}

BAD_DATES = ("2021-13-45", "1600-01-01", "2300-01-01", "9999-12-31", "0001-01-01", "03/04/2021", "2021-02-30",
             "20210302", "2021-03-02T25:00:00Z", "yesterday", "2021-03-02T00:00:00+25:00", "١٠٢١-٠٣-٠٢")
# not in the matrix, accepted on purpose: "2021-3-2" (unambiguous, read as 2021-03-02) and an id
# with surrounding blanks ("AAA\t" is AAA: ids are stripped)
BAD_STAMPS = ("2021-13-45T00:00:00Z", "1600-01-01T00:00:00Z", "2300-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
              "03/04/2021 08:00", "2021-02-30T08:00:00Z", "2021-03-02T25:00:00Z", "yesterday",
              "2021-03-02T08:00:00+25:00", "1614672000", "2021-03-02 08:00 PST")
BAD_NUMBERS = ("0x10", '"1,5"', "1_000", "١٢", "abc", "1.2.3", "$5", "5%", "--5", "1e", "+-3", "∞", "1e400",
               "-1e400", "0b101", "1/2")
BAD_IDS = ("\"AAA'; DROP TABLE prices;--\"", "$(rm -rf /)", "<script>x</script>", "A" * 70, "ÄÖÜ", "a b", "`id`",
           "..\\..\\etc", "AAA|cat", '"quo""te"', '"AAA\nBBB"', "%s%s%n", "{{7*7}}", "A\tA")


def _csv(header, rows) -> bytes:
    return ("\n".join(",".join(r) for r in [header, *rows]) + "\n").encode()


def _with(layout: Layout, column: str, value: str) -> bytes:
    i = layout.header.index(column)
    rows = [list(r) for r in layout.rows]
    rows[1][i] = value
    return _csv(layout.header, rows)


def cases() -> Iterator[Case]:
    for kind, lay in LAYOUTS.items():
        k = kind.replace("-", "_")
        good = _csv(lay.header, lay.rows)
        text = good.decode()
        # -- encodings
        yield Case(f"{k}-latin1", kind, "encodings", good + (",".join(["Ä"] + list(lay.rows[0][1:])) + "\n").encode("latin-1"))
        yield Case(f"{k}-utf16", kind, "encodings", text.encode("utf-16"))
        yield Case(f"{k}-cp1252-quote", kind, "encodings", good.replace(b"\n", b"\x93\n", 2).replace(b"\x93\n", b"\n", 1))
        yield Case(f"{k}-binary", kind, "encodings", bytes(range(256)) * 4)
        yield Case(f"{k}-not-gzip", kind, "encodings", good, ".csv.gz")
        yield Case(f"{k}-not-parquet", kind, "encodings", good, ".parquet")
        yield Case(f"{k}-gzip-latin1", kind, "encodings",
                   gzip.compress(good + (",".join(["Ä"] + list(lay.rows[0][1:])) + "\n").encode("latin-1")), ".csv.gz")
        # -- delimiters
        yield Case(f"{k}-semicolons", kind, "delimiters", good.replace(b",", b";"))
        yield Case(f"{k}-tabs", kind, "delimiters", good.replace(b",", b"\t"))
        yield Case(f"{k}-extra-field", kind, "delimiters", _csv(lay.header, [lay.rows[0], lay.rows[1] + ("x",)]))
        yield Case(f"{k}-missing-field", kind, "delimiters", _csv(lay.header, [lay.rows[0], lay.rows[1][:-1]]))
        yield Case(f"{k}-unclosed-quote", kind, "delimiters", _csv(lay.header, [lay.rows[0], ('"' + lay.rows[1][0],) + lay.rows[1][1:]]))
        yield Case(f"{k}-semicolon-row", kind, "delimiters", good + ";".join(lay.rows[2]).encode() + b"\n")
        # -- headers
        yield Case(f"{k}-duplicate-column", kind, "headers", _csv(lay.header + (lay.header[0],), [r + (r[0],) for r in lay.rows]))
        yield Case(f"{k}-missing-column", kind, "headers", _csv(lay.header[1:], [r[1:] for r in lay.rows]))
        yield Case(f"{k}-unknown-column", kind, "headers", _csv(lay.header + ("colour",), [r + ("red",) for r in lay.rows]))
        yield Case(f"{k}-empty-column-name", kind, "headers", _csv(lay.header + ("",), [r + ("x",) for r in lay.rows]))
        yield Case(f"{k}-header-only", kind, "headers", _csv(lay.header, []))
        yield Case(f"{k}-empty", kind, "headers", b"")
        yield Case(f"{k}-whitespace", kind, "headers", b"   \n\n")
        yield Case(f"{k}-upper-case-header", kind, "headers", _csv(tuple(c.upper() for c in lay.header), lay.rows))
        yield Case(f"{k}-no-header", kind, "headers", _csv(lay.rows[0], lay.rows[1:]))
        yield Case(f"{k}-directory", kind, "headers", None)
        yield Case(f"{k}-blank-line", kind, "headers", _csv(lay.header, [lay.rows[0]]) + b"\n" + _csv(lay.header, lay.rows[1:]).split(b"\n", 1)[1])
        # -- dates
        for col in lay.dates:
            for i, v in enumerate(BAD_DATES):
                yield Case(f"{k}-{col}-date{i}", kind, "dates", _with(lay, col, v))
        for col in lay.stamps:
            for i, v in enumerate(BAD_STAMPS):
                yield Case(f"{k}-{col}-stamp{i}", kind, "dates", _with(lay, col, v))
        if kind != "instruments":
            # known_at far, malformed, or before the time it is about
            hdr = lay.header + ("known_at",)
            for i, v in enumerate(("9999-01-01T00:00:00Z", "2021-13-01T00:00:00Z", "1600-01-01T00:00:00Z", "",
                                   "2021-03-02T08:00:00+25:00")):
                rows = [r + ("2021-12-31T00:00:00Z",) for r in lay.rows]
                rows[1] = rows[1][:-1] + (v,)
                yield Case(f"{k}-known_at{i}", kind, "dates", _csv(hdr, rows))
        # -- numbers
        for col in lay.numbers:
            for i, v in enumerate(BAD_NUMBERS):
                yield Case(f"{k}-{col}-num{i}", kind, "numbers", _with(lay, col, v))
        for col in lay.required_numbers:
            yield Case(f"{k}-{col}-nan", kind, "numbers", _with(lay, col, "NaN"))
            yield Case(f"{k}-{col}-empty", kind, "numbers", _with(lay, col, ""))
        # -- duplicates
        yield Case(f"{k}-duplicate-row", kind, "duplicates", _csv(lay.header, [lay.rows[0], lay.rows[1], lay.rows[1]]))
        yield Case(f"{k}-duplicate-key-other-value", kind, "duplicates",
                   _csv(lay.header, [lay.rows[0], lay.rows[0][:-1] + ("7",) if kind != "instruments" else lay.rows[0][:1] + ("bond",) + lay.rows[0][2:]]))
        # -- unknown ids
        if lay.entity:
            yield Case(f"{k}-unknown-instrument", kind, "unknown-ids", _with(lay, lay.entity, "ZZZ9"))
            yield Case(f"{k}-unknown-instrument-case", kind, "unknown-ids", _with(lay, lay.entity, lay.rows[0][lay.header.index(lay.entity)].lower()))
        # -- metacharacters
        for col in lay.ids:
            for i, v in enumerate(BAD_IDS):
                yield Case(f"{k}-{col}-meta{i}", kind, "metacharacters", _with(lay, col, v))
            yield Case(f"{k}-{col}-missing", kind, "metacharacters", _with(lay, col, ""))
    yield from _rules()


def _rules() -> Iterator[Case]:
    p = LAYOUTS["prices"]
    yield Case("prices-high-below-low", "prices", "rules", _with(p, "high", "8"))
    yield Case("prices-close-above-high", "prices", "rules", _with(p, "close", "12"))
    yield Case("prices-open-below-low", "prices", "rules", _with(p, "open", "8"))
    yield Case("prices-zero-close", "prices", "rules", _with(p, "close", "0"))
    yield Case("prices-negative-volume", "prices", "rules", _with(p, "volume", "-1"))
    yield Case("prices-known-before-close", "prices", "rules",
               b"instrument_id,obs_date,close,known_at\nAAA,2021-03-02,10,2021-03-02T15:00:00Z\n")
    yield Case("prices-known-before-valid", "prices", "rules",
               b"instrument_id,obs_date,close,known_at\nAAA,2021-03-02,10,2021-03-01T23:00:00Z\n")
    yield Case("prices-rewrites-history", "prices", "rules", b"instrument_id,obs_date,close\nAAA,2020-01-02,99\n")
    yield Case("macro-rewrites-history", "macro", "rules", b"series_id,obs_date,value\nGDP,2019-12-31,99\n")
    yield Case("funding-zero-interval", "funding", "rules", _with(LAYOUTS["funding"], "interval_hours", "0"))
    yield Case("funding-known-before-ts", "funding", "rules",
               b"instrument_id,ts,rate,interval_hours,known_at\nPERP,2021-03-02T08:00:00Z,0.0001,8,2021-03-02T07:00:00Z\n")
    yield Case("corporate_actions-unknown-action", "corporate-actions", "rules", _with(LAYOUTS["corporate-actions"], "action", "merger"))
    yield Case("corporate_actions-negative-split", "corporate-actions", "rules", _with(LAYOUTS["corporate-actions"], "value", "-2"))
    yield Case("universe-empty-interval", "universe", "rules", _with(LAYOUTS["universe"], "valid_to", "2021-03-01"))
    yield Case("universe-backwards-interval", "universe", "rules", _with(LAYOUTS["universe"], "valid_to", "2020-03-01"))
    i = LAYOUTS["instruments"]
    yield Case("instruments-unknown-kind", "instruments", "rules", _with(i, "kind", "future"))
    yield Case("instruments-unknown-calendar", "instruments", "rules", _with(i, "calendar", "XMOON"))
    yield Case("instruments-unknown-rule", "instruments", "rules", _with(i, "release_rule", "whenever"))
    yield Case("instruments-missing-asset-class", "instruments", "rules", _with(i, "asset_class", ""))
    yield Case("instruments-conflict", "instruments", "rules",
               b"instrument_id,asset_class,kind,calendar\nAAA,equity,index,XNYS\n")
