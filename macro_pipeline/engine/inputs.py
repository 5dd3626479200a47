"""Validation and preparation of `simulate` inputs into the kernel's arrays.

Every rejected input raises ``ValueError`` naming the offending dates and/or instruments
(the first five, then a count). Checks run as whole-array reductions first; the slow
pinpointing only runs once something is known to be wrong.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from macro_pipeline.engine import calendar as cal
from macro_pipeline.engine.config import BacktestConfig
from macro_pipeline.engine.events import corporate_actions, funding_events, universe_mask
from macro_pipeline.engine.state import EndState, PendingOrder
from macro_pipeline.engine.validation import SHOWN, check_date_index, show

_LEVERAGE_TOLERANCE = 1e-12


@dataclass
class Prepared:
    """Kernel-ready arrays for one call (see ``kernel.run_portfolio`` for their meaning)."""

    sessions: pd.DatetimeIndex
    sessions_ns: np.ndarray
    closes_ns: np.ndarray
    instruments: pd.Index
    price: np.ndarray  # (N, T)
    exec_row: np.ndarray
    targets: np.ndarray  # (N, K)
    pending_out: list[PendingOrder]
    split_ptr: np.ndarray
    split_i: np.ndarray
    split_ratio: np.ndarray
    div_ptr: np.ndarray
    div_i: np.ndarray
    div_amount: np.ndarray
    fund_ptr: np.ndarray
    fund_i: np.ndarray
    fund_rate: np.ndarray
    universe: np.ndarray  # (N, T) or (0, 0)
    n_universe_exits: int
    rf_bar: np.ndarray
    borrow_rate: float
    cost_rate: float
    qty0: np.ndarray
    last_p0: np.ndarray
    cash0: float
    prev_equity: float
    hwm0: float
    accrue_first: bool
    rt_ns0: (
        np.ndarray
    )  # open round trips at the start (see the kernel module docstring): opened, ns
    rt_f0: np.ndarray  # (N, 3) units, entry notional, entry costs
    events: list[tuple[int, str | None, str, float]]  # (session pos, instrument, reason, value)
    decision_pos: np.ndarray | None = None  # session position of targets[:, k], k < K decisions

    def split_events(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Splits in time order: (ex-date ns, instrument, ratio)."""
        pos = np.repeat(np.arange(len(self.sessions_ns)), np.diff(self.split_ptr))
        return self.sessions_ns[pos], self.split_i, self.split_ratio

    def kernel_inputs(self) -> tuple:
        """The market/event arguments of ``run_portfolio`` from ``price`` to ``cost_rate``,
        as read-only views (see `readonly`)."""
        return (
            *map(readonly, (
                self.price, self.exec_row, self.targets, self.universe,
                self.split_ptr, self.split_i, self.split_ratio,
                self.div_ptr, self.div_i, self.div_amount,
                self.fund_ptr, self.fund_i, self.fund_rate, self.rf_bar,
            )),
            self.borrow_rate, self.cost_rate,
        )  # fmt: skip


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view. Kernel inputs are always passed read-only: pandas (copy-on-write)
    hands out read-only views, and numba compiles a separate specialisation for each
    read-only/writable combination, so fixing one keeps a single compiled kernel."""
    v = a.view()
    v.setflags(write=False)
    return v


def prepare(
    prices: pd.DataFrame,
    weights: pd.DataFrame | None,
    config: BacktestConfig,
    *,
    funding: pd.DataFrame | None = None,
    dividends: pd.DataFrame | None = None,
    splits: pd.DataFrame | None = None,
    universe: pd.DataFrame | None = None,
    start_state: EndState | None = None,
) -> Prepared:
    if not isinstance(config, BacktestConfig):
        raise ValueError(f"config must be a BacktestConfig, got {type(config).__name__}")
    if start_state is not None and not isinstance(start_state, EndState):
        raise ValueError(f"start_state must be an EndState, got {type(start_state).__name__}")
    sessions, rows, instruments = _sessions(prices, config, start_state)
    T, N = len(sessions), len(instruments)
    sessions_ns = sessions.asi8
    price = _instrument_major(prices, rows, "prices")  # values are checked by the kernel
    needs_lookup = any(x is not None for x in (funding, dividends, splits, universe, start_state))
    col_of = (
        dict(zip(instruments.astype(str).tolist(), range(N), strict=True)) if needs_lookup else {}
    )
    closes_ns = cal.session_closes_ns(config.calendar, sessions_ns)

    events: list[tuple[int, str | None, str, float]] = []
    targets, decision_pos, decision_dates = _weights(weights, instruments, sessions, config, events)
    exec_row, targets, pending_out = schedule(
        targets, decision_pos, decision_dates, T, config.execution_lag, start_state, col_of,
        instruments,
    )  # fmt: skip

    split_ptr, split_i, split_ratio = corporate_actions(splits, "splits", "ratio", sessions, col_of)
    div_ptr, div_i, div_amount = corporate_actions(
        dividends, "dividends", "amount", sessions, col_of
    )
    bar_start = start_state.close_ns if start_state is not None else None
    fund_ptr, fund_i, fund_rate = funding_events(funding, closes_ns, bar_start, col_of)
    uni, n_exits = universe_mask(universe, sessions, instruments)
    rf_bar = _rf_bar(config, sessions, start_state)

    qty0 = np.zeros(N)
    last_p0 = np.full(N, np.nan)
    if start_state is None:
        cash0 = prev_equity = hwm0 = config.initial_capital
        rt_ns0, rt_f0 = np.full(N, -1, dtype=np.int64), np.zeros((N, 3))
    else:
        _check_state(start_state, config, col_of)
        for key, q in start_state.quantities.items():
            qty0[col_of[key]] = q
        for key, p in start_state.last_prices.items():
            if key in col_of:
                last_p0[col_of[key]] = p
        cash0 = start_state.cash
        prev_equity = start_state.equity
        hwm0 = start_state.high_water_mark
        rt_ns0, rt_f0 = _open_trades(start_state, col_of, N)
    return Prepared(
        sessions=sessions,
        sessions_ns=sessions_ns,
        closes_ns=closes_ns,
        instruments=instruments,
        price=price,
        exec_row=exec_row,
        targets=targets,
        pending_out=pending_out,
        split_ptr=split_ptr,
        split_i=split_i,
        split_ratio=split_ratio,
        div_ptr=div_ptr,
        div_i=div_i,
        div_amount=div_amount,
        fund_ptr=fund_ptr,
        fund_i=fund_i,
        fund_rate=fund_rate,
        universe=uni,
        n_universe_exits=n_exits,
        rf_bar=rf_bar,
        borrow_rate=config.borrow_cost_bps / 1e4 / cal.periods_per_year(config.calendar),
        cost_rate=config.cost_rate,
        qty0=qty0,
        last_p0=last_p0,
        cash0=float(cash0),
        prev_equity=float(prev_equity),
        hwm0=float(hwm0),
        accrue_first=start_state is not None,
        rt_ns0=rt_ns0,
        rt_f0=rt_f0,
        events=events,
        decision_pos=decision_pos,
    )


def _sessions(
    prices: pd.DataFrame, config: BacktestConfig, start_state: EndState | None
) -> tuple[pd.DatetimeIndex, np.ndarray | slice, pd.Index]:
    if not isinstance(prices, pd.DataFrame):
        raise ValueError(f"prices must be a DataFrame, got {type(prices).__name__}")
    index = check_date_index(prices.index, "prices")
    instruments = prices.columns
    if not instruments.is_unique:
        raise ValueError(
            f"prices: duplicate instruments {show(instruments[instruments.duplicated()].unique())}"
        )
    i8 = index.asi8
    lo, hi = 0, len(index)
    if config.start is not None:
        lo = int(np.searchsorted(i8, pd.Timestamp(config.start).value, side="left"))
    if config.end is not None:
        hi = int(np.searchsorted(i8, pd.Timestamp(config.end).value, side="right"))
    if start_state is not None:
        after = int(np.searchsorted(i8, pd.Timestamp(start_state.date).value, side="right"))
        if after < lo:
            raise ValueError(
                f"config.start {config.start} leaves a gap after start_state.date "
                f"{start_state.date}: sessions {show(index[after:lo])} would be skipped"
            )
        lo = max(lo, after)
    hi = max(hi, lo)
    in_range = index[lo:hi]
    mask = cal.session_mask(config.calendar, in_range.asi8)
    rows: np.ndarray | slice
    if mask.all():
        rows = slice(lo, hi)
        sessions = in_range
    else:
        dropped = in_range[~mask]
        warnings.warn(
            f"prices: {len(dropped)} row(s) are not {config.calendar} sessions and are ignored: "
            f"{show(dropped)}",
            stacklevel=4,
        )
        rows = np.flatnonzero(mask) + lo
        sessions = in_range[mask]
    if len(sessions) == 0:
        raise ValueError(
            f"prices: no {config.calendar} sessions between {config.start} and {config.end}"
            + (f" after start_state.date {start_state.date}" if start_state else "")
        )
    return pd.DatetimeIndex(sessions, freq=None), rows, instruments


def _instrument_major(frame: pd.DataFrame, rows, what: str) -> np.ndarray:
    """frame.to_numpy()[rows].T as a C-contiguous float64 (N, T) array; pandas stores a
    single-dtype frame instrument-major already, so this is usually a view (no copy)."""
    try:
        values = frame.to_numpy(dtype=np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: values must be numeric ({exc})") from exc
    return np.ascontiguousarray(values.T[:, rows])


def reject_bad_prices(price: np.ndarray, sessions: pd.DatetimeIndex, instruments: pd.Index) -> None:
    """Raise naming (date, instrument, price) of prices that are not NaN and not finite > 0."""
    with np.errstate(invalid="ignore"):
        bad = ~(price > 0) & ~np.isnan(price) | np.isinf(price)
    i, t = np.nonzero(bad)
    order = np.lexsort((i, t))
    pairs = [(sessions[t[k]], instruments[i[k]], price[i[k], t[k]]) for k in order[:SHOWN]]
    raise ValueError(
        "prices: must be finite and > 0 (NaN = no price); bad (date, instrument, price): "
        + show(pairs)
        + (f", ... ({len(order)} in all)" if len(order) > SHOWN else "")
    )


def _weights(
    weights: pd.DataFrame | None,
    instruments: pd.Index,
    sessions: pd.DatetimeIndex,
    config: BacktestConfig,
    events: list,
) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """(N, K) leverage-capped targets of the rows acted upon, their session positions, dates."""
    N = len(instruments)
    if weights is None:
        return np.zeros((N, 0)), np.zeros(0, dtype=np.int64), sessions[:0]
    if not isinstance(weights, pd.DataFrame):
        raise ValueError(f"weights must be a DataFrame, got {type(weights).__name__}")
    col_idx = weight_columns(weights.columns, instruments, "weights")
    lo, hi, pos, keep, window = decision_rows(weights.index, sessions, config, "weights")
    w = _instrument_major(weights, slice(lo, hi), "weights")
    gross = gross_weights(w)  # NaN/inf show up in the sums
    if not np.isfinite(gross).all():
        check_finite_weights(w, window, weights.columns, "weights")
    if not keep.all():
        w = np.ascontiguousarray(w[:, keep])
        gross = gross[keep]
    pos, window = pos[keep], window[keep]
    if len(col_idx) != N or (col_idx != np.arange(N)).any():
        full = np.zeros((N, w.shape[1]))
        full[col_idx] = w
        w = full
    factor = leverage_factor(gross, config.max_leverage)
    if (factor < 1.0).any():
        w = w * factor  # a copy: the caller's frame is never modified
        for p, f in zip(pos[factor < 1.0], factor[factor < 1.0], strict=True):
            events.append((int(p), None, "leverage_scaled", float(f)))
    return w, pos, window


def check_finite_weights(
    w: np.ndarray, dates: pd.DatetimeIndex, columns: pd.Index, what: str
) -> None:
    """Raise naming (date, instrument) pairs if an (N, K) weight array has NaN/inf."""
    if w.size and not np.isfinite(np.add.reduce(w, axis=None)):
        bad = ~np.isfinite(w)
        if bad.any():
            i, k = np.nonzero(bad)
            order = np.lexsort((i, k))
            pairs = [(dates[k[j]], columns[i[j]]) for j in order]
            raise ValueError(f"{what}: NaN or infinite weights at (date, instrument) {show(pairs)}")


def weight_columns(columns: pd.Index, instruments: pd.Index, what: str) -> np.ndarray:
    """Positions of weight columns among the price instruments; unknown ones raise."""
    if not columns.is_unique:
        raise ValueError(
            f"{what}: duplicate instruments {show(columns[columns.duplicated()].unique())}"
        )
    if columns.equals(instruments):
        return np.arange(len(instruments))
    col_idx = instruments.get_indexer(columns)
    if (col_idx < 0).any():
        raise ValueError(f"{what}: instruments not in prices: {show(columns[col_idx < 0])}")
    return col_idx


def decision_rows(
    index: pd.Index, sessions: pd.DatetimeIndex, config: BacktestConfig, what: str
) -> tuple[int, int, np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """Rows [lo, hi) of a decision index inside the simulated sessions, their session
    positions, the mask of rows acted upon (rebalance sessions), and their dates.

    Rows before the first or after the last session belong to other calls and are ignored;
    a row inside that is not a session raises."""
    index = check_date_index(index, what)
    i8 = index.asi8
    lo = int(np.searchsorted(i8, sessions[0].value, side="left"))
    hi = int(np.searchsorted(i8, sessions[-1].value, side="right"))
    window = index[lo:hi]
    pos = np.searchsorted(sessions.asi8, window.asi8)
    bad = sessions.asi8[np.minimum(pos, len(sessions) - 1)] != window.asi8
    if bad.any():
        raise ValueError(
            f"{what}: decision dates not in the price index / not {config.calendar} sessions: "
            f"{show(window[bad])}"
        )
    if config.rebalance_frequency == "daily":
        keep = np.ones(len(window), dtype=bool)
    else:
        keep = cal.rebalance_mask(config.calendar, config.rebalance_frequency, window.asi8)
        if len(window) and not keep.any():
            warnings.warn(
                f"{what}: none of the {len(window)} decision row(s) falls on a "
                f"{config.rebalance_frequency} rebalance session of {config.calendar}; "
                "nothing is traded",
                stacklevel=5,
            )
    return lo, hi, pos.astype(np.int64), keep, window


def gross_weights(w: np.ndarray) -> np.ndarray:
    """sum(abs(w)) over instruments (axis -2) of (..., N, K) weights; NaN/inf propagate."""
    if w.size and np.fmin.reduce(w, axis=None) >= 0:
        return np.add.reduce(w, axis=-2)  # long-only: no abs() copy
    return np.add.reduce(np.abs(w), axis=-2)


def leverage_factor(gross: np.ndarray, max_leverage: float) -> np.ndarray:
    """Scale factor per decision that brings gross = sum(abs(w)) down to ``max_leverage``;
    1.0 where gross is not above it (a relative tolerance of 1e-12 absorbs rounding)."""
    over = gross > max_leverage * (1.0 + _LEVERAGE_TOLERANCE)
    factor = np.ones_like(gross)
    factor[over] = max_leverage / gross[over]
    return factor


def schedule(
    targets: np.ndarray,
    decision_pos: np.ndarray,
    decision_dates: pd.DatetimeIndex,
    T: int,
    lag: int,
    start_state: EndState | None,
    col_of: dict[str, int],
    instruments: pd.Index,
) -> tuple[np.ndarray, np.ndarray, list[PendingOrder]]:
    """exec_row (session -> target column), targets with start-state pending orders appended,
    and the decisions that execute after the last session (pending for the next call)."""
    exec_row = np.full(T, -1, dtype=np.int64)
    pending_out: list[PendingOrder] = []
    extra = []
    K = targets.shape[1]
    if start_state is not None:
        for order in start_state.pending_orders:
            unknown = [k for k in order.weights if k not in col_of]
            if unknown:
                raise ValueError(
                    f"start_state: pending order of {order.decision_date} names instruments "
                    f"not in prices: {show(unknown)}"
                )
            if order.sessions_ahead >= T:
                pending_out.append(
                    PendingOrder(order.decision_date, order.sessions_ahead - T, order.weights)
                )
                continue
            col = np.zeros(len(instruments))
            for key, value in order.weights.items():
                col[col_of[key]] = value
            exec_row[order.sessions_ahead] = K + len(extra)
            extra.append(col)
    exec_at = decision_pos + lag
    inside = exec_at < T
    clash = exec_row[exec_at[inside]] >= 0
    if clash.any():
        raise ValueError(
            f"weights: decisions {show(decision_dates[inside][clash])} execute on the same "
            "session as a pending order from start_state (was execution_lag changed?)"
        )
    exec_row[exec_at[inside]] = np.flatnonzero(inside)
    late = np.flatnonzero(~inside)
    names = np.asarray(instruments.astype(str), dtype=object) if len(late) else None
    for k in late:
        held = np.flatnonzero(targets[:, k])
        weights = dict(zip(names[held].tolist(), targets[held, k].tolist(), strict=True))
        pending_out.append(PendingOrder(decision_dates[k].date(), int(exec_at[k] - T), weights))
    if extra:
        targets = np.ascontiguousarray(np.column_stack([targets, *extra]))
    return exec_row, targets, pending_out


def _rf_bar(
    config: BacktestConfig, sessions: pd.DatetimeIndex, start_state: EndState | None
) -> np.ndarray:
    """Per-session cash rate: annual rate in force at the start of the bar (the previous
    session) / the calendar's periods a year (252, 365 for 24/7); 0 for the first session of
    a fresh run (no bar precedes it)."""
    T = len(sessions)
    per_year = cal.periods_per_year(config.calendar)
    if isinstance(config.risk_free, float):
        rf = np.full(T, config.risk_free / per_year)
    else:
        first = pd.Timestamp(start_state.date) if start_state is not None else sessions[0]
        prev = pd.DatetimeIndex([first]).append(sessions[:-1])
        rf = config.risk_free_annual(prev) / per_year
    if start_state is None and T:
        rf[0] = 0.0
    return rf


def _check_state(state: EndState, config: BacktestConfig, col_of: dict[str, int]) -> None:
    if state.calendar != config.calendar:
        raise ValueError(
            f"start_state: calendar {state.calendar!r} differs from config.calendar {config.calendar!r}"
        )
    if state.execution_lag != config.execution_lag:
        raise ValueError(
            f"start_state: execution_lag {state.execution_lag} differs from config.execution_lag "
            f"{config.execution_lag}"
        )
    unknown = {k for k, q in state.quantities.items() if q != 0 and k not in col_of}
    unknown |= {k for k in state.open_lots.instrument if k not in col_of}
    if unknown:
        raise ValueError(
            f"start_state: positions in instruments not in prices: {show(sorted(unknown))}"
        )


def _open_trades(state: EndState, col_of: dict[str, int], N: int) -> tuple[np.ndarray, np.ndarray]:
    lots = state.open_lots
    rt_ns = np.full(N, -1, dtype=np.int64)
    rt_f = np.zeros((N, 3))
    codes = np.array([col_of[k] for k in lots.instrument], dtype=np.int64)
    rt_ns[codes] = np.array(lots.entry_date, dtype="datetime64[ns]").astype(np.int64)
    rt_f[codes, 0] = np.abs(np.array(lots.quantity, dtype=np.float64))
    rt_f[codes, 1] = lots.entry_notional
    rt_f[codes, 2] = lots.entry_costs
    return rt_ns, rt_f
