"""Immutable signal snapshots: the weights a strategy produced, and exactly what they came from.

``snapshot_id`` = sha256 over a canonical encoding of (strategy id, params hash, window, input
watermarks, code version, the weights themselves: every decision date, instrument and the exact
float bits). Identical inputs give the identical id; any change gives a new id; a stored snapshot
is never rewritten (``INSERT ... ON CONFLICT DO NOTHING``), so writing the same snapshot twice is
a no-op.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.warehouse.copy import copy_frame


@dataclass(frozen=True)
class SignalSnapshot:
    strategy_id: str
    params_hash: str
    window_start: date
    window_end: date
    input_watermarks: dict
    code_version: str
    weights: pd.DataFrame = field(repr=False)  # decision date (index) x instrument

    @property
    def snapshot_id(self) -> str:
        return snapshot_id(self)

    @property
    def row_count(self) -> int:
        return int(self.weights.size)


def _sorted(weights: pd.DataFrame) -> pd.DataFrame:
    """Rows by decision date, columns by instrument id: the canonical order of a snapshot (the
    frame itself when already in it, as every month of a stretch is)."""
    columns = list(weights.columns)
    if weights.index.is_monotonic_increasing and weights.index.is_unique and columns == sorted(columns):
        return weights
    return weights.sort_index().reindex(sorted(columns), axis=1)


def _long_columns(w: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The canonical long form of sorted weights, row-major (date, then instrument): decision
    dates as 'YYYY-MM-DD' strings, instrument ids, weights (float64). Built with numpy repeats,
    not ``DataFrame.stack``: a stretch stores hundreds of monthly snapshots at once."""
    n_rows, n_cols = w.shape
    days = pd.DatetimeIndex(w.index).strftime("%Y-%m-%d").to_numpy(dtype=object)
    return (np.repeat(days, n_cols), np.tile(np.asarray(w.columns, dtype=object), n_rows),
            np.ascontiguousarray(w.to_numpy(dtype="<f8")).reshape(-1))


def snapshot_id(s: SignalSnapshot) -> str:
    if s.weights.isna().any().any():
        raise ValueError(f"snapshot weights for {s.strategy_id} contain NaN")
    return _hash(s, *_long_columns(_sorted(s.weights)))


def _hash(s: SignalSnapshot, days: np.ndarray, instruments: np.ndarray, weights: np.ndarray) -> str:
    h = hashlib.sha256()
    head = {
        "strategy_id": s.strategy_id, "params_hash": s.params_hash,
        "window": [s.window_start.isoformat(), s.window_end.isoformat()],
        "input_watermarks": s.input_watermarks, "code_version": s.code_version,
        "columns": sorted(map(str, s.weights.columns)),
    }
    h.update(json.dumps(head, sort_keys=True, separators=(",", ":")).encode())
    h.update(",".join(days).encode())
    h.update(",".join(map(str, instruments)).encode())
    h.update(np.ascontiguousarray(weights, dtype="<f8").tobytes())
    return h.hexdigest()


def write_snapshot(engine: sa.Engine, s: SignalSnapshot) -> tuple[str, bool]:
    """Store ``s`` once; returns (snapshot id, True if it was new)."""
    with engine.begin() as conn:
        return write_snapshot_in(conn, s)


def write_snapshot_in(conn: sa.Connection, s: SignalSnapshot) -> tuple[str, bool]:
    """``write_snapshot`` inside the caller's transaction."""
    return write_snapshots_in(conn, [s])[0]


def write_snapshots_in(conn: sa.Connection, snaps: list[SignalSnapshot]) -> list[tuple[str, bool]]:
    """Store several snapshots (e.g. every month of a stretch) inside the caller's transaction:
    one INSERT of their headers and one COPY of the rows of those that were new; returns
    (snapshot id, True if it was new) per snapshot, in order."""
    if not snaps:
        return []
    longs, ids = [], []
    for s in snaps:
        if s.weights.isna().any().any():
            raise ValueError(f"snapshot weights for {s.strategy_id} contain NaN")
        cols = _long_columns(_sorted(s.weights))
        longs.append(cols)
        ids.append(_hash(s, *cols))
    header = pd.DataFrame({
        "snapshot_id": ids, "strategy_id": [s.strategy_id for s in snaps], "params_hash": [s.params_hash for s in snaps],
        "window_start": [s.window_start for s in snaps], "window_end": [s.window_end for s in snaps],
        "input_watermarks": [json.dumps(s.input_watermarks, sort_keys=True) for s in snaps],
        "code_version": [s.code_version for s in snaps], "row_count": [len(c[2]) for c in longs]})
    inserted = set(conn.execute(sa.text(
        "INSERT INTO signal_snapshots (snapshot_id, strategy_id, params_hash, window_start, window_end, "
        "input_watermarks, code_version, row_count) "
        "SELECT * FROM unnest(CAST(:id AS text[]), CAST(:s AS text[]), CAST(:p AS text[]), CAST(:ws AS date[]), "
        "CAST(:we AS date[]), CAST(:wm AS jsonb[]), CAST(:cv AS text[]), CAST(:n AS bigint[])) "
        "ON CONFLICT (snapshot_id) DO NOTHING RETURNING snapshot_id"),
        {"id": ids, "s": list(header["strategy_id"]), "p": list(header["params_hash"]), "ws": list(header["window_start"]),
         "we": list(header["window_end"]), "wm": list(header["input_watermarks"]), "cv": list(header["code_version"]),
         "n": [int(n) for n in header["row_count"]]}).scalars())
    new = [i for i, sid in enumerate(ids) if sid in inserted and sid not in ids[:i]]
    if new:
        rows = pd.DataFrame({
            "snapshot_id": np.concatenate([np.full(len(longs[i][0]), ids[i], dtype=object) for i in new]),
            "decision_date": pd.to_datetime(np.concatenate([longs[i][0] for i in new]), format="%Y-%m-%d"),
            "instrument_id": np.concatenate([longs[i][1] for i in new]).astype(str),
            "weight": np.concatenate([longs[i][2] for i in new])})
        with conn.connection.dbapi_connection.cursor() as cur:  # weights travel as their exact bits
            copy_frame(cur, "signals", rows)
    return [(sid, sid in inserted and sid not in ids[:i]) for i, sid in enumerate(ids)]


def read_snapshot(engine: sa.Engine, sid: str) -> SignalSnapshot:
    """The stored snapshot ``sid`` with its weights (decision date x instrument)."""
    with engine.connect() as conn:
        meta = conn.execute(sa.text("SELECT * FROM signal_snapshots WHERE snapshot_id = :id"), {"id": sid}).mappings().first()
        if meta is None:
            raise ValueError(f"no signal snapshot {sid!r}")
        rows = conn.execute(sa.text(
            "SELECT decision_date, instrument_id, weight FROM signals WHERE snapshot_id = :id ORDER BY decision_date, instrument_id"),
            {"id": sid}).all()
    long = pd.DataFrame(rows, columns=["decision_date", "instrument_id", "weight"])
    long["decision_date"] = pd.to_datetime(long["decision_date"]).astype("datetime64[ns]")
    weights = long.pivot(index="decision_date", columns="instrument_id", values="weight").astype("float64")
    weights.index.name, weights.columns.name = None, None
    snap = SignalSnapshot(meta["strategy_id"], meta["params_hash"], meta["window_start"], meta["window_end"],
                          dict(meta["input_watermarks"]), meta["code_version"], weights)
    if snapshot_id(snap) != sid:
        raise RuntimeError(f"signal snapshot {sid} does not hash to its id: stored rows were altered")
    return snap
