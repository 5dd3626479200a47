"""Room: warehouse/ingest/validate. The rules a file's rows must follow, all checked over every row
before anything is written: ``validate`` returns the typed frame or raises
``IngestValidationError`` listing each broken rule with the file, the first few line numbers and a
count. The rules that need the stored data (``known-before-close``, ``rewrites-history``) are in
``refusals.py``.
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pandas as pd

from macro_pipeline.warehouse.errors import IngestValidationError, Problem
from macro_pipeline.warehouse.ingest.keys import is_increasing, order_codes, row_codes
from macro_pipeline.warehouse.ingest.read import RawFile
from macro_pipeline.warehouse.ingest.spec import (
    DATE_COLS,
    FIRST_DATE,
    LAST_DATE,
    SAFE_ID,
    SAFE_NAME,
    TEXT_COLS,
    KindSpec,
)

DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(?i:inf|infinity|nan)")


class Checker:
    """Collects every broken rule with the rows that break it (the file's line or row numbers)."""

    def __init__(self, raw: RawFile):
        self.raw = raw
        self.problems: list[Problem] = []

    def add(self, rule: str, detail: str, mask: np.ndarray | None = None) -> None:
        rows = [] if mask is None else self.raw.row_labels[np.asarray(mask, dtype=bool)].tolist()
        if mask is None or rows:
            self.problems.append(Problem(rule, detail, rows, self.raw.row_word))

    def header(self, rule: str, detail: str) -> None:
        """A problem of the header: line 1 of a CSV file (a Parquet file has no lines: the whole file)."""
        self.problems.append(Problem(rule, detail, header_line(self.raw), self.raw.row_word))


def header_line(raw: RawFile) -> list[int]:
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


def _duplicated(frame: pd.DataFrame, key: list[str]) -> np.ndarray:
    """Rows whose key occurs more than once (all of them), through one int64 code per row.

    Files usually come sorted by key: a strictly increasing code proves there is no duplicate
    without hashing. Nulls compare equal to each other, as in ``DataFrame.duplicated``.
    """
    combined = row_codes([order_codes(frame[c]) for c in key])
    if is_increasing(combined):
        return np.zeros(len(frame), dtype=bool)
    return pd.Series(combined).duplicated(keep=False).to_numpy()


def validate(
    spec: KindSpec, raw: RawFile, source: str, known_instruments: set[str] | None = None
) -> pd.DataFrame:
    """Check every rule; return the typed frame or raise listing every broken rule.

    ``known_instruments``: registered ids; others are an error (None: not checked).
    """
    df = raw.frame
    chk = Checker(raw)
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
                                                     header_line(raw), raw.row_word)])

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
        valid = out[spec.valid]
        start = valid.dt.tz_localize("UTC") if not spec.timestamp_valid else valid
        chk.add("known-before-valid", f"known_at before {spec.valid}: a value cannot be known "
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
