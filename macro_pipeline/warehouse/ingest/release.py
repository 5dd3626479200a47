"""Room: warehouse/ingest/release. Default knowledge-time (``known_at``) rules for rows whose
source carries no release time.

Each instrument names its rule (``instruments.release_rule``); a file that has a ``known_at``
column always wins over the rule. The rules, all configurable through ``ReleaseModel``:

| rule            | known_at                                                                     |
|-----------------|------------------------------------------------------------------------------|
| ``close``       | the session close of ``obs_date`` on the instrument's exchange calendar      |
|                 | (exchange_calendars: real holidays and early closes); on a date that is not  |
|                 | a session, ``fallback_close_time`` local time; for ``24/7`` instruments the  |
|                 | end of the UTC day (00:00 UTC of the next day)                               |
| ``quarterly_30d``| first print: ``quarterly_lag_days`` (30) after the end of ``obs_date``'s     |
|                 | quarter, at ``macro_release_time`` (08:30 America/New_York)                  |
| ``settlement``  | funding rows: the funding timestamp itself (known when it settles)           |
| ``same_day``    | 00:00 UTC of ``obs_date`` (corporate actions on their ex-date, universe      |
|                 | membership on its first day): known before that day's session                |

Later vintages (revisions) of a quarterly print cannot come from a rule: they arrive as rows with
their own ``known_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time

import numpy as np
import pandas as pd

from macro_pipeline.engine.calendar import exchange_calendar
from macro_pipeline.warehouse.calendars import ALWAYS_OPEN, session_close

RULES = ("close", "quarterly_30d", "settlement", "same_day")
# rules an instrument may name (funding rows always use "settlement")
INSTRUMENT_RULES = ("close", "quarterly_30d", "same_day")


@dataclass(frozen=True)
class ReleaseModel:
    quarterly_lag_days: int = 30
    macro_release_time: time = time(8, 30)
    macro_release_tz: str = "America/New_York"
    fallback_close_time: time = time(16, 0)


DEFAULT_MODEL = ReleaseModel()


def close_known_at(obs_dates: pd.Series, calendar: str, model: ReleaseModel = DEFAULT_MODEL) -> pd.Series:
    """``known_at`` under the ``close`` rule for each date (vectorized)."""
    dates = pd.to_datetime(obs_dates).dt.normalize()
    known = session_close(dates, calendar)
    if calendar == ALWAYS_OPEN:
        return known
    cal = exchange_calendar(calendar)
    missing = known.isna().to_numpy()
    if missing.any():
        local = dates[missing] + pd.Timedelta(
            hours=model.fallback_close_time.hour, minutes=model.fallback_close_time.minute
        )
        fallback = local.dt.tz_localize(str(cal.tz), nonexistent="shift_forward", ambiguous=False)
        known[missing] = fallback.dt.tz_convert("UTC").dt.as_unit("ns")
    return known


def quarterly_known_at(obs_dates: pd.Series, model: ReleaseModel = DEFAULT_MODEL) -> pd.Series:
    dates = pd.to_datetime(obs_dates)
    quarter_end = dates.dt.to_period("Q").dt.end_time.dt.normalize()
    local = quarter_end + pd.Timedelta(days=model.quarterly_lag_days) + pd.Timedelta(
        hours=model.macro_release_time.hour, minutes=model.macro_release_time.minute
    )
    return local.dt.tz_localize(model.macro_release_tz).dt.tz_convert("UTC")


def same_day_known_at(obs_dates: pd.Series) -> pd.Series:
    return pd.to_datetime(obs_dates).dt.normalize().dt.tz_localize("UTC")


def _per_day(when: np.ndarray, rule_of_dates) -> np.ndarray:
    """Evaluate a date rule once per distinct day of ``when`` (naive UTC datetime64) and broadcast.

    Millions of rows cover a few thousand days: the rule (pandas, calendars) sees only those, and
    rows find their day by integer position (a dense lookup table, or ``np.unique`` when sparse).
    """
    days = when.astype("datetime64[D]").view("int64")
    lo, hi = int(days.min()), int(days.max())
    if hi - lo <= 4 * len(days) + 4096:
        seen = np.zeros(hi - lo + 1, dtype=bool)
        seen[days - lo] = True
        distinct = np.flatnonzero(seen) + lo
        slot = np.zeros(hi - lo + 1, dtype="int64")
        slot[distinct - lo] = np.arange(len(distinct))
        inverse = slot[days - lo]
    else:
        distinct, inverse = np.unique(days, return_inverse=True)
    dates = pd.Series(distinct.astype("datetime64[D]").astype("datetime64[us]"))
    known = _utc_micros(rule_of_dates(dates))
    return known[inverse.reshape(-1)]


def _utc_micros(values: pd.Series) -> np.ndarray:
    """tz-aware (or naive UTC) datetimes -> naive UTC ``datetime64[us]``."""
    values = values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz is not None else values
    return values.to_numpy().astype("datetime64[us]")


def _naive_utc(when) -> np.ndarray:
    """Valid times (dates, naive or tz-aware timestamps) as naive UTC ``datetime64[us]``."""
    when = pd.Series(when) if not isinstance(when, pd.Series) else when
    if not pd.api.types.is_datetime64_any_dtype(when):
        when = pd.to_datetime(when)
    return _utc_micros(when)


def known_at_by_group(
    when,
    group: np.ndarray,
    rules: Sequence[str],
    calendars: Sequence[str],
    model: ReleaseModel = DEFAULT_MODEL,
) -> np.ndarray:
    """known_at (naive UTC ``datetime64[us]``) for rows whose rule and calendar come from a group.

    ``group[i]`` indexes ``rules``/``calendars`` (typically: the row's instrument, so the per-row
    work is integer gathers). known_at depends only on (rule, calendar, valid day), so each rule is
    evaluated once per distinct day of the rows using it, then broadcast back.
    """
    when = _naive_utc(when)
    group = np.asarray(group, dtype="int64")
    pair_of_group: dict[tuple[str, str], int] = {}
    for rule, calendar in zip(rules, calendars, strict=True):
        pair_of_group.setdefault((rule, calendar), len(pair_of_group))
    group_pair = np.array([pair_of_group[rc] for rc in zip(rules, calendars, strict=True)], dtype="int64")
    row_pair = group_pair[group] if len(pair_of_group) > 1 else None  # one pair: no gather
    out = np.full(len(when), np.datetime64("NaT"), dtype="datetime64[us]")
    valid = ~np.isnat(when)
    for p, (rule, calendar) in enumerate(pair_of_group):
        rows = valid if row_pair is None else (row_pair == p) & valid
        if not rows.any():
            continue
        out[rows] = _evaluate(rule, calendar, when[rows], model)
    return out


def session_close_by_group(when, group: np.ndarray, calendars: Sequence[str]) -> np.ndarray:
    """Session close (naive UTC ``datetime64[us]``) of each row's valid day on its group's calendar;
    NaT where that day is no session of it. ``group[i]`` indexes ``calendars``; each calendar is
    looked up once per distinct day of its rows (as ``known_at_by_group``)."""
    when = _naive_utc(when)
    group = np.asarray(group, dtype="int64")
    codes, names = pd.factorize(pd.Series(list(calendars), dtype=object))
    row_cal = np.asarray(codes, dtype="int64")[group] if len(names) > 1 else None  # one: no gather
    out = np.full(len(when), np.datetime64("NaT"), dtype="datetime64[us]")
    valid = ~np.isnat(when)
    for c, calendar in enumerate(names):
        rows = valid if row_cal is None else (row_cal == c) & valid
        if rows.any():
            out[rows] = _per_day(when[rows], lambda d, cal=calendar: session_close(d, cal))
    return out


def _evaluate(rule: str, calendar: str, when: np.ndarray, model: ReleaseModel) -> np.ndarray:
    if rule == "settlement":  # the valid timestamp itself: no per-day shortcut
        return when
    if rule == "close":
        return _per_day(when, lambda d: close_known_at(d, calendar, model))
    if rule == "quarterly_30d":
        return _per_day(when, lambda d: quarterly_known_at(d, model))
    if rule == "same_day":
        return _per_day(when, same_day_known_at)
    raise ValueError(f"unknown release rule {rule!r}; known rules: {RULES}")
