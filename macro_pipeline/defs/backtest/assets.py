"""Strategy-side assets, partitioned by strategy x month. Thin: each reads its partition keys and
calls ``macro_pipeline.backtest``; no business math here.

``backtest`` is a graph-backed asset that fans out one branch per strategy stretch of the run
(dynamic outputs), so independent strategies are independent steps (on different workers under
the Celery executor, see ``defs/executors.py``): ``backtest_stretches`` groups the partition keys
by strategy; per stretch, ``backtest_inputs`` reads the point-in-time inputs, ``backtest_engine``
simulates it once (pure: no I/O), ``backtest_store`` writes one stored run per month in one
transaction; ``backtest_publish`` gathers the stretches' metadata and emits the checks. The
database steps retry on transient database errors (``retry_transient``) and only on those; a
retried store finds nothing of its own stretch stored, since the failed attempt rolled back.

(No ``from __future__ import annotations``: Dagster resolves resource types from annotations.)
"""

import hashlib
import json
import re
import time

import dagster as dg

from macro_pipeline.backtest.leaderboard import leaderboard_frame
from macro_pipeline.backtest.months import (
    current_month_runs,
    history_to_date_metrics,
    load_month_inputs,
    month_signals,
    simulate_months,
    store_months,
)
from macro_pipeline.defs.backtest.checks import (
    BACKTEST_CHECKS,
    SIGNALS_CHECKS,
    backtest_check_results,
    signals_check_results,
)
from macro_pipeline.defs.backtest.metadata import add_partition_metadata
from macro_pipeline.defs.backtest.partitions import (
    months_by_strategy,
    partition_key,
    strategy_month_partitions,
)
from macro_pipeline.defs.ingest.assets import FACT_ASSET_KEYS
from macro_pipeline.defs.resources import WarehouseResource, retry_transient
from macro_pipeline.reports import reports_dir, served_url, write_comparison, write_strategy_report
from macro_pipeline.reports.formatting import display_float
from macro_pipeline.warehouse.finite import finite_or_none

GROUP = "backtest"
HEADLINE = ("total_return", "cagr", "annual_volatility", "sharpe", "sortino", "max_drawdown", "trade_count")


def snapshot_data_version(ids: dict[str, str | None]) -> dg.DataVersion:
    """The ``signals`` data version: the snapshot id when the run wrote one partition; for a range,
    a hash of every partition's snapshot id (Dagster keeps one data version per asset and run), so
    any changed snapshot changes the version and marks the downstream backtest stale."""
    present = {k: v for k, v in ids.items() if v}
    if len(present) == 1:
        return dg.DataVersion(next(iter(present.values())))
    blob = json.dumps(sorted(present.items())).encode()
    return dg.DataVersion("range-" + hashlib.sha256(blob).hexdigest())


