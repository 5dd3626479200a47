"""``macro_regime``: growth x inflation regimes from point-in-time macro prints -> a fixed
allocation across equities, bonds and commodities.

Inputs (all real-time: each value is the vintage in force at the decision, i.e. the first print
while it is new, a revision only from its own release time, never the final value before then):
- growth: ``growth_series`` (default US_REALGDP, quarterly level). g(d) = (G0 / G1)^4 - 1, the
  annualised growth of the newest quarter known at d over the quarter before it, both as known
  at d (``view.aligned_macro(s)`` and ``view.aligned_macro(s, lag=1)``). At a first print: the
  first print over the previous quarter's vintage then in force.
- inflation: ``inflation_series`` (default US_CPI) read as ``inflation_measure``:
  ``yoy_index`` (a price index: pi = I0 / I4 - 1, newest quarter over four quarters before) or
  ``rate_percent`` (already an inflation rate in percent, e.g. US_INFL: pi = value / 100).
- prices and universe membership of the three sleeves (a sleeve with no known price, or outside
  the universe, is left in cash, not redistributed).
Timing: row d uses prints released by the close of d. Staleness: when the growth input has not
printed a new value (a first print or a revision) for more than ``max_staleness_days`` calendar
days of decisions, or was never known, the strategy is flat (the demo macro data stop in 2009).
Regimes (growth >= ``growth_threshold``? x inflation >= ``inflation_threshold``?) and the
allocation table (fractions of ``gross``; the rest is cash):

=============  ==========  =============  ========  ====  ===========
regime         growth      inflation      equity    bond  commodity
=============  ==========  =============  ========  ====  ===========
goldilocks     >= g*       <  pi*         0.6       0.4   0.0
overheating    >= g*       >= pi*         0.5       0.0   0.5
stagflation    <  g*       >= pi*         0.0       0.3   0.5
deflation      <  g*       <  pi*         0.0       1.0   0.0
=============  ==========  =============  ========  ====  ===========

Parameters: ``growth_series`` (str), ``inflation_series`` (str), ``inflation_measure``
(yoy_index | rate_percent), ``growth_threshold`` (float, default 0.02 = 2 % annualised,
-0.5..0.5), ``inflation_threshold`` (float, default 0.025, -0.5..0.5), ``equity`` (default SPX),
``bond`` (default UST10_TR, the Treasury total-return proxy), ``commodity`` (default WTI),
``max_staleness_days`` (int, default 200, 1..3660), ``gross`` (float, default 1.0, (0, 1]).
Outputs: weights on the three sleeves per the table x gross; other instruments 0.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from macro_pipeline.strategies.base import Strategy
from macro_pipeline.strategies.params import (
    SAFE_INSTRUMENT,
    SAFE_NAME,
    StrategyError,
    StrategyParams,
    param,
)

# regime -> (equity, bond, commodity) fractions of gross
ALLOCATION: dict[str, tuple[float, float, float]] = {
    "goldilocks": (0.6, 0.4, 0.0),
    "overheating": (0.5, 0.0, 0.5),
    "stagflation": (0.0, 0.3, 0.5),
    "deflation": (0.0, 1.0, 0.0),
}
FLAT = "flat"


class MacroRegimeParams(StrategyParams):
    kind = "macro_regime"
    growth_series: str = param(
        "US_REALGDP", "quarterly real output level (growth = annualised q/q change)"
    )
    inflation_series: str = param("US_CPI", "quarterly inflation input, read as inflation_measure")
    inflation_measure: Literal["yoy_index", "rate_percent"] = param(
        "yoy_index", "yoy_index: price index, 4-quarter change; rate_percent: a rate in %"
    )
    growth_threshold: float = param(
        0.02, "annualised real growth at or above which growth is 'up'", lo=-0.5, hi=0.5
    )
    inflation_threshold: float = param(
        0.025, "inflation (decimal) at or above which inflation is 'up'", lo=-0.5, hi=0.5
    )
    equity: str = param("SPX", "equity sleeve instrument")
    bond: str = param("UST10_TR", "bond sleeve instrument (Treasury total-return proxy)")
    commodity: str = param("WTI", "commodity sleeve instrument")
    max_staleness_days: int = param(
        200, "flat when the growth series printed nothing new for longer (days)", lo=1, hi=3660
    )
    gross: float = param(1.0, "scales the allocation table", lo=0.0, hi=1.0, lo_open=True)

    def check(self) -> None:
        for name in ("growth_series", "inflation_series"):
            value = getattr(self, name)
            if not SAFE_NAME.fullmatch(value):
                raise StrategyError(
                    f"parameter {name!r} of macro_regime must match {SAFE_NAME.pattern}, got {value!r}"
                )
        sleeves = [self.equity, self.bond, self.commodity]
        for name, value in zip(("equity", "bond", "commodity"), sleeves, strict=True):
            if not SAFE_INSTRUMENT.fullmatch(value):
                raise StrategyError(
                    f"parameter {name!r} of macro_regime must be an instrument id "
                    f"({SAFE_INSTRUMENT.pattern}), got {value!r}"
                )
        if len(set(sleeves)) != 3:
            raise StrategyError(
                f"macro_regime sleeves must be three different instruments, got {sleeves}"
            )


class MacroRegime(Strategy):
    kind = "macro_regime"
    Params = MacroRegimeParams
    default_universe = "CROSS_ASSET"
    default_rebalance = "monthly"

    def select_instruments(self, universe_ids):
        p = self.params
        sleeves = [p.equity, p.bond, p.commodity]
        missing = [s for s in sleeves if s not in universe_ids]
        if missing:
            raise StrategyError(
                f"macro_regime sleeve(s) {missing} are not in universe {self.universe!r}"
            )
        return sleeves

    def required_inputs(self) -> list[tuple[str, str, int]]:
        """Both macro series; past ``max_staleness_days`` without a print the strategy is flat
        by construction, so its history ends there instead of scoring years of stale cash."""
        p = self.params
        return [("macro", p.growth_series, p.max_staleness_days), ("macro", p.inflation_series, p.max_staleness_days)]

    def inputs(self, view) -> pd.DataFrame:
        """Decision date x (growth, inflation, growth_age_days): the real-time inputs."""
        p = self.params
        g0 = view.aligned_macro([p.growth_series])[p.growth_series]
        g1 = view.aligned_macro([p.growth_series], lag=1)[p.growth_series]
        growth = (g0 / g1) ** 4 - 1.0
        if p.inflation_measure == "yoy_index":
            i0 = view.aligned_macro([p.inflation_series])[p.inflation_series]
            i4 = view.aligned_macro([p.inflation_series], lag=4)[p.inflation_series]
            inflation = i0 / i4 - 1.0
        else:
            inflation = view.aligned_macro([p.inflation_series])[p.inflation_series] / 100.0
        # age of the growth input: days since the decision at which its current value first appeared
        dates = pd.Series(view.decision_dates, index=view.decision_dates)
        changed = g0.ne(g0.shift(1)) & g0.notna()
        since = dates.where(changed).ffill()
        age = (dates - since).dt.days
        return pd.DataFrame({"growth": growth, "inflation": inflation, "growth_age_days": age})

    def regimes(self, view) -> pd.Series:
        """The regime label in force at each decision date ('flat' when unknown or stale)."""
        p = self.params
        x = self.inputs(view)
        known = (
            x["growth"].notna()
            & x["inflation"].notna()
            & (x["growth_age_days"] <= p.max_staleness_days)
        )
        up_g = x["growth"] >= p.growth_threshold
        up_i = x["inflation"] >= p.inflation_threshold
        label = np.select(
            [up_g & ~up_i, up_g & up_i, ~up_g & up_i],
            ["goldilocks", "overheating", "stagflation"],
            default="deflation",
        )
        return pd.Series(np.where(known, label, FLAT), index=view.decision_dates, name="regime")

    def compute(self, view, instruments, eligible) -> pd.DataFrame:
        table = {**ALLOCATION, FLAT: (0.0, 0.0, 0.0)}
        regime = self.regimes(view)
        labels = list(table)
        rows = np.array([table[label] for label in labels], dtype="float64")
        codes = pd.Categorical(regime.to_numpy(dtype=object), categories=labels).codes
        w = rows[codes].reshape(len(regime), 3) * self.params.gross
        return pd.DataFrame(w, index=view.decision_dates, columns=instruments)
