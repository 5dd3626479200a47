"""Dagster resources: the warehouse, behind one interface (real PostgreSQL, by URL or embedded),
and the retry rule for transient database errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import sqlalchemy as sa

from macro_pipeline.warehouse import connection as db
from macro_pipeline.warehouse import migrate

# A lost connection, a server restart or a failover is worth retrying; a constraint violation, a
# validation error or a look-ahead is not (retrying would fail the same way).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError)
MAX_RETRIES = 3
RETRY_WAIT_SECONDS = 2.0


class WarehouseResource(dg.ConfigurableResource):
    """The PostgreSQL warehouse. ``url`` empty: the configured one (``settings``: env or embedded)."""

    url: str = ""

    def engine(self) -> sa.Engine:
        engine = db.get_engine(self.url or None)
        migrate.migrate(engine)  # idempotent: a no-op once the schema is current
        return engine


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, TRANSIENT_ERRORS)


@contextlib.contextmanager
def retry_transient(context) -> Iterator[None]:
    """Re-raise a transient database error as ``RetryRequested`` (the step is re-executed, up to
    ``MAX_RETRIES`` times, ``RETRY_WAIT_SECONDS`` apart, with back-off); anything else fails the
    step at once. Every write is one transaction, so a retried step never finds partial results."""
    try:
        yield
    except Exception as exc:
        if not is_transient(exc):
            raise
        attempt = getattr(context, "retry_number", 0)
        context.log.warning(f"transient database error (attempt {attempt + 1} of {MAX_RETRIES + 1}): "
                            f"{str(exc).splitlines()[0]}")
        raise dg.RetryRequested(max_retries=MAX_RETRIES, seconds_to_wait=RETRY_WAIT_SECONDS * (2 ** attempt)) from exc
