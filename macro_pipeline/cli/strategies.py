"""``macro-pipeline strategies``: registered configurations (list, add) and the kinds with their
parameters (describe; the text itself is ``cli/kinds.py``'s, shared with the help).
"""

from __future__ import annotations

import argparse
import json

import sqlalchemy as sa

from macro_pipeline.cli.db import migrated_engine
from macro_pipeline.cli.kinds import describe_kinds, kind_names
from macro_pipeline.cli.tables import table


def sync_builtin(engine: sa.Engine) -> None:
    """Register the repository's strategy configurations (idempotent; conflicts are errors)."""
    # the service imports the engine (numba): kept out of the CLI's start-up
    from macro_pipeline.backtest.configs import sync_builtin_strategies

    sync_builtin_strategies(engine)


def cmd_strategies_list(args: argparse.Namespace) -> int:
    # the service imports the engine (numba): kept out of the CLI's start-up
    from macro_pipeline.warehouse.strategies import list_strategies

    engine = migrated_engine(args)
    sync_builtin(engine)
    frame = list_strategies(engine)
    if args.json:
        print(json.dumps([{"strategy_id": r.strategy_id, "kind": r.kind, "universe": r.universe,
                           "params_hash": r.params_hash, **{k: v for k, v in r.params.items() if k in ("rebalance", "calendar")},
                           "params": r.params["params"]} for r in frame.itertuples()], indent=2))
        return 0
    rows = [[r.strategy_id, r.kind, r.universe, r.params["rebalance"], r.params["calendar"], r.params_hash[:12],
             " ".join(f"{k}={v}" for k, v in sorted(r.params["params"].items()))] for r in frame.itertuples()]
    print(table(rows, ["strategy_id", "kind", "universe", "rebalance", "calendar", "params_hash", "params"]))
    return 0


def cmd_strategies_describe(args: argparse.Namespace) -> int:
    # imports every kind, and with them the engine (numba): only when asked
    from macro_pipeline.strategies.registry import strategy_class

    if args.json:
        print(json.dumps({k: strategy_class(k).Params.describe() for k in args.kinds or kind_names()}, indent=2,
                         default=str))
        return 0
    print(describe_kinds(args.kinds or None))
    return 0


def cmd_strategies_add(args: argparse.Namespace) -> int:
    # the service and the kinds import the engine (numba): kept out of the CLI's start-up
    from macro_pipeline.strategies.config import StrategyConfig
    from macro_pipeline.strategies.registry import parse_params
    from macro_pipeline.warehouse.strategies import register_strategy

    params = parse_params(args.kind, args.param or [])
    cfg = StrategyConfig(args.id, args.kind, params, universe=args.universe, rebalance=args.rebalance,
                         calendar=args.calendar)  # validates id, kind and every parameter first
    engine = migrated_engine(args)
    status = register_strategy(engine, cfg)
    print(f"{status}: {cfg.strategy_id} ({cfg.kind}, universe {cfg.universe}, params hash {cfg.params_hash[:12]})")
    return 0
