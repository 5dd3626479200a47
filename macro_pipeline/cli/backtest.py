"""``macro-pipeline backtest``: one backtest (snapshot, engine, stored run with lineage)."""

from __future__ import annotations

import argparse
import json

from macro_pipeline.cli.db import migrated_engine
from macro_pipeline.cli.strategies import sync_builtin
from macro_pipeline.cli.tables import metric_table


def cmd_backtest(args: argparse.Namespace) -> int:
    # the service imports the engine (numba): kept out of the CLI's start-up
    from macro_pipeline.backtest.one_off import run_backtest

    engine = migrated_engine(args)
    sync_builtin(engine)
    out = run_backtest(engine, args.strategy, args.start, args.end, clean=args.clean, system_as_of=args.system_as_of)
    if args.json:
        print(json.dumps(out.to_json(), default=str))
        return 0
    print(f"run {out.run_id}  strategy {args.strategy}  {args.start}..{args.end}  {'clean' if args.clean else 'realistic costs'}")
    print(f"signal snapshot {out.snapshot_id} ({'new' if out.snapshot_new else 'reused'}), system_as_of {out.system_as_of.isoformat()}")
    print(metric_table(out.metrics))
    return 0
