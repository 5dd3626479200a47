"""Room: warehouse/ingest/instruments. Instruments as ingestion needs them: registering them (an
instruments file, or unknown ids with the kind's defaults), storing the sessions of the calendars
they trade on, and dating rows from each instrument's release rule and calendar.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.engine.calendar import is_known_calendar
from macro_pipeline.warehouse.calendars import ALWAYS_OPEN, session_closes
from macro_pipeline.warehouse.copy import copy_frame
from macro_pipeline.warehouse.errors import IngestValidationError, Problem
from macro_pipeline.warehouse.ingest import release
from macro_pipeline.warehouse.ingest.read import frame_input, read_file
from macro_pipeline.warehouse.ingest.spec import (
    INSTRUMENT_COLUMNS,
    INSTRUMENT_DEFAULTS,
    INSTRUMENT_KINDS,
    SAFE_ID,
    IngestReport,
    KindSpec,
)
from macro_pipeline.warehouse.ingest.validate import Checker, header_line

CALENDAR_LOCK = 13_007  # advisory lock namespace (two-key form) of calendar registration


def instrument_rows(conn: sa.Connection, ids: list[str]) -> pd.DataFrame:
    rows = conn.execute(
        sa.text("SELECT instrument_id, kind, calendar, release_rule FROM instruments WHERE instrument_id = ANY(:ids)"),
        {"ids": ids},
    ).all()
    return pd.DataFrame(rows, columns=["instrument_id", "kind", "calendar", "release_rule"])


def register_with_defaults(conn: sa.Connection, spec: KindSpec, ids: list[str], rule: str | None = None) -> None:
    """Register unknown ids with defaults for the kind; ``rule`` overrides the release rule
    (a daily macro series such as a yield needs ``close``, not the quarterly default)."""
    kind = spec.register_kind
    calendar = ALWAYS_OPEN if kind == "perp" else "XNYS"
    rule = rule or {"macro": "quarterly_30d", "perp": "close"}.get(kind, "close")
    conn.execute(
        sa.text(
            "INSERT INTO instruments (instrument_id, asset_class, kind, calendar, release_rule, description) "
            "VALUES (:i, 'unknown', :k, :c, :r, 'registered by ingest') ON CONFLICT DO NOTHING"
        ),
        [{"i": i, "k": kind, "c": calendar, "r": rule} for i in ids],
    )
    ensure_calendars(conn, [calendar])


def ensure_calendars(conn: sa.Connection, calendars: list[str]) -> None:
    """Store the sessions (with real close times) of each exchange calendar in use, once.

    Two ingests registering instruments on a new calendar at once both found it missing and both
    copied it (one failed on the primary key): a transaction-scoped advisory lock per calendar
    makes the second wait for the first's commit, then find the sessions stored."""
    for name in sorted(set(calendars) - {ALWAYS_OPEN}):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:c))"), {"ns": CALENDAR_LOCK, "c": name})
        if conn.execute(sa.text("SELECT 1 FROM calendar_sessions WHERE calendar = :c LIMIT 1"), {"c": name}).first():
            continue
        closes = session_closes(name)
        sessions = closes.rename("close_at").rename_axis("session_date").reset_index().assign(calendar=name)
        with conn.connection.dbapi_connection.cursor() as cur:
            copy_frame(cur, "calendar_sessions", sessions[["calendar", "session_date", "close_at"]])


def fill_known_at(conn: sa.Connection, spec: KindSpec, frame: pd.DataFrame, model: release.ReleaseModel) -> pd.DataFrame:
    """Add known_at from the release rules when the file has none.

    The rule and calendar belong to the instrument, so rows are mapped to instruments by integer
    code (``pd.factorize``) and the rule is evaluated per distinct day (``release.known_at_by_group``).
    """
    if "known_at" in frame:
        return frame
    if spec.default_rule is not None:
        group = np.zeros(len(frame), dtype="int64")
        rules, calendars = [spec.default_rule], [ALWAYS_OPEN]
    else:
        group, ids = pd.factorize(frame[spec.entity])
        meta = instrument_rows(conn, ids.tolist()).set_index("instrument_id").reindex(ids)
        rules, calendars = meta["release_rule"].tolist(), meta["calendar"].tolist()
    known = release.known_at_by_group(frame[spec.valid], group, rules, calendars, model)
    return frame.assign(known_at=pd.Series(known, index=frame.index).dt.tz_localize("UTC"))


