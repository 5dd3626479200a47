"""`BacktestResult`: the outputs of one `simulate` call, built lazily from kernel arrays.

The kernel fills flat numpy arrays (the series and the fill log); each pandas view (series,
fill log, round trips, end state, metrics) is built in bulk on first access and cached. The
round trips and the open round trips of the end state are replayed from the fill log when
first asked for (``kernel.replay_round_trips``), so a caller who never asks pays nothing.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from macro_pipeline.engine.config import BacktestConfig
from macro_pipeline.engine.inputs import Prepared, readonly
from macro_pipeline.engine.kernel import (
    N_SERIES,
    REASONS,
    SERIES,
    SIDES,
    replay_round_trips,
    run_portfolio,
)
from macro_pipeline.engine.metrics import compute_metrics
from macro_pipeline.engine.state import EndState, OpenLots
from macro_pipeline.engine.version import ENGINE_VERSION

_NO_TRADE = 2  # reason codes >= this are no-trade log rows


class BacktestResult:
    """Outputs of `simulate` on sessions ``sessions`` (index of every series below).

    Series and frames (money in the portfolio currency, notional = quantity x price):
    - ``equity`` = ``cash`` + ``positions.sum(axis=1)`` at every session close;
      ``returns`` = equity / previous equity - 1 (the first relative to the initial capital or
      the start state's equity).
    - ``positions``: notional per instrument (sessions x instruments), marked at the last
      known price; ``exposure``: ``gross`` = sum(abs(positions)) / equity, ``net`` =
      sum(positions) / equity.
    - ``drawdown``: equity / running peak - 1 (<= 0; the peak includes the start state's).
    - ``turnover``: traded notional / equity at the same close (both sides counted).
    - ``costs``: trading costs paid; ``funding``: perpetual funding paid (negative =
      received); ``cashflows``: costs, funding, borrow (paid), interest, dividends (received).
    - ``fills``: one row per trade and per no-trade event: date, instrument, side
      (buy/sell/none), quantity (signed units), price, notional (signed), cost, reason
      (``kernel.REASONS``: rebalance, universe_exit; no trade: missing_price,
      not_in_universe, non_positive_equity).
    - ``round_trips``: vectorbt's exit-trades convention (average cost, see
      the ``kernel`` module docstring): one row per fill that closes units, in fill order: instrument,
      entry_date (the session the position was opened from flat), exit_date, holding_days
      (calendar days between them), quantity (units closed, >0 for a long round trip), pnl
      (units x (exit - average entry price), signed by direction, net of the entry costs
      pro rata and the exit costs; carry - dividends, funding, borrow, interest - is in
      equity, not here), return (pnl / entry notional closed). Positions still open are in
      ``end_state.open_lots``.
    - ``skipped``: no-trade log: the no-trade fill rows plus portfolio-level events
      (``leverage_scaled``: a decision row scaled down, value = the scale factor).
    - ``end_state``: `EndState` to continue from; ``states`` / ``state_at(session)``: the
      `EndState` at the close of each checkpoint session (``simulate(checkpoints=...)``);
      ``metrics``: `compute_metrics` output; ``pnl_attribution(start, end)``: P&L by
      instrument (price, funding, dividends, borrow, costs; interest on cash) adding up exactly
      to the equity change.
    """

    def __init__(
        self,
        config: BacktestConfig,
        prep: Prepared,
        series: np.ndarray,
        log: tuple[np.ndarray, ...],
        n_log: int,
        final_qty: np.ndarray,
        final_last_p: np.ndarray,
        final_cash: float,
        snapshots: tuple = (),
    ) -> None:
        self.config = config
        self.sessions: pd.DatetimeIndex = prep.sessions
        self.instruments: pd.Index = prep.instruments
        self._prep = prep
        self._series = series
        # the fill log: rows by the end of each session, then instrument, code, quantity, price
        self._log_end = log[0]
        self._log = tuple(a[:n_log] for a in log[1:])
        self._final_qty = final_qty
        self._final_last_p = final_last_p
        self._final_cash = final_cash
        # (session position, qty, last_p, cash, pending orders) per checkpoint
        self._snapshots = snapshots

    def __repr__(self) -> str:
        s = self.sessions
        return (
            f"BacktestResult({s[0].date()}..{s[-1].date()}, {len(s)} sessions, "
            f"{len(self.instruments)} instruments, final equity {self._series[0, -1]:.2f})"
        )

    def _s(self, name: str) -> pd.Series:
        return pd.Series(self._series[SERIES.index(name)], index=self.sessions, name=name)

    @cached_property
    def equity(self) -> pd.Series:
        return self._s("equity")

    @cached_property
    def cash(self) -> pd.Series:
        return self._s("cash")

    @property
    def final_value(self) -> float:
        return float(self._series[0, -1])

    @cached_property
    def returns(self) -> pd.Series:
        eq = self._series[0]
        prev = np.empty_like(eq)
        prev[0] = self._prep.prev_equity
        prev[1:] = eq[:-1]
        return pd.Series(eq / prev - 1.0, index=self.sessions, name="returns")

    @cached_property
    def positions(self) -> pd.DataFrame:
        """Built on first use by running the kernel again with the positions panel switched
        on (same arithmetic, so the same numbers bit for bit; the first run keeps only the
        gross and net sums)."""
        p = self._prep
        T, N = len(self.sessions), len(self.instruments)
        pos = np.empty((T, N))
        no_log = (np.empty(0, np.int64), *(a[:0] for a in self._log))
        run_portfolio(
            *p.kernel_inputs(), p.qty0.copy(), p.last_p0.copy(), p.cash0, p.accrue_first, False,
            np.empty((N_SERIES, T)), pos, *no_log, 0, T, 0,
        )  # fmt: skip
        return pd.DataFrame(pos, index=self.sessions, columns=self.instruments, copy=False)

    @cached_property
    def exposure(self) -> pd.DataFrame:
        eq = self._series[0]
        gross = self._series[SERIES.index("gross")] / eq
        net = self._series[SERIES.index("net")] / eq
        return pd.DataFrame({"gross": gross, "net": net}, index=self.sessions)

    @cached_property
    def drawdown(self) -> pd.Series:
        eq = self._series[0]
        peak = np.maximum.accumulate(np.maximum(eq, self._prep.hwm0))
        return pd.Series(eq / peak - 1.0, index=self.sessions, name="drawdown")

    @cached_property
    def turnover(self) -> pd.Series:
        eq = self._series[0]
        return pd.Series(
            self._series[SERIES.index("traded")] / eq, index=self.sessions, name="turnover"
        )

    @cached_property
    def costs(self) -> pd.Series:
        return self._s("costs")

    @cached_property
    def funding(self) -> pd.Series:
        return self._s("funding")

    @cached_property
    def cashflows(self) -> pd.DataFrame:
        names = ("costs", "funding", "borrow", "interest", "dividends")
        return pd.DataFrame({n: self._series[SERIES.index(n)] for n in names}, index=self.sessions)

    def _row_dates(self, end: np.ndarray) -> np.ndarray:
        """Session date (ns) of each log row / round trip, from the per-session row counts."""
        counts = np.empty_like(end)
        counts[0] = end[0]
        np.subtract(end[1:], end[:-1], out=counts[1:])
        return np.repeat(self._prep.sessions_ns, counts)

    @cached_property
    def _log_ns(self) -> np.ndarray:
        return self._row_dates(self._log_end)

    @cached_property
    def _side_reason(self) -> tuple[np.ndarray, np.ndarray]:
        """The kernel's log code (side + 4 x reason + 32 x kind) split into int8 codes."""
        code = self._log[1].view(np.int8)
        return code & 3, (code >> 2) & 7

    @cached_property
    def fills(self) -> pd.DataFrame:
        """Notional and cost are recomputed here exactly as the kernel computed them
        (quantity x price; abs(notional) x cost rate), so they equal the cash it moved bit
        for bit; no-trade rows have 0 for both."""
        inst, _, quantity, price = self._log
        side, reason = self._side_reason
        notional = np.multiply(quantity, price)
        no_trade = np.flatnonzero(side == SIDES.index("none"))
        notional[no_trade] = 0.0
        cost = np.abs(notional)
        cost *= self._prep.cost_rate
        return pd.DataFrame(
            {
                "date": self._log_ns.view("datetime64[ns]"),
                "instrument": self._instrument_col(inst),
                "side": pd.Categorical.from_codes(side, categories=SIDES, validate=False),
                "quantity": quantity,
                "price": price,
                "notional": notional,
                "cost": cost,
                "reason": pd.Categorical.from_codes(reason, categories=REASONS, validate=False),
            },
            copy=False,
        )

    def _instrument_col(self, codes: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(codes, categories=self.instruments, validate=False)

    def _replay(self, record: bool) -> tuple:
        """Replay the fill log through ``kernel.replay_round_trips`` in the checkpoint
        segments: (round trip arrays or None, open round trips at the end, open round trips
        at each checkpoint). ``record=False`` updates the open round trips only."""
        p = self._prep
        T = len(self.sessions)
        inst, code, quantity, price = self._log
        rt_ns, rt_f = p.rt_ns0.copy(), p.rt_f0.copy()
        if record:
            # one row per closing fill: universe exits, and rebalance fills of kind >= 2
            n = int(np.count_nonzero((code & 0b11111100) == 4)) + int(
                np.count_nonzero((code >= 64) & ((code & 0b00011100) == 0))
            )
            out = (np.empty(n, inst.dtype), np.empty(n, np.int64), np.empty(T, np.int64),
                   np.empty(n, np.int32), np.empty(n), np.empty(n), np.empty(n))  # fmt: skip
        else:
            out = (inst[:0], np.empty(0, np.int64), np.empty(0, np.int64),
                   np.empty(0, np.int32), *(quantity[:0] for _ in range(3)))  # fmt: skip
        log = tuple(map(readonly, (self._log_end, inst, code, quantity, price)))
        splits = tuple(map(readonly, (p.split_ptr, p.split_i, p.split_ratio)))
        stops = [snap[0] for snap in self._snapshots]
        at: list[tuple[np.ndarray, np.ndarray]] = []
        nr, lo = 0, 0
        for hi in [*(b + 1 for b in stops), T]:
            if hi > lo:
                nr = replay_round_trips(
                    readonly(p.sessions_ns), *log, *splits, p.cost_rate, rt_ns, rt_f, record,
                    *out, lo, hi, nr,
                )  # fmt: skip
            lo = hi
            if hi - 1 in stops and len(at) < len(stops):
                at.append((rt_ns.copy(), rt_f.copy()))
        return (out if record else None), (rt_ns, rt_f), at

    @cached_property
    def _trips(self) -> tuple:
        return self._replay(True)

    @cached_property
    def _open_trades(self) -> tuple:
        """(open round trips at the end, at each checkpoint): from the round trips if they
        were built, else from a replay that writes no rows."""
        trips = self.__dict__.get("_trips") or self._replay(False)
        return trips[1], trips[2]

    @cached_property
    def round_trips(self) -> pd.DataFrame:
        inst, entry, end, days, quantity, pnl, ret = self._trips[0]
        return pd.DataFrame(
            {
                "instrument": self._instrument_col(inst),
                "entry_date": entry.view("datetime64[ns]"),
                "exit_date": self._row_dates(end).view("datetime64[ns]"),
                "holding_days": days,
                "quantity": quantity,
                "pnl": pnl,
                "return": ret,
            },
            copy=False,
        )

    @cached_property
    def skipped(self) -> pd.DataFrame:
        inst = self._log[0]
        ns = self._log_ns
        reason = self._side_reason[1]
        rows = np.flatnonzero(reason >= _NO_TRADE)
        no_trade = pd.DataFrame(
            {
                "date": ns[rows].view("datetime64[ns]"),
                "instrument": np.asarray(self._instrument_col(inst[rows]), dtype=object),
                "reason": np.asarray(REASONS, dtype=object)[reason[rows]],
                "value": np.nan,
            }
        )
        ev = self._prep.events
        if not ev:
            return no_trade
        portfolio = pd.DataFrame(
            {
                "date": self._prep.sessions_ns[[e[0] for e in ev]].view("datetime64[ns]"),
                "instrument": [e[1] for e in ev],
                "reason": [e[2] for e in ev],
                "value": [e[3] for e in ev],
            }
        )
        out = pd.concat([portfolio, no_trade], ignore_index=True)
        return out.sort_values("date", kind="stable", ignore_index=True)

    def _state(
        self,
        t: int,
        qty: np.ndarray,
        last_p: np.ndarray,
        cash: float,
        open_trades: tuple[np.ndarray, np.ndarray],
        pending: tuple,
    ) -> EndState:
        """`EndState` at the close of session position ``t`` from the kernel's arrays then."""
        p = self._prep
        names = np.asarray(self.instruments.astype(str), dtype=object)
        rt_ns, rt_f = open_trades
        o_i = np.flatnonzero(rt_f[:, 0] > 0)
        direction = np.sign(qty[o_i])
        lots = OpenLots(
            instrument=tuple(names[o_i].tolist()),
            entry_date=tuple(rt_ns[o_i].view("datetime64[ns]").astype("datetime64[D]").tolist()),
            quantity=tuple((direction * rt_f[o_i, 0]).tolist()),
            entry_notional=tuple(rt_f[o_i, 1].tolist()),
            entry_costs=tuple(rt_f[o_i, 2].tolist()),
        )
        held = np.flatnonzero(qty)
        marked = np.flatnonzero(np.isfinite(last_p))
        eq = self._series[0, : t + 1]
        return EndState(
            date=self.sessions[t].date(),
            close_ns=int(p.closes_ns[t]),
            cash=float(cash),
            equity=float(eq[-1]),
            high_water_mark=float(max(p.hwm0, eq.max())),
            quantities=dict(zip(names[held].tolist(), qty[held].tolist(), strict=True)),
            last_prices=dict(zip(names[marked].tolist(), last_p[marked].tolist(), strict=True)),
            pending_orders=tuple(pending),
            open_lots=lots,
            execution_lag=self.config.execution_lag,
            calendar=self.config.calendar,
            engine_version=ENGINE_VERSION,
        )

    @cached_property
    def end_state(self) -> EndState:
        return self._state(
            len(self.sessions) - 1, self._final_qty, self._final_last_p, self._final_cash,
            self._open_trades[0], self._prep.pending_out,
        )  # fmt: skip

    @cached_property
    def states(self) -> dict[pd.Timestamp, EndState]:
        """`EndState` at the close of each ``checkpoints`` session given to `simulate`
        (ascending; empty without checkpoints): exactly the ``end_state`` of a run ending
        there."""
        at = self._open_trades[1]
        return {
            self.sessions[t]: self._state(t, qty, last_p, cash, open_trades, pending)
            for (t, qty, last_p, cash, pending), open_trades in zip(self._snapshots, at, strict=True)
        }

    def state_at(self, session: Any) -> EndState:
        """``states[session]``; KeyError (naming it) if it was not a checkpoint."""
        key = pd.Timestamp(session)
        try:
            return self.states[key]
        except KeyError:
            raise KeyError(
                f"{key.date()} is not a checkpoint of this result; checkpoints: "
                f"{[d.date().isoformat() for d in self.states]}"
            ) from None

    @cached_property
    def _attribution_panels(self) -> dict[str, np.ndarray]:
        """(T, N) money panels of the per-session P&L of each instrument, from the kernel's own
        rules (see the ``kernel`` docstring, steps 1-5): carry over bar t on the position held
        since the close of t-1, valued at that close; trades at t; marks at t."""
        p = self._prep
        T, N = len(self.sessions), len(self.instruments)
        pos = self.positions.to_numpy(dtype=np.float64)
        qty0 = np.nan_to_num(p.qty0)
        pos_prev = np.vstack([qty0 * np.nan_to_num(p.last_p0), pos[:-1]]) if T else pos
        f = self.fills
        f = f[f["side"].isin(["buy", "sell"])]
        ti = self.sessions.get_indexer(pd.DatetimeIndex(f["date"]))
        ii = self.instruments.get_indexer(f["instrument"].astype(object))
        notional, costs, dq = np.zeros((T, N)), np.zeros((T, N)), np.zeros((T, N))
        np.add.at(notional, (ti, ii), f["notional"].to_numpy(dtype=np.float64))
        np.add.at(costs, (ti, ii), f["cost"].to_numpy(dtype=np.float64))
        np.add.at(dq, (ti, ii), f["quantity"].to_numpy(dtype=np.float64))
        # units held at each close (splits multiply them at the open of their ex-date)
        ratio = np.ones((T, N))
        split_t = np.repeat(np.arange(T), np.diff(p.split_ptr))
        np.multiply.at(ratio, (split_t, p.split_i), p.split_ratio)
        qty = np.empty((T, N))
        held = qty0.copy()
        for t in range(T):  # T steps of N-vectors: cheap next to the kernel
            held = held * ratio[t] + dq[t]
            qty[t] = held
        qty_open = np.vstack([qty0, qty[:-1]]) * ratio if T else qty  # after the splits of t
        accrue = np.ones(T)
        if T and not p.accrue_first:
            accrue[0] = 0.0
        funding = np.zeros((T, N))
        fund_t = np.repeat(np.arange(T), np.diff(p.fund_ptr))
        np.add.at(funding, (fund_t, p.fund_i), pos_prev[fund_t, p.fund_i] * p.fund_rate * accrue[fund_t])
        dividends = np.zeros((T, N))
        div_t = np.repeat(np.arange(T), np.diff(p.div_ptr))
        np.add.at(dividends, (div_t, p.div_i), qty_open[div_t, p.div_i] * p.div_amount * accrue[div_t])
        borrow = np.clip(-pos_prev, 0.0, None) * p.borrow_rate * accrue[:, None]
        cash_prev = np.r_[p.cash0, self._series[SERIES.index("cash")][:-1]][:T]
        interest = cash_prev * p.rf_bar * accrue
        return {"price": pos - pos_prev - notional, "funding": -funding, "dividends": dividends,
                "borrow": -borrow, "costs": -costs, "interest": interest}

    def pnl_attribution(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """P&L by instrument over the sessions [start, end] (default: all), in money, adding up
        exactly (to rounding) to the equity change over them: one row per instrument with
        ``price`` (change in position value less the notional traded: the mark-to-market gain),
        ``funding`` (perpetual funding received, negative when paid), ``dividends`` (received;
        shorts pay), ``borrow`` (short fee, negative), ``costs`` (trading costs, negative) and
        ``total``; plus a row ``cash`` with the ``interest`` earned on cash. The columns sum
        to ``equity[end] - equity[before start]`` (the start state's equity for the first
        session)."""
        panels = self._attribution_panels
        mask = np.ones(len(self.sessions), bool)
        if start is not None:
            mask &= self.sessions >= pd.Timestamp(start)
        if end is not None:
            mask &= self.sessions <= pd.Timestamp(end)
        cols = ("price", "funding", "dividends", "borrow", "costs")
        out = pd.DataFrame({c: panels[c][mask].sum(axis=0) for c in cols}, index=self.instruments.astype(object))
        out["interest"] = 0.0
        out.loc["cash"] = [0.0] * len(cols) + [float(panels["interest"][mask].sum())]
        out["total"] = out.sum(axis=1)
        out.index.name = "instrument"
        return out

    def pnl_attribution_records(self, windows: list[tuple[Any, Any]]) -> list[dict[str, dict[str, float]]]:
        """``pnl_attribution`` of each window [start, end], as records: instrument (and ``cash``)
        -> {price, funding, dividends, borrow, costs, interest, total}, rows that are all zero
        left out. The same sums as ``pnl_attribution`` (the same rows added in the same order),
        without a DataFrame per window: a pipeline stretch stores hundreds of months at once."""
        panels = self._attribution_panels
        cols = ("price", "funding", "dividends", "borrow", "costs")
        names = [str(i) for i in self.instruments]
        out = []
        for start, end in windows:
            a = int(self.sessions.searchsorted(pd.Timestamp(start), "left"))
            b = int(self.sessions.searchsorted(pd.Timestamp(end), "right"))
            sums = np.column_stack([panels[c][a:b].sum(axis=0) for c in cols] + [np.zeros(len(names))])
            cash = np.array([[0.0] * len(cols) + [float(panels["interest"][a:b].sum())]])
            table = np.vstack([sums, cash])
            table = np.column_stack([table, table.sum(axis=1)])
            keep = np.abs(table[:, :-1]).sum(axis=1) > 0
            out.append({name: dict(zip((*cols, "interest", "total"), map(float, row), strict=True))
                        for name, row, k in zip([*names, "cash"], table, keep, strict=True) if k})
        return out

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """`compute_metrics` on ``returns`` with ``round_trips``, ``exposure``, ``turnover``,
        annualised with the run's calendar; Sharpe/Sortino are in excess of the cash rate the
        run used (per session)."""
        return compute_metrics(
            self.returns,
            self.round_trips,
            calendar=self.config.calendar,
            risk_free=self._prep.rf_bar,
            exposure=self.exposure,
            turnover=self.turnover,
        )
