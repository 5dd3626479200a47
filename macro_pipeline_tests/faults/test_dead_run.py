"""Issue 13 item 1: a Dagster run whose process is killed must not stay ``STARTED`` forever.

Measured: after kill -9 of a run's process under ``macro-pipeline dev`` the run never left
``STARTED``, still counted against the 2-run limit ("3 runs are currently in progress. Maximum is
2": the third had bypassed the queue, as the demo's in-process runs do), and ``run_retries`` never
fired. Reproduced here: a run executed in a process of its own (``execute_in_process``, as
``macro-pipeline demo`` runs them) killed with -9 stayed STARTED and the queued run of the same
strategy never started. Now the packaged ``dagster.yaml`` enables run monitoring with a launcher
that checks the run's process by pid: the dead run is marked FAILURE within about 30 s and the
queue moves. A run launched through the queue and killed is reported by its code server, marked
FAILURE and retried by ``run_retries`` (``dagster/parent_run_id``); the retry succeeds and what is
stored is the retry's complete month, nothing of the killed run. A run killed INSIDE its store
step (the step started, its transaction held at the strategy's run lock, which the test holds) is
marked FAILURE and retried; while the lock is held nothing of it is stored (the tables exactly as
before), and once released the retry stores the month.

After each kill the invariants hold (``common.check_invariants``).

Real ``macro-pipeline dev`` (webserver, daemon, code server), real kill -9.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest
import requests
import sqlalchemy as sa

from macro_pipeline.settings import DAGSTER_STORAGE_ENV, DATABASE_URL_ENV, HOME_ENV
from macro_pipeline.warehouse.runs import RUN_LOCK
from macro_pipeline_tests.conftest import demo_with_strategies, table_state
from macro_pipeline_tests.defs.test_dagster_webserver import (
    CLI,
    JOB,
    STARTUP_TIMEOUT_S,
    STRATEGY,
    DevServer,
    _add_strategy_partitions,
    _current_pipeline_runs,
    _free_port,
    _loaded_location,
    _run,
    _stop_process_group,
    _wait,
    _wait_for_run,
)
from macro_pipeline_tests.faults.common import (
    FACT_TABLES,
    RUN_TABLES,
    check_invariants,
    kill9,
    waiting_for_run_lock,
)

pytestmark = pytest.mark.slow
MARKED_FAILED_WITHIN_S = 60  # poll_interval_seconds 15 plus the daemon's loop, with room for a loaded machine
MONTH = "2015-01-01"


@pytest.fixture(scope="module")
def warehouse(databases) -> sa.Engine:
    return demo_with_strategies(databases)


@pytest.fixture(scope="module")
def server(databases, warehouse, tmp_path_factory) -> Iterator[DevServer]:
    """``macro-pipeline dev`` on the packaged instance, every sensor and schedule stopped."""
    storage_url = databases.new(migrated=False).url.render_as_string(hide_password=False)
    _add_strategy_partitions(storage_url)
    home = tmp_path_factory.mktemp("mp_dead_run_home")
    env = {**os.environ, DATABASE_URL_ENV: warehouse.url.render_as_string(hide_password=False),
           DAGSTER_STORAGE_ENV: storage_url, HOME_ENV: str(home)}
    env.pop("DAGSTER_HOME", None)
    port = _free_port()
    log = home / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([CLI, "dev", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    dev = DevServer(f"http://127.0.0.1:{port}", home, log, proc)
    dev.env = env  # for processes of the test that use the same instance
    try:
        _wait("the webserver", lambda: requests.get(f"{dev.url}/server_info", timeout=5).ok, STARTUP_TIMEOUT_S,
              alive=dev.alive)
        dev.location, dev.repository = _wait("the code location", lambda: _loaded_location(dev), STARTUP_TIMEOUT_S,
                                             alive=dev.alive)
        _stop_automation(dev)
        yield dev
    except Exception:
        print(dev.log_tail())
        raise
    finally:
        _stop_process_group(proc)


def _stop_automation(dev: DevServer) -> None:
    data = dev.gql("""query ($r: RepositorySelector!) {
        sensorsOrError(repositorySelector: $r) { ... on Sensors { results { sensorState { id } } } }
        schedulesOrError(repositorySelector: $r) { ... on Schedules { results { scheduleState { id } } } } }""",
                   r=dev.repository_selector)
    for s in data["sensorsOrError"]["results"]:
        dev.gql("""mutation ($id: String!) { stopSensor(id: $id) { __typename } }""", id=s["sensorState"]["id"])
    for s in data["schedulesOrError"]["results"]:
        dev.gql("""mutation ($id: String!) { stopRunningSchedule(id: $id) { __typename } }""", id=s["scheduleState"]["id"])


def _run_worker(server, run_id: str) -> psutil.Process | None:
    """The process executing ``run_id``: the pid its engine events name."""
    events = server.gql("""query ($id: ID!) { logsForRun(runId: $id) { __typename
        ... on EventConnection { events { __typename ... on MessageEvent { message } } } } }""",
                        id=run_id)["logsForRun"].get("events", [])
    for e in events:  # launched: "Started process for run (pid: N)"; in process: "Executing steps in process (pid: N)"
        if (m := re.match(r"(Started process for run|Executing steps).*\(pid: (\d+)\)", e.get("message") or "")):
            return psutil.Process(int(m.group(2)))
    return None


def _launch(server, key: str) -> str:
    data = server.gql("""query ($r: RepositorySelector!, $set: String!, $p: String!) {
        partitionSetOrError(repositorySelector: $r, partitionSetName: $set) { __typename
            ... on PartitionSet { partition(partitionName: $p) { tagsOrError { __typename
                ... on PartitionTags { results { key value } } } } } } }""",
                      r=server.repository_selector, set=f"{JOB}_partition_set", p=key)
    tags = data["partitionSetOrError"]["partition"]["tagsOrError"]["results"]
    launched = server.gql("""mutation ($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
        ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
                          p={"selector": {**server.repository_selector, "jobName": JOB},
                             "executionMetadata": {"tags": tags}})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def _children_of(server, parent: str) -> list[dict]:
    return server.gql("""query ($v: String!) { runsOrError(filter: {tags: [{key: "dagster/parent_run_id", value: $v}]}) {
        ... on Runs { results { runId status } } } }""", v=parent)["runsOrError"]["results"]


