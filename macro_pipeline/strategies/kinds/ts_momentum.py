"""``ts_momentum``: cross-asset time-series momentum with per-asset volatility targeting.

Inputs: aligned closes, universe membership.
Timing: row d uses closes known at the close of d; windows count rows (sessions).
Signal: s_i = sign(c_t / c_{t-lookback} - 1) (+1, -1, or 0 for no change); long-only
(s = max(s, 0)) unless ``allow_short``.
Sizing: sigma_i = realised volatility of the last ``vol_window`` log returns (ddof=1),
annualised with the calendar's periods per year (252 XNYS sessions, 365 days for 24/7);
raw w_i = s_i x target_vol / sigma_i (each asset sized to ``target_vol`` on its own); if
sum_i |w_i| > max_gross all are scaled by max_gross / sum_i |w_i|.
Parameters:
- ``lookback`` (int, default 252, 1..2520): rows of the momentum return.
- ``vol_window`` (int, default 63, 2..1000).
- ``target_vol`` (float, default 0.10, 0 < target_vol <= 2): annualised, per asset.
- ``max_gross`` (float, default 1.0, 0 < max_gross <= 10).
- ``allow_short`` (bool, default true).
- ``instruments`` (ids, default all members of the universe).
Outputs: weights with sum of absolute values <= max_gross; 0 until lookback and vol are known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from macro_pipeline.strategies.base import Strategy, periods_per_year
from macro_pipeline.strategies.features import realized_vol
from macro_pipeline.strategies.params import Ids, StrategyParams, param


class TsMomentumParams(StrategyParams):
    kind = "ts_momentum"
    lookback: int = param(
        252, "rows (sessions) of the trailing return whose sign is the signal", lo=1, hi=2520
    )
    vol_window: int = param(63, "rows of log returns for the realised volatility", lo=2, hi=1000)
    target_vol: float = param(
        0.10, "annualised volatility each position is sized to", lo=0.0, hi=2.0, lo_open=True
    )
    max_gross: float = param(
        1.0, "cap on the sum of absolute weights", lo=0.0, hi=10.0, lo_open=True
    )
    allow_short: bool = param(True, "short assets with a negative trailing return")
    instruments: Ids = param((), "trade only these members of the universe (empty: all)")


class TsMomentum(Strategy):
    kind = "ts_momentum"
    Params = TsMomentumParams
    default_universe = "CROSS_ASSET"

    def warmup_periods(self) -> int:
        return max(self.params.lookback, self.params.vol_window) + 1

    def compute(self, view, instruments, eligible) -> pd.DataFrame:
        p = self.params
        close = view.aligned_prices(instruments)
        signal = np.sign(close / close.shift(p.lookback) - 1.0).to_numpy()
        if not p.allow_short:
            signal = np.maximum(signal, 0.0)
        vol = realized_vol(close, p.vol_window, periods_per_year(view)).to_numpy()
        ready = eligible.to_numpy() & np.isfinite(signal) & np.isfinite(vol) & (vol > 0)
        raw = np.where(ready, signal * p.target_vol / np.where(ready, vol, 1.0), 0.0)
        gross = np.abs(raw).sum(axis=1, keepdims=True)
        scale = np.where(gross > p.max_gross, p.max_gross / np.where(gross > 0, gross, 1.0), 1.0)
        return pd.DataFrame(raw * scale, index=view.decision_dates, columns=instruments)
