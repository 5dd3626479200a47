"""Backtest results: stored whole or not at all, never overwritten.

``store_run`` writes a run and all its rows (daily equity, fills, round trips, metrics) in one
transaction and, in that same transaction, marks the previous current run of the same
(strategy, window, settings: the whole config and start state) superseded by the new one. A reader
therefore always sees exactly one complete current result per window and settings; a crash at any
point leaves the previous one current.

A *reproduction* (``reproduction=True``: a run computed as of an explicit ``system_as_of`` older
than the warehouse's data, see ``backtests.run_backtest``) supersedes nothing and is never
current: it is stored beside the current run, records that run's id in ``reproduces`` (when the
same strategy, window and settings have one), and every "current" reader excludes it
(``CURRENT_SQL``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.warehouse.copy import copy_frame
from macro_pipeline.warehouse.finite import finite_or_none

RUN_LOCK = 7170003


def current_sql(alias: str = "r") -> str:
    """The one definition of "a current result", as SQL on ``backtest_runs`` under ``alias``: not
    replaced, successful, not a reproduction. Every reader of current results uses it."""
    a = f"{alias}." if alias else ""
    return f"{a}superseded_by IS NULL AND {a}status = 'success' AND NOT {a}reproduction"


def standing_sql(alias: str = "r") -> str:
    """SQL for a run's standing, the one label every surface shows (CLI table and JSON, reports,
    Dagster metadata): 'current' exactly when ``current_sql`` holds, else 'reproduction',
    'superseded', or the run's non-success status. Computed in SQL so a missing
    ``superseded_by`` is never read as a (truthy) NaN on the Python side."""
    a = f"{alias}." if alias else ""
    return (f"CASE WHEN {current_sql(alias)} THEN 'current' WHEN {a}reproduction THEN 'reproduction' "
            f"WHEN {a}superseded_by IS NOT NULL THEN 'superseded' ELSE {a}status END")


CURRENT_SQL = current_sql("r")


class ChainChanged(RuntimeError):
    """A month's predecessor was superseded between reading its end state and storing the month."""


def new_run_id() -> str:
    return uuid.uuid4().hex


@dataclass
class RunRecord:
    """A stored run: its lineage row and (lazily, via ``load_run``) its rows."""

    meta: dict[str, Any]
    equity: pd.DataFrame
    fills: pd.DataFrame
    round_trips: pd.DataFrame
    metrics: dict[str, float | None]

    @property
    def run_id(self) -> str:
        return self.meta["run_id"]


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, datetime, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _copy(conn: sa.Connection, table: str, frame: pd.DataFrame) -> None:
    """COPY a run's rows in the caller's transaction; a non-finite float (NaN, +-inf) is NULL."""
    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    if floats:
        frame = frame.assign(**{c: frame[c].where(np.isfinite(frame[c])) for c in floats})
    with conn.connection.dbapi_connection.cursor() as cur:
        copy_frame(cur, table, frame)


