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

from macro_pipeline_tests.conftest import REPO


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


def other_backends(engine: sa.Engine) -> int:
    """Sessions on this database other than ours (a killed client's backend lingers until it
    notices the closed socket and has rolled back)."""
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).scalar_one()
