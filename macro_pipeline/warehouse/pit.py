"""Point-in-time reads: what the warehouse knew at decision time ``a``.

For each key and valid time, the row with the greatest ``known_at <= a``, ties broken by the
greatest ``recorded_at``, among rows with ``recorded_at <= system_as_of`` (DESIGN section 1).
``system_as_of`` defaults to the database clock when the reader is made, and the reader keeps it,
so every read through one reader sees one consistent state that can be read again later, bit for
bit, by passing the same watermark.

Look-ahead: asking for valid times after the decision date (the UTC date of ``a``; for funding,
timestamps after ``a``) is asking for data that can only be known after ``a``: it raises
``LookAheadError`` naming the request, instead of returning less than was asked. Rows of the
requested window that were simply not known yet at ``a`` (a quarterly print due next month) are
absent, or show their older vintage; that is what was known.

Every read is one set-based ``SELECT DISTINCT ON`` served by the ``*_pit`` index, streamed out
with ``COPY ... TO STDOUT`` and parsed by pyarrow.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from macro_pipeline.warehouse.errors import LookAheadError
from macro_pipeline.warehouse.tables import BY_SOURCE

DateLike = str | date | datetime | pd.Timestamp


def utc(ts: DateLike) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _date(d: DateLike | None) -> date | None:
    return None if d is None else pd.Timestamp(d).date()


INGEST_LOCK = 7170002  # the advisory lock every ingest holds (warehouse/ingest/store.py)


def current_watermark(engine: sa.Engine) -> pd.Timestamp:
    """A ``system_as_of`` that later reads reproduce exactly.

    An ingest stamps ``recorded_at`` when it takes the ingest lock but its rows appear only at
    commit. Taking the same lock (shared) first waits for any ingest in flight, so every row
    with ``recorded_at`` <= the returned time is already visible, and every later ingest stamps
    a greater ``recorded_at``.
    """
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": INGEST_LOCK})
        return utc(conn.exec_driver_sql("SELECT clock_timestamp()").scalar_one())


def data_watermark(engine: sa.Engine) -> pd.Timestamp | None:
    """The ``recorded_at`` of the newest ingest batch (None: nothing ingested yet), after any
    ingest in flight has committed (the same shared lock as ``current_watermark``). A
    ``system_as_of`` before it reads an older state of the warehouse than a read made now."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": INGEST_LOCK})
        last = conn.exec_driver_sql("SELECT max(recorded_at) FROM ingest_batches").scalar()
    return None if last is None else utc(last)


