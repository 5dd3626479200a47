"""Helpers of the fault matrix: real CLI processes, kill -9, and the warehouse's invariants."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline_tests.conftest import REPO, table_state


def big_prices_csv(path: Path, instruments: int = 400, days: int = 3000, prefix: str = "K",
                   start: str = "2000-01-03") -> int:
    """A valid prices file of ``instruments * days`` rows (more than one 500k-row staging chunk)."""
    dates = pd.bdate_range(start, periods=days).strftime("%Y-%m-%d")
    ids = np.repeat([f"{prefix}{i:04d}" for i in range(instruments)], days)
    close = np.round(50 + np.random.default_rng(7).random(len(ids)) * 50, 4)
    pd.DataFrame({"instrument_id": ids, "obs_date": np.tile(dates, instruments), "close": close}).to_csv(path, index=False)
    return len(ids)


def seed_prices_csv(path: Path, instruments: int = 400, prefix: str = "K") -> int:
    """One row per instrument of ``big_prices_csv`` on a day before its first. Once stored, the big
    file is no first load (which is COPYed straight into the fact table): it is staged."""
    ids = [f"{prefix}{i:04d}" for i in range(instruments)]
    pd.DataFrame({"instrument_id": ids, "obs_date": "1999-12-31", "close": 50.0}).to_csv(path, index=False)
    return len(ids)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "macro_pipeline.cli", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def start_cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "macro_pipeline.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def env_for(url: str | None, home: Path, **extra: str) -> dict[str, str]:
    from macro_pipeline.settings import DATABASE_URL_ENV, HOME_ENV

    env = {**os.environ, HOME_ENV: str(home), "PYTHONPATH": str(REPO), **extra}
    env.pop(DATABASE_URL_ENV, None)
    env.pop("DAGSTER_HOME", None)
    if url:
        env[DATABASE_URL_ENV] = url
    return env


def wait_for(what: Callable[[], object], timeout: float = 120, every: float = 0.05, message: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := what():
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {message or what}")


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def staging_tables(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'ingest_staging' ORDER BY 1").scalars().all()


def backends(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(
            "SELECT pid, state, wait_event_type, left(query, 80) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").all()]


def waiting_for_run_lock(engine: sa.Engine) -> bool:
    """A session of this database waits for a strategy's run lock (``warehouse.runs.RUN_LOCK``,
    taken first thing in a run's store transaction): the store is held there while another
    session (the test) holds the lock."""
    with engine.connect() as conn:
        return bool(conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND query LIKE '%%pg_advisory_xact_lock%%'").scalar_one())


def other_backends(engine: sa.Engine) -> int:
    """Sessions on this database other than ours (a killed client's backend lingers until it
    notices the closed socket and has rolled back)."""
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).scalar_one()


# --------------------------------------------------------------------------- the invariants

FACT_TABLES = ("instruments", "calendar_sessions", "ingest_batches", "universe_membership", "prices",
               "macro_observations", "funding_rates", "corporate_actions", "external_signals")
RUN_TABLES = ("backtest_runs", "daily_equity", "fills", "round_trips", "metrics", "run_reads")
STUCK = ("STARTED", "STARTING")

# current pipeline months whose start state is not the end state of the month before (or that
# have no month before yet continue from something, or follow a gap)
_BROKEN_CHAINS = """
    SELECT strategy_id, window_start, prev_start FROM (
        SELECT strategy_id, window_start, start_state,
               lag(window_start) OVER w AS prev_start, lag(end_state) OVER w AS prev_end
        FROM backtest_runs
        WHERE superseded_by IS NULL AND status = 'success' AND NOT reproduction AND summary ->> 'pipeline' = 'true'
        WINDOW w AS (PARTITION BY strategy_id ORDER BY window_start)) m
    WHERE (prev_start IS NULL AND start_state IS NOT NULL)
       OR (prev_start IS NOT NULL AND (start_state IS DISTINCT FROM prev_end
           OR date_trunc('month', window_start) <> date_trunc('month', prev_start) + interval '1 month'))
    ORDER BY 1, 2"""

# more than one current run for one strategy-month (pipeline) or one window and settings (ad hoc)
_NOT_ONE_CURRENT = """
    SELECT strategy_id, to_char(window_start, 'YYYY-MM'), count(*) FROM backtest_runs
    WHERE superseded_by IS NULL AND status = 'success' AND NOT reproduction AND summary ->> 'pipeline' = 'true'
    GROUP BY 1, 2 HAVING count(*) > 1
    UNION ALL
    SELECT strategy_id, window_start || '..' || window_end, count(*) FROM backtest_runs
    WHERE superseded_by IS NULL AND status = 'success' AND NOT reproduction
    GROUP BY strategy_id, window_start, window_end, config_hash HAVING count(*) > 1"""

# successful runs missing their daily equity or their metrics (a partial store)
_INCOMPLETE_RUNS = """
    SELECT r.run_id FROM backtest_runs r WHERE r.status = 'success'
    AND (NOT EXISTS (SELECT 1 FROM daily_equity e WHERE e.run_id = r.run_id)
         OR NOT EXISTS (SELECT 1 FROM metrics m WHERE m.run_id = r.run_id))"""


def invariant_violations(engine: sa.Engine, *, unchanged: dict[str, tuple[int, str]] | None = None,
                         complete: dict[str, tuple[int, str] | int] | None = None,
                         dagster_runs: Callable[[], list[tuple[str, str]]] | None = None) -> list[str]:
    """Every way the warehouse (and Dagster) can be left wrong by a kill, as readable lines (empty:
    all hold). Checked after every kill of the fault matrix, once its recovery command has run:

    - tables all or nothing: every table of ``unchanged`` (a ``table_state`` taken before the killed
      command) has its row count and checksum exactly as then, or, when ``complete`` is given, every
      table of ``complete`` is as the killed command would have left it (a ``(count, checksum)``
      state, or a row count where the checksum cannot be known beforehand) and the others are
      unchanged;
    - every successful run is complete (its daily equity and metrics stored);
    - exactly one current run per strategy-month (pipeline months), and per window and settings;
    - chained months: each current month's start state is the previous month's end state, months
      contiguous, and a strategy's first stored month continues from nothing;
    - no staging table left behind;
    - no Dagster run stuck in STARTED or STARTING (``dagster_runs``: (run id, status) of every run).
    """
    out = []
    if unchanged is not None:
        now = table_state(engine)
        changed = {t for t in unchanged if now.get(t) != unchanged[t]}

        def is_complete() -> bool:
            if complete is None or not set(complete) >= changed:
                return False
            return all(now[t][0] == want if isinstance(want, int) else now[t] == want for t, want in complete.items())

        if changed and not is_complete():
            out += [f"table {t}: {unchanged[t][0]} rows before, {now.get(t, (None,))[0]} now, "
                    f"{'checksum differs' if now.get(t, (0, ''))[1] != unchanged[t][1] else 'same checksum'}"
                    + (f" (complete would be {complete[t] if isinstance(complete[t], int) else complete[t][0]})"
                       if complete and t in complete else "") for t in sorted(changed)]
    with engine.connect() as conn:
        out += [f"run {r} is successful but incomplete (no equity or no metrics)"
                for r in conn.exec_driver_sql(_INCOMPLETE_RUNS).scalars()]
        out += [f"{sid} {window}: {n} current runs" for sid, window, n in conn.exec_driver_sql(_NOT_ONE_CURRENT)]
        out += [f"{sid} {start}: month not chained to {prev if prev else 'nothing (first month continues a state)'}"
                for sid, start, prev in conn.exec_driver_sql(_BROKEN_CHAINS)]
    out += [f"staging table left: ingest_staging.{t}" for t in staging_tables(engine)]
    if dagster_runs is not None:
        out += [f"Dagster run {run_id} stuck in {status}" for run_id, status in dagster_runs() if status in STUCK]
    return out


def check_invariants(engine: sa.Engine, **kwargs) -> None:
    """``invariant_violations`` must find nothing (all of them listed otherwise)."""
    problems = invariant_violations(engine, **kwargs)
    assert not problems, "invariants broken after the kill:\n  " + "\n  ".join(problems)
