"""Small frames for hand-worked engine tests, and the real 20-equity panel from the package."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

import macro_pipeline
from macro_pipeline.engine import BacktestConfig, calendar_sessions

EQUITIES_FILE = (
    Path(macro_pipeline.__file__).parent / "demo" / "data" / "us_equities_20_adjclose_daily.csv.gz"
)


def sessions(start: str, n: int, calendar: str = "XNYS") -> pd.DatetimeIndex:
    """The first ``n`` sessions of ``calendar`` on or after ``start``."""
    s = calendar_sessions(calendar)
    return s[s >= pd.Timestamp(start)][:n]


def panel(start: str, calendar: str = "XNYS", **columns: list[float]) -> pd.DataFrame:
    """A price (or weight) frame on consecutive sessions from ``start``: panel(A=[...], ...)."""
    n = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=sessions(start, n, calendar), dtype=float)


def weights_at(prices: pd.DataFrame, rows: dict[int, dict[str, float]]) -> pd.DataFrame:
    """Weights on the given session positions of ``prices`` (absent instruments = 0)."""
    idx = prices.index[list(rows)]
    return pd.DataFrame(list(rows.values()), index=idx, columns=prices.columns).fillna(0.0)


def config(**kw) -> BacktestConfig:
    """A frictionless, lag-1, daily config on 1,000 of capital unless overridden."""
    base = dict(
        start=None,
        end=None,
        initial_capital=1000.0,
        rebalance_frequency="daily",
        transaction_cost_bps=0.0,
        slippage_bps=0.0,
    )
    base.update(kw)
    return BacktestConfig(**base)


@lru_cache(maxsize=1)
def _equities() -> pd.DataFrame:
    return pd.read_csv(EQUITIES_FILE, parse_dates=["Date"], index_col="Date")


def equities() -> pd.DataFrame:
    """20 US large caps, adjusted closes, 1990-01-02..2022-12-28 (a copy, safe to modify)."""
    return _equities().copy()


def dirichlet_weights(
    index: pd.DatetimeIndex, columns: pd.Index, invested: float, seed: int
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(len(columns)), size=len(index)) * invested
    return pd.DataFrame(w, index=index, columns=columns)
