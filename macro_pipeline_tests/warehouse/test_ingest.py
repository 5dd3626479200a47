"""Ingestion: every kind from CSV and Parquet, idempotent re-ingest, revisions, bad-input matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from macro_pipeline.warehouse.errors import IngestValidationError
from macro_pipeline.warehouse.ingest import SPECS, ingest, stage, store
from macro_pipeline_tests.conftest import table_state

INSTRUMENTS = pd.DataFrame({
    "instrument_id": ["AAA", "BBB", "GDP", "PERP"],
    "asset_class": ["equity", "equity", "macro", "crypto"],
    "kind": ["spot", "spot", "macro", "perp"],
    "calendar": ["XNYS", "XNYS", "XNYS", "24/7"],
})

PRICES_CSV = """instrument_id,obs_date,open,high,low,close,volume
AAA,2020-01-02,10,11,9,10.5,100
AAA,2020-01-03,10.5,11,10,10.8,100
BBB,2020-01-02,20,21,19,20.5,100
"""


@pytest.fixture
def wh(engine):
    ingest(engine, "instruments", INSTRUMENTS)
    return engine


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_prices_csv_then_same_file_adds_nothing(wh, tmp_path):
    path = write(tmp_path, "p.csv", PRICES_CSV)
    first = ingest(wh, "prices", path)
    assert (first.rows_added, first.revisions_added, first.unchanged) == (3, 0, 0)
    assert first.batch_id is not None
    before = table_state(wh)
    again = ingest(wh, "prices", path)
    assert (again.rows_added, again.revisions_added, again.unchanged) == (0, 0, 3)
    assert again.batch_id is None and table_state(wh) == before


def test_changed_values_add_revision_rows_and_report_them(wh, tmp_path):
    ingest(wh, "prices", write(tmp_path, "p.csv", PRICES_CSV))
    changed = PRICES_CSV.replace("10.5,100\n", "10.6,100\n", 1) + "BBB,2020-01-03,20,21,19,20.7,100\n"
    # no known_at: a change is refused unless it is declared a correction (test_ingest_guards.py)
    report = ingest(wh, "prices", write(tmp_path, "p2.csv", changed), correction=True)
    assert (report.rows_added, report.revisions_added, report.unchanged) == (1, 1, 2)
    with wh.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT close, recorded_at FROM prices WHERE instrument_id='AAA' AND obs_date='2020-01-02' ORDER BY recorded_at"
        ).all()
    assert [r.close for r in rows] == [10.5, 10.6]  # the old row is still there: append-only


def test_default_known_at_is_the_real_session_close(wh):
    # 2019-07-03 is an early close (13:00 New York = 17:00 UTC); 2020-01-02 closes at 16:00 EST
    ingest(wh, "prices", pd.DataFrame({"instrument_id": ["AAA", "AAA"], "obs_date": ["2019-07-03", "2020-01-02"], "close": [1.0, 2.0]}))
    ingest(wh, "prices", pd.DataFrame({"instrument_id": ["PERP"], "obs_date": ["2020-01-02"], "close": [7000.0]}))
    with wh.connect() as conn:
        known = dict(conn.exec_driver_sql(
            "SELECT instrument_id || ' ' || obs_date, to_char(known_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM prices").all())
    assert known == {
        "AAA 2019-07-03": "2019-07-03 17:00",
        "AAA 2020-01-02": "2020-01-02 21:00",
        "PERP 2020-01-02": "2020-01-03 00:00",  # 24/7: known at the end of the UTC day
    }


def test_macro_without_known_at_gets_the_quarterly_first_print_lag(wh):
    ingest(wh, "macro", pd.DataFrame({"series_id": ["GDP"], "obs_date": ["2020-03-31"], "value": [1.0]}))
    with wh.connect() as conn:
        known = conn.exec_driver_sql("SELECT to_char(known_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM macro_observations").scalar()
    assert known == "2020-04-30 12:30"  # quarter end + 30 days, 08:30 New York (EDT)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_every_kind_loads_from_csv_and_parquet(wh, tmp_path, fmt):
    frames = {
        "prices": pd.DataFrame({"instrument_id": ["AAA"], "obs_date": ["2020-01-02"], "close": [10.0]}),
        "macro": pd.DataFrame({"series_id": ["GDP"], "obs_date": ["2019-12-31"], "value": [2.5], "known_at": ["2020-01-30T13:30:00Z"]}),
        "funding": pd.DataFrame({"instrument_id": ["PERP"] * 3, "ts": ["2020-01-02T00:00:00Z", "2020-01-02T08:00:00Z", "2020-01-02T16:00:00Z"],
                                 "rate": [0.0001, -0.0002, 0.0003], "interval_hours": [8.0] * 3}),
        "corporate-actions": pd.DataFrame({"instrument_id": ["AAA", "AAA"], "ex_date": ["2020-02-03", "2020-03-02"],
                                           "action": ["split", "dividend"], "value": [2.0, 0.25]}),
        "universe": pd.DataFrame({"universe": ["U1", "U1"], "instrument_id": ["AAA", "BBB"], "valid_from": ["2020-01-01", "2020-01-01"],
                                  "valid_to": ["2020-06-01", None]}),
        "signals": pd.DataFrame({"signal_name": ["s1"], "instrument_id": ["AAA"], "obs_date": ["2020-01-02"], "value": [0.5]}),
    }
    for kind, frame in frames.items():
        path = tmp_path / f"{kind}.{fmt}"
        frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path, index=False)
        report = ingest(wh, kind, path)
        assert report.rows_added == len(frame), kind
        assert ingest(wh, kind, path).rows_added == 0, kind
    with wh.connect() as conn:
        f = conn.exec_driver_sql("SELECT count(*), min(known_at) = min(ts) FROM funding_rates").one()
    assert tuple(f) == (3, True)


def test_gzipped_csv_loads_like_the_plain_file(wh, tmp_path):
    import gzip

    path = tmp_path / "p.csv.gz"
    path.write_bytes(gzip.compress(PRICES_CSV.encode()))
    assert ingest(wh, "prices", path).rows_added == 3
    assert ingest(wh, "prices", write(tmp_path, "p.csv", PRICES_CSV)).rows_added == 0


def test_register_instruments_flag_registers_unknown_ids(wh):
    frame = pd.DataFrame({"instrument_id": ["NEW1"], "obs_date": ["2020-01-02"], "close": [1.0]})
    with pytest.raises(IngestValidationError, match="unknown-instrument"):
        ingest(wh, "prices", frame)
    report = ingest(wh, "prices", frame, register_unknown=True)
    assert report.instruments_registered == ["NEW1"] and report.rows_added == 1


# --------------------------------------------------------------------------- bad input matrix

GOOD = "instrument_id,obs_date,open,high,low,close,volume\nAAA,2020-01-02,10,11,9,10.5,100\n"
BAD_CASES = [
    # (id, kind, file text, rule, words the message must contain, lines named)
    ("missing-column", "prices", "instrument_id,obs_date,open\nAAA,2020-01-02,1\n", "missing-columns", "close", [1]),
    ("unknown-column", "prices", "instrument_id,obs_date,close,colour\nAAA,2020-01-02,1,red\n", "unknown-columns", "colour", [1]),
    ("unparseable-date", "prices", GOOD + "AAA,2020-13-45,10,11,9,10.5,100\n", "unparseable-date", "obs_date", [3]),
    ("nan-price", "prices", GOOD + "AAA,2020-01-03,10,11,9,NaN,100\n", "missing-value", "close", [3]),
    ("inf-price", "prices", GOOD + "AAA,2020-01-03,10,inf,9,10,100\n", "non-finite", "high", [3]),
    ("negative-price", "prices", GOOD + "AAA,2020-01-03,10,11,9,-10.5,100\n", "non-positive", "close", [3]),
    ("zero-price", "prices", GOOD + "AAA,2020-01-03,0,11,9,10,100\n", "non-positive", "open", [3]),
    ("high-below-low", "prices", GOOD + "AAA,2020-01-03,10,9,11,10,100\n", "high-below-low", "high < low", [3]),
    ("duplicate-key", "prices", GOOD + "AAA,2020-01-02,10,11,9,10.6,100\n", "duplicate-key", "instrument_id, obs_date", [2, 3]),
    ("unknown-instrument", "prices", GOOD + "ZZZ,2020-01-02,10,11,9,10,100\n", "unknown-instrument", "ZZZ", [3]),
    ("known-before-obs", "prices", "instrument_id,obs_date,close,known_at\nAAA,2020-01-02,10,2020-01-01T21:00:00Z\n",
     "known-before-valid", "known_at before obs_date", [2]),
    ("funding-interval", "funding", "instrument_id,ts,rate,interval_hours\nPERP,2020-01-02T00:00:00Z,0.0001,8\nPERP,2020-01-02T08:00:00Z,0.0001,0\n",
     "non-positive", "interval_hours", [3]),
    ("unparseable-number", "macro", "series_id,obs_date,value\nGDP,2019-12-31,abc\n", "unparseable-number", "value", [2]),
    ("unsafe-id", "prices", "instrument_id,obs_date,close\n\"AAA'; DROP TABLE prices;--\",2020-01-02,1\n", "unsafe-id", "instrument_id", [2]),
    ("blank-line", "prices", GOOD + "\nAAA,2020-01-03,10,11,9,10,100\n", "blank-row", "empty line", [3]),
    ("bad-action", "corporate-actions", "instrument_id,ex_date,action,value\nAAA,2020-01-02,merger,1\n", "unknown-action", "split", [2]),
    ("empty-file", "prices", "instrument_id,obs_date,close\n", "empty-file", "no data rows", [1]),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_names_file_rule_and_lines_and_writes_nothing(wh, tmp_path, case):
    _, kind, text, rule, words, lines = case
    ingest(wh, "prices", write(tmp_path, "seed.csv", PRICES_CSV))  # data already stored must survive
    before = table_state(wh)
    path = write(tmp_path, f"{case[0]}.csv", text)
    with pytest.raises(IngestValidationError) as err:
        ingest(wh, kind, path)
    msg = str(err.value)
    assert rule in err.value.rules, msg
    assert str(path) in msg and words in msg and "nothing was written" in msg
    problem = next(p for p in err.value.problems if p.rule == rule)
    assert list(problem.rows) == lines
    for line in lines:
        assert f"lines {line}" in msg or f", {line}" in msg
    assert table_state(wh) == before


def test_many_bad_rows_show_first_few_and_a_count(wh, tmp_path):
    body = "".join(f"AAA,2020-01-{d:02d},10,11,9,-1,100\n" for d in range(2, 30))
    with pytest.raises(IngestValidationError) as err:
        ingest(wh, "prices", write(tmp_path, "many.csv", "instrument_id,obs_date,open,high,low,close,volume\n" + body))
    assert "lines 2, 3, 4, 5, 6, ... (28 in all)" in str(err.value)


def test_malformed_file_is_a_clear_error(wh, tmp_path):
    path = write(tmp_path, "broken.csv", 'instrument_id,obs_date,close\nAAA,2020-01-02,1,extra,fields\n')
    with pytest.raises(IngestValidationError, match="malformed-file"):
        ingest(wh, "prices", path)


def test_instruments_conflicting_attributes_are_refused(wh):
    changed = INSTRUMENTS.copy()
    changed.loc[0, "kind"] = "index"
    before = table_state(wh)
    with pytest.raises(IngestValidationError, match="instrument-conflict"):
        ingest(wh, "instruments", changed)
    assert table_state(wh) == before
    assert ingest(wh, "instruments", INSTRUMENTS).rows_added == 0


def test_registered_daily_macro_series_can_take_the_close_rule(wh):
    frame = pd.DataFrame({"series_id": ["UST_X"], "obs_date": ["2020-01-02"], "value": [0.015]})
    ingest(wh, "macro", frame, register_unknown=True, register_release_rule="close")
    with wh.connect() as conn:
        rule, known = conn.exec_driver_sql(
            "SELECT i.release_rule, to_char(m.known_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') "
            "FROM instruments i JOIN macro_observations m ON m.series_id = i.instrument_id").one()
    assert (rule, known) == ("close", "2020-01-02 21:00")
    with pytest.raises(ValueError, match="release rule 'daily'"):
        ingest(wh, "macro", frame, register_unknown=True, register_release_rule="daily")


# --------------------------------------------------------------------------- staging in chunks

VINTAGES_CSV = """instrument_id,obs_date,close,known_at
AAA,2020-01-02,10.0,2020-01-02T21:00:00Z
AAA,2020-01-02,10.1,2020-01-03T21:00:00Z
AAA,2020-01-03,10.8,2020-01-03T21:00:00Z
BBB,2020-01-02,20.5,2020-01-02T21:00:00Z
BBB,2020-01-02,20.6,2020-01-06T21:00:00Z
BBB,2020-01-03,20.7,2020-01-03T21:00:00Z
"""


def _staging_tables(engine) -> list[str]:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'ingest_staging'").scalars().all()


def test_chunk_bounds_never_split_a_key_and_cover_every_row():
    keys = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])  # one code per row, rows in index order
    for rows in range(1, 12):
        bounds = stage.chunk_bounds(keys, rows)
        assert [lo for lo, _ in bounds] == [0] + [hi for _, hi in bounds[:-1]] and bounds[-1][1] == 10
        assert all(keys[lo - 1] != keys[lo] for lo, _ in bounds[1:])
    assert stage.chunk_bounds(keys, 4) == [(0, 5), (5, 9), (9, 10)]


def test_chunked_staging_counts_as_one_insert_would(wh, tmp_path, monkeypatch):
    # one row per chunk if keys allowed it: a key's two vintages must stay in one chunk, else the
    # second would be counted as a revision of the first instead of both being added
    monkeypatch.setattr(stage, "STAGE_CHUNK_ROWS", 1)
    first = ingest(wh, "prices", write(tmp_path, "v.csv", VINTAGES_CSV))
    assert (first.rows_added, first.revisions_added, first.unchanged) == (6, 0, 0)
    changed = VINTAGES_CSV.replace("10.8,", "10.9,").replace("20.6,", "20.65,") + "BBB,2020-01-06,21.0,2020-01-06T21:00:00Z\n"
    second = ingest(wh, "prices", write(tmp_path, "v2.csv", changed))
    assert (second.rows_added, second.revisions_added, second.unchanged) == (1, 2, 4)
    with wh.connect() as conn:
        stored = conn.exec_driver_sql("SELECT count(*), count(DISTINCT batch_id) FROM prices").one()
    assert tuple(stored) == (9, 2)
    assert ingest(wh, "prices", write(tmp_path, "v3.csv", changed)).rows_added == 0
    assert _staging_tables(wh) == []


def test_failure_in_a_later_chunk_writes_nothing_and_leaves_no_staging(wh, tmp_path, monkeypatch):
    # AAA and BBB have rows stored: the file is no first load, it is staged
    ingest(wh, "prices", pd.DataFrame({"instrument_id": ["AAA", "BBB"], "obs_date": ["2019-12-31"] * 2, "close": [9.0, 19.0]}))
    before = table_state(wh)
    monkeypatch.setattr(stage, "STAGE_CHUNK_ROWS", 1)
    calls = []
    real = store._insert_new

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("connection lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "_insert_new", failing)
    with pytest.raises(RuntimeError, match="connection lost"):
        ingest(wh, "prices", write(tmp_path, "v.csv", VINTAGES_CSV))
    assert table_state(wh) == before and _staging_tables(wh) == []
    monkeypatch.setattr(store, "_insert_new", real)
    assert ingest(wh, "prices", write(tmp_path, "v.csv", VINTAGES_CSV)).rows_added == 6


def test_staging_left_by_a_dead_ingest_is_dropped_by_the_next(wh, tmp_path, monkeypatch):
    with wh.begin() as conn:
        conn.exec_driver_sql("CREATE UNLOGGED TABLE ingest_staging.prices_999_0 (x int)")
    ingest(wh, "prices", write(tmp_path, "p.csv", PRICES_CSV))  # one chunk (a temporary table) drops them too
    assert _staging_tables(wh) == []  # issue 13: only an ingest of more than one chunk used to
    with wh.begin() as conn:
        conn.exec_driver_sql("CREATE UNLOGGED TABLE ingest_staging.prices_999_0 (x int)")
    monkeypatch.setattr(stage, "STAGE_CHUNK_ROWS", 1)
    ingest(wh, "prices", write(tmp_path, "v.csv", VINTAGES_CSV))
    assert _staging_tables(wh) == []


def test_first_load_probe_for_new_instruments_does_not_scan_the_table(wh):
    # regression: `WHERE instrument_id = ANY(:ids)` was planned as a sequential scan expecting an
    # early match; for instruments with no rows (a first load's own case) it read the whole
    # table, with no statistics on it yet
    with wh.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO prices (instrument_id, obs_date, close, known_at, recorded_at, batch_id) "
            "SELECT 'S' || (g % 400), DATE '2000-01-03' + g / 400, 1, now(), now(), 0 FROM generate_series(0, 299999) g"))
        sql = store._stored_leads_sql(SPECS["prices"])
        ids = [f"NEW{i}" for i in range(200)]
        plan = "\n".join(conn.execute(sa.text("EXPLAIN " + sql), {"v": ids}).scalars())
        assert "Seq Scan on prices" not in plan, plan
        assert store._stored_leads(conn, SPECS["prices"], pd.Series(ids)) == set()
        assert store._stored_leads(conn, SPECS["prices"], pd.Series(["S7", *ids, "S7"])) == {"S7"}


# --------------------------------------------------------------------------- first loads: COPY into the fact table

def _spy(monkeypatch) -> dict[str, list]:
    """Record what each path was given: the rows COPYed straight in, the staged chunks inserted."""
    calls: dict[str, list] = {"direct": [], "staged": []}
    copy_new, insert_new = store._copy_new, store._insert_new

    def direct(conn, spec, frame, *args):
        calls["direct"].append(frame.copy())
        return copy_new(conn, spec, frame, *args)

    def staged(conn, spec, table, *args):
        calls["staged"].append(table)
        return insert_new(conn, spec, table, *args)

    monkeypatch.setattr(store, "_copy_new", direct)
    monkeypatch.setattr(store, "_insert_new", staged)
    return calls


def _stored(engine, where: str = "") -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text(f"SELECT * FROM prices {where} ORDER BY instrument_id, obs_date, known_at, recorded_at"), conn)


def test_a_first_load_is_copied_straight_into_the_fact_table_with_exactly_its_rows(wh, tmp_path, monkeypatch):
    calls = _spy(monkeypatch)
    monkeypatch.setattr(stage, "STAGE_CHUNK_ROWS", 1)  # staging would make one table per key
    report = ingest(wh, "prices", write(tmp_path, "v.csv", VINTAGES_CSV))
    assert (report.rows_added, report.revisions_added, report.unchanged) == (6, 0, 0)
    assert len(calls["direct"]) == 1 and len(calls["direct"][0]) == 6 and calls["staged"] == []
    stored = _stored(wh)
    expected = pd.read_csv(write(tmp_path, "e.csv", VINTAGES_CSV))
    assert stored["instrument_id"].tolist() == expected["instrument_id"].tolist()
    assert stored["obs_date"].astype(str).tolist() == expected["obs_date"].tolist()
    assert stored["close"].tolist() == expected["close"].tolist()
    assert stored["known_at"].tolist() == pd.to_datetime(expected["known_at"], utc=True).tolist()
    assert stored[["open", "high", "low", "volume"]].isna().all().all()
    assert (stored["recorded_at"] == pd.Timestamp(report.recorded_at)).all() and (stored["batch_id"] == report.batch_id).all()
    with wh.connect() as conn:
        batch = conn.exec_driver_sql("SELECT rows_added, revisions_added, unchanged, recorded_at FROM ingest_batches "
                                     "WHERE batch_id = %s", (report.batch_id,)).one()
    assert tuple(batch) == (6, 0, 0, report.recorded_at)
    assert _staging_tables(wh) == []
    # the rerun finds every instrument stored: staged, nothing new, not even a batch row
    before = table_state(wh)
    again = ingest(wh, "prices", write(tmp_path, "v.csv", VINTAGES_CSV))
    assert (again.rows_added, again.revisions_added, again.unchanged, again.batch_id) == (0, 0, 6, None)
    assert len(calls["direct"]) == 1 and len(calls["staged"]) == 4  # one chunk per key
    assert table_state(wh) == before


def test_a_load_overlapping_stored_keys_is_staged_and_only_new_instruments_go_straight_in(wh, tmp_path, monkeypatch):
    ingest(wh, "prices", write(tmp_path, "p.csv", PRICES_CSV))  # AAA and BBB stored
    calls = _spy(monkeypatch)
    grown = PRICES_CSV.replace("10.5,100\n", "10.6,100\n", 1) + "BBB,2020-01-03,20,21,19,20.7,100\nPERP,2020-01-02,1,1,1,1,5\n"
    report = ingest(wh, "prices", write(tmp_path, "p2.csv", grown), correction=True)
    assert (report.rows_added, report.revisions_added, report.unchanged) == (2, 1, 2)  # BBB 01-03 and PERP; AAA corrected
    (direct,) = calls["direct"]
    assert direct["instrument_id"].astype(str).tolist() == ["PERP"] and len(calls["staged"]) == 1
    assert len(_stored(wh)) == 6
    corrected = _stored(wh, "WHERE instrument_id = 'AAA' AND obs_date = '2020-01-02'")
    assert corrected["close"].tolist() == [10.5, 10.6] and corrected["known_at"].nunique() == 1  # same known_at, later recorded_at


def test_a_refused_overlapping_load_leaves_nothing_of_its_first_load_rows(wh, tmp_path, monkeypatch):
    ingest(wh, "prices", write(tmp_path, "p.csv", PRICES_CSV))
    before = table_state(wh)
    calls = _spy(monkeypatch)
    # PERP is COPYed straight in, then AAA's changed close is refused (rule-dated, no --correction)
    rewrite = PRICES_CSV.replace("10.5,100\n", "10.6,100\n", 1) + "PERP,2020-01-02,1,1,1,1,5\n"
    with pytest.raises(IngestValidationError, match="rewrites-history"):
        ingest(wh, "prices", write(tmp_path, "p2.csv", rewrite))
    assert len(calls["direct"]) == 1  # the direct COPY ran: the rollback took it back
    assert table_state(wh) == before and _staging_tables(wh) == []


def test_a_failure_after_the_direct_copy_leaves_nothing(wh, tmp_path, monkeypatch):
    before = table_state(wh)
    copy_new = store._copy_new

    def then_fail(*args):
        copy_new(*args)
        raise RuntimeError("connection lost")

    monkeypatch.setattr(store, "_copy_new", then_fail)
    with pytest.raises(RuntimeError, match="connection lost"):
        ingest(wh, "prices", write(tmp_path, "v.csv", VINTAGES_CSV))
    assert table_state(wh) == before
    monkeypatch.setattr(store, "_copy_new", copy_new)
    assert ingest(wh, "prices", write(tmp_path, "v.csv", VINTAGES_CSV)).rows_added == 6


def test_close_rule_on_dates_that_are_no_session_falls_back_without_error():
    # a holiday or weekend alone (every date misses the calendar) used to raise a pandas TypeError
    import pandas as pd

    from macro_pipeline.warehouse.ingest.release import close_known_at

    known = close_known_at(pd.Series(["2020-02-17"]), "XNYS")  # Presidents' Day
    assert str(known.dtype) == "datetime64[ns, UTC]"
    assert known.iloc[0] == pd.Timestamp("2020-02-17 21:00", tz="UTC")  # fallback 16:00 New York
    mixed = close_known_at(pd.Series(["2020-02-14", "2020-02-15", "2020-11-27"]), "XNYS")
    assert list(mixed) == [pd.Timestamp("2020-02-14 21:00", tz="UTC"), pd.Timestamp("2020-02-15 21:00", tz="UTC"),
                           pd.Timestamp("2020-11-27 18:00", tz="UTC")]  # early close after Thanksgiving
