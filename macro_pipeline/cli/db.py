"""``macro-pipeline db``: the warehouse database (migrate, status, stop, url), and the engine every
other command opens on it."""

from __future__ import annotations

import argparse

import sqlalchemy as sa

from macro_pipeline.settings import database_url, load_settings
from macro_pipeline.warehouse import connection as db
from macro_pipeline.warehouse import connection as embedded
from macro_pipeline.warehouse import migrate
from macro_pipeline.warehouse.ingest.stage import drop_stale_staging


def warehouse_engine(args: argparse.Namespace) -> sa.Engine:
    """The warehouse's engine (starts the embedded server when no URL is configured)."""
    return db.get_engine()


def migrated_engine(args: argparse.Namespace) -> sa.Engine:
    """The warehouse's engine with every sql/ file applied and stale staging tables dropped."""
    engine = warehouse_engine(args)
    migrate.migrate(engine)
    drop_stale_staging(engine, wait=False)  # staging tables of a killed ingest, when none runs
    return engine


def cmd_db_migrate(args: argparse.Namespace) -> int:
    applied = migrate.migrate(warehouse_engine(args))
    print("applied: " + ", ".join(applied) if applied else "schema up to date: nothing to apply")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.embedded:
        server = embedded.status(settings.home)
        where = f"embedded PostgreSQL in {settings.pgdata} ({f'running, pid {server.pid}' if server else 'stopped'})"
        if server is None:  # status never starts a server
            print(f"warehouse: {where}; any other command starts it")
            return 0
    else:
        where = f"external PostgreSQL {db.render(settings.database_url)}"
    print(f"warehouse: {where}")
    st = migrate.status(warehouse_engine(args))
    for name, when in st.applied:
        print(f"  applied  {name}  {when}")
    for name in st.pending:
        print(f"  pending  {name}")
    for name in st.changed:
        print(f"  CHANGED  {name} (differs from the applied version; add a new file instead)")
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not settings.embedded:
        print("an external database is configured (MACRO_PIPELINE_DATABASE_URL): nothing to stop")
        return 0
    stopped = embedded.stop_embedded(settings.home)
    print(f"stopped embedded PostgreSQL in {settings.pgdata}" if stopped else "embedded PostgreSQL was not running")
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    print(database_url())
    return 0
