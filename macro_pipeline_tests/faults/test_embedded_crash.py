"""Issue 13 item 3: the embedded server after kill -9 of its postmaster mid-ingest.

Measured (2 of 2): the next command failed. Two causes, both reproduced here before the fix:
the killed postmaster, never reaped by its parent, stayed a zombie, so ``postmaster.pid`` named a
pid that still existed: the wheel took the server for running ("Connection refused") and
PostgreSQL refused to start over it; and crash recovery after the staging tables (unlogged) were
being created failed once with ``could not create file "base/...": File exists`` (PostgreSQL bug
#17731), the start after that succeeding. The killed ingest also printed a partial traceback.

Now: the next command succeeds (``stored``), the killed ingest's one-line error has no trace, the
invariants hold after each kill (``common.check_invariants``: every table as before the kill, no
staging table, ...), and a rerun of the ingest adds exactly its rows.
"""

from __future__ import annotations

import json

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from macro_pipeline_tests.conftest import table_state
from macro_pipeline_tests.faults.common import (
    big_prices_csv,
    check_invariants,
    cli,
    env_for,
    kill9,
    seed_prices_csv,
    start_cli,
    wait_for,
)

pytestmark = pytest.mark.slow
CYCLES = 3  # kill points: while the first staging tables are created (where bug #17731 struck)


def _staging_tables(pgdata) -> int:
    try:
        conn = psycopg2.connect(dbname="macro_pipeline", user="postgres", host=str(pgdata), connect_timeout=2)
    except psycopg2.OperationalError:
        return 0
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'ingest_staging'")
            return cur.fetchone()[0]
    finally:
        conn.close()


def _postmaster(pgdata) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def _stored_prices(env) -> int:
    done = cli("stored", "--json", env=env)
    assert done.returncode == 0, f"`stored` after the crash failed: {done.stderr}"
    return int(json.loads(done.stdout)["facts"]["prices"]["rows"])


def test_embedded_server_killed_mid_ingest_next_command_succeeds_and_rerun_adds_exactly_its_rows(tmp_path):
    home = tmp_path / "home"
    env = env_for(None, home)
    pgdata = home / "pgdata"
    big = tmp_path / "big.csv"
    rows = big_prices_csv(big)
    seed = tmp_path / "seed.csv"
    seeded = seed_prices_csv(seed)  # stored first: the big file is then staged, not a first load
    try:
        url = cli("db", "url", env=env)
        assert url.returncode == 0, url.stderr
        engine = sa.create_engine(url.stdout.strip(), poolclass=NullPool)  # no connection outlives its use
        assert _stored_prices(env) == 0  # migrates
        empty = table_state(engine)
        assert cli("ingest", "prices", str(seed), "--register-instruments", "-q", env=env).returncode == 0
        with engine.connect() as conn:  # the sessions of the file's calendar, registered with the seed
            xnys = conn.exec_driver_sql("SELECT count(*) FROM calendar_sessions WHERE calendar = 'XNYS'").scalar_one()
        check_invariants(engine, unchanged=empty, complete={
            "prices": seeded, "instruments": empty["instruments"][0] + 400,
            "ingest_batches": empty["ingest_batches"][0] + 1, "calendar_sessions": empty["calendar_sessions"][0] + xnys})
        before = table_state(engine)
        for cycle in range(CYCLES):
            proc = start_cli("ingest", "prices", str(big), "--register-instruments", "-q", env=env)
            wait_for(lambda p=proc: _staging_tables(pgdata) >= 1 or p.poll() is not None, 300, 0.02,
                     message="the first staging table")
            assert proc.poll() is None, "the ingest finished before the kill"
            kill9(_postmaster(pgdata))
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 1 and "Traceback" not in err, err
            assert [line for line in err.splitlines() if line.startswith("error:")], err
            assert _stored_prices(env) == seeded, f"cycle {cycle}: the killed ingest stored rows"
            check_invariants(engine, unchanged=before)
        done = cli("ingest", "prices", str(big), "--register-instruments", "-q", env=env)
        assert done.returncode == 0, done.stderr
        assert f"{rows} rows read, {rows} added" in done.stdout
        assert _stored_prices(env) == seeded + rows
        # its batch and its rows; its instruments and their calendar's sessions came with the seed
        check_invariants(engine, unchanged=before, complete={
            "prices": seeded + rows, "ingest_batches": before["ingest_batches"][0] + 1})
        again = cli("ingest", "prices", str(big), "-q", env=env)
        assert again.returncode == 0 and f"0 added, 0 revision(s), {rows} unchanged" in again.stdout
        assert _staging_tables(pgdata) == 0
    finally:
        cli("db", "stop", env=env)
