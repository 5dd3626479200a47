"""The sensor's visibility rule at the edges (calendars, month boundaries, early closes, funding
bars, ex-dates), the footprints stored months record, and months stored before footprints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.backtest.months import run_months
from macro_pipeline.backtest.one_off import run_backtest
from macro_pipeline.backtest.reruns import (
    Change,
    changes_between,
    first_decisions,
    footprint,
    pit_reruns,
)
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline.warehouse.pit import current_watermark
from macro_pipeline_tests.conftest import demo_with_strategies


def _change(source: str, valid: list[str], known: list[str]) -> Change:
    return Change(source, "X", "", pd.to_datetime(valid).tz_localize(None).to_numpy(dtype="datetime64[ns]"),
                  pd.to_datetime(known, utc=True).tz_convert(None).to_numpy(dtype="datetime64[ns]"), len(valid))


def _days(out: np.ndarray) -> list[str | None]:
    return [None if np.isnat(d) else str(pd.Timestamp(d).date()) for d in out]


def test_24_7_decisions_are_taken_at_midnight_utc_of_the_next_day():
    # a close of 06-30 known at 07-01T00:00Z is 06-30's decision (June, not July); one second
    # later it is 07-01's
    c = _change("prices", ["2009-06-30", "2009-06-30"], ["2009-07-01T00:00:00Z", "2009-07-01T00:00:01Z"])
    assert _days(first_decisions(c, "24/7")) == ["2009-06-30", "2009-07-01"]


def test_funding_belongs_to_the_bar_it_settles_in():
    # a settlement at 05-01T00:00Z closes the 24/7 bar of 04-30; one at 08:00Z is 05-01's
    c = _change("funding", ["2009-05-01T00:00:00", "2009-05-01T08:00:00", "2009-05-01T00:00:00"],
                ["2009-05-01T00:00:00Z", "2009-05-01T08:00:00Z", "2009-05-03T12:00:00Z"])
    assert _days(first_decisions(c, "24/7")) == ["2009-04-30", "2009-05-01", "2009-05-03"]


def test_xnys_early_close_and_weekends():
    # 2019-11-29 closed at 13:00 New York (18:00 UTC): known at 18:00 is that day's decision,
    # at 18:01 the next session's (Monday 12-02); a Saturday value is Monday's
    c = _change("prices", ["2019-11-29", "2019-11-29", "2019-11-30"],
                ["2019-11-29T18:00:00Z", "2019-11-29T18:01:00Z", "2019-11-30T12:00:00Z"])
    assert _days(first_decisions(c, "XNYS")) == ["2019-11-29", "2019-12-02", "2019-12-02"]


def test_a_corporate_action_counts_only_on_its_ex_date_when_known_by_that_close():
    c = _change("corporate_actions", ["2019-06-03", "2019-06-03", "2019-06-01"],
                ["2019-05-20T12:00:00Z", "2019-06-04T12:00:00Z", "2019-05-20T12:00:00Z"])
    # known before: the ex-date; known after the ex-date's close: the engine never applies it;
    # a Saturday ex-date is not a session: never applied
    assert _days(first_decisions(c, "XNYS")) == ["2019-06-03", None, None]


def test_stored_months_record_what_they_read_and_ad_hoc_runs_change_nothing(databases):
    engine = demo_with_strategies(databases)
    run_months(engine, "carry-simple", ["2015-01-01", "2015-02-01", "2015-03-01"])
    fp = footprint(engine, "carry-simple")
    assert sorted(fp) == ["2015-01-01", "2015-02-01", "2015-03-01"]
    jan = fp["2015-01-01"]
    assert {("prices", "BTC-PERP", ""), ("prices", "BTC-SPOT", ""), ("funding", "BTC-PERP", ""),
            ("universe", "CRYPTO", "")} <= jan
    assert all(source != "macro" for source, _, _ in jan)  # it reads no macro series
    with engine.connect() as conn:
        last = conn.execute(sa.text(
            "SELECT r.valid_to, r.last_decision FROM run_reads r JOIN backtest_runs b USING (run_id) "
            "WHERE b.strategy_id = 'carry-simple' AND b.window_start = '2015-02-01' LIMIT 1")).one()
    assert str(last[0]) == "2015-02-28" and pd.Timestamp(last[1]) == pd.Timestamp("2015-03-01T00:00Z")
    # an ad-hoc run (stored or not) of another window leaves the months' footprints as they were
    run_backtest(engine, "carry-simple", "2015-01-05", "2015-01-20")
    run_backtest(engine, "carry-simple", "2015-01-05", "2015-01-20", store=False)
    assert footprint(engine, "carry-simple") == fp


def test_months_stored_before_footprints_count_every_changed_entity_as_read(databases):
    engine = demo_with_strategies(databases)
    run_months(engine, "carry-simple", ["2015-01-01", "2015-02-01", "2015-03-01"])
    with engine.begin() as conn:  # what a warehouse migrated from before sql/007 holds
        conn.execute(sa.text("DELETE FROM run_reads"))
    mark = current_watermark(engine)
    # an entity carry-simple never reads, corrected in February: unknown footprints must rerun
    ingest(engine, "prices", pd.DataFrame({"instrument_id": ["SPX"], "obs_date": ["2015-02-10"], "close": [1.0],
                                           "known_at": ["2015-02-11T15:00:00Z"]}))
    changes = changes_between(engine, mark, current_watermark(engine))
    assert changes == []  # with no footprint at all, no entity is known to be read
    spx = Change("prices", "SPX", "", np.array(["2015-02-10"], dtype="datetime64[ns]"),
                 np.array(["2015-02-11T15:00"], dtype="datetime64[ns]"), 1)
    (rerun,) = pit_reruns(engine, [spx], today=pd.Timestamp("2015-03-31"))
    assert (rerun.strategy_id, rerun.first_month) == ("carry-simple", "2015-02-01")
