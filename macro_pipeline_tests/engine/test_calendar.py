"""Rebalance dates and bar close times come from a real exchange calendar."""

from __future__ import annotations

import numpy as np
import pandas as pd

from macro_pipeline.engine import calendar_sessions, rebalance_dates
from macro_pipeline.engine.calendar import session_closes_ns


def test_monthly_is_the_last_session_of_each_month_holidays_included() -> None:
    got = rebalance_dates("XNYS", "monthly", "2021-01-01", "2021-12-31")
    assert len(got) == 12
    assert pd.Timestamp("2021-04-30") in got  # April
    assert pd.Timestamp("2021-05-28") in got  # Monday 2021-05-31 is Memorial Day
    assert pd.Timestamp("2021-12-31") in got  # New Year's Day 2022 (Sat) is not observed on Fri
    # 2022-12: Dec 30 is the last session (Christmas observed Mon 26th)
    assert rebalance_dates("XNYS", "monthly", "2022-12-01", "2022-12-31").tolist() == [
        pd.Timestamp("2022-12-30")
    ]


def test_weekly_is_the_last_session_of_each_week() -> None:
    got = rebalance_dates("XNYS", "weekly", "2021-03-22", "2021-04-11")
    # Good Friday 2021-04-02: that week ends on Thursday
    assert got.tolist() == pd.to_datetime(["2021-03-26", "2021-04-01", "2021-04-09"]).tolist()
    got = rebalance_dates("XNYS", "weekly", "2020-06-29", "2020-07-05")
    assert got.tolist() == [pd.Timestamp("2020-07-02")]  # Independence Day observed Fri 07-03


def test_twenty_four_seven_sessions_close_at_midnight_utc_of_the_next_day() -> None:
    s = calendar_sessions("24/7")
    days = s[(s >= "2021-01-01") & (s <= "2021-01-03")]
    assert len(days) == 3
    closes = pd.to_datetime(session_closes_ns("24/7", days.asi8), utc=True)
    assert closes[0] == pd.Timestamp("2021-01-02 00:00", tz="UTC")
    assert rebalance_dates("24/7", "weekly", "2021-01-04", "2021-01-10").tolist() == [
        pd.Timestamp("2021-01-10")  # a Sunday
    ]


def test_xnys_closes_follow_daylight_saving_and_early_closes() -> None:
    days = pd.to_datetime(["2021-01-04", "2021-07-06", "2021-11-26"])
    closes = pd.to_datetime(session_closes_ns("XNYS", days.as_unit("ns").asi8), utc=True)
    assert closes.tolist() == [
        pd.Timestamp("2021-01-04 21:00", tz="UTC"),  # 16:00 EST
        pd.Timestamp("2021-07-06 20:00", tz="UTC"),  # 16:00 EDT
        pd.Timestamp("2021-11-26 18:00", tz="UTC"),  # day after Thanksgiving: 13:00 EST
    ]


def test_demo_equity_dates_are_xnys_sessions() -> None:
    from macro_pipeline_tests.engine.frames import equities

    idx = equities().index
    s = calendar_sessions("XNYS")
    assert np.isin(idx.as_unit("ns").asi8, s.asi8).all()


def test_kept_sessions_and_closes_are_the_calendars_own(tmp_path, monkeypatch) -> None:
    """The disk copy a later process starts from holds exactly what exchange_calendars built; a
    damaged copy is built again; a kept calendar is known without asking exchange_calendars."""
    from macro_pipeline.engine import calendar as cal

    kept = tmp_path / "calendar-XNYS.npy"
    monkeypatch.setattr(cal, "_kept_path", lambda name: kept)
    built = cal.exchange_calendar("XNYS")
    want = (pd.DatetimeIndex(built.sessions).as_unit("ns").asi8, pd.DatetimeIndex(built.closes).as_unit("ns").asi8)
    for state in ("absent", "kept", "damaged"):
        if state == "damaged":
            kept.write_bytes(b"not an array")
        cal._sessions_and_closes.cache_clear()
        sessions, closes = cal._sessions_and_closes("XNYS")
        assert np.array_equal(sessions, want[0]) and np.array_equal(closes, want[1]), state
        assert kept.exists(), state
    monkeypatch.setattr(cal, "_calendar_names", lambda: frozenset())
    assert cal.is_known_calendar("XNYS")
    cal._sessions_and_closes.cache_clear()
