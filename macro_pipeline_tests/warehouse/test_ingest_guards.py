"""Ingest guards: a file without known_at may not silently rewrite stored history, and a price may
not be known before its own session's close."""

from __future__ import annotations

import pandas as pd
import pytest

from macro_pipeline import cli
from macro_pipeline.settings import DATABASE_URL_ENV
from macro_pipeline.warehouse.errors import IngestValidationError
from macro_pipeline.warehouse.ingest import ingest, release, stage
from macro_pipeline.warehouse.pit import PointInTimeReader
from macro_pipeline_tests.conftest import table_state
from macro_pipeline_tests.warehouse.test_ingest import write

INSTRUMENTS = pd.DataFrame({
    "instrument_id": ["AAA", "GDP", "PERP"],
    "asset_class": ["equity", "macro", "crypto"],
    "kind": ["spot", "macro", "perp"],
    "calendar": ["XNYS", "XNYS", "24/7"],
})  # release rules by default: close (AAA, PERP), quarterly_30d (GDP)

MACRO_CSV = """series_id,obs_date,value
GDP,2019-03-31,1.0
GDP,2019-06-30,2.0
GDP,2019-09-30,3.0
GDP,2019-12-31,4.0
"""
CHANGED_CSV = MACRO_CSV.replace("GDP,2019-06-30,2.0", "GDP,2019-06-30,2.5")
Q2_KNOWN = pd.Timestamp("2019-07-30 12:30", tz="UTC")  # quarter end + 30 days, 08:30 New York (EDT)


@pytest.fixture
def wh(engine):
    ingest(engine, "instruments", INSTRUMENTS)
    return engine



def _q2_rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(
            "SELECT value, known_at, recorded_at FROM macro_observations "
            "WHERE series_id = 'GDP' AND obs_date = '2019-06-30' ORDER BY recorded_at").all()]


# --------------------------------------------------------------------------- silent history rewrites


def test_macro_file_without_known_at_changing_a_value_is_refused_naming_the_row(wh, tmp_path):
    ingest(wh, "macro", write(tmp_path, "m.csv", MACRO_CSV))
    before = table_state(wh)
    path = write(tmp_path, "m2.csv", CHANGED_CSV)
    with pytest.raises(IngestValidationError) as err:
        ingest(wh, "macro", path)
    msg = str(err.value)
    assert err.value.rules == ["rewrites-history"]
    (problem,) = err.value.problems
    assert list(problem.rows) == [3] and problem.total == 1  # line 3 of the file
    assert "line 3: GDP 2019-06-30: value 2.0 -> 2.5 (stored known_at 2019-07-30 12:30:00 UTC)" in msg
    assert str(path) in msg and "nothing was written" in msg
    assert "known_at in the file" in msg and "--correction" in msg and "correction=True" in msg
    assert table_state(wh) == before


def test_correction_keeps_the_original_known_at_and_is_recorded_after_it(wh, tmp_path):
    first = ingest(wh, "macro", write(tmp_path, "m.csv", MACRO_CSV))
    report = ingest(wh, "macro", write(tmp_path, "m2.csv", CHANGED_CSV), correction=True)
    assert (report.rows_added, report.revisions_added, report.unchanged) == (0, 1, 3)
    (v1, k1, r1), (v2, k2, r2) = _q2_rows(wh)
    assert (v1, v2) == (2.0, 2.5) and k1 == k2 == Q2_KNOWN and r1 == first.recorded_at < r2 == report.recorded_at
    # a correction reaches every decision from the original known_at on
    at_release = PointInTimeReader(wh, Q2_KNOWN).macro(["GDP"])
    assert at_release.set_index("obs_date")["value"].to_dict() == {pd.Timestamp("2019-03-31"): 1.0,
                                                                   pd.Timestamp("2019-06-30"): 2.5}
    before_fix = PointInTimeReader(wh, Q2_KNOWN, system_as_of=first.recorded_at).macro(["GDP"])
    assert before_fix["value"].tolist() == [1.0, 2.0]
    assert ingest(wh, "macro", write(tmp_path, "m3.csv", CHANGED_CSV), correction=True).rows_added == 0


