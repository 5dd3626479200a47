"""Asset checks: data the backtests rely on, and invariants of what they stored.

Blocking checks stop downstream materializations when a failure would make results wrong.
Each check is one SQL query over the warehouse (no business math here).
"""

import dagster as dg
import sqlalchemy as sa

from macro_pipeline.defs.resources import WarehouseResource


def _count(warehouse: WarehouseResource, sql: str) -> int:
    with warehouse.engine().connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


@dg.asset_check(asset="prices", blocking=True, description="Every stored price is finite and positive; high >= low.")
def prices_positive_and_finite(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    bad = _count(warehouse, "SELECT count(*) FROM prices WHERE NOT (close > 0 AND close < 'Infinity'::float8) "
                            "OR (high IS NOT NULL AND low IS NOT NULL AND high < low)")
    return dg.AssetCheckResult(passed=bad == 0, metadata={"bad_rows": bad})


@dg.asset_check(asset="prices", blocking=True, description="No duplicate (instrument, date, known_at, recorded_at) keys.")
def prices_no_duplicate_keys(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    dups = _count(warehouse, "SELECT count(*) FROM (SELECT 1 FROM prices GROUP BY instrument_id, obs_date, known_at, "
                             "recorded_at HAVING count(*) > 1) d")
    return dg.AssetCheckResult(passed=dups == 0, metadata={"duplicate_keys": dups})


@dg.asset_check(asset="backtest", blocking=True,
                description="equity == cash + net exposure at every stored session of every current run.")
def backtest_equity_invariant(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    bad = _count(warehouse,
                 "SELECT count(*) FROM daily_equity e JOIN backtest_runs r USING (run_id) "
                 "WHERE r.superseded_by IS NULL AND r.status = 'success' "
                 "AND abs(e.equity - e.cash - e.net_exposure * e.equity) > 1e-6 * greatest(abs(e.equity), 1)")
    return dg.AssetCheckResult(passed=bad == 0, metadata={"violating_sessions": bad})


@dg.asset_check(asset="signals", description="Gross weight of every decision within max leverage (1.0); the "
                                             "engine scales larger rows down, so this warns rather than blocks.")
def signals_within_leverage(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    over = _count(warehouse, "SELECT count(*) FROM (SELECT snapshot_id, decision_date FROM signals "
                             "GROUP BY 1, 2 HAVING sum(abs(weight)) > 1.0 + 1e-9) o")
    return dg.AssetCheckResult(passed=over == 0, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"decisions_over_leverage": over})


@dg.asset_check(asset="signals", blocking=True,
                description="No look-ahead: no snapshot read data recorded after the watermark of a run that used it.")
def signals_no_lookahead(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    # every input watermark of a snapshot must be <= the system_as_of of each run consuming it
    bad = _count(warehouse,
                 "SELECT count(*) FROM backtest_runs r JOIN signal_snapshots s ON s.snapshot_id = r.signal_snapshot_id, "
                 "LATERAL jsonb_each_text(s.input_watermarks) w(k, v) "
                 "WHERE w.v <> 'none' AND w.v::timestamptz > r.system_as_of")
    return dg.AssetCheckResult(passed=bad == 0, metadata={"violations": bad})


ASSET_CHECKS = [prices_positive_and_finite, prices_no_duplicate_keys, backtest_equity_invariant,
                signals_within_leverage, signals_no_lookahead]
