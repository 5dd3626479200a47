"""Fault matrix, the embedded server killed OUTSIDE an ingest: kill -9 of the embedded postmaster
while it is idle (between two commands) and while a one-off ``macro-pipeline backtest`` is inside
its store transaction (held there: the test holds the strategy's run lock the store waits for).

After each: the next command succeeds (it finds the dead server and starts it again, through
crash recovery), the invariants hold (``common.check_invariants``: fact and run tables exactly as
before the kill, no partial run, one current run per window, chained months, no staging table),
and a rerun of the backtest stores one complete current run, the invariants holding again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from macro_pipeline.warehouse.runs import RUN_LOCK
from macro_pipeline.warehouse.strategies import register_strategy
from macro_pipeline_tests.backtest import oracle_world as world
from macro_pipeline_tests.conftest import table_state
from macro_pipeline_tests.faults.common import (
    FACT_TABLES,
    RUN_TABLES,
    check_invariants,
    cli,
    env_for,
    kill9,
    start_cli,
    wait_for,
    waiting_for_run_lock,
)

pytestmark = pytest.mark.slow
STRATEGY, START, END = "o-ema", "2019-03-01", "2019-12-31"


@dataclass
class Embedded:
    env: dict[str, str]
    engine: sa.Engine  # no pool: no connection of the test outlives its use (the server dies under it)
    pgdata: Path

    def postmaster(self) -> int:
        return int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])

    def state(self) -> dict[str, tuple[int, str]]:
        return {t: v for t, v in table_state(self.engine).items() if t in FACT_TABLES + RUN_TABLES}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Iterator[Embedded]:
    """The embedded server (started by the CLI, as a user's first command does) holding the oracle's
    small world and one strategy."""
    home = tmp_path_factory.mktemp("embedded_kill_home")
    env = env_for(None, home)
    done = cli("db", "migrate", env=env)
    assert done.returncode == 0, done.stderr
    url = cli("db", "url", env=env).stdout.strip()
    server = Embedded(env, sa.create_engine(url, poolclass=NullPool), home / "pgdata")
    try:
        world.load_world(server.engine, home / "world")
        register_strategy(server.engine, next(c for c in world.STRATEGIES if c.strategy_id == STRATEGY))
        yield server
    finally:
        server.engine.dispose()
        cli("db", "stop", env=env)


def _kill_postmaster(server: Embedded) -> None:
    pid = server.postmaster()
    kill9(pid)
    # not the test's child (the CLI that started it has exited): init reaps it
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 30,
             message="the killed postmaster to be gone")


def _backtest(server: Embedded) -> None:
    done = cli("backtest", "--strategy", STRATEGY, "--start", START, "--end", END, "--json", env=server.env)
    assert done.returncode == 0, done.stderr
    check_invariants(server.engine)
    with server.engine.connect() as conn:
        current = conn.exec_driver_sql(
            "SELECT count(*) FROM backtest_runs WHERE strategy_id = %s AND window_start = %s AND window_end = %s "
            "AND superseded_by IS NULL AND NOT reproduction", (STRATEGY, START, END)).scalar_one()
    assert current == 1


def test_embedded_server_killed_while_idle_the_next_command_succeeds(embedded):
    _backtest(embedded)  # a stored run to keep
    before = embedded.state()
    _kill_postmaster(embedded)
    done = cli("runs", "list", "--strategy", STRATEGY, env=embedded.env)
    assert done.returncode == 0, f"the command after the crash failed: {done.stderr}"
    check_invariants(embedded.engine, unchanged=before)
    _backtest(embedded)


def test_embedded_server_killed_during_a_backtest_store_the_next_command_succeeds(embedded):
    before = embedded.state()
    holder = embedded.engine.connect()
    holder.begin()
    holder.execute(sa.text("SELECT pg_advisory_xact_lock(:k, hashtext(:s))"), {"k": RUN_LOCK, "s": STRATEGY})
    proc = start_cli("backtest", "--strategy", STRATEGY, "--start", START, "--end", END, env=embedded.env)
    try:
        wait_for(lambda: waiting_for_run_lock(embedded.engine) or proc.poll() is not None, 300, 0.05,
                 message="the backtest's store transaction to wait for the run lock")
        assert proc.poll() is None, proc.communicate()
        _kill_postmaster(embedded)
        _, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(sa.exc.DBAPIError):  # its server is gone: the connection is dead
            holder.rollback()
        holder.invalidate()
        holder.close()
    assert proc.returncode == 1 and "Traceback" not in err, err  # one clear line, no partial traceback
    done = cli("runs", "list", "--strategy", STRATEGY, env=embedded.env)
    assert done.returncode == 0, f"the command after the crash failed: {done.stderr}"
    check_invariants(embedded.engine, unchanged=before)
    _backtest(embedded)
