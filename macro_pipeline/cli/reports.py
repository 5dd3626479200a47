"""``macro-pipeline report``: self-contained HTML reports of runs and strategy histories."""

from __future__ import annotations

import argparse

from macro_pipeline.cli.db import migrated_engine


def cmd_report(args: argparse.Namespace) -> int:
    # reports import matplotlib and the engine (numba): kept out of the CLI's start-up
    from macro_pipeline.reports import write_reports, write_run_report, write_strategy_report
    from macro_pipeline.warehouse.report_reads import strategies_with_pipeline_runs

    engine = migrated_engine(args)
    strategies = list(args.strategy or [])
    if args.all_strategies:
        strategies += [s for s in strategies_with_pipeline_runs(engine) if s not in strategies]
        if not strategies:
            raise ValueError("no strategy has monthly pipeline runs yet (materialize `backtest` in Dagster first)")
    if not args.run_ids and not strategies:
        raise ValueError("report needs a RUN_ID, --strategy ID or --all-strategies")
    if len(args.run_ids) + len(strategies) == 1:
        paths = [write_run_report(engine, args.run_ids[0], args.out, args.benchmark) if args.run_ids
                 else write_strategy_report(engine, strategies[0], args.out, args.benchmark)]
    else:
        paths = write_reports(engine, run_ids=args.run_ids, strategy_ids=strategies, out_dir=args.out,
                              benchmark=args.benchmark, progress=not args.quiet)
    for path in paths:
        print(f"wrote {path}")
    return 0
