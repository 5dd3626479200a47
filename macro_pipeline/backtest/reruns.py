"""Which monthly partitions need (re)materializing, and why: the logic behind the point-in-time
sensor, the strategy-registration sensor and the nightly schedule. No Dagster here: the
definitions in ``macro_pipeline.defs.automation`` only turn these reruns into run requests. No SQL
either: the reads are in ``warehouse.results`` and ``warehouse.strategies``.

Months are keys of the ``month`` partition dimension ("YYYY-MM-01"); "today" and the newest month
are taken in UTC.

How new data maps to reruns (DESIGN section 4):
- Every stored month records what it read (``run_reads``, written by the run from its
  point-in-time view): each (source, entity, signal name) with the month's last decision date.
- The sensor reads the rows recorded in (cursor, watermark]. A row is visible to decision d when
  it was known by d's decision time and its valid time is not after d, with the same calendars
  and ``decision_times`` as the view (``first_decisions``).
- A row affects a stored month when its entity is in that month's footprint and it is visible to
  one of the month's decisions. Signals are matched by name, universes by universe id.
- Each affected strategy gets one rerun from its first affected month (never after its first
  month without a stored run) to the newest month, in order, in one run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.backtest.configs import load_strategy
from macro_pipeline.backtest.months import data_limit, month_window
from macro_pipeline.strategies.params import StrategyError
from macro_pipeline.warehouse.calendars import ALWAYS_OPEN
from macro_pipeline.warehouse.results import (
    footprint_rows,
    pipeline_window_ends,
    reads_of,
    recorded_rows,
)
from macro_pipeline.warehouse.strategies import universe_origin
from macro_pipeline.warehouse.view import closes_ns, decision_times


def month_of(d) -> str:
    return pd.Timestamp(d).strftime("%Y-%m-01")


def today_utc() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()


def months_between(first: str, last: str) -> list[str]:
    return [m.strftime("%Y-%m-01") for m in pd.date_range(first, last, freq="MS")]


@dataclass(frozen=True)
class Rerun:
    """Materialize ``first_month`` .. ``last_month`` (inclusive) of one strategy, in one run."""

    strategy_id: str
    first_month: str
    last_month: str
    reason: str

    @property
    def months(self) -> list[str]:
        return months_between(self.first_month, self.last_month)


@dataclass(frozen=True, eq=False)
class Change:
    """New rows of one source for one entity (instrument, series or universe; and signal name)
    in a batch: the valid time of each (date, or UTC timestamp for funding) and the earliest
    known_at (UTC) among the new rows of that valid time."""

    source: str
    entity: str
    signal_name: str
    valid: np.ndarray  # datetime64[ns]
    known: np.ndarray  # datetime64[ns], UTC
    rows: int


# --------------------------------------------------------------------------- strategies


def origin(engine: sa.Engine, strategy_id: str) -> pd.Timestamp | None:
    """The first day of the strategy's universe (any vintage stored now); None while empty."""
    start = universe_origin(engine, load_strategy(engine, strategy_id).universe)
    return None if start is None else pd.Timestamp(start)


def first_month(engine: sa.Engine, strategy_id: str) -> str | None:
    """The month of the strategy's first decision (None while its universe is empty)."""
    start = origin(engine, strategy_id)
    return None if start is None else month_of(start)


def stored_months(engine: sa.Engine, strategy_id: str) -> dict[str, date]:
    """Months with a current, successful pipeline run -> the last session that run covers."""
    return {month_of(d): d for d in pipeline_window_ends(engine, strategy_id)}


def first_missing_month(engine: sa.Engine, strategy_id: str, today: pd.Timestamp | None = None) -> str | None:
    """The first month of the strategy's history without a stored run (None: all present)."""
    today = today_utc() if today is None else pd.Timestamp(today)
    start = origin(engine, strategy_id)
    if start is None:
        return None
    cfg = load_strategy(engine, strategy_id)
    limit = data_limit(engine, cfg, today=today)  # months after the data's end are never missing
    have = stored_months(engine, strategy_id)
    for m in months_between(month_of(start), month_of(limit)):
        window = month_window(cfg, m, limit)
        if window is not None and window[1] >= start and have.get(m) != window[1].date():
            return m  # never stored, or stored before the month was complete
    return None