def test_same_change_with_known_at_is_a_revision_known_from_then_on(wh, tmp_path):
    ingest(wh, "macro", write(tmp_path, "m.csv", MACRO_CSV))
    stored = release.quarterly_known_at(pd.Series(pd.to_datetime(
        ["2019-03-31", "2019-06-30", "2019-09-30", "2019-12-31"])))
    revised_at = pd.Timestamp("2019-08-29 12:30", tz="UTC")
    frame = pd.read_csv(write(tmp_path, "m2.csv", CHANGED_CSV)).assign(known_at=stored.to_numpy())
    frame.loc[1, "known_at"] = revised_at
    report = ingest(wh, "macro", frame)
    assert (report.rows_added, report.revisions_added, report.unchanged) == (0, 1, 3)
    assert [(v, k) for v, k, _ in _q2_rows(wh)] == [(2.0, Q2_KNOWN), (2.5, revised_at)]
    assert PointInTimeReader(wh, revised_at - pd.Timedelta(seconds=1)).macro(["GDP"])["value"].tolist() == [1.0, 2.0]
    assert PointInTimeReader(wh, revised_at).macro(["GDP"])["value"].tolist() == [1.0, 2.5]


def test_unchanged_file_without_known_at_is_no_error(wh, tmp_path):
    path = write(tmp_path, "m.csv", MACRO_CSV)
    ingest(wh, "macro", path)
    before = table_state(wh)
    again = ingest(wh, "macro", path)
    assert (again.rows_added, again.revisions_added, again.unchanged) == (0, 0, 4)
    assert table_state(wh) == before
    grown = ingest(wh, "macro", write(tmp_path, "m2.csv", MACRO_CSV + "GDP,2020-03-31,5.0\n"))
    assert (grown.rows_added, grown.revisions_added, grown.unchanged) == (1, 0, 4)  # new keys are fine


def test_many_rewrites_show_the_first_ten_and_a_count_across_chunks(wh, tmp_path, monkeypatch):
    # one chunk per key: the first changed row is met in the 2nd chunk, the count covers them all
    dates = pd.date_range("2015-03-31", periods=16, freq="QE")
    frame = pd.DataFrame({"series_id": "GDP", "obs_date": dates.strftime("%Y-%m-%d"), "value": range(16)})
    ingest(wh, "macro", frame.astype({"value": float}))
    before = table_state(wh)
    monkeypatch.setattr(stage, "STAGE_CHUNK_ROWS", 1)
    changed = frame.assign(value=[0.0] + [v + 0.5 for v in range(1, 16)])
    with pytest.raises(IngestValidationError) as err:
        ingest(wh, "macro", changed)
    (problem,) = err.value.problems
    assert problem.total == 15 and list(problem.rows) == list(range(2, 12))  # rows: frame row numbers
    assert len(problem.examples) == 10 and "row 2: GDP 2015-06-30: value 1.0 -> 1.5" in problem.examples[0]
    assert "(15 in all)" in str(err.value)
    assert table_state(wh) == before
    with wh.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'ingest_staging'").scalar() == 0


SEEDS = {  # kind -> (stored frame, the same with one value changed, words naming the row)
    "prices": ({"instrument_id": ["AAA"], "obs_date": ["2020-01-02"], "close": [10.0]},
               {"close": [10.5]}, "AAA 2020-01-02: close 10.0 -> 10.5"),
    "funding": ({"instrument_id": ["PERP"], "ts": ["2020-01-02T08:00:00Z"], "rate": [1e-4], "interval_hours": [8.0]},
                {"rate": [2e-4]}, "PERP 2020-01-02 08:00:00 UTC: rate 0.0001 -> 0.0002"),
    "corporate-actions": ({"instrument_id": ["AAA"], "ex_date": ["2020-02-03"], "action": ["dividend"], "value": [0.25]},
                          {"value": [0.3]}, "AAA 2020-02-03 dividend: value 0.25 -> 0.3"),
    "universe": ({"universe": ["U"], "instrument_id": ["AAA"], "valid_from": ["2020-01-01"], "valid_to": ["2020-06-01"]},
                 {"valid_to": ["2020-07-01"]}, "U AAA 2020-01-01: valid_to 2020-06-01 -> 2020-07-01"),
    "signals": ({"signal_name": ["s1"], "instrument_id": ["AAA"], "obs_date": ["2020-01-02"], "value": [0.5]},
                {"value": [-0.5]}, "s1 AAA 2020-01-02: value 0.5 -> -0.5"),
}


