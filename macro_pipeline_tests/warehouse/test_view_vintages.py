"""Full as-of vintages in the point-in-time view, worked by hand on a six-session world, and the
rule that no value is visible before its own valid date's decision, whatever its known_at."""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.strategies.kinds.buy_and_hold import BuyAndHold
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline.warehouse.view import PointInTimeView
from macro_pipeline_tests.strategies import world


class CumulativeClose(BuyAndHold):
    """A path-dependent feature: w(d) = (sum of the closes known at d) / 1000."""

    def compute(self, view, instruments, eligible):
        return view.aligned_prices(instruments).cumsum() / 1000.0


def _world(engine):
    world.instruments(engine, ["X"])
    days = world.sessions(6)
    world.prices(engine, days, X=[10, 11, 12, 13, 14, 15])
    world.universe(engine, "U", {"X": (days[0], None)})
    return days


def test_a_revision_reaches_every_later_decision_from_its_known_at_and_none_before(engine):
    days = _world(engine)
    # the close of day 1 is revised to 21, known one hour after day 3's close: day 4 is the
    # first decision that sees it
    known = world.close_time(days[3]) + pd.Timedelta(hours=1)
    ingest(engine, "prices", pd.DataFrame({"instrument_id": ["X"], "obs_date": [days[1]], "close": [21.0],
                                           "known_at": [known]}))
    view = PointInTimeView(engine, days)
    # real time (what the engine executes on): each value as first known at its own decision
    np.testing.assert_array_equal(view.aligned_prices(["X"])["X"].to_numpy(), [10, 11, 12, 13, 14, 15])
    assert view.epoch_starts() == [4]
    with view.as_known_at(view.decision_times.iloc[3]):  # before the revision: the first print
        np.testing.assert_array_equal(view.aligned_prices(["X"])["X"].to_numpy(), [10, 11, 12, 13, 14, 15])
    with view.as_known_at(view.decision_times.iloc[4]):  # from it on: the history as revised
        np.testing.assert_array_equal(view.aligned_prices(["X"])["X"].to_numpy(), [10, 21, 12, 13, 14, 15])

    strategy = CumulativeClose(universe="U", rebalance="daily")
    w = strategy.weights(view)["X"].to_numpy()
    # days 0-3 see 10, 11, 12, 13 (sums 10, 21, 33, 46); days 4-5 see the revised history
    # 10 + 21 + 12 + 13 + 14 = 70 and 70 + 15 = 85
    np.testing.assert_array_equal(w * 1000.0, [10, 21, 33, 46, 70, 85])
    assert strategy.epochs == 2
    # a window starting later computes the same rows (the chain of windows equals one window)
    np.testing.assert_array_equal(strategy.weights(view, since=days[4])["X"].to_numpy() * 1000.0, [70, 85])
    np.testing.assert_array_equal(strategy.weights(view, since=days[2])["X"].to_numpy() * 1000.0, [33, 46, 70, 85])


def test_a_correction_at_the_same_known_at_replaces_the_first_print_everywhere(engine):
    days = _world(engine)
    ingest(engine, "prices", pd.DataFrame({"instrument_id": ["X"], "obs_date": [days[1]], "close": [31.0]}),
           correction=True)
    view = PointInTimeView(engine, days)
    w = CumulativeClose(universe="U", rebalance="daily").weights(view)["X"].to_numpy()
    np.testing.assert_array_equal(w * 1000.0, [10, 41, 53, 66, 80, 95])
    assert view.epoch_starts() == []


def test_no_value_is_visible_before_the_decision_of_its_own_valid_date(engine):
    """A 24/7 close of day 2 claiming known_at 00:00 UTC of day 2 (the decision time of day 1):
    ingest refuses it, and a row that got into the table anyway is still not served to day 1."""
    world.instruments(engine, ["P"], kind="perp", calendar="24/7", asset_class="crypto")
    days = world.sessions(3, calendar="24/7")
    world.prices(engine, days[:2], P=[100.0, 101.0])
    with engine.begin() as conn:  # bypasses ingest's refusal on purpose
        batch = conn.execute(sa.text("SELECT max(batch_id) FROM ingest_batches")).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO prices (instrument_id, obs_date, close, known_at, recorded_at, batch_id) "
            "VALUES ('P', :d, 500.0, :k, clock_timestamp(), :b)"),
            {"d": days[2].date(), "k": world.close_time(days[1], "24/7").to_pydatetime(), "b": batch})
    view = PointInTimeView(engine, days, calendar="24/7")
    # day 1 sees day 1's close; the row of day 2 shows from day 2's decision on
    np.testing.assert_array_equal(view.aligned_prices(["P"])["P"].to_numpy(), [100.0, 101.0, 500.0])