def config_hash(config: dict, start_state: dict | None) -> str:
    """Identifies a run's settings: the whole engine config and the state it continued from."""
    body = json.dumps({"config": config, "start_state": start_state}, default=_json_default, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def store_run(engine: sa.Engine, **fields: Any) -> str | None:
    """``store_run_in`` (same keyword arguments) in a transaction of its own; returns the
    superseded id."""
    with engine.begin() as conn:
        return store_run_in(conn, **fields)


def store_run_in(
    conn: sa.Connection,
    *,
    run_id: str,
    strategy_id: str,
    window_start: date,
    window_end: date,
    config: dict,
    snapshot_id: str,
    system_as_of: datetime,
    engine_version: str,
    orchestrator_run_id: str | None,
    equity: pd.DataFrame,
    fills: pd.DataFrame,
    round_trips: pd.DataFrame,
    metrics: dict[str, Any],
    start_state: dict | None,
    end_state: dict | None,
    summary: dict | None = None,
    pipeline_month: bool = False,
    continues: str | None = None,
    reads: tuple[list, pd.Series] | None = None,
    reproduction: bool = False,
) -> str | None:
    """Store one complete run, inside the caller's transaction, and supersede the previous current
    run of the same strategy, window and settings (``config_hash``); returns the superseded id.

    ``pipeline_month``: the run is a month of the Dagster pipeline's chain; it supersedes every
    current pipeline run of the same strategy and calendar month, whatever their window end (the
    current month grows day by day) or start state (a rerun after a revision continues from a
    new end state), so each month has exactly one current run.

    ``continues``: the run whose end state is this run's start state. It must still be current
    when this run commits (checked under the strategy's lock, in the same transaction), so two
    runs that write one strategy's chain at once can never leave a month continuing from a
    replaced predecessor: the later one fails with ``ChainChanged`` and stores nothing.

    ``reads``: (the view's ``reads()``, the decision times of the run's sessions): its footprint.

    ``reproduction``: the run re-reads an older state of the warehouse (an explicit
    ``system_as_of`` older than the data). It supersedes nothing, never becomes current, and
    records in ``reproduces`` the current run of the same strategy, window and settings, if any;
    returns None. A pipeline month is never a reproduction.

    ``equity``: index session dates, columns equity, cash, gross_exposure, net_exposure, drawdown,
    turnover, and optionally costs and funding (per session). ``fills``/``round_trips``: the engine's frames. ``metrics``: scalar values go to
    ``metrics``; ``monthly_returns`` (a DataFrame) is kept as JSON on the run row.
    """
    monthly = metrics.get("monthly_returns")
    monthly_json = None
    if isinstance(monthly, pd.DataFrame):
        monthly_json = {str(y): {str(m): finite_or_none(v) for m, v in row.items()} for y, row in monthly.iterrows()}
    scalars = {k: finite_or_none(v) for k, v in metrics.items() if k != "monthly_returns"}
    chash = config_hash(config, start_state)
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k, hashtext(:s))"), {"k": RUN_LOCK, "s": strategy_id})
    if continues is not None:
        current = conn.execute(sa.text("SELECT superseded_by IS NULL FROM backtest_runs WHERE run_id = :r"),
                               {"r": continues}).scalar()
        if not current:
            raise ChainChanged(f"{strategy_id} {window_start}: the run it continues from ({continues}) was "
                               "replaced while this one computed (another run wrote the same months); rerun it")
    if reproduction and (pipeline_month or continues is not None):
        raise ValueError("a pipeline month is never a reproduction: months are always computed on the current data")
    reproduces = None
    if reproduction:
        olds = []
        reproduces = conn.execute(sa.text(
            "SELECT run_id FROM backtest_runs r WHERE strategy_id = :s AND window_start = :ws AND window_end = :we "
            f"AND config_hash = :h AND {CURRENT_SQL}"),
            {"s": strategy_id, "ws": window_start, "we": window_end, "h": chash}).scalar()
    elif pipeline_month:
        olds = conn.execute(sa.text(
            "SELECT run_id FROM backtest_runs r WHERE strategy_id = :s "
            "AND date_trunc('month', window_start) = date_trunc('month', CAST(:ws AS date)) "
            f"AND summary ->> 'pipeline' = 'true' AND {CURRENT_SQL} "
            "ORDER BY created_at FOR UPDATE"), {"s": strategy_id, "ws": window_start}).scalars().all()
    else:
        olds = conn.execute(sa.text(
            "SELECT run_id FROM backtest_runs r WHERE strategy_id = :s AND window_start = :ws AND window_end = :we "
            f"AND config_hash = :h AND {CURRENT_SQL} FOR UPDATE"),
            {"s": strategy_id, "ws": window_start, "we": window_end, "h": chash}).scalars().all()
    previous = olds[-1] if olds else None
    if olds:  # the FK is deferred: checked at commit, when the new row exists
        conn.execute(sa.text("UPDATE backtest_runs SET superseded_by = :new WHERE run_id = ANY(:old)"),
                     {"new": run_id, "old": list(olds)})
    conn.execute(sa.text(
        "INSERT INTO backtest_runs (run_id, strategy_id, window_start, window_end, config, config_hash, signal_snapshot_id, "
        "system_as_of, engine_version, orchestrator_run_id, status, start_state, end_state, monthly_returns, summary, "
        "reproduction, reproduces) "
        "VALUES (:id, :s, :ws, :we, CAST(:cfg AS jsonb), :h, :snap, :sys, :ev, :orch, 'success', CAST(:ss AS jsonb), "
        "CAST(:es AS jsonb), CAST(:mr AS jsonb), CAST(:sm AS jsonb), :repro, :reproduces)"),
        {"id": run_id, "s": strategy_id, "ws": window_start, "we": window_end, "h": chash,
         "cfg": json.dumps(config, default=_json_default, sort_keys=True), "snap": snapshot_id,
         "sys": system_as_of, "ev": engine_version, "orch": orchestrator_run_id,
         "ss": json.dumps(start_state, default=_json_default) if start_state is not None else None,
         "es": json.dumps(end_state, default=_json_default) if end_state is not None else None,
         "mr": json.dumps(monthly_json) if monthly_json is not None else None,
         "sm": json.dumps(summary or {}, default=_json_default), "repro": reproduction, "reproduces": reproduces})
    eq = equity.reset_index()
    eq.columns = ["session_date", *equity.columns]
    eq.insert(0, "run_id", run_id)
    eq["session_date"] = pd.DatetimeIndex(eq["session_date"]).strftime("%Y-%m-%d")
    cols = ["run_id", "session_date", "equity", "cash", "gross_exposure", "net_exposure", "drawdown", "turnover"]
    cols += [c for c in ("costs", "funding") if c in eq.columns]  # per-session, when the caller has them
    _copy(conn, "daily_equity", eq[cols])
    if len(fills):
        f = pd.DataFrame({
            "run_id": run_id, "fill_no": np.arange(1, len(fills) + 1),
            "session_date": pd.DatetimeIndex(fills["date"]).strftime("%Y-%m-%d"),
            # portfolio-level log rows (e.g. non_positive_equity) have no instrument: stored as ''
            "instrument_id": fills["instrument"].astype(object).where(fills["instrument"].notna(), "").astype(str).to_numpy(),
            "side": fills["side"].astype(str).to_numpy(),
            "quantity": fills["quantity"].to_numpy(dtype=float), "price": fills["price"].to_numpy(dtype=float),
            "notional": fills["notional"].to_numpy(dtype=float), "cost": fills["cost"].to_numpy(dtype=float),
            "reason": fills["reason"].astype(str).to_numpy()})
        _copy(conn, "fills", f)
    if len(round_trips):
        rt = pd.DataFrame({
            "run_id": run_id, "trip_no": np.arange(1, len(round_trips) + 1),
            "instrument_id": round_trips["instrument"].astype(str).to_numpy(),
            "entry_date": pd.DatetimeIndex(round_trips["entry_date"]).strftime("%Y-%m-%d"),
            "exit_date": pd.DatetimeIndex(round_trips["exit_date"]).strftime("%Y-%m-%d"),
            "holding_days": round_trips["holding_days"].to_numpy(dtype=int),
            "pnl": round_trips["pnl"].to_numpy(dtype=float), "return_pct": round_trips["return"].to_numpy(dtype=float)})
        _copy(conn, "round_trips", rt)
    if scalars:
        conn.execute(sa.text("INSERT INTO metrics (run_id, metric_name, value) VALUES (:r, :k, :v)"),
                     [{"r": run_id, "k": k, "v": v} for k, v in scalars.items()])
    if reads is not None and len(reads[1]):
        entities, times = reads
        write_reads_in(conn, run_id, entities, valid_to=times.index[-1].date(),
                       first_decision=times.iloc[0], last_decision=times.iloc[-1])
    return previous


