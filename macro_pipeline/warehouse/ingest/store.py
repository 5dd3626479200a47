"""Room: warehouse/ingest/store. ``ingest``: validate a whole file first, then store it in one
transaction (the insert SQL lives here).

File formats: ``spec.py``. What happens, in order:
1. read the file (pyarrow; empty lines are kept so line numbers stay true);
2. validate every rule over every row and raise ``IngestValidationError`` listing each broken rule
   with the file, the first few line numbers and a count; nothing has been written;
3. in one transaction, serialized with other ingests by an advisory lock: fill known_at from the
   release rules if the file has none, refuse prices known before their session's close on their
   instrument's calendar (``known-before-close``), take ``recorded_at`` from the database clock,
   then store the rows by one of two paths, chosen per value of the table's leading key column
   (the instrument or series; ``spec.keys[0]``, the unique index's first column), with one index
   probe each under the lock:
   - a first load (no row stored for that value: no key of these rows can be stored) is COPYed
     straight into the fact table, every row added (``_copy_new``);
   - the rest (values with stored rows: revisions, overlapping or growing loads) are COPYed into
     staging, then a set-based ``INSERT ... SELECT`` stores the rows that are new: a key never
     seen (added) or a key whose stored version with the same ``known_at`` has other values (a
     revision or correction). Rows identical to their stored version are skipped, so
     re-ingesting a file adds nothing (and then not even a batch row is written: the second run
     finds every value stored, so it takes this path). When known_at came from the rule, a row
     over a stored key is refused (``rewrites-history``: rolled back, rows named with stored and
     new values) unless ``correction=True``: the rule would give the new value the first print's
     known_at. Files of more than ``stage.STAGE_CHUNK_ROWS`` such rows are staged and inserted in
     chunks that never split a key (``stage.Staging``): a second connection COPYs chunk k + 1
     into an unlogged table while the transaction inserts chunk k, so the COPY overlaps the
     INSERT (and the staging of chunk 1 overlaps the direct COPY).
   Both paths write inside the one transaction, after validation and ``known-before-close``: a
   refusal found while inserting the staged rows (``rewrites-history``), a failure or a kill at
   any point (mid-COPY too) rolls back the direct COPY with the rest, leaving nothing.

Speed (5M price rows; ``bench/ingest.py``): the file is memory-mapped, not copied; text columns
become Categoricals, so string work is per distinct id; known_at is computed per (instrument
rule, calendar, distinct day); every COPY is binary (``warehouse/copy.py``: no text formatting,
no parsing in the server) and in the unique index's order (so each row appends at the B-tree's
right edge). A first load writes each row once, by the COPY into the fact table: the heap insert,
the unique B-tree insert, the BRIN update and the CHECKs, with their WAL, are the schema's own
work. Merging the seven CHECKs of ``prices`` (they repeat validation) into one did not measurably
help, so the DDL stays: binary COPY of 2M rows into the indexed table, three interleaved
repetitions on a busy machine, medians 21.1 s with the seven, 20.2 s with one merged, 19.7 s with
none, while one table alone ranged 15.0-21.3 s; the B-tree insert is the cost. Staging writes
each row twice (an unlogged, ``FREEZE`` copy, overlapped with the INSERT on a second connection,
then the INSERT with its per-row probes): ~2 s per million rows.
``logging`` at DEBUG shows the time of each step.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from tqdm.auto import tqdm

from macro_pipeline.warehouse.copy import copy_frame
from macro_pipeline.warehouse.errors import IngestValidationError, Problem
from macro_pipeline.warehouse.ingest import release, stage
from macro_pipeline.warehouse.ingest.instruments import (
    fill_known_at,
    ingest_instruments,
    instrument_rows,
    register_with_defaults,
)
from macro_pipeline.warehouse.ingest.read import frame_input, read_file
from macro_pipeline.warehouse.ingest.refusals import (
    Rewrites,
    before_close_problem,
    find_rewrites,
    rewrite_problem,
)
from macro_pipeline.warehouse.ingest.spec import KINDS, SPECS, IngestReport, KindSpec
from macro_pipeline.warehouse.ingest.stage import (
    Staging,
    chunk_bounds,
    drop_stale_staging,
    index_order,
)
from macro_pipeline.warehouse.ingest.validate import validate
from macro_pipeline.warehouse.pit import INGEST_LOCK

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _phase(what: str):
    """Log how long a step took (DEBUG level): where an ingest spends its time."""
    start = time.perf_counter()
    yield
    log.debug("%s: %.2f s", what, time.perf_counter() - start)


def _store(conn: sa.Connection, spec: KindSpec, frame: pd.DataFrame, report: IngestReport,
           source_sha: str | None, staging: Staging, show_progress: bool, refuse_rewrites: bool) -> None:
    """Stage and insert ``frame``; with ``refuse_rewrites``, raise ``Rewrites`` (the caller's
    transaction then rolls back) when a row would be stored over a key already stored."""
    cols = list(spec.columns)
    frame = frame[cols]
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({INGEST_LOCK})")
    # no other ingest is staging now (the lock): what is in the staging schema was left by a
    # killed one; dropped on another connection, outside this transaction
    drop_stale_staging(staging.engine)
    # JIT: these row estimates trigger compilation with inlining and optimization, ~0.3 s per
    # statement (so per chunk), for per-row work too plain to gain from it: re-ingesting 1M
    # unchanged rows took 3.0-3.3 s with JIT, 2.8 s without. Memoize caches the index probes by
    # key, but every staged key is distinct: 5M misses, pure overhead.
    conn.exec_driver_sql("SET LOCAL jit = off")
    conn.exec_driver_sql("SET LOCAL enable_memoize = off")
    with _phase("index order"):
        order, keys = index_order(conn, spec, frame)
        if order is not None:
            frame = frame.take(order)
    recorded_at = conn.exec_driver_sql("SELECT clock_timestamp()").scalar_one()
    batch_id = conn.execute(
        sa.text(
            "INSERT INTO ingest_batches (kind, source, source_sha256, rows_in_file, rows_added, revisions_added, unchanged, recorded_at) "
            "VALUES (:k, :s, :h, :n, 0, 0, 0, :r) RETURNING batch_id"
        ),
        {"k": spec.kind, "s": report.source, "h": source_sha, "n": report.rows_in_file, "r": recorded_at},
    ).scalar_one()
    fresh = ~frame[spec.keys[0]].isin(_stored_leads(conn, spec, frame[spec.keys[0]])).to_numpy()
    seen_rows = frame[~fresh] if not fresh.all() else frame.iloc[:0]
    bounds = chunk_bounds(keys[~fresh], stage.STAGE_CHUNK_ROWS) if len(seen_rows) else []
    if bounds:  # staging starts first: its COPY of chunk 1 overlaps the direct COPY
        staging.start(conn, spec, batch_id, seen_rows, bounds)
    bar = tqdm(total=len(frame), desc=f"ingest {spec.kind}", unit="row", disable=not show_progress, leave=False)
    added = revisions = 0
    rewrites: Rewrites | None = None
    try:
        if fresh.any():
            with _phase(f"COPY of a first load into {spec.table}, {int(fresh.sum())} rows"):
                added = _copy_new(conn, spec, frame[fresh] if not fresh.all() else frame, recorded_at, batch_id)
            bar.update(added)
        with _phase(f"COPY to staging and INSERT, {len(bounds)} chunk(s)"):
            for (lo, hi), table in zip(bounds, staging.tables(), strict=True):
                if rewrites is None:
                    a, r = _insert_new(conn, spec, table, recorded_at, batch_id)
                    added, revisions = added + a, revisions + r
                    # the INSERT counted them for free: the check costs nothing when it passes
                    if refuse_rewrites and r:
                        rewrites = Rewrites()
                if rewrites is not None:  # this chunk and the rest: find them, insert nothing more
                    rewrites.add(*find_rewrites(conn, spec, table, batch_id))
                bar.update(hi - lo)
    finally:
        staging.stop()  # after a failure, before the transaction ends: no COPY carries on
    bar.close()
    if rewrites is not None:
        raise rewrites
    report.rows_added, report.revisions_added = int(added), int(revisions)
    report.unchanged = report.rows_in_file - report.rows_added - report.revisions_added
    report.batch_id, report.recorded_at = int(batch_id), recorded_at
    conn.execute(
        sa.text("UPDATE ingest_batches SET rows_added = :a, revisions_added = :r, unchanged = :u WHERE batch_id = :b"),
        {"a": report.rows_added, "r": report.revisions_added, "u": report.unchanged, "b": batch_id},
    )


def _stored_leads_sql(spec: KindSpec) -> str:
    """The values ``:v`` of the leading key column that have a stored row: one probe of the
    unique index per value.

    A semi-join driven by the value list. ``WHERE lead = ANY(:v)`` instead lets the planner pick
    a sequential scan that expects an early match; when there is none (new instruments: the
    first load's very case) it reads the whole table, comparing each row with every value. The
    table has no statistics for the planner to know better right after a big load: that cost
    1.8 s of server time per chunk in the 5M-row bench.
    """
    lead = spec.keys[0]
    return (f"SELECT u.v FROM unnest(CAST(:v AS text[])) AS u(v) "
            f"WHERE EXISTS (SELECT 1 FROM {spec.table} t WHERE t.{lead} = u.v)")


def _stored_leads(conn: sa.Connection, spec: KindSpec, values: pd.Series) -> set[str]:
    """Which distinct ``values`` of the leading key column have rows stored (under the ingest
    lock: no other ingest can add one before this transaction ends)."""
    distinct = [str(v) for v in values.unique().tolist()]
    return set(conn.execute(sa.text(_stored_leads_sql(spec)), {"v": distinct}).scalars().all())


def _copy_new(conn: sa.Connection, spec: KindSpec, frame: pd.DataFrame, recorded_at: datetime, batch_id: int) -> int:
    """COPY rows whose leading key value has nothing stored straight into the fact table, on the
    transaction's connection; returns how many (all added: none of their keys can be stored,
    and validation refused duplicates within the file)."""
    rows = frame.assign(recorded_at=recorded_at, batch_id=batch_id)
    with conn.connection.dbapi_connection.cursor() as cur:
        copy_frame(cur, spec.table, rows)
    return len(rows)


def _insert_new(conn: sa.Connection, spec: KindSpec, stage: str, recorded_at: datetime,
                batch_id: int) -> tuple[int, int]:
    """One set-based INSERT of the staged rows that are new; returns (added, revisions)."""
    cols = list(spec.columns)
    params = {"rec": recorded_at, "batch": batch_id}
    target_cols = ", ".join(cols)
    # per staged row (in index order): one probe for the stored version with the same known_at,
    # and for rows that differ from it, one probe telling a new key from a revision
    same = " AND ".join(f"t.{k} = s.{k}" for k in spec.keys)
    differs = " OR ".join(f"s.{v} IS DISTINCT FROM cur.{v}" for v in spec.values)
    s_cols = ", ".join(f"s.{c}" for c in cols)
    row = conn.execute(
        sa.text(
            f"""
            WITH cand AS (
                SELECT {s_cols},
                       EXISTS (SELECT 1 FROM {spec.table} t WHERE {same}) AS key_seen
                FROM {stage} s
                LEFT JOIN LATERAL (
                    SELECT true AS present, {', '.join('t.' + v for v in spec.values)}
                    FROM {spec.table} t
                    WHERE {same} AND t.known_at = s.known_at
                    ORDER BY t.recorded_at DESC LIMIT 1
                ) cur ON true
                WHERE cur.present IS NULL OR {differs}
            ), ins AS (
                INSERT INTO {spec.table} ({target_cols}, recorded_at, batch_id)
                SELECT {target_cols}, :rec, :batch FROM cand
                RETURNING 1
            )
            SELECT count(*) FILTER (WHERE NOT key_seen), count(*) FILTER (WHERE key_seen),
                   (SELECT count(*) FROM ins)
            FROM cand
            """
        ),
        params,
    ).one()
    added, revisions, inserted = int(row[0]), int(row[1]), int(row[2])
    assert inserted == added + revisions
    return added, revisions


class _NothingNew(Exception):
    pass


def ingest(
    engine: sa.Engine,
    kind: str,
    source: str | Path | pd.DataFrame,
    *,
    register_unknown: bool = False,
    register_release_rule: str | None = None,
    name: str | None = None,
    release_model: release.ReleaseModel = release.DEFAULT_MODEL,
    show_progress: bool = False,
    correction: bool = False,
) -> IngestReport:
    """Validate ``source`` (a file path or a DataFrame) as ``kind`` and store it.

    Raises ``IngestValidationError`` (nothing written) on any broken rule, including instruments
    that are not registered unless ``register_unknown`` (then registered with the kind's default
    release rule, or ``register_release_rule``). All-or-nothing: one transaction.

    A source without ``known_at`` (the release rule dates it) whose values differ from stored rows
    of the same key is refused (rule ``rewrites-history``): the rule would give the new value the
    first print's known_at, rewriting what every past decision saw. Give ``known_at`` (a revision)
    or pass ``correction=True``: a restatement at the rule's (the original) known_at, ordered after
    the stored row by ``recorded_at``. ``correction`` has no effect on a source with ``known_at``.
    Prices known before their session's close on their calendar are refused (``known-before-close``).
    """
    if register_release_rule is not None and register_release_rule not in release.INSTRUMENT_RULES:
        raise ValueError(f"release rule {register_release_rule!r} is not one of {release.INSTRUMENT_RULES}")
    if kind == "instruments":
        return ingest_instruments(engine, source, name=name)
    if kind not in SPECS:
        raise ValueError(f"unknown ingest kind {kind!r}; choose one of {', '.join(KINDS)}")
    spec = SPECS[kind]
    with _phase("read"):
        raw = frame_input(source) if isinstance(source, pd.DataFrame) else read_file(source)
    label = name or (str(source) if not isinstance(source, pd.DataFrame) else f"<{kind} frame>")
    with engine.connect() as conn:
        registered = None if register_unknown else set(
            r[0] for r in conn.exec_driver_sql("SELECT instrument_id FROM instruments").all()
        )
    with _phase("validate"):
        frame = validate(spec, raw, label, registered)
    report = IngestReport(kind, label, len(frame))
    rule_dated = "known_at" not in frame
    try:
        # the staging context is left after the transaction: its INSERTs lock the staging tables
        with Staging(engine) as staging, engine.begin() as conn:
            ids = sorted(frame[spec.entity].unique().tolist())
            known = set(instrument_rows(conn, ids)["instrument_id"])
            unknown = [i for i in ids if i not in known]
            if unknown and not register_unknown:  # validated above; instruments are never deleted
                raise IngestValidationError(label, [Problem("unknown-instrument", f"{unknown[:10]} not registered", [])])
            if unknown:
                register_with_defaults(conn, spec, unknown, register_release_rule)
                report.instruments_registered = unknown
            with _phase("known_at"):
                frame = fill_known_at(conn, spec, frame, release_model)
            if not spec.known_before_valid_ok:
                start = frame[spec.valid] if spec.timestamp_valid else frame[spec.valid].dt.tz_localize("UTC")
                early = (frame["known_at"] < start).to_numpy()
                if early.any():
                    raise IngestValidationError(label, [Problem("known-before-valid", "release rule gave known_at before the valid time", raw.row_labels[early].tolist(), raw.row_word)])
            if spec.kind == "prices" and (problem := before_close_problem(conn, frame, raw, rule_dated)) is not None:
                raise IngestValidationError(label, [problem])
            try:
                _store(conn, spec, frame, report, raw.sha256, staging, show_progress,
                       refuse_rewrites=rule_dated and not correction)
            except Rewrites as found:  # raised inside the transaction: it rolls back
                raise IngestValidationError(label, [rewrite_problem(spec, frame, raw, found)]) from None
            if report.rows_added + report.revisions_added == 0 and not report.instruments_registered:
                raise _NothingNew
    except _NothingNew:
        report.batch_id = report.recorded_at = None  # rolled back: not even a batch row
    return report
