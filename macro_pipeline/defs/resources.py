"""Dagster resources: the warehouse, behind one interface (real PostgreSQL, by URL or embedded)."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from macro_pipeline.warehouse import db, migrate


class WarehouseResource(dg.ConfigurableResource):
    """The PostgreSQL warehouse. ``url`` empty: the configured one (``settings``: env or embedded)."""

    url: str = ""

    def engine(self) -> sa.Engine:
        engine = db.get_engine(self.url or None)
        migrate.migrate(engine)  # idempotent: a no-op once the schema is current
        return engine
