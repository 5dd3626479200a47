"""Strategies: pure objects turning a point-in-time view into target weights.

Public API:
- ``StrategyConfig`` (id, kind, params, universe, rebalance, calendar; ``params_hash``,
  ``to_dict``/``from_dict``), ``Strategy`` (``weights(view, instruments)``), ``StrategyError``;
- ``KINDS``, ``build(config)``, ``parse_param(kind, "k=v")``, ``parse_params``,
  ``load_config_file(path)``, ``load_builtin_configs()``;
- ``CODE_VERSION``: stored with every signal snapshot; bumped whenever any weight could change.

The kinds (one module each, each docstring states inputs, timing, parameters and outputs):
buy_and_hold, ema_crossover, rsi_mean_revert, atr_breakout, ts_momentum, macro_regime,
funding_carry, external. Timing and window conventions: ``base``.
"""

from macro_pipeline.strategies.base import (
    CODE_VERSION,
    Strategy,
    StrategyConfig,
    StrategyError,
    StrategyParams,
)
from macro_pipeline.strategies.registry import (
    KINDS,
    build,
    load_builtin_configs,
    load_config_file,
    parse_param,
    parse_params,
    strategy_class,
)

__all__ = [
    "CODE_VERSION",
    "KINDS",
    "Strategy",
    "StrategyConfig",
    "StrategyError",
    "StrategyParams",
    "build",
    "load_builtin_configs",
    "load_config_file",
    "parse_param",
    "parse_params",
    "strategy_class",
]
