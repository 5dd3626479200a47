"""Room: warehouse/calendars. The session closes the warehouse uses: the decision times of the
point-in-time view (``view.decision_times``) and the ``close`` release rule and close check of
ingestion (``ingest/release.py``, ``ingest/instruments.py``).

Calendars are the engine's cached ones (``engine.calendar``: one source of
sessions for release rules, decisions and the simulation): 1970, or the calendar's own first
session when later (XTKS: 1997), to 15 years ahead. ``ALWAYS_OPEN`` (``24/7``, perpetual futures):
every day is a session, closing at 00:00 UTC of the next day.
"""

from __future__ import annotations

import pandas as pd

from macro_pipeline.engine.calendar import session_closes_utc

ALWAYS_OPEN = "24/7"


def session_closes(calendar: str) -> pd.Series:
    """Session date (tz-naive) -> close (UTC) for an exchange calendar, early closes included."""
    # from the engine's kept arrays: no calendar built, no Timestamp objects made (a Series of
    # the calendar's tz-aware closes went through one object per session, ~0.25 s)
    return session_closes_utc(calendar).rename(None)


def session_close(obs_dates: pd.Series, calendar: str) -> pd.Series:
    """The close (UTC) of each date's session on ``calendar``, NaT where the date is no session.

    Exchange calendars: the real close, early closes included. ``24/7``: every day is a session,
    closing at the end of the UTC day (00:00 UTC of the next day).
    """
    dates = pd.to_datetime(obs_dates).dt.normalize()
    if calendar == ALWAYS_OPEN:
        return (dates + pd.Timedelta(days=1)).dt.tz_localize("UTC")
    closes = session_closes(calendar)
    # tz-aware UTC from the start: when no date is a session the reindexed values are all NaT
    # and carry no time zone (pandas 3 refuses astype from naive to aware)
    found = pd.DatetimeIndex(closes.reindex(dates.to_numpy()).to_numpy())
    found = found.tz_localize("UTC") if found.tz is None else found.tz_convert("UTC")
    return pd.Series(found.as_unit("ns"), index=dates.index)
