"""Point-in-time reads: every release ordering, future perturbation, look-ahead refusal."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.warehouse import pit
from macro_pipeline.warehouse.errors import LookAheadError
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline.warehouse.pit import PointInTimeReader

INSTRUMENTS = pd.DataFrame({
    "instrument_id": ["AAA", "BBB", "GDP", "PERP"],
    "asset_class": ["equity", "equity", "macro", "crypto"],
    "kind": ["spot", "spot", "macro", "perp"],
    "calendar": ["XNYS", "XNYS", "XNYS", "24/7"],
})
T = pd.Timestamp
K1 = T("2020-01-30 13:30", tz="UTC")  # first print
K2 = T("2020-02-27 13:30", tz="UTC")  # revision (and a correction of the revision, same known_at)
ROWS = {"first": (K1, 1.0), "revision": (K2, 2.0), "correction": (K2, 2.5)}


def _macro_row(known_at: pd.Timestamp, value: float) -> pd.DataFrame:
    return pd.DataFrame({"series_id": ["GDP"], "obs_date": ["2019-12-31"], "value": [value], "known_at": [known_at]})


def _oracle(recorded: list[tuple[str, pd.Timestamp]], a: pd.Timestamp, sys_as_of: pd.Timestamp) -> float | None:
    """DESIGN section 1 by brute force: greatest known_at <= a, ties by greatest recorded_at."""
    seen = [(ROWS[n][0], rec, ROWS[n][1]) for n, rec in recorded if ROWS[n][0] <= a and rec <= sys_as_of]
    return max(seen)[2] if seen else None


@pytest.mark.parametrize("order", list(itertools.permutations(ROWS)), ids="-".join)
def test_every_recording_order_of_print_revision_and_correction(databases, order):
    engine = databases.new()
    ingest(engine, "instruments", INSTRUMENTS)
    recorded = []
    for name in order:
        report = ingest(engine, "macro", _macro_row(*ROWS[name]))
        recorded.append((name, pd.Timestamp(report.recorded_at)))
    decision_times = [K1 - pd.Timedelta(hours=1), K1, K1 + pd.Timedelta(hours=1), K2 - pd.Timedelta(seconds=1), K2,
                      K2 + pd.Timedelta(days=30)]
    watermarks = [rec for _, rec in recorded] + [recorded[0][1] - pd.Timedelta(seconds=1)]
    for a in decision_times:
        for sys_as_of in watermarks:
            got = PointInTimeReader(engine, a, system_as_of=sys_as_of).macro(["GDP"])
            expected = _oracle(recorded, a, sys_as_of)
            if expected is None:
                assert got.empty, (a, sys_as_of)
            else:
                assert got["value"].tolist() == [expected], (order, a, sys_as_of)


def test_correction_visible_only_from_its_system_time(engine):
    ingest(engine, "instruments", INSTRUMENTS)
    ingest(engine, "macro", _macro_row(K2, 2.0))
    fixed = ingest(engine, "macro", _macro_row(K2, 2.5))
    a = K2 + pd.Timedelta(days=1)
    before = PointInTimeReader(engine, a, system_as_of=fixed.recorded_at - pd.Timedelta(microseconds=1))
    after = PointInTimeReader(engine, a, system_as_of=fixed.recorded_at)
    assert before.macro(["GDP"])["value"].tolist() == [2.0]
    assert after.macro(["GDP"])["value"].tolist() == [2.5]
    assert PointInTimeReader(engine, a).macro(["GDP"])["value"].tolist() == [2.5]


def _synthetic_world(engine, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    ingest(engine, "instruments", INSTRUMENTS)
    sessions = pd.bdate_range("2020-01-02", "2020-04-30")
    rows = []
    for iid in ("AAA", "BBB"):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(sessions))))
        rows.append(pd.DataFrame({"instrument_id": iid, "obs_date": sessions, "close": close}))
    ingest(engine, "prices", pd.concat(rows), name="prices")
    quarters = pd.to_datetime(["2019-09-30", "2019-12-31", "2020-03-31"])
    macro = []
    for q in quarters:
        for lag, err in ((30, 0.02), (60, 0.01), (90, 0.0)):
            macro.append((q, 100 + q.month + err, (q + pd.Timedelta(days=lag, hours=13, minutes=30)).tz_localize("UTC")))
    ingest(engine, "macro", pd.DataFrame(macro, columns=["obs_date", "value", "known_at"]).assign(series_id="GDP"))
    ts = pd.date_range("2020-01-01", "2020-04-30 16:00", freq="8h", tz="UTC")
    ingest(engine, "funding", pd.DataFrame({"instrument_id": "PERP", "ts": ts, "rate": rng.normal(1e-4, 1e-4, len(ts)), "interval_hours": 8.0}))
    ingest(engine, "universe", pd.DataFrame({"universe": "U", "instrument_id": ["AAA", "BBB"], "valid_from": ["2020-01-01", "2020-02-03"]}))


def _reads(engine, decision_times, system_as_of):
    out = []
    for a in decision_times:
        r = PointInTimeReader(engine, a, system_as_of=system_as_of)
        end = r.decision_date
        out.append((
            r.price_panel(["AAA", "BBB"], "2020-01-01", end),
            r.macro(["GDP"], None, end).drop(columns=["recorded_at"]),
            r.funding(["PERP"], None, r.decision_time).drop(columns=["recorded_at"]),
            r.universe("U", end).drop(columns=["recorded_at"]),
        ))
    return out


def test_future_perturbation_changes_nothing_up_to_d(engine):
    _synthetic_world(engine)
    D = T("2020-03-02 21:00", tz="UTC")
    decision_times = [T("2020-01-15 21:00", tz="UTC"), T("2020-02-14 21:00", tz="UTC"), D]
    base = _reads(engine, decision_times, system_as_of=None)
    # perturb the future: new values after D, revisions of OLD dates known after D, membership changes
    later = D + pd.Timedelta(days=1)
    ingest(engine, "prices", pd.DataFrame({
        "instrument_id": ["AAA", "AAA", "BBB"], "obs_date": ["2020-01-15", "2020-03-03", "2020-02-03"],
        "close": [1.0, 2.0, 3.0], "known_at": [later, later, later + pd.Timedelta(days=30)]}))
    ingest(engine, "macro", pd.DataFrame({"series_id": "GDP", "obs_date": ["2019-09-30", "2019-12-31"],
                                          "value": [-1.0, -2.0], "known_at": [later, later]}))
    ingest(engine, "funding", pd.DataFrame({"instrument_id": "PERP", "ts": ["2020-01-10T08:00:00Z"], "rate": [0.5],
                                            "interval_hours": [8.0], "known_at": [later]}))
    ingest(engine, "universe", pd.DataFrame({"universe": "U", "instrument_id": ["AAA"], "valid_from": ["2020-01-01"],
                                             "valid_to": ["2020-01-20"], "known_at": [later]}))
    after = _reads(engine, decision_times, system_as_of=None)
    for b, a in zip(base, after, strict=True):
        for left, right in zip(b, a, strict=True):
            pd.testing.assert_frame_equal(left.reset_index(drop=True), right.reset_index(drop=True))
    # and the perturbation is visible after D
    r = PointInTimeReader(engine, later + pd.Timedelta(days=1))
    assert r.price_panel(["AAA"], "2020-01-15", "2020-01-15")["AAA"].tolist() == [1.0]
    assert r.members("U", "2020-02-05") == ["BBB"]


def test_future_perturbation_on_real_demo_data(databases):
    from macro_pipeline.demo.load import load_demo

    engine = databases.new()
    load_demo(engine)
    D = T("2008-09-12 20:00", tz="UTC")
    tickers = ["AAPL", "JPM", "XOM", "SPX", "WTI"]
    decisions = [T("2008-06-30 20:00", tz="UTC"), D]

    def snapshot():
        out = []
        for a in decisions:
            r = PointInTimeReader(engine, a)
            out.append((r.price_panel(tickers, "2007-01-01", r.decision_date),
                        r.macro(["US_REALGDP", "US_CPI", "UST_10Y"], "2006-01-01", r.decision_date)[["series_id", "obs_date", "value", "known_at"]]))
        return out

    base = snapshot()
    with engine.connect() as conn:
        future = pd.read_sql("SELECT instrument_id, obs_date, close FROM prices WHERE instrument_id = ANY(%(t)s) AND obs_date > '2008-09-12'",
                             conn, params={"t": tickers})
        old = pd.read_sql("SELECT series_id, obs_date, value FROM macro_observations WHERE series_id='US_REALGDP' AND obs_date > '2007-01-01' AND obs_date < '2008-07-01'", conn)
    future["close"] *= 0.5  # a crash that never happened, known when it "happened"
    ingest(engine, "prices", future, correction=True)
    old = old.drop_duplicates(["series_id", "obs_date"]).assign(value=lambda f: f["value"] * 2, known_at=D + pd.Timedelta(days=1))
    ingest(engine, "macro", old)  # revisions of old quarters, released after D
    after = snapshot()
    for b, a in zip(base, after, strict=True):
        pd.testing.assert_frame_equal(b[0], a[0])
        pd.testing.assert_frame_equal(b[1].reset_index(drop=True), a[1].reset_index(drop=True))


def test_asking_for_the_future_raises_lookahead_naming_the_request(engine):
    _synthetic_world(engine)
    r = PointInTimeReader(engine, "2020-02-14 21:00Z")
    with pytest.raises(LookAheadError, match=r"prices for \['AAA'\] up to 2020-02-17"):
        r.price_panel(["AAA"], "2020-01-01", "2020-02-17")
    with pytest.raises(LookAheadError, match="macro"):
        r.macro(["GDP"], None, "2020-03-31")
    with pytest.raises(LookAheadError, match="funding"):
        r.funding(["PERP"], None, "2020-02-14 21:00:01Z")
    # the decision day itself is fine; what was not known yet is simply absent
    early = PointInTimeReader(engine, "2020-02-14 15:00Z")
    assert early.price_panel(["AAA"], "2020-02-13", "2020-02-14").index.max() == pd.Timestamp("2020-02-13")


def test_panel_is_one_set_based_query(engine, monkeypatch):
    _synthetic_world(engine)
    calls = []
    real = pit.copy_query
    monkeypatch.setattr(pit, "copy_query", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    panel = PointInTimeReader(engine, "2020-04-30 21:00Z").price_panel(["AAA", "BBB"], "2020-01-01", "2020-04-30")
    assert len(calls) == 1 and "DISTINCT ON" in calls[0]
    assert panel.shape == (len(pd.bdate_range("2020-01-02", "2020-04-30")), 2)


def test_system_as_of_reproduces_a_read_after_later_revisions(engine):
    _synthetic_world(engine)
    a = "2020-04-30 21:00Z"
    first = PointInTimeReader(engine, a)
    snap = first.price_panel(["AAA", "BBB"])
    ingest(engine, "prices", pd.DataFrame({"instrument_id": ["AAA"], "obs_date": ["2020-02-03"], "close": [999.0]}),
           correction=True)
    assert PointInTimeReader(engine, a).price_panel(["AAA"]).loc["2020-02-03", "AAA"] == 999.0
    pd.testing.assert_frame_equal(PointInTimeReader(engine, a, system_as_of=first.system_as_of).price_panel(["AAA", "BBB"]), snap)


def test_watermarks_and_universe_membership(engine):
    _synthetic_world(engine)
    r = PointInTimeReader(engine, "2020-02-14 21:00Z")
    assert r.members("U", "2020-01-31") == ["AAA"] and r.members("U") == ["AAA", "BBB"]
    marks = r.watermarks()
    assert marks["prices"] is not None and marks["corporate_actions"] is None
