"""``macro-pipeline runs`` (stored backtest runs: list, show) and ``compare`` (side-by-side
metrics of runs and strategy histories)."""

from __future__ import annotations

import argparse
import json

from macro_pipeline.cli.db import migrated_engine
from macro_pipeline.cli.tables import headline_metrics, metric_table, table
from macro_pipeline.reports.formatting import plain_metric
from macro_pipeline.warehouse.runs import count_runs, list_runs, load_run
from macro_pipeline.warehouse.snapshots import read_snapshot


def _run_status(r) -> str:
    """The run's ``standing`` as the warehouse computes it (`runs.standing_sql`: current |
    superseded | reproduction | a failed status), with the run a reproduction reproduces. A
    missing id is NaN in pandas 3's string columns (truthy), hence the type test."""
    if r.standing == "reproduction" and isinstance(r.reproduces, str):
        return f"reproduction of {r.reproduces[:12]}"
    return str(r.standing)


def cmd_runs_list(args: argparse.Namespace) -> int:
    engine = migrated_engine(args)
    limit = None if args.all else args.limit
    frame = list_runs(engine, args.strategy, current_only=args.current, limit=limit)
    if args.json:
        print(frame.to_json(orient="records", date_format="iso"))
        return 0
    rows = [[r.run_id, r.strategy_id, f"{r.window_start}..{r.window_end}", "clean" if r.clean is True else "costs",
             plain_metric("total_return", r.total_return), plain_metric("sharpe", r.sharpe), r.signal_snapshot_id[:12],
             _run_status(r)] for r in frame.itertuples()]
    print(table(rows, ["run_id", "strategy", "window", "mode", "total_return", "sharpe", "snapshot", "status"]))
    total = count_runs(engine, args.strategy, current_only=args.current) if limit is not None else len(frame)
    if total > len(frame):
        print(f"(the newest {len(frame):,} of {total:,} runs; --limit N or --all for more)")
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    # reports import matplotlib and the engine (numba): kept out of the CLI's start-up
    from macro_pipeline.reports.data import resolve_run_id

    engine = migrated_engine(args)
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
    print(metric_table(rec.metrics))
    if args.signals:
        print()
        print(snap.weights.to_string(max_rows=40))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    # reports import matplotlib and the engine (numba): kept out of the CLI's start-up
    from macro_pipeline.reports.data import resolve_subject

    engine = migrated_engine(args)
    subjects = [resolve_subject(engine, r) for r in args.runs]  # run ids, unique prefixes or strategy ids
    header = ["metric"] + [s.label for s in subjects]
    rows = [[k] + [plain_metric(k, s.metrics.get(k)) for s in subjects] for k in headline_metrics()]
    rows.append(["window"] + [f"{s.stored_window[0]}..{s.stored_window[1]}" for s in subjects])
    print(table(rows, header))
    if args.html:
        from macro_pipeline.reports import write_comparison  # matplotlib: only when asked

        print(f"wrote {write_comparison(engine, subjects, args.html)}")
    return 0