def ingest_instruments(engine: sa.Engine, source: str | Path | pd.DataFrame, *, name: str | None = None) -> IngestReport:
    """Register instruments (reference data). Existing ids with other attributes are an error."""
    raw = frame_input(source) if isinstance(source, pd.DataFrame) else read_file(source)
    label = name or (str(source) if not isinstance(source, pd.DataFrame) else "<instruments frame>")
    df = raw.frame.set_axis([str(c).strip() for c in raw.frame.columns], axis=1)
    chk = Checker(raw)
    required = ("instrument_id", "asset_class", "kind")
    missing = [c for c in required if c not in df.columns]
    unknown = [c for c in df.columns if c not in INSTRUMENT_COLUMNS]
    if missing:
        chk.header("missing-columns", f"required column(s) {missing} not in header {list(df.columns)}")
    if unknown:
        chk.header("unknown-columns", f"column(s) {unknown} are not instrument attributes {list(INSTRUMENT_COLUMNS)}")
    if chk.problems:
        raise IngestValidationError(label, chk.problems)
    if len(df) == 0:  # like every other kind
        raise IngestValidationError(label, [Problem("empty-file", "the file has no data rows (only a header)",
                                                    header_line(raw), raw.row_word)])
    df = df.copy()
    for c, default in INSTRUMENT_DEFAULTS.items():
        if c not in df:
            df[c] = default
    df["release_rule"] = df["release_rule"].where(df["release_rule"].notna(), np.where(df["kind"] == "macro", "quarterly_30d", "close"))
    df = df[list(INSTRUMENT_COLUMNS)].astype(object).where(df[list(INSTRUMENT_COLUMNS)].notna(), None)
    ids = df["instrument_id"].astype("string")
    chk.add("unsafe-id", "instrument_id must match [A-Za-z0-9_.-]{1,32}", (~ids.str.fullmatch(SAFE_ID.pattern).fillna(False)).to_numpy())
    chk.add("unknown-kind", f"kind must be one of {INSTRUMENT_KINDS}", (~df["kind"].isin(INSTRUMENT_KINDS)).to_numpy())
    chk.add("unknown-release-rule", f"release_rule must be one of {release.INSTRUMENT_RULES}", (~df["release_rule"].isin(release.INSTRUMENT_RULES)).to_numpy())
    chk.add("missing-value", "asset_class is empty", df["asset_class"].isna().to_numpy())
    cal_ok = df["calendar"].map(_calendar_ok).to_numpy()
    chk.add("unknown-calendar", "calendar is not an exchange_calendars code nor '24/7'", ~cal_ok)
    chk.add("duplicate-key", "duplicate instrument_id within the file", df["instrument_id"].duplicated(keep=False).to_numpy())
    if chk.problems:
        raise IngestValidationError(label, chk.problems)
    report = IngestReport("instruments", label, len(df))
    with engine.begin() as conn:
        existing = conn.execute(
            sa.text(f"SELECT {', '.join(INSTRUMENT_COLUMNS)} FROM instruments WHERE instrument_id = ANY(:ids)"),
            {"ids": df["instrument_id"].tolist()},
        ).all()
        stored = {r.instrument_id: tuple(r) for r in existing}
        conflicts = [i for i, row in zip(df["instrument_id"], df.itertuples(index=False), strict=True) if i in stored and tuple(row) != stored[i]]
        if conflicts:
            mask = df["instrument_id"].isin(conflicts).to_numpy()
            raise IngestValidationError(label, [Problem("instrument-conflict", f"already registered with other attributes: {conflicts[:10]}", raw.row_labels[mask].tolist(), raw.row_word)])
        new = df[~df["instrument_id"].isin(stored.keys())]
        if len(new):
            conn.execute(
                sa.text(f"INSERT INTO instruments ({', '.join(INSTRUMENT_COLUMNS)}) VALUES ({', '.join(':' + c for c in INSTRUMENT_COLUMNS)})"),
                new.to_dict("records"),
            )
            ensure_calendars(conn, new["calendar"].tolist())
        report.rows_added, report.unchanged = len(new), len(df) - len(new)
        report.recorded_at = conn.exec_driver_sql("SELECT clock_timestamp()").scalar_one() if len(new) else None
    return report


def _calendar_ok(name: object) -> bool:
    return name == ALWAYS_OPEN or (isinstance(name, str) and is_known_calendar(name))
