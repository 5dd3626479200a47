"""Issue 13 item 4: staging tables of a killed ingest.

Measured: a killed ingest left up to 10 staging tables (444 MB); only the next ingest of more than
500k rows dropped them. Now the next ingest of any size drops them, and so does any command at
start when no ingest is running.
"""

from __future__ import annotations

import pytest

from macro_pipeline.warehouse import connection as db
from macro_pipeline_tests.conftest import table_state
from macro_pipeline_tests.faults.common import (
    big_prices_csv,
    check_invariants,
    cli,
    env_for,
    kill9,
    other_backends,
    seed_prices_csv,
    staging_tables,
    start_cli,
    wait_for,
)

pytestmark = pytest.mark.slow


def _killed_mid_staging(engine, tmp_path) -> tuple[dict, int, dict]:
    """kill -9 of an ingest of 1.2M rows once its second staging table exists; returns the env,
    the rows stored before (a seed: a load of instruments with rows stored is staged) and the
    tables' state before the killed ingest."""
    url = engine.url.render_as_string(hide_password=False)
    env = env_for(url, tmp_path / "home")
    seed = tmp_path / "seed.csv"
    seeded = seed_prices_csv(seed)
    empty = table_state(engine)
    assert cli("ingest", "prices", str(seed), "--register-instruments", "-q", env=env).returncode == 0
    # the seed's rows, instruments and batch, and the sessions of their calendar, XNYS, registered with them
    with engine.connect() as conn:
        xnys = conn.exec_driver_sql("SELECT count(*) FROM calendar_sessions WHERE calendar = 'XNYS'").scalar_one()
    assert xnys > 0
    check_invariants(engine, unchanged=empty, complete={
        "prices": seeded, "instruments": empty["instruments"][0] + 400, "ingest_batches": empty["ingest_batches"][0] + 1,
        "calendar_sessions": empty["calendar_sessions"][0] + xnys})
    before = table_state(engine)
    big = tmp_path / "big.csv"
    big_prices_csv(big)
    proc = start_cli("ingest", "prices", str(big), "--register-instruments", "-q", env=env)
    wait_for(lambda: len(staging_tables(engine)) >= 2 or proc.poll() is not None, 300, message="staging tables")
    kill9(proc.pid)
    proc.wait()
    db.dispose_engines(engine.url.database)
    wait_for(lambda: other_backends(engine) == 0, 60, message="the killed ingest's sessions to end")
    assert staging_tables(engine), "the kill left no staging table: nothing to test"
    return env, seeded, before


def test_staging_tables_of_a_killed_ingest_are_dropped_by_the_next_small_ingest(engine, tmp_path):
    env, seeded, before = _killed_mid_staging(engine, tmp_path)
    assert table_state(engine)["prices"][0] == seeded  # all or nothing: the killed ingest stored no row
    small = tmp_path / "small.csv"
    small.write_text("instrument_id,obs_date,close\n" + "".join(f"S1,2019-03-{d:02d},10\n" for d in range(4, 9)))
    done = cli("ingest", "prices", str(small), "--register-instruments", "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert staging_tables(engine) == []
    assert table_state(engine)["prices"][0] == seeded + 5
    # nothing of the killed ingest, all of the small one (its instrument, its batch, its 5 prices; the
    # sessions of its calendar came with the seed); no staging table
    check_invariants(engine, unchanged=before, complete={
        "prices": seeded + 5, "instruments": before["instruments"][0] + 1, "ingest_batches": before["ingest_batches"][0] + 1})


def test_staging_tables_of_a_killed_ingest_are_dropped_at_startup(engine, tmp_path):
    env, _, before = _killed_mid_staging(engine, tmp_path)
    done = cli("stored", env=env)
    assert done.returncode == 0, done.stderr
    assert staging_tables(engine) == []
    check_invariants(engine, unchanged=before)
