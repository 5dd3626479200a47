"""A small synthetic world with every fact kind, for the point-in-time sensor oracle.

2019-01 .. 2020-02, daily: XNYS equities (one with OHLC, a split, a dividend), a 24/7 perp and
its spot leg, 8-hourly funding of the perp, two quarterly macro series (first print by the
release rule, a revision 30 days later), two universes (EQ, CRYPTO) and two external signals of
different names (SIG_A, SIG_B) on the same instruments. Everything goes through the real
``ingest`` path, as CSV files. Values are deterministic pseudo-random walks (fixed seeds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.strategies.config import StrategyConfig
from macro_pipeline.warehouse.calendars import session_closes
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline.warehouse.view import decision_times

FIRST, LAST = "2019-01-01", "2020-02-29"
XNYS_DAYS = pd.DatetimeIndex([d for d in session_closes("XNYS").index if FIRST <= str(d.date()) <= LAST])
CRYPTO_DAYS = pd.date_range(FIRST, LAST, freq="D")
EQUITIES = ("EQA", "EQB", "EQC", "EQD", "EQE", "EQX")  # EQD joins EQ in 2019-09; EQE, EQX are in no universe
SPLIT = ("EQB", "2019-06-03", 2.0)  # 2-for-1: closes halve from the ex-date
DIVIDEND = ("EQA", "2019-08-01", 0.5)


def decision_time(day: str | pd.Timestamp, calendar: str = "XNYS") -> pd.Timestamp:
    """a(d): the decision time of session ``day`` (XNYS: its real close; 24/7: 00:00 UTC of d+1)."""
    return decision_times(pd.DatetimeIndex([pd.Timestamp(day)]), calendar).iloc[0]


def _walk(seed: int, n: int, start: float, vol: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0.0003, vol, n)))


def frames() -> dict[str, list[pd.DataFrame]]:
    """Every file of the world, per ingest kind, in ingest order."""
    instruments = pd.DataFrame(
        [{"instrument_id": i, "asset_class": "equity", "kind": "spot", "calendar": "XNYS"} for i in EQUITIES]
        + [{"instrument_id": "PERP", "asset_class": "crypto", "kind": "perp", "calendar": "24/7"},
           {"instrument_id": "SPOT", "asset_class": "crypto", "kind": "spot", "calendar": "24/7"},
           {"instrument_id": "GDP", "asset_class": "macro", "kind": "macro", "calendar": "XNYS"},
           {"instrument_id": "CPI", "asset_class": "macro", "kind": "macro", "calendar": "XNYS"}])
    n = len(XNYS_DAYS)
    prices = []
    for k, iid in enumerate(EQUITIES):
        close = _walk(10 + k, n, 50.0 + 10 * k, 0.018)
        if iid == SPLIT[0]:
            close = np.where(XNYS_DAYS >= pd.Timestamp(SPLIT[1]), close / SPLIT[2], close)
        f = pd.DataFrame({"instrument_id": iid, "obs_date": XNYS_DAYS.strftime("%Y-%m-%d"), "close": close})
        if iid == "EQA":  # OHLC: the ATR breakout uses high and low where they exist
            spread = np.random.default_rng(99).uniform(0.002, 0.02, n)
            f["open"], f["high"], f["low"] = close, close * (1 + spread), close * (1 - spread)
        prices.append(f)
    perp = _walk(20, len(CRYPTO_DAYS), 4000.0, 0.035)
    for iid, basis in (("PERP", 1.0), ("SPOT", 0.999)):
        prices.append(pd.DataFrame({"instrument_id": iid, "obs_date": CRYPTO_DAYS.strftime("%Y-%m-%d"),
                                    "close": perp * basis}))
    ts = pd.date_range("2019-01-01T08:00Z", "2020-03-01T00:00Z", freq="8h")
    rng = np.random.default_rng(30)
    rate = 0.00006 + 0.00008 * np.sin(np.arange(len(ts)) / 40.0) + rng.normal(0, 0.00003, len(ts))
    funding = pd.DataFrame({"instrument_id": "PERP", "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "rate": rate,
                            "interval_hours": 8.0})
    quarters = pd.date_range("2017-01-01", "2019-10-01", freq="QS")
    rng = np.random.default_rng(40)
    gdp = 100 * np.cumprod(1 + rng.normal(0.006, 0.004, len(quarters)))
    cpi = 100 * np.cumprod(1 + rng.normal(0.0065, 0.002, len(quarters)))
    first = pd.concat([pd.DataFrame({"series_id": s, "obs_date": quarters.strftime("%Y-%m-%d"), "value": v})
                       for s, v in (("GDP", gdp), ("CPI", cpi))], ignore_index=True)
    revised = first.assign(value=first["value"] * (1 + np.random.default_rng(41).normal(0, 0.002, len(first))))
    quarter_end = pd.to_datetime(revised["obs_date"]).dt.to_period("Q").dt.end_time.dt.normalize()
    revised["known_at"] = (quarter_end + pd.Timedelta(days=60, hours=12, minutes=30)).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    universe = pd.DataFrame(
        [{"universe": "EQ", "instrument_id": i, "valid_from": "2019-01-02"} for i in ("EQA", "EQB", "EQC")]
        + [{"universe": "EQ", "instrument_id": "EQD", "valid_from": "2019-09-03"}]
        + [{"universe": "CRYPTO", "instrument_id": i, "valid_from": "2019-01-01"} for i in ("PERP", "SPOT")])
    actions = pd.DataFrame([{"instrument_id": SPLIT[0], "ex_date": SPLIT[1], "action": "split", "value": SPLIT[2]},
                            {"instrument_id": DIVIDEND[0], "ex_date": DIVIDEND[1], "action": "dividend",
                             "value": DIVIDEND[2]}])
    wednesdays = XNYS_DAYS[XNYS_DAYS.dayofweek == 2]
    signals = []
    for name, seed in (("SIG_A", 50), ("SIG_B", 51)):
        rng = np.random.default_rng(seed)
        for iid in ("EQA", "EQB", "EQC", "EQD"):
            signals.append(pd.DataFrame({"signal_name": name, "instrument_id": iid,
                                         "obs_date": wednesdays.strftime("%Y-%m-%d"),
                                         "value": np.round(rng.uniform(-0.2, 0.4, len(wednesdays)), 4)}))
    return {"instruments": [instruments], "prices": [pd.concat(prices, ignore_index=True)], "funding": [funding],
            "macro": [first, revised], "universe": [universe], "corporate-actions": [actions],
            "signals": [pd.concat(signals, ignore_index=True)]}


def ingest_csv(engine: sa.Engine, kind: str, frame: pd.DataFrame, folder: Path, name: str) -> None:
    """Write ``frame`` as a CSV file and ingest the file (the real path: read, validate, store)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    ingest(engine, kind, path)


