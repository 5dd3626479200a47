"""Room: warehouse/ingest/store. ``ingest``: validate a whole file first, then store it in one
transaction (the insert SQL lives here).

File formats: ``spec.py``. What happens, in order:
1. read the file (pyarrow; empty lines are kept so line numbers stay true);
2. validate every rule over every row and raise ``IngestValidationError`` listing each broken rule
   with the file, the first few line numbers and a count; nothing has been written;
3. in one transaction, serialized with other ingests by an advisory lock: fill known_at from the
   release rules if the file has none, refuse prices known before their session's close on their
   instrument's calendar (``known-before-close``), take ``recorded_at`` from the database clock,
   COPY the rows into staging, then a set-based ``INSERT ... SELECT`` stores the rows that are
   new: a key never seen (added) or a key whose stored version with the same ``known_at`` has
   other values (a revision or correction). Rows identical to their stored version are skipped,
   so re-ingesting a file adds nothing (and then not even a batch row is written). When known_at
   came from the rule, a row over a stored key is refused (``rewrites-history``: rolled back, rows
   named with stored and new values) unless ``correction=True``: the rule would give the new value
   the first print's known_at. Files of more than ``stage.STAGE_CHUNK_ROWS`` rows are staged and
   inserted in chunks that never split a key (``stage.Staging``): a second connection COPYs chunk k + 1
   into an unlogged table while the transaction inserts chunk k, so the COPY overlaps the INSERT.

Speed (5M price rows; ``bench/ingest.py``): the file is memory-mapped, not copied; text columns
become Categoricals, so string work is per distinct id; known_at is computed per (instrument
rule, calendar, distinct day); the staging COPY is binary (``warehouse/copy.py``: no text formatting, no
parsing in the server), ``FREEZE``, in the unique index's order (so the INSERT appends at the
B-tree's right edge) and overlapped with the INSERT. Most of the time left is the INSERT itself
(~2 s per million rows): per row, a heap insert, a unique B-tree insert, a BRIN update and seven
CHECKs, with their WAL; all of it is the schema's own work, none is the staging's.
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
    bounds = chunk_bounds(keys, stage.STAGE_CHUNK_ROWS)
    staging.start(conn, spec, batch_id, frame, bounds)
    bar = tqdm(total=len(frame), desc=f"ingest {spec.kind}", unit="row", disable=not show_progress, leave=False)
    added = revisions = 0
    rewrites: Rewrites | None = None
    with _phase(f"COPY to staging and INSERT, {len(bounds)} chunk(s)"):
        try:
            for (lo, hi), table in zip(bounds, staging.tables(), strict=True):
                if rewrites is None:
                    a, r = _insert_new(conn, spec, table, frame[spec.entity].iloc[lo:hi], recorded_at, batch_id)
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


def _stored_probe_sql(spec: KindSpec) -> str:
    """Whether any row is stored for the entities ``:ids``: one index probe per id.

    A semi-join driven by the id list. ``WHERE entity = ANY(:ids)`` instead lets the planner pick
    a sequential scan that expects an early match; when there is none (new instruments: this
    very case) it reads the whole table, comparing each row with every id. Chunk after chunk of
    one ingest the table has no statistics for the planner to know better: that cost 1.8 s of
    server time in the 5M-row bench.
    """
    return (f"SELECT EXISTS (SELECT 1 FROM unnest(CAST(:ids AS text[])) AS u(id) "
            f"WHERE EXISTS (SELECT 1 FROM {spec.table} t WHERE t.{spec.entity} = u.id))")


def _any_stored(conn: sa.Connection, spec: KindSpec, ids: list[str]) -> bool:
    return bool(conn.execute(sa.text(_stored_probe_sql(spec)), {"ids": ids}).scalar_one())


def _insert_new(conn: sa.Connection, spec: KindSpec, stage: str, entities: pd.Series,
                recorded_at: datetime, batch_id: int) -> tuple[int, int]:
    """One set-based INSERT of the staged rows that are new; returns (added, revisions)."""
    cols = list(spec.columns)
    params = {"rec": recorded_at, "batch": batch_id}
    target_cols = ", ".join(cols)
    seen = _any_stored(conn, spec, entities.unique().tolist())
    if not seen:
        # fast path: nothing stored yet for these instruments, every row is new
        added = conn.execute(
            sa.text(f"INSERT INTO {spec.table} ({target_cols}, recorded_at, batch_id) "
                    f"SELECT {target_cols}, :rec, :batch FROM {stage}"),
            params,
        ).rowcount
        return int(added), 0
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
