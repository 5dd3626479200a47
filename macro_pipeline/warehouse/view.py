"""The point-in-time view a strategy sees: data aligned to decision times, never beyond them.

A strategy decides at the close of each decision session ``d`` (decision time ``a(d)`` = the
session close of ``d`` on the view's exchange calendar, early closes included). The view loads,
in one set-based read per table, everything known by the last decision time of its window (as
stored up to ``system_as_of``), then offers it in two shapes:

- ``aligned(...)``: a decision-date x instrument frame in which cell (d, i) is the value of the
  latest observation of i that was known at ``a(d)``. Every cell's ``known_at <= a(d)``, and no
  cell holds a valid date after d whatever its ``known_at``; the view checks this and raises
  ``LookAheadError`` if it ever fails. By default each cell carries the vintage in force at its
  own decision time (real time: what the engine trades on). Inside ``as_known_at(t)`` every cell
  carries its latest vintage known at t instead (full as-of vintages, DESIGN section 1): a
  feature computed down that frame is what a live system recomputing at t would compute.
  ``Strategy.weights`` computes once per vintage epoch (``epoch_starts``), so a correction known
  at t reaches every decision from t on and none before.
- ``at(d)``: a ``PointInTimeReader``-like object for one decision date; asking it for anything
  dated after ``d`` raises ``LookAheadError`` (this is how a per-date strategy is held to the
  rule, and how a cheating strategy is caught).

Macro vintages: at each decision the aligned value of a quarterly series is the latest quarter
known at ``a(d)`` in the vintage then in force, i.e. its first print when it is new.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.engine.calendar import previous_session_ns
from macro_pipeline.warehouse.calendars import ALWAYS_OPEN, session_closes
from macro_pipeline.warehouse.errors import LookAheadError
from macro_pipeline.warehouse.pit import DateLike, PointInTimeReader, copy_query, utc
from macro_pipeline.warehouse.tables import BY_SOURCE
from macro_pipeline.warehouse.vintages import Vintages, vintage_events, vintage_events_lagged


def decision_times(sessions: pd.DatetimeIndex, calendar: str = "XNYS") -> pd.Series:
    """Decision time (UTC) of each session date: its real close on ``calendar``.

    ``24/7`` (perpetual futures): every calendar day, closing at 00:00 UTC of the next day.
    """
    if calendar == ALWAYS_OPEN:
        days = pd.DatetimeIndex(sessions).normalize()
        return pd.Series((days + pd.Timedelta(days=1)).tz_localize("UTC"), index=days, name="decision_time")
    closes = session_closes(calendar)
    out = closes.reindex(pd.DatetimeIndex(sessions).normalize())
    if out.isna().any():
        bad = list(out[out.isna()].index.strftime("%Y-%m-%d")[:5])
        raise ValueError(f"not {calendar} sessions: {bad}")
    return pd.Series(out.to_numpy(), index=pd.DatetimeIndex(sessions).normalize(), name="decision_time")


def _ns(column: pd.Series) -> np.ndarray:
    """A tz-aware (UTC) or naive datetime column as naive UTC datetime64[ns]."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert(None)
    return column.to_numpy(dtype="datetime64[ns]")


_CLOSES: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def closes_ns(calendar: str) -> tuple[np.ndarray, np.ndarray]:
    """(session dates, their closes in UTC), naive datetime64[ns], for searchsorted."""
    if calendar not in _CLOSES:
        closes = session_closes(calendar)
        _CLOSES[calendar] = (closes.index.to_numpy(dtype="datetime64[ns]"),
                             closes.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]"))
    return _CLOSES[calendar]