def newest_month(engine: sa.Engine, strategy_id: str, today: pd.Timestamp | None = None) -> str:
    """The strategy's newest month: the current month, or the month its data ends in when that
    is earlier (later months have nothing to compute; they stay unmaterialized)."""
    today = today_utc() if today is None else pd.Timestamp(today)
    return month_of(data_limit(engine, load_strategy(engine, strategy_id), today=today))


def history_rerun(engine: sa.Engine, strategy_id: str, today: pd.Timestamp | None = None) -> Rerun | None:
    """The whole history of a strategy (a newly registered configuration)."""
    start = first_month(engine, strategy_id)
    if start is None:
        return None
    return Rerun(strategy_id, start, max(start, newest_month(engine, strategy_id, today)),
                 "full history of a new configuration")


def nightly_reruns(engine: sa.Engine, strategy_ids: list[str], today: pd.Timestamp | None = None) -> list[Rerun]:
    """For each strategy: from its first missing or incomplete month (see ``first_missing_month``:
    never stored, or stored with a window end before the month's last session in the data) to its
    newest month, since each month continues from the previous one's end state. A strategy whose
    history is complete gets nothing: a night with no new session and no gap requests no run.

    A new session in the data makes the newest month incomplete (its stored window ends before
    it), so that month is rerun; revisions of history are the point-in-time sensor's job."""
    today = today_utc() if today is None else pd.Timestamp(today)
    out = []
    for sid in strategy_ids:
        try:
            if first_month(engine, sid) is None:
                continue
            missing = first_missing_month(engine, sid, today)
            if missing is None:
                continue
            newest = newest_month(engine, sid, today)
        except StrategyError as exc:  # one unusable configuration must not stop the others' nights
            warnings.warn(f"{sid}: skipped tonight: {exc}", stacklevel=2)
            continue
        first = min(missing, newest)
        out.append(Rerun(sid, first, newest, "newest month incomplete" if first == newest
                         else f"missing or incomplete months from {first[:7]}"))
    return out


# --------------------------------------------------------------------------- new data -> reruns

def footprint(engine: sa.Engine, strategy_id: str) -> dict[str, set[tuple[str, str, str]]]:
    """month -> every (source, entity, signal name) its current pipeline run read, as recorded
    by the run itself (``run_reads``). Ad-hoc runs, unstored runs and other snapshots do not
    enter: only what each stored month read."""
    out: dict[str, set[tuple[str, str, str]]] = {}
    for month, source, entity, sig in footprint_rows(engine, strategy_id):
        out.setdefault(month, set()).add((source, entity, sig))
    return out


def changes_between(engine: sa.Engine, after: pd.Timestamp, upto: pd.Timestamp) -> list[Change]:
    """Rows recorded in (after, upto] of entities some stored run read, per source and entity
    (and signal name): the valid time and earliest known_at of each (entity, valid time) among
    them. Uses the BRIN indexes on ``recorded_at``; rows of entities no stored run read cannot
    change a stored result and are not fetched."""
    out: list[Change] = []
    for source, frame in recorded_rows(engine, after.to_pydatetime(), upto.to_pydatetime()):
        for (ent, name), g in frame.groupby(["entity", "sig"], sort=True):
            out.append(Change(source, ent, name, pd.to_datetime(g["valid"]).to_numpy(dtype="datetime64[ns]"),
                              pd.to_datetime(g["known"]).to_numpy(dtype="datetime64[ns]"), int(g["n"].sum())))
    return out


_DECISIONS: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def decision_calendar(calendar: str) -> tuple[np.ndarray, np.ndarray]:
    """(session dates, decision times in UTC) of a calendar, naive datetime64[ns]: the same
    ``decision_times`` the point-in-time view uses (exchange closes, early closes included;
    24/7: 00:00 UTC of the next day)."""
    if calendar not in _DECISIONS:
        if calendar == ALWAYS_OPEN:
            days = pd.date_range("1985-01-01", "2035-12-31", freq="D")
            _DECISIONS[calendar] = (days.to_numpy(dtype="datetime64[ns]"), decision_times(
                days, calendar).dt.tz_convert(None).to_numpy(dtype="datetime64[ns]"))
        else:
            _DECISIONS[calendar] = closes_ns(calendar)
    return _DECISIONS[calendar]


