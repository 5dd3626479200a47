"""Event inputs of `simulate`: corporate actions, perpetual funding, universe membership.

Each is turned into kernel arrays: CSR lists by session (offsets ``ptr`` of length T+1, then
instrument codes and values) or an (instruments x sessions) membership mask.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from macro_pipeline.engine.validation import check_date_index, show


def _require_columns(frame: pd.DataFrame, what: str, columns: tuple[str, ...]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} must be a DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; expected {list(columns)}")


def _instrument_codes(values: pd.Series, what: str, col_of: dict[str, int]) -> np.ndarray:
    keys = values.astype(str).to_numpy()
    codes = np.array([col_of.get(k, -1) for k in keys], dtype=np.int64)
    if (codes < 0).any():
        raise ValueError(f"{what}: instruments not in prices: {show(pd.unique(keys[codes < 0]))}")
    return codes


def _csr(pos: np.ndarray, T: int, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.argsort(pos, kind="stable")
    ptr = np.zeros(T + 1, dtype=np.int64)
    np.cumsum(np.bincount(pos, minlength=T), out=ptr[1:])
    return (ptr, *(np.ascontiguousarray(v[order]) for v in values))


def _empty_csr(T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(T + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)


def corporate_actions(
    frame: pd.DataFrame | None,
    what: str,
    value_col: str,
    sessions: pd.DatetimeIndex,
    col_of: dict[str, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    T = len(sessions)
    if frame is None or len(frame) == 0:
        return _empty_csr(T)
    _require_columns(frame, what, ("ex_date", "instrument", value_col))
    ex = pd.DatetimeIndex(pd.to_datetime(frame["ex_date"]))
    if ex.tz is not None:
        raise ValueError(f"{what}: ex_date must be tz-naive dates")
    ex = ex.as_unit("ns")
    values = frame[value_col].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if what == "splits":
        bad |= ~(values > 0)
    if bad.any():
        rows = [(ex[k], frame["instrument"].iloc[k]) for k in np.flatnonzero(bad)]
        rule = "finite and > 0" if what == "splits" else "finite"
        raise ValueError(
            f"{what}: {value_col} must be {rule} at (ex_date, instrument) {show(rows)}"
        )
    codes = _instrument_codes(frame["instrument"], what, col_of)
    inside = (ex >= sessions[0]) & (ex <= sessions[-1])
    pos = sessions.get_indexer(ex[inside])
    if (pos < 0).any():
        raise ValueError(
            f"{what}: ex_date not a session in the price index: {show(ex[inside][pos < 0])}"
        )
    return _csr(pos, T, codes[inside], values[inside])


def funding_events(
    frame: pd.DataFrame | None,
    closes_ns: np.ndarray,
    bar_start_ns: int | None,
    col_of: dict[str, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    T = len(closes_ns)
    if frame is None or len(frame) == 0:
        return _empty_csr(T)
    _require_columns(frame, "funding", ("ts", "instrument", "rate"))
    col = frame["ts"]
    ts = pd.DatetimeIndex(
        col.array if isinstance(col.dtype, pd.DatetimeTZDtype) else pd.to_datetime(col)
    )
    if ts.tz is None:
        raise ValueError("funding: ts must be tz-aware (UTC) settlement instants")
    ts_ns = ts.tz_convert("UTC").as_unit("ns").asi8
    rate = frame["rate"].to_numpy(dtype=np.float64)
    if not np.isfinite(rate).all():
        bad = [(ts[k], frame["instrument"].iloc[k]) for k in np.flatnonzero(~np.isfinite(rate))]
        raise ValueError(f"funding: NaN or infinite rate at (ts, instrument) {show(bad)}")
    codes = _instrument_codes(frame["instrument"], "funding", col_of)
    # bar t = (close t-1, close t]: a settlement belongs to the first close at or after it
    pos = np.searchsorted(closes_ns, ts_ns, side="left")
    keep = pos < T
    if bar_start_ns is not None:
        keep &= ts_ns > bar_start_ns
    return _csr(pos[keep], T, codes[keep], rate[keep])


def universe_mask(
    universe: pd.DataFrame | None, sessions: pd.DatetimeIndex, instruments: pd.Index
) -> tuple[np.ndarray, int]:
    if universe is None:
        return np.zeros((0, 0), dtype=np.bool_), 0
    if not isinstance(universe, pd.DataFrame):
        raise ValueError(f"universe must be a DataFrame, got {type(universe).__name__}")
    if "instrument" in universe.columns:
        member = _universe_from_intervals(universe, sessions, instruments)
    else:
        index = check_date_index(universe.index, "universe")
        missing = instruments.difference(universe.columns, sort=False)
        if len(missing):
            raise ValueError(f"universe: no membership column for instruments {show(missing)}")
        extra = universe.columns.difference(instruments, sort=False)
        if len(extra):
            raise ValueError(f"universe: instruments not in prices: {show(extra)}")
        rows = index.get_indexer(sessions)
        if (rows < 0).any():
            raise ValueError(
                f"universe: sessions missing from the index: {show(sessions[rows < 0])}"
            )
        frame = universe.iloc[rows][list(instruments)]
        if frame.isna().any().any():
            raise ValueError("universe: membership values must be booleans, found NaN")
        member = np.ascontiguousarray(frame.to_numpy(dtype=np.bool_).T)
    exits = int((member[:, :-1] & ~member[:, 1:]).sum()) + int((~member[:, :1]).sum())
    return member, exits


def _universe_from_intervals(
    frame: pd.DataFrame, sessions: pd.DatetimeIndex, instruments: pd.Index
) -> np.ndarray:
    names = [("from", "to"), ("start", "end"), ("valid_from", "valid_to")]
    cols = next((pair for pair in names if set(pair) <= set(frame.columns)), None)
    if cols is None:
        raise ValueError("universe: interval form needs columns instrument, from, to (inclusive)")
    col_of = dict(zip(instruments.astype(str).tolist(), range(len(instruments)), strict=True))
    codes = _instrument_codes(frame["instrument"], "universe", col_of)
    lo = pd.DatetimeIndex(pd.to_datetime(frame[cols[0]])).as_unit("ns")
    hi = pd.DatetimeIndex(pd.to_datetime(frame[cols[1]])).as_unit("ns")
    if lo.hasnans:
        raise ValueError(
            f"universe: missing '{cols[0]}' date for {show(frame['instrument'][lo.isna()])}"
        )
    s = sessions.asi8
    start = np.searchsorted(s, lo.asi8, side="left")
    stop = np.where(hi.isna(), len(s), np.searchsorted(s, hi.asi8, side="right"))
    member = np.zeros((len(instruments), len(sessions)), dtype=np.bool_)
    for j, a, b in zip(codes, start, stop, strict=True):
        member[j, a:b] = True
    return member
