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


def _long(weights: pd.DataFrame) -> pd.DataFrame:
    w = weights.sort_index().reindex(sorted(weights.columns), axis=1)
    long = w.stack(future_stack=True).rename("weight").reset_index()
    long.columns = ["decision_date", "instrument_id", "weight"]
    return long


def snapshot_id(s: SignalSnapshot) -> str:
    if s.weights.isna().any().any():
        raise ValueError(f"snapshot weights for {s.strategy_id} contain NaN")
    h = hashlib.sha256()
    head = {
        "strategy_id": s.strategy_id, "params_hash": s.params_hash,
        "window": [s.window_start.isoformat(), s.window_end.isoformat()],
        "input_watermarks": s.input_watermarks, "code_version": s.code_version,
        "columns": sorted(map(str, s.weights.columns)),
    }
    h.update(json.dumps(head, sort_keys=True, separators=(",", ":")).encode())
    long = _long(s.weights)
    h.update(pd.DatetimeIndex(long["decision_date"]).strftime("%Y-%m-%d").str.cat(sep=",").encode())
    h.update(long["instrument_id"].astype(str).str.cat(sep=",").encode())
    h.update(np.ascontiguousarray(long["weight"].to_numpy(dtype="<f8")).tobytes())
    return h.hexdigest()


def write_snapshot(engine: sa.Engine, s: SignalSnapshot) -> tuple[str, bool]:
    """Store ``s`` once; returns (snapshot id, True if it was new)."""
    with engine.begin() as conn:
        return write_snapshot_in(conn, s)


def write_snapshot_in(conn: sa.Connection, s: SignalSnapshot) -> tuple[str, bool]:
    """``write_snapshot`` inside the caller's transaction."""
    sid = snapshot_id(s)
    long = _long(s.weights)
    inserted = conn.execute(sa.text(
        "INSERT INTO signal_snapshots (snapshot_id, strategy_id, params_hash, window_start, window_end, "
        "input_watermarks, code_version, row_count) VALUES (:id, :s, :p, :ws, :we, CAST(:wm AS jsonb), :cv, :n) "
        "ON CONFLICT (snapshot_id) DO NOTHING"),
        {"id": sid, "s": s.strategy_id, "p": s.params_hash, "ws": s.window_start, "we": s.window_end,
         "wm": json.dumps(s.input_watermarks, sort_keys=True), "cv": s.code_version, "n": len(long)},
    ).rowcount
    if inserted:
        rows = long.assign(snapshot_id=sid, instrument_id=long["instrument_id"].astype(str))
        with conn.connection.dbapi_connection.cursor() as cur:  # weights travel as their exact bits
            copy_frame(cur, "signals", rows[["snapshot_id", "decision_date", "instrument_id", "weight"]])
    return sid, bool(inserted)


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