IN_PROCESS_RUN = """
import sys
from macro_pipeline.defs import instance as defs_instance
from macro_pipeline.defs import defs

defs.resolve_job_def("backtest_job").execute_in_process(
    instance=defs_instance.instance(), partition_key=sys.argv[1], tags={"dagster/partition/strategy": sys.argv[2]})
"""


def _runs(server, statuses: list[str]) -> list[dict]:
    return server.gql("""query ($s: [RunStatus!]) { runsOrError(filter: {statuses: $s}) { ... on Runs {
        results { runId status } } } }""", s=statuses)["runsOrError"]["results"]


def test_killed_in_process_run_is_marked_failed_and_the_queue_moves(server, warehouse):
    key = f"{MONTH}|{STRATEGY}"  # the first month of the chain: needs no stored month before it
    proc = subprocess.Popen([sys.executable, "-c", IN_PROCESS_RUN, key, STRATEGY], env=server.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_id = _wait("the in-process run", lambda: next((r["runId"] for r in _runs(server, ["STARTED"])), None),
                   180, every_s=0.2, alive=server.alive)
    _wait("its process", lambda: (w := _run_worker(server, run_id)) is not None and w.pid == proc.pid, 60, every_s=0.2)
    kill9(proc.pid)
    proc.wait()
    killed_at = time.monotonic()
    queued = _launch(server, key)  # the same strategy: held by the queue while the dead run is STARTED
    try:
        _wait("the dead run to be marked failed", lambda: _run(server, run_id)["status"] == "FAILURE",
              MARKED_FAILED_WITHIN_S + 60, every_s=1, alive=server.alive)
    except AssertionError:
        print("\n".join(line for line in server.log.read_text(errors="replace").splitlines() if "Monitor" in line)[-3000:])
        raise
    assert time.monotonic() - killed_at <= MARKED_FAILED_WITHIN_S
    assert _wait_for_run(server, queued)["status"] == "SUCCESS", server.log_tail()
    assert _runs(server, ["STARTED", "STARTING", "QUEUED"]) == []
    check_invariants(warehouse, dagster_runs=lambda: _every_run(server))


def test_killed_launched_run_is_marked_failed_retried_and_stores_only_the_retry(server, warehouse):
    run_id = _launch(server, f"{MONTH}|{STRATEGY}")
    # STARTED, its worker known (a run killed while STARTING fails after start_timeout_seconds)
    worker = _wait("the run worker", lambda: _run(server, run_id)["status"] == "STARTED" and _run_worker(server, run_id),
                   120, every_s=0.1, alive=server.alive)
    kill9(worker.pid)
    _wait("the killed run to be marked failed", lambda: _run(server, run_id)["status"] == "FAILURE",
          MARKED_FAILED_WITHIN_S, every_s=1, alive=server.alive)
    retry = _wait("the retry", lambda: _children_of(server, run_id), 120, every_s=1, alive=server.alive)[0]
    done = _wait_for_run(server, retry["runId"])
    assert done["status"] == "SUCCESS", server.log_tail()
    tags = {t["key"]: t["value"] for t in done["tags"]}
    assert tags["dagster/parent_run_id"] == run_id and tags["dagster/retry_number"] == "1"

    # nothing of the killed run is stored: one current run for the month, the retry's
    stored = _current_pipeline_runs(warehouse, STRATEGY, [MONTH])[MONTH]
    assert [r["orchestrator_run_id"] for r in stored] == [retry["runId"]]
    with warehouse.connect() as conn:
        killed_rows = conn.exec_driver_sql("SELECT count(*) FROM backtest_runs WHERE orchestrator_run_id = %s",
                                           (run_id,)).scalar_one()
    assert killed_rows == 0
    assert _runs(server, ["STARTED", "STARTING", "QUEUED"]) == []
    check_invariants(warehouse, dagster_runs=lambda: _every_run(server))


def _step_started(server, run_id: str, step: str) -> bool:
    """The run's event log has the STEP_START of a step whose key contains ``step``."""
    events = server.gql("""query ($id: ID!) { logsForRun(runId: $id) { __typename
        ... on EventConnection { events { __typename ... on ExecutionStepStartEvent { stepKey } } } } }""",
                        id=run_id)["logsForRun"].get("events", [])
    return any(e["__typename"] == "ExecutionStepStartEvent" and step in (e.get("stepKey") or "") for e in events)


def _every_run(server) -> list[tuple[str, str]]:
    return [(r["runId"], r["status"]) for r in _runs(server, None)]


def test_run_killed_inside_its_store_step_fails_is_retried_and_stores_nothing_partial(server, warehouse):
    before = {t: v for t, v in table_state(warehouse).items() if t in FACT_TABLES + RUN_TABLES}
    holder = warehouse.connect()  # holds the strategy's run lock: the store step waits for it inside its transaction
    holder.begin()
    holder.execute(sa.text("SELECT pg_advisory_xact_lock(:k, hashtext(:s))"), {"k": RUN_LOCK, "s": STRATEGY})
    try:
        run_id = _launch(server, f"{MONTH}|{STRATEGY}")
        worker = _wait("the run worker", lambda: _run(server, run_id)["status"] == "STARTED"
                       and _run_worker(server, run_id), 120, every_s=0.1, alive=server.alive)
        _wait("the store step, inside its transaction", lambda: _step_started(server, run_id, "backtest_store")
              and waiting_for_run_lock(warehouse), 300, every_s=0.1, alive=server.alive)
        kill9(worker.pid)
        _wait("the killed run to be marked failed", lambda: _run(server, run_id)["status"] == "FAILURE",
              MARKED_FAILED_WITHIN_S, every_s=1, alive=server.alive)
        retry = _wait("the retry", lambda: _children_of(server, run_id), 120, every_s=1, alive=server.alive)[0]
        # nothing can be stored while the test holds the lock: what is there is what the killed run left
        check_invariants(warehouse, unchanged=before)
    finally:
        holder.rollback()
        holder.invalidate()  # really closed, not back in the pool
        holder.close()
    done = _wait_for_run(server, retry["runId"])
    assert done["status"] == "SUCCESS", server.log_tail()
    stored = _current_pipeline_runs(warehouse, STRATEGY, [MONTH])[MONTH]
    assert [r["orchestrator_run_id"] for r in stored] == [retry["runId"]]
    with warehouse.connect() as conn:
        killed_rows = conn.exec_driver_sql("SELECT count(*) FROM backtest_runs WHERE orchestrator_run_id = %s",
                                           (run_id,)).scalar_one()
    assert killed_rows == 0
    assert _runs(server, ["STARTED", "STARTING", "QUEUED"]) == []
    check_invariants(warehouse, dagster_runs=lambda: _every_run(server))
