"""Reads of stored results for the service layer (``macro_pipeline.backtest``): the current
monthly pipeline runs of a strategy (stitched equity, one month's run, the month a stretch
continues from), their metrics, what each month read (``run_reads``), and the rows recorded since
a sensor's cursor for the entities stored runs read.

"Current" is ``runs.current_sql``; a pipeline month is a run whose summary says ``pipeline``.
Writes of runs are in ``runs.py``.
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import sqlalchemy as sa

from macro_pipeline.warehouse.runs import current_sql
from macro_pipeline.warehouse.tables import FACT_TABLES, FactTable

_CURRENT_PIPELINE = f"{current_sql('b')} AND b.summary ->> 'pipeline' = 'true'"

# --------------------------------------------------------------------------- pipeline months


def stitched_rows(engine: sa.Engine, strategy_id: str, limit: date) -> list[tuple[date, float, str]]:
    """(session date, equity, run id) of every current pipeline month of ``strategy_id`` whose
    window starts by ``limit``, in session order. One query, so the curve and the ids always
    describe the same runs."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT e.session_date, e.equity, r.run_id FROM backtest_runs r JOIN daily_equity e USING (run_id) "
            f"WHERE r.strategy_id = :s AND {current_sql('r')} AND r.window_start <= :lim "
            "AND r.summary ->> 'pipeline' = 'true' ORDER BY e.session_date"),
            {"s": strategy_id, "lim": limit}).all()


def month_runs(engine: sa.Engine, strategy_id: str, lo: date, hi: date) -> list[tuple[str, date, str]]:
    """(month "YYYY-MM-01", window end, run id) of the newest current pipeline run of each month of
    ``strategy_id`` whose window starts in [lo, hi]."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT DISTINCT ON (date_trunc('month', window_start)) to_char(window_start, 'YYYY-MM-01'), window_end, run_id "
            f"FROM backtest_runs WHERE strategy_id = :s AND {current_sql('')} "
            "AND summary ->> 'pipeline' = 'true' AND window_start >= :lo AND window_start <= :hi "
            "ORDER BY date_trunc('month', window_start), created_at DESC"),
            {"s": strategy_id, "lo": lo, "hi": hi}).all()


def run_metrics(engine: sa.Engine, run_ids: list[str]) -> dict[str, dict[str, float]]:
    """run id -> {metric name: value} of the scalar metrics stored with each run (one query)."""
    metrics: dict[str, dict] = {rid: {} for rid in run_ids}
    with engine.connect() as conn:
        for rid, name, value in conn.execute(sa.text(
                "SELECT run_id, metric_name, value FROM metrics WHERE run_id = ANY(:ids)"), {"ids": list(metrics)}):
            metrics[rid][name] = value
    return metrics


def previous_pipeline_run(engine: sa.Engine, strategy_id: str, window_start: date, window_end: date):
    """The newest current pipeline run of ``strategy_id`` in the month of ``window_start`` that
    ends on ``window_end``: a row (run_id, end_state), or None."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT run_id, end_state FROM backtest_runs WHERE strategy_id = :s "
            "AND date_trunc('month', window_start) = date_trunc('month', CAST(:ws AS date)) AND window_end = :we "
            f"AND {current_sql('')} AND summary ->> 'pipeline' = 'true' "
            "ORDER BY created_at DESC LIMIT 1"),
            {"s": strategy_id, "ws": window_start, "we": window_end}).first()


def pipeline_window_ends(engine: sa.Engine, strategy_id: str) -> list[date]:
    """The window end of every current pipeline run of ``strategy_id``."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            f"SELECT window_end FROM backtest_runs WHERE strategy_id = :s AND {current_sql('')} "
            "AND summary ->> 'pipeline' = 'true'"), {"s": strategy_id}).scalars().all()


# --------------------------------------------------------------------------- what stored months read


def footprint_rows(engine: sa.Engine, strategy_id: str) -> list[tuple[str, str, str, str]]:
    """(month, source, entity, signal name) of every read recorded by the current pipeline runs
    of ``strategy_id`` (``run_reads``)."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT to_char(b.window_start, 'YYYY-MM-01'), r.source, r.entity, r.signal_name "
            f"FROM run_reads r JOIN backtest_runs b USING (run_id) WHERE b.strategy_id = :s AND {_CURRENT_PIPELINE}"),
            {"s": strategy_id}).all()


def reads_of(engine: sa.Engine, keys: list[tuple[str, str, str]]) -> tuple[list[tuple], list[tuple]]:
    """Which current pipeline months read any (source, entity, signal name) of ``keys``: rows
    (strategy, month, valid_to, source, entity, signal name) ordered by strategy and month; and
    the current pipeline months stored without footprints (before sql/007), as (strategy, month,
    window end). One connection for both."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT b.strategy_id, to_char(b.window_start, 'YYYY-MM-01'), r.valid_to, r.source, r.entity, r.signal_name "
            "FROM run_reads r JOIN backtest_runs b USING (run_id) "
            "JOIN unnest(CAST(:src AS text[]), CAST(:ent AS text[]), CAST(:sig AS text[])) AS k(source, entity, signal_name) "
            "ON r.source = k.source AND r.entity = k.entity AND r.signal_name = k.signal_name "
            f"WHERE {_CURRENT_PIPELINE} ORDER BY 1, 2"),
            {"src": [k[0] for k in keys], "ent": [k[1] for k in keys], "sig": [k[2] for k in keys]}).all()
        unknown = conn.execute(sa.text(
            "SELECT b.strategy_id, to_char(b.window_start, 'YYYY-MM-01'), b.window_end FROM backtest_runs b "
            f"WHERE {_CURRENT_PIPELINE} AND NOT EXISTS (SELECT 1 FROM run_reads r WHERE r.run_id = b.run_id)")).all()
    return rows, unknown


def _recorded_entity(fact: FactTable) -> str:
    """The column ``run_reads.entity`` records for a read of ``fact``: the entity column, except
    for ``universe``, whose reads record the universe's name (its first key), not an instrument."""
    return fact.keys[0] if fact.source == "universe" else fact.entity


def recorded_rows(engine: sa.Engine, after: datetime, upto: datetime) -> list[tuple[str, pd.DataFrame]]:
    """Per fact table (``tables.FACT_TABLES``): the rows recorded in (after, upto] of entities some stored run
    read, grouped by (entity, signal name, valid time), as a frame with columns entity, sig,
    valid, known (the earliest known_at, UTC) and n (rows). Uses the BRIN indexes on
    ``recorded_at``; rows of entities no stored run read are not fetched."""
    params = {"after": after, "upto": upto}
    out = []
    with engine.connect() as conn:
        for fact in FACT_TABLES:
            source, table, entity, valid = fact.source, fact.table, _recorded_entity(fact), fact.valid
            sig = "signal_name" if "signal_name" in fact.keys else "''"
            valid_sql = f"({valid} AT TIME ZONE 'UTC')" if fact.timestamp_valid else valid
            rows = conn.execute(sa.text(
                f"SELECT {entity}, {sig}, {valid_sql}, min(known_at AT TIME ZONE 'UTC'), count(*) FROM {table} "
                f"WHERE recorded_at > :after AND recorded_at <= :upto "
                f"AND {entity} IN (SELECT entity FROM run_reads WHERE source = :src) "
                f"GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"), {**params, "src": source}).all()
            out.append((source, pd.DataFrame(rows, columns=["entity", "sig", "valid", "known", "n"])))
    return out
