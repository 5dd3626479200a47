"""Default knowledge-time (``known_at``) rules for rows whose source carries no release time.

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

from dataclasses import dataclass
from datetime import time
from functools import lru_cache

import pandas as pd

RULES = ("close", "quarterly_30d", "settlement", "same_day")
# rules an instrument may name (funding rows always use "settlement")
INSTRUMENT_RULES = ("close", "quarterly_30d", "same_day")
ALWAYS_OPEN = "24/7"


@dataclass(frozen=True)
class ReleaseModel:
    quarterly_lag_days: int = 30
    macro_release_time: time = time(8, 30)
    macro_release_tz: str = "America/New_York"
    fallback_close_time: time = time(16, 0)


DEFAULT_MODEL = ReleaseModel()


@lru_cache(maxsize=8)
def _calendar(name: str):
    import exchange_calendars as xcals

    return xcals.get_calendar(name, start="1985-01-02")


def session_closes(calendar: str) -> pd.Series:
    """Session date (tz-naive) -> close (UTC) for an exchange calendar, early closes included."""
    cal = _calendar(calendar)
    closes = cal.closes
    out = pd.Series(closes.to_numpy(), index=pd.DatetimeIndex(closes.index).tz_localize(None))
    return out.dt.tz_convert("UTC") if out.dt.tz is not None else out.dt.tz_localize("UTC")


def close_known_at(obs_dates: pd.Series, calendar: str, model: ReleaseModel = DEFAULT_MODEL) -> pd.Series:
    """``known_at`` under the ``close`` rule for each date (vectorized)."""
    dates = pd.to_datetime(obs_dates).dt.normalize()
    if calendar == ALWAYS_OPEN:
        return (dates + pd.Timedelta(days=1)).dt.tz_localize("UTC")
    cal = _calendar(calendar)
    closes = session_closes(calendar)
    known = pd.Series(closes.reindex(dates.to_numpy()).to_numpy(), index=dates.index)
    missing = known.isna().to_numpy()
    if missing.any():
        local = dates[missing] + pd.Timedelta(
            hours=model.fallback_close_time.hour, minutes=model.fallback_close_time.minute
        )
        fallback = local.dt.tz_localize(str(cal.tz), nonexistent="shift_forward", ambiguous=False)
        known = known.astype("datetime64[ns, UTC]")
        known[missing] = fallback.dt.tz_convert("UTC")
    return known.astype("datetime64[ns, UTC]")


def quarterly_known_at(obs_dates: pd.Series, model: ReleaseModel = DEFAULT_MODEL) -> pd.Series:
    dates = pd.to_datetime(obs_dates)
    quarter_end = dates.dt.to_period("Q").dt.end_time.dt.normalize()
    local = quarter_end + pd.Timedelta(days=model.quarterly_lag_days) + pd.Timedelta(
        hours=model.macro_release_time.hour, minutes=model.macro_release_time.minute
    )
    return local.dt.tz_localize(model.macro_release_tz).dt.tz_convert("UTC")


def same_day_known_at(obs_dates: pd.Series) -> pd.Series:
    return pd.to_datetime(obs_dates).dt.normalize().dt.tz_localize("UTC")


def apply_rules(
    dates: pd.Series,
    rules: pd.Series,
    calendars: pd.Series,
    model: ReleaseModel = DEFAULT_MODEL,
) -> pd.Series:
    """known_at per row given each row's rule and calendar.

    known_at depends only on (rule, calendar, valid time), so it is computed once per distinct
    combination (a few thousand for millions of rows) and broadcast back.
    """
    combo = pd.DataFrame({"rule": rules.astype(str).to_numpy(), "calendar": calendars.astype(str).to_numpy(),
                          "when": pd.to_datetime(dates).to_numpy()})
    codes, uniques = pd.MultiIndex.from_frame(combo).factorize()
    distinct = uniques.to_frame(index=False).set_axis(["rule", "calendar", "when"], axis=1)
    known = pd.Series(pd.NaT, index=distinct.index, dtype="datetime64[us, UTC]")
    for (rule, calendar), group in distinct.groupby(["rule", "calendar"], sort=False):
        when = group["when"]
        if rule == "close":
            values = close_known_at(when, calendar, model)
        elif rule == "quarterly_30d":
            values = quarterly_known_at(when, model)
        elif rule == "same_day":
            values = same_day_known_at(when)
        elif rule == "settlement":
            values = when.dt.tz_localize("UTC") if when.dt.tz is None else when.dt.tz_convert("UTC")
        else:
            raise ValueError(f"unknown release rule {rule!r}; known rules: {RULES}")
        known.loc[group.index] = values.astype("datetime64[us, UTC]").to_numpy()
    return pd.Series(known.to_numpy()[codes], index=dates.index, dtype="datetime64[us, UTC]")


def as_utc(values: pd.Series) -> pd.Series:
    """Timestamps to UTC; naive values are taken as UTC."""
    ts = pd.to_datetime(values, utc=False)
    if getattr(ts.dt, "tz", None) is None:
        return ts.dt.tz_localize("UTC")
    return ts.dt.tz_convert("UTC")


__all__ = ["ReleaseModel", "DEFAULT_MODEL", "RULES", "apply_rules", "session_closes", "as_utc"]
