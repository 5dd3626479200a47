"""Room: warehouse/ingest/stage. Staging a validated frame for the INSERT: rows in the unique
index's order, cut into chunks that never split a key, COPYed (binary, ``FREEZE``) into staging
tables on a second connection while the ingest's transaction inserts the previous chunk.

Why the order: rows stored in index order append at the right edge of the B-tree. Why the
thread: with a core to spare, the COPY of chunk k + 1 no longer adds to the time of the INSERT
of chunk k. ``FREEZE`` (each staging table is created in the COPY's own transaction): rows are
stored frozen, so reading them back does not set hint bits, which would dirty and rewrite every
page of the staging table.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.warehouse.copy import copy_frame
from macro_pipeline.warehouse.ingest.keys import is_increasing, order_codes, row_codes
from macro_pipeline.warehouse.ingest.spec import TEXT_COLS, KindSpec
from macro_pipeline.warehouse.pit import INGEST_LOCK

log = logging.getLogger(__name__)
STAGE_SCHEMA = "ingest_staging"  # sql/005_ingest_staging.sql
# rows per staging table: small enough that the first INSERT starts soon (the COPY of the first
# chunk is the only one not overlapped), large enough that per-statement costs stay negligible
STAGE_CHUNK_ROWS = 500_000


def _collation_rank(conn: sa.Connection, values: list[str]) -> np.ndarray:
    """Rank of each distinct text value in the database's collation (the order its indexes use)."""
    positions = conn.execute(
        sa.text("SELECT ord FROM unnest(CAST(:v AS text[])) WITH ORDINALITY AS u(v, ord) ORDER BY v"), {"v": values}
    ).scalars().all()
    rank = np.empty(len(values), dtype="int64")
    rank[np.asarray(positions, dtype="int64") - 1] = np.arange(len(values))
    return rank


def index_order(conn: sa.Connection, spec: KindSpec, frame: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray]:
    """(order, keys): the row order of the table's unique index (key ascending, known_at
    descending), None when the rows are in that order already (files usually are); and one int64
    per row, in that order, equal for the rows of one key (for ``chunk_bounds``).

    Rows stored in index order append at the right edge of the B-tree. A file sorted another way
    (by date, then instrument) makes the INSERT split pages all over the index instead: 1.7x
    slower at 1M rows. Text keys are ranked in the database's collation, as the index is.
    """
    parts = []
    for c in spec.keys:
        if c in TEXT_COLS:
            codes, uniques = pd.factorize(frame[c])
            parts.append((_collation_rank(conn, [str(u) for u in uniques])[codes], len(uniques)))
        else:
            parts.append(order_codes(frame[c]))
    keys = row_codes(parts)
    if is_increasing(keys):  # keys strictly increasing: known_at cannot matter
        return None, keys
    codes, base = order_codes(frame["known_at"])
    order = np.argsort(row_codes(parts + [(base - codes, base + 1)]), kind="stable")
    return order, keys[order]


def chunk_bounds(keys: np.ndarray, rows: int) -> list[tuple[int, int]]:
    """Row ranges ``[start, stop)`` of about ``rows`` rows that never split a key.

    ``keys``: one code per row in index order (``index_order``), so the rows of one key (several
    ``known_at``) are adjacent and stay in one chunk: whether such a key is *added* or a
    *revision* is then decided by one statement, exactly as if the file were inserted at once.
    """
    n = len(keys)
    if n <= rows:
        return [(0, n)]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])  # first row of each key
    at = np.searchsorted(starts, np.arange(rows, n, rows))  # the next key start from each multiple
    cuts = np.unique(starts[at[at < len(starts)]])
    edges = [0, *[int(c) for c in cuts if 0 < c < n], n]
    return list(zip(edges[:-1], edges[1:], strict=True))


