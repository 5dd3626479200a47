"""Backfills over Dagster's Celery executor on the real broker (RabbitMQ on 127.0.0.1:5672) with
Redis results (127.0.0.1:6379), executed by two real ``macro-pipeline worker`` processes.

The test fails (never skips, never mocks) when the broker or Redis do not answer. It works in a
RabbitMQ virtual host of its own (created and deleted here) so other users of the broker are
never disturbed, except by the broker restart, which restarts the whole server's app.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from macro_pipeline.settings import (
    CELERY_BACKEND_ENV,
    CELERY_BROKER_ENV,
    DAGSTER_STORAGE_ENV,
    DATABASE_URL_ENV,
    EXECUTOR_ENV,
    HOME_ENV,
)
from macro_pipeline.warehouse import connection as db
from macro_pipeline_tests.conftest import REPO, demo_with_strategies

pytestmark = pytest.mark.slow

STRATEGIES = ["tsmom-cross-asset", "bh-us-eq20", "ema-us-eq20", "rsi-us-eq20"]  # data from 1986, then 1990 on
FIRST, LAST = "1986-01-01", "1991-12-01"
RANGE = {"dagster/asset_partition_range_start": f"{FIRST}|{STRATEGIES[0]}",
         "dagster/asset_partition_range_end": f"{LAST}|{STRATEGIES[-1]}"}
BACKEND = "redis://127.0.0.1:6379/0"
# connections to the test's databases (warehouse + Dagster storage) at any moment of the
# 2-worker run: per process the warehouse pool holds at most 2 + 8 (db.get_engine) and Dagster's
# storage opens one per call in flight (NullPool); 3 processes run steps or orchestrate
CONNECTION_BOUND = 3 * (2 + 8 + 2)


def _broker_answers(url: str) -> None:
    import kombu
    import redis

    try:
        with kombu.Connection(url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.fail(f"RabbitMQ at {db.render(url)} does not answer ({exc}); the Celery tests need it running")
    try:
        redis.Redis.from_url(BACKEND, socket_timeout=5).ping()
    except Exception as exc:
        pytest.fail(f"Redis at {BACKEND} does not answer ({exc}); the Celery tests need it running")


def _rabbitmqctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def own_vhost():
    """A virtual host of our own on the local RabbitMQ (the default one if rabbitmqctl is absent):
    the workers of one test never take another test's tasks."""
    vhost = f"mpt_{uuid.uuid4().hex[:8]}"
    try:
        made = _rabbitmqctl("add_vhost", vhost).returncode == 0 and _rabbitmqctl(
            "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*").returncode == 0
    except FileNotFoundError:
        made = False
    url = f"pyamqp://guest@127.0.0.1:5672/{vhost}" if made else "pyamqp://guest@127.0.0.1:5672//"
    try:
        _broker_answers(url)
        yield url
    finally:
        if made:
            _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="module")
def broker_url():
    with own_vhost() as url:
        yield url