class PointInTimeReader:
    """Reads as of decision time ``decision_time`` (naive values are UTC).

    ``decision_date``: the session the decision belongs to (default: the UTC date of
    ``decision_time``). On a 24/7 calendar the close of day d is 00:00 UTC of d+1, so
    ``PointInTimeView.at`` passes d explicitly: asking for data dated d+1 is look-ahead.
    ``system_as_of`` may not lie in the future: a watermark must name a state that can no longer
    change.
    """

    def __init__(self, engine: sa.Engine, decision_time: DateLike, system_as_of: DateLike | None = None,
                 *, decision_date: DateLike | None = None):
        self.engine = engine
        self.decision_time = utc(decision_time)
        now = current_watermark(engine)
        if system_as_of is None:
            system_as_of = now
        elif utc(system_as_of) > now:
            raise ValueError(
                f"system_as_of {utc(system_as_of).isoformat()} is in the future (now {now.isoformat()}): "
                "a watermark must name a stored state that can no longer change")
        self.system_as_of = utc(system_as_of)
        self._decision_date = None if decision_date is None else pd.Timestamp(decision_date).date()

    @property
    def decision_date(self) -> date:
        return self._decision_date or self.decision_time.date()

    def __repr__(self) -> str:
        return f"PointInTimeReader(a={self.decision_time.isoformat()}, system_as_of={self.system_as_of.isoformat()})"

    # ----------------------------------------------------------------- guards

    def _guard(self, what: str, ids: Sequence[str] | None, end: DateLike | None, timestamp: bool) -> None:
        if end is None:
            return
        asked = utc(end) if timestamp else _date(end)
        limit = self.decision_time if timestamp else self.decision_date
        if asked > limit:
            names = "all" if ids is None else (list(ids)[:10] + (["..."] if len(ids) > 10 else []))
            raise LookAheadError(
                f"look-ahead: {what} for {names} up to {asked} requested at decision time "
                f"{self.decision_time.isoformat()}; data about times after the decision cannot be known then"
            )

    # ----------------------------------------------------------------- core query

    def _read(
        self,
        name: str,
        ids: Sequence[str] | None,
        start: DateLike | None,
        end: DateLike | None,
        extra_where: str = "",
        extra_params: dict | None = None,
    ) -> pd.DataFrame:
        fact = BY_SOURCE[name]
        table, entity, valid, ts_valid = fact.table, fact.entity, fact.valid, fact.timestamp_valid
        self._guard(name, ids, end, ts_valid)
        keys = list(fact.keys)
        where = ["known_at <= %(a)s", "recorded_at <= %(sys)s"]
        params: dict = {"a": self.decision_time.to_pydatetime(), "sys": self.system_as_of.to_pydatetime()}
        if ids is not None:
            where.append(f"{entity} = ANY(%(ids)s)")
            params["ids"] = list(ids)
        if start is not None:
            where.append(f"{valid} >= %(start)s")
            params["start"] = utc(start).to_pydatetime() if ts_valid else _date(start)
        if end is not None:
            where.append(f"{valid} <= %(end)s")
            params["end"] = utc(end).to_pydatetime() if ts_valid else _date(end)
        if extra_where:
            where.append(extra_where)
            params.update(extra_params or {})
        cols = list(dict.fromkeys(keys + list(fact.read_values) + ["known_at", "recorded_at"]))
        sql = (
            f"SELECT DISTINCT ON ({', '.join(keys)}) {', '.join(cols)} FROM {table} "
            f"WHERE {' AND '.join(where)} "
            f"ORDER BY {', '.join(keys)}, known_at DESC, recorded_at DESC"
        )
        frame = copy_query(self.engine, sql, params)
        if frame.empty:
            frame = pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
        for c in ("known_at", "recorded_at") + (("ts",) if ts_valid else ()):
            if not isinstance(frame[c].dtype, pd.DatetimeTZDtype):
                frame[c] = pd.to_datetime(frame[c], utc=True)
        if not ts_valid and not pd.api.types.is_datetime64_dtype(frame[valid]):
            frame[valid] = pd.to_datetime(frame[valid])
        assert (frame["known_at"] <= self.decision_time).all(), "point-in-time filter violated"
        return frame

    # ----------------------------------------------------------------- public reads

    def prices(self, instruments: Sequence[str] | None = None, start: DateLike | None = None,
               end: DateLike | None = None) -> pd.DataFrame:
        """Long frame: instrument_id, obs_date, open, high, low, close, volume, known_at, recorded_at."""
        return self._read("prices", instruments, start, end)

    def price_panel(self, instruments: Sequence[str] | None = None, start: DateLike | None = None,
                    end: DateLike | None = None, field: str = "close") -> pd.DataFrame:
        """Wide frame: obs_date (index) x instrument (columns) of ``field``; NaN where unknown."""
        if field not in BY_SOURCE["prices"].values:
            raise ValueError(f"unknown price field {field!r}")
        long = self.prices(instruments, start, end)
        panel = long.pivot(index="obs_date", columns="instrument_id", values=field).astype("float64")
        if instruments is not None:
            panel = panel.reindex(columns=list(instruments))
        panel.index.name, panel.columns.name = "obs_date", None
        return panel

    def macro(self, series: Sequence[str] | None = None, start: DateLike | None = None,
              end: DateLike | None = None) -> pd.DataFrame:
        """Long frame: series_id, obs_date, value, known_at, recorded_at (the vintage in force at a)."""
        return self._read("macro", series, start, end)

    def macro_panel(self, series: Sequence[str] | None = None, start: DateLike | None = None,
                    end: DateLike | None = None) -> pd.DataFrame:
        long = self.macro(series, start, end)
        panel = long.pivot(index="obs_date", columns="series_id", values="value").astype("float64")
        panel.columns.name = None
        return panel

    def funding(self, instruments: Sequence[str] | None = None, start: DateLike | None = None,
                end: DateLike | None = None) -> pd.DataFrame:
        """Long frame: instrument_id, ts (UTC), rate, interval_hours, known_at, recorded_at."""
        return self._read("funding", instruments, start, end)

    def corporate_actions(self, instruments: Sequence[str] | None = None, start: DateLike | None = None,
                          end: DateLike | None = None) -> pd.DataFrame:
        """Long frame: instrument_id, ex_date, action, value, known_at, recorded_at.

        ``end`` may lie after the decision date for corporate actions: an announced future
        ex-date is knowledge (its ``known_at`` is before ``a``); unannounced ones are absent.
        """
        if end is None:
            return self._read("corporate_actions", instruments, start, None)
        return self._read("corporate_actions", instruments, start, None,
                          "ex_date <= %(ca_end)s", {"ca_end": _date(end)})

    def signals(self, signal_name: str, instruments: Sequence[str] | None = None,
                start: DateLike | None = None, end: DateLike | None = None) -> pd.DataFrame:
        """Long frame of one external signal: signal_name, instrument_id, obs_date, value, ..."""
        return self._read("signals", instruments, start, end, "signal_name = %(sig)s", {"sig": signal_name})

    def universe(self, universe: str, on: DateLike | None = None) -> pd.DataFrame:
        """Membership intervals of ``universe`` as known at a: instrument_id, valid_from, valid_to.

        ``on``: only intervals containing that date (default: all known intervals).
        """
        params = {"u": universe, "a": self.decision_time.to_pydatetime(), "sys": self.system_as_of.to_pydatetime()}
        sql = (
            "SELECT DISTINCT ON (instrument_id, valid_from) instrument_id, valid_from, valid_to, known_at, recorded_at "
            "FROM universe_membership WHERE universe = %(u)s AND known_at <= %(a)s AND recorded_at <= %(sys)s "
            "ORDER BY instrument_id, valid_from, known_at DESC, recorded_at DESC"
        )
        frame = copy_query(self.engine, sql, params)
        if frame.empty:
            return pd.DataFrame(columns=["instrument_id", "valid_from", "valid_to", "known_at", "recorded_at"])
        frame["valid_from"] = pd.to_datetime(frame["valid_from"])
        frame["valid_to"] = pd.to_datetime(frame["valid_to"])
        if on is not None:
            d = pd.Timestamp(_date(on))
            frame = frame[(frame["valid_from"] <= d) & (frame["valid_to"].isna() | (frame["valid_to"] > d))]
        return frame.reset_index(drop=True)

    def members(self, universe: str, on: DateLike | None = None) -> list[str]:
        """Instrument ids in ``universe`` on ``on`` (default: the decision date)."""
        return sorted(self.universe(universe, on if on is not None else self.decision_date)["instrument_id"].unique())

    def watermarks(self, tables: Iterable[str] = ("prices", "macro", "funding", "corporate_actions", "signals")) -> dict[str, str | None]:
        """Greatest ``recorded_at`` visible to this reader per table: the input watermarks of a result."""
        out: dict[str, str | None] = {}
        with self.engine.connect() as conn:
            for name in tables:
                table = BY_SOURCE[name].table
                value = conn.execute(
                    sa.text(f"SELECT max(recorded_at) FROM {table} WHERE recorded_at <= :sys AND known_at <= :a"),
                    {"sys": self.system_as_of.to_pydatetime(), "a": self.decision_time.to_pydatetime()},
                ).scalar_one()
                out[name] = None if value is None else pd.Timestamp(value).tz_convert("UTC").isoformat()
        return out


_FLOAT_COLUMNS = ("open", "high", "low", "close", "volume", "value", "rate", "interval_hours")


def copy_query(engine: sa.Engine, sql: str, params: dict) -> pd.DataFrame:
    """Run ``sql`` (psycopg2 ``%(name)s`` parameters, quoted by the driver) via COPY TO STDOUT."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute("SET LOCAL TIME ZONE 'UTC'")  # timestamps leave as +00, parsed as UTC
            query = cur.mogrify(sql, params).decode()
            buf = io.BytesIO()
            cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)", buf)
        raw.commit()
    finally:
        raw.close()
    if buf.tell() == 0:
        return pd.DataFrame()
    buf.seek(0)
    table = pacsv.read_csv(buf, convert_options=pacsv.ConvertOptions(
        column_types={**{c: pa.string() for c in ("instrument_id", "series_id", "signal_name", "action")},
                      **{c: pa.float64() for c in _FLOAT_COLUMNS}},
        strings_can_be_null=True))
    return table.to_pandas(date_as_object=False)
