"""Full as-of vintages (DESIGN section 1): a decision at a(d) is computed over the data as known
at a(d), every past fact in its latest vintage known then, for every built-in configuration.

The three worlds live in one demo warehouse, told apart by ``system_as_of``:
- good: the demo data as stored;
- bad: then a bad first print is stored as a correction at the original known_at (a bad tick on
  a traded price, a wrong macro first print, a wrong funding settlement);
- corrected: then the good value is stored again as a revision known at t.

Bit for bit, the corrected world's weights equal the bad world's on every decision before t
and the good world's on every decision from t on: a correction reaches every later decision
and none before it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from macro_pipeline.strategies import build, load_builtin_configs
from macro_pipeline.warehouse.calendars import session_closes
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline.warehouse.pit import current_watermark
from macro_pipeline.warehouse.view import PointInTimeView
from macro_pipeline_tests.conftest import demo_with_strategies

CONFIGS = {c.strategy_id: c for c in load_builtin_configs()}
# per configuration: (first decision, bad date v, correction time t, last decision), and what
# goes bad: ("prices", instrument) / ("macro", None: the growth series) / ("funding", instrument).
# Each case has its own date and t: the cases share one warehouse.
CASES = {
    "bh-us-eq20": ("2014-01-02", "2015-03-10", "2015-04-14T15:00Z", "2016-06-30", ("prices", "AAPL")),
    "ema-us-eq20": ("2014-01-02", "2015-03-11", "2015-04-15T15:00Z", "2016-06-30", ("prices", "AAPL")),
    "rsi-us-eq20": ("2014-01-02", "2015-03-12", "2015-03-16T15:00Z", "2016-06-30", ("prices", "AAPL")),
    "atr-index": ("2014-01-02", "2015-03-10", "2015-04-14T15:00Z", "2016-06-30", ("prices", "SPX")),
    "tsmom-cross-asset": ("2014-01-02", "2015-03-13", "2015-05-14T15:00Z", "2016-06-30", ("prices", "SPX")),
    "external-demo": ("2014-01-02", "2015-03-16", "2015-04-16T15:00Z", "2016-06-30", ("prices", "AAPL")),
    "macro-regime": ("2004-01-02", "2005-12-31", "2006-02-15T15:00Z", "2009-12-31", ("macro", None)),
    "carry-simple": ("2015-01-01", "2016-02-10T08:00Z", "2016-02-20T12:00Z", "2016-06-30", ("funding", "BTC-PERP")),
    "carry-composite": ("2015-01-01", "2016-02-11T08:00Z", "2016-02-21T12:00Z", "2016-06-30", ("funding", "BTC-PERP")),
}


def _read(engine, sql: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(sa.text(sql), params).mappings().all())


def _dates(cfg, first: str, last: str) -> pd.DatetimeIndex:
    if cfg.calendar == "24/7":
        return pd.date_range(first, last, freq="D")
    s = session_closes(cfg.calendar).index
    return pd.DatetimeIndex(s[(s >= pd.Timestamp(first)) & (s <= pd.Timestamp(last))])


def _weights(engine, cfg, dates, system_as_of) -> tuple[pd.DataFrame, PointInTimeView, int]:
    view = PointInTimeView(engine, dates, calendar=cfg.calendar, system_as_of=system_as_of)
    strategy = build(cfg)
    return strategy.weights(view), view, strategy.epochs


def _corrupt(engine, cfg, what: tuple[str, str | None], bad: str, t: str) -> None:
    """Store the bad first print (a correction at the original known_at), then the good value
    again as a revision known at ``t``."""
    source, entity = what
    if source == "prices":
        row = _read(engine, "SELECT instrument_id, obs_date, open, high, low, close, volume, known_at FROM prices "
                            "WHERE instrument_id = :i AND obs_date = :d ORDER BY recorded_at DESC LIMIT 1",
                    i=entity, d=pd.Timestamp(bad).date())
        assert len(row) == 1, f"no {entity} price on {bad}"
        worse = row.copy()
        for c in ("open", "high", "low", "close"):
            worse[c] = worse[c].astype(float) * 1.6  # a bad tick: 60% too high
        ingest(engine, "prices", worse, correction=True)
        good = row.assign(known_at=pd.Timestamp(t))
        ingest(engine, "prices", good)
    elif source == "macro":
        series = build(cfg).params.growth_series
        row = _read(engine, "SELECT series_id, obs_date, value, known_at FROM macro_observations "
                            "WHERE series_id = :s AND obs_date = :d ORDER BY known_at, recorded_at LIMIT 1",
                    s=series, d=pd.Timestamp(bad).date())
        assert len(row) == 1, f"no {series} print for {bad}"
        ingest(engine, "macro", row.assign(value=row["value"].astype(float) * 0.9), correction=True)
        ingest(engine, "macro", row.assign(known_at=pd.Timestamp(t)))
    else:
        row = _read(engine, "SELECT instrument_id, ts, rate, interval_hours, known_at FROM funding_rates "
                            "WHERE instrument_id = :i AND ts = :ts ORDER BY recorded_at DESC LIMIT 1",
                    i=entity, ts=pd.Timestamp(bad).to_pydatetime())
        assert len(row) == 1, f"no {entity} settlement at {bad}"
        ingest(engine, "funding", row.assign(rate=0.004), correction=True)  # a wrong, very high rate
        ingest(engine, "funding", row.assign(known_at=pd.Timestamp(t)))


@pytest.fixture(scope="module")
def warehouse(databases):
    return demo_with_strategies(databases)


@pytest.mark.slow
@pytest.mark.parametrize("strategy_id", sorted(CASES))
def test_a_correction_reaches_every_later_decision_and_none_before(warehouse, strategy_id):
    engine = warehouse
    cfg = CONFIGS[strategy_id]
    first, bad, t, last, what = CASES[strategy_id]
    dates = _dates(cfg, first, last)
    good_mark = current_watermark(engine)
    _corrupt(engine, cfg, what, bad, t)  # each test corrupts its own entity and date
    with engine.connect() as conn:
        marks = conn.execute(sa.text("SELECT max(recorded_at) FROM ingest_batches")).scalar()
    corrected_mark = current_watermark(engine)
    # the bad world: every batch of this test but the last (the revision)
    with engine.connect() as conn:
        batches = conn.execute(sa.text("SELECT recorded_at FROM ingest_batches WHERE recorded_at > :g "
                                       "ORDER BY recorded_at"), {"g": good_mark.to_pydatetime()}).scalars().all()
    assert len(batches) == 2 and pd.Timestamp(marks) == pd.Timestamp(batches[-1])
    bad_mark = pd.Timestamp(batches[0])

    good, _, good_epochs = _weights(engine, cfg, dates, good_mark)
    worse, _, _ = _weights(engine, cfg, dates, bad_mark)
    fixed, view, epochs = _weights(engine, cfg, dates, corrected_mark)
    assert epochs == good_epochs + 1  # the revision starts one more epoch

    times = view.decision_times.dt.tz_convert(None).to_numpy()
    split = int(np.searchsorted(times, pd.Timestamp(t).tz_convert(None).to_datetime64(), side="left"))
    assert 0 < split < len(dates)
    before, after = slice(0, split), slice(split, None)
    np.testing.assert_array_equal(fixed.iloc[before].to_numpy(), worse.iloc[before].to_numpy(),
                                  err_msg="a decision before the correction must see the bad value")
    np.testing.assert_array_equal(fixed.iloc[after].to_numpy(), good.iloc[after].to_numpy(),
                                  err_msg="a decision from the correction on must equal the world without it")
    # the bad value mattered somewhere after t for the path-dependent kinds: otherwise this test
    # would hold trivially (the same bad value in real time keeps changing later decisions)
    if strategy_id in ("ema-us-eq20", "atr-index", "tsmom-cross-asset", "macro-regime",
                       "carry-composite"):
        assert not np.array_equal(worse.iloc[after].to_numpy(), good.iloc[after].to_numpy()), \
            f"{strategy_id}: the bad input changed no decision after t; pick a case that shows the correction"
