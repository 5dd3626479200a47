"""The leaderboard: every strategy with pipeline results, ranked on its stitched full history
(current monthly runs only), with a digest naming exactly which runs were ranked."""

from __future__ import annotations

import hashlib

import pandas as pd
import sqlalchemy as sa

from macro_pipeline.backtest.configs import load_strategy
from macro_pipeline.backtest.months import stitched_history
from macro_pipeline.engine import compute_metrics
from macro_pipeline.engine.metrics import stress_table, tail_risk
from macro_pipeline.warehouse.strategies import list_strategies


def runs_digest(run_ids: list[str]) -> str:
    """sha256 of run ids in window order, comma-joined: names the exact set of runs a ranking used."""
    return hashlib.sha256(",".join(run_ids).encode()).hexdigest()


def leaderboard_frame(engine: sa.Engine) -> pd.DataFrame:
    """Every strategy with pipeline results, ranked by Sharpe on its stitched full history (current
    monthly runs only: superseded runs and reproductions are never ranked). Columns: the headline
    metrics (annualised with each strategy's own calendar: 252 sessions, 365 days for 24/7; see
    `engine.metrics`), tails (``worst_month``, ``es_95``, ``es_99``), ``stress`` (stress window ->
    return inside it, for the windows the history covers), ``calendar``, ``first``/``last`` session,
    and what was ranked: ``runs`` (count), ``runs_sha256`` (``runs_digest`` of their ids in window
    order) and ``newest_run``."""
    rows = {}
    strategies = list_strategies(engine)
    for strategy_id in strategies["strategy_id"] if len(strategies) else []:
        eq, run_ids = stitched_history(engine, strategy_id)
        if len(eq) < 2:
            continue
        calendar = load_strategy(engine, strategy_id).calendar
        r = eq.pct_change().dropna()
        m = compute_metrics(r, calendar=calendar)
        tails = tail_risk(r)
        rows[strategy_id] = {k: m[k] for k in ("total_return", "cagr", "annual_volatility", "sharpe", "sortino",
                                               "max_drawdown", "calmar")} | {
            "worst_month": tails["worst_month"], "es_95": tails["es_95"], "es_99": tails["es_99"],
            "stress": {w.window: w.total_return for w in stress_table(r, calendar=calendar).itertuples()},
            "calendar": calendar, "first": eq.index[0].date(), "last": eq.index[-1].date(), "runs": len(run_ids),
            "runs_sha256": runs_digest(run_ids), "newest_run": run_ids[-1]}
    board = pd.DataFrame.from_dict(rows, orient="index")
    return board.sort_values("sharpe", ascending=False) if len(board) else board
