"""``macro-pipeline dev`` for real: Dagster's webserver and daemon (``dagster dev``), started
through the console script as a user would, on a test warehouse and a test Dagster storage
database, driven over GraphQL the way the UI drives it.

What only a real server shows: the packaged ``dagster.yaml`` as the CLI installs it (PostgreSQL
storage from the environment, the queued run coordinator, whose daemon dequeues the runs), run
workers in their own processes, the backfill daemon turning an asset backfill into runs under
the assets' ``BackfillPolicy.single_run``, and every step of it readable back through the
webserver.

Before the server starts, the instance already knows the strategies as ``strategy`` partition
keys, so the registration sensor's first tick finds nothing new (it would otherwise request the
full history of every strategy: minutes on two cores). Once the webserver answers, the sensors
and the schedule are stopped: the tests launch every run themselves.

The module takes 1.5-2 minutes on two cores, most of it the backfill daemon's fixed 30-second
loop (one tick submits the run, a later one sees it finished).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests
import sqlalchemy as sa

from macro_pipeline.defs.instance import PACKAGED_INSTANCE_YAML
from macro_pipeline.settings import DAGSTER_STORAGE_ENV, DATABASE_URL_ENV, HOME_ENV
from macro_pipeline.strategies.config import load_builtin_configs
from macro_pipeline_tests.conftest import demo_with_strategies

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "macro-pipeline")
STRATEGY = "carry-simple"  # synthetic BTC data from 2015-01: small months, its first month starts the chain
ASSETS = ("signals", "backtest", "backtest_metrics")
JOB = "backtest_job"
STARTUP_TIMEOUT_S = 120
RUN_TIMEOUT_S = 120
BACKFILL_TIMEOUT_S = 180  # the backfill daemon wakes every 30 s: one tick submits, a later one completes
FINISHED_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
FINISHED_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, probe: Callable[[], object], timeout_s: float, every_s: float = 1.0,
          alive: Callable[[], None] = lambda: None):
    """Call ``probe`` until it returns something truthy (returned), failing after ``timeout_s``."""
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        alive()
        try:
            last = probe()
        except requests.RequestException as exc:  # not listening yet, or restarting
            last = exc
        else:
            if last:
                return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last: {last!r}")


@dataclass
class DevServer:
    """The running ``macro-pipeline dev``: its address, its code location, its log file."""

    url: str
    home: Path
    log: Path
    proc: subprocess.Popen
    location: str = ""
    repository: str = ""

    def gql(self, query: str, **variables) -> dict:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60)
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    @property
    def repository_selector(self) -> dict:
        return {"repositoryLocationName": self.location, "repositoryName": self.repository}

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"macro-pipeline dev exited with {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _add_strategy_partitions(storage_url: str) -> None:
    """Add every built-in strategy as a ``strategy`` partition key in the Dagster storage (what
    the registration sensor does before it requests their full histories)."""
    import dagster as dg

    ids = [c.strategy_id for c in load_builtin_configs()]
    with dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_url": storage_url}}}) as instance:
        instance.add_dynamic_partitions("strategy", ids)


def _live(processes: list[psutil.Process]) -> list[psutil.Process]:
    """The ones still running (a zombie has exited: only its parent has not collected it yet)."""
    out = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _group(pgid: int) -> list[psutil.Process]:
    members = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                members.append(p)
        except (ProcessLookupError, psutil.Error):
            pass
    return _live(members)


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while (alive := _live(processes)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def _stop_process_group(proc: subprocess.Popen) -> None:
    """Ctrl-C (SIGINT to the whole group, as a terminal sends it), then SIGKILL whatever is left
    of the group: the CLI, ``dagster dev``, the webserver, the daemon, the code server, run workers.
    Fails if anything survives."""
    pgid = proc.pid
    for sig, grace_s in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        members = _group(pgid)
        if not members:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        _wait_gone(members, grace_s)
    proc.wait(timeout=10)
    left = _group(pgid)
    assert not left, f"still running after SIGKILL: {[' '.join(p.cmdline())[:80] for p in left]}"


@pytest.fixture(scope="module")
def warehouse(databases) -> sa.Engine:
    return demo_with_strategies(databases)


@pytest.fixture(scope="module")
def server(databases, warehouse, tmp_path_factory) -> Iterator[DevServer]:
    storage_url = databases.new(migrated=False).url.render_as_string(hide_password=False)
    _add_strategy_partitions(storage_url)
    home = tmp_path_factory.mktemp("mp_dev_home")
    env = {**os.environ, DATABASE_URL_ENV: warehouse.url.render_as_string(hide_password=False),
           DAGSTER_STORAGE_ENV: storage_url, HOME_ENV: str(home)}
    env.pop("DAGSTER_HOME", None)  # the CLI derives it: $MACRO_PIPELINE_HOME/dagster
    port = _free_port()
    log = home / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([CLI, "dev", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    dev = DevServer(f"http://127.0.0.1:{port}", home, log, proc)
    try:
        _wait("the webserver", lambda: requests.get(f"{dev.url}/server_info", timeout=5).ok, STARTUP_TIMEOUT_S,
              alive=dev.alive)
        entry = _wait("the code location", lambda: _loaded_location(dev), STARTUP_TIMEOUT_S, alive=dev.alive)
        dev.location, dev.repository = entry
        _stop_automation(dev)
        yield dev
    except Exception:
        print(dev.log_tail())
        raise
    finally:
        _stop_process_group(proc)


def _loaded_location(dev: DevServer) -> tuple[str, str] | None:
    data = dev.gql("""{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on RepositoryLocation { repositories { name } }
                              ... on PythonError { message } } } } } }""")
    for entry in data["workspaceOrError"]["locationEntries"]:
        loaded = entry["locationOrLoadError"]
        if entry["loadStatus"] != "LOADED" or loaded is None:
            return None
        if loaded["__typename"] == "PythonError":
            raise AssertionError(f"code location {entry['name']} failed to load: {loaded['message']}")
        return entry["name"], loaded["repositories"][0]["name"]
    return None


def _stop_automation(dev: DevServer) -> None:
    data = dev.gql("""query ($r: RepositorySelector!) {
        sensorsOrError(repositorySelector: $r) { ... on Sensors { results { name sensorState { id } } } }
        schedulesOrError(repositorySelector: $r) { ... on Schedules { results { name scheduleState { id } } } } }""",
                   r=dev.repository_selector)
    sensors = data["sensorsOrError"]["results"]
    schedules = data["schedulesOrError"]["results"]
    assert {s["name"] for s in sensors} == {"point_in_time_sensor", "strategy_registry_sensor", "leaderboard_sensor",
                                            "sweep_registry_sensor"}
    assert sorted(s["name"] for s in schedules) == ["nightly_schedule", "sweep_schedule"]
    for s in sensors:
        out = dev.gql("""mutation ($id: String!) { stopSensor(id: $id) {
            __typename ... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } } }""",
                      id=s["sensorState"]["id"])["stopSensor"]
        assert out.get("instigationState", {}).get("status") == "STOPPED", out
    for s in schedules:
        out = dev.gql("""mutation ($id: String!) { stopRunningSchedule(id: $id) {
            __typename ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }""",
                      id=s["scheduleState"]["id"])["stopRunningSchedule"]
        assert out.get("scheduleState", {}).get("status") == "STOPPED", out


# --------------------------------------------------------------------------- GraphQL helpers


def _run(dev: DevServer, run_id: str) -> dict:
    return dev.gql("""query ($id: ID!) { runOrError(runId: $id) { __typename
        ... on Run { runId status tags { key value } } ... on PythonError { message } } }""", id=run_id)["runOrError"]


def _wait_for_run(dev: DevServer, run_id: str) -> dict:
    return _wait(f"run {run_id}", lambda: (r := _run(dev, run_id))["status"] in FINISHED_RUN and r,
                 RUN_TIMEOUT_S, alive=dev.alive)


def _materializations(dev: DevServer, asset: str, partitions: list[str]) -> list[dict]:
    """Every materialization of ``asset`` in ``partitions``, with its metadata as a dict."""
    data = dev.gql("""query ($key: AssetKeyInput!, $p: [String!]) { assetOrError(assetKey: $key) {
        ... on Asset { assetMaterializations(partitions: $p) { partition runId
            metadataEntries { label ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue }
                              ... on FloatMetadataEntry { floatValue } } } } } }""",
                   key={"path": [asset]}, p=partitions)
    out = []
    for m in data["assetOrError"]["assetMaterializations"]:
        meta = {e["label"]: next((e[k] for k in ("text", "intValue", "floatValue") if k in e), None)
                for e in m["metadataEntries"]}
        out.append({"partition": m["partition"], "run_id": m["runId"], "metadata": meta})
    return out


def _current_pipeline_runs(engine: sa.Engine, strategy_id: str, months: list[str]) -> dict[str, list[dict]]:
    """month -> the current (not superseded, successful) pipeline runs stored for it."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT to_char(window_start, 'YYYY-MM-01') AS month, run_id, signal_snapshot_id, orchestrator_run_id, "
            "start_state, end_state FROM backtest_runs WHERE strategy_id = :s AND superseded_by IS NULL "
            "AND status = 'success' AND summary ->> 'pipeline' = 'true' "
            "AND to_char(window_start, 'YYYY-MM-01') = ANY(:m) ORDER BY window_start"),
            {"s": strategy_id, "m": months}).mappings().all()
    out: dict[str, list[dict]] = {m: [] for m in months}
    for r in rows:
        out[r["month"]].append(dict(r))
    return out


