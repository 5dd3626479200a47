"""Read-only queries the reports need beyond ``warehouse.runs.load_run``: bulk reads of a
strategy's monthly pipeline runs (one query per table instead of four per month), run ids by
prefix, the candidates for a run's clean (or realistic) counterpart, instruments. Nothing here
writes; ``reports/queries.py`` composes these into what a report asks.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from macro_pipeline.warehouse.runs import current_sql


def strategy_row(engine: sa.Engine, strategy_id: str) -> dict[str, Any] | None:
    """The registered configuration (kind, params as stored, params_hash, universe) or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT strategy_id, kind, params, params_hash, universe FROM strategies WHERE strategy_id = :s"),
            {"s": strategy_id}).mappings().first()
    return dict(row) if row is not None else None


def run_ids_like(engine: sa.Engine, text: str) -> list[str]:
    """Run ids equal to ``text`` or starting with it, the exact match first, then by creation
    (at most 6: enough to show an ambiguity)."""
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT run_id FROM backtest_runs WHERE run_id = :t OR run_id LIKE :p ORDER BY run_id = :t DESC, "
            "created_at LIMIT 6"), {"t": text, "p": text + "%"}).scalars().all())


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
    """Daily equity (indexed by session date), fills and round trips of several runs at once, in
    date order."""
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


def current_runs_of_window(engine: sa.Engine, strategy_id: str, window_start, window_end,
                           clean: bool) -> list[dict[str, Any]]:
    """Run id, config and start state of the current runs of a strategy and window with the given
    ``clean`` flag, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT run_id, config, start_state FROM backtest_runs WHERE strategy_id = :s AND window_start = :ws "
            f"AND window_end = :we AND {current_sql('')} "
            "AND coalesce((config ->> 'clean')::boolean, false) = :c ORDER BY created_at DESC"),
            {"s": strategy_id, "ws": window_start, "we": window_end, "c": clean}).mappings().all()
    return [dict(r) for r in rows]


def instrument_kind(engine: sa.Engine, instrument_id: str) -> tuple[str, str] | None:
    """(kind, calendar) of an instrument: kind is spot | perp | index | macro; None if unknown."""
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT kind, calendar FROM instruments WHERE instrument_id = :i"),
                           {"i": instrument_id}).first()
    return (row[0], row[1]) if row else None


def strategies_with_pipeline_runs(engine: sa.Engine) -> list[str]:
    """Strategies with at least one current monthly pipeline run, by id."""
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            f"SELECT DISTINCT strategy_id FROM backtest_runs WHERE {current_sql('')} "
            "AND summary ->> 'pipeline' = 'true' ORDER BY strategy_id")).scalars().all())
