"""``macro-pipeline strategies``: registered configurations (list, add) and the kinds with their
parameters (describe).

Listing the kinds imports every kind, and with them the engine (numba): the parser does not, so
``--help`` stays fast. ``KINDS_HELP`` and ``KINDS_DESCRIBED`` are filled in by ``KindsHelpFormatter``
when a help text is printed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import sqlalchemy as sa

from macro_pipeline.cli.db import migrated_engine
from macro_pipeline.cli.tables import table

KINDS_HELP = "<the strategy kinds>"  # in a help line: the kinds' names
KINDS_DESCRIBED = "<every kind described>"  # in an epilog: ``describe_kinds()``


def kind_names() -> list[str]:
    # imports every kind, and with them the engine (numba): only when asked
    from macro_pipeline.strategies.registry import KINDS

    return list(KINDS)


class KindsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help with the kinds filled in when it is printed (``KINDS_HELP``, ``KINDS_DESCRIBED``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        return text.replace(KINDS_HELP, ", ".join(kind_names())) if text else text

    def add_text(self, text: str | None) -> None:
        if text and KINDS_DESCRIBED in text:
            text = text.replace(KINDS_DESCRIBED, describe_kinds())
        super().add_text(text)


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


def describe_kinds(kinds: Sequence[str] | None = None) -> str:
    """Each strategy kind (all, or ``kinds``): its calendars and defaults, and every parameter
    with its type, allowed values (bounds), default and meaning."""
    # imports every kind, and with them the engine (numba): only when asked
    from macro_pipeline.strategies.registry import strategy_class

    blocks = []
    for kind in kinds or kind_names():
        cls = strategy_class(kind)
        head = (f"{kind}: universe {cls.default_universe}, rebalance {cls.default_rebalance}, calendar "
                f"{cls.default_calendar} (allowed: {', '.join(cls.calendars)})")
        rows = [[p["name"], p["type"], json.dumps(p["default"]), p["allowed"] or "", p["doc"]]
                for p in cls.Params.describe()]
        blocks.append(head + ("\n" + table(rows, ["param", "type", "default", "allowed", "meaning"]) if rows
                              else "\n(no parameters)"))
    return "\n\n".join(blocks)


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
