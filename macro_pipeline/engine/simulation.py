"""`simulate` (one portfolio, full result) and `simulate_many` (a batched weight sweep).

Timing contract (DESIGN.md section 2): sessions are the rows of ``prices`` that are sessions
of ``config.calendar`` within [config.start, config.end]. A weights row dated at session t
holds target weights decided with data known at the close of t; it executes at the close of
session t + config.execution_lag (counted in those sessions). Only rows on rebalance sessions
are acted upon (``config.rebalance_frequency``); between them no trades happen and positions
drift with prices. A decision whose execution falls after the last session is carried in
``end_state.pending_orders``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from macro_pipeline.engine.config import BacktestConfig
from macro_pipeline.engine.inputs import (
    check_finite_weights,
    decision_rows,
    gross_weights,
    leverage_factor,
    prepare,
    readonly,
    reject_bad_prices,
    schedule,
    weight_columns,
)
from macro_pipeline.engine.kernel import N_SERIES, run_batch, run_portfolio
from macro_pipeline.engine.result import BacktestResult
from macro_pipeline.engine.state import EndState, PendingOrder
from macro_pipeline.engine.validation import show


def simulate(
    prices: pd.DataFrame,
    weights: pd.DataFrame | None,
    config: BacktestConfig,
    *,
    funding: pd.DataFrame | None = None,
    dividends: pd.DataFrame | None = None,
    splits: pd.DataFrame | None = None,
    universe: pd.DataFrame | None = None,
    start_state: EndState | None = None,
    checkpoints: Sequence | None = None,
) -> BacktestResult:
    """Simulate a target-weight portfolio over the sessions of ``prices``.

    - ``prices``: sessions x instruments, tz-naive normalised DatetimeIndex, prices > 0, NaN =
      no price that session (no trade; marked at the last known price). Unadjusted prices if
      ``splits``/``dividends`` are given, else adjusted ones (never both: that double counts).
    - ``weights``: decision dates x instruments (columns a subset of ``prices``'; absent
      instrument = weight 0), fraction of pre-trade equity per instrument, negative = short.
      At execution, target quantity = w x pre-trade equity / price; the trade is the
      difference and its cost (abs(notional) x cost_rate) is paid from cash after it, so a
      portfolio with weights summing to 1 ends the session with cash = -costs (vectorbt's
      ``targetpercent`` convention). Cash may go negative (leverage); it then pays
      ``risk_free``. Instruments are treated as fully paid (a perpetual's notional is
      carried like a spot position; its funding replaces financing, so use risk_free=0
      for a perp-only book).
    - ``funding``: columns ts (tz-aware), instrument, rate (per settlement, decimal). Every
      settlement with close(t-1) < ts <= close(t) (exchange close times of ``config.calendar``;
      "24/7" closes at 00:00 UTC) is paid on the position held over bar t, valued at the
      close of t-1: payment = notional x rate (longs pay positive rates, shorts receive).
    - ``dividends``: ex_date, instrument, amount (per unit): credited on the ex-date to the
      position held at the previous close (shorts pay). ``splits``: ex_date, instrument,
      ratio (new units per old unit): quantity x ratio before that session's close, value
      unchanged.
    - ``universe``: booleans (sessions x instruments, True = member) or membership intervals
      (columns instrument, from, to; inclusive; to NaT = open; unlisted = never a member).
      A held instrument outside the universe is sold at the close of the first session out,
      at its last tradable price (that session's price, else the last known one); no new
      position is opened outside it.
    - ``start_state``: a previous result's ``end_state`` to continue from (cash, quantities,
      marks, pending orders, open round trips, drawdown peak); only sessions after its date
      run.
    - ``checkpoints``: dates (anything ``pd.Timestamp`` accepts) that must be simulated
      sessions (sessions of ``prices`` in the run's range; else ValueError naming them).
      ``result.states[pd.Timestamp(b)]`` (or ``result.state_at(b)``) is the `EndState` at
      the close of each checkpoint b, exactly (bit for bit) the ``end_state`` of the same
      call ending at b (``config.end=b``), pending orders included; continuing from it with
      ``start_state`` over the sessions after b reproduces the rest of this run. For a
      multi-partition run that must store every partition's end state while simulating the
      range once. The kernel runs in segments between checkpoints (same arithmetic); no
      checkpoints = one pass, as before.

    Raises ValueError, naming dates and instruments, for misaligned or bad input. One
    compiled pass writes the series and the fill log; the round trips (and the open ones in
    the end state) are replayed from the fill log, and pandas views are built, on first
    access.
    """
    prep = prepare(
        prices, weights, config, funding=funding, dividends=dividends, splits=splits,
        universe=universe, start_state=start_state,
    )  # fmt: skip
    N, T = prep.price.shape
    stops = _checkpoint_positions(checkpoints, prep.sessions) if checkpoints is not None else []
    n_exec = int(np.count_nonzero(prep.exec_row >= 0))
    # at most one log row per (session, instrument); np.empty: capacity never written costs
    # address space, not memory. Instrument codes in the width pandas' categoricals use.
    cap = n_exec * max(N, 1) + prep.n_universe_exits
    code = np.int16 if N < 2**15 else np.int32
    series = np.empty((N_SERIES, T))
    # log dates are not stored per row: the kernel writes, per session, how many log rows
    # exist by its end, and the result expands the session dates (np.repeat). Fresh arrays
    # every call, owned by the result: at 19 bytes a row (24 MiB for 1.26 M fills) first
    # touching them costs little, and a call right after another library's allocations
    # measures the same as repeated calls (bench/engine_vs_vectorbt.py, interleaved vs
    # blocks), so no buffer pool (and no aliasing between results to guard against).
    log = (np.empty(T, np.int64), np.empty(cap, code), np.empty(cap, np.uint8), np.empty(cap),
           np.empty(cap))  # fmt: skip
    qty = prep.qty0.copy()
    last_p = prep.last_p0.copy()
    inputs = prep.kernel_inputs()
    no_pos = np.zeros((0, 0))
    snapshots = []
    if not stops:
        n_log, cash, n_bad = run_portfolio(
            *inputs, qty, last_p, prep.cash0, prep.accrue_first, True, series, no_pos, *log,
            0, T, 0,
        )  # fmt: skip
    else:
        # the kernel is resumable: run [lo, b] segments, snapshotting the state at each b
        n_log, cash, n_bad, lo = 0, prep.cash0, 0, 0
        for hi in [*(b + 1 for b in stops), T]:
            if hi > lo:
                n_log, cash, bad = run_portfolio(
                    *inputs, qty, last_p, cash, prep.accrue_first, True, series, no_pos, *log,
                    lo, hi, n_log,
                )  # fmt: skip
                n_bad += bad
            lo = hi
            if hi - 1 in stops and len(snapshots) < len(stops):
                b = hi - 1
                snapshots.append((b, qty.copy(), last_p.copy(), float(cash),
                                  _pending_at(prep, start_state, b, config.execution_lag)))  # fmt: skip
    if n_bad:
        reject_bad_prices(prep.price, prep.sessions, prep.instruments)
    return BacktestResult(
        config, prep, series, log, int(n_log), qty, last_p, float(cash), tuple(snapshots)
    )


def _checkpoint_positions(checkpoints, sessions: pd.DatetimeIndex) -> list[int]:
    """Sorted unique positions in ``sessions`` of the checkpoint dates; ValueError naming
    any that is not one of them."""
    if isinstance(checkpoints, (str, pd.Timestamp)) or not hasattr(checkpoints, "__iter__"):
        checkpoints = [checkpoints]
    try:
        stamps = pd.DatetimeIndex([pd.Timestamp(c) for c in checkpoints])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoints: not dates ({exc})") from exc
    if stamps.tz is not None:
        raise ValueError(f"checkpoints: must be tz-naive dates, got {show(stamps)}")
    pos = sessions.get_indexer(stamps)
    if (pos < 0).any():
        raise ValueError(
            f"checkpoints: not simulated sessions of prices (between {sessions[0].date()} and "
            f"{sessions[-1].date()}): {show(stamps[pos < 0])}"
        )
    return sorted(set(pos.tolist()))


def _pending_at(prep, start_state: EndState | None, b: int, lag: int) -> tuple:
    """The pending orders of a run ending at session position ``b`` (`schedule`'s order:
    the start state's still pending, then decisions made by b executing after it)."""
    out = []
    if start_state is not None:
        for order in start_state.pending_orders:
            if order.sessions_ahead > b:
                out.append(
                    PendingOrder(order.decision_date, order.sessions_ahead - b - 1, order.weights)
                )
    dpos = prep.decision_pos
    late = np.flatnonzero((dpos <= b) & (dpos + lag > b))
    if len(late):
        names = np.asarray(prep.instruments.astype(str), dtype=object)
        for k in late:
            held = np.flatnonzero(prep.targets[:, k])
            weights = dict(zip(names[held].tolist(), prep.targets[held, k].tolist(), strict=True))
            out.append(PendingOrder(prep.sessions[dpos[k]].date(), int(dpos[k] + lag - b - 1),
                                    weights))  # fmt: skip
    return tuple(out)


@dataclass
class SweepResult:
    """Outputs of `simulate_many`: equity per schedule, and full results on demand.

    ``equity_matrix`` is (schedules x sessions); ``equity`` the same as a sessions x
    schedules frame; ``final_value`` the last equity of each schedule.
    """

    sessions: pd.DatetimeIndex
    equity_matrix: np.ndarray
    _prices: pd.DataFrame
    _weights: np.ndarray
    _decision_dates: pd.DatetimeIndex
    _columns: pd.Index
    _config: BacktestConfig
    _extra: dict

    @property
    def final_value(self) -> np.ndarray:
        return self.equity_matrix[:, -1]

    @cached_property
    def equity(self) -> pd.DataFrame:
        return pd.DataFrame(self.equity_matrix.T, index=self.sessions, copy=False)

    def result(self, schedule: int) -> BacktestResult:
        """The full `BacktestResult` of one schedule (re-simulated with `simulate`)."""
        w = pd.DataFrame(self._weights[schedule], index=self._decision_dates, columns=self._columns)
        return simulate(self._prices, w, self._config, **self._extra)


def simulate_many(
    prices: pd.DataFrame,
    weights: Sequence[pd.DataFrame] | np.ndarray,
    config: BacktestConfig,
    *,
    decision_dates: pd.DatetimeIndex | None = None,
    funding: pd.DataFrame | None = None,
    dividends: pd.DataFrame | None = None,
    splits: pd.DataFrame | None = None,
    universe: pd.DataFrame | None = None,
) -> SweepResult:
    """Simulate S weight schedules on the same prices in one batched, parallel call.

    ``weights`` is either a sequence of S frames sharing one index (decision dates) and one
    column set, or an array (S, K, N) with ``decision_dates`` (length K) and N = the price
    columns in order. Semantics are exactly `simulate`'s for each schedule (same timing,
    costs, leverage cap, carry, events, universe); schedules run in parallel across cores
    (threads over batches of schedules; the compiled kernel releases the GIL). Returns equity only; `SweepResult.result(s)` rebuilds a full result.
    """
    if isinstance(weights, np.ndarray):
        if decision_dates is None:
            raise ValueError("simulate_many: decision_dates is required with a weights array")
        array = np.asarray(weights, dtype=np.float64)
        index = pd.DatetimeIndex(decision_dates)
        columns = prices.columns
    else:
        frames = list(weights)
        if not frames:
            raise ValueError("simulate_many: no weight schedules given")
        index, columns = frames[0].index, frames[0].columns
        for k, frame in enumerate(frames):
            if not frame.index.equals(index) or not frame.columns.equals(columns):
                raise ValueError(
                    f"simulate_many: weight schedule {k} has a different index or columns "
                    "from schedule 0; one batch shares its decision dates"
                )
        array = np.stack([f.to_numpy(dtype=np.float64) for f in frames])
    if array.ndim != 3 or array.shape[1] != len(index) or array.shape[2] != len(columns):
        raise ValueError(
            f"simulate_many: weights shape {array.shape} does not match "
            f"(schedules, {len(index)} decision dates, {len(columns)} instruments)"
        )
    extra = dict(funding=funding, dividends=dividends, splits=splits, universe=universe)
    prep = prepare(prices, None, config, **extra)
    N, T = prep.price.shape
    col_idx = weight_columns(pd.Index(columns), prep.instruments, "weights")
    lo, hi, pos, keep, window = decision_rows(index, prep.sessions, config, "weights")
    targets = np.zeros((array.shape[0], N, int(keep.sum())))
    targets[:, col_idx, :] = array[:, lo:hi][:, keep].transpose(0, 2, 1)
    gross = gross_weights(targets)
    if not np.isfinite(gross).all():
        for s in range(targets.shape[0]):
            check_finite_weights(targets[s], window[keep], prep.instruments, f"weights[{s}]")
    factor = leverage_factor(gross, config.max_leverage)
    if (factor < 1.0).any():
        targets *= factor[:, None, :]
    exec_row, _, _ = schedule(
        targets[0], pos[keep], window[keep], T, config.execution_lag, None, {}, prep.instruments
    )
    equity = np.empty((targets.shape[0], T))
    market = prep.kernel_inputs()
    args = (market[0], readonly(exec_row), readonly(targets), *market[3:], prep.cash0, False,
            equity)  # fmt: skip
    S = targets.shape[0]
    cores = min(os.cpu_count() or 1, S)
    edges = np.linspace(0, S, cores + 1).astype(int)
    with ThreadPoolExecutor(max_workers=cores) as pool:  # the kernel releases the GIL
        n_bad = max(pool.map(lambda a, b: run_batch(*args, a, b), edges[:-1], edges[1:]))
    if n_bad:
        reject_bad_prices(prep.price, prep.sessions, prep.instruments)
    return SweepResult(
        prep.sessions, equity, prices, array, index, pd.Index(columns), config, extra
    )


def warm_up(*, batch: bool = True) -> float:
    """Compile (first run after install) or load (from numba's on-disk cache) every kernel and
    build the XNYS calendar, on a tiny input; returns the seconds it took. Call it once at
    install / CI setup so that no user-facing first call pays for compilation. ``batch=False``:
    only the kernels of `simulate` and its result (not `simulate_many`'s)."""
    import time

    from macro_pipeline.engine.calendar import calendar_sessions

    t0 = time.perf_counter()
    idx = calendar_sessions("XNYS")
    idx = idx[idx >= "2021-03-01"][:4]
    prices = pd.DataFrame({"A": [1.0, 2.0, 3.0, 4.0], "B": [2.0, 2.0, 2.0, 2.0]}, index=idx)
    weights = pd.DataFrame({"A": [0.5, -0.5], "B": [0.5, 0.5]}, index=idx[:2])
    cfg = BacktestConfig(start=None, end=None, initial_capital=100.0, execution_lag=1)
    r = simulate(prices, weights, cfg)
    _ = (r.fills, r.round_trips, r.end_state)
    if batch:
        simulate_many(prices, [weights, weights], cfg)
    return time.perf_counter() - t0