def write_reads_in(conn: sa.Connection, run_ids: str | list[str], reads: list[tuple], *,
                   valid_to: date | list[date], first_decision: datetime | list[datetime],
                   last_decision: datetime | list[datetime]) -> None:
    """Store the footprint of one run, or of several runs that read the same entities (the months
    of one stretch), in the caller's transaction, with one COPY. ``reads``: the view's
    ``reads()`` (source, entity, signal name, first valid time read); ``valid_to`` (last decision
    date) and the first and last decision times per run. See ``sql/007_run_reads.sql``."""
    ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    if not reads or not ids:
        return

    def per_run(value) -> list:
        return list(value) if isinstance(value, list) else [value] * len(ids)

    n = len(reads)
    first_valid = [None if r[3] is None else pd.Timestamp(r[3]).strftime("%Y-%m-%d") for r in reads]
    frame = pd.DataFrame({
        "run_id": np.repeat(ids, n),
        "source": [r[0] for r in reads] * len(ids), "entity": [r[1] for r in reads] * len(ids),
        "signal_name": [r[2] for r in reads] * len(ids), "valid_from": first_valid * len(ids),
        "valid_to": np.repeat([pd.Timestamp(v).strftime("%Y-%m-%d") for v in per_run(valid_to)], n),
        "first_decision": np.repeat([pd.Timestamp(t).isoformat() for t in per_run(first_decision)], n),
        "last_decision": np.repeat([pd.Timestamp(t).isoformat() for t in per_run(last_decision)], n)})
    _copy(conn, "run_reads", frame)


