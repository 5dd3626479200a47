"""``macro-pipeline dev`` (Dagster's webserver and daemon, and the reports directory served on
127.0.0.1) and ``worker`` (a Celery worker): both become the process they start (same pid), so
signals reach it directly."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys

from macro_pipeline.defs import instance
from macro_pipeline.reports import server as report_server
from macro_pipeline.settings import REPORTS_PORT_ENV, load_settings
from macro_pipeline.warehouse import connection as db


def cmd_dev(args: argparse.Namespace) -> int:
    """Dagster's webserver and daemon (``dagster dev``) on this project's instance, bound to
    127.0.0.1 unless told otherwise; beside it the reports directory on
    ``127.0.0.1:<reports port>`` (``reports/server.py``), the target of the report links in the
    assets' metadata, a child process that ends with ``dagster dev``."""
    settings = load_settings()
    env = {**os.environ, **instance.prepare(settings)}
    cmd = [sys.executable, "-m", "dagster", "dev", "-m", "macro_pipeline.defs", "--host", args.host,
           "--port", str(args.port)]
    reports = report_server.reports_dir(settings)
    # a port set in the environment is kept or fails; the default gives way when busy (another
    # dev), and the Dagster processes learn the port taken: their report links point here
    _, port = report_server.start(reports, settings.reports_port, any_port_if_busy=not os.environ.get(REPORTS_PORT_ENV))
    env[REPORTS_PORT_ENV] = str(port)
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={env['DAGSTER_HOME']}); reports on "
          f"http://{report_server.HOST}:{port}/ ({reports}); Ctrl-C stops both", flush=True)
    # become `dagster dev` (same pid): SIGTERM or Ctrl-C reach it directly and it shuts down the
    # webserver, the daemon and the code server itself. Started in the background (`nohup ... &`)
    # SIGINT arrives ignored, and an ignored signal stays ignored across exec: Dagster then copies
    # that onto SIGTERM and nothing stops it. Both get their default disposition, unblocked.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    os.execve(sys.executable, cmd, env)
    return 0  # not reached


def cmd_worker(args: argparse.Namespace) -> int:
    """A Celery worker for the code location: ``dagster-celery worker start`` on this project's app
    (``defs/celery_app.py``: broker, backend and acknowledgement rules from the settings), with
    ``--concurrency`` processes. Its environment is the one every Dagster process of the project
    gets (``defs.instance.prepare``)."""
    settings = load_settings()
    env = {**os.environ, **instance.prepare(settings)}
    # dagster-celery starts `celery` from PATH: this environment's own first
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    exe = shutil.which("dagster-celery", path=env["PATH"])
    if exe is None:
        raise FileNotFoundError("dagster-celery is not installed in this environment (pip install dagster-celery)")
    cmd = [exe, "worker", "start", "--app", "macro_pipeline.defs.celery_app", "--loglevel", args.loglevel]
    if args.name:
        cmd += ["--name", args.name]
    for queue in args.queue or []:
        cmd += ["--queue", queue]
    cmd += ["--", f"--concurrency={args.concurrency}", "--pool=prefork"]
    print(f"Celery worker ({args.concurrency} process(es)) on broker {db.render(settings.celery_broker)}, "
          f"results in {db.render(settings.celery_backend)}; Ctrl-C stops it", flush=True)
    os.execve(exe, cmd, env)  # become the worker: signals reach it directly
    return 0  # not reached
