"""Sweeps in the warehouse (``sql/009_sweeps.sql``): one transaction per sweep, and readers.

A sweep row is immutable; its id is a content hash (``research/sweep.py``). ``store_sweep``
inserts the sweep, one ``sweep_configs`` row per configuration, one ``sweep_returns`` row per
configuration (float64 little-endian bytes, one value per session of ``sweeps.sessions``) and the
walk-forward rows, all or nothing. An id already stored is not rewritten: the caller compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from psycopg2.extras import execute_values

from macro_pipeline.warehouse.finite import finite_or_none

SWEEP_LOCK = 7170016
CONFIG_METRICS = ("sharpe", "cagr", "annual_volatility", "sortino", "max_drawdown", "calmar",
                  "total_return")  # fmt: skip


def _json(value: Any) -> str:
    def default(v: Any) -> Any:
        if isinstance(v, (pd.Timestamp, datetime)):
            return v.isoformat()
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, np.floating):
            return finite_or_none(v)
        if hasattr(v, "isoformat"):
            return v.isoformat()
        raise TypeError(f"not JSON serialisable: {type(v).__name__}")

    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return finite_or_none(v)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), default=default, sort_keys=True, allow_nan=False)


def to_bytes(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


def from_bytes(blob: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(blob), dtype="<f8")


@dataclass
class StoredSweep:
    meta: dict[str, Any]
    configs: pd.DataFrame  # config_idx, params, label, metrics
    sessions: pd.DatetimeIndex
    folds: pd.DataFrame
    walk_forward: dict[str, Any] | None

    def returns(self, engine: sa.Engine) -> np.ndarray:
        return load_returns(engine, self.meta["sweep_id"])


def sweep_exists(engine: sa.Engine, sweep_id: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT 1 FROM sweeps WHERE sweep_id = :s"), {"s": sweep_id}).first() is not None


def store_sweep(
    engine: sa.Engine, *, meta: dict[str, Any], configs: list[dict[str, Any]], returns: np.ndarray,
    folds: list[dict[str, Any]], walk_forward: dict[str, Any] | None,
) -> bool:  # fmt: skip
    """Write a whole sweep in one transaction; False (nothing written) if its id is stored.

    ``returns``: sessions x configurations. ``configs``: per configuration ``params``,
    ``params_hash``, ``label`` and the ``CONFIG_METRICS``."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": SWEEP_LOCK})
        if conn.execute(sa.text("SELECT 1 FROM sweeps WHERE sweep_id = :s"), {"s": meta["sweep_id"]}).first():
            return False
        conn.execute(sa.text(
            "INSERT INTO sweeps (sweep_id, name, kind, spec, input_watermarks, system_as_of, code_version, "
            "engine_version, n_configs, sessions, metric, best_config, stats, orchestrator_run_id) VALUES "
            "(:sweep_id, :name, :kind, CAST(:spec AS jsonb), CAST(:marks AS jsonb), :sys, :code, :engine_version, "
            ":n, :sessions, :metric, :best, CAST(:stats AS jsonb), :orch)"),
            {"sweep_id": meta["sweep_id"], "name": meta.get("name"), "kind": meta["kind"],
             "spec": _json(meta["spec"]), "marks": _json(meta["input_watermarks"]),
             "sys": meta["system_as_of"], "code": meta["code_version"], "engine_version": meta["engine_version"],
             "n": len(configs), "sessions": [d.date() for d in meta["sessions"]], "metric": meta["metric"],
             "best": int(meta["best_config"]), "stats": _json(meta["stats"]), "orch": meta.get("orchestrator_run_id")})
        sid = meta["sweep_id"]
        cur = conn.connection.dbapi_connection.cursor()
        execute_values(cur, "INSERT INTO sweep_configs (sweep_id, config_idx, params, params_hash, label, "
                            f"{', '.join(CONFIG_METRICS)}) VALUES %s",
                       [(sid, k, _json(c["params"]), c["params_hash"], c["label"],
                         *(finite_or_none(c[m]) for m in CONFIG_METRICS)) for k, c in enumerate(configs)],
                       template="(%s, %s, CAST(%s AS jsonb), %s, %s" + ", %s" * len(CONFIG_METRICS) + ")")
        r = np.asarray(returns, dtype=np.float64)
        for a in range(0, r.shape[1], 100):  # ~6.6 MB a statement
            execute_values(cur, "INSERT INTO sweep_returns (sweep_id, config_idx, returns) VALUES %s",
                           [(sid, k, to_bytes(r[:, k])) for k in range(a, min(a + 100, r.shape[1]))])
        if folds:
            execute_values(cur, "INSERT INTO sweep_folds (sweep_id, fold, train_start, train_end, test_start, "
                                "test_end, chosen_config, is_metric, oos_metric) VALUES %s",
                           [(sid, f["fold"], f["train_start"], f["train_end"], f["test_start"], f["test_end"],
                             int(f["chosen_config"]), [finite_or_none(x) for x in f["is_metric"]],
                             [finite_or_none(x) for x in f["oos_metric"]]) for f in folds],
                           template="(%s, %s, %s, %s, %s, %s, %s, %s::float8[], %s::float8[])")
        if walk_forward is not None:
            conn.execute(sa.text(
                "INSERT INTO sweep_walk_forward (sweep_id, sessions, equity, metrics, end_state) VALUES "
                "(:s, :sessions, :eq, CAST(:m AS jsonb), CAST(:es AS jsonb))"),
                {"s": sid, "sessions": [d.date() for d in walk_forward["sessions"]],
                 "eq": to_bytes(walk_forward["equity"]), "m": _json(walk_forward["metrics"]),
                 "es": _json(walk_forward["end_state"])})
    return True


