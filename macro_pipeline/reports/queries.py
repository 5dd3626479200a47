"""Read-only warehouse queries the reports need beyond ``warehouse.runs.load_run``.

They are here rather than in ``warehouse/runs.py`` only because they serve the reports alone:
bulk reads of a strategy's monthly pipeline runs (one query per table instead of four per month),
resolving a run id prefix, and finding a run's clean (or realistic) counterpart. Nothing here
writes.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import sqlalchemy as sa

from macro_pipeline.warehouse.runs import current_sql

_HEX = re.compile(r"^[0-9a-f]+$")
MIN_PREFIX = 6


def strategy_row(engine: sa.Engine, strategy_id: str) -> dict[str, Any] | None:
    """The registered configuration (kind, params as stored, params_hash, universe) or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT strategy_id, kind, params, params_hash, universe FROM strategies WHERE strategy_id = :s"),
            {"s": strategy_id}).mappings().first()
    return dict(row) if row is not None else None


def run_ids_matching(engine: sa.Engine, text: str) -> list[str]:
    """Run ids equal to ``text`` or, for a hex string of at least ``MIN_PREFIX`` characters,
    starting with it (at most 6 returned: enough to show an ambiguity)."""
    text = text.strip().lower()
    if not _HEX.match(text) or len(text) < MIN_PREFIX:
        return []
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT run_id FROM backtest_runs WHERE run_id = :t OR run_id LIKE :p ORDER BY run_id = :t DESC, "
            "created_at LIMIT 6"), {"t": text, "p": text + "%"}).scalars().all()
    return [text] if text in rows else list(rows)


def current_pipeline_runs(engine: sa.Engine, strategy_id: str, until=None) -> pd.DataFrame:
    """The strategy's current monthly pipeline runs (``summary.pipeline = true``), one per month
    (the newest when a month has several, e.g. a current month whose window grew), in window
    order, with their lineage columns and stored ``total_return``; only months starting on or
    before ``until`` when given."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT r.run_id, r.window_start, r.window_end, r.config, r.signal_snapshot_id, r.system_as_of, "
            "r.engine_version, r.orchestrator_run_id, r.start_state, r.summary, r.created_at, "
            "(SELECT m.value FROM metrics m WHERE m.run_id = r.run_id AND m.metric_name = 'total_return') "
            "AS total_return "
            "FROM (SELECT DISTINCT ON (window_start) * FROM backtest_runs "
            f"      WHERE strategy_id = :s AND {current_sql('')} "
            "      AND summary ->> 'pipeline' = 'true' AND (CAST(:u AS date) IS NULL OR window_start <= :u) "
            "      ORDER BY window_start, created_at DESC) r "
            "ORDER BY r.window_start"), {"s": strategy_id, "u": until}).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])


def run_rows(engine: sa.Engine, run_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Daily equity, fills and round trips of several runs at once, in date order."""
    params = {"ids": list(run_ids)}
    with engine.connect() as conn:
        eq = pd.read_sql(sa.text(
            "SELECT session_date, equity, cash, gross_exposure, net_exposure, drawdown, turnover, costs, funding "
            "FROM daily_equity WHERE run_id = ANY(:ids) ORDER BY session_date"), conn, params=params)
        fills = pd.read_sql(sa.text(
            "SELECT * FROM fills WHERE run_id = ANY(:ids) ORDER BY session_date, fill_no"), conn, params=params)
        trips = pd.read_sql(sa.text(
            "SELECT * FROM round_trips WHERE run_id = ANY(:ids) ORDER BY exit_date, trip_no"), conn, params=params)
    eq["session_date"] = pd.to_datetime(eq["session_date"])
    return eq.set_index("session_date"), fills, trips


def counterpart_run(engine: sa.Engine, strategy_id: str, window_start, window_end, config: dict,
                    start_state: dict | None) -> str | None:
    """The newest current run of the same strategy, window, start state and config except for the
    opposite ``clean`` flag: the clean reference of a realistic run, or the other way round."""
    clean = bool(config.get("clean"))
    rest = {k: v for k, v in config.items() if k != "clean"}
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT run_id, config, start_state FROM backtest_runs WHERE strategy_id = :s AND window_start = :ws "
            f"AND window_end = :we AND {current_sql('')} "
            "AND coalesce((config ->> 'clean')::boolean, false) = :c ORDER BY created_at DESC"),
            {"s": strategy_id, "ws": window_start, "we": window_end, "c": not clean}).mappings().all()
    for row in rows:
        other = {k: v for k, v in dict(row["config"]).items() if k != "clean"}
        if other == rest and (row["start_state"] or None) == (start_state or None):
            return row["run_id"]
    return None


def instrument_exists(engine: sa.Engine, instrument_id: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT 1 FROM instruments WHERE instrument_id = :i"),
                            {"i": instrument_id}).first() is not None


def instrument_kind(engine: sa.Engine, instrument_id: str) -> tuple[str, str] | None:
    """(kind, calendar) of an instrument: kind is spot | perp | index | macro; None if unknown."""
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT kind, calendar FROM instruments WHERE instrument_id = :i"),
                           {"i": instrument_id}).first()
    return (row[0], row[1]) if row else None


def strategies_with_pipeline_runs(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            f"SELECT DISTINCT strategy_id FROM backtest_runs WHERE {current_sql('')} "
            "AND summary ->> 'pipeline' = 'true' ORDER BY strategy_id")).scalars().all())
