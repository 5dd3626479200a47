"""``macro-pipeline``: the command line (one module per command group; the parser is wired here).

Errors print as one line (``error: ...``; validation errors list each broken rule) with exit code
2 for bad input and 1 for anything else; ``--verbose`` adds the full traceback.

Start-up stays fast: the parser names each command's handler as ``"module:function"`` (a module
of this package) and ``main`` imports only the module of the command that runs, so ``--help``
imports no command module (neither pandas, SQLAlchemy, Dagster, matplotlib nor numba). A command
module imports what pulls in Dagster, matplotlib or numba only inside the command that needs it,
and says so.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

from macro_pipeline import __version__
from macro_pipeline.cli.kinds import KINDS_DESCRIBED, KINDS_HELP, KindsHelpFormatter
from macro_pipeline.warehouse.tables import INGEST_KINDS

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="macro-pipeline",
        description="Point-in-time correct, reproducible cross-asset backtests on PostgreSQL + Dagster.",
    )
    parser.add_argument("--version", action="version", version=f"macro-pipeline {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="full tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db_p = sub.add_parser("db", help="the warehouse database: migrate, status, stop, url")
    db_sub = db_p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("migrate", help="apply pending sql/ files in order (idempotent)").set_defaults(func="db:cmd_db_migrate")
    db_sub.add_parser("status", help="where the warehouse is; applied and pending sql/ files").set_defaults(func="db:cmd_db_status")
    db_sub.add_parser("stop", help="stop the embedded PostgreSQL server").set_defaults(func="db:cmd_db_stop")
    db_sub.add_parser("url", help="print the warehouse URL (starts the embedded server if needed)").set_defaults(func="db:cmd_db_url")

    ing = sub.add_parser("ingest", help="validate and load files (CSV or Parquet)",
                         description="Formats: see macro_pipeline/warehouse/ingest/spec.py or the README.")
    ing.add_argument("kind", choices=INGEST_KINDS)
    ing.add_argument("files", nargs="+", metavar="FILE")
    ing.add_argument("--register-instruments", action="store_true",
                     help="register unknown instrument ids with default attributes instead of failing")
    ing.add_argument("--release-rule", choices=["close", "quarterly_30d", "same_day"],
                     help="release rule of instruments registered by --register-instruments "
                          "(default: quarterly_30d for macro series, close otherwise)")
    ing.add_argument("--correction", action="store_true",
                     help="the files have no known_at and restate stored values: store the changed rows "
                          "as corrections at the original (release-rule) known_at, recorded after the old "
                          "rows. Without it such files are refused; a file with known_at is a revision "
                          "and needs no flag")
    ing.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ing.set_defaults(func="ingest:cmd_ingest")

    dd = sub.add_parser("demo-data", help="the bundled demo data set")
    dd_sub = dd.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    load = dd_sub.add_parser("load", help="put the demo data in the warehouse (idempotent)")
    load.add_argument("-q", "--quiet", action="store_true")
    load.set_defaults(func="demo:cmd_demo_data_load")

    st = sub.add_parser("stored", help="what the warehouse holds: row counts, spans, watermarks")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func="ingest:cmd_stored")

    strat = sub.add_parser("strategies", help="strategy configurations: list, describe, add")
    strat_sub = strat.add_subparsers(dest="strategies_command", required=True, metavar="ACTION")
    sl = strat_sub.add_parser("list", help="registered configurations (the repository's file is registered first)")
    sl.add_argument("--json", action="store_true")
    sl.set_defaults(func="strategies:cmd_strategies_list")
    sd = strat_sub.add_parser("describe", help="strategy kinds and their parameters (type, bounds, default)",
                              formatter_class=KindsHelpFormatter)
    sd.add_argument("kinds", nargs="*", metavar="KIND", help=f"one or more of {KINDS_HELP} (default: all)")
    sd.add_argument("--json", action="store_true")
    sd.set_defaults(func="strategies:cmd_strategies_describe")
    sa_ = strat_sub.add_parser("add", help="register a new configuration (every parameter validated)",
                               formatter_class=KindsHelpFormatter,
                               epilog="kinds and their parameters (--param NAME=VALUE):\n\n" + KINDS_DESCRIBED)
    sa_.add_argument("--id", required=True)
    sa_.add_argument("--kind", required=True, help=f"one of {KINDS_HELP} (see below)")
    sa_.add_argument("--param", action="append", metavar="K=V", help="a parameter; repeat for several")
    sa_.add_argument("--universe")
    sa_.add_argument("--rebalance", choices=["daily", "weekly", "monthly"])
    sa_.add_argument("--calendar", choices=["XNYS", "24/7"])
    sa_.set_defaults(func="strategies:cmd_strategies_add")

    bt = sub.add_parser("backtest", help="one backtest: snapshot, engine, stored run with lineage")
    bt.add_argument("--strategy", required=True)
    bt.add_argument("--start", required=True, metavar="YYYY-MM-DD")
    bt.add_argument("--end", required=True, metavar="YYYY-MM-DD")
    bt.add_argument("--clean", action="store_true", help="zero trading costs (a frictionless reference)")
    bt.add_argument("--system-as-of", metavar="TIMESTAMP", help="read the warehouse as stored then (reproduce a run)")
    bt.add_argument("--json", action="store_true")
    bt.set_defaults(func="backtest:cmd_backtest")

    runs = sub.add_parser("runs", help="stored backtest runs: list, show")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    rl = runs_sub.add_parser("list", help="stored runs with their standing (the newest --limit by default)")
    rl.add_argument("--strategy")
    rl.add_argument("--limit", type=int, default=50, metavar="N", help="the newest N runs (default 50)")
    rl.add_argument("--all", action="store_true", help="every run (no limit)")
    rl.add_argument("--current", action="store_true", help="only current runs (neither superseded nor reproductions)")
    rl.add_argument("--json", action="store_true")
    rl.set_defaults(func="runs:cmd_runs_list")
    rs = runs_sub.add_parser("show", help="a run's lineage and metrics")
    rs.add_argument("run_id", help="a run id or a unique prefix of one")
    rs.add_argument("--json", action="store_true")
    rs.add_argument("--signals", action="store_true", help="also print the snapshot's weights")
    rs.set_defaults(func="runs:cmd_runs_show")

    cmp_ = sub.add_parser("compare", help="side-by-side metrics of stored runs and strategy histories")
    cmp_.add_argument("runs", nargs="+", metavar="RUN_OR_STRATEGY",
                      help="a run id (or unique prefix) or a strategy id (its stitched monthly pipeline runs)")
    cmp_.add_argument("--html", metavar="PATH", help="also write an HTML comparison (file or directory)")
    cmp_.set_defaults(func="runs:cmd_compare")

    rep = sub.add_parser("report", help="self-contained HTML report of a run or a strategy's full history")
    rep.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="a stored run id (or unique prefix)")
    rep.add_argument("--strategy", action="append", metavar="ID",
                     help="a strategy's full history from its monthly pipeline runs; repeat for several")
    rep.add_argument("--all-strategies", action="store_true", help="one report per strategy with pipeline runs")
    rep.add_argument("--out", metavar="PATH",
                     help="a file (one report) or a directory; default $MACRO_PIPELINE_HOME/reports")
    rep.add_argument("--benchmark", metavar="INSTRUMENT", help="drawn against equity (default SPX, the demo's S&P 500)")
    rep.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    rep.set_defaults(func="reports:cmd_report")

    dev = sub.add_parser("dev", help="Dagster webserver + daemon on this project's instance (127.0.0.1)")
    dev.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(func="dev:cmd_dev")

    wk = sub.add_parser("worker", help="a Celery worker executing steps of runs (MACRO_PIPELINE_EXECUTOR=celery)")
    wk.add_argument("--concurrency", type=int, default=1,
                    help="steps this worker runs at once, one process each (default 1)")
    wk.add_argument("--name", help="worker name (default dagster-<random>); the host name is appended")
    wk.add_argument("--queue", action="append", help="queue to consume (default dagster); repeatable")
    wk.add_argument("--loglevel", default="INFO")
    wk.set_defaults(func="dev:cmd_worker")

    demo = sub.add_parser("demo", help="the main job through Dagster: demo data, strategies, every month, leaderboard")
    demo.add_argument("-q", "--quiet", action="store_true")
    demo.add_argument("--workers", type=int, default=2, help="strategy runs at a time (default 2: one per core)")
    demo.add_argument("--strategy", action="append", metavar="ID",
                      help="backtest only this strategy (repeatable; default: every registered one)")
    demo.set_defaults(func="demo:cmd_demo")

    sw = sub.add_parser("sweep", help="a parameter sweep: grid, batched backtests, DSR, PBO, walk-forward")
    sw.add_argument("--name", help="run the sweep of this name from the sweeps file")
    sw.add_argument("--file", help="sweeps file (default: the package's sweeps.toml)")
    sw.add_argument("--kind")
    sw.add_argument("--grid", action="append", metavar="NAME=V1,V2|NAME=LO..HI:STEP")
    sw.add_argument("--param", action="append", metavar="K=V", help="a fixed parameter (repeatable)")
    sw.add_argument("--universe")
    sw.add_argument("--rebalance", choices=["daily", "weekly", "monthly"])
    sw.add_argument("--calendar", choices=["XNYS", "24/7"])
    sw.add_argument("--start")
    sw.add_argument("--end")
    sw.add_argument("--metric", default="sharpe", help="picks the best configuration (default sharpe)")
    sw.add_argument("--blocks", type=int, default=16, help="CSCV blocks of the PBO (even, default 16)")
    sw.add_argument("--walk-forward", metavar="train=36M,test=12M[,anchored]")
    sw.add_argument("--clean", action="store_true", help="costs zeroed")
    sw.add_argument("--system-as-of", metavar="TS", help="read the warehouse as of this watermark (reproduce)")
    sw.add_argument("--report", metavar="PATH", help="also write the HTML report there")
    sw.add_argument("--json", action="store_true")
    sw.set_defaults(func="sweep:cmd_sweep")

    sws = sub.add_parser("sweeps", help="stored sweeps: list, show, report")
    sws_sub = sws.add_subparsers(dest="sweeps_command", required=True, metavar="ACTION")
    ls = sws_sub.add_parser("list", help="stored sweeps: id, name, kind, configurations, best")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func="sweep:cmd_sweeps_list")
    sh = sws_sub.add_parser("show", help="a sweep's lineage, statistics and best configurations")
    sh.add_argument("sweep", help="sweep id, a 6+ character prefix, or a sweep name (its newest)")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func="sweep:cmd_sweeps_show")
    rp = sws_sub.add_parser("report", help="self-contained HTML report of a sweep")
    rp.add_argument("sweep")
    rp.add_argument("--out", help="file or existing directory (default $MACRO_PIPELINE_HOME/reports/)")
    rp.set_defaults(func="sweep:cmd_sweeps_report")
    return parser


def _without_trace(record: logging.LogRecord) -> bool:
    record.exc_info, record.exc_text, record.stack_info = None, None, None
    return True


def command(name: str) -> Callable[[argparse.Namespace], int | None]:
    """The command function ``name`` (``"module:function"``, a module of this package), imported
    now: only the command that runs pays for its imports."""
    module, function = name.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)


def _bad_input() -> tuple[type[BaseException], ...]:
    """The errors that are the user's input (exit code 2), imported once one was raised: the
    warehouse's modules stay out of the parser's start-up."""
    from macro_pipeline.warehouse.errors import IngestValidationError, LookAheadError
    from macro_pipeline.warehouse.migrate import MigrationError

    return IngestValidationError, LookAheadError, MigrationError, ValueError, FileNotFoundError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # log records are one line too: a library's traceback (SQLAlchemy's pool failing to roll
        # back on a connection the server closed, say) only under --verbose
        for handler in logging.getLogger().handlers:
            handler.addFilter(_without_trace)
        logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)  # a dead connection's reset
    try:
        return int(command(args.func)(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line; the trace only under --verbose
        if args.verbose:
            traceback.print_exc()
        if isinstance(exc, _bad_input()):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {type(exc).__name__}: {first} (rerun with --verbose for the trace)", file=sys.stderr)
        return 1