def load_world(engine: sa.Engine, folder: Path) -> None:
    for kind in ("instruments", "prices", "funding", "macro", "universe", "corporate-actions", "signals"):
        for n, frame in enumerate(frames()[kind]):
            ingest_csv(engine, kind, frame, folder, f"{kind}-{n}")


STRATEGIES = (
    StrategyConfig("o-bh", "buy_and_hold", {}, universe="EQ", rebalance="monthly", calendar="XNYS"),
    StrategyConfig("o-ema", "ema_crossover", {"fast": 5, "slow": 20, "vol_window": 10}, universe="EQ",
                   rebalance="daily", calendar="XNYS"),
    StrategyConfig("o-rsi", "rsi_mean_revert", {"window": 5, "entry": 40.0, "exit": 60.0}, universe="EQ",
                   rebalance="daily", calendar="XNYS"),
    StrategyConfig("o-atr", "atr_breakout", {"channel": 10, "atr_window": 5, "atr_mult": 2.0}, universe="EQ",
                   rebalance="daily", calendar="XNYS"),
    StrategyConfig("o-tsmom", "ts_momentum", {"lookback": 20, "vol_window": 10}, universe="EQ",
                   rebalance="weekly", calendar="XNYS"),
    StrategyConfig("o-macro", "macro_regime",
                   {"growth_series": "GDP", "inflation_series": "CPI", "inflation_measure": "yoy_index",
                    "growth_threshold": 0.02, "inflation_threshold": 0.025, "equity": "EQA", "bond": "EQB",
                    "commodity": "EQC", "max_staleness_days": 200}, universe="EQ", rebalance="daily", calendar="XNYS"),
    StrategyConfig("o-carry", "funding_carry", {"mode": "simple", "instrument": "PERP", "hedge": "SPOT",
                                                 "lookback": 3, "entry_threshold": 0.00005, "exit_threshold": 0.0},
                   universe="CRYPTO", rebalance="daily", calendar="24/7"),
    StrategyConfig("o-ext", "external", {"signal_name": "SIG_A"}, universe="EQ", rebalance="daily", calendar="XNYS"),
)
