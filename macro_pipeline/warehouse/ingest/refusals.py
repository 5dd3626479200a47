"""Room: warehouse/ingest/refusals. The rules decided against what is stored, inside the ingest's
transaction (which then rolls back):

- ``known-before-close``: prices known before the close of their own session on their
  instrument's calendar;
- ``rewrites-history``: a file without known_at (the release rule dates it) whose values differ
  from stored rows of the same key: the rule would give the new value the first print's
  known_at and silently replace it for every past decision.

Each refusal names the rows (line numbers, stored and new values) and the ways out.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.warehouse.errors import Problem
from macro_pipeline.warehouse.ingest.instruments import instrument_rows
from macro_pipeline.warehouse.ingest.read import RawFile
from macro_pipeline.warehouse.ingest.release import session_close_by_group
from macro_pipeline.warehouse.ingest.spec import DATE_COLS, KindSpec

REWRITE_EXAMPLES = 10  # rows of a refused rewrite shown with their stored and new values


class Rewrites(Exception):
    """Rows of a file without known_at that differ from stored rows: a count and the first few."""

    def __init__(self) -> None:
        super().__init__("rows would rewrite stored history")
        self.count = 0
        self.examples: list[dict] = []

    def add(self, count: int, examples: list[dict]) -> None:
        self.count += count
        self.examples = sorted(self.examples + examples, key=lambda r: r["_order"])[:REWRITE_EXAMPLES]


def find_rewrites(conn: sa.Connection, spec: KindSpec, stage: str, batch_id: int) -> tuple[int, list[dict]]:
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


def rewrite_problem(spec: KindSpec, frame: pd.DataFrame, raw: RawFile, found: Rewrites) -> Problem:
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


def before_close_problem(conn: sa.Connection, frame: pd.DataFrame, raw: RawFile, rule_dated: bool) -> Problem | None:
    """Prices known before their own session's close on their instrument's calendar (vectorized,
    per distinct day and calendar); a date that is no session of the calendar is not checked.
    ``rule_dated``: known_at came from the release rules; the ``close`` rule gives the close itself,
    so when every instrument uses it there is nothing to check."""
    group, ids = pd.factorize(frame["instrument_id"])
    meta = instrument_rows(conn, [str(i) for i in ids]).set_index("instrument_id").reindex([str(i) for i in ids])
    if rule_dated and (meta["release_rule"] == "close").all():
        return None
    close = session_close_by_group(frame["obs_date"], group, meta["calendar"].tolist())
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
