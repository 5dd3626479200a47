"""``external``: target weights read from the external signals table as ingested, not computed.

Inputs: ``view.aligned_signal(signal_name, instruments)``: for each decision d and instrument, the
value of the latest signal row known at the close of d (its vintage then in force; a correction
known later does not reach back). A signal stays in force until a newer one is known.
Timing: row d uses signal rows with known_at <= a(d).
Parameters: ``signal_name`` (str, default ``demo_external_weights``); ``instruments`` (ids,
default all members of the universe).
Outputs: the signal values as weights; 0 where no value is known yet, and (as for every kind)
for instruments outside the universe or without a known price. Values are not rescaled: the
engine's ``max_leverage`` caps the gross.
"""

from __future__ import annotations

import pandas as pd

from macro_pipeline.strategies.base import Strategy
from macro_pipeline.strategies.params import SAFE_NAME, Ids, StrategyError, StrategyParams, param


class ExternalParams(StrategyParams):
    kind = "external"
    signal_name: str = param(
        "demo_external_weights", "name of the external signal (external_signals.signal_name)"
    )
    instruments: Ids = param((), "trade only these members of the universe (empty: all)")

    def check(self) -> None:
        if not SAFE_NAME.fullmatch(self.signal_name):
            raise StrategyError(
                f"parameter 'signal_name' of external must match {SAFE_NAME.pattern}, "
                f"got {self.signal_name!r}"
            )


class External(Strategy):
    kind = "external"
    Params = ExternalParams
    default_rebalance = "monthly"

    def compute(self, view, instruments, eligible) -> pd.DataFrame:
        return view.aligned_signal(self.params.signal_name, instruments).fillna(0.0)
