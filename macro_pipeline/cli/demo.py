"""``macro-pipeline demo-data load`` (the bundled data set) and ``demo`` (the main job through
Dagster: ingest, register, backtest every month, rank)."""

from __future__ import annotations

import argparse

from macro_pipeline.cli.db import migrated_engine
from macro_pipeline.defs import instance
from macro_pipeline.demo.load import load_demo
from macro_pipeline.demo.run import run_demo
from macro_pipeline.settings import database_url, load_settings
from macro_pipeline.warehouse import connection as db


def cmd_demo_data_load(args: argparse.Namespace) -> int:
    for report in load_demo(migrated_engine(args), show_progress=not args.quiet):
        print(report.summary())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job through Dagster: ingest, register, backtest every month, rank (see demo/run.py)."""
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
    print(f"Dagster instance: {instance.dagster_home(settings)} (storage: "
          f"{db.render(instance.storage_url(settings))})")
    if settings.embedded:
        print(f"embedded PostgreSQL data: {settings.pgdata} (stop it with `macro-pipeline db stop`)")
    if result.reports:
        print("reports (self-contained HTML, open in any browser):")
        for path in result.reports:
            print(f"  {path}")
    print("open the UI on these results: macro-pipeline dev   (then http://127.0.0.1:3000)")
    return 0
