"""``macro-pipeline``: the command line.

Errors print as one line (``error: ...``; validation errors list each broken rule) with exit code
2 for bad input and 1 for anything else; ``--verbose`` adds the full traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Sequence

from macro_pipeline import __version__

EXIT_BAD_INPUT = 2


def _engine(args: argparse.Namespace):
    from macro_pipeline.warehouse import db

    return db.get_engine()


def _migrated_engine(args: argparse.Namespace):
    from macro_pipeline.warehouse import migrate
    from macro_pipeline.warehouse.ingest import drop_stale_staging

    engine = _engine(args)
    migrate.migrate(engine)
    drop_stale_staging(engine, wait=False)  # staging tables of a killed ingest, when none runs
    return engine


# --------------------------------------------------------------------------- db


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from macro_pipeline.warehouse import migrate

    applied = migrate.migrate(_engine(args))
    print("applied: " + ", ".join(applied) if applied else "schema up to date: nothing to apply")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    from macro_pipeline.settings import load_settings
    from macro_pipeline.warehouse import db, embedded, migrate

    settings = load_settings()
    if settings.embedded:
        server = embedded.status(settings.home)
        where = f"embedded PostgreSQL in {settings.pgdata} ({f'running, pid {server.pid}' if server else 'stopped'})"
        if server is None:  # status never starts a server
            print(f"warehouse: {where}; any other command starts it")
            return 0
    else:
        where = f"external PostgreSQL {db.render(settings.database_url)}"
    print(f"warehouse: {where}")
    st = migrate.status(_engine(args))
    for name, when in st.applied:
        print(f"  applied  {name}  {when}")
    for name in st.pending:
        print(f"  pending  {name}")
    for name in st.changed:
        print(f"  CHANGED  {name} (differs from the applied version; add a new file instead)")
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    from macro_pipeline.settings import load_settings
    from macro_pipeline.warehouse import embedded

    settings = load_settings()
    if not settings.embedded:
        print("an external database is configured (MACRO_PIPELINE_DATABASE_URL): nothing to stop")
        return 0
    stopped = embedded.stop_embedded(settings.home)
    print(f"stopped embedded PostgreSQL in {settings.pgdata}" if stopped else "embedded PostgreSQL was not running")
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    from macro_pipeline.settings import database_url

    print(database_url())
    return 0


# --------------------------------------------------------------------------- data


def cmd_ingest(args: argparse.Namespace) -> int:
    from macro_pipeline.warehouse import ingest

    engine = _migrated_engine(args)
    for path in args.files:
        report = ingest.ingest(
            engine, args.kind, path, register_unknown=args.register_instruments,
            register_release_rule=args.release_rule, show_progress=not args.quiet,
            correction=args.correction,
        )
        print(report.summary())
    return 0


def cmd_demo_data_load(args: argparse.Namespace) -> int:
    from macro_pipeline.warehouse.demo import load_demo

    for report in load_demo(_migrated_engine(args), show_progress=not args.quiet):
        print(report.summary())
    return 0


def cmd_stored(args: argparse.Namespace) -> int:
    from macro_pipeline.warehouse.inventory import inventory, render_inventory

    inv = inventory(_migrated_engine(args))
    print(json.dumps(inv, indent=2, default=str) if args.json else render_inventory(inv))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job through Dagster: ingest, register, backtest every month, rank (see demo.py)."""
    from macro_pipeline.defs import instance as orchestration
    from macro_pipeline.demo import run_demo
    from macro_pipeline.settings import database_url, load_settings
    from macro_pipeline.warehouse import db

    settings = load_settings()
    result = run_demo(show_progress=not args.quiet, workers=args.workers, only=args.strategy)
    print()
    print("leaderboard (full history stitched from the monthly runs, ranked by Sharpe):")
    board = result.leaderboard.drop(columns=["runs_sha256", "newest_run", "stress"], errors="ignore")
    for col in ("total_return", "cagr", "annual_volatility", "max_drawdown"):
        if col in board:
            board[col] = board[col].map(lambda v: f"{v:.2%}")
    for col in ("sharpe", "sortino", "calmar"):
        if col in board:
            board[col] = board[col].map(lambda v: f"{v:.2f}")
    print(board.to_string())
    print()
    print(f"{result.months_materialized} strategy-months materialized in {result.seconds['backtests']:.0f} s "
          f"(ingest {result.seconds['ingest']:.0f} s)")
    print(f"warehouse: {db.render(database_url(settings))} (tables backtest_runs, daily_equity, fills, "
          "round_trips, metrics, signal_snapshots)")
    print(f"Dagster instance: {orchestration.dagster_home(settings)} (storage: "
          f"{db.render(orchestration.storage_url(settings))})")
    if settings.embedded:
        print(f"embedded PostgreSQL data: {settings.pgdata} (stop it with `macro-pipeline db stop`)")
    if result.reports:
        print("reports (self-contained HTML, open in any browser):")
        for path in result.reports:
            print(f"  {path}")
    print("open the UI on these results: macro-pipeline dev   (then http://127.0.0.1:3000)")
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """Dagster's webserver and daemon (``dagster dev``) on this project's instance, bound to
    127.0.0.1 unless told otherwise."""
    import os

    from macro_pipeline.defs import instance as orchestration

    env = {**os.environ, **orchestration.prepare()}
    cmd = [sys.executable, "-m", "dagster", "dev", "-m", "macro_pipeline.defs", "--host", args.host,
           "--port", str(args.port)]
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={env['DAGSTER_HOME']}); Ctrl-C stops it",
          flush=True)
    # become `dagster dev` (same pid): SIGTERM or Ctrl-C reach it directly and it shuts down the
    # webserver, the daemon and the code server itself. Started in the background (`nohup ... &`)
    # SIGINT arrives ignored, and an ignored signal stays ignored across exec: Dagster then copies
    # that onto SIGTERM and nothing stops it. Both get their default disposition, unblocked.
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    os.execve(sys.executable, cmd, env)
    return 0  # not reached


