"""Exchange-calendar sessions, session close times and rebalance dates.

Sessions and close times come from ``exchange_calendars`` (holidays and early closes
included), never from a naive business-day range. Calendars are slow to build (~0.25 s, and
importing ``exchange_calendars`` ~0.1 s more, a good part of a one-off command's start-up), so
each is built once over a wide range and its sessions and closes are kept: in the process, and
on disk next to numba's cache (``__pycache__``), keyed by the calendar, the range and the
``exchange_calendars`` version that built them (a new version builds them again). The disk copy
holds the very int64 values the calendar gave; where it cannot be written, nothing is kept.

Bars: session t's bar is (close of session t-1, close of session t]. For "24/7" (crypto
perpetuals) the session for UTC date D closes at 00:00 UTC of D+1, so a daily bar covers the
UTC day D, and 8-hourly funding at 08:00, 16:00 and 00:00 (of D+1) falls in bar D.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import warnings
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

_CAL_START = "1970-01-01"
_CAL_END_YEARS_AHEAD = 15


@lru_cache(maxsize=1)
def _calendar_names() -> frozenset[str]:
    import exchange_calendars as xcals

    return frozenset(xcals.get_calendar_names(include_aliases=True))


def is_known_calendar(name: str) -> bool:
    """True if ``exchange_calendars`` knows ``name`` (e.g. "XNYS", "24/7")."""
    # a calendar this version built and kept is known: no need to import exchange_calendars
    return _kept_path(name).exists() or name in _calendar_names()


@lru_cache(maxsize=16)
def exchange_calendar(name: str):
    """The cached ``exchange_calendars`` calendar ``name``, spanning 1970 to ~15 years ahead."""
    import exchange_calendars as xcals

    end = _cal_end()
    with warnings.catch_warnings():
        # exchange_calendars 4.x trips pandas 3.x deprecation warnings while it builds; they
        # are about its internals, not about anything this engine passes in
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pandas")
        warnings.filterwarnings("ignore", category=FutureWarning, module="pandas")
        try:
            return xcals.get_calendar(name, start=_CAL_START, end=end)
        except (ValueError, xcals.errors.CalendarError):  # calendars with a later first date
            return xcals.get_calendar(name, end=end)


def _cal_end() -> str:
    return f"{dt.date.today().year + _CAL_END_YEARS_AHEAD}-12-31"


@lru_cache(maxsize=64)
def _kept_path(name: str) -> Path:
    """Where calendar ``name``'s sessions and closes are kept on disk (see the module docstring)."""
    version = metadata.version("exchange_calendars")
    safe = "".join(c if c.isalnum() else "_" for c in name)
    return (Path(__file__).resolve().parent / "__pycache__"
            / f"calendar-{safe}-{_CAL_START}-{_cal_end()}-xcals{version}.npy")


def _keep(path: Path, table: np.ndarray) -> None:
    """Write ``table`` to ``path`` atomically (a reader sees the whole file or none); skipped
    where the directory cannot be written."""
    try:
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, table)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


@lru_cache(maxsize=16)
def _sessions_and_closes(name: str) -> tuple[np.ndarray, np.ndarray]:
    path = _kept_path(name)
    try:
        table = np.load(path)
    except (OSError, ValueError):  # not kept yet (or unreadable): build it
        cal = exchange_calendar(name)
        sessions = pd.DatetimeIndex(cal.sessions).as_unit("ns").asi8
        closes = pd.DatetimeIndex(cal.closes).as_unit("ns").asi8  # UTC instants
        table = np.stack([sessions, closes])
        _keep(path, table)
    sessions, closes = np.ascontiguousarray(table[0]), np.ascontiguousarray(table[1])
    sessions.setflags(write=False)
    closes.setflags(write=False)
    return sessions, closes


def session_closes_utc(name: str) -> pd.Series:
    """Session date (tz-naive, ns) -> its close (UTC, ns) on exchange calendar ``name``, early
    closes included."""
    sessions, closes = _sessions_and_closes(name)
    return pd.Series(pd.DatetimeIndex(closes.view("datetime64[ns]")).tz_localize("UTC"),
                     index=pd.DatetimeIndex(sessions.view("datetime64[ns]")), name="close")


