"""Issue 13 item 8: ``macro-pipeline dev`` started in the background (``nohup ... &``: SIGINT
ignored) must still stop on SIGTERM.

Measured: Dagster copies an inherited ignored SIGINT onto SIGTERM, so ``kill PID`` did nothing
and 5 processes had to be killed one by one. The CLI now restores the default SIGINT and SIGTERM
handlers before it becomes ``dagster dev``.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import requests

from macro_pipeline.settings import DAGSTER_STORAGE_ENV, DATABASE_URL_ENV, HOME_ENV
from macro_pipeline_tests.defs.test_dagster_webserver import (
    CLI,
    STARTUP_TIMEOUT_S,
    _free_port,
    _group,
    _stop_process_group,
    _wait,
    _wait_gone,
)

pytestmark = pytest.mark.slow


def _ignore_sigint() -> None:  # what `nohup cmd &` from a non-interactive shell leaves
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_dev_started_with_sigint_ignored_stops_on_sigterm(databases, tmp_path):
    warehouse = databases.new().url.render_as_string(hide_password=False)
    storage = databases.new(migrated=False).url.render_as_string(hide_password=False)
    env = {**os.environ, DATABASE_URL_ENV: warehouse, DAGSTER_STORAGE_ENV: storage, HOME_ENV: str(tmp_path)}
    env.pop("DAGSTER_HOME", None)
    port = _free_port()
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([CLI, "dev", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_ignore_sigint)
    try:
        _wait("the webserver", lambda: requests.get(f"http://127.0.0.1:{port}/server_info", timeout=5).ok,
              STARTUP_TIMEOUT_S)
        members = _group(proc.pid)
        assert len(members) >= 3, [p.cmdline() for p in members]  # dagster dev, webserver, daemon (+ code servers)
        os.kill(proc.pid, signal.SIGTERM)  # `kill PID`: the one process a user knows
        left = _wait_gone(members, 60)
        assert not left, (f"still running 60 s after SIGTERM: {[' '.join(p.cmdline())[:80] for p in left]}\n"
                          + log.read_text(errors="replace")[-2000:])
    finally:
        _stop_process_group(proc)
