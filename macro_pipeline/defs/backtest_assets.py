"""Strategy-side assets, partitioned by strategy x month. Thin: each reads its partition keys and
calls ``macro_pipeline.backtests``; no business math here.

(No ``from __future__ import annotations``: Dagster resolves resource types from annotations.)
"""

import dagster as dg

from macro_pipeline.defs.partitions import months_by_strategy, strategy_month_partitions
from macro_pipeline.defs.resources import WarehouseResource

GROUP = "backtest"
HEADLINE = ("total_return", "cagr", "annual_volatility", "sharpe", "sortino", "max_drawdown", "trade_count")


def _number(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


@dg.asset(
    partitions_def=strategy_month_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    deps=["prices", "macro_observations", "funding_rates", "corporate_actions", "universe_membership",
          "external_signals"],
    description="Point-in-time signal snapshots (immutable, content-hashed) per strategy and month.",
)
def signals(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    from macro_pipeline.backtests import month_signals

    engine = warehouse.engine()
    ids: dict[str, str] = {}
    for strategy_id, months in months_by_strategy(context.partition_keys).items():
        for month, sid in month_signals(engine, strategy_id, months).items():
            ids[f"{month}|{strategy_id}"] = sid
            context.log.info(f"{strategy_id} {month[:7]}: snapshot {sid or 'none (no data for this month)'}")
    snapshot_ids = sorted({s for s in ids.values() if s})
    data_version = dg.DataVersion(snapshot_ids[0]) if len(snapshot_ids) == 1 else None
    return dg.MaterializeResult(
        metadata={"signal_snapshot_ids": dg.MetadataValue.json(ids), "partitions": len(ids)},
        data_version=data_version,
    )


@dg.asset(
    partitions_def=strategy_month_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    deps=[signals],
    description="Backtest per strategy and month, continuing from the previous month's end state.",
)
def backtest(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    from macro_pipeline.backtests import run_months

    engine = warehouse.engine()
    stored: dict[str, dict] = {}
    for strategy_id, months in months_by_strategy(context.partition_keys).items():
        for o in run_months(engine, strategy_id, months, orchestrator_run_id=context.run_id):
            stored[f"{o.month}|{strategy_id}"] = {"status": o.status, "run_id": o.run_id,
                                                  "signal_snapshot_id": o.snapshot_id, "sessions": o.sessions}
    runs = [v for v in stored.values() if v["status"] == "stored"]
    metadata = {"partitions": len(stored), "runs_stored": len(runs), "runs": dg.MetadataValue.json(stored)}
    if len(stored) == 1:
        (only,) = stored.values()
        metadata["signal_snapshot_id"] = only["signal_snapshot_id"] or "none"
        metadata["run_id"] = only["run_id"] or "none"
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    partitions_def=strategy_month_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    deps=[backtest],
    description="Headline metrics of each stored monthly backtest (numbers the UI plots over time).",
)
def backtest_metrics(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    from macro_pipeline.backtests import current_month_runs

    engine = warehouse.engine()
    rows = []
    for strategy_id, months in months_by_strategy(context.partition_keys).items():
        rows += current_month_runs(engine, strategy_id, months)
    metadata: dict = {"partitions_with_results": len(rows)}
    if len(rows) == 1:
        for k in HEADLINE:
            v = _number(rows[0]["metrics"].get(k))
            if v is not None:
                metadata[k] = dg.MetadataValue.float(v)
    table = ["| strategy | month | " + " | ".join(HEADLINE) + " |", "|" + "---|" * (len(HEADLINE) + 2)]
    for r in rows:
        cells = [f"{_number(r['metrics'].get(k)):.4f}" if _number(r["metrics"].get(k)) is not None else "-" for k in HEADLINE]
        table.append(f"| {r['strategy_id']} | {r['month'][:7]} | " + " | ".join(cells) + " |")
    metadata["summary"] = dg.MetadataValue.md("\n".join(table))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(group_name=GROUP, deps=[backtest_metrics],
          description="All strategies ranked on full-history metrics of their stitched monthly runs.")
def leaderboard(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    from macro_pipeline.backtests import leaderboard_frame

    board = leaderboard_frame(warehouse.engine())
    context.log.info("\n" + board.to_string())
    md = board.to_markdown() if len(board) else "no strategy has stored results yet"
    meta = {"strategies": len(board), "leaderboard": dg.MetadataValue.md(md)}
    if len(board):
        meta["best_sharpe"] = dg.MetadataValue.float(float(board["sharpe"].max()))
        meta["best_strategy"] = str(board.index[0])
    return dg.MaterializeResult(metadata=meta)


BACKTEST_ASSETS = [signals, backtest, backtest_metrics, leaderboard]
