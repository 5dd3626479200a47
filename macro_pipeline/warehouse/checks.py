"""The queries of the asset checks (``defs/ingest/checks.py``, ``defs/backtest/checks.py``): each
counts the stored rows that break one invariant, so 0 means the check passes.
"""

from __future__ import annotations

import sqlalchemy as sa


def _count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


# --------------------------------------------------------------------------- ingested data


def bad_prices(engine: sa.Engine) -> int:
    """Stored prices whose close is not finite and positive, or whose high is below their low."""
    return _count(engine, "SELECT count(*) FROM prices WHERE NOT (close > 0 AND close < 'Infinity'::float8) "
                          "OR (high IS NOT NULL AND low IS NOT NULL AND high < low)")


def duplicate_price_keys(engine: sa.Engine) -> int:
    """(instrument, date, known_at, recorded_at) keys stored more than once in ``prices``."""
    return _count(engine, "SELECT count(*) FROM (SELECT 1 FROM prices GROUP BY instrument_id, obs_date, known_at, "
                          "recorded_at HAVING count(*) > 1) d")


# --------------------------------------------------------------------------- signals and backtests


def equity_invariant_violations(engine: sa.Engine) -> int:
    """Sessions of current successful runs where equity != cash + net exposure (relative 1e-6)."""
    return _count(engine,
                  "SELECT count(*) FROM daily_equity e JOIN backtest_runs r USING (run_id) "
                  "WHERE r.superseded_by IS NULL AND r.status = 'success' "
                  "AND abs(e.equity - e.cash - e.net_exposure * e.equity) > 1e-6 * greatest(abs(e.equity), 1)")


def decisions_over_leverage(engine: sa.Engine) -> int:
    """(snapshot, decision date) pairs whose gross weight exceeds 1.0."""
    return _count(engine, "SELECT count(*) FROM (SELECT snapshot_id, decision_date FROM signals "
                          "GROUP BY 1, 2 HAVING sum(abs(weight)) > 1.0 + 1e-9) o")


def lookahead_violations(engine: sa.Engine) -> int:
    """(run, input) pairs where an input watermark of the run's signal snapshot is later than the
    run's ``system_as_of``: the snapshot read data recorded after the run's watermark."""
    return _count(engine,
                  "SELECT count(*) FROM backtest_runs r JOIN signal_snapshots s ON s.snapshot_id = r.signal_snapshot_id, "
                  "LATERAL jsonb_each_text(s.input_watermarks) w(k, v) "
                  "WHERE w.v <> 'none' AND w.v::timestamptz > r.system_as_of")
