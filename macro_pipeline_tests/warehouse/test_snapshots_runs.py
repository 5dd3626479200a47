"""Signal snapshots (content hash, immutability) and run storage (whole or nothing, supersede)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import psycopg2
import pytest
import sqlalchemy as sa

from macro_pipeline.warehouse.runs import list_runs, load_run, new_run_id, store_run
from macro_pipeline.warehouse.snapshots import SignalSnapshot, read_snapshot, write_snapshot
from macro_pipeline_tests.conftest import table_state


@pytest.fixture
def wh(results_wh):
    return results_wh


def snap(weights=None, **kw) -> SignalSnapshot:
    w = weights if weights is not None else pd.DataFrame(
        {"AAA": [0.5, 0.25, 1 / 3], "BBB": [0.5, 0.75, 0.1]}, index=pd.to_datetime(["2020-01-31", "2020-02-28", "2020-03-31"]))
    base = dict(strategy_id="s1", params_hash="h1", window_start=dt.date(2020, 1, 1), window_end=dt.date(2020, 3, 31),
                input_watermarks={"prices[AAA,BBB]": "2024-01-01T00:00:00+00:00"}, code_version="1")
    base.update(kw)
    return SignalSnapshot(weights=w, **base)


def test_same_inputs_same_id_and_any_change_a_new_one():
    a = snap()
    assert a.snapshot_id == snap().snapshot_id == snap(snap().weights[["BBB", "AAA"]]).snapshot_id
    changed = snap().weights.copy()
    changed.iloc[2, 0] = np.nextafter(changed.iloc[2, 0], 1)  # one ulp
    variants = [snap(changed), snap(params_hash="h2"), snap(window_end=dt.date(2020, 4, 1)), snap(code_version="2"),
                snap(input_watermarks={"prices[AAA,BBB]": "2024-01-02T00:00:00+00:00"})]
    ids = {v.snapshot_id for v in variants} | {a.snapshot_id}
    assert len(ids) == len(variants) + 1


def test_snapshot_round_trip_is_exact_and_writing_twice_is_a_noop(wh):
    s = snap()
    sid, new = write_snapshot(wh, s)
    before = table_state(wh)
    assert write_snapshot(wh, s) == (sid, False)
    assert table_state(wh) == before
    back = read_snapshot(wh, sid)
    assert back.snapshot_id == sid
    pd.testing.assert_frame_equal(back.weights, s.weights.sort_index(axis=1), check_freq=False, check_index_type=False)
    assert (back.weights.to_numpy() == s.weights.sort_index(axis=1).to_numpy()).all()  # exact float bits


def test_nan_weights_are_refused():
    w = snap().weights.copy()
    w.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _ = snap(w).snapshot_id


def _store(engine, sid, run_id=None, fills=None, clean=False):
    idx = pd.to_datetime(["2020-02-03", "2020-02-04"])
    eq = pd.DataFrame({"equity": [100.0, 101.0], "cash": [0.0, 0.0], "gross_exposure": [1.0, 1.0],
                       "net_exposure": [1.0, 1.0], "drawdown": [0.0, 0.0], "turnover": [1.0, 0.0]}, index=idx)
    fills = fills if fills is not None else pd.DataFrame({
        "date": idx[:1], "instrument": ["AAA"], "side": ["buy"], "quantity": [1.0], "price": [100.0],
        "notional": [100.0], "cost": [0.07], "reason": ["rebalance"]})
    trips = pd.DataFrame(columns=["instrument", "entry_date", "exit_date", "holding_days", "pnl", "return"])
    run_id = run_id or new_run_id()
    prev = store_run(engine, run_id=run_id, strategy_id="s1", window_start=dt.date(2020, 2, 1), window_end=dt.date(2020, 2, 29),
                     config={"clean": clean}, snapshot_id=sid, system_as_of=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                     engine_version="t", orchestrator_run_id=None, equity=eq, fills=fills, round_trips=trips,
                     metrics={"total_return": 0.01, "sharpe": float("nan")}, start_state=None, end_state={"cash": 0.0})
    return run_id, prev


def test_rerun_supersedes_in_one_transaction_and_one_current_result_remains(wh):
    sid, _ = write_snapshot(wh, snap())
    first, prev = _store(wh, sid)
    assert prev is None
    second, prev = _store(wh, sid)
    assert prev == first
    clean_run, prev = _store(wh, sid, clean=True)  # clean and realistic runs are separate results
    assert prev is None
    runs = list_runs(wh, "s1").set_index("run_id")
    assert runs.loc[first, "superseded_by"] == second and pd.isna(runs.loc[second, "superseded_by"])
    assert len(list_runs(wh, "s1", current_only=True)) == 2
    rec = load_run(wh, second)
    assert rec.metrics == {"total_return": 0.01, "sharpe": None} and len(rec.equity) == 2 and len(rec.fills) == 1


def test_a_crash_mid_write_leaves_the_previous_result_current_and_nothing_partial(wh):
    sid, _ = write_snapshot(wh, snap())
    first, _ = _store(wh, sid)
    before = table_state(wh)
    bad = pd.DataFrame({"date": pd.to_datetime(["2020-02-03"]), "instrument": ["AAA"], "side": ["sideways"],
                        "quantity": [1.0], "price": [1.0], "notional": [1.0], "cost": [0.0], "reason": ["x"]})
    with pytest.raises((sa.exc.DBAPIError, psycopg2.Error)):
        _store(wh, sid, fills=bad)  # fails after the run row and the supersede were written
    assert table_state(wh) == before
    assert list(list_runs(wh, "s1", current_only=True)["run_id"]) == [first]


def test_unknown_run_is_a_clear_error(wh):
    with pytest.raises(ValueError, match="no backtest run 'nope'"):
        load_run(wh, "nope")


def test_a_portfolio_level_fill_row_without_instrument_is_stored(wh):
    # the engine logs e.g. non_positive_equity with no instrument and no price; COPY used to read
    # the empty instrument as NULL and refuse the whole run
    sid, _ = write_snapshot(wh, snap())
    fills = pd.DataFrame({"date": pd.to_datetime(["2020-02-03", "2020-02-04"]), "instrument": ["AAA", None],
                          "side": ["buy", "none"], "quantity": [1.0, 0.0], "price": [100.0, np.nan],
                          "notional": [100.0, 0.0], "cost": [0.07, 0.0], "reason": ["rebalance", "non_positive_equity"]})
    run_id, _ = _store(wh, sid, fills=fills)
    stored = load_run(wh, run_id).fills
    assert len(stored) == 2 and list(stored["reason"]) == ["rebalance", "non_positive_equity"]
    assert stored["instrument_id"].iloc[1] == "" and pd.isna(stored["price"].iloc[1])


def test_a_pipeline_month_supersedes_every_current_run_of_that_month(wh):
    # the current month grows day by day, and a rerun after a revision starts from another state:
    # neither may leave two current runs for one month
    sid, _ = write_snapshot(wh, snap())
    idx = pd.to_datetime(["2020-02-03"])
    eq = pd.DataFrame({"equity": [100.0], "cash": [0.0], "gross_exposure": [1.0], "net_exposure": [1.0],
                       "drawdown": [0.0], "turnover": [1.0]}, index=idx)
    empty = pd.DataFrame(columns=["instrument", "entry_date", "exit_date", "holding_days", "pnl", "return"])
    fills = pd.DataFrame(columns=["date", "instrument", "side", "quantity", "price", "notional", "cost", "reason"])
    ids = []
    for end, state in ((dt.date(2020, 2, 3), None), (dt.date(2020, 2, 4), None), (dt.date(2020, 2, 4), {"cash": 5.0})):
        ids.append(new_run_id())
        store_run(wh, run_id=ids[-1], strategy_id="s1", window_start=dt.date(2020, 2, 3), window_end=end, config={},
                  snapshot_id=sid, system_as_of=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), engine_version="t",
                  orchestrator_run_id=None, equity=eq, fills=fills, round_trips=empty, metrics={}, start_state=state,
                  end_state={"cash": 0.0}, summary={"pipeline": True}, pipeline_month=True)
    assert list(list_runs(wh, "s1", current_only=True)["run_id"]) == [ids[-1]]


def test_a_month_never_continues_from_a_replaced_predecessor(wh):
    # two runs writing one strategy's chain at once: the later one read an end state that the
    # other replaced meanwhile; storing it must fail and leave nothing behind
    from macro_pipeline.warehouse.runs import ChainChanged

    sid, _ = write_snapshot(wh, snap())
    old, _ = _store(wh, sid)
    _store(wh, sid)  # supersedes `old`
    before = table_state(wh)
    idx = pd.to_datetime(["2020-03-02"])
    eq = pd.DataFrame({"equity": [100.0], "cash": [0.0], "gross_exposure": [1.0], "net_exposure": [1.0],
                       "drawdown": [0.0], "turnover": [0.0]}, index=idx)
    empty_trips = pd.DataFrame(columns=["instrument", "entry_date", "exit_date", "holding_days", "pnl", "return"])
    empty_fills = pd.DataFrame(columns=["date", "instrument", "side", "quantity", "price", "notional", "cost", "reason"])
    with pytest.raises(ChainChanged, match=f"the run it continues from \\({old}\\) was replaced"):
        store_run(wh, run_id=new_run_id(), strategy_id="s1", window_start=dt.date(2020, 3, 2), window_end=dt.date(2020, 3, 2),
                  config={}, snapshot_id=sid, system_as_of=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), engine_version="t",
                  orchestrator_run_id=None, equity=eq, fills=empty_fills, round_trips=empty_trips, metrics={},
                  start_state={"cash": 0.0}, end_state={"cash": 0.0}, summary={"pipeline": True}, pipeline_month=True,
                  continues=old)
    assert table_state(wh) == before


def test_a_reproduction_supersedes_nothing_and_names_the_current_run_it_reproduces(wh):
    sid, _ = write_snapshot(wh, snap())
    idx = pd.to_datetime(["2020-02-03"])
    eq = pd.DataFrame({"equity": [100.0], "cash": [0.0], "gross_exposure": [1.0], "net_exposure": [1.0],
                       "drawdown": [0.0], "turnover": [0.0]}, index=idx)
    trips = pd.DataFrame(columns=["instrument", "entry_date", "exit_date", "holding_days", "pnl", "return"])
    fills = pd.DataFrame(columns=["date", "instrument", "side", "quantity", "price", "notional", "cost", "reason"])

    def store(reproduction, **kw):
        run_id = new_run_id()
        prev = store_run(wh, run_id=run_id, strategy_id="s1", window_start=dt.date(2020, 2, 3), window_end=dt.date(2020, 2, 3),
                         config={}, snapshot_id=sid, system_as_of=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), engine_version="t",
                         orchestrator_run_id=None, equity=eq, fills=fills, round_trips=trips, metrics={}, start_state=None,
                         end_state=None, reproduction=reproduction, **kw)
        return run_id, prev

    orphan, prev = store(True)  # nothing current yet: reproduces nothing, and does not become current
    assert prev is None and list_runs(wh, "s1", current_only=True).empty
    current, prev = store(False)
    assert prev is None  # a reproduction is never superseded
    repro, prev = store(True)
    assert prev is None
    runs = list_runs(wh, "s1").set_index("run_id")
    assert runs.loc[repro, "reproduces"] == current and pd.isna(runs.loc[orphan, "reproduces"])
    assert runs["superseded_by"].isna().all()
    assert list(list_runs(wh, "s1", current_only=True)["run_id"]) == [current]
    with pytest.raises(ValueError, match="a pipeline month is never a reproduction"):
        store(True, pipeline_month=True, summary={"pipeline": True})
