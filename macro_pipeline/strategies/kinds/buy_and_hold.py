"""``buy_and_hold``: equal weight over the universe's members, rebalanced at the configured
frequency (default monthly).

Inputs: universe membership as known at each decision and the aligned close (an instrument is
held only once a price of it is known).
Timing: row d uses membership and prices known at the close of d.
Parameters:
- ``gross`` (float, default 1.0, 0 < gross <= 1): total weight spread over the members.
- ``instruments`` (ids, default all members of the universe): hold only these members.
Outputs: w(d, i) = gross / n(d) for each of the n(d) eligible members at d, 0 for the others
(all zero before any member has a price). Between rebalance sessions the engine does not trade,
so positions drift with prices: buy and hold between rebalances.
"""

from __future__ import annotations

import pandas as pd

from macro_pipeline.strategies.base import Strategy
from macro_pipeline.strategies.features import equal_weight
from macro_pipeline.strategies.params import Ids, StrategyParams, param


class BuyAndHoldParams(StrategyParams):
    kind = "buy_and_hold"
    gross: float = param(
        1.0, "total weight spread equally over the eligible members", lo=0.0, hi=1.0, lo_open=True
    )
    instruments: Ids = param((), "trade only these members of the universe (empty: all)")


class BuyAndHold(Strategy):
    kind = "buy_and_hold"
    Params = BuyAndHoldParams
    default_universe = "US_EQ20"
    default_rebalance = "monthly"

    def compute(self, view, instruments, eligible) -> pd.DataFrame:
        w = equal_weight(eligible.to_numpy(), self.params.gross)
        return pd.DataFrame(w, index=view.decision_dates, columns=instruments)
