"""Input checks shared by the engine's preparation steps: every message names what is wrong.

Offending dates/instruments are listed (the first five, then a count).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SHOWN = 5
DAY_NS = 86_400 * 10**9


def show(items: Sequence) -> str:
    items = list(items)
    text = ", ".join(label(x) for x in items[:SHOWN])
    more = f", ... ({len(items)} in all)" if len(items) > SHOWN else ""
    return f"{text}{more}"


def label(x) -> str:
    if isinstance(x, pd.Timestamp | np.datetime64):
        ts = pd.Timestamp(x)
        return str(ts.date()) if ts == ts.normalize() else str(ts)
    if isinstance(x, tuple):
        return "(" + ", ".join(label(v) for v in x) + ")"
    return str(x)


def check_date_index(index: pd.Index, what: str) -> pd.DatetimeIndex:
    """A tz-naive, midnight-normalised, unique, increasing DatetimeIndex, returned as ns."""
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"{what}: index must be a DatetimeIndex, got {type(index).__name__}")
    if index.tz is not None:
        raise ValueError(f"{what}: index must be tz-naive session dates, got tz {index.tz}")
    if index.unit != "ns":
        index = index.as_unit("ns")
    if index.hasnans:
        raise ValueError(f"{what}: index contains NaT")
    i8 = index.asi8
    off = i8 % DAY_NS != 0
    if off.any():
        raise ValueError(f"{what}: index has times of day (not session dates): {show(index[off])}")
    step = np.diff(i8)
    if len(step) and step.min() <= 0:
        dup = index[1:][step == 0]
        if len(dup):
            raise ValueError(f"{what}: duplicate dates {show(dup.unique())}")
        raise ValueError(f"{what}: index is not increasing at {show(index[1:][step < 0])}")
    return index
