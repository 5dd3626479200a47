"""The no-configuration path: an embedded PostgreSQL started by the CLI itself (no URL set).

Runs the real console script in subprocesses, as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from macro_pipeline.settings import DAGSTER_STORAGE_ENV, DATABASE_URL_ENV, HOME_ENV

pytestmark = pytest.mark.embedded
CLI = str(Path(sys.executable).parent / "macro-pipeline")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("mp_home")
    yield home
    run(home, "db", "stop")


def run(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (DATABASE_URL_ENV, DAGSTER_STORAGE_ENV, "DAGSTER_HOME")}
    env[HOME_ENV] = str(home)
    proc = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_two_commands_at_once_share_one_server(home):
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run(home, "db", "url"), range(2)))
    urls = {r.stdout.strip() for r in results}
    assert len(urls) == 1 and f"host={home}/pgdata" in urls.pop().replace("%2F", "/")
    pid = int((home / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    import psutil

    # the postmaster is the one process started as `postgres -D <pgdata>`; its children rename themselves
    postmasters = [p.pid for p in psutil.process_iter(["cmdline"])
                   if (p.info["cmdline"] or [""])[0].endswith("postgres") and str(home / "pgdata") in p.info["cmdline"]]
    assert postmasters == [pid]


def test_migrate_status_ingest_and_stored_on_embedded(home, tmp_path):
    assert "applied:" in run(home, "db", "migrate").stdout
    assert "nothing to apply" in run(home, "db", "migrate").stdout
    status = run(home, "db", "status").stdout
    assert "embedded PostgreSQL" in status and "running" in status and "applied  004_results.sql" in status
    prices = tmp_path / "p.csv"
    prices.write_text("instrument_id,obs_date,close\nXYZ,2020-01-02,10\nXYZ,2020-01-03,11\n")
    out = run(home, "ingest", "prices", str(prices), "--register-instruments", "-q").stdout
    assert "2 added" in out
    assert "0 added" in run(home, "ingest", "prices", str(prices), "-q").stdout
    assert "prices" in run(home, "stored").stdout


def test_bad_file_is_one_clear_error_with_nonzero_exit(home, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("instrument_id,obs_date,close\nXYZ,2020-01-06,-3\n")
    proc = run(home, "ingest", "prices", str(bad), check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {bad}") and "non-positive" in proc.stderr and "lines 2" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_stop_then_next_command_starts_it_again(home):
    assert run(home, "db", "stop").stdout.startswith("stopped embedded PostgreSQL")
    assert "not running" in run(home, "db", "stop").stdout
    assert "(stopped)" in run(home, "db", "status").stdout
    assert not (home / "pgdata" / "postmaster.pid").exists()
    out = run(home, "stored").stdout  # starts the server again on first use, data kept
    assert "prices" in out and " 2 " in out.splitlines()[1]


def test_demo_runs_through_dagster_with_both_storages_on_the_embedded_server(home):
    out = run(home, "demo", "-q", "--strategy", "carry-simple").stdout
    board = out.split("leaderboard", 1)[1]
    assert "carry-simple" in board and "bh-us-eq20" not in board.split("strategy-months")[0]
    assert f"Dagster instance: {home}/dagster" in out and "/macro_pipeline_dagster?host=" in out
    reports = [line.strip() for line in out.splitlines() if line.strip().endswith(".html")]
    assert {Path(p).name for p in reports} == {"leaderboard.html", "strategy-carry-simple.html"}
    assert all(Path(p).exists() for p in reports)
    # Dagster's own storage, in the embedded server: the demo's runs, all successful
    import sqlalchemy as sa

    url = run(home, "db", "url").stdout.strip().replace("/macro_pipeline?", "/macro_pipeline_dagster?")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT pipeline_name, status FROM runs")).all()
    engine.dispose()
    assert sorted(runs) == [("backtest_job", "SUCCESS"), ("ingest_job", "SUCCESS"), ("leaderboard_job", "SUCCESS")]
    # idempotent: the history is complete and nothing new arrived, so nothing is rerun (it used to
    # redo the newest month every time)
    again = run(home, "demo", "-q", "--strategy", "carry-simple").stdout
    assert "0 strategy-months materialized" in again