@pytest.mark.parametrize("kind", list(SEEDS))
def test_every_rule_dated_kind_refuses_rewrites_and_takes_corrections(wh, kind):
    seed, change, words = SEEDS[kind]
    ingest(wh, kind, pd.DataFrame(seed))
    before = table_state(wh)
    changed = pd.DataFrame({**seed, **change})
    with pytest.raises(IngestValidationError, match="rewrites-history") as err:
        ingest(wh, kind, changed)
    assert words in str(err.value)
    assert table_state(wh) == before
    assert ingest(wh, kind, changed, correction=True).revisions_added == 1


# --------------------------------------------------------------------------- known before the close


def _price(instrument: str, obs_date: str, known_at: str) -> pd.DataFrame:
    return pd.DataFrame({"instrument_id": [instrument], "obs_date": [obs_date], "close": [100.0], "known_at": [known_at]})


@pytest.mark.parametrize("instrument, obs_date, refused, accepted, close", [
    # 24/7: day D closes at 00:00 UTC of D+1, so 00:00 of D is the close of the day before
    ("PERP", "2020-01-03", "2020-01-03T00:00:00Z", "2020-01-04T00:00:00Z", "2020-01-04 00:00 UTC"),
    # XNYS: 16:00 New York (EST) = 21:00 UTC
    ("AAA", "2020-01-02", "2020-01-02T20:59:00Z", "2020-01-02T21:00:00Z", "2020-01-02 21:00 UTC"),
    # day after Thanksgiving: early close 13:00 New York = 18:00 UTC
    ("AAA", "2019-11-29", "2019-11-29T17:59:00Z", "2019-11-29T18:00:00Z", "2019-11-29 18:00 UTC"),
], ids=["24/7", "xnys", "xnys-early-close"])
def test_price_known_before_its_session_close_is_refused(wh, instrument, obs_date, refused, accepted, close):
    ingest(wh, "prices", _price("AAA", "2019-01-02", "2019-01-03T00:00:00Z"))  # stored data must survive
    before = table_state(wh)
    with pytest.raises(IngestValidationError) as err:
        ingest(wh, "prices", _price(instrument, obs_date, refused))
    assert err.value.rules == ["known-before-close"]
    assert f"row 1: {instrument} {obs_date}: known_at {refused[:10]} {refused[11:16]} UTC < close {close}" in str(err.value)
    assert table_state(wh) == before
    assert ingest(wh, "prices", _price(instrument, obs_date, accepted)).rows_added == 1


def test_price_on_a_date_that_is_no_session_is_checked_as_before(wh):
    # a Saturday on XNYS: no close to compare with; only known_at >= the valid date applies
    assert ingest(wh, "prices", _price("AAA", "2020-01-04", "2020-01-04T12:00:00Z")).rows_added == 1
    with pytest.raises(IngestValidationError, match="known-before-valid"):
        ingest(wh, "prices", _price("AAA", "2020-01-05", "2020-01-04T23:00:00Z"))


# --------------------------------------------------------------------------- command line


def test_cli_ingest_correction_flag(wh, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(DATABASE_URL_ENV, wh.url.render_as_string(hide_password=False))
    assert cli.main(["ingest", "macro", str(write(tmp_path, "m.csv", MACRO_CSV)), "-q"]) == 0
    changed = str(write(tmp_path, "m2.csv", CHANGED_CSV))
    capsys.readouterr()
    assert cli.main(["ingest", "macro", changed, "-q"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "rewrites-history" in err and "GDP 2019-06-30: value 2.0 -> 2.5" in err
    assert cli.main(["ingest", "macro", changed, "--correction", "-q"]) == 0
    assert "0 added, 1 revision(s), 3 unchanged" in capsys.readouterr().out
    assert [(v, k) for v, k, _ in _q2_rows(wh)] == [(2.0, Q2_KNOWN), (2.5, Q2_KNOWN)]


def test_release_rule_dating_a_price_before_its_close_is_refused(wh):
    # an instrument whose rule is not `close`: `same_day` dates a price at 00:00 UTC of its day
    ingest(wh, "instruments", pd.DataFrame({"instrument_id": ["EARLY"], "asset_class": ["equity"], "kind": ["spot"],
                                            "calendar": ["XNYS"], "release_rule": ["same_day"]}))
    with pytest.raises(IngestValidationError) as err:
        ingest(wh, "prices", pd.DataFrame({"instrument_id": ["EARLY"], "obs_date": ["2020-01-02"], "close": [1.0]}))
    assert "row 1: EARLY 2020-01-02: known_at 2020-01-02 00:00 UTC < close 2020-01-02 21:00 UTC" in str(err.value)
