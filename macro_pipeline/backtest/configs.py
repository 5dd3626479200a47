"""Strategy configurations for the service: a stored one loaded as a ``StrategyConfig``, and the
package's built-in ones registered. The SQL is in ``warehouse.strategies`` (``register_strategy``,
``list_strategies``, ``registered``)."""

from __future__ import annotations

import sqlalchemy as sa

from macro_pipeline.strategies.config import StrategyConfig, load_builtin_configs
from macro_pipeline.warehouse.strategies import register_strategy, strategy_params


def sync_builtin_strategies(engine: sa.Engine) -> list[str]:
    """Register the configurations of the package's ``strategies.toml`` (idempotent; the same id
    with other parameters is an error); the ids newly added."""
    return [cfg.strategy_id for cfg in load_builtin_configs() if register_strategy(engine, cfg) == "added"]


def load_strategy(engine: sa.Engine, strategy_id: str) -> StrategyConfig:
    params = strategy_params(engine, strategy_id)
    if params is None:
        raise ValueError(f"unknown strategy {strategy_id!r} (see `macro-pipeline strategies list`)")
    return StrategyConfig.from_dict(params)
