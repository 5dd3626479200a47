"""The reports directory over HTTP on 127.0.0.1, so a report opens from the Dagster UI with one
click: ``macro-pipeline dev`` starts this server beside Dagster's webserver (``start``), and the
``backtest_metrics`` and ``leaderboard`` materializations carry a link to their report on it
(``report_url``).

- Bound to ``127.0.0.1`` only (``HOST``, not configurable): the reports hold a strategy's whole
  book, so they are for this machine. The port is ``Settings.reports_port``
  (``MACRO_PIPELINE_REPORTS_PORT``, default 8765).
- Read-only static files from the reports directory: GET and HEAD. A path that leaves the
  directory (``..``, an encoded ``%2e%2e``, an absolute path, a symbolic link pointing outside)
  answers 404, and so does anything that is not a regular file or a directory inside it (a
  directory answers with its listing, so ``/`` lists every report).
- A process of its own (``python -m macro_pipeline.reports.server``), started by ``dev`` before it
  becomes ``dagster dev``: ``dev`` binds the socket itself and hands it over. A port set in the
  environment that is busy fails there, with a clear message, before anything starts; the default
  port, when busy (another ``dev``), gives way to a free one. ``dev`` exports the port it got to
  the Dagster processes, so the links point at this server. The server exits when the process that
  started it is gone (``dagster dev`` stopped by Ctrl-C or SIGTERM), checked every half second.

Standard library (and the settings) only: this module loads in the CLI's start-up path.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import urllib.parse
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from macro_pipeline.settings import Settings, load_settings

HOST = "127.0.0.1"


def reports_dir(settings: Settings | None = None) -> Path:
    """Where reports go by default, and what ``dev`` serves: ``$MACRO_PIPELINE_HOME/reports``."""
    return (settings or load_settings()).home / "reports"


class ReportHandler(SimpleHTTPRequestHandler):
    """Static files under ``directory``; everything that resolves outside it is 404."""

    server_version = "macro-pipeline-reports"
    sys_version = ""

    def translate_path(self, path: str) -> str:
        # the standard handler already drops ".." and absolute components; on top of that the
        # resolved target (symbolic links followed) must stay inside the root
        candidate = Path(super().translate_path(path)).resolve()
        root = Path(self.directory).resolve()
        if candidate != root and root not in candidate.parents:
            return ""  # send_head answers 404 for a path that is no file
        return str(candidate)

    def send_head(self):
        raw = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if ".." in Path(raw).parts or "\x00" in raw:
            self.send_error(404, "File not found")
            return None
        target = self.translate_path(self.path)
        if not target or not (os.path.isfile(target) or os.path.isdir(target)):
            self.send_error(404, "File not found")
            return None
        return super().send_head()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass  # quiet: dagster dev owns the terminal


def make_server(directory: str | os.PathLike, sock: socket.socket | None = None, port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for ``directory`` on ``sock`` (already bound and listening), or bound here to
    ``HOST:port`` (0: any free port)."""
    handler = partial(ReportHandler, directory=str(Path(directory).resolve()))
    if sock is None:
        return ThreadingHTTPServer((HOST, port), handler)
    server = ThreadingHTTPServer(sock.getsockname()[:2], handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    return server


def bind(port: int) -> socket.socket:
    """A listening socket on ``HOST:port``; a busy port raises ``OSError`` naming it."""
    try:
        return socket.create_server((HOST, port))
    except OSError as exc:
        raise OSError(exc.errno, f"cannot serve reports on {HOST}:{port}: {exc.strerror} "
                                 "(set MACRO_PIPELINE_REPORTS_PORT to another port)") from exc


def start(directory: str | os.PathLike, port: int, *, any_port_if_busy: bool = False) -> tuple[subprocess.Popen, int]:
    """The server as a child process serving ``directory`` on ``HOST:port``, and the port it
    listens on: the socket is bound here (so a busy port fails now, or with ``any_port_if_busy``
    a free port is taken instead) and passed down; the child exits when this process (or the
    program it becomes by exec) exits."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    try:
        sock = bind(port)
    except OSError:
        if not any_port_if_busy:
            raise
        sock = bind(0)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "macro_pipeline.reports.server", "--fd", str(sock.fileno()),
                                 "--directory", str(directory), "--parent", str(os.getpid())],
                                pass_fds=[sock.fileno()], stdin=subprocess.DEVNULL)
        return proc, sock.getsockname()[1]
    finally:
        sock.close()  # the child holds its own copy


def report_url(path: str | os.PathLike, directory: str | os.PathLike, port: int) -> str | None:
    """The address of report ``path`` on the server of ``directory``; None when the file is not
    inside that directory (the server could not serve it). Lexical (absolute, normalised paths;
    no file system access): the report writers return resolved paths, and the server itself
    refuses whatever resolves outside."""
    target, root = os.path.abspath(path), os.path.abspath(directory)
    if not target.startswith(root.rstrip(os.sep) + os.sep):
        return None
    rel = Path(target[len(root.rstrip(os.sep)) + 1:]).as_posix()
    return f"http://{HOST}:{port}/{urllib.parse.quote(rel)}"


def _serve_until_parent_exits(server: ThreadingHTTPServer, parent: int) -> None:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.25}, daemon=True)
    thread.start()
    try:
        while os.getppid() == parent:  # reparented (to init or a subreaper): the parent is gone
            thread.join(0.5)
            if not thread.is_alive():
                break
    except KeyboardInterrupt:  # Ctrl-C reaches the whole foreground process group
        pass
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m macro_pipeline.reports.server",
                                description=f"Serve the reports directory on {HOST} (started by macro-pipeline dev).")
    p.add_argument("--directory", required=True)
    p.add_argument("--fd", type=int, help="a listening socket handed over by the parent")
    p.add_argument("--port", type=int, default=0, help="without --fd: bind this port on 127.0.0.1")
    p.add_argument("--parent", type=int, help="exit when this process is no longer the parent")
    args = p.parse_args(argv)
    sock = socket.socket(fileno=args.fd) if args.fd is not None else None
    server = make_server(args.directory, sock, args.port)
    _serve_until_parent_exits(server, args.parent if args.parent is not None else os.getppid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
