"""Backtest results: stored whole or not at all, never overwritten.

``store_run`` writes a run and all its rows (daily equity, fills, round trips, metrics) in one
transaction and, in that same transaction, marks the previous current run of the same
(strategy, window, settings: the whole config and start state) superseded by the new one. A reader
therefore always sees exactly one complete current result per window and settings; a crash at any
point leaves the previous one current.

A *reproduction* (``reproduction=True``: a run computed as of an explicit ``system_as_of`` older
than the warehouse's data, see ``backtest.one_off.run_backtest``) supersedes nothing and is never
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


def store_run_in(conn: sa.Connection, **fields: Any) -> str | None:
    """Store one complete run, inside the caller's transaction, and supersede the previous current
    run of the same strategy, window and settings (``config_hash``); returns the superseded id.
    ``store_runs_in`` with one run: the keyword arguments are one element of its ``runs``."""
    return store_runs_in(conn, [fields])[0]


_RUN_DEFAULTS: dict[str, Any] = {"summary": None, "pipeline_month": False, "continues": None, "reads": None,
                                 "reproduction": False}


def store_runs_in(conn: sa.Connection, runs: list[dict[str, Any]]) -> list[str | None]:
    """Store complete runs (e.g. every month of a pipeline stretch) inside the caller's
    transaction, with one statement or COPY per table whatever their number; returns, per run,
    the id it superseded (None if none).

    Each run is a dict of: ``run_id``, ``strategy_id``, ``window_start``, ``window_end``,
    ``config``, ``snapshot_id``, ``system_as_of``, ``engine_version``, ``orchestrator_run_id``,
    ``equity``, ``fills``, ``round_trips``, ``metrics``, ``start_state``, ``end_state``, and
    optionally ``summary``, ``pipeline_month``, ``continues``, ``reads``, ``reproduction``:

    A run supersedes the previous current run of the same strategy, window and settings
    (``config_hash``: the whole config and the start state).

    ``pipeline_month``: the run is a month of the Dagster pipeline's chain; it supersedes every
    current pipeline run of the same strategy and calendar month, whatever their window end (the
    current month grows day by day) or start state (a rerun after a revision continues from a
    new end state), so each month has exactly one current run.

    ``continues``: the run whose end state is this run's start state. It must still be current
    when this run commits (checked under the strategy's lock, in the same transaction), so two
    runs that write one strategy's chain at once can never leave a month continuing from a
    replaced predecessor: the later one fails with ``ChainChanged`` and stores nothing. A run
    continuing from an earlier run of the same call needs no check.

    ``reads``: (the view's ``reads()``, the decision times of the run's sessions): its footprint.

    ``reproduction``: the run re-reads an older state of the warehouse (an explicit
    ``system_as_of`` older than the data). It supersedes nothing, never becomes current, and
    records in ``reproduces`` the current run of the same strategy, window and settings, if any;
    its entry in the result is None. A pipeline month is never a reproduction.

    ``equity``: index session dates, columns equity, cash, gross_exposure, net_exposure, drawdown,
    turnover, and optionally costs and funding (per session). ``fills``/``round_trips``: the
    engine's frames. ``metrics``: scalar values go to ``metrics``; ``monthly_returns`` (a
    DataFrame) is kept as JSON on the run row.
    """
    runs = [{**_RUN_DEFAULTS, **r} for r in runs]
    if not runs:
        return []
    keys = [(r["strategy_id"], r["window_start"], r["window_end"]) if not r["pipeline_month"]
            else (r["strategy_id"], pd.Timestamp(r["window_start"]).strftime("%Y-%m")) for r in runs]
    if len(set(keys)) != len(keys):
        raise ValueError("store_runs_in: two runs of one call would supersede each other; store them in two calls")
    for r in runs:
        if r["reproduction"] and (r["pipeline_month"] or r["continues"] is not None):
            raise ValueError("a pipeline month is never a reproduction: months are always computed on the current data")
        r["config_hash"] = config_hash(r["config"], r["start_state"])
    for strategy_id in sorted({r["strategy_id"] for r in runs}):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k, hashtext(:s))"), {"k": RUN_LOCK, "s": strategy_id})
    own = {r["run_id"] for r in runs}
    outside = {r["continues"]: r for r in runs if r["continues"] is not None and r["continues"] not in own}
    if outside:
        current = dict(conn.execute(sa.text(
            "SELECT run_id, superseded_by IS NULL FROM backtest_runs WHERE run_id = ANY(:r)"), {"r": list(outside)}).all())
        for rid, r in outside.items():
            if not current.get(rid):
                raise ChainChanged(f"{r['strategy_id']} {r['window_start']}: the run it continues from ({rid}) was "
                                   "replaced while this one computed (another run wrote the same months); rerun it")
    olds = _superseded(conn, runs)
    pairs = [(old, r["run_id"]) for r, rs in zip(runs, olds, strict=True) for old in rs]
    if pairs:  # the FK is deferred: checked at commit, when the new rows exist
        conn.execute(sa.text(
            "UPDATE backtest_runs b SET superseded_by = u.new FROM unnest(CAST(:old AS text[]), CAST(:new AS text[])) "
            "AS u(old, new) WHERE b.run_id = u.old"), {"old": [p[0] for p in pairs], "new": [p[1] for p in pairs]})
    _insert_runs(conn, runs)
    _copy_run_rows(conn, runs)
    for r in runs:
        if r["reads"] is not None and len(r["reads"][1]):
            entities, times = r["reads"]
            write_reads_in(conn, r["run_id"], entities, valid_to=times.index[-1].date(),
                           first_decision=times.iloc[0], last_decision=times.iloc[-1])
    return [rs[-1] if rs else None for rs in olds]


def _superseded(conn: sa.Connection, runs: list[dict[str, Any]]) -> list[list[str]]:
    """Per run, the current runs it supersedes (oldest first, locked); for a reproduction, none
    (its ``reproduces`` is looked up instead)."""
    out: list[list[str]] = [[] for _ in runs]
    months: dict[str, list[int]] = {}
    for i, r in enumerate(runs):
        if r["pipeline_month"]:
            months.setdefault(r["strategy_id"], []).append(i)
            continue
        found = conn.execute(sa.text(
            "SELECT run_id FROM backtest_runs r WHERE strategy_id = :s AND window_start = :ws AND window_end = :we "
            f"AND config_hash = :h AND {CURRENT_SQL}" + ("" if r["reproduction"] else " FOR UPDATE")),
            {"s": r["strategy_id"], "ws": r["window_start"], "we": r["window_end"], "h": r["config_hash"]}).scalars().all()
        if r["reproduction"]:
            r["reproduces"] = found[0] if found else None
        else:
            out[i] = list(found)
    for strategy_id, idx in months.items():  # one query for every month of a strategy's stretch
        wanted = {pd.Timestamp(runs[i]["window_start"]).strftime("%Y-%m-01"): i for i in idx}
        rows = conn.execute(sa.text(
            "SELECT run_id, to_char(window_start, 'YYYY-MM-01') FROM backtest_runs r WHERE strategy_id = :s "
            "AND date_trunc('month', window_start) = ANY(CAST(:months AS date[])) "
            f"AND summary ->> 'pipeline' = 'true' AND {CURRENT_SQL} "
            "ORDER BY created_at FOR UPDATE"), {"s": strategy_id, "months": list(wanted)}).all()
        for run_id, month in rows:
            out[wanted[month]].append(run_id)
    return out


def _insert_runs(conn: sa.Connection, runs: list[dict[str, Any]]) -> None:
    def monthly(r: dict) -> str | None:
        table = r["metrics"].get("monthly_returns")
        if not isinstance(table, pd.DataFrame):
            return None
        return json.dumps({str(y): {str(m): finite_or_none(v) for m, v in row.items()} for y, row in table.iterrows()})

    def js(value: Any) -> str | None:
        return json.dumps(value, default=_json_default) if value is not None else None

    conn.execute(sa.text(
        "INSERT INTO backtest_runs (run_id, strategy_id, window_start, window_end, config, config_hash, signal_snapshot_id, "
        "system_as_of, engine_version, orchestrator_run_id, status, start_state, end_state, monthly_returns, summary, "
        "reproduction, reproduces) "
        "SELECT id, s, ws, we, cfg, h, snap, sys, ev, orch, 'success', ss, es, mr, sm, repro, reproduces "
        "FROM unnest(CAST(:id AS text[]), CAST(:s AS text[]), CAST(:ws AS date[]), CAST(:we AS date[]), "
        "CAST(:cfg AS jsonb[]), CAST(:h AS text[]), CAST(:snap AS text[]), CAST(:sys AS timestamptz[]), "
        "CAST(:ev AS text[]), CAST(:orch AS text[]), CAST(:ss AS jsonb[]), CAST(:es AS jsonb[]), CAST(:mr AS jsonb[]), "
        "CAST(:sm AS jsonb[]), CAST(:repro AS boolean[]), CAST(:reproduces AS text[])) "
        "AS u(id, s, ws, we, cfg, h, snap, sys, ev, orch, ss, es, mr, sm, repro, reproduces)"),
        {"id": [r["run_id"] for r in runs], "s": [r["strategy_id"] for r in runs],
         "ws": [r["window_start"] for r in runs], "we": [r["window_end"] for r in runs],
         "cfg": [json.dumps(r["config"], default=_json_default, sort_keys=True) for r in runs],
         "h": [r["config_hash"] for r in runs], "snap": [r["snapshot_id"] for r in runs],
         "sys": [r["system_as_of"] for r in runs], "ev": [r["engine_version"] for r in runs],
         "orch": [r["orchestrator_run_id"] for r in runs], "ss": [js(r["start_state"]) for r in runs],
         "es": [js(r["end_state"]) for r in runs], "mr": [monthly(r) for r in runs],
         "sm": [json.dumps(r["summary"] or {}, default=_json_default) for r in runs],
         "repro": [bool(r["reproduction"]) for r in runs], "reproduces": [r.get("reproduces") for r in runs]})


def _numbered(frames: list[pd.DataFrame], run_ids: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The runs' frames as one (ignoring their index), with each row's run id and its 1-based
    number inside its run."""
    lengths = np.array([len(f) for f in frames])
    whole = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    starts = np.cumsum(lengths) - lengths
    return whole, np.repeat(np.array(run_ids, dtype=object), lengths), np.arange(len(whole)) - np.repeat(starts, lengths) + 1


