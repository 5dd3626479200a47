"""The same multi-strategy backfill with the in-process executor and with 1 and 2 Celery workers.

    python bench/workers.py [--strategies a,b,c,d] [--first 1986-01-01] [--last 1997-12-01]

One ``backtest_job`` run over every (strategy, month) of the range, orchestrated by a separate
process (as the daemon's run launcher starts one), on a copy of one demo warehouse per mode and
a fresh Dagster storage database each, against the real broker (RabbitMQ 127.0.0.1:5672, results
in Redis 127.0.0.1:6379). Prints per mode the wall time of the run and the speedup over
in-process; then the broker's cost per step: the run's time outside its steps (orchestration,
events; for Celery also the broker round trips and each worker loading the run), 1 worker minus
in-process, divided by the number of steps. On a 2-core machine
2 workers can give at most 2x; the projection for N machines uses the measured critical path
(the longest strategy's inputs -> engine -> store) and the per-step overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import server_url  # noqa: E402

from macro_pipeline.settings import (  # noqa: E402
    CELERY_BACKEND_ENV,
    CELERY_BROKER_ENV,
    DAGSTER_STORAGE_ENV,
    DATABASE_URL_ENV,
    EXECUTOR_ENV,
    HOME_ENV,
)
from macro_pipeline.warehouse import connection as db  # noqa: E402
from macro_pipeline.warehouse import migrate

REPO = Path(__file__).resolve().parents[1]
BROKER, BACKEND = "pyamqp://guest@127.0.0.1:5672//", "redis://127.0.0.1:6379/0"


def _env(warehouse: str, storage: str, tmp: Path, executor: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update({"PYTHONPATH": str(REPO), DATABASE_URL_ENV: warehouse, DAGSTER_STORAGE_ENV: storage,
                HOME_ENV: str(tmp / "home"), "DAGSTER_HOME": str(tmp / "dagster_home"), EXECUTOR_ENV: executor,
                CELERY_BROKER_ENV: os.environ.get(CELERY_BROKER_ENV, BROKER),
                CELERY_BACKEND_ENV: os.environ.get(CELERY_BACKEND_ENV, BACKEND)})
    return env


def _wait_for_workers(env: dict[str, str], names: list[str], timeout: float = 120) -> None:
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app

    app = make_app(CeleryExecutor.for_cli(broker=env[CELERY_BROKER_ENV], backend=env[CELERY_BACKEND_ENV]).app_args())
    deadline = time.time() + timeout
    while time.time() < deadline:
        if set(names) <= {next(iter(r)).split("@")[0] for r in app.control.ping(timeout=1.0) or []}:
            return
    raise SystemExit(f"workers {names} did not answer the broker within {timeout} s")


def run_mode(server: str, base: str, strategies: list[str], tags: dict, executor: str, workers: int) -> dict:
    import dagster as dg

    names = [db.validate_database_name(f"bench_w_{uuid.uuid4().hex[:8]}") for _ in range(2)]
    warehouse = db.create_database(server, names[0], template=base)
    storage = db.create_database(server, names[1])
    procs: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench_workers_") as tmp_s:
            tmp = Path(tmp_s)
            env = _env(warehouse, storage, tmp, executor)
            subprocess.run([sys.executable, "-c", "import macro_pipeline.defs.instance as o; o.prepare()"], env=env,
                           check=True)
            os.environ[DAGSTER_STORAGE_ENV] = storage
            instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
            instance.add_dynamic_partitions("strategy", strategies)
            names_w = [f"bench{i}" for i in range(workers)]
            for name in names_w:
                procs.append(subprocess.Popen([sys.executable, "-m", "macro_pipeline.cli", "worker", "--name", name,
                                               "--concurrency", "1", "--loglevel", "WARNING"], env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                              start_new_session=True))
            if names_w:
                _wait_for_workers(env, names_w)
            code = ("import json, sys, time; from macro_pipeline.defs import instance as o; t = time.perf_counter(); "
                    "r = o.run_job('backtest_job', json.loads(sys.argv[1])); "
                    "print(json.dumps([*r, time.perf_counter() - t]))")
            out = subprocess.run([sys.executable, "-c", code, json.dumps(tags)], env=env, capture_output=True,
                                 text=True, check=True).stdout
            run_id, success, seconds = json.loads(out.strip().splitlines()[-1])
            if not success:
                raise SystemExit(f"{executor} x{workers}: run {run_id} failed")
            return {"seconds": seconds, **_step_timings(instance, run_id)}
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
        for name in names:
            db.drop_database(server, name)


def _step_timings(instance, run_id: str) -> dict:
    """Per step: seconds from submission to start (Celery only) and from start to success."""
    submitted, started, took = {}, {}, {}
    for record in instance.all_logs(run_id):
        event, key = record.dagster_event, record.step_key
        if event is None or key is None:
            continue
        if event.event_type_value == "ENGINE_EVENT" and record.message.startswith("Submitting celery task"):
            submitted[key] = record.timestamp
        elif event.event_type_value == "STEP_START":
            started.setdefault(key, record.timestamp)
        elif event.event_type_value == "STEP_SUCCESS":
            took[key] = record.timestamp - started[key]
    waits = [started[k] - submitted[k] for k in submitted if k in started]
    chains: dict[str, float] = {}
    for key, seconds in took.items():
        if "[" in key:
            chains[key.split("[")[1]] = chains.get(key.split("[")[1], 0.0) + seconds
    return {"steps": len(took), "step_seconds": sum(took.values()), "critical_path": max(chains.values(), default=0.0),
            "queue_wait": sum(waits) / len(waits) if waits else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strategies", default="tsmom-cross-asset,bh-us-eq20,ema-us-eq20,rsi-us-eq20")
    parser.add_argument("--first", default="1986-01-01")
    parser.add_argument("--last", default="1997-12-01")
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    tags = {"dagster/asset_partition_range_start": f"{args.first}|{strategies[0]}",
            "dagster/asset_partition_range_end": f"{args.last}|{strategies[-1]}"}

    from macro_pipeline.backtest.configs import sync_builtin_strategies
    from macro_pipeline.demo.load import load_demo

    server = server_url()
    base = db.validate_database_name(f"bench_wbase_{uuid.uuid4().hex[:8]}")
    engine = db.get_engine(db.create_database(server, base))
    try:
        migrate.migrate(engine)
        load_demo(engine)
        sync_builtin_strategies(engine)
        db.dispose_engines(base)
        # compile the engine's numba kernels into their on-disk cache first (as `make` does at
        # install), so that no mode pays for compilation
        subprocess.run([sys.executable, "-c", "import macro_pipeline.engine as e; e.warm_up()"], check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
        print(f"backfill: {len(strategies)} strategies x {args.first[:7]}..{args.last[:7]}, one run; "
              f"{os.cpu_count()} cores")
        results = {}
        for label, executor, workers in (("in-process", "in_process", 0), ("celery, 1 worker", "celery", 1),
                                         ("celery, 2 workers", "celery", 2)):
            results[label] = r = run_mode(server, base, strategies, tags, executor, workers)
            speedup = results["in-process"]["seconds"] / r["seconds"]
            print(f"  {label:<18} {r['seconds']:7.1f} s   speedup vs in-process {speedup:4.2f}x   "
                  f"{r['steps']} steps, {r['step_seconds']:.1f} s in steps")
        one, inproc = results["celery, 1 worker"], results["in-process"]
        # time outside steps (orchestration, events, and for Celery the broker round trips and the
        # worker loading the run for each step), per step; the difference is what the broker adds
        outside = {k: (r["seconds"] - r["step_seconds"]) for k, r in results.items()}
        per_step = (outside["celery, 1 worker"] - outside["in-process"]) / one["steps"]
        print(f"broker cost per step: {per_step * 1000:.0f} ms (time outside steps, 1 worker minus in-process, "
              f"per step); mean submission -> start {one['queue_wait'] * 1000:.0f} ms (1 worker, includes waiting "
              "for it to be free)")
        cp, work = results["celery, 2 workers"]["critical_path"], inproc["step_seconds"]
        for n in (4, 8, 16):
            projected = outside["in-process"] + max(cp, work / n) + one["steps"] * max(per_step, 0.0) / n
            print(f"  projected on {n:>2} workers: ~{projected:.0f} s (run overhead {outside['in-process']:.0f} s + "
                  f"max(critical path {cp:.1f} s, {work:.0f} s of step work / {n}) + broker cost / {n})")
    finally:
        db.drop_database(server, base)


if __name__ == "__main__":
    main()