def load_returns(engine: sa.Engine, sweep_id: str) -> np.ndarray:
    """Sessions x configurations, exactly as stored."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT returns FROM sweep_returns WHERE sweep_id = :s ORDER BY config_idx"),
                            {"s": sweep_id}).scalars().all()
    if not rows:
        raise ValueError(f"no stored returns for sweep {sweep_id!r}")
    return np.column_stack([from_bytes(b) for b in rows])


def resolve_sweep_id(engine: sa.Engine, ref: str) -> str:
    """A sweep id, a unique prefix of at least 6 characters, or a sweeps.toml name (its newest)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT sweep_id FROM sweeps WHERE sweep_id LIKE :p || '%' AND length(:p) >= 6"), {"p": ref}).scalars().all()
        if len(rows) == 1:
            return rows[0]
        if len(rows) > 1:
            raise ValueError(f"sweep id prefix {ref!r} is ambiguous ({len(rows)} sweeps)")
        named = conn.execute(sa.text("SELECT sweep_id FROM sweeps WHERE name = :n ORDER BY created_at DESC LIMIT 1"),
                             {"n": ref}).scalar()
    if named is None:
        raise ValueError(f"no sweep {ref!r} (an id, a prefix of 6+ characters, or a sweep name)")
    return named


def load_sweep(engine: sa.Engine, sweep_id: str) -> StoredSweep:
    with engine.connect() as conn:
        meta = conn.execute(sa.text("SELECT * FROM sweeps WHERE sweep_id = :s"), {"s": sweep_id}).mappings().first()
        if meta is None:
            raise ValueError(f"no sweep {sweep_id!r}")
        meta = dict(meta)
        configs = pd.DataFrame(conn.execute(sa.text(
            "SELECT * FROM sweep_configs WHERE sweep_id = :s ORDER BY config_idx"), {"s": sweep_id}).mappings().all())
        folds = pd.DataFrame(conn.execute(sa.text(
            "SELECT * FROM sweep_folds WHERE sweep_id = :s ORDER BY fold"), {"s": sweep_id}).mappings().all())
        wf = conn.execute(sa.text("SELECT * FROM sweep_walk_forward WHERE sweep_id = :s"), {"s": sweep_id}).mappings().first()
    sessions = pd.DatetimeIndex(pd.to_datetime(meta.pop("sessions")))
    walk = None
    if wf is not None:
        walk = dict(wf)
        walk["sessions"] = pd.DatetimeIndex(pd.to_datetime(walk["sessions"]))
        walk["equity"] = from_bytes(walk["equity"])
    return StoredSweep(meta, configs, sessions, folds, walk)


def list_sweeps(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(sa.text(
            "SELECT sweep_id, name, kind, n_configs, metric, best_config, stats ->> 'best_label' AS best, "
            "(stats ->> 'dsr')::float8 AS dsr, (stats ->> 'pbo')::float8 AS pbo, system_as_of, created_at "
            "FROM sweeps ORDER BY created_at")).mappings().all())