@dg.asset(
    partitions_def=strategy_month_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    deps=FACT_ASSET_KEYS,
    check_specs=SIGNALS_CHECKS,
    description="Point-in-time signal snapshots (immutable, content-hashed) per strategy and month.",
)
def signals(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    ids: dict[str, str | None] = {}
    with retry_transient(context):
        engine = warehouse.engine()
        for strategy_id, months in months_by_strategy(context.partition_keys).items():
            for month, sid in month_signals(engine, strategy_id, months).items():
                ids[partition_key(month, strategy_id)] = sid
        checks = signals_check_results(engine)  # emitted with the materializations they check
    add_partition_metadata(context, {k: {"signal_snapshot_id": sid or "none (no data for this month)"}
                                     for k, sid in ids.items()})
    written = sorted({s for s in ids.values() if s})
    context.log.info(f"{len(ids)} partition(s), {len(written)} distinct snapshot(s)")
    return dg.MaterializeResult(metadata={"partitions_in_run": len(ids)}, data_version=snapshot_data_version(ids),
                                check_results=checks)


def stretch_mapping_key(strategy_id: str, taken: set[str]) -> str:
    """A step-key-safe name for a strategy's stretch (Dagster allows ``[A-Za-z0-9_]``): the id with
    other characters as ``_``, made unique with a short hash when two ids map to the same name."""
    key = re.sub(r"[^A-Za-z0-9_]", "_", strategy_id)
    if key in taken:
        key += "_" + hashlib.sha256(strategy_id.encode()).hexdigest()[:8]
    return key


@dg.op(ins={"signals": dg.In(dg.Nothing)}, out=dg.DynamicOut(tuple),
       description="Fan out: one (strategy, months) stretch per strategy of the run's partition keys, so each "
                   "strategy's inputs, engine and store are steps of their own (on different workers under the "
                   "Celery executor).")
def backtest_stretches(context: dg.OpExecutionContext):
    taken: set[str] = set()
    for strategy_id, months in months_by_strategy(context.partition_keys).items():
        key = stretch_mapping_key(strategy_id, taken)
        taken.add(key)
        yield dg.DynamicOutput((strategy_id, months), mapping_key=key)


@dg.op(description="Read one strategy stretch's point-in-time inputs (weights, prices, actions, funding, "
                   "previous month's end state).")
def backtest_inputs(context: dg.OpExecutionContext, warehouse: WarehouseResource, stretch: tuple):
    strategy_id, months = stretch
    with retry_transient(context):
        inputs = load_month_inputs(warehouse.engine(), strategy_id, months)
    context.log.info(f"{strategy_id}: {len(months)} month(s) {months[0][:7]}..{months[-1][:7]}, "
                     f"{len(inputs.live)} with sessions in the data")
    return inputs


@dg.op(description="The engine: one simulation of the stretch, with a checkpoint at every month end. No I/O.")
def backtest_engine(context: dg.OpExecutionContext, inputs):
    started = time.perf_counter()
    result = simulate_months(inputs)
    context.add_output_metadata({"engine_seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 4))})
    return result


@dg.op(description="Store one run per month of the stretch (snapshot foreign key, equity, fills, trips, metrics, "
                   "states) in one transaction: the whole stretch or nothing.")
def backtest_store(context: dg.OpExecutionContext, warehouse: WarehouseResource, inputs, result) -> dict:
    with retry_transient(context):
        stored = store_months(warehouse.engine(), inputs, result, orchestrator_run_id=context.run.run_id)
    return {partition_key(o.month, inputs.strategy_id): {
        "status": o.status, "run_id": o.run_id or "none", "signal_snapshot_id": o.snapshot_id or "none",
        "sessions": o.sessions} for o in stored}


@dg.op(out={"result": dg.Out(dg.Nothing), "equity_invariant": dg.Out(dg.Nothing)},
       description="Gather the stretches: per-partition metadata on the materializations, then check the stored "
                   "results (the check result attaches to these materializations).")
def backtest_publish(context: dg.AssetExecutionContext, warehouse: WarehouseResource, stored: list):
    """The step whose output is the ``backtest`` asset's materializations (one per partition of the
    run), so it takes the asset context: per-partition metadata goes through its public
    ``add_asset_metadata``. The other ops of the graph produce intermediate values and take
    ``OpExecutionContext``."""
    per_partition = {k: v for part in stored for k, v in part.items()}
    add_partition_metadata(context, per_partition)
    context.add_asset_metadata({"runs_stored_in_this_run": sum(v["status"] == "stored" for v in per_partition.values()),
                                "stretches": len(stored)})
    yield dg.Output(None, "result")  # the materializations first: the check results then target them
    with retry_transient(context):
        checks = backtest_check_results(warehouse.engine())
    yield from checks


@dg.graph_asset(
    partitions_def=strategy_month_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    ins={"signals": dg.AssetIn(dagster_type=dg.Nothing)},
    check_specs=BACKTEST_CHECKS,
    description="Backtest per strategy and month, continuing from the previous month's end state. "
                "Ops: backtest_stretches fans out one stretch per strategy -> backtest_inputs -> backtest_engine "
                "-> backtest_store (one transaction each) -> backtest_publish (metadata and checks).",
)
def backtest(signals):
    def one_stretch(stretch):
        inputs = backtest_inputs(stretch)
        return backtest_store(inputs, backtest_engine(inputs))

    stored, equity_invariant = backtest_publish(backtest_stretches(signals).map(one_stretch).collect())
    return {"result": stored, "backtest_backtest_equity_invariant": equity_invariant}


def _headline_md(rows: list[dict]) -> str:
    table = ["| strategy | month | " + " | ".join(HEADLINE) + " |", "|" + "---|" * (len(HEADLINE) + 2)]
    for r in rows:
        cells = [f"{v:.4f}" if (v := finite_or_none(r["metrics"].get(k))) is not None else "-" for k in HEADLINE]
        table.append(f"| {r['strategy_id']} | {r['month'][:7]} | " + " | ".join(cells) + " |")
    return "\n".join(table)


@dg.asset(
    partitions_def=strategy_month_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    deps=[backtest],
    description="Headline metrics of each stored monthly backtest (numbers the UI plots over time), and the "
                "strategy's full-history HTML report.",
)
def backtest_metrics(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    rows, reports = [], {}
    with retry_transient(context):
        engine = warehouse.engine()
        for strategy_id, months in months_by_strategy(context.partition_keys).items():
            found = current_month_runs(engine, strategy_id, months)
            to_date = history_to_date_metrics(engine, strategy_id, [r["month"] for r in found]) if found else {}
            for r in found:
                r["to_date"] = to_date.get(r["month"], {})
            rows += found
            if found:  # one report per strategy: its whole stitched history, this run's months included
                reports[strategy_id] = write_strategy_report(engine, strategy_id)
                context.log.info(f"{strategy_id}: report {reports[strategy_id]}")
    add_partition_metadata(context, {
        partition_key(r["month"], r["strategy_id"]): {
            # plottable over partitions: the month's own return and trades, and the full history to
            # the month's end (one month annualised means nothing); rounded for display
            **{k: dg.MetadataValue.float(display_float(v)) for k in ("total_return",)
               if (v := finite_or_none(r["metrics"].get(k))) is not None},
            "trade_count": dg.MetadataValue.int(int(finite_or_none(r["metrics"].get("trade_count")) or 0)),
            **{f"{k}_to_date": dg.MetadataValue.float(display_float(v)) for k, v in r["to_date"].items()},
            "run_id": r["run_id"], "summary": dg.MetadataValue.md(_headline_md([r])),
            "report": dg.MetadataValue.path(str(reports[r["strategy_id"]])),
            # one click from the UI: the report on the 127.0.0.1 server `macro-pipeline dev` runs
            **({"report_url": dg.MetadataValue.url(u)} if (u := served_url(reports[r["strategy_id"]])) else {})}
        for r in rows})
    return dg.MaterializeResult(metadata={"partitions_with_results": len(rows),
                                          "reports": dg.MetadataValue.json({k: str(v) for k, v in reports.items()})})


@dg.asset(group_name=GROUP, deps=[backtest_metrics],
          description="All strategies ranked on full-history metrics of their stitched monthly runs, with an HTML "
                      "comparison of all of them.")
def leaderboard(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with retry_transient(context):
        engine = warehouse.engine()
        board = leaderboard_frame(engine)
        comparison = write_comparison(engine, list(board.index), reports_dir() / "leaderboard.html") if len(board) else None
    shown = board.drop(columns=["runs_sha256", "newest_run", "stress"], errors="ignore")
    context.log.info("\n" + shown.to_string())
    md = shown.to_markdown(floatfmt=".4f") if len(board) else "no strategy has stored results yet"
    # what was ranked: per strategy, its current monthly runs (count, digest of their ids in window
    # order, the newest one); never a superseded run or a reproduction
    ranked = {str(sid): {"runs": int(row["runs"]), "runs_sha256": row["runs_sha256"], "newest_run": row["newest_run"]}
              for sid, row in board.iterrows()}
    meta = {"strategies": len(board), "leaderboard": dg.MetadataValue.md(md),
            "ranked_runs": dg.MetadataValue.json(ranked),
            "runs_ranked": dg.MetadataValue.int(sum(r["runs"] for r in ranked.values())),
            # stress windows (engine.metrics.STRESS_WINDOWS): each strategy's return inside each it covers
            "stress_returns": dg.MetadataValue.json({str(sid): {w: round(v, 6) for w, v in row["stress"].items()}
                                                     for sid, row in board.iterrows()} if len(board) else {})}
    if len(board):
        meta["comparison_report"] = dg.MetadataValue.path(str(comparison))
        if url := served_url(comparison):  # one click from the UI (`macro-pipeline dev` serves it)
            meta["comparison_report_url"] = dg.MetadataValue.url(url)
        meta["best_sharpe"] = dg.MetadataValue.float(float(board["sharpe"].max()))
        meta["best_strategy"] = str(board.index[0])
        for sid, row in board.iterrows():  # one plottable series per strategy across materializations
            meta[f"sharpe/{sid}"] = dg.MetadataValue.float(float(row["sharpe"]))
            meta[f"cagr/{sid}"] = dg.MetadataValue.float(float(row["cagr"]))
            meta[f"runs/{sid}"] = dg.MetadataValue.int(int(row["runs"]))
    return dg.MaterializeResult(metadata=meta)


BACKTEST_ASSETS = [signals, backtest, backtest_metrics, leaderboard]
