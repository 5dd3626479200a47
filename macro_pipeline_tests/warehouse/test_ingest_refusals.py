"""Issue 13 items 5, 6 and 7: values that were stored wrong, errors that were not one clear line,
and calendar registration (concurrent, and calendars starting after 1985).

Every refusal: exit 2, one ``error:`` message naming the file, the line(s) and the rule, and the
database unchanged (row counts and checksums of every table).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from macro_pipeline.settings import DATABASE_URL_ENV, HOME_ENV
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline_tests.conftest import REPO, cli_runner, table_state

INSTRUMENTS = "instrument_id,asset_class,kind,calendar\nAAA,equity,spot,XNYS\nP,crypto,perp,24/7\n"


@pytest.fixture
def wh(engine, tmp_path):
    (tmp_path / "inst.csv").write_text(INSTRUMENTS)
    ingest(engine, "instruments", tmp_path / "inst.csv")
    return engine


@pytest.fixture
def run_cli(wh, monkeypatch, capsys, tmp_path):
    return cli_runner(wh, monkeypatch, capsys, tmp_path)


def refused(run_cli, wh, kind: str, path, rule: str, lines: str | None) -> str:
    """Ingest ``path`` through the CLI: exit 2, the file, the rule and the lines named, nothing stored."""
    before = table_state(wh)
    code, out, err = run_cli("ingest", kind, "-q", str(path))
    assert code == 2, (code, out, err)
    assert err.startswith(f"error: {path}: ") and f"[{rule}]" in err and "Traceback" not in err, err
    if lines is not None:
        assert f"lines {lines}" in err, err
    assert table_state(wh) == before
    return err


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


# --------------------------------------------------------------------------- 5: wrong values accepted


def test_tz_aware_parquet_date_is_stored_as_its_written_date_not_the_utc_one(wh, tmp_path):
    """Measured: an Asia/Tokyo 2019-03-04 (00:00+09:00) was stored as 2019-03-03."""
    when = pd.Series(pd.to_datetime(["2019-03-04", "2019-03-05"]).tz_localize("Asia/Tokyo"))
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"instrument_id": ["AAA", "AAA"], "obs_date": when, "close": [10.0, 11.0]}), path)
    ingest(wh, "prices", path)
    csv = write(tmp_path, "p.csv", "instrument_id,obs_date,close\nAAA,2019-03-06T00:00:00+09:00,12\n"
                                   "AAA,2019-03-07T00:00:00-05:00,13\n")
    ingest(wh, "prices", csv)  # offsets in text, even mixed ones: the date as written
    with wh.connect() as conn:
        got = conn.exec_driver_sql("SELECT obs_date::text, close FROM prices ORDER BY obs_date").all()
    assert [tuple(r) for r in got] == [("2019-03-04", 10.0), ("2019-03-05", 11.0), ("2019-03-06", 12.0),
                                       ("2019-03-07", 13.0)]


def test_hexadecimal_0x10_in_integer_columns_is_refused_not_stored_as_16(run_cli, wh, tmp_path):
    refused(run_cli, wh, "prices", write(tmp_path, "p.csv", "instrument_id,obs_date,close,volume\n"
                                         "AAA,2019-03-04,10,5\nAAA,2019-03-05,10,0x10\n"),
            "unparseable-number", "3")
    refused(run_cli, wh, "funding", write(tmp_path, "f.csv", "instrument_id,ts,rate,interval_hours\n"
                                          "P,2019-03-04T00:00:00Z,0.001,0X8\n"), "unparseable-number", "2")


@pytest.mark.parametrize("kind,text,line", [
    ("prices", "instrument_id,obs_date,close\nAAA,2019-03-04,10\nAAA,1600-03-05,10\n", "3"),
    ("funding", "instrument_id,ts,rate,interval_hours\nP,1600-03-04T00:00:00Z,0.001,8\n", "2"),
    ("corporate-actions", "instrument_id,ex_date,action,value\nAAA,2300-03-04,split,2\n", "2"),
    ("universe", "universe,instrument_id,valid_from,valid_to\nU,AAA,2019-01-01,2300-03-04\n", "2"),
    ("prices", "instrument_id,obs_date,close,known_at\nAAA,2019-03-04,10,9999-01-01T00:00:00Z\n", "2"),
])
def test_dates_outside_1677_2262_are_refused_for_every_kind_like_prices(run_cli, wh, tmp_path, kind, text, line):
    """Measured: funding, corporate-action and universe files stored them; prices failed with a raw
    'Out of bounds nanosecond timestamp' naming no file or line."""
    refused(run_cli, wh, kind, write(tmp_path, "x.csv", text), "date-out-of-range", line)


def test_header_only_instruments_file_is_refused_like_the_other_kinds(run_cli, wh, tmp_path):
    refused(run_cli, wh, "instruments", write(tmp_path, "i.csv", "instrument_id,asset_class,kind\n"), "empty-file", None)


# --------------------------------------------------------------------------- 6: one clear line


def test_duplicate_header_column_is_one_line_not_a_typeerror(run_cli, wh, tmp_path):
    err = refused(run_cli, wh, "prices", write(tmp_path, "d.csv", "instrument_id,obs_date,close,close\nAAA,2019-03-04,10,11\n"),
                  "duplicate-column", "1")
    assert "TypeError" not in err
    refused(run_cli, wh, "instruments", write(tmp_path, "di.csv", "instrument_id,kind,kind,asset_class\nX,spot,spot,e\n"),
            "duplicate-column", "1")


def test_directory_given_as_the_file_is_refused_not_an_oserror(run_cli, wh, tmp_path):
    (tmp_path / "adir").mkdir()
    err = refused(run_cli, wh, "prices", tmp_path / "adir", "not-a-file", None)
    assert "is a directory" in err and "OSError" not in err


def test_latin1_file_names_file_and_line(run_cli, wh, tmp_path):
    path = write(tmp_path, "l.csv", b"instrument_id,obs_date,close\nAAA,2019-03-04,10\nAAA,2019-03-05,10\n"
                 + "AAA\u00e9,2019-03-06,10\n".encode("latin-1"))
    refused(run_cli, wh, "prices", path, "not-utf8", "4")


def test_mixed_zone_dates_name_file_and_line_when_bad(run_cli, wh, tmp_path):
    path = write(tmp_path, "z.csv", "instrument_id,obs_date,close\nAAA,2019-03-04T00:00:00+09:00,10\n"
                                    "AAA,2019-03-05T25:00:00Z,10\n")
    refused(run_cli, wh, "prices", path, "unparseable-date", "3")


def test_backtest_window_in_2030_says_the_data_ends_not_not_xnys_sessions():
    """Measured: a 2030 window said "not XNYS sessions: ['2030-12-31']": the engine's calendar
    (to 15 years ahead) had the session, the decision times' own (to 1 year ahead) did not. One
    calendar now serves both; the window is then refused for what it is, outside the data."""
    from macro_pipeline.engine.calendar import calendar_sessions
    from macro_pipeline.warehouse.view import decision_times

    day = pd.Timestamp("2030-12-31")
    assert day in calendar_sessions("XNYS")
    assert decision_times(pd.DatetimeIndex([day]), "XNYS").iloc[0] == pd.Timestamp("2030-12-31 16:00", tz="America/New_York")


def test_demo_with_unknown_strategy_refuses_before_the_ingest_job(wh, databases, tmp_path):
    """Measured: `demo --strategy nope` ran the whole ingest job first (minutes), then refused."""
    from macro_pipeline.settings import DAGSTER_STORAGE_ENV

    storage = databases.new(migrated=False).url.render_as_string(hide_password=False)
    env = {**os.environ, HOME_ENV: str(tmp_path / "home"), "PYTHONPATH": str(REPO),
           DATABASE_URL_ENV: wh.url.render_as_string(hide_password=False), DAGSTER_STORAGE_ENV: storage}
    env.pop("DAGSTER_HOME", None)
    before = table_state(wh)
    proc = subprocess.run([sys.executable, "-m", "macro_pipeline.cli", "demo", "-q", "--strategy", "nope"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "unknown strategy id(s) ['nope']" in proc.stderr, proc.stderr
    assert "ingest_job" not in proc.stdout, proc.stdout
    after = table_state(wh)
    assert {t: v for t, v in after.items() if t != "strategies"} == {t: v for t, v in before.items() if t != "strategies"}
    assert after["prices"][0] == 0  # no demo data was ingested


# --------------------------------------------------------------------------- 7: calendars


def test_concurrent_instrument_registration_on_a_new_calendar_has_no_uniqueviolation(wh, tmp_path):
    """Measured: two `ingest instruments` at once on a calendar not yet stored: one failed with
    UniqueViolation on calendar_sessions_pkey, 4 of 4 trials."""
    env = {**os.environ, DATABASE_URL_ENV: wh.url.render_as_string(hide_password=False), "PYTHONPATH": str(REPO)}
    for trial in range(3):
        cal = ["XLON", "XHKG", "XASX"][trial]
        files = [write(tmp_path, f"i{trial}{k}.csv", f"instrument_id,asset_class,kind,calendar\nT{trial}{k},equity,spot,{cal}\n")
                 for k in range(2)]
        procs = [subprocess.Popen([sys.executable, "-m", "macro_pipeline.cli", "ingest", "instruments", str(f)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in files]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        with wh.connect() as conn:
            n, dups = conn.exec_driver_sql(
                "SELECT count(*), count(*) - count(DISTINCT session_date) FROM calendar_sessions WHERE calendar = %s",
                (cal,)).one()
        assert n > 1000 and dups == 0


def test_calendar_starting_after_1985_xtks_is_usable(run_cli, wh, tmp_path):
    """Measured: XTKS could never be used (its calendar was built from 1985, before its first session)."""
    code, _, err = run_cli("ingest", "instruments", str(write(tmp_path, "t.csv",
                           "instrument_id,asset_class,kind,calendar\nTK1,equity,spot,XTKS\n")))
    assert code == 0, err
    code, _, err = run_cli("ingest", "prices", "-q", str(write(tmp_path, "tp.csv",
                           "instrument_id,obs_date,close\nTK1,2019-03-04,10\n")))
    assert code == 0, err
    with wh.connect() as conn:
        known = conn.exec_driver_sql("SELECT known_at FROM prices WHERE instrument_id = 'TK1'").scalar_one()
    assert known == pd.Timestamp("2019-03-04 15:00", tz="Asia/Tokyo")  # the Tokyo close
