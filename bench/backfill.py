"""Full-history backfill of every built-in strategy through Dagster, and a nightly increment.

    python bench/backfill.py [--workers 2]

On throwaway databases (warehouse + Dagster storage) of the configured server (or the embedded
one), with the demo data minus its last day of prices:

1. direct: the same work without Dagster, in this process, one strategy after another
   (``month_signals`` + ``run_months`` + ``current_month_runs``, what the three assets call),
   split into reading inputs, engine and storing;
2. through Dagster: ``backtest_job`` over each strategy's whole history (one run per strategy,
   ``--workers`` at a time, as the demo does) and ``leaderboard_job``, on a Dagster instance
   stored in PostgreSQL;
3. nightly increment: the last day of prices arrives (ingest), the nightly schedule is
   evaluated, and its runs (the newest month of every strategy) plus the leaderboard execute.

Targets (issue #14): direct path < 10 s (signals and store each within 5x of the engine);
through Dagster < 60 s on 2 cores; nightly increment < 10 s; a revision rerun of one strategy
from 2000 to its newest month < 10 s. Prints the load (``uptime``) and Dagster's event counts.
Dagster's overhead share = 1 - (direct work / Dagster run time summed over runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from _common import scratch_database, server_url  # noqa: E402

from macro_pipeline.warehouse import connection as db  # noqa: E402


def _load_demo_minus_last_day(engine) -> pd.DataFrame:
    """Ingest the demo data without each instrument's last price row; return those rows."""
    from macro_pipeline.demo.load import ORDER, load_demo_frames
    from macro_pipeline.warehouse.ingest import ingest

    frames = load_demo_frames()
    prices = frames["prices"]
    last = prices.groupby("instrument_id")["obs_date"].transform("max") == prices["obs_date"]
    held_back = prices[last].copy()
    for key, kind in ORDER:
        frame = prices[~last] if key == "prices" else frames[key]
        if not frame.empty:
            ingest(engine, kind, frame, name=f"demo:{key}")
    return held_back


def direct(url: str) -> dict[str, float]:
    from macro_pipeline.backtest.configs import sync_builtin_strategies
    from macro_pipeline.backtest.months import (
        current_month_runs,
        load_month_inputs,
        month_signals,
        simulate_months,
        store_months,
    )
    from macro_pipeline.backtest.reruns import history_rerun
    from macro_pipeline.warehouse.strategies import registered

    engine = db.get_engine(url)
    _load_demo_minus_last_day(engine)
    sync_builtin_strategies(engine)
    t = {"signals": 0.0, "inputs": 0.0, "engine": 0.0, "store": 0.0, "metrics": 0.0, "months": 0, "epochs": {}}
    for sid in sorted(registered(engine)):
        months = history_rerun(engine, sid).months
        s0 = time.perf_counter()
        month_signals(engine, sid, months)
        s1 = time.perf_counter()
        plan = load_month_inputs(engine, sid, months)
        s2 = time.perf_counter()
        result = simulate_months(plan)
        s3 = time.perf_counter()
        store_months(engine, plan, result)
        s4 = time.perf_counter()
        current_month_runs(engine, sid, months)
        s5 = time.perf_counter()
        for k, a, b in (("signals", s0, s1), ("inputs", s1, s2), ("engine", s2, s3), ("store", s3, s4), ("metrics", s4, s5)):
            t[k] += b - a
        t["months"] += len(months)
        t["epochs"][sid] = getattr(plan, "epochs", 1)
    return t