def calendar_sessions(name: str) -> pd.DatetimeIndex:
    """All sessions of calendar ``name`` (tz-naive, midnight-normalised, ns)."""
    return pd.DatetimeIndex(_sessions_and_closes(name)[0].view("datetime64[ns]"))


def session_mask(name: str, dates_ns: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``dates_ns`` (int64 ns, midnight) are sessions of ``name``."""
    sessions, _ = _sessions_and_closes(name)
    pos = np.searchsorted(sessions, dates_ns)
    pos = np.minimum(pos, len(sessions) - 1)
    return sessions[pos] == dates_ns


def session_closes_ns(name: str, sessions_ns: np.ndarray) -> np.ndarray:
    """UTC close instants (int64 ns) of the given sessions (each must be a session of ``name``)."""
    sessions, closes = _sessions_and_closes(name)
    pos = np.searchsorted(sessions, sessions_ns)
    if len(pos) and (pos.max() >= len(sessions) or np.any(sessions[pos] != sessions_ns)):
        raise ValueError(f"session_closes_ns: some dates are not {name} sessions")
    return closes[pos]


def previous_session_ns(name: str, date_ns: int) -> int | None:
    """The last session of ``name`` strictly before ``date_ns``, or None."""
    sessions, _ = _sessions_and_closes(name)
    pos = int(np.searchsorted(sessions, date_ns)) - 1
    return int(sessions[pos]) if pos >= 0 else None


DAYS_PER_YEAR = 365
"""Calendar days in a year for CAGR (as quantstats; a 24/7 year of 365 sessions is one year)."""


def periods_per_year(name: str) -> int:
    """Periods a year of a daily series on calendar ``name``, the annualisation factor of
    volatility, Sharpe, Sortino, turnover and per-session accruals: 365 for "24/7" (every
    calendar day is a session), 252 for every exchange calendar (the industry convention,
    whatever the calendar's actual count: XNYS has 250-253 sessions a year)."""
    return 365 if name == "24/7" else 252


@lru_cache(maxsize=32)
def _period_ends(name: str, frequency: str) -> np.ndarray:
    sessions, _ = _sessions_and_closes(name)
    if frequency == "daily":
        return sessions
    idx = pd.DatetimeIndex(sessions.view("datetime64[ns]"))
    if frequency == "monthly":
        key = idx.year.to_numpy() * 12 + idx.month.to_numpy()
    elif frequency == "weekly":
        # weeks run Monday..Sunday; day number // 7 after shifting the epoch (a Thursday) to Monday
        key = (sessions // 86_400_000_000_000 + 3) // 7
    else:
        raise ValueError(f"rebalance frequency {frequency!r} is not daily, weekly or monthly")
    last = np.r_[key[1:] != key[:-1], True]
    # the calendar's final period may be cut off by the cached range; drop it
    ends = sessions[last][:-1]
    ends.setflags(write=False)
    return ends


def rebalance_mask(name: str, frequency: str, dates_ns: np.ndarray) -> np.ndarray:
    """Which of ``dates_ns`` are rebalance sessions: every session ("daily"), or the last
    session of each calendar week Mon-Sun ("weekly") / calendar month ("monthly") of ``name``."""
    ends = _period_ends(name, frequency)
    pos = np.minimum(np.searchsorted(ends, dates_ns), len(ends) - 1)
    return ends[pos] == dates_ns


def rebalance_dates(
    name: str, frequency: str, start: dt.date | str, end: dt.date | str
) -> pd.DatetimeIndex:
    """Rebalance sessions of calendar ``name`` within [start, end] (see ``rebalance_mask``).

    Example: monthly XNYS in 2021 gives 2021-01-29, ..., 2021-04-30 (not the Good Friday
    2021-04-02), ..., 2021-12-31.
    """
    ends = _period_ends(name, frequency)
    lo = pd.Timestamp(start).as_unit("ns").value
    hi = pd.Timestamp(end).as_unit("ns").value
    return pd.DatetimeIndex(ends[(ends >= lo) & (ends <= hi)].view("datetime64[ns]"))