class PointInTimeView:
    """Everything known by ``decision_dates[-1]``'s decision time, served without look-ahead."""

    def __init__(self, engine: sa.Engine, decision_dates: Sequence[DateLike], *, calendar: str = "XNYS",
                 system_as_of: DateLike | None = None, history_start: DateLike | None = None):
        dates = pd.DatetimeIndex(pd.to_datetime(list(decision_dates))).normalize()
        if len(dates) == 0:
            raise ValueError("a view needs at least one decision date")
        if not dates.is_monotonic_increasing or dates.has_duplicates:
            raise ValueError("decision dates must be strictly increasing")
        self.engine = engine
        self.calendar = calendar
        self.decision_times = decision_times(dates, calendar)
        self.decision_dates = dates
        self.end_reader = PointInTimeReader(engine, self.decision_times.iloc[-1], system_as_of,
                                            decision_date=dates[-1])
        self.system_as_of = self.end_reader.system_as_of
        self.history_start = pd.Timestamp(history_start) if history_start is not None else None
        self._cache: dict[tuple, Vintages] = {}
        self._universes: dict[str, Vintages] = {}
        self._universe_marks: dict[str, str] = {}
        self._epoch: np.datetime64 | None = None  # None: real time (each value as first known)
        self._events_cache: dict[tuple, tuple[np.ndarray, np.ndarray] | None] = {}
        self._times: np.ndarray | None = None
        self.inputs_known_at_max: pd.Timestamp | None = None  # audit: greatest known_at served

    # ------------------------------------------------------------------ loading (one read each)

    def _all_vintages(self, name: str, ids: tuple[str, ...], extra: str | None = None) -> Vintages:
        """Every vintage known by the end decision time (not only the latest): alignment needs them."""
        key = (name, ids, extra)
        if key not in self._cache:
            fact = BY_SOURCE[name]
            table, entity, valid, values = fact.table, fact.entity, fact.valid, fact.read_values
            where = ["known_at <= %(a)s", "recorded_at <= %(sys)s", f"{entity} = ANY(%(ids)s)"]
            params = {"a": self.end_reader.decision_time.to_pydatetime(),
                      "sys": self.system_as_of.to_pydatetime(), "ids": list(ids)}
            if self.history_start is not None:
                where.append(f"{valid} >= %(hs)s")
                params["hs"] = self.history_start.to_pydatetime()
            if extra is not None:
                where.append("signal_name = %(sig)s")
                params["sig"] = extra
            cols = [entity, valid, *values, "known_at", "recorded_at"]
            frame = copy_query(self.engine, f"SELECT {', '.join(dict.fromkeys(cols))} FROM {table} WHERE {' AND '.join(where)} "
                                            f"ORDER BY known_at, recorded_at", params)
            if frame.empty:
                frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in dict.fromkeys(cols)})
                frame[entity] = frame[entity].astype(object)
            for c in ("known_at", "recorded_at"):
                frame[c] = pd.to_datetime(frame[c], utc=True)
            if valid == "ts":
                frame[valid] = pd.to_datetime(frame[valid], utc=True)
            else:
                frame[valid] = pd.to_datetime(frame[valid])
            keys = (entity, valid, "action") if name == "corporate_actions" else (entity, valid)
            self._cache[key] = Vintages(frame, entity, valid, keys, tuple(values), key)
        return self._cache[key]

    def _data(self, name: str, ids: tuple[str, ...], extra: str | None = None) -> Vintages:
        """What a computation at the current epoch sees (see ``as_known_at``)."""
        long = self._all_vintages(name, ids, extra)
        return long if self._epoch is None else long.at(self._epoch)

    # ------------------------------------------------------------------ vintage epochs

    @contextmanager
    def as_known_at(self, when: DateLike):
        """Within this block every read serves the data as known at ``when`` (full as-of
        vintages): each fact is placed where it was first known (its first print's known_at, so
        a rolling window over the aligned frame is the history a live system had), carrying the
        value of its latest vintage known at ``when``. A computation in this block is valid for
        every decision time from ``when`` up to the next revision time (``revision_times``):
        between two revisions, the data as known at a(d) differs from the data as known at
        ``when`` only by first prints, which a causal feature places at their own rows.

        Outside any block (the default) reads are in real time: each decision sees each value
        as first known at its own decision time. The engine's inputs are read that way: a fill,
        a settlement or a dividend happened with the value known then.
        """
        previous = self._epoch
        self._epoch = np.datetime64(utc(when).tz_convert(None).to_datetime64(), "ns")
        try:
            yield self
        finally:
            self._epoch = previous

    def revision_times(self) -> np.ndarray:
        """Sorted known_at of every revision among the data read so far (every table and
        universe): the times at which a full as-of computation must start a new epoch."""
        parts = [long.revision_times() for long in (*self._cache.values(), *self._universes.values())]
        if not parts:
            return np.zeros(0, dtype="datetime64[ns]")
        return np.unique(np.concatenate(parts))

    def epoch_starts(self, first: int = 0) -> list[int]:
        """Indices of the decision dates after ``first`` at which a new vintage epoch starts: the
        first decision whose time is at or after a revision's known_at."""
        times = self._times_ns()
        starts = np.searchsorted(times, self.revision_times(), side="left")
        return sorted(int(i) for i in np.unique(starts) if first < i < len(times))

    def reads(self) -> list[tuple[str, str, str, pd.Timestamp | None]]:
        """Every entity this view has read: (source, entity, signal name or '', first valid
        time read or None). Sources: prices, macro, funding, corporate_actions, signals,
        universe. This is what a stored result depends on (its footprint)."""
        out: dict[tuple[str, str, str], pd.Timestamp | None] = {}
        for (name, ids, extra), long in self._cache.items():
            f = long.frame
            firsts = f.groupby(long.entity)[long.valid].min() if len(f) else pd.Series(dtype="object")
            for iid in ids:
                first = firsts.get(iid)
                key = (name, iid, extra or "")
                first = None if first is None or pd.isna(first) else pd.Timestamp(first)
                prev = out.get(key)
                out[key] = first if prev is None else (prev if first is None else min(prev, first))
        for universe, long in self._universes.items():
            f = long.frame
            out[("universe", universe, "")] = pd.Timestamp(f["valid_from"].min()) if len(f) else None
        return [(*k, v) for k, v in sorted(out.items())]

    # ------------------------------------------------------------------ aligned (vectorized)

    def _align(self, long: Vintages, field: str, ids: Sequence[str], lag: int = 0) -> pd.DataFrame:
        """Decision-date x id frame: the latest observation known at a(d) (``lag`` > 0: the
        observation ``lag`` places before it, in the vintage in force at a(d)). Raises
        ``LookAheadError`` if any value served was known after its decision time. Memoized on
        the data object (one per table read and vintage epoch): callers get a copy."""
        key = ("aligned", field, tuple(ids), lag)
        if key in long.memo:
            return long.memo[key].copy()
        times = self._times_ns()
        values = np.full((len(times), len(ids)), np.nan)
        known = np.full((len(times), len(ids)), np.datetime64("NaT"), dtype="datetime64[ns]")
        for j, iid in enumerate(ids):
            events = self._events(long, iid, field, lag)
            if events is None:
                continue
            ev_known, ev_value = events
            pos = np.searchsorted(ev_known, times, side="right") - 1
            ok = pos >= 0
            values[ok, j] = ev_value[pos[ok]]
            known[ok, j] = ev_known[pos[ok]]
        self._check(known, list(ids))
        long.memo[key] = pd.DataFrame(values, index=self.decision_dates, columns=list(ids))
        return long.memo[key].copy()

    def _events(self, long: Vintages, iid: str, field: str, lag: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(known_at, value in force from then) of one entity, in knowledge order; cached per
        version of the entity's data, so an epoch recomputes only what its revisions touched."""
        key = (long.ident, iid, field, lag, long.version(iid))
        if key in self._events_cache:
            return self._events_cache[key]
        rows = long.rows(iid)
        out = None
        if not rows.empty:
            k = _ns(rows["known_at"])
            v = rows[long.valid]
            v = _ns(v) if long.valid == "ts" else v.to_numpy(dtype="datetime64[ns]")
            if long.valid != "ts":
                # a value is never visible to a decision taken before its own valid date, whatever
                # its known_at (a 24/7 close of d+1 claiming to be known at 00:00 of d+1 is not
                # d's decision): it becomes visible at the decision time of the first session on
                # or after its valid date, or at its known_at if that is later
                k = np.maximum(k, self._visible_from(v))
            order = np.lexsort((_ns(rows["recorded_at"]), v, k))
            k, v = k[order], v[order]
            vals = rows[field].to_numpy(dtype="float64")[order]
            single = len(v) < 2 or bool((v[1:] > v[:-1]).all())
            if single and lag:
                # one version per observation, known in valid-time order: the observation lag
                # places before the latest known is the one known lag events earlier
                lagged = np.full(len(vals), np.nan)
                if lag < len(vals):
                    lagged[lag:] = vals[:-lag]
                out = (k, lagged)
            elif single:
                # "latest known at a(d)" is an as-of search on known_at
                out = (k, vals)
            else:
                ordered = pd.DataFrame({long.valid: v, field: vals,
                                        "known_at": pd.DatetimeIndex(k).tz_localize("UTC"),
                                        "recorded_at": np.arange(len(v))})
                out = (vintage_events_lagged(ordered, long.valid, field, lag) if lag
                       else vintage_events(ordered, long.valid, field))
        self._events_cache[key] = out
        return out

    def _visible_from(self, valid: pd.Series) -> np.ndarray:
        """Decision time (UTC, naive ns) of the first session of the view's calendar on or after
        each valid date; NaT-free: dates past the calendar map to the far future."""
        days = pd.DatetimeIndex(valid).normalize()
        if self.calendar == ALWAYS_OPEN:
            return (days + pd.Timedelta(days=1)).to_numpy(dtype="datetime64[ns]")
        closes = closes_ns(self.calendar)
        pos = np.searchsorted(closes[0], days.to_numpy(dtype="datetime64[ns]"), side="left")
        out = np.full(len(days), np.datetime64("2262-01-01", "ns"))
        ok = pos < len(closes[0])
        out[ok] = closes[1][pos[ok]]
        return out

    def _times_ns(self) -> np.ndarray:
        if self._times is None:
            self._times = self.decision_times.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
            self._times.flags.writeable = False
        return self._times

    def _check(self, k: np.ndarray, ids: list[str]) -> None:
        a = self._times_ns()
        late = ~np.isnat(k) & (k > a[:, None])
        if late.any():
            i, j = np.argwhere(late)[0]
            raise LookAheadError(
                f"look-ahead: {ids[j]} value used at decision {self.decision_dates[i].date()} "
                f"was known only at {pd.Timestamp(k[i, j]).tz_localize('UTC')}")
        if not np.isnat(k).all():
            top = pd.Timestamp(np.nanmax(k[~np.isnat(k)])).tz_localize("UTC")
            self.inputs_known_at_max = top if self.inputs_known_at_max is None else max(self.inputs_known_at_max, top)

    def aligned_prices(self, instruments: Sequence[str], field: str = "close") -> pd.DataFrame:
        """Decision-date x instrument: the latest price ``field`` known at each decision time."""
        values = self._align(self._data("prices", tuple(instruments)), field, list(instruments))
        return values

    def aligned_macro(self, series: Sequence[str], lag: int = 0) -> pd.DataFrame:
        """Decision-date x series: the latest observation known then, in the vintage then in force.

        ``lag`` = k > 0: instead, the observation k places before that latest one (by valid
        date, among the observations known then), in the vintage in force at the same decision
        time. ``aligned_macro(s) / aligned_macro(s, lag=1) - 1`` is then the real-time growth of
        the newest print over the previous period as both were known at each decision: at a
        first print, the first print over the previous period's vintage then in force.
        """
        if isinstance(lag, bool) or not isinstance(lag, int) or lag < 0:
            raise ValueError(f"lag must be an integer >= 0, got {lag!r}")
        values = self._align(self._data("macro", tuple(series)), "value", list(series), lag)
        return values

    def aligned_signal(self, signal_name: str, instruments: Sequence[str]) -> pd.DataFrame:
        values = self._align(self._data("signals", tuple(instruments), signal_name), "value", list(instruments))
        return values

    def _previous_decision_ns(self) -> np.datetime64:
        """Decision time of the session before the first decision date (closes the first bar)."""
        first = self.decision_dates[0]
        prev_ns = None if self.calendar == ALWAYS_OPEN else previous_session_ns(self.calendar, first.as_unit("ns").value)
        prev = first - pd.Timedelta(days=1) if prev_ns is None else pd.Timestamp(prev_ns)
        return decision_times(pd.DatetimeIndex([prev]), self.calendar).dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")[0]

    def settlements(self, instruments: Sequence[str]) -> pd.DataFrame:
        """Funding settlements by the bar they settle in, each in the version in force at that
        bar's close: columns instrument, ts, rate, bar (index into ``decision_dates``).

        Bar d covers ts in (a(d-1), a(d)]; the first bar starts at the previous session's close.
        A settlement counts only if some version of it was known by its bar's close, and it
        keeps that version: a correction learned later never reaches back, so a value never
        depends on where a window ends (a chain of windows equals one long window).
        """
        f = self._data("funding", tuple(instruments)).frame
        cols = ["instrument", "ts", "rate", "bar"]
        if f.empty:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})
        times = self._times_ns()
        ts = f["ts"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
        bar = np.searchsorted(times, ts, side="left")  # first decision time >= ts
        inside = (bar < len(times)) & (ts > self._previous_decision_ns())
        f = f.loc[inside].assign(bar=bar[inside])
        known = f["known_at"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
        f = f.loc[known <= times[f["bar"].to_numpy()]]
        f = f.sort_values(["instrument_id", "ts", "known_at", "recorded_at"]).drop_duplicates(
            ["instrument_id", "ts"], keep="last")
        return f.rename(columns={"instrument_id": "instrument"})[cols].reset_index(drop=True)

    def funding_per_decision(self, instruments: Sequence[str]) -> pd.DataFrame:
        """Decision-date x instrument: mean funding rate per settlement over the settlements of
        bar d (ts in (a(d-1), a(d)]), each in the version in force at a(d); NaN where none."""
        out = pd.DataFrame(np.nan, index=self.decision_dates, columns=list(instruments))
        s = self.settlements(instruments)
        for iid, rows in s.groupby("instrument"):
            means = rows.groupby("bar")["rate"].mean()
            out.iloc[means.index.to_numpy(dtype=int), out.columns.get_loc(iid)] = means.to_numpy()
        return out

    def corporate_actions(self, instruments: Sequence[str]) -> pd.DataFrame:
        """Splits and dividends whose ex-date is a decision date, each in the version in force at
        that session's close (known_at <= a(ex_date)): columns instrument, ex_date, action, value.
        Like settlements, a correction learned later never reaches back."""
        f = self._data("corporate_actions", tuple(instruments)).frame
        cols = ["instrument", "ex_date", "action", "value"]
        if f.empty:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
        pos = self.decision_dates.get_indexer(pd.DatetimeIndex(f["ex_date"]))
        f = f.loc[pos >= 0].assign(pos=pos[pos >= 0])
        known = f["known_at"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
        f = f.loc[known <= self._times_ns()[f["pos"].to_numpy()]]
        f = f.sort_values(["instrument_id", "ex_date", "action", "known_at", "recorded_at"]).drop_duplicates(
            ["instrument_id", "ex_date", "action"], keep="last")
        return f.rename(columns={"instrument_id": "instrument"})[cols].reset_index(drop=True)

    def session_prices(self, instruments: Sequence[str], field: str = "close") -> pd.DataFrame:
        """Decision-date x instrument prices for execution and marking.

        For an instrument on the view's calendar: the price dated d in the version known at a(d),
        NaN if there is none (a missing or late print: the engine then does not trade it that
        session and marks it at its last price). For an instrument on another calendar (a 24/7
        perp in an XNYS strategy): its latest price known at a(d), as in ``aligned_prices``.
        """
        ids = list(instruments)
        aligned = self.aligned_prices(ids, field)
        with self.engine.connect() as conn:
            cal = dict(conn.execute(sa.text("SELECT instrument_id, calendar FROM instruments WHERE instrument_id = ANY(:ids)"),
                                    {"ids": ids}).all())
        same = [i for i in ids if cal.get(i) == self.calendar]
        if not same:
            return aligned
        f = self._data("prices", tuple(ids)).frame
        f = f[f["instrument_id"].isin(same)]
        pos = self.decision_dates.get_indexer(pd.DatetimeIndex(f["obs_date"]))
        f = f.loc[pos >= 0].assign(pos=pos[pos >= 0])
        known = f["known_at"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
        f = f.loc[known <= self._times_ns()[f["pos"].to_numpy()]]
        f = f.sort_values(["instrument_id", "obs_date", "known_at", "recorded_at"]).drop_duplicates(
            ["instrument_id", "obs_date"], keep="last")
        exact = f.pivot(index="obs_date", columns="instrument_id", values=field).reindex(
            index=self.decision_dates, columns=same).astype("float64")
        out = aligned.copy()
        out[same] = exact.to_numpy()
        return out

    def members(self, universe: str) -> pd.DataFrame:
        """Decision-date x instrument booleans: membership as known at each decision time.

        Each membership interval (instrument, valid_from) counts at decision d in the vintage in
        force at a(d): the one with the greatest known_at <= a(d) (ties: the latest recorded).
        A revision of an interval (a new valid_to, say) applies only from its own known_at; it
        never reaches back to decisions taken before it was known, and neither does a new one.
        Columns: every instrument of any vintage known by the last decision time.
        """
        if universe not in self._universes:
            sql = ("SELECT instrument_id, valid_from, valid_to, known_at, recorded_at FROM universe_membership "
                   "WHERE universe = %(u)s AND known_at <= %(a)s AND recorded_at <= %(sys)s "
                   "ORDER BY known_at, recorded_at")
            rows = copy_query(self.engine, sql, {"u": universe, "a": self.end_reader.decision_time.to_pydatetime(),
                                                 "sys": self.system_as_of.to_pydatetime()})
            if rows.empty:
                rows = pd.DataFrame({c: pd.Series(dtype="object") for c in
                                     ("instrument_id", "valid_from", "valid_to", "known_at", "recorded_at")})
            for c in ("valid_from", "valid_to"):
                rows[c] = pd.to_datetime(rows[c])
            for c in ("known_at", "recorded_at"):
                rows[c] = pd.to_datetime(rows[c], utc=True)
            top = rows["recorded_at"].max() if len(rows) else None
            self._universe_marks[universe] = "none" if top is None or pd.isna(top) else pd.Timestamp(top).isoformat()
            self._universes[universe] = Vintages(rows, "instrument_id", "valid_from", ("instrument_id", "valid_from"),
                                              ("valid_to",), ("universe", (), universe))
        long = self._universes[universe]
        long = long if self._epoch is None else long.at(self._epoch)
        if "members" not in long.memo:
            long.memo["members"] = self._members(long.frame)
        return long.memo["members"].copy()

    def _members(self, rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows.sort_values(["instrument_id", "valid_from", "known_at", "recorded_at"], kind="mergesort")
        ids = sorted(rows["instrument_id"].unique()) if len(rows) else []
        out = pd.DataFrame(False, index=self.decision_dates, columns=ids)
        if not len(rows):
            return out
        known = rows["known_at"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
        same_key = (rows["instrument_id"].to_numpy()[1:] == rows["instrument_id"].to_numpy()[:-1]) & (
            rows["valid_from"].to_numpy()[1:] == rows["valid_from"].to_numpy()[:-1])
        # a vintage is in force from its known_at until the next vintage of the same interval
        until = np.full(len(rows), np.datetime64("NaT"), dtype="datetime64[ns]")
        until[:-1][same_key] = known[1:][same_key]
        times = self._times_ns()
        dates = self.decision_dates.to_numpy(dtype="datetime64[ns]")
        for k, row in enumerate(rows.itertuples()):
            in_force = (times >= known[k]) & (np.isnat(until[k]) | (times < until[k]))
            inside = dates >= np.datetime64(row.valid_from, "ns")
            if not pd.isna(row.valid_to):
                inside &= dates < np.datetime64(row.valid_to, "ns")
            hit = in_force & inside
            if hit.any():
                col = out.columns.get_loc(row.instrument_id)
                out.iloc[np.flatnonzero(hit), col] = True
        return out

    # ------------------------------------------------------------------ per decision date

    def at(self, decision_date: DateLike) -> PointInTimeReader:
        """A reader for one decision date of this window: anything dated after it raises."""
        d = pd.Timestamp(decision_date).normalize()
        if d not in self.decision_times.index:
            raise ValueError(f"{d.date()} is not a decision date of this view")
        return PointInTimeReader(self.engine, self.decision_times.loc[d], self.system_as_of, decision_date=d)

    def input_watermarks(self) -> dict[str, str]:
        """For each input actually read (table, ids): the greatest recorded_at among its rows.

        Deterministic for fixed data: it names exactly the stored state a result depended on,
        so new data for other instruments does not change it; new data for these does.
        """
        marks: dict[str, str] = {}
        for (name, ids, extra), long in sorted(self._cache.items(), key=lambda kv: repr(kv[0])):
            key = f"{name}{':' + extra if extra else ''}[{','.join(ids)}]"
            top = long.frame["recorded_at"].max() if len(long.frame) else None
            marks[key] = "none" if top is None or pd.isna(top) else pd.Timestamp(top).isoformat()
        for name, mark in sorted(self._universe_marks.items()):
            marks[f"universe:{name}"] = mark
        return marks

    def watermarks(self) -> dict[str, str | None]:
        """Input watermarks of everything this view could serve (for snapshot lineage)."""
        marks = self.end_reader.watermarks()
        marks["system_as_of"] = self.system_as_of.isoformat()
        marks["decision_end"] = self.end_reader.decision_time.isoformat()
        return marks


__all__ = ["PointInTimeView", "closes_ns", "decision_times", "LookAheadError", "utc"]