def through_dagster(url: str, storage: str, workers: int) -> dict[str, float]:
    import dagster as dg

    from macro_pipeline.backtest.configs import sync_builtin_strategies
    from macro_pipeline.backtest.reruns import history_rerun, months_between
    from macro_pipeline.defs import defs
    from macro_pipeline.defs import instance as defs_instance
    from macro_pipeline.defs.automation.jobs import RANGE_END_TAG, RANGE_START_TAG
    from macro_pipeline.defs.automation.schedules import nightly_schedule
    from macro_pipeline.defs.resources import WarehouseResource
    from macro_pipeline.demo.run import QUIET_LOGS, quiet_warnings, run_backtests, run_requests
    from macro_pipeline.settings import DAGSTER_STORAGE_ENV, DATABASE_URL_ENV, HOME_ENV
    from macro_pipeline.warehouse.ingest import ingest
    from macro_pipeline.warehouse.strategies import registered

    quiet_warnings()
    home = Path(tempfile.mkdtemp(prefix="mp_bench_home_"))
    os.environ.update({DATABASE_URL_ENV: url, DAGSTER_STORAGE_ENV: storage, HOME_ENV: str(home),
                       "DAGSTER_HOME": str(home / "dagster")})
    instance = defs_instance.instance()
    engine = db.get_engine(url)
    held_back = _load_demo_minus_last_day(engine)
    sync_builtin_strategies(engine)
    strategies = sorted(registered(engine))
    instance.add_dynamic_partitions("strategy", strategies)
    reruns = [history_rerun(engine, s) for s in strategies]

    out: dict[str, float] = {"months": sum(len(r.months) for r in reruns)}
    t0 = time.perf_counter()
    runs = run_backtests(reruns, trigger="bench", workers=workers, show_progress=True)
    defs.resolve_job_def("leaderboard_job").execute_in_process(instance=instance, run_config=QUIET_LOGS)
    out["backfill_wall"] = time.perf_counter() - t0
    out["run_seconds_sum"] = sum(secs for _, secs in runs.values())

    t1 = time.perf_counter()
    ingest(engine, "prices", held_back, name="bench:last-day")
    ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=pd.Timestamp.now(tz="UTC").to_pydatetime(),
                                    resources={"warehouse": WarehouseResource(url=url)})
    requests = list(nightly_schedule(ctx))
    run_requests(requests, workers=workers, show_progress=False)
    defs.resolve_job_def("leaderboard_job").execute_in_process(instance=instance, run_config=QUIET_LOGS)
    out["nightly_wall"] = time.perf_counter() - t1
    out["nightly_months"] = sum(len(months_between(r.tags[RANGE_START_TAG][:10], r.tags[RANGE_END_TAG][:10]))
                                for r in requests)
    out["nightly_rows"] = len(held_back)

    # a revision of one strategy's inputs from 2000 on: its months 2000-01 .. newest rerun in one run
    from macro_pipeline.backtest.reruns import Rerun

    newest = history_rerun(engine, REVISED).last_month
    t2 = time.perf_counter()
    run_backtests([Rerun(REVISED, "2000-01-01", newest, "bench: revision from 2000")], trigger="bench-revision",
                  workers=1, show_progress=False)
    out["revision_wall"] = time.perf_counter() - t2
    out["revision_months"] = len(months_between("2000-01-01", newest))
    with db.get_engine(storage).connect() as conn:  # Dagster's own event log: what the runs wrote
        for kind in ("ASSET_MATERIALIZATION_PLANNED", "ASSET_MATERIALIZATION"):
            out[kind] = conn.execute(sa.text("SELECT count(*) FROM event_logs WHERE dagster_event_type = :k"),
                                     {"k": kind}).scalar()
        out["event_log_bytes"] = conn.execute(sa.text("SELECT pg_total_relation_size('event_logs')")).scalar()
    return out


REVISED = "ema-us-eq20"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--direct-only", action="store_true", help="only the direct path (no Dagster)")
    args = parser.parse_args()
    print(f"server: {db.render(server_url())}; {os.cpu_count()} cores; workers {args.workers}")
    print("load:", os.popen("uptime").read().strip())

    with scratch_database("mpbench_direct") as url:
        d = direct(url)
    direct_total = sum(v for k, v in d.items() if k not in ("months", "epochs"))
    print(f"\ndirect (no Dagster, one process, serial): {int(d['months'])} strategy-months")
    for k in ("signals", "inputs", "engine", "store", "metrics"):
        print(f"  {k:<8} {d[k]:8.1f} s")
    print(f"  total    {direct_total:8.1f} s")
    print("  vintage epochs per strategy (full as-of weights: one computation per epoch): "
          + ", ".join(f"{s} {n}" for s, n in sorted(d["epochs"].items())))
    if args.direct_only:
        return 0

    server = server_url()
    storage_name = f"mpbench_dagster_{uuid.uuid4().hex[:8]}"
    storage = db.create_database(server, storage_name)
    try:
        with scratch_database("mpbench_dag") as url:
            g = through_dagster(url, storage, args.workers)
    finally:
        db.drop_database(server, storage_name)
    overhead = 1 - direct_total / g["run_seconds_sum"]
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"  target: direct total < 10 s ({verdict(direct_total < 10)}); signals and store each within 5x of the "
          f"engine: signals {d['signals'] / d['engine']:.1f}x, store {d['store'] / d['engine']:.1f}x")
    print(f"\nthrough Dagster ({args.workers} runs at a time): {int(g['months'])} strategy-months")
    print(f"  full backfill wall time           {g['backfill_wall']:8.1f} s   (target < 60 s: {verdict(g['backfill_wall'] < 60)})")
    print(f"  Dagster run time, summed over runs {g['run_seconds_sum']:7.1f} s")
    print(f"  engine time (direct measurement)  {d['engine']:8.1f} s   ({d['engine'] / g['run_seconds_sum']:.1%} of run time)")
    print(f"  Dagster overhead share            {overhead:8.1%}   (1 - direct work / Dagster run time)")
    print(f"  nightly increment ({int(g['nightly_rows'])} new price rows, {int(g['nightly_months'])} strategy-months): "
          f"{g['nightly_wall']:.1f} s end to end (target < 10 s: {verdict(g['nightly_wall'] < 10)})")
    print(f"  revision rerun of {REVISED} from 2000 ({int(g['revision_months'])} months): {g['revision_wall']:.1f} s "
          f"end to end (target < 10 s: {verdict(g['revision_wall'] < 10)})")
    print(f"  Dagster events: {g['ASSET_MATERIALIZATION_PLANNED']} planned, {g['ASSET_MATERIALIZATION']} materializations; "
          f"event log {g['event_log_bytes'] / 2**20:.1f} MiB")
    print("load:", os.popen("uptime").read().strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
