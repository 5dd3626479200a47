"""The main job (``make demo`` / ``macro-pipeline demo``), through Dagster end to end.

On the configured warehouse (embedded PostgreSQL by default) and the project's persistent Dagster
instance (``defs.instance``), it:

1. runs ``ingest_job`` (every ingest asset on the bundled demo data; idempotent);
2. registers the built-in strategies and adds each as a ``strategy`` partition key;
3. runs ``backtest_job`` once per strategy over every month that is missing or not yet complete
   (the whole history on a fresh machine, only the newest month afterwards), one run each, with a
   progress bar;
4. runs ``leaderboard_job``;

``backtest_metrics`` writes each strategy's full-history HTML report and ``leaderboard`` the
comparison of all of them, under ``$MACRO_PIPELINE_HOME/reports``; the demo prints their paths.

so everything it stores is visible in the Dagster UI (``macro-pipeline dev``) as materializations
of the same assets, runs and checks the sensors and schedule use. Runs execute in this process
(``execute_in_process``) against the persistent instance: no daemon is needed for the demo.
Strategy runs go to ``workers`` processes at a time (default 2, one per core; never two runs of
the same strategy): a run spends much of its time waiting on PostgreSQL, so two overlap well.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class DemoResult:
    leaderboard: pd.DataFrame
    dagster_runs: dict[str, str] = field(default_factory=dict)  # what -> Dagster run id
    seconds: dict[str, float] = field(default_factory=dict)
    months_materialized: int = 0
    reports: list = field(default_factory=list)  # HTML files the pipeline wrote (per strategy, comparison)


def quiet_warnings() -> None:
    """Keep the demo's output readable: Dagster's beta notices and pandas' deprecation notices
    are for developers (the test suite shows them)."""
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*Pandas4Warning.*")
    warnings.filterwarnings("ignore", module="pandas")


def _run(job_name: str, instance, tags: dict[str, str] | None = None):
    from macro_pipeline.defs import defs

    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, tags=tags or {}, run_config=QUIET_LOGS, raise_on_error=True)
    return result


def _backtest_in_worker(tags: dict[str, str]) -> tuple[str, float]:
    """One ``backtest_job`` run in a worker process (the environment comes from ``prepare``), with
    the configured executor (``MACRO_PIPELINE_EXECUTOR``: under ``celery`` its steps run on
    ``macro-pipeline worker`` processes)."""
    from macro_pipeline.defs import instance

    quiet_warnings()
    started = time.perf_counter()
    run_id, success = instance.run_job("backtest_job", tags, instance.instance(), raise_on_error=True)
    if not success:
        raise RuntimeError(f"backtest_job run {run_id} failed (see it in the Dagster UI: macro-pipeline dev)")
    return run_id, time.perf_counter() - started


def run_backtests(reruns, *, trigger: str, workers: int = 2, show_progress: bool = True) -> dict[str, tuple[str, float]]:
    """Run ``backtest_job`` for each rerun (one strategy each), ``workers`` at a time, longest
    first; strategy -> (Dagster run id, seconds)."""
    from macro_pipeline.defs.automation.jobs import rerun_request

    ordered = sorted(reruns, key=lambda r: len(r.months), reverse=True)
    return run_requests([rerun_request(r, trigger, trigger) for r in ordered], workers=workers,
                        show_progress=show_progress)


def run_requests(requests, *, workers: int = 2, show_progress: bool = True) -> dict[str, tuple[str, float]]:
    """Execute ``backtest_job`` run requests (as the sensors and the schedule make them), in
    order, ``workers`` at a time; strategy -> (Dagster run id, seconds)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    from macro_pipeline.defs.automation.jobs import RANGE_END_TAG, RANGE_START_TAG, STRATEGY_TAG

    def label(tags: dict) -> str:
        return f"{tags[STRATEGY_TAG]} {tags[RANGE_START_TAG][:7]}..{tags[RANGE_END_TAG][:7]}"

    done: dict[str, tuple[str, float]] = {}
    bar = tqdm(total=len(requests), desc="backtest_job", unit="strategy", disable=not show_progress)
    if workers <= 1:
        for request in requests:
            bar.set_postfix_str(label(request.tags))
            done[request.tags[STRATEGY_TAG]] = _backtest_in_worker(dict(request.tags))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_backtest_in_worker, dict(r.tags)): r for r in requests}
            for future in as_completed(futures):
                tags = futures[future].tags
                done[tags[STRATEGY_TAG]] = future.result()
                bar.set_postfix_str(f"{label(tags)} done")
                bar.update()
    bar.close()
    return done


