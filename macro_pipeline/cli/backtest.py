"""``macro-pipeline backtest``: one backtest (snapshot, engine, stored run with lineage)."""

from __future__ import annotations

import argparse
import json
import threading

from macro_pipeline.cli.db import migrated_engine
from macro_pipeline.cli.strategies import sync_builtin
from macro_pipeline.cli.tables import metric_table


def _load_kernels() -> None:
    """Import the engine's simulation and load its compiled kernels from numba's cache."""
    # the engine imports numba: kept out of the CLI's start-up (and run in a thread, below)
    from macro_pipeline.engine.simulation import warm_up

    try:
        warm_up(batch=False)
    except Exception:  # the backtest's own call loads them again and reports any error
        pass


def cmd_backtest(args: argparse.Namespace) -> int:
    # the service imports the strategies and the warehouse's readers and writers: kept out of the
    # CLI's start-up
    from macro_pipeline.backtest.one_off import run_backtest

    # importing numba and loading the kernels (~0.5 s of a fresh process) overlaps the reads of
    # the warehouse, which mostly wait on PostgreSQL; the simulation then finds them loaded
    kernels = threading.Thread(target=_load_kernels, name="load-kernels", daemon=True)
    kernels.start()
    try:
        engine = migrated_engine(args)
        sync_builtin(engine)
        out = run_backtest(engine, args.strategy, args.start, args.end, clean=args.clean,
                           system_as_of=args.system_as_of)
    finally:
        kernels.join()  # never exit while it imports (an interpreter shutting down under it)
    if args.json:
        print(json.dumps(out.to_json(), default=str))
        return 0
    print(f"run {out.run_id}  strategy {args.strategy}  {args.start}..{args.end}  {'clean' if args.clean else 'realistic costs'}")
    print(f"signal snapshot {out.snapshot_id} ({'new' if out.snapshot_new else 'reused'}), system_as_of {out.system_as_of.isoformat()}")
    print(metric_table(out.metrics))
    return 0