def cmd_worker(args: argparse.Namespace) -> int:
    """A Celery worker for the code location: ``dagster-celery worker start`` on this project's app
    (``defs/celery_app.py``: broker, backend and acknowledgement rules from the settings), with
    ``--concurrency`` processes. Its environment is the one every Dagster process of the project
    gets (``orchestration.prepare``)."""
    import os
    import shutil

    from macro_pipeline.defs import instance as orchestration
    from macro_pipeline.settings import load_settings
    from macro_pipeline.warehouse import db

    settings = load_settings()
    env = {**os.environ, **orchestration.prepare(settings)}
    # dagster-celery starts `celery` from PATH: this environment's own first
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    exe = shutil.which("dagster-celery", path=env["PATH"])
    if exe is None:
        raise FileNotFoundError("dagster-celery is not installed in this environment (pip install dagster-celery)")
    cmd = [exe, "worker", "start", "--app", "macro_pipeline.defs.celery_app", "--loglevel", args.loglevel]
    if args.name:
        cmd += ["--name", args.name]
    for queue in args.queue or []:
        cmd += ["--queue", queue]
    cmd += ["--", f"--concurrency={args.concurrency}", "--pool=prefork"]
    print(f"Celery worker ({args.concurrency} process(es)) on broker {db.render(settings.celery_broker)}, "
          f"results in {db.render(settings.celery_backend)}; Ctrl-C stops it", flush=True)
    os.execve(exe, cmd, env)  # become the worker: signals reach it directly
    return 0  # not reached


# --------------------------------------------------------------------------- strategies and runs


