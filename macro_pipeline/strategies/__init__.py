"""Strategies: pure objects turning a point-in-time view into target weights.

Public API:
- ``StrategyConfig`` (id, kind, params, universe, rebalance, calendar; ``params_hash``,
  ``to_dict``/``from_dict``), ``Strategy`` (``weights(view, instruments)``), ``StrategyError``;
- ``KINDS``, ``build(config)``, ``parse_param(kind, "k=v")``, ``parse_params``,
  ``load_config_file(path)``, ``load_builtin_configs()``;
- ``CODE_VERSION``: stored with every signal snapshot; bumped whenever any weight could change.

Modules: ``params`` (pydantic models of each kind's parameters), ``config`` (configurations and
config files), ``base`` (the ``Strategy`` contract; timing and window conventions), ``registry``
(the kinds), ``features`` (shared indicators), ``kinds/`` (one module per kind, each docstring
stating inputs, timing, parameters and outputs): buy_and_hold, ema_crossover, rsi_mean_revert,
atr_breakout, ts_momentum, macro_regime, funding_carry, external.
"""

from macro_pipeline.strategies.base import CODE_VERSION, Strategy
from macro_pipeline.strategies.config import (
    StrategyConfig,
    build,
    load_builtin_configs,
    load_config_file,
)
from macro_pipeline.strategies.params import StrategyError, StrategyParams
from macro_pipeline.strategies.registry import KINDS, parse_param, parse_params, strategy_class

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
