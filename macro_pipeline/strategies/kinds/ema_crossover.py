"""``ema_crossover``: trend following per instrument on a fast/slow EMA cross of closes.

Inputs: aligned closes (the latest close known at each decision), universe membership.
Timing: row d uses closes known at the close of d; windows count rows of the view (sessions).
Signal: s = +1 where EMA_fast > EMA_slow, -1 where EMA_fast < EMA_slow and ``allow_short``, else 0.
EMA_n(t) = a c_t + (1 - a) EMA_n(t-1), a = 2 / (n + 1), started at an instrument's first known
close (pandas ``ewm(span=n, adjust=False)``); no signal until ``slow`` closes are known.
Sizing (equal risk budget): each eligible instrument i with a realised volatility sigma_i
(``vol_window`` log returns, ddof=1) gets the budget b_i = (1 / sigma_i) / sum_j (1 / sigma_j)
over the eligible instruments j with features; w_i = gross x s_i x b_i. A flat instrument's
budget stays in cash, so sum |w| <= gross.
Parameters:
- ``fast`` (int, default 20, 1..1000) and ``slow`` (int, default 100, 2..2000), fast < slow.
- ``allow_short`` (bool, default false).
- ``vol_window`` (int, default 60, 2..1000): rows of log returns for sigma.
- ``gross`` (float, default 1.0, 0 < gross <= 1).
- ``instruments`` (ids, default all members of the universe).
Outputs: weights in [-gross, gross], sum of absolute weights <= gross.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from macro_pipeline.strategies.base import Strategy, periods_per_year
from macro_pipeline.strategies.features import realized_vol, shared
from macro_pipeline.strategies.params import Ids, StrategyError, StrategyParams, param


class EmaCrossoverParams(StrategyParams):
    kind = "ema_crossover"
    fast: int = param(20, "fast EMA span in rows (sessions)", lo=1, hi=1000)
    slow: int = param(100, "slow EMA span in rows (sessions); must exceed fast", lo=2, hi=2000)
    allow_short: bool = param(False, "go short when the fast EMA is below the slow one")
    vol_window: int = param(
        60, "rows of log returns for the realised volatility of the risk budget", lo=2, hi=1000
    )
    gross: float = param(
        1.0, "gross exposure when every instrument has a signal", lo=0.0, hi=1.0, lo_open=True
    )
    instruments: Ids = param((), "trade only these members of the universe (empty: all)")

    def check(self) -> None:
        if self.fast >= self.slow:
            raise StrategyError(
                f"parameter 'fast' of ema_crossover must be < slow ({self.slow}), got {self.fast}"
            )


class EmaCrossover(Strategy):
    kind = "ema_crossover"
    Params = EmaCrossoverParams

    def warmup_periods(self) -> int:
        return max(self.params.slow, self.params.vol_window + 1)

    def compute(self, view, instruments, eligible) -> pd.DataFrame:
        p = self.params
        close = view.aligned_prices(instruments)
        ids = tuple(instruments)

        def ema(span: int) -> pd.DataFrame:
            return shared(
                view,
                ("ema", ids, span),
                lambda: close.ewm(span=span, adjust=False, min_periods=span).mean(),
            )

        signal = np.sign(ema(p.fast) - ema(p.slow)).to_numpy()
        if not p.allow_short:
            signal = np.maximum(signal, 0.0)
        ppy = periods_per_year(view)
        vol = shared(
            view,
            ("realized_vol", ids, p.vol_window, ppy),
            lambda: realized_vol(close, p.vol_window, ppy),
        ).to_numpy()
        ready = eligible.to_numpy() & np.isfinite(signal) & np.isfinite(vol) & (vol > 0)
        inv = np.where(ready, 1.0 / np.where(ready, vol, 1.0), 0.0)
        total = inv.sum(axis=1, keepdims=True)
        budget = np.divide(inv, total, out=np.zeros_like(inv), where=total > 0)
        w = p.gross * np.where(ready, signal, 0.0) * budget
        return pd.DataFrame(w, index=view.decision_dates, columns=instruments)
