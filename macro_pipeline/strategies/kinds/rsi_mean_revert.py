"""``rsi_mean_revert``: buy oversold instruments on Wilder's RSI, sell when they recover.

Inputs: aligned closes, universe membership.
Timing: row d uses closes known at the close of d; ``window`` counts rows (sessions).
Rule (stateful, row by row per instrument): flat -> long when RSI < ``entry``; long -> flat when
RSI > ``exit``; flat whenever the instrument is not eligible or RSI is not yet defined (the first
``window`` changes seed Wilder's averages, see ``features.wilder_rsi``).
Sizing: equal weight across the open positions: w = gross / n_open on each, 0 elsewhere.
Parameters:
- ``window`` (int, default 14, 2..500): RSI length.
- ``entry`` (float, default 30, 0 < entry < 100) and ``exit`` (float, default 55,
  0 < exit < 100), entry < exit.
- ``gross`` (float, default 1.0, 0 < gross <= 1).
- ``instruments`` (ids, default all members of the universe).
Outputs: long-only weights, each gross / n_open; all zero while nothing is open.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from macro_pipeline.strategies.base import Strategy
from macro_pipeline.strategies.features import equal_weight, hysteresis, wilder_rsi
from macro_pipeline.strategies.params import Ids, StrategyError, StrategyParams, param


class RsiMeanRevertParams(StrategyParams):
    kind = "rsi_mean_revert"
    window: int = param(14, "RSI length in rows (sessions)", lo=2, hi=500)
    entry: float = param(
        30.0, "enter long when RSI falls below this", lo=0.0, hi=100.0, lo_open=True, hi_open=True
    )
    exit: float = param(
        55.0,
        "exit when RSI rises above this; must exceed entry",
        lo=0.0,
        hi=100.0,
        lo_open=True,
        hi_open=True,
    )
    gross: float = param(
        1.0, "total weight shared equally by the open positions", lo=0.0, hi=1.0, lo_open=True
    )
    instruments: Ids = param((), "trade only these members of the universe (empty: all)")

    def check(self) -> None:
        if self.entry >= self.exit:
            raise StrategyError(
                f"parameter 'entry' of rsi_mean_revert must be < exit ({self.exit}), got {self.entry}"
            )


class RsiMeanRevert(Strategy):
    kind = "rsi_mean_revert"
    Params = RsiMeanRevertParams

    def warmup_periods(self) -> int:
        return self.params.window + 1

    def rsi(self, view, instruments) -> pd.DataFrame:
        return wilder_rsi(view.aligned_prices(instruments), self.params.window)

    def compute(self, view, instruments, eligible) -> pd.DataFrame:
        p = self.params
        rsi = self.rsi(view, instruments).to_numpy()
        valid = eligible.to_numpy() & np.isfinite(rsi)
        with np.errstate(invalid="ignore"):
            held = hysteresis(rsi < p.entry, rsi > p.exit, valid)
        return pd.DataFrame(
            equal_weight(held, p.gross), index=view.decision_dates, columns=instruments
        )
