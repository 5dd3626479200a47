"""The run launcher of the packaged ``dagster.yaml``: Dagster's default one (each run in a
process started by the code server), plus a health check, so run monitoring can tell a run whose
process died from a running one.

Dagster's ``DefaultRunLauncher`` has no health check, so its run monitoring never looks at a
started run: after kill -9 of a run worker (or an out-of-memory kill) the run stayed ``STARTED``
forever, kept its slot of the run queue (2 runs at a time) and ``run_retries`` never fired.

The check: a run records its worker's pid in an engine event ("Started process for run (pid: N)";
"Executing steps in process (pid: N)" for a run executed in process, such as the demo's).
The run is healthy while that process lives (and is not a zombie nor a later process that reused
the pid); otherwise it is reported ``FAILED``, run monitoring marks the run failed and
``run_retries`` launches it again. It assumes what ``macro-pipeline dev`` is: the daemon and the
run workers on one machine.
"""

from __future__ import annotations

import psutil
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._serdes.config_class import ConfigurableClassData

STARTED_PROCESS = "Started process for run"  # the engine event carrying a launched run's worker pid
EXECUTING_STEPS = "Executing steps"  # ... and the one of a run executed in its caller's process


class LocalRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` whose run workers' health run monitoring can check (by pid)."""

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value) -> LocalRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = _worker(self._instance, run.run_id)
        if worker is None:  # not started yet: start_timeout_seconds covers a run that never starts
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker recorded yet")
        pid, started_at = worker
        try:
            proc = psutil.Process(pid)
            alive = proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= started_at + 1.0
        except psutil.Error:
            alive = False
        if alive:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is running")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker pid {pid} is gone (killed or crashed) "
                                    "and the run never ended")


def _worker(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, when it was recorded, epoch seconds) of the process executing the run, or None.

    A launched run: the process the code server started ("Started process for run (pid: N)").
    A run executed in a process of its own making (``execute_in_process``: the demo's workers,
    which bypass the queue yet count against its limit): the process executing its steps
    ("Executing steps in process (pid: N)" or "... multiprocess executor: parent process (pid: N)")."""
    launched = executing = None
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        data = event.engine_event_data if event is not None else None
        pid = data.metadata.get("pid") if data is not None and data.metadata else None
        if pid is None or not str(pid.value).isdigit():
            continue
        message = record.user_message or ""
        if message.startswith(STARTED_PROCESS):
            launched = (int(pid.value), float(record.timestamp))
        elif message.startswith(EXECUTING_STEPS) and executing is None:
            executing = (int(pid.value), float(record.timestamp))
    return launched or executing