def _sync_builtin(engine) -> None:
    """Register the repository's strategy configurations (idempotent; conflicts are errors)."""
    from macro_pipeline.backtests import sync_builtin_strategies

    sync_builtin_strategies(engine)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def cmd_strategies_list(args: argparse.Namespace) -> int:
    from macro_pipeline.backtests import list_strategies

    engine = _migrated_engine(args)
    _sync_builtin(engine)
    frame = list_strategies(engine)
    if args.json:
        print(json.dumps([{"strategy_id": r.strategy_id, "kind": r.kind, "universe": r.universe,
                           "params_hash": r.params_hash, **{k: v for k, v in r.params.items() if k in ("rebalance", "calendar")},
                           "params": r.params["params"]} for r in frame.itertuples()], indent=2))
        return 0
    rows = [[r.strategy_id, r.kind, r.universe, r.params["rebalance"], r.params["calendar"], r.params_hash[:12],
             " ".join(f"{k}={v}" for k, v in sorted(r.params["params"].items()))] for r in frame.itertuples()]
    print(_table(rows, ["strategy_id", "kind", "universe", "rebalance", "calendar", "params_hash", "params"]))
    return 0


def describe_kinds(kinds: Sequence[str] | None = None) -> str:
    """Each strategy kind (all, or ``kinds``): its calendars and defaults, and every parameter
    with its type, allowed values (bounds), default and meaning."""
    from macro_pipeline.strategies.registry import KINDS, strategy_class

    blocks = []
    for kind in kinds or list(KINDS):
        cls = strategy_class(kind)
        head = (f"{kind}: universe {cls.default_universe}, rebalance {cls.default_rebalance}, calendar "
                f"{cls.default_calendar} (allowed: {', '.join(cls.calendars)})")
        rows = [[p["name"], p["type"], json.dumps(p["default"]), p["allowed"] or "", p["doc"]]
                for p in cls.Params.describe()]
        blocks.append(head + ("\n" + _table(rows, ["param", "type", "default", "allowed", "meaning"]) if rows
                              else "\n(no parameters)"))
    return "\n\n".join(blocks)


def cmd_strategies_describe(args: argparse.Namespace) -> int:
    from macro_pipeline.strategies.registry import strategy_class

    if args.json:
        print(json.dumps({k: strategy_class(k).Params.describe() for k in args.kinds or _kinds()}, indent=2,
                         default=str))
        return 0
    print(describe_kinds(args.kinds or None))
    return 0


def _kinds() -> list[str]:
    from macro_pipeline.strategies.registry import KINDS

    return list(KINDS)


def cmd_strategies_add(args: argparse.Namespace) -> int:
    from macro_pipeline.backtests import register_strategy
    from macro_pipeline.strategies.base import StrategyConfig
    from macro_pipeline.strategies.registry import parse_params

    params = parse_params(args.kind, args.param or [])
    cfg = StrategyConfig(args.id, args.kind, params, universe=args.universe, rebalance=args.rebalance,
                         calendar=args.calendar)  # validates id, kind and every parameter first
    engine = _migrated_engine(args)
    status = register_strategy(engine, cfg)
    print(f"{status}: {cfg.strategy_id} ({cfg.kind}, universe {cfg.universe}, params hash {cfg.params_hash[:12]})")
    return 0


_HEADLINE = ("total_return", "cagr", "annual_volatility", "sharpe", "sortino", "calmar", "max_drawdown",
             "max_drawdown_duration_days", "var_95", "cvar_95", "tail_index", "win_rate", "profit_factor",
             "avg_win", "avg_loss", "avg_holding_days", "trade_count", "turnover", "gross_exposure", "net_exposure")
_PERCENT = {"total_return", "cagr", "annual_volatility", "max_drawdown", "var_95", "cvar_95", "win_rate",
            "turnover", "gross_exposure", "net_exposure"}