# --------------------------------------------------------------------------- tests


def test_cli_serves_the_packaged_instance_and_the_sensors_request_nothing(server):
    # DAGSTER_HOME derived from MACRO_PIPELINE_HOME, holding the packaged instance config
    assert (server.home / "dagster" / "dagster.yaml").read_bytes() == PACKAGED_INSTANCE_YAML.read_bytes()
    data = server.gql("""{ instance { runQueuingSupported daemonHealth { allDaemonStatuses { daemonType required } } } }""")
    assert data["instance"]["runQueuingSupported"]  # the queued run coordinator: the daemon launches runs
    required = {d["daemonType"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"] if d["required"]}
    assert {"QUEUED_RUN_COORDINATOR", "BACKFILL", "SENSOR", "SCHEDULER"} <= required
    # whatever the sensors evaluated before they were stopped, they requested no run
    for trigger in ("register", "pit", "nightly", "leaderboard"):
        runs = server.gql("""query ($t: String!) { runsOrError(filter: {tags: [{key: "macro_pipeline/trigger", value: $t}]}) {
            ... on Runs { results { runId } } } }""", t=trigger)["runsOrError"]["results"]
        assert runs == [], trigger


def test_one_partition_launched_over_graphql_records_its_lineage(server, warehouse):
    key = f"2015-01-01|{STRATEGY}"
    # the tags the UI sends for a partition: the key and one tag per dimension (the run queue
    # limits runs per dagster/partition/strategy)
    data = server.gql("""query ($r: RepositorySelector!, $set: String!, $p: String!) {
        partitionSetOrError(repositorySelector: $r, partitionSetName: $set) { __typename
            ... on PartitionSet { partition(partitionName: $p) { tagsOrError { __typename
                ... on PartitionTags { results { key value } } ... on PythonError { message } } } } } }""",
                      r=server.repository_selector, set=f"{JOB}_partition_set", p=key)
    tags = data["partitionSetOrError"]["partition"]["tagsOrError"]["results"]
    assert {"dagster/partition": key, "dagster/partition/month": "2015-01-01",
            "dagster/partition/strategy": STRATEGY}.items() <= {t["key"]: t["value"] for t in tags}.items()

    launched = server.gql("""mutation ($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
        ... on LaunchRunSuccess { run { runId status } } ... on PythonError { message }
        ... on RunConfigValidationInvalid { errors { message } } } }""",
                          p={"selector": {**server.repository_selector, "jobName": JOB},
                             "executionMetadata": {"tags": tags}})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    assert launched["run"]["status"] in {"QUEUED", "NOT_STARTED", "STARTING", "STARTED"}
    run = _wait_for_run(server, run_id)
    assert run["status"] == "SUCCESS", server.log_tail()

    events = {a: [e for e in _materializations(server, a, [key]) if e["run_id"] == run_id] for a in ASSETS}
    assert {a: [e["partition"] for e in ev] for a, ev in events.items()} == {a: [key] for a in ASSETS}
    meta = events["backtest"][0]["metadata"]
    assert meta["status"] == "stored" and meta["sessions"] == 31  # 24/7: every day of January
    with warehouse.connect() as conn:
        row = conn.execute(sa.text("SELECT signal_snapshot_id, orchestrator_run_id, window_start FROM backtest_runs "
                                   "WHERE run_id = :r"), {"r": meta["run_id"]}).one()
    assert row.signal_snapshot_id == meta["signal_snapshot_id"]
    assert row.orchestrator_run_id == run_id
    assert row.window_start.isoformat() == "2015-01-01"
    assert events["signals"][0]["metadata"]["signal_snapshot_id"] == meta["signal_snapshot_id"]
    assert events["backtest_metrics"][0]["metadata"]["run_id"] == meta["run_id"]


def test_asset_backfill_of_a_month_range_runs_once_on_the_daemon_and_continues_the_chain(server, warehouse):
    months = ["2015-01-01", "2015-02-01", "2015-03-01", "2015-04-01"]
    keys = [f"{m}|{STRATEGY}" for m in months]
    launched = server.gql("""mutation ($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
        __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack }
        ... on PartitionSetNotFoundError { message } ... on UnauthorizedError { message } } }""",
                          p={"assetSelection": [{"path": [a]} for a in ASSETS], "partitionNames": keys,
                             "title": "test: carry-simple 2015-01..2015-04"})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def finished():
        b = server.gql("""query ($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
            ... on PartitionBackfill { status isAssetBackfill error { message }
                runs { runId status tags { key value } } } ... on PythonError { message } } }""",
                       id=backfill_id)["partitionBackfillOrError"]
        return b["status"] in FINISHED_BACKFILL and b

    backfill = _wait(f"backfill {backfill_id}", finished, BACKFILL_TIMEOUT_S, every_s=2, alive=server.alive)
    assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, server.log_tail())
    assert backfill["isAssetBackfill"]
    # BackfillPolicy.single_run on every asset, one strategy: ONE run over the whole range
    assert len(backfill["runs"]) == 1, backfill["runs"]
    run = backfill["runs"][0]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert run["status"] == "SUCCESS"
    assert tags["dagster/backfill"] == backfill_id
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (keys[0], keys[-1])

    for asset in ASSETS:
        by_partition = {e["partition"]: e["run_id"] for e in _materializations(server, asset, keys)
                        if e["run_id"] == run["runId"]}
        assert by_partition == {k: run["runId"] for k in keys}, asset
    stored = _current_pipeline_runs(warehouse, STRATEGY, months)
    assert {m: len(rows) for m, rows in stored.items()} == {m: 1 for m in months}  # earlier runs superseded
    chain = [rows[0] for rows in stored.values()]
    assert {r["orchestrator_run_id"] for r in chain} == {run["runId"]}
    assert chain[0]["start_state"] is None  # the strategy's first month: no earlier state
    for prev, cur in zip(chain, chain[1:], strict=False):
        assert cur["start_state"] == prev["end_state"], (prev["month"], cur["month"])
    backtest_meta = {e["partition"]: e["metadata"] for e in _materializations(server, "backtest", keys)
                     if e["run_id"] == run["runId"]}
    assert {k: backtest_meta[k]["run_id"] for k in keys} == {f"{r['month']}|{STRATEGY}": r["run_id"] for r in chain}


def test_sigterm_to_dev_stops_dagster_and_its_services(server):
    """A process manager (systemd, supervisord, `kill <pid>`) stops ``macro-pipeline dev`` with
    SIGTERM to that one process; the webserver, the daemon and the code server must go with it.
    Runs last: it stops the module's server (the fixture then cleans up whatever is left)."""
    stack = psutil.Process(server.proc.pid).children(recursive=True)
    assert any("dagster_webserver" in " ".join(p.cmdline()) for p in stack)
    server.proc.send_signal(signal.SIGTERM)
    alive = _wait_gone(stack, timeout_s=15)  # healthy: ~4 s (SIGINT to the group)
    assert not alive, [" ".join(p.cmdline())[:80] for p in alive]