def _copy_run_rows(conn: sa.Connection, runs: list[dict[str, Any]]) -> None:
    """Daily equity, fills, round trips and scalar metrics of every run: one COPY per table,
    built from the runs' frames put end to end (not a frame per run)."""
    by_columns: dict[tuple, list[int]] = {}
    for i, r in enumerate(runs):
        cols = ["equity", "cash", "gross_exposure", "net_exposure", "drawdown", "turnover"]
        cols += [c for c in ("costs", "funding") if c in r["equity"].columns]  # per-session, when the caller has them
        by_columns.setdefault(tuple(cols), []).append(i)
    for cols, idx in by_columns.items():
        frames = [runs[i]["equity"] for i in idx]
        days = np.concatenate([np.asarray(pd.DatetimeIndex(f.index), dtype="datetime64[ns]") for f in frames])
        e, run_id, _ = _numbered([f[list(cols)] for f in frames], [runs[i]["run_id"] for i in idx])
        _copy(conn, "daily_equity", pd.DataFrame({"run_id": run_id, "session_date": days,
                                                  **{c: e[c].to_numpy(dtype=float) for c in cols}}))
    idx = [i for i, r in enumerate(runs) if len(r["fills"])]
    if idx:
        f, run_id, no = _numbered([runs[i]["fills"] for i in idx], [runs[i]["run_id"] for i in idx])
        _copy(conn, "fills", pd.DataFrame({
            "run_id": run_id, "fill_no": no, "session_date": pd.DatetimeIndex(f["date"]),
            # portfolio-level log rows (e.g. non_positive_equity) have no instrument: stored as ''
            "instrument_id": f["instrument"].astype(object).where(f["instrument"].notna(), "").astype(str).to_numpy(),
            "side": f["side"].astype(str).to_numpy(),
            "quantity": f["quantity"].to_numpy(dtype=float), "price": f["price"].to_numpy(dtype=float),
            "notional": f["notional"].to_numpy(dtype=float), "cost": f["cost"].to_numpy(dtype=float),
            "reason": f["reason"].astype(str).to_numpy()}))
    idx = [i for i, r in enumerate(runs) if len(r["round_trips"])]
    if idx:
        t, run_id, no = _numbered([runs[i]["round_trips"] for i in idx], [runs[i]["run_id"] for i in idx])
        _copy(conn, "round_trips", pd.DataFrame({
            "run_id": run_id, "trip_no": no, "instrument_id": t["instrument"].astype(str).to_numpy(),
            "entry_date": pd.DatetimeIndex(t["entry_date"]), "exit_date": pd.DatetimeIndex(t["exit_date"]),
            "holding_days": t["holding_days"].to_numpy(dtype=int),
            "pnl": t["pnl"].to_numpy(dtype=float), "return_pct": t["return"].to_numpy(dtype=float)}))
    metrics = [(r["run_id"], k, finite_or_none(v)) for r in runs for k, v in r["metrics"].items() if k != "monthly_returns"]
    if metrics:
        _copy(conn, "metrics", pd.DataFrame(metrics, columns=["run_id", "metric_name", "value"]).astype({"value": "float64"}))


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
