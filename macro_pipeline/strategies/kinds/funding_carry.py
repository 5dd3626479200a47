"""``funding_carry``: perpetual-futures funding carry on one perp (default BTC-PERP, 24/7 calendar,
daily decisions).

Sign convention (as the engine settles funding): at each settlement a LONG pays notional x rate
and a SHORT receives it, so a positive rate pays shorts. While in the trade the strategy is short
the perp; with a ``hedge`` (a spot instrument on the same underlying, e.g. BTC-SPOT) it holds
the spot long against it, half the gross on each leg (w_perp = -gross/2, w_spot = +gross/2:
delta-neutral, a cash-and-carry trade that earns the funding, less costs). Without a hedge
(``hedge=""``) the short is the whole gross and carries the perp's price risk too.

Inputs: ``view.funding_per_decision([instrument])``: r(d) = mean rate per settlement (fraction
per funding interval, 8h in the demo) over the settlements known between the previous decision
time and this one (NaN where none settled). Windows count rows (days on 24/7).
Timing: row d uses settlements known at the close of d (for 24/7: 00:00 UTC of d+1, so the
three settlements of UTC day d).
Modes (each a stateful entry/exit rule evaluated row by row; flat where its input is undefined):
- ``simple``: x(d) = mean of r over the last ``lookback`` rows (NaN rows skipped; ``lookback`` =
  1: no smoothing). Enter when x >= ``entry_threshold``; exit when x < ``exit_threshold``.
- ``composite``: a carry-to-risk score combining level, trend and volatility of the rate:
  score(d) = (m_fast + trend_weight x (m_fast - m_slow)) / max(sd_slow, vol_floor),
  m_fast / m_slow = mean r over the last ``fast`` / ``slow`` rows, sd_slow = their std (ddof=1)
  over ``slow`` rows (needs ``slow`` rates). Enter when score >= ``entry_score``; exit when
  score < ``exit_score``.
Parameters: ``mode`` (simple | composite, default simple); ``instrument`` (default BTC-PERP);
``lookback`` (int, default 1, 1..365); ``entry_threshold`` (float, default 0.00005 per settlement,
-0.01..0.01) and ``exit_threshold`` (float, default 0.0, -0.01..0.01), exit <= entry;
``fast`` (int, default 3, 1..365) < ``slow`` (int, default 30, 2..1000); ``trend_weight`` (float,
default 1.0, 0..10); ``vol_floor`` (float, default 1e-5, 0 < vol_floor <= 0.01); ``entry_score``
(float, default 1.0, -100..100) and ``exit_score`` (float, default 0.0, -100..100), exit <= entry;
``gross`` (float, default 1.0, 0 < gross <= 1).
``hedge`` (instrument id or "", default "": unhedged).
Outputs: unhedged w(d, instrument) in {-gross, 0}; hedged w(d, instrument) in {-gross/2, 0} and
w(d, hedge) = -w(d, instrument); other instruments 0.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from macro_pipeline.strategies.base import Strategy
from macro_pipeline.strategies.features import hysteresis
from macro_pipeline.strategies.params import SAFE_INSTRUMENT, StrategyError, StrategyParams, param


class FundingCarryParams(StrategyParams):
    kind = "funding_carry"
    mode: Literal["simple", "composite"] = param(
        "simple", "simple: rate thresholds; composite: score thresholds"
    )
    instrument: str = param("BTC-PERP", "the perpetual future traded")
    hedge: str = param("", "spot instrument held long against the short perp (delta-neutral); empty: unhedged")
    lookback: int = param(
        1, "simple: rows (days) the per-settlement rate is averaged over", lo=1, hi=365
    )
    entry_threshold: float = param(
        0.00005, "simple: enter short when the rate (per settlement) is >= this", lo=-0.01, hi=0.01
    )
    exit_threshold: float = param(
        0.0, "simple: exit when the rate is < this; must be <= entry_threshold", lo=-0.01, hi=0.01
    )
    fast: int = param(3, "composite: rows of the fast mean rate", lo=1, hi=365)
    slow: int = param(
        30,
        "composite: rows of the slow mean and of the rate volatility; must exceed fast",
        lo=2,
        hi=1000,
    )
    trend_weight: float = param(
        1.0, "composite: weight of the trend (fast - slow mean)", lo=0.0, hi=10.0
    )
    vol_floor: float = param(
        0.00001,
        "composite: floor of the rate volatility in the score",
        lo=0.0,
        hi=0.01,
        lo_open=True,
    )
    entry_score: float = param(
        1.0, "composite: enter short when the score is >= this", lo=-100.0, hi=100.0
    )
    exit_score: float = param(
        0.0, "composite: exit when the score is < this; must be <= entry_score", lo=-100.0, hi=100.0
    )
    gross: float = param(1.0, "size of the short while in the trade", lo=0.0, hi=1.0, lo_open=True)

    def check(self) -> None:
        if self.hedge and (not SAFE_INSTRUMENT.fullmatch(self.hedge) or self.hedge == self.instrument):
            raise StrategyError(
                f"parameter 'hedge' of funding_carry must be another instrument id "
                f"({SAFE_INSTRUMENT.pattern}) or empty, got {self.hedge!r}"
            )
        if not SAFE_INSTRUMENT.fullmatch(self.instrument):
            raise StrategyError(
                f"parameter 'instrument' of funding_carry must be an instrument id "
                f"({SAFE_INSTRUMENT.pattern}), got {self.instrument!r}"
            )
        if self.exit_threshold > self.entry_threshold:
            raise StrategyError(
                f"parameter 'exit_threshold' of funding_carry must be <= entry_threshold "
                f"({self.entry_threshold}), got {self.exit_threshold}"
            )
        if self.exit_score > self.entry_score:
            raise StrategyError(
                f"parameter 'exit_score' of funding_carry must be <= entry_score "
                f"({self.entry_score}), got {self.exit_score}"
            )
        if self.fast >= self.slow:
            raise StrategyError(
                f"parameter 'fast' of funding_carry must be < slow ({self.slow}), got {self.fast}"
            )


class FundingCarry(Strategy):
    kind = "funding_carry"
    Params = FundingCarryParams
    default_universe = "CROSS_ASSET"
    default_calendar = "24/7"

    def select_instruments(self, universe_ids):
        legs = [self.params.instrument] + ([self.params.hedge] if self.params.hedge else [])
        for leg in legs:
            if leg not in universe_ids:
                raise StrategyError(
                    f"funding_carry instrument {leg!r} is not in universe {self.universe!r}"
                )
        return legs

    def warmup_periods(self) -> int:
        return self.params.lookback if self.params.mode == "simple" else self.params.slow

    def required_inputs(self) -> list[tuple[str, str, int]]:
        """The perpetual's funding settlements (8-hourly): a day without one means no signal."""
        return [("funding", self.params.instrument, 1)]

    def signal(self, view) -> pd.Series:
        """The quantity compared with the thresholds: smoothed rate (simple) or score (composite)."""
        p = self.params
        r = view.funding_per_decision([p.instrument])[p.instrument]
        if p.mode == "simple":
            return r.rolling(p.lookback, min_periods=1).mean()
        fast = r.rolling(p.fast, min_periods=1).mean()
        slow = r.rolling(p.slow, min_periods=p.slow).mean()
        sd = r.rolling(p.slow, min_periods=p.slow).std(ddof=1)
        return (fast + p.trend_weight * (fast - slow)) / np.maximum(sd, p.vol_floor)

    def compute(self, view, instruments, eligible) -> pd.DataFrame:
        p = self.params
        x = self.signal(view).to_numpy()[:, None]
        entry, leave = (
            (p.entry_threshold, p.exit_threshold)
            if p.mode == "simple"
            else (p.entry_score, p.exit_score)
        )
        legs = self.select_instruments(instruments)
        # in the trade only while every leg is tradable
        valid = eligible[legs].to_numpy().all(axis=1, keepdims=True) & np.isfinite(x)
        with np.errstate(invalid="ignore"):
            held = hysteresis(x >= entry, x < leave, valid)[:, 0]
        out = pd.DataFrame(0.0, index=view.decision_dates, columns=instruments)
        if p.hedge:
            out[p.instrument] = np.where(held, -p.gross / 2, 0.0)
            out[p.hedge] = np.where(held, p.gross / 2, 0.0)
        else:
            out[p.instrument] = np.where(held, -p.gross, 0.0)
        return out
