"""Rolling features down aligned (decision-date x instrument) frames.

Every function here reads a row and rows above it only, so applied to an aligned frame (each
cell known at its own decision time) the feature at row t uses nothing known after a(t).
Windows count rows. NaN (nothing known yet) propagates; no forward filling happens here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


def shared(view: Any, key: tuple, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``compute()``, memoised on ``view`` when the view keeps a feature cache (a parameter
    sweep's ``research.sweep.SharedView``: one view, many configurations of a kind; the same EMA
    span or volatility window is then computed once, not once per configuration). The key is
    the view's vintage epoch plus ``key``, which must name everything the feature reads (data,
    instruments, window): within one epoch a view serves fixed data. Callers must not mutate the
    frame returned. A plain view has no cache: ``compute()`` every time."""
    cache = getattr(view, "feature_cache", None)
    if cache is None:
        return compute()
    full = (view.feature_epoch(), *key)
    got = cache.get(full)
    if got is None:
        got = cache[full] = compute()
    return got


def log_returns(close: pd.DataFrame) -> pd.DataFrame:
    """log(c_t / c_{t-1}) per column; NaN on the first row and before a series starts."""
    return np.log(close).diff()


def realized_vol(close: pd.DataFrame, window: int, periods_per_year: int) -> pd.DataFrame:
    """Annualised realised volatility: std (ddof=1) of the last ``window`` log returns (rows
    t-window+1..t) x sqrt(periods_per_year); NaN until ``window`` returns exist."""
    return log_returns(close).rolling(window, min_periods=window).std(ddof=1) * np.sqrt(
        periods_per_year
    )


def wilder(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's smoothing per column: the first value is the simple mean of a column's first
    ``n`` non-NaN inputs (at the row of the n-th), then ``s_t = (s_{t-1} (n - 1) + x_t) / n``.
    A NaN input after the seed leaves the average unchanged; before it, NaN is output."""
    x = np.asarray(x, dtype="float64")
    T, N = x.shape
    out = np.full((T, N), np.nan)
    prev = np.full(N, np.nan)
    acc = np.zeros(N)
    count = np.zeros(N, dtype=np.int64)
    for t in range(T):
        xt = x[t]
        ok = ~np.isnan(xt)
        seeding = ok & np.isnan(prev)
        updating = ok & ~seeding
        acc[seeding] += xt[seeding]
        count[seeding] += 1
        done = seeding & (count == n)
        prev[done] = acc[done] / n
        prev[updating] = (prev[updating] * (n - 1) + xt[updating]) / n
        out[t] = prev
    return out


def wilder_rsi(close: pd.DataFrame, window: int) -> pd.DataFrame:
    """Wilder's RSI in [0, 100]: 100 - 100 / (1 + AG / AL), AG and AL the Wilder averages of
    gains max(dc, 0) and losses max(-dc, 0) of close-to-close changes dc. AL = 0: 100 (50 if
    AG = 0 too). First value at the row of the ``window``-th change."""
    dc = close.diff().to_numpy()
    gains = np.where(np.isnan(dc), np.nan, np.maximum(dc, 0.0))
    losses = np.where(np.isnan(dc), np.nan, np.maximum(-dc, 0.0))
    ag, al = wilder(gains, window), wilder(losses, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100.0 - 100.0 / (1.0 + ag / al)
    rsi = np.where((al == 0) & (ag > 0), 100.0, rsi)
    rsi = np.where((al == 0) & (ag == 0), 50.0, rsi)
    return pd.DataFrame(rsi, index=close.index, columns=close.columns)


def true_range(high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame) -> pd.DataFrame:
    """max(h - l, |h - c_{t-1}|, |l - c_{t-1}|); NaN where there is no previous close."""
    prev = close.shift(1)
    tr = np.maximum(high - low, np.maximum((high - prev).abs(), (low - prev).abs()))
    return tr.where(prev.notna())


def average_true_range(
    high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame, window: int
) -> pd.DataFrame:
    """Wilder-smoothed true range over ``window`` rows."""
    tr = true_range(high, low, close)
    return pd.DataFrame(wilder(tr.to_numpy(), window), index=close.index, columns=close.columns)


def hysteresis(enter: np.ndarray, leave: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """In/out state per column, row by row: a flat column enters where ``enter``; an open one
    leaves where ``leave`` (checked before entries, so it cannot re-enter on the row it left);
    where not ``valid`` the state is flat."""
    T, N = enter.shape
    held = np.zeros((T, N), dtype=bool)
    state = np.zeros(N, dtype=bool)
    for t in range(T):
        ok = valid[t]
        state &= ok
        out = state & leave[t]
        state = (state & ~out) | (~state & ~out & ok & enter[t])
        held[t] = state
    return held


def equal_weight(held: np.ndarray, gross: float) -> np.ndarray:
    """gross / (number held on the row) for each held cell, 0 elsewhere."""
    n = held.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(held, gross / np.maximum(n, 1), 0.0)