def _fmt(name: str, value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if name in _PERCENT:
        return f"{100 * value:.2f}%"
    if name in ("trade_count", "max_drawdown_duration_days"):
        return f"{int(value)}"
    return f"{value:.3f}"


def cmd_backtest(args: argparse.Namespace) -> int:
    from macro_pipeline.backtests import run_backtest

    engine = _migrated_engine(args)
    _sync_builtin(engine)
    out = run_backtest(engine, args.strategy, args.start, args.end, clean=args.clean, system_as_of=args.system_as_of)
    if args.json:
        print(json.dumps(out.to_json(), default=str))
        return 0
    print(f"run {out.run_id}  strategy {args.strategy}  {args.start}..{args.end}  {'clean' if args.clean else 'realistic costs'}")
    print(f"signal snapshot {out.snapshot_id} ({'new' if out.snapshot_new else 'reused'}), system_as_of {out.system_as_of.isoformat()}")
    print(_table([[k, _fmt(k, out.metrics.get(k))] for k in _HEADLINE], ["metric", "value"]))
    return 0


def _run_status(r) -> str:
    """The run's ``standing`` as the warehouse computes it (`runs.standing_sql`: current |
    superseded | reproduction | a failed status), with the run a reproduction reproduces. A
    missing id is NaN in pandas 3's string columns (truthy), hence the type test."""
    if r.standing == "reproduction" and isinstance(r.reproduces, str):
        return f"reproduction of {r.reproduces[:12]}"
    return str(r.standing)


def cmd_runs_list(args: argparse.Namespace) -> int:
    from macro_pipeline.warehouse.runs import count_runs, list_runs

    engine = _migrated_engine(args)
    limit = None if args.all else args.limit
    frame = list_runs(engine, args.strategy, current_only=args.current, limit=limit)
    if args.json:
        print(frame.to_json(orient="records", date_format="iso"))
        return 0
    rows = [[r.run_id, r.strategy_id, f"{r.window_start}..{r.window_end}", "clean" if r.clean is True else "costs",
             _fmt("total_return", r.total_return), _fmt("sharpe", r.sharpe), r.signal_snapshot_id[:12],
             _run_status(r)] for r in frame.itertuples()]
    print(_table(rows, ["run_id", "strategy", "window", "mode", "total_return", "sharpe", "snapshot", "status"]))
    total = count_runs(engine, args.strategy, current_only=args.current) if limit is not None else len(frame)
    if total > len(frame):
        print(f"(the newest {len(frame):,} of {total:,} runs; --limit N or --all for more)")
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    from macro_pipeline.reports.data import resolve_run_id
    from macro_pipeline.warehouse.runs import load_run
    from macro_pipeline.warehouse.snapshots import read_snapshot

    engine = _migrated_engine(args)
    rec = load_run(engine, resolve_run_id(engine, args.run_id))  # a full id or a unique prefix
    snap = read_snapshot(engine, rec.meta["signal_snapshot_id"])
    m = rec.meta
    lineage = {
        "run_id": m["run_id"], "strategy_id": m["strategy_id"], "window": [str(m["window_start"]), str(m["window_end"])],
        "signal_snapshot_id": m["signal_snapshot_id"], "snapshot_rows": snap.row_count,
        "snapshot_code_version": snap.code_version, "snapshot_input_watermarks": snap.input_watermarks,
        "params_hash": snap.params_hash, "system_as_of": m["system_as_of"].isoformat(),
        "engine_version": m["engine_version"], "orchestrator_run_id": m["orchestrator_run_id"],
        "standing": m["standing"], "status": m["status"], "superseded_by": m["superseded_by"], "reproduction": m["reproduction"],
        "reproduces": m["reproduces"], "config": m["config"],
        "created_at": m["created_at"].isoformat(),
    }
    if args.json:
        print(json.dumps({**lineage, "metrics": rec.metrics, "sessions": len(rec.equity), "fills": len(rec.fills),
                          "round_trips": len(rec.round_trips)}, default=str))
        return 0
    for k, v in lineage.items():
        print(f"{k:<28}{json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}")
    print(f"{'rows':<28}{len(rec.equity)} sessions, {len(rec.fills)} fills, {len(rec.round_trips)} round trips")
    print()
    print(_table([[k, _fmt(k, rec.metrics.get(k))] for k in _HEADLINE], ["metric", "value"]))
    if args.signals:
        print()
        print(snap.weights.to_string(max_rows=40))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from macro_pipeline.reports.data import resolve_subject

    engine = _migrated_engine(args)
    subjects = [resolve_subject(engine, r) for r in args.runs]  # run ids, unique prefixes or strategy ids
    header = ["metric"] + [s.label for s in subjects]
    rows = [[k] + [_fmt(k, s.metrics.get(k)) for s in subjects] for k in _HEADLINE]
    rows.append(["window"] + [f"{s.stored_window[0]}..{s.stored_window[1]}" for s in subjects])
    print(_table(rows, header))
    if args.html:
        from macro_pipeline.reports import write_comparison

        print(f"wrote {write_comparison(engine, subjects, args.html)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from macro_pipeline.reports import write_reports, write_run_report, write_strategy_report
    from macro_pipeline.warehouse.report_reads import strategies_with_pipeline_runs

    engine = _migrated_engine(args)
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


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from macro_pipeline.warehouse.ingest import KINDS

    parser = argparse.ArgumentParser(
        prog="macro-pipeline",
        description="Point-in-time correct, reproducible cross-asset backtests on PostgreSQL + Dagster.",
    )
    parser.add_argument("--version", action="version", version=f"macro-pipeline {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="full tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db_p = sub.add_parser("db", help="the warehouse database: migrate, status, stop, url")
    db_sub = db_p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("migrate", help="apply pending sql/ files in order (idempotent)").set_defaults(func=cmd_db_migrate)
    db_sub.add_parser("status", help="where the warehouse is; applied and pending sql/ files").set_defaults(func=cmd_db_status)
    db_sub.add_parser("stop", help="stop the embedded PostgreSQL server").set_defaults(func=cmd_db_stop)
    db_sub.add_parser("url", help="print the warehouse URL (starts the embedded server if needed)").set_defaults(func=cmd_db_url)

    ing = sub.add_parser("ingest", help="validate and load files (CSV or Parquet)",
                         description="Formats: see macro_pipeline/warehouse/ingest.py or the README.")
    ing.add_argument("kind", choices=KINDS)
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
    ing.set_defaults(func=cmd_ingest)

    dd = sub.add_parser("demo-data", help="the bundled demo data set")
    dd_sub = dd.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    load = dd_sub.add_parser("load", help="put the demo data in the warehouse (idempotent)")
    load.add_argument("-q", "--quiet", action="store_true")
    load.set_defaults(func=cmd_demo_data_load)

    st = sub.add_parser("stored", help="what the warehouse holds: row counts, spans, watermarks")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_stored)

    strat = sub.add_parser("strategies", help="strategy configurations: list, describe, add")
    strat_sub = strat.add_subparsers(dest="strategies_command", required=True, metavar="ACTION")
    sl = strat_sub.add_parser("list", help="registered configurations (the repository's file is registered first)")
    sl.add_argument("--json", action="store_true")
    sl.set_defaults(func=cmd_strategies_list)
    sd = strat_sub.add_parser("describe", help="strategy kinds and their parameters (type, bounds, default)")
    sd.add_argument("kinds", nargs="*", metavar="KIND", help=f"one or more of {', '.join(_kinds())} (default: all)")
    sd.add_argument("--json", action="store_true")
    sd.set_defaults(func=cmd_strategies_describe)
    sa_ = strat_sub.add_parser("add", help="register a new configuration (every parameter validated)",
                               formatter_class=argparse.RawDescriptionHelpFormatter,
                               epilog="kinds and their parameters (--param NAME=VALUE):\n\n" + describe_kinds())
    sa_.add_argument("--id", required=True)
    sa_.add_argument("--kind", required=True, help=f"one of {', '.join(_kinds())} (see below)")
    sa_.add_argument("--param", action="append", metavar="K=V", help="a parameter; repeat for several")
    sa_.add_argument("--universe")
    sa_.add_argument("--rebalance", choices=["daily", "weekly", "monthly"])
    sa_.add_argument("--calendar", choices=["XNYS", "24/7"])
    sa_.set_defaults(func=cmd_strategies_add)

    bt = sub.add_parser("backtest", help="one backtest: snapshot, engine, stored run with lineage")
    bt.add_argument("--strategy", required=True)
    bt.add_argument("--start", required=True, metavar="YYYY-MM-DD")
    bt.add_argument("--end", required=True, metavar="YYYY-MM-DD")
    bt.add_argument("--clean", action="store_true", help="zero trading costs (a frictionless reference)")
    bt.add_argument("--system-as-of", metavar="TIMESTAMP", help="read the warehouse as stored then (reproduce a run)")
    bt.add_argument("--json", action="store_true")
    bt.set_defaults(func=cmd_backtest)

    runs = sub.add_parser("runs", help="stored backtest runs: list, show")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    rl = runs_sub.add_parser("list", help="stored runs with their standing (the newest --limit by default)")
    rl.add_argument("--strategy")
    rl.add_argument("--limit", type=int, default=50, metavar="N", help="the newest N runs (default 50)")
    rl.add_argument("--all", action="store_true", help="every run (no limit)")
    rl.add_argument("--current", action="store_true", help="only current runs (neither superseded nor reproductions)")
    rl.add_argument("--json", action="store_true")
    rl.set_defaults(func=cmd_runs_list)
    rs = runs_sub.add_parser("show", help="a run's lineage and metrics")
    rs.add_argument("run_id", help="a run id or a unique prefix of one")
    rs.add_argument("--json", action="store_true")
    rs.add_argument("--signals", action="store_true", help="also print the snapshot's weights")
    rs.set_defaults(func=cmd_runs_show)

    cmp_ = sub.add_parser("compare", help="side-by-side metrics of stored runs and strategy histories")
    cmp_.add_argument("runs", nargs="+", metavar="RUN_OR_STRATEGY",
                      help="a run id (or unique prefix) or a strategy id (its stitched monthly pipeline runs)")
    cmp_.add_argument("--html", metavar="PATH", help="also write an HTML comparison (file or directory)")
    cmp_.set_defaults(func=cmd_compare)

    rep = sub.add_parser("report", help="self-contained HTML report of a run or a strategy's full history")
    rep.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="a stored run id (or unique prefix)")
    rep.add_argument("--strategy", action="append", metavar="ID",
                     help="a strategy's full history from its monthly pipeline runs; repeat for several")
    rep.add_argument("--all-strategies", action="store_true", help="one report per strategy with pipeline runs")
    rep.add_argument("--out", metavar="PATH",
                     help="a file (one report) or a directory; default $MACRO_PIPELINE_HOME/reports")
    rep.add_argument("--benchmark", metavar="INSTRUMENT", help="drawn against equity (default SPX, the demo's S&P 500)")
    rep.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    rep.set_defaults(func=cmd_report)

    dev = sub.add_parser("dev", help="Dagster webserver + daemon on this project's instance (127.0.0.1)")
    dev.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(func=cmd_dev)

    wk = sub.add_parser("worker", help="a Celery worker executing steps of runs (MACRO_PIPELINE_EXECUTOR=celery)")
    wk.add_argument("--concurrency", type=int, default=1,
                    help="steps this worker runs at once, one process each (default 1)")
    wk.add_argument("--name", help="worker name (default dagster-<random>); the host name is appended")
    wk.add_argument("--queue", action="append", help="queue to consume (default dagster); repeatable")
    wk.add_argument("--loglevel", default="INFO")
    wk.set_defaults(func=cmd_worker)

    demo = sub.add_parser("demo", help="the main job through Dagster: demo data, strategies, every month, leaderboard")
    demo.add_argument("-q", "--quiet", action="store_true")
    demo.add_argument("--workers", type=int, default=2, help="strategy runs at a time (default 2: one per core)")
    demo.add_argument("--strategy", action="append", metavar="ID",
                      help="backtest only this strategy (repeatable; default: every registered one)")
    demo.set_defaults(func=cmd_demo)

    from macro_pipeline.research.cli import add_parsers as add_sweep_parsers

    add_sweep_parsers(sub)  # sweep, sweeps
    return parser


def _without_trace(record: logging.LogRecord) -> bool:
    record.exc_info, record.exc_text, record.stack_info = None, None, None
    return True


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
    from macro_pipeline.warehouse.errors import IngestValidationError, LookAheadError
    from macro_pipeline.warehouse.migrate import MigrationError

    try:
        return int(args.func(args) or 0)
    except (IngestValidationError, LookAheadError, MigrationError, ValueError, FileNotFoundError) as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line; the trace only under --verbose
        if args.verbose:
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {type(exc).__name__}: {first} (rerun with --verbose for the trace)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
