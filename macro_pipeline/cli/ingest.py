"""``macro-pipeline ingest`` (validate and load files) and ``stored`` (what the warehouse holds)."""

from __future__ import annotations

import argparse
import json

from macro_pipeline.cli.db import migrated_engine
from macro_pipeline.warehouse import ingest
from macro_pipeline.warehouse.inventory import inventory, render_inventory


def cmd_ingest(args: argparse.Namespace) -> int:
    engine = migrated_engine(args)
    for path in args.files:
        report = ingest.ingest(
            engine, args.kind, path, register_unknown=args.register_instruments,
            register_release_rule=args.release_rule, show_progress=not args.quiet,
            correction=args.correction,
        )
        print(report.summary())
    return 0


def cmd_stored(args: argparse.Namespace) -> int:
    inv = inventory(migrated_engine(args))
    print(json.dumps(inv, indent=2, default=str) if args.json else render_inventory(inv))
    return 0
