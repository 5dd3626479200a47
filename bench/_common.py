"""Shared bench plumbing: a throwaway database on the configured server (or the embedded one)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

from macro_pipeline.settings import DATABASE_URL_ENV, load_settings, normalize_url
from macro_pipeline.warehouse import connection as db
from macro_pipeline.warehouse import migrate


def server_url() -> str:
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return normalize_url(url)
    from macro_pipeline.warehouse import connection as embedded

    return embedded.ensure_embedded(load_settings().home).url("postgres")


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A migrated database created for this run and dropped after it."""
    server = server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = db.create_database(server, name)
    try:
        migrate.migrate(db.get_engine(url))
        yield url
    finally:
        db.drop_database(server, name)
