"""Regression tests, each named after the defect it pins (found in review)."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from macro_pipeline.backtest.one_off import run_backtest
from macro_pipeline.strategies.config import StrategyConfig
from macro_pipeline.warehouse.errors import LookAheadError
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline.warehouse.pit import INGEST_LOCK, PointInTimeReader
from macro_pipeline.warehouse.strategies import register_strategy
from macro_pipeline.warehouse.view import PointInTimeView

INSTRUMENTS = pd.DataFrame({
    "instrument_id": ["AAA", "BBB", "PERP"], "asset_class": ["equity", "equity", "crypto"],
    "kind": ["spot", "spot", "perp"], "calendar": ["XNYS", "XNYS", "24/7"]})


@pytest.fixture
def wh(engine):
    ingest(engine, "instruments", INSTRUMENTS)
    return engine


def test_default_watermark_taken_during_an_ingest_still_reproduces(wh):
    ingest(wh, "prices", pd.DataFrame({"instrument_id": ["AAA"], "obs_date": ["2020-01-02"], "close": [10.0]}))
    started = threading.Event()

    def slow_ingest():  # what ingest does: lock, stamp recorded_at, write, then commit later
        with wh.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": INGEST_LOCK})
            rec = conn.exec_driver_sql("SELECT clock_timestamp()").scalar_one()
            batch = conn.execute(sa.text(
                "INSERT INTO ingest_batches (kind, source, rows_in_file, rows_added, revisions_added, unchanged, recorded_at) "
                "VALUES ('prices', 't', 1, 1, 0, 0, :r) RETURNING batch_id"), {"r": rec}).scalar_one()
            conn.execute(sa.text(
                "INSERT INTO prices (instrument_id, obs_date, close, known_at, recorded_at, batch_id) "
                "VALUES ('AAA', '2020-01-03', 11.0, '2020-01-03T21:00:00Z', :r, :b)"), {"r": rec, "b": batch})
            started.set()
            time.sleep(1.0)

    t = threading.Thread(target=slow_ingest)
    t.start()
    started.wait(5)
    reader = PointInTimeReader(wh, "2020-01-06T21:00Z")  # waits for the ingest to commit
    first = reader.prices(["AAA"])
    t.join()
    again = PointInTimeReader(wh, "2020-01-06T21:00Z", system_as_of=reader.system_as_of).prices(["AAA"])
    assert len(first) == len(again) == 2


def test_future_system_as_of_is_refused(wh):
    tomorrow = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
    with pytest.raises(ValueError, match="in the future"):
        PointInTimeReader(wh, "2020-01-06T21:00Z", system_as_of=tomorrow)


def test_24_7_view_at_d_asking_for_d_plus_one_is_lookahead(wh):
    ingest(wh, "prices", pd.DataFrame({"instrument_id": "PERP", "obs_date": ["2024-01-01", "2024-01-02"], "close": [1.0, 2.0]}))
    view = PointInTimeView(wh, pd.date_range("2024-01-01", "2024-01-03"), calendar="24/7")
    assert view.at("2024-01-01").prices(["PERP"], end="2024-01-01")["close"].tolist() == [1.0]
    with pytest.raises(LookAheadError):
        view.at("2024-01-01").prices(["PERP"], end="2024-01-02")


def _funding(wh, rows):
    ingest(wh, "funding", pd.DataFrame(rows, columns=["ts", "rate", "known_at"]).assign(instrument_id="PERP", interval_hours=8.0))


def test_funding_correction_learned_later_does_not_change_past_decisions(wh):
    days = pd.date_range("2024-01-01", "2024-01-05")
    _funding(wh, [(f"2024-01-0{d}T{h:02d}:00:00Z", r, f"2024-01-0{d}T{h:02d}:00:00Z")
                  for d, r in ((2, 0.001), (3, 0.003), (4, 0.002)) for h in (8, 16)])
    before = PointInTimeView(wh, days, calendar="24/7").funding_per_decision(["PERP"])
    # a correction of a Jan 2 settlement, learned on Jan 4
    _funding(wh, [("2024-01-02T08:00:00Z", 0.009, "2024-01-04T12:00:00Z")])
    after = PointInTimeView(wh, days, calendar="24/7").funding_per_decision(["PERP"])
    pd.testing.assert_frame_equal(before, after)
    assert after.loc["2024-01-02", "PERP"] == pytest.approx(0.001)
    # and a value does not depend on where the window starts
    late = PointInTimeView(wh, days[2:], calendar="24/7").funding_per_decision(["PERP"])
    pd.testing.assert_frame_equal(late, after.iloc[2:])


def test_missing_price_on_an_execution_date_is_not_traded(wh):
    sessions = pd.bdate_range("2020-01-02", "2020-01-10")
    rows = [("AAA", d, 10.0) for d in sessions if d != pd.Timestamp("2020-01-07")] + [("BBB", d, 20.0) for d in sessions]
    ingest(wh, "prices", pd.DataFrame(rows, columns=["instrument_id", "obs_date", "close"]))
    ingest(wh, "universe", pd.DataFrame({"universe": "U", "instrument_id": ["AAA", "BBB"], "valid_from": "2020-01-01"}))
    register_strategy(wh, StrategyConfig("bh-daily", "buy_and_hold", {}, universe="U", rebalance="daily"))
    out = run_backtest(wh, "bh-daily", "2020-01-02", "2020-01-10", store=False)
    fills = out.result.fills
    missing = fills[(fills["reason"] == "missing_price") & (fills["instrument"] == "AAA")]
    assert list(pd.DatetimeIndex(missing["date"]).strftime("%Y-%m-%d")) == ["2020-01-07"]


def test_ingesting_an_unrelated_universe_keeps_the_snapshot_id(wh):
    sessions = pd.bdate_range("2020-01-02", "2020-01-31")
    ingest(wh, "prices", pd.DataFrame([("AAA", d, 10.0 + i) for i, d in enumerate(sessions)], columns=["instrument_id", "obs_date", "close"]))
    ingest(wh, "universe", pd.DataFrame({"universe": "U", "instrument_id": ["AAA"], "valid_from": "2020-01-01"}))
    register_strategy(wh, StrategyConfig("bh-u", "buy_and_hold", {}, universe="U"))
    first = run_backtest(wh, "bh-u", "2020-01-02", "2020-01-31", store=False)
    ingest(wh, "universe", pd.DataFrame({"universe": "OTHER", "instrument_id": ["BBB"], "valid_from": "2020-01-01"}))
    assert run_backtest(wh, "bh-u", "2020-01-02", "2020-01-31", store=False).snapshot_id == first.snapshot_id


def test_a_run_with_other_settings_does_not_replace_the_current_run(wh):
    sessions = pd.bdate_range("2020-01-02", "2020-01-31")
    ingest(wh, "prices", pd.DataFrame([("AAA", d, 10.0 + i) for i, d in enumerate(sessions)], columns=["instrument_id", "obs_date", "close"]))
    ingest(wh, "universe", pd.DataFrame({"universe": "U", "instrument_id": ["AAA"], "valid_from": "2020-01-01"}))
    register_strategy(wh, StrategyConfig("bh-u", "buy_and_hold", {}, universe="U"))
    base = run_backtest(wh, "bh-u", "2020-01-02", "2020-01-31")
    other = run_backtest(wh, "bh-u", "2020-01-02", "2020-01-31", transaction_cost_bps=50.0)
    assert other.superseded is None
    again = run_backtest(wh, "bh-u", "2020-01-02", "2020-01-31")
    assert again.superseded == base.run_id
