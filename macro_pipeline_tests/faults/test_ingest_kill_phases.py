"""Fault matrix, ingest: kill -9 of ``macro-pipeline ingest`` at each of its write phases, then
the recovery command and the invariants.

Phases, each recognised from the database (never a sleep): the file being read and validated
(no batch yet), the COPY of a first load straight into the fact table (the statement is
running), the staging COPY (a staging table exists), the INSERT into the fact table (the
statement is running), and while the transaction waits for the ingest lock held by another.
The second file is a first load (new instruments) for the direct COPY, and grows the stored
instruments (later days: staged) for the staging phases. After each: ``stored`` succeeds and the
invariants hold (``common.check_invariants``: every table's row count and checksum are what they
were, all or nothing; no staging table is left; ...), and a rerun adds exactly the file's rows,
the invariants holding again.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from macro_pipeline.warehouse import connection as db
from macro_pipeline.warehouse.pit import INGEST_LOCK
from macro_pipeline_tests.conftest import table_state
from macro_pipeline_tests.faults.common import (
    big_prices_csv,
    check_invariants,
    cli,
    env_for,
    kill9,
    other_backends,
    staging_tables,
    start_cli,
    wait_for,
)

pytestmark = pytest.mark.slow


def _active(engine, like: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
            "AND query LIKE %s AND pid <> pg_backend_pid()", (like,)).scalar_one())


PHASES = {
    "reading": lambda engine, proc: proc.poll() is None,  # at once: still reading and validating the file
    "direct-copy": lambda engine, proc: _active(engine, "COPY prices (%"),
    "staging-copy": lambda engine, proc: len(staging_tables(engine)) >= 1,
    "insert": lambda engine, proc: _active(engine, "%INSERT INTO prices%"),
    "waiting-for-lock": None,  # another session holds the ingest lock
}
STAGED = {"staging-copy", "insert"}  # phases of a load over stored instruments


@pytest.mark.parametrize("phase", list(PHASES))
def test_ingest_killed_at_each_write_phase_leaves_nothing_and_a_rerun_adds_exactly_its_rows(engine, tmp_path, phase):
    url = engine.url.render_as_string(hide_password=False)
    env = env_for(url, tmp_path / "home")
    big = tmp_path / "big.csv"
    rows = big_prices_csv(big, instruments=300, days=2000)  # 600k rows: two staging chunks
    assert cli("ingest", "prices", str(big), "--register-instruments", "-q", env=env).returncode == 0
    before = table_state(engine)
    more = tmp_path / "more.csv"
    if phase in STAGED:  # the same instruments, the 2000 sessions after the first file's
        big_prices_csv(more, instruments=300, days=2000, start="2007-09-04")
    else:  # new instruments: a first load
        big_prices_csv(more, instruments=300, days=2000, prefix="M")
    holder = None
    if phase == "waiting-for-lock":
        holder = engine.connect()
        holder.begin()
        holder.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": INGEST_LOCK})
    proc = start_cli("ingest", "prices", str(more), "--register-instruments", "-q", env=env)
    try:
        if phase == "waiting-for-lock":
            wait_for(lambda: _active(engine, "%pg_advisory_xact_lock%"), 300, message=phase)
        else:
            wait_for(lambda: PHASES[phase](engine, proc) or proc.poll() is not None, 300, 0.02, message=phase)
        assert proc.poll() is None, f"the ingest ended before the kill at {phase}"
        kill9(proc.pid)
        proc.wait()
    finally:
        if holder is not None:
            holder.rollback()
            holder.invalidate()  # really closed, not back in the pool (a session of its own would linger)
            holder.close()
    db.dispose_engines(engine.url.database)
    wait_for(lambda: other_backends(engine) == 0, 60, message="the killed ingest's sessions to end")

    done = cli("stored", env=env)
    assert done.returncode == 0, done.stderr
    assert staging_tables(engine) == []
    assert table_state(engine) == before  # all or nothing
    check_invariants(engine, unchanged=before)
    done = cli("ingest", "prices", str(more), "--register-instruments", "-q", env=env)
    assert done.returncode == 0 and f"{rows} rows read, {rows} added" in done.stdout, done.stdout + done.stderr
    assert table_state(engine)["prices"][0] == 2 * rows
    new_instruments = 0 if phase in STAGED else 300  # the calendar's sessions came with the first file
    check_invariants(engine, unchanged=before, complete={
        "prices": 2 * rows, "instruments": before["instruments"][0] + new_instruments,
        "ingest_batches": before["ingest_batches"][0] + 1})
