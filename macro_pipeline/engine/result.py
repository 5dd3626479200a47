"""`BacktestResult`: the outputs of one `simulate` call, built lazily from kernel arrays.

The kernel fills flat numpy arrays; each pandas view (series, fill log, round trips, end
state, metrics) is built in bulk on first access and cached.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from macro_pipeline.engine.config import BacktestConfig
from macro_pipeline.engine.inputs import Prepared
from macro_pipeline.engine.kernel import N_SERIES, REASONS, SERIES, SIDES, run_portfolio
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
        trips: tuple[np.ndarray, ...],
        n_trips: int,
        open_trades: tuple[np.ndarray, np.ndarray],
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
        # log / trips: (rows by the end of each session, instrument, codes, values) and
        # (instrument, entry ns, rows by the end of each session, days, values)
        self._log_end, self._trip_end = log[0], trips[2]
        self._log = (None, *(a[..., :n_log] for a in log[1:]))
        self._trips = (trips[0][:n_trips], trips[1][:n_trips], None,
                       *(a[..., :n_trips] for a in trips[3:]))  # fmt: skip
        self._open_trades = open_trades
        self._final_qty = final_qty
        self._final_last_p = final_last_p
        self._final_cash = final_cash
        # (session position, qty, last_p, cash, (rt_ns, rt_f), pending orders) per checkpoint
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
        none = np.empty(0, np.int64)
        inst, codes, vals = (a[..., :0] for a in self._log[1:])
        r_i, r_entry = (a[:0] for a in self._trips[:2])
        r_days, r_val = (a[..., :0] for a in self._trips[3:])
        run_portfolio(
            *p.kernel_inputs(), p.qty0.copy(), p.last_p0.copy(), p.cash0, p.accrue_first, False,
            np.empty((N_SERIES, T)), pos, none, *map(np.ascontiguousarray, (inst, codes, vals)),
            p.rt_ns0.copy(), p.rt_f0.copy(),
            *map(np.ascontiguousarray, (r_i, r_entry)), none,
            *map(np.ascontiguousarray, (r_days, r_val)), 0, T, 0, 0,
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
        """The kernel's combined log code (side + 4 x reason) split into int8 codes."""
        code = self._log[2]
        return code & 3, code >> 2

    @cached_property
    def fills(self) -> pd.DataFrame:
        _, inst, _, vals = self._log
        side, reason = self._side_reason
        return pd.DataFrame(
            {
                "date": self._log_ns.view("datetime64[ns]"),
                "instrument": self._instrument_col(inst),
                "side": pd.Categorical.from_codes(side, categories=SIDES, validate=False),
                "quantity": vals[0],
                "price": vals[1],
                "notional": vals[2],
                "cost": vals[3],
                "reason": pd.Categorical.from_codes(reason, categories=REASONS, validate=False),
            },
            copy=False,
        )

    def _instrument_col(self, codes: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(codes, categories=self.instruments, validate=False)

    @cached_property
    def round_trips(self) -> pd.DataFrame:
        inst, entry, _, days, vals = self._trips
        return pd.DataFrame(
            {
                "instrument": self._instrument_col(inst),
                "entry_date": entry.view("datetime64[ns]"),
                "exit_date": self._row_dates(self._trip_end).view("datetime64[ns]"),
                "holding_days": days,
                "quantity": vals[0],
                "pnl": vals[1],
                "return": vals[2],
            },
            copy=False,
        )

    @cached_property
    def skipped(self) -> pd.DataFrame:
        _, inst, _, _ = self._log
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
            self._open_trades, self._prep.pending_out,
        )  # fmt: skip

    @cached_property
    def states(self) -> dict[pd.Timestamp, EndState]:
        """`EndState` at the close of each ``checkpoints`` session given to `simulate`
        (ascending; empty without checkpoints): exactly the ``end_state`` of a run ending
        there."""
        return {self.sessions[t]: self._state(t, *snap) for t, *snap in self._snapshots}

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
