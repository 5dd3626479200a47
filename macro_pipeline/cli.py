"""``macro-pipeline``: the command line.

Errors print as one line (``error: ...``; validation errors list each broken rule) with exit code
2 for bad input and 1 for anything else; ``--verbose`` adds the full traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Sequence

from macro_pipeline import __version__

EXIT_BAD_INPUT = 2


def _engine(args: argparse.Namespace):
    from macro_pipeline.warehouse import db

    return db.get_engine()


def _migrated_engine(args: argparse.Namespace):
    from macro_pipeline.warehouse import migrate

    engine = _engine(args)
    migrate.migrate(engine)
    return engine


# --------------------------------------------------------------------------- db


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from macro_pipeline.warehouse import migrate

    applied = migrate.migrate(_engine(args))
    print("applied: " + ", ".join(applied) if applied else "schema up to date: nothing to apply")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    from macro_pipeline.settings import load_settings
    from macro_pipeline.warehouse import db, embedded, migrate

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
    st = migrate.status(_engine(args))
    for name, when in st.applied:
        print(f"  applied  {name}  {when}")
    for name in st.pending:
        print(f"  pending  {name}")
    for name in st.changed:
        print(f"  CHANGED  {name} (differs from the applied version; add a new file instead)")
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    from macro_pipeline.settings import load_settings
    from macro_pipeline.warehouse import embedded

    settings = load_settings()
    if not settings.embedded:
        print("an external database is configured (MACRO_PIPELINE_DATABASE_URL): nothing to stop")
        return 0
    stopped = embedded.stop_embedded(settings.home)
    print(f"stopped embedded PostgreSQL in {settings.pgdata}" if stopped else "embedded PostgreSQL was not running")
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    from macro_pipeline.settings import database_url

    print(database_url())
    return 0


# --------------------------------------------------------------------------- data


def cmd_ingest(args: argparse.Namespace) -> int:
    from macro_pipeline.warehouse import ingest

    engine = _migrated_engine(args)
    for path in args.files:
        report = ingest.ingest(
            engine, args.kind, path, register_unknown=args.register_instruments,
            show_progress=not args.quiet,
        )
        print(report.summary())
    return 0


def cmd_demo_data_load(args: argparse.Namespace) -> int:
    from macro_pipeline.warehouse.demo import load_demo

    for report in load_demo(_migrated_engine(args), show_progress=not args.quiet):
        print(report.summary())
    return 0


def cmd_stored(args: argparse.Namespace) -> int:
    from macro_pipeline.warehouse.inventory import inventory, render_inventory

    inv = inventory(_migrated_engine(args))
    print(json.dumps(inv, indent=2, default=str) if args.json else render_inventory(inv))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Until the Dagster pipeline lands: load the demo data and show what is stored."""
    from macro_pipeline.settings import database_url, load_settings
    from macro_pipeline.warehouse import db
    from macro_pipeline.warehouse.demo import load_demo
    from macro_pipeline.warehouse.inventory import inventory, render_inventory

    engine = _migrated_engine(args)
    for report in load_demo(engine, show_progress=not args.quiet):
        print(report.summary())
    print()
    print(render_inventory(inventory(engine)))
    settings = load_settings()
    print()
    print(f"warehouse: {db.render(database_url(settings))}")
    if settings.embedded:
        print(f"embedded PostgreSQL data: {settings.pgdata} (stop it with `macro-pipeline db stop`)")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from macro_pipeline.warehouse.ingest import KINDS

    parser = argparse.ArgumentParser(
        prog="macro-pipeline",
        description="Point-in-time correct, reproducible cross-asset backtests on PostgreSQL + Dagster.",
    )
    parser.add_argument("--version", action="version", version=f"macro-pipeline {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="full tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db_p = sub.add_parser("db", help="the warehouse database: migrate, status, stop, url")
    db_sub = db_p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("migrate", help="apply pending sql/ files in order (idempotent)").set_defaults(func=cmd_db_migrate)
    db_sub.add_parser("status", help="where the warehouse is; applied and pending sql/ files").set_defaults(func=cmd_db_status)
    db_sub.add_parser("stop", help="stop the embedded PostgreSQL server").set_defaults(func=cmd_db_stop)
    db_sub.add_parser("url", help="print the warehouse URL (starts the embedded server if needed)").set_defaults(func=cmd_db_url)

    ing = sub.add_parser("ingest", help="validate and load files (CSV or Parquet)",
                         description="Formats: see macro_pipeline/warehouse/ingest.py or the README.")
    ing.add_argument("kind", choices=KINDS)
    ing.add_argument("files", nargs="+", metavar="FILE")
    ing.add_argument("--register-instruments", action="store_true",
                     help="register unknown instrument ids with default attributes instead of failing")
    ing.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ing.set_defaults(func=cmd_ingest)

    dd = sub.add_parser("demo-data", help="the bundled demo data set")
    dd_sub = dd.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    load = dd_sub.add_parser("load", help="put the demo data in the warehouse (idempotent)")
    load.add_argument("-q", "--quiet", action="store_true")
    load.set_defaults(func=cmd_demo_data_load)

    st = sub.add_parser("stored", help="what the warehouse holds: row counts, spans, watermarks")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_stored)

    demo = sub.add_parser("demo", help="the main job on the embedded default: load demo data, show it")
    demo.add_argument("-q", "--quiet", action="store_true")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from macro_pipeline.warehouse.errors import IngestValidationError, LookAheadError
    from macro_pipeline.warehouse.migrate import MigrationError

    try:
        return int(args.func(args) or 0)
    except (IngestValidationError, LookAheadError, MigrationError, ValueError, FileNotFoundError) as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line; the trace only under --verbose
        if args.verbose:
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {type(exc).__name__}: {first} (rerun with --verbose for the trace)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
