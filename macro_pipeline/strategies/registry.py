"""The built-in strategy kinds, and the typed parameters the command line gives them.

``KINDS`` maps each kind's name to its class (one module per kind under ``kinds/``);
``parse_param`` turns ``--param k=v`` into a typed, range-checked value of that kind.
"""

from __future__ import annotations

from typing import Any

from macro_pipeline.strategies.base import Strategy
from macro_pipeline.strategies.kinds.atr_breakout import AtrBreakout
from macro_pipeline.strategies.kinds.buy_and_hold import BuyAndHold
from macro_pipeline.strategies.kinds.ema_crossover import EmaCrossover
from macro_pipeline.strategies.kinds.external import External
from macro_pipeline.strategies.kinds.funding_carry import FundingCarry
from macro_pipeline.strategies.kinds.macro_regime import MacroRegime
from macro_pipeline.strategies.kinds.rsi_mean_revert import RsiMeanRevert
from macro_pipeline.strategies.kinds.ts_momentum import TsMomentum
from macro_pipeline.strategies.params import StrategyError, parse_value

KINDS: dict[str, type[Strategy]] = {
    cls.kind: cls
    for cls in (
        BuyAndHold,
        EmaCrossover,
        RsiMeanRevert,
        AtrBreakout,
        TsMomentum,
        MacroRegime,
        FundingCarry,
        External,
    )
}

def strategy_class(kind: object) -> type[Strategy]:
    if not isinstance(kind, str) or kind not in KINDS:
        raise StrategyError(f"unknown strategy kind {kind!r}; the kinds are {', '.join(KINDS)}")
    return KINDS[kind]


def parse_param(kind: str, text: str) -> tuple[str, Any]:
    """``"fast=10"`` -> ``("fast", 10)``, typed and range-checked for ``kind`` (the CLI's
    ``--param k=v``). Lists of ids are comma-separated: ``instruments=SPX,NASDAQ``."""
    cls = strategy_class(kind)
    if not isinstance(text, str) or "=" not in text:
        raise StrategyError(f"parameter {text!r} must look like name=value")
    name, _, raw = text.partition("=")
    name = name.strip()
    value = cls.Params.check_value(name, parse_value(cls.Params, name, raw))
    return name, value


def parse_params(kind: str, items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Several ``k=v`` strings -> a params dict (a name given twice is an error)."""
    out: dict[str, Any] = {}
    for item in items:
        name, value = parse_param(kind, item)
        if name in out:
            raise StrategyError(f"parameter {name!r} given twice")
        out[name] = value
    return out
