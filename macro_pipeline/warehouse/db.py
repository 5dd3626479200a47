"""Connections and database administration (create/drop) for the warehouse."""

from __future__ import annotations

import re
import threading

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from macro_pipeline.settings import database_url, normalize_url

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
