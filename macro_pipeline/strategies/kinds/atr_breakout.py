"""``atr_breakout``: Donchian channel breakout entries, ATR trailing-stop exits.

Inputs: aligned high, low and close. Where the data has OHLC (in the demo: SPX, NASDAQ) the
channel and the true range use the bar's high and low; where high/low are missing (close-only
series: equities, WTI, UST10_TR, BTC-PERP) they fall back to the close, cell by cell, so the
channel is a close-only channel and the true range is |c_t - c_{t-1}|.
Timing: row d uses bars known at the close of d; windows count rows (sessions).
Rules (stateful, row by row per instrument):
- channel: upper(t) = max(high over rows t-channel..t-1), lower(t) = min(low over the same rows)
  (the current bar is excluded, so a close above it is a breakout);
- entry from flat: long when close(t) > upper(t); short when ``allow_short`` and close(t) < lower(t);
  the stop starts at close -/+ atr_mult x ATR(t);
- exit: a long exits when close(t) < stop(t-1) (the stop in force before this close), a short
  when close(t) > stop(t-1); no re-entry on the row of an exit;
- trailing: a held long's stop ratchets up to max(stop, close - atr_mult x ATR), a short's down
  to min(stop, close + atr_mult x ATR);
- ATR: Wilder average of the true range over ``atr_window`` rows.
Sizing: each open position gets gross / n(t), n(t) = instruments eligible with a channel and ATR
on row t (fixed risk-free budget per instrument; a flat instrument's share stays in cash).
Parameters:
- ``channel`` (int, default 20, 2..500); ``atr_window`` (int, default 14, 1..500);
- ``atr_mult`` (float, default 3.0, 0 < atr_mult <= 20); ``allow_short`` (bool, default false);
- ``gross`` (float, default 1.0, 0 < gross <= 1); ``instruments`` (ids, default all members).
Outputs: weights in {-gross/n, 0, gross/n}.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from macro_pipeline.strategies.base import Strategy
from macro_pipeline.strategies.features import average_true_range
from macro_pipeline.strategies.params import Ids, StrategyParams, param


class AtrBreakoutParams(StrategyParams):
    kind = "atr_breakout"
    channel: int = param(
        20, "Donchian channel length in rows (sessions), current bar excluded", lo=2, hi=500
    )
    atr_window: int = param(14, "ATR length in rows (Wilder smoothing)", lo=1, hi=500)
    atr_mult: float = param(3.0, "trailing stop distance in ATRs", lo=0.0, hi=20.0, lo_open=True)
    allow_short: bool = param(False, "also trade downside breakouts")
    gross: float = param(
        1.0,
        "gross exposure if every eligible instrument is in a position",
        lo=0.0,
        hi=1.0,
        lo_open=True,
    )
    instruments: Ids = param((), "trade only these members of the universe (empty: all)")


class AtrBreakout(Strategy):
    kind = "atr_breakout"
    Params = AtrBreakoutParams
    default_universe = "CROSS_ASSET"

    def warmup_periods(self) -> int:
        return max(self.params.channel, self.params.atr_window) + 1

    def bars(self, view, instruments) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """(high, low, close) aligned; a missing high/low is the close (close-only fallback)."""
        close = view.aligned_prices(instruments, "close")
        high = view.aligned_prices(instruments, "high").fillna(close)
        low = view.aligned_prices(instruments, "low").fillna(close)
        return high, low, close

    def compute(self, view, instruments, eligible) -> pd.DataFrame:
        p = self.params
        high, low, close = self.bars(view, instruments)
        upper = high.shift(1).rolling(p.channel, min_periods=p.channel).max().to_numpy()
        lower = low.shift(1).rolling(p.channel, min_periods=p.channel).min().to_numpy()
        atr = average_true_range(high, low, close, p.atr_window).to_numpy()
        c = close.to_numpy()
        ok_all = (
            eligible.to_numpy()
            & np.isfinite(c)
            & np.isfinite(atr)
            & np.isfinite(upper)
            & np.isfinite(lower)
        )
        T, N = c.shape
        held = np.zeros((T, N))
        state = np.zeros(N)
        stop = np.full(N, np.nan)
        m = p.atr_mult
        for t in range(T):
            ok, ct, at = ok_all[t], c[t], atr[t]
            state[~ok] = 0.0
            stop[~ok] = np.nan
            with np.errstate(invalid="ignore"):
                out = ((state > 0) & (ct < stop)) | ((state < 0) & (ct > stop))
                state[out] = 0.0
                stop[out] = np.nan
                longs, shorts = state > 0, state < 0
                stop[longs] = np.maximum(stop[longs], ct[longs] - m * at[longs])
                stop[shorts] = np.minimum(stop[shorts], ct[shorts] + m * at[shorts])
                flat = (state == 0) & ok & ~out
                go_long = flat & (ct > upper[t])
                go_short = flat & (ct < lower[t]) & p.allow_short
            state[go_long], stop[go_long] = 1.0, ct[go_long] - m * at[go_long]
            state[go_short], stop[go_short] = -1.0, ct[go_short] + m * at[go_short]
            held[t] = state
        n = ok_all.sum(axis=1, keepdims=True)
        w = np.where(n > 0, held * p.gross / np.maximum(n, 1), 0.0)
        return pd.DataFrame(w, index=view.decision_dates, columns=instruments)
