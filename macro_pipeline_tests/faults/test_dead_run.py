"""Issue 13 item 1: a Dagster run whose process is killed must not stay ``STARTED`` forever.

Measured: after kill -9 of a run's process under ``macro-pipeline dev`` the run never left
``STARTED``, still counted against the 2-run limit, and ``run_retries`` never fired (10 queued runs
did not start in 3 minutes). Now the packaged ``dagster.yaml`` enables run monitoring with a
launcher that checks the run worker's pid: the dead run is marked FAILURE within about 30 s, the
retry (``dagster/parent_run_id``) takes the freed slot and succeeds, and what is stored is the
retry's complete month, nothing of the killed run.

Real ``macro-pipeline dev`` (webserver, daemon, code server), real kill -9 of the run worker.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator

import psutil
import pytest
import requests
import sqlalchemy as sa

from macro_pipeline.settings import DAGSTER_STORAGE_ENV, DATABASE_URL_ENV, HOME_ENV
from macro_pipeline_tests.conftest import demo_with_strategies
from macro_pipeline_tests.faults.common import kill9
from macro_pipeline_tests.test_dagster_webserver import (
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
    """The process executing ``run_id``: the pid its "Started process for run (pid: N)" event names."""
    events = server.gql("""query ($id: ID!) { logsForRun(runId: $id) { __typename
        ... on EventConnection { events { __typename ... on MessageEvent { message } } } } }""",
                        id=run_id)["logsForRun"].get("events", [])
    for e in events:
        if (m := re.match(r"Started process for run \(pid: (\d+)\)", e.get("message") or "")):
            return psutil.Process(int(m.group(1)))
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


def test_killed_run_worker_is_marked_failed_and_retried_and_the_queue_moves(server, warehouse):
    run_id = _launch(server, f"{MONTH}|{STRATEGY}")
    worker = _wait("the run worker", lambda: _run_worker(server, run_id), 120, every_s=0.1, alive=server.alive)
    kill9(worker.pid)
    killed_at = time.monotonic()

    failed = _wait("the killed run to be marked failed", lambda: (r := _run(server, run_id))["status"] == "FAILURE" and r,
                   MARKED_FAILED_WITHIN_S + 60, every_s=1, alive=server.alive)
    took = time.monotonic() - killed_at
    assert failed["status"] == "FAILURE" and took <= MARKED_FAILED_WITHIN_S, took
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

    # no run is left STARTED: the queue is free (a new run of the same strategy starts and ends)
    started = server.gql("""{ runsOrError(filter: {statuses: [STARTED, STARTING, QUEUED]}) { ... on Runs { results { runId } } } }""")
    assert started["runsOrError"]["results"] == []
    again = _launch(server, f"{MONTH}|{STRATEGY}")
    assert _wait_for_run(server, again)["status"] == "SUCCESS"
