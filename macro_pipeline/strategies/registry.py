"""The built-in strategy kinds, building strategies from configurations, and config files.

Config file format (TOML), one ``[[strategy]]`` table per configuration::

    [[strategy]]
    id = "ema-us-eq20"          # ^[a-z0-9][a-z0-9_-]{0,62}$
    kind = "ema_crossover"      # a key of KINDS
    universe = "US_EQ20"        # optional: the kind's default
    rebalance = "daily"         # daily | weekly | monthly (optional: the kind's default)
    calendar = "XNYS"           # XNYS | 24/7 (optional: the kind's default)
    params = { fast = 20, slow = 100 }   # optional: every omitted parameter takes its default

Every configuration is validated as it is read (kind, each parameter's name, type and range,
the id); the first error raises ``StrategyError`` naming the file, the entry and the problem.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from macro_pipeline.strategies.atr_breakout import AtrBreakout
from macro_pipeline.strategies.base import Strategy, StrategyConfig, StrategyError, parse_value
from macro_pipeline.strategies.buy_and_hold import BuyAndHold
from macro_pipeline.strategies.ema_crossover import EmaCrossover
from macro_pipeline.strategies.external import External
from macro_pipeline.strategies.funding_carry import FundingCarry
from macro_pipeline.strategies.macro_regime import MacroRegime
from macro_pipeline.strategies.rsi_mean_revert import RsiMeanRevert
from macro_pipeline.strategies.ts_momentum import TsMomentum

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
BUILTIN_CONFIG = "strategies.toml"  # inside the macro_pipeline package


def strategy_class(kind: object) -> type[Strategy]:
    if not isinstance(kind, str) or kind not in KINDS:
        raise StrategyError(f"unknown strategy kind {kind!r}; the kinds are {', '.join(KINDS)}")
    return KINDS[kind]


def build(config: StrategyConfig) -> Strategy:
    """The strategy a configuration describes (kind and every parameter validated)."""
    if not isinstance(config, StrategyConfig):
        raise StrategyError(f"build needs a StrategyConfig, got {type(config).__name__}")
    return strategy_class(config.kind).from_config(config)


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


def configs_from_mapping(data: Mapping[str, Any], source: str = "<config>") -> list[StrategyConfig]:
    entries = data.get("strategy", [])
    extra = sorted(set(data) - {"strategy"})
    if extra:
        raise StrategyError(f"{source}: unknown top-level key(s) {extra}; use [[strategy]] tables")
    if not isinstance(entries, list):
        raise StrategyError(f"{source}: 'strategy' must be an array of tables ([[strategy]])")
    configs: list[StrategyConfig] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries, start=1):
        label = (
            f"{source}: strategy #{n} ({entry.get('id', '?')!r})"
            if isinstance(entry, dict)
            else f"{source}: #{n}"
        )
        try:
            cfg = StrategyConfig.from_dict(entry)
        except StrategyError as exc:
            raise StrategyError(f"{label}: {exc}") from None
        if cfg.strategy_id in seen:
            raise StrategyError(f"{label}: id {cfg.strategy_id!r} appears twice")
        seen.add(cfg.strategy_id)
        configs.append(cfg)
    return configs


def load_config_file(path: str | Path) -> list[StrategyConfig]:
    """Every configuration in a TOML file, validated, in file order."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StrategyError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise StrategyError(f"{path}: not valid TOML: {exc}") from None
    return configs_from_mapping(data, str(path))


def load_builtin_configs() -> list[StrategyConfig]:
    """The configurations shipped in the package (``macro_pipeline/strategies.toml``)."""
    text = resources.files("macro_pipeline").joinpath(BUILTIN_CONFIG).read_text(encoding="utf-8")
    return configs_from_mapping(tomllib.loads(text), f"macro_pipeline/{BUILTIN_CONFIG}")