class Cluster:
    """A warehouse, a Dagster instance (PostgreSQL storage, DAGSTER_HOME on disk) and worker
    processes, all configured by environment as a deployment would be."""

    def __init__(self, databases, base: str, tmp: Path, broker: str):
        self.warehouse = _copy(databases, base)
        self.storage = databases.new(migrated=False)
        self.tmp = tmp
        self.env = {**{k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
                    "PYTHONPATH": str(REPO), DATABASE_URL_ENV: _url(self.warehouse),
                    DAGSTER_STORAGE_ENV: _url(self.storage), HOME_ENV: str(tmp / "home"),
                    "DAGSTER_HOME": str(tmp / "dagster_home"), EXECUTOR_ENV: "celery",
                    CELERY_BROKER_ENV: broker, CELERY_BACKEND_ENV: BACKEND}
        self.workers: dict[str, subprocess.Popen] = {}
        self._instance = None
        self._stack = contextlib.ExitStack()

    def start_worker(self, name: str) -> None:
        log = open(self.tmp / f"{name}.log", "a")  # noqa: SIM115 (closed with the process)
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "macro_pipeline.cli", "worker", "--name", name, "--concurrency", "1",
             "--loglevel", "INFO"], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_workers(self, timeout: float = 120) -> None:
        from dagster_celery.executor import CeleryExecutor
        from dagster_celery.make_app import make_app

        app = make_app(CeleryExecutor.for_cli(broker=self.env[CELERY_BROKER_ENV], backend=BACKEND).app_args())
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                answered = {next(iter(r)).split("@")[0] for r in app.control.ping(timeout=1.0) or []}
            except OSError:  # the broker is still coming up (after a restart)
                time.sleep(1.0)
                continue
            if set(self.workers) <= answered:
                return
            dead = [n for n, p in self.workers.items() if p.poll() is not None]
            if dead:
                raise AssertionError(f"worker(s) {dead} exited: {(self.tmp / f'{dead[0]}.log').read_text()[-3000:]}")
        raise AssertionError(f"workers {sorted(self.workers)} did not answer the broker within {timeout} s")

    def kill(self, name: str) -> None:
        os.killpg(self.workers[name].pid, signal.SIGKILL)  # the worker and its pool processes
        self.workers.pop(name).wait()

    def stop(self) -> None:
        for proc in self.workers.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
        self.workers.clear()
        self._stack.close()

    def instance(self):
        import dagster as dg

        if self._instance is None:
            run_env("import macro_pipeline.defs.instance as o; o.prepare()", self.env)  # DAGSTER_HOME/dagster.yaml
            # this process reads the same storage (runs, events, partitions) without touching its own environment
            self._instance = self._stack.enter_context(dg.instance_for_test(
                overrides={"storage": {"postgres": {"postgres_url": self.env[DAGSTER_STORAGE_ENV]}}},
                set_dagster_home=False))
            known = set(self._instance.get_dynamic_partitions("strategy"))
            self._instance.add_dynamic_partitions("strategy", [s for s in STRATEGIES if s not in known])
        return self._instance

    def launch(self, tags: dict[str, str]) -> subprocess.Popen:
        """The run's orchestrating process, as the daemon's run launcher would start it."""
        self.instance()
        code = ("import json, sys; from macro_pipeline.defs import instance as o; "
                "print(json.dumps(o.run_job('backtest_job', json.loads(sys.argv[1]))))")
        return subprocess.Popen([sys.executable, "-c", code, json.dumps(tags)], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


def _url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _copy(databases, base: str) -> sa.Engine:
    name = databases._name()
    return db.get_engine(db.create_database(databases.server_url, name, template=base))


def run_env(code: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def finish(proc: subprocess.Popen, timeout: float = 900) -> tuple[str, bool]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    run_id, success = json.loads(out.strip().splitlines()[-1])
    return run_id, success


def month_results(engine: sa.Engine) -> dict:
    """Every current pipeline month: (strategy, month) -> its daily rows and metrics, as stored."""
    with engine.connect() as conn:
        runs = conn.execute(sa.text(
            "SELECT run_id, strategy_id, to_char(window_start, 'YYYY-MM') FROM backtest_runs WHERE superseded_by IS NULL "
            "AND NOT reproduction AND summary ->> 'pipeline' = 'true'")).all()
        out = {}
        for run_id, sid, month in runs:
            assert (sid, month) not in out, f"two current runs for {sid} {month}"
            equity = conn.execute(sa.text(
                "SELECT session_date, equity, cash, gross_exposure, net_exposure, drawdown, turnover, costs, funding "
                "FROM daily_equity WHERE run_id = :r ORDER BY session_date"), {"r": run_id}).all()
            metrics = conn.execute(sa.text("SELECT metric_name, value FROM metrics WHERE run_id = :r ORDER BY 1"),
                                   {"r": run_id}).all()
            out[(sid, month)] = ([tuple(r) for r in equity], [tuple(r) for r in metrics])
    return out


def step_workers(instance, run_id: str) -> dict[str, set[str]]:
    """step key -> the Celery workers that started it (dagster-celery's engine events)."""
    out: dict[str, set[str]] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.event_type_value != "ENGINE_EVENT" or "in celery worker" not in record.message:
            continue
        md = event.engine_event_data.metadata
        out.setdefault(md["step_keys"].value, set()).add(md["Celery worker"].value.split("@")[0])
    return out


class ConnectionWatch:
    """Polls pg_stat_activity for connections to the given databases; ``peak`` is the most seen."""

    def __init__(self, server_url: str, databases: list[str]):
        self.engine = sa.create_engine(db.with_database(server_url, "postgres"), poolclass=sa.pool.NullPool)
        self.databases, self.peak, self._stop = databases, 0, threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with self.engine.connect() as conn:
            while not self._stop.is_set():
                n = conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(:d)"),
                                 {"d": self.databases}).scalar()
                self.peak = max(self.peak, n)
                conn.rollback()
                time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join()
        self.engine.dispose()


@pytest.fixture(scope="module")
def base(databases) -> str:
    engine = demo_with_strategies(databases)
    name = engine.url.database
    db.dispose_engines(name)  # a template must have no open connections
    return name


@pytest.fixture(scope="module")
def reference(databases, base):
    """The same backfill with the in-process executor: the months every Celery run must equal."""
    import dagster as dg

    from macro_pipeline.defs import defs
    from macro_pipeline.defs.resources import WarehouseResource
    from macro_pipeline_tests.conftest import postgres_instance

    engine = _copy(databases, base)
    with postgres_instance(databases) as instance:
        instance.add_dynamic_partitions("strategy", STRATEGIES)
        assert defs.resolve_job_def("backtest_job").executor_def is dg.in_process_executor
        result = defs.resolve_job_def("backtest_job").execute_in_process(
            instance=instance, tags=RANGE, resources={"warehouse": WarehouseResource(url=_url(engine))})
        assert result.success
    months = month_results(engine)
    assert {s for s, _ in months} == set(STRATEGIES) and len(months) == 72 + 3 * 24
    return months


@pytest.fixture(scope="module")
def cluster(databases, base, broker_url, tmp_path_factory):
    c = Cluster(databases, base, tmp_path_factory.mktemp("celery"), broker_url)
    c.start_worker("w1")
    c.start_worker("w2")
    c.wait_workers()
    yield c
    c.stop()


def test_a_backfill_of_four_strategies_spreads_over_two_workers_and_equals_in_process(cluster, reference, databases):
    with ConnectionWatch(databases.server_url, [cluster.warehouse.url.database, cluster.storage.url.database]) as watch:
        run_id, success = finish(cluster.launch(RANGE))
    assert success
    where = step_workers(cluster.instance(), run_id)
    per_strategy = {key: workers for key, workers in where.items() if "[" in key}
    assert len(per_strategy) == 3 * len(STRATEGIES)  # inputs, engine, store per strategy
    used = set().union(*per_strategy.values())
    assert used == {"w1", "w2"}, where  # steps of different strategies ran on different workers
    assert month_results(cluster.warehouse) == reference  # bit for bit
    print(f"\npeak connections to the run's databases with 2 workers: {watch.peak} (bound {CONNECTION_BOUND})")
    assert 0 < watch.peak <= CONNECTION_BOUND


def test_a_worker_killed_mid_step_is_replaced_by_the_other_and_the_run_succeeds(databases, base, reference,
                                                                                 tmp_path):
    vhost = own_vhost()
    c = Cluster(databases, base, tmp_path, vhost.__enter__())
    c.start_worker("k1")
    c.start_worker("k2")
    try:
        c.wait_workers()
        proc = c.launch(RANGE)
        instance, killed, deadline = c.instance(), None, time.time() + 600
        while killed is None and time.time() < deadline and proc.poll() is None:
            runs = instance.get_runs(limit=1)
            if runs:
                for step, workers in step_workers(instance, runs[0].run_id).items():
                    if step.startswith("backtest.backtest_inputs[") and workers & set(c.workers):
                        victim = sorted(workers & set(c.workers))[0]
                        c.kill(victim)
                        killed = (step, victim)
                        break
            time.sleep(0.05)
        assert killed, "no per-strategy step started on a worker"
        run_id, success = finish(proc)
        assert success
        where = step_workers(instance, run_id)
        step, victim = killed
        assert where[step] == {"k1", "k2"}, where  # redelivered to the other worker
        assert month_results(c.warehouse) == reference  # nothing partial, no duplicate, one current run per month
    finally:
        c.stop()
        vhost.__exit__(None, None, None)


def test_the_next_run_succeeds_after_the_broker_restarts(cluster):
    one = {"dagster/asset_partition_range_start": f"1986-01-01|{STRATEGIES[0]}",
           "dagster/asset_partition_range_end": f"1986-02-01|{STRATEGIES[0]}"}
    two = {"dagster/asset_partition_range_start": f"1986-03-01|{STRATEGIES[0]}",
           "dagster/asset_partition_range_end": f"1986-04-01|{STRATEGIES[0]}"}
    assert finish(cluster.launch(one))[1]
    for action in ("stop_app", "start_app", "await_startup"):
        result = _rabbitmqctl(action)
        assert result.returncode == 0, f"rabbitmqctl {action}: {result.stderr}"
    _broker_answers(cluster.env[CELERY_BROKER_ENV])
    cluster.wait_workers()  # the workers reconnect by themselves
    run_id, success = finish(cluster.launch(two))
    assert success
    with cluster.warehouse.connect() as conn:
        months = conn.execute(sa.text(
            "SELECT to_char(window_start, 'YYYY-MM') FROM backtest_runs WHERE strategy_id = :s AND superseded_by IS NULL "
            "AND window_start < '1986-05-01' ORDER BY 1"), {"s": STRATEGIES[0]}).scalars().all()
    assert months == ["1986-01", "1986-02", "1986-03", "1986-04"]
    assert run_id in {r.run_id for r in cluster.instance().get_runs(limit=1)}