def run_demo(show_progress: bool = True, say: Callable[[str], None] = print, workers: int = 2,
             only: list[str] | None = None) -> DemoResult:
    """``only``: backtest just these strategy ids (all registered ones by default)."""
    from macro_pipeline.backtest.configs import sync_builtin_strategies
    from macro_pipeline.backtest.leaderboard import leaderboard_frame
    from macro_pipeline.backtest.reruns import nightly_reruns
    from macro_pipeline.defs import instance as defs_instance
    from macro_pipeline.defs.automation.jobs import TRIGGER_TAG
    from macro_pipeline.defs.backtest.partitions import STRATEGY_DIMENSION
    from macro_pipeline.warehouse import connection as db
    from macro_pipeline.warehouse import migrate
    from macro_pipeline.warehouse.strategies import registered

    quiet_warnings()
    out = DemoResult(pd.DataFrame())
    instance = defs_instance.instance()
    engine = db.get_engine()
    migrate.migrate(engine)
    if only:  # refuse an unknown id before minutes of ingest, not after
        sync_builtin_strategies(engine)
        if unknown := sorted(set(only) - set(registered(engine))):
            raise ValueError(f"unknown strategy id(s) {unknown}; registered: {', '.join(sorted(registered(engine)))}")

    t = time.perf_counter()
    say("ingest_job: loading the bundled demo data (prices, macro vintages, funding, actions, universes, signals)")
    result = _run("ingest_job", instance, {TRIGGER_TAG: "demo"})
    out.dagster_runs["ingest_job"] = result.run_id
    for event in result.get_asset_materialization_events():
        meta = event.step_materialization_data.materialization.metadata
        added = meta.get("rows_added")
        say(f"  {event.asset_key.to_user_string():<22} rows added {added.value if added else 0:>9,}")
    out.seconds["ingest"] = time.perf_counter() - t

    sync_builtin_strategies(engine)
    strategies = sorted(registered(engine))
    if only:
        unknown = sorted(set(only) - set(strategies))
        if unknown:
            raise ValueError(f"unknown strategy id(s) {unknown}; registered: {', '.join(strategies)}")
        strategies = sorted(set(only))
    known = set(instance.get_dynamic_partitions(STRATEGY_DIMENSION))
    if new := [s for s in strategies if s not in known]:
        instance.add_dynamic_partitions(STRATEGY_DIMENSION, new)
    say(f"strategies: {len(strategies)} registered ({', '.join(strategies)})")

    t = time.perf_counter()
    reruns = nightly_reruns(engine, strategies)
    for sid, (run_id, _secs) in run_backtests(reruns, trigger="demo", workers=workers, show_progress=show_progress).items():
        out.dagster_runs[f"backtest_job {sid}"] = run_id
    out.months_materialized = sum(len(r.months) for r in reruns)
    out.seconds["backtests"] = time.perf_counter() - t

    t = time.perf_counter()
    result = _run("leaderboard_job", instance, {TRIGGER_TAG: "demo"})
    out.dagster_runs["leaderboard_job"] = result.run_id
    out.seconds["leaderboard"] = time.perf_counter() - t
    out.leaderboard = leaderboard_frame(engine)
    from macro_pipeline.reports import reports_dir

    folder = reports_dir()
    out.reports = [p for p in [folder / "leaderboard.html", *(folder / f"strategy-{s}.html" for s in out.leaderboard.index)]
                   if p.exists()]
    return out
