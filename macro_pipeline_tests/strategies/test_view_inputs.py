"""The point-in-time view features strategies rely on, pinned on tiny worlds."""

from __future__ import annotations

import pandas as pd

from . import world


def test_membership_revision_known_later_does_not_reach_back(engine):
    """Regression: ``PointInTimeView.members`` took each interval's latest vintage and applied it
    only from that vintage's known_at, so a later revision (here: an end date announced at
    session 4) erased the membership of every decision before it was known."""
    d = world.sessions(8)
    world.instruments(engine, ["A", "B"])
    world.prices(engine, d, A=[1.0] * 8, B=[1.0] * 8)
    world.universe(engine, "U", {"A": (d[0], None)})
    # A's interval revised: it ends at d6, announced during session 4
    world.universe(engine, "U", {"A": (d[0], d[6], world.close_time(d[4]) - pd.Timedelta(hours=1))})
    # B: an interval starting at d0 that becomes known only during session 2
    world.universe(engine, "U", {"B": (d[0], None, world.close_time(d[2]) - pd.Timedelta(hours=1))})
    m = world.view(engine, d).members("U")
    assert m["A"].tolist() == [True] * 6 + [False] * 2
    assert m["B"].tolist() == [False] * 2 + [True] * 6


def test_aligned_macro_lag_is_the_earlier_observation_in_the_vintage_in_force(engine):
    d = world.sessions(6)
    world.instruments(
        engine, ["G"], kind="macro", asset_class="macro", release_rule="quarterly_30d"
    )
    k = [world.close_time(x) - pd.Timedelta(hours=3) for x in d]
    from macro_pipeline.warehouse.ingest import ingest

    ingest(
        engine,
        "macro",
        pd.DataFrame(
            {
                "series_id": "G",
                "obs_date": ["2020-09-30", "2020-12-31", "2020-09-30", "2021-01-31", "2020-12-31"],
                "value": [1.0, 2.0, 1.5, 3.0, 2.5],
                # Q3 and Q4 known long before; Q3 revised at session 1; a new obs at 3; Q4 revised at 4
                "known_at": [
                    pd.Timestamp("2020-11-01", tz="UTC"),
                    pd.Timestamp("2021-02-01", tz="UTC"),
                    k[1],
                    k[3],
                    k[4],
                ],
            }
        ),
    )
    v = world.view(engine, d)
    assert v.aligned_macro(["G"])["G"].tolist() == [2.0, 2.0, 2.0, 3.0, 3.0, 3.0]
    assert v.aligned_macro(["G"], lag=1)["G"].tolist() == [1.0, 1.5, 1.5, 2.0, 2.5, 2.5]
    assert v.aligned_macro(["G"], lag=2)["G"].isna().tolist() == [True] * 3 + [False] * 3
    assert v.aligned_macro(["G"], lag=2)["G"].iloc[3:].tolist() == [1.5, 1.5, 1.5]