def first_decisions(change: Change, calendar: str) -> np.ndarray:
    """For each row of ``change``: the first decision date on ``calendar`` that can see it (NaT:
    none can). A row is visible to decision d when it was known by a(d) and its valid time is
    not after d: prices, macro, signals and universe intervals from the session of their valid
    date on; a funding settlement from the bar it settles in (the first decision time at or
    after its timestamp: a settlement at 00:00 UTC belongs to the previous day's 24/7 bar); a
    corporate action only on its ex-date, if known by that session's close (the engine applies
    it there, in the version known then, and nowhere else)."""
    days, times = decision_calendar(calendar)
    if change.source == "funding":
        idx = np.searchsorted(times, np.maximum(change.valid, change.known), side="left")
    else:
        idx = np.maximum(np.searchsorted(days, change.valid, side="left"),
                         np.searchsorted(times, change.known, side="left"))
    ok = idx < len(days)
    if change.source == "corporate_actions":
        at = np.searchsorted(days, change.valid, side="left")
        ok &= (at < len(days)) & (idx == at)
        ok[ok] &= days[at[ok]] == change.valid[ok]
    out = np.full(len(idx), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[ok] = days[idx[ok]]
    return out


def pit_reruns(engine: sa.Engine, changes: list[Change], today: pd.Timestamp | None = None) -> list[Rerun]:
    """The reruns a batch of changes calls for (DESIGN section 4).

    A new row affects a stored month when its (source, entity, signal name) is in that month's
    footprint (``run_reads``: what the month read) and it was visible to one of the month's
    decisions (``first_decisions`` on the strategy's calendar, on or before the month's last
    decision date). Each affected strategy gets one rerun from its first affected month to its
    newest month. A strategy whose footprint holds a changed entity but none of whose stored
    months could see the row (new days, say) is run from its first missing or incomplete month,
    if it has one. Strategies with no stored month are left to registration and the nightly
    schedule."""
    if not changes:
        return []
    today = today_utc() if today is None else pd.Timestamp(today)
    keys = {(c.source, c.entity, c.signal_name): c for c in changes}
    # ``unknown``: months stored before footprints were recorded (sql/007): what they read is
    # unknown, so every changed entity counts as read (a rerun may be wasted, a change is never missed)
    rows, unknown = reads_of(engine, list(keys))
    hits: dict[str, list[tuple[str, date, tuple[str, str, str]]]] = {}
    for sid, month, valid_to, source, entity, sig in rows:
        hits.setdefault(sid, []).append((month, valid_to, (source, entity, sig)))
    for sid, month, valid_to in unknown:
        hits.setdefault(sid, []).extend((month, valid_to, key) for key in keys)
    out = []
    for sid in sorted(hits):
        calendar = load_strategy(engine, sid).calendar
        reach = {key: first_decisions(keys[key], calendar) for key in {k for _, _, k in hits[sid]}}
        first_seen = {key: (np.nanmin(v) if (~np.isnat(v)).any() else None) for key, v in reach.items()}
        affected = [(month, key) for month, valid_to, key in hits[sid]
                    if first_seen[key] is not None and pd.Timestamp(first_seen[key]).date() <= valid_to]
        newest = newest_month(engine, sid, today)
        missing = first_missing_month(engine, sid, today)
        if affected:
            start, key = min(affected)
            reason = (f"{keys[key].rows} new row(s) of {key[0]}:{key[1]}{'/' + key[2] if key[2] else ''} "
                      f"visible from {pd.Timestamp(first_seen[key]).date()}")
            if missing is not None and missing < start:
                start = missing
        elif missing is not None:
            start, reason = missing, f"new data for its inputs; months from {missing[:7]} are missing or incomplete"
        else:
            continue
        others = sorted({f"{m[0]}:{m[1]}" for _, m in affected} - {f"{key[0]}:{key[1]}"}) if affected else []
        if others:
            reason += f" (and {', '.join(others[:5])}{' ...' if len(others) > 5 else ''})"
        start = min(start, newest)
        out.append(Rerun(sid, start, newest, reason))
    return out
