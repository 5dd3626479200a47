"""The package as a worker image gets it: a wheel built from the checkout, installed into a fresh
virtual environment outside the checkout, driving a fresh PostgreSQL database with nothing but
its console script (DDL, demo data, strategies and the Dagster definitions all come from the
wheel)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from macro_pipeline.settings import DAGSTER_STORAGE_ENV, DATABASE_URL_ENV, HOME_ENV
from macro_pipeline_tests.conftest import REPO

pytestmark = pytest.mark.slow


def _run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path, timeout: int = 600) -> str:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd[:4])} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv (outside the checkout) with the wheel installed, not editable."""
    work = tmp_path_factory.mktemp("wheel")
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(work / "dist")], env=clean,
         cwd=work)
    wheel = next((work / "dist").glob("macro_pipeline-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    ddl = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("macro_pipeline/sql/") and n.endswith(".sql"))
    assert ddl == sorted(p.name for p in (REPO / "sql").glob("*.sql"))
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], env=clean, cwd=work)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], env=clean, cwd=work, timeout=900)
    return venv


def test_the_wheel_alone_migrates_loads_backtests_and_runs_the_demo(installed, databases, tmp_path):
    engine = databases.new(migrated=False)
    url = engine.url.render_as_string(hide_password=False)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", DAGSTER_STORAGE_ENV, "DAGSTER_HOME")}
    env.update({DATABASE_URL_ENV: url, HOME_ENV: str(tmp_path / "home"),
                # Dagster's storage: a fresh database of the test server, dropped with the others
                DAGSTER_STORAGE_ENV: databases.new(migrated=False).url.render_as_string(hide_password=False)})
    cli = [str(installed / "bin" / "macro-pipeline")]

    where = _run([str(installed / "bin" / "python"), "-c", "import macro_pipeline; print(macro_pipeline.__file__)"],
                 env=env, cwd=tmp_path)
    assert where.strip().startswith(str(installed)) and str(REPO) not in where

    out = _run(cli + ["db", "migrate"], env=env, cwd=tmp_path)
    assert out.startswith("applied: 001_reference.sql") and "nothing to apply" not in out
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT to_regclass('instruments')").scalar() == "instruments"
    assert "nothing to apply" in _run(cli + ["db", "migrate"], env=env, cwd=tmp_path)

    _run(cli + ["demo-data", "load", "-q"], env=env, cwd=tmp_path)
    one_off = json.loads(_run(cli + ["backtest", "--strategy", "bh-us-eq20", "--start", "2020-01-01",
                                     "--end", "2020-03-31", "--json"], env=env, cwd=tmp_path))
    assert one_off["run_id"] and one_off["metrics"]["total_return"] < 0  # the March 2020 crash

    out = _run(cli + ["demo", "--strategy", "carry-simple", "-q"], env=env, cwd=tmp_path)
    assert "carry-simple" in out and "strategy-months materialized" in out
    with engine.connect() as conn:
        months = conn.execute(sa.text(
            "SELECT count(*) FROM backtest_runs WHERE strategy_id = 'carry-simple' AND superseded_by IS NULL "
            "AND NOT reproduction AND summary ->> 'pipeline' = 'true'")).scalar()
    assert months > 12
