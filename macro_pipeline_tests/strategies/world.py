"""Tiny synthetic warehouses for hand-worked strategy tests, built through the real ingestion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.warehouse.calendars import session_closes
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline.warehouse.view import PointInTimeView, decision_times

START = "2021-03-01"  # 15 XNYS sessions without a holiday follow


def sessions(n: int, start: str = START, calendar: str = "XNYS") -> pd.DatetimeIndex:
    if calendar == "24/7":
        return pd.date_range(start, periods=n, freq="D")
    s = session_closes(calendar).index  # real exchange sessions (holidays included)
    return pd.DatetimeIndex(s[s >= pd.Timestamp(start)][:n])


def close_time(day: pd.Timestamp, calendar: str = "XNYS") -> pd.Timestamp:
    """The decision time of session ``day`` (UTC)."""
    return decision_times(pd.DatetimeIndex([day]), calendar).iloc[0]


def instruments(
    engine: sa.Engine,
    ids: Sequence[str],
    *,
    kind: str = "spot",
    calendar: str = "XNYS",
    asset_class: str = "equity",
    release_rule: str | None = None,
) -> None:
    frame = pd.DataFrame(
        {"instrument_id": list(ids), "asset_class": asset_class, "kind": kind, "calendar": calendar}
    )
    if release_rule is not None:
        frame["release_rule"] = release_rule
    ingest(engine, "instruments", frame)


def prices(engine: sa.Engine, dates: pd.DatetimeIndex, **closes: Sequence[float]) -> None:
    """Closes per instrument on ``dates`` (NaN = no print that day), known at each close."""
    rows = []
    for iid, values in closes.items():
        f = pd.DataFrame(
            {
                "instrument_id": iid,
                "obs_date": dates[: len(values)],
                "close": np.asarray(values, float),
            }
        )
        rows.append(f[f["close"].notna()])
    ingest(engine, "prices", pd.concat(rows, ignore_index=True))


def ohlc(
    engine: sa.Engine, dates: pd.DatetimeIndex, iid: str, bars: Sequence[tuple[float, float, float]]
) -> None:
    """(high, low, close) bars for one instrument; open = close."""
    h, lo, c = (np.asarray(x, float) for x in zip(*bars, strict=True))
    ingest(
        engine,
        "prices",
        pd.DataFrame(
            {
                "instrument_id": iid,
                "obs_date": dates[: len(bars)],
                "open": c,
                "high": h,
                "low": lo,
                "close": c,
            }
        ),
    )


def universe(
    engine: sa.Engine,
    name: str,
    members: dict[str, tuple],
) -> None:
    """members: id -> (valid_from, valid_to or None[, known_at])."""
    rows = []
    for iid, spec in members.items():
        row = {
            "universe": name,
            "instrument_id": iid,
            "valid_from": pd.Timestamp(spec[0]),
            "valid_to": pd.Timestamp(spec[1]) if spec[1] is not None else pd.NaT,
        }
        if len(spec) > 2:
            row["known_at"] = pd.Timestamp(spec[2])
        rows.append(row)
    frame = pd.DataFrame(rows)
    if "known_at" in frame:
        default = frame["valid_from"].dt.tz_localize("UTC")
        frame["known_at"] = pd.to_datetime(frame["known_at"], utc=True).fillna(default)
    ingest(engine, "universe", frame)


def view(engine: sa.Engine, dates: pd.DatetimeIndex, calendar: str = "XNYS") -> PointInTimeView:
    return PointInTimeView(engine, dates, calendar=calendar)