def _runs_where(strategy_id: str | None, current_only: bool) -> tuple[list[str], dict]:
    where, params = [], {}
    if strategy_id:
        where.append("r.strategy_id = :s")
        params["s"] = strategy_id
    if current_only:
        where.append(CURRENT_SQL)
    return where, params


def count_runs(engine: sa.Engine, strategy_id: str | None = None, current_only: bool = False) -> int:
    """How many runs ``list_runs`` would return without a limit."""
    where, params = _runs_where(strategy_id, current_only)
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM backtest_runs r "
                                         + (f"WHERE {' AND '.join(where)}" if where else "")), params).scalar())


def list_runs(engine: sa.Engine, strategy_id: str | None = None, current_only: bool = False,
              limit: int | None = None) -> pd.DataFrame:
    """Stored runs, oldest first, with their ``standing`` (`standing_sql`); ``current_only``:
    current results only (no superseded run, no reproduction); ``limit``: only the newest
    ``limit`` of them (still oldest first)."""
    where, params = _runs_where(strategy_id, current_only)
    sql = (
        "SELECT r.run_id, r.strategy_id, r.window_start, r.window_end, (r.config ->> 'clean')::boolean AS clean, "
        "r.signal_snapshot_id, r.system_as_of, r.superseded_by, r.reproduction, r.reproduces, r.created_at, "
        f"{standing_sql('r')} AS standing, "
        "max(m.value) FILTER (WHERE m.metric_name = 'total_return') AS total_return, "
        "max(m.value) FILTER (WHERE m.metric_name = 'sharpe') AS sharpe "
        "FROM backtest_runs r LEFT JOIN metrics m USING (run_id) "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + "GROUP BY r.run_id ORDER BY r.created_at"
    )
    if limit is not None:
        sql = f"SELECT * FROM ({sql} DESC, r.run_id DESC LIMIT :lim) x ORDER BY created_at, run_id"
        params["lim"] = max(int(limit), 0)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(sa.text(sql), params).mappings().all())


def reproduced_run(engine: sa.Engine, run_id: str) -> str | None:
    """The current run that reproduction ``run_id`` reproduces (None: none, or not a reproduction)."""
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT reproduces FROM backtest_runs WHERE run_id = :r"), {"r": run_id}).scalar()


def load_run(engine: sa.Engine, run_id: str) -> RunRecord:
    """Everything stored for ``run_id`` (``meta`` has the run's row plus its ``standing``); a clear
    error if there is no such run."""
    with engine.connect() as conn:
        meta = conn.execute(sa.text(f"SELECT r.*, {standing_sql('r')} AS standing FROM backtest_runs r WHERE run_id = :r"),
                            {"r": run_id}).mappings().first()
        if meta is None:
            raise ValueError(f"no backtest run {run_id!r} (see `macro-pipeline runs list`)")
        eq = pd.read_sql(sa.text("SELECT session_date, equity, cash, gross_exposure, net_exposure, drawdown, turnover, "
                                 "costs, funding FROM daily_equity WHERE run_id = :r ORDER BY session_date"), conn,
                         params={"r": run_id})
        fills = pd.read_sql(sa.text("SELECT * FROM fills WHERE run_id = :r ORDER BY fill_no"), conn, params={"r": run_id})
        trips = pd.read_sql(sa.text("SELECT * FROM round_trips WHERE run_id = :r ORDER BY trip_no"), conn, params={"r": run_id})
        metrics = dict(conn.execute(sa.text("SELECT metric_name, value FROM metrics WHERE run_id = :r"), {"r": run_id}).all())
    eq["session_date"] = pd.to_datetime(eq["session_date"])
    return RunRecord(dict(meta), eq.set_index("session_date"), fills, trips, metrics)