class Staging:
    """Staging tables COPYed on a second connection while the ingest's transaction inserts from them.

    ``start`` copies each chunk of the frame into its own unlogged table in the ``ingest_staging``
    schema (``sql/005_ingest_staging.sql``), created, filled (``FREEZE``) and committed one after
    the other on a thread; ``tables`` yields each name once it is committed. So the transaction's
    INSERT of chunk k runs in one server process while another stores chunk k + 1: with a core
    to spare, the COPY no longer adds to the time of the INSERT. The staged rows are scratch: the
    fact tables are written only by the ingest's own transaction, after validation, all or
    nothing. A frame of one chunk is staged in a temporary table of the transaction instead.

    Leaving the context drops the tables; use it around the transaction, whose INSERTs lock them
    until it ends. Tables of an ingest whose process died are dropped by the next ingest of any
    size, and by any command at start when no ingest runs (``drop_stale_staging``).
    """

    def __init__(self, engine: sa.Engine):
        self.engine = self._engine = engine
        self._dbapi = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready: queue.Queue = queue.Queue()
        self._created: list[str] = []
        self._count = 0

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._dbapi is None:
            return
        try:
            self._dbapi.rollback()  # a failed COPY leaves the connection in an aborted transaction
            with self._dbapi.cursor() as cur:
                for name in self._created:
                    cur.execute(f"DROP TABLE IF EXISTS {name}")
            self._dbapi.commit()
        except Exception as exc:  # noqa: BLE001 - never hide the ingest's own outcome; the next command drops them
            # one line (the trace at DEBUG): the ingest's own error, printed after it, is what matters
            log.warning("could not drop the staging tables %s (%s); the next command drops them", self._created,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                        exc_info=log.isEnabledFor(logging.DEBUG))
        finally:
            self._dbapi.close()

    def start(self, conn: sa.Connection, spec: KindSpec, batch_id: int, frame: pd.DataFrame,
              bounds: list[tuple[int, int]]) -> None:
        """Stage ``frame[lo:hi]`` for each of ``bounds``; ``conn`` is the ingest's transaction,
        holding the ingest lock."""
        if len(bounds) == 1:  # nothing to overlap: a temporary table on the transaction's connection
            name = f"stage_{spec.table}"
            conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS "
                                 f"SELECT {', '.join(frame.columns)} FROM {spec.table} WITH NO DATA")
            with conn.connection.dbapi_connection.cursor() as cur:
                copy_frame(cur, name, frame, freeze=True)
            self._count = 1
            self._ready.put(name)
            return
        self._dbapi = self._engine.raw_connection()
        self._dbapi.detach()  # closed when done, not kept in the pool: one big ingest needs it once
        names = [f"{STAGE_SCHEMA}.{spec.table}_{batch_id}_{k}" for k in range(len(bounds))]
        self._count = len(names)
        self._thread = threading.Thread(
            target=self._fill, args=(spec, frame, list(zip(names, bounds, strict=True))), name="ingest-staging", daemon=True)
        self._thread.start()

    def _fill(self, spec: KindSpec, frame: pd.DataFrame, chunks: list[tuple[str, tuple[int, int]]]) -> None:
        try:
            for name, (lo, hi) in chunks:
                if self._stop.is_set():
                    return
                with self._dbapi.cursor() as cur:
                    self._created.append(name)
                    cur.execute(f"CREATE UNLOGGED TABLE {name} AS SELECT {', '.join(frame.columns)} FROM {spec.table} WITH NO DATA")
                    copy_frame(cur, name, frame.iloc[lo:hi], freeze=True)
                self._dbapi.commit()
                self._ready.put(name)
        except BaseException as exc:  # noqa: BLE001 - handed to the transaction's thread, raised there
            self._ready.put(exc)

    def tables(self) -> Iterator[str]:
        """Each chunk's table, in order, as soon as it is committed (raises what the COPY raised)."""
        for _ in range(self._count):
            item = self._ready.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        """No further chunk is staged; returns once the one being copied (if any) is done."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def drop_stale_staging(engine: sa.Engine, *, wait: bool = True) -> int:
    """Drop the staging tables of ingests whose process died (kill -9, out of memory) before
    dropping them: up to 10 tables, hundreds of MB, were left until the next ingest of more than
    one chunk. Every ingest calls it (holding the ingest lock: ``wait``), and every command at
    start (``wait=False``: only when no ingest holds the lock, else nothing). Returns how many
    were dropped. A table still locked by an ingest that is dropping its own is left to it."""
    dropped = 0
    with engine.connect() as conn:
        stale = conn.exec_driver_sql(
            "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = %s", (STAGE_SCHEMA,)).scalars().all()
        if not stale:
            conn.rollback()
            return 0
        locked = not wait and conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": INGEST_LOCK}).scalar_one()
        conn.commit()
        if not wait and not locked:
            return 0  # an ingest is running: its own tables are not stale; the next ingest drops them
        try:
            for name in stale:
                try:
                    conn.exec_driver_sql("SET LOCAL lock_timeout = '1s'")
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {STAGE_SCHEMA}.{name}")
                    conn.commit()
                    dropped += 1
                except sa.exc.DBAPIError:  # in use or gone: not ours to insist on
                    conn.rollback()
        finally:
            if locked:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": INGEST_LOCK})
                conn.commit()
    if dropped:
        log.info("dropped %d staging table(s) of killed ingests", dropped)
    return dropped
