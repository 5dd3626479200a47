"""Fault matrix, backtest store: kill -9 of a one-off ``macro-pipeline backtest`` inside its store
transaction (held there: the test holds the strategy's run lock the store waits for) and while it
computes; then the recovery command and the invariants.

After each: ``runs list`` succeeds and the invariants hold (``common.check_invariants``: the fact
and run tables (runs, equity, fills, round trips, metrics, reads) exactly what they were, ...),
and a rerun stores one complete current run for the window, the invariants holding again.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from macro_pipeline.warehouse import connection as db
from macro_pipeline.warehouse.runs import RUN_LOCK
from macro_pipeline_tests.conftest import demo_with_strategies, table_state
from macro_pipeline_tests.faults.common import (
    FACT_TABLES,
    RUN_TABLES,
    backends,
    check_invariants,
    cli,
    env_for,
    kill9,
    other_backends,
    start_cli,
    wait_for,
    waiting_for_run_lock,
)

pytestmark = pytest.mark.slow
STRATEGY, START, END = "ema-us-eq20", "2010-01-01", "2016-12-31"


@pytest.fixture(scope="module")
def demo(databases):
    return demo_with_strategies(databases)


@pytest.mark.parametrize("phase", ["computing", "store-transaction"])
def test_backtest_killed_leaves_no_partial_run_and_a_rerun_stores_one(demo, tmp_path, phase):
    env = env_for(demo.url.render_as_string(hide_password=False), tmp_path / "home")
    before = {t: v for t, v in table_state(demo).items() if t in RUN_TABLES + FACT_TABLES}
    holder = None
    if phase == "store-transaction":
        holder = demo.connect()
        holder.begin()
        holder.execute(sa.text("SELECT pg_advisory_xact_lock(:k, hashtext(:s))"), {"k": RUN_LOCK, "s": STRATEGY})
    proc = start_cli("backtest", "--strategy", STRATEGY, "--start", START, "--end", END, env=env)
    try:
        if phase == "store-transaction":
            wait_for(lambda: waiting_for_run_lock(demo) or proc.poll() is not None, 300, 0.05, message=phase)
        else:
            wait_for(lambda: other_backends(demo) > 0 or proc.poll() is not None, 120, 0.05, message=phase)
        assert proc.poll() is None, proc.communicate()
        kill9(proc.pid)
        proc.wait()
    finally:
        if holder is not None:
            holder.rollback()
            holder.invalidate()  # really closed, not back in the pool (a session of its own would linger)
            holder.close()
    db.dispose_engines(demo.url.database)
    try:  # no transaction left open and no statement running (an idle pooled session is no writer)
        wait_for(lambda: all(b[1] == "idle" for b in backends(demo)), 60, message="the killed backtest's sessions to end")
    except AssertionError:
        raise AssertionError(f"{phase}: {backends(demo)}") from None

    assert cli("runs", "list", "--strategy", STRATEGY, env=env).returncode == 0
    check_invariants(demo, unchanged=before)
    done = cli("backtest", "--strategy", STRATEGY, "--start", START, "--end", END, "--json", env=env)
    assert done.returncode == 0, done.stderr
    check_invariants(demo)
    with demo.connect() as conn:
        current = conn.exec_driver_sql(
            "SELECT count(*) FROM backtest_runs WHERE strategy_id = %s AND window_start = %s AND window_end = %s "
            "AND superseded_by IS NULL AND NOT reproduction", (STRATEGY, START, END)).scalar_one()
        orphans = conn.exec_driver_sql(
            "SELECT count(*) FROM daily_equity e WHERE NOT EXISTS (SELECT 1 FROM backtest_runs r WHERE r.run_id = e.run_id)"
        ).scalar_one()
    assert current == 1 and orphans == 0
