"""References of the bulk result tables, checked per statement (sql/010): a row whose parent is
missing fails its statement as a foreign key would, naming table, column and value; a parent that
is still referenced cannot be deleted or truncated; a valid stretch stores as before."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import psycopg2
import pytest
import sqlalchemy as sa

from macro_pipeline.warehouse.snapshots import SignalSnapshot, write_snapshots_in
from macro_pipeline_tests.conftest import table_state

RUN = "0" * 32


def _snap(instrument: str = "AAA", month: int = 1) -> SignalSnapshot:
    w = pd.DataFrame({instrument: [0.5, 0.25]}, index=pd.to_datetime([f"2020-{month:02d}-10", f"2020-{month:02d}-20"]))
    return SignalSnapshot("s1", "h1", dt.date(2020, month, 1), dt.date(2020, month, 28), {"prices": "x"}, "1", w)


REFUSED = (sa.exc.IntegrityError, psycopg2.errors.ForeignKeyViolation)  # a raw COPY raises the driver's error


def _violation(excinfo) -> psycopg2.Error:
    orig = getattr(excinfo.value, "orig", excinfo.value)
    assert isinstance(orig, psycopg2.errors.ForeignKeyViolation)
    return orig


def test_a_stretch_of_snapshots_stores_and_a_missing_instrument_fails_the_whole_statement(results_wh):
    with results_wh.begin() as conn:
        stored = write_snapshots_in(conn, [_snap(month=1), _snap("BBB", month=2)])
    assert [new for _, new in stored] == [True, True]
    before = table_state(results_wh)
    with pytest.raises(REFUSED) as excinfo, results_wh.begin() as conn:
        write_snapshots_in(conn, [_snap(month=3), _snap("ZZZ", month=4)])
    message = str(_violation(excinfo))
    assert "signals.instrument_id -> instruments.instrument_id" in message and "ZZZ" in message
    assert table_state(results_wh) == before  # nothing of the failed stretch stayed


@pytest.mark.parametrize("table, columns, values", [
    ("daily_equity", "run_id, session_date, equity, cash, gross_exposure, net_exposure, drawdown, turnover",
     f"'{RUN}', '2020-01-02', 1, 1, 0, 0, 0, 0"),
    ("fills", "run_id, fill_no, session_date, instrument_id, side, quantity, price, notional, cost, reason",
     f"'{RUN}', 1, '2020-01-02', 'AAA', 'buy', 1, 1, 1, 0, 'rebalance'"),
    ("round_trips", "run_id, trip_no, instrument_id, entry_date, exit_date, holding_days, pnl",
     f"'{RUN}', 1, 'AAA', '2020-01-02', '2020-01-03', 1, 0"),
    ("metrics", "run_id, metric_name, value", f"'{RUN}', 'sharpe', 1"),
])
def test_run_rows_without_their_run_are_refused(results_wh, table, columns, values):
    with pytest.raises(REFUSED) as excinfo, results_wh.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO {table} ({columns}) VALUES ({values})")
    assert f"{table}.run_id -> backtest_runs.run_id" in str(_violation(excinfo)) and RUN in str(excinfo.value)


def test_a_referenced_parent_cannot_be_deleted_or_truncated(results_wh):
    with results_wh.begin() as conn:
        (sid, _), = write_snapshots_in(conn, [_snap()])
    with pytest.raises(REFUSED) as excinfo, results_wh.begin() as conn:
        conn.execute(sa.text("DELETE FROM signal_snapshots WHERE snapshot_id = :s"), {"s": sid})
    assert "still referenced" in str(_violation(excinfo))
    with pytest.raises(REFUSED), results_wh.begin() as conn:
        conn.exec_driver_sql("DELETE FROM instruments WHERE instrument_id = 'AAA'")
    with pytest.raises(REFUSED), results_wh.begin() as conn:
        conn.exec_driver_sql("TRUNCATE signal_snapshots CASCADE")
    with results_wh.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM signals WHERE snapshot_id = :s"), {"s": sid}).scalar() == 2
