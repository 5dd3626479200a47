"""Compiled (numba, cached on disk) portfolio kernels. Pure array code: no pandas, no I/O.

``run_portfolio`` walks the sessions once. Per session t (bar = (close t-1, close t]):

1. splits with ex-date t (at the open): quantity x ratio, last mark / ratio (value
   unchanged);
2. carry over the bar, on the position held since the close of t-1, valued at that close:
   cash interest = cash x rf_bar[t]; borrow = short notional x borrow_rate; funding = sum
   over the bar's settlements of notional x rate (longs pay positive rates); dividends =
   quantity x amount per unit (shorts pay it);
3. marks: last known price <- price[t] where finite; forced exits: a held instrument outside
   the universe at t is sold at its last tradable price (price[t] if any, else the last
   known price);
4. execution (if a decision executes at t): pre-trade equity E = cash + sum(qty x mark);
   target quantity = w x E / price[t]; trade = target - current; cost = abs(trade notional)
   x cost_rate, paid from cash. No price at t, or outside the universe: no trade, a log row
   says why;
5. record: equity = cash + sum(positions), gross and net position notional (positions =
   qty x last mark; the per-instrument panel only when asked for: ``pos``).

Prices are also checked here (the kernel reads every one anyway): a price that is not NaN
and not finite > 0 is counted and the caller rejects the input. ``run_batch`` runs many
weight schedules.

Round trips follow vectorbt's exit-trades convention (average cost). An instrument's open
round trip (rt_ns = the session its position opened from flat; rt_f columns = units, entry
notional, entry costs) grows with every fill on its side. A fill against it closes units at
the average entry price: one round trip per closing fill, with quantity = units closed (>0
long), pnl = direction x (units x exit price - entry notional closed) - entry costs pro
rata - exit costs, and return = pnl / entry notional closed.
What is left keeps its average (the three sums scale down); a flip closes everything and
opens the rest at the fill price with the rest of the fill's cost. Splits multiply units.

Arrays are instrument-major where the kernel reads a whole panel (price, targets, universe:
(N, T)), which is the memory layout pandas already holds, so no transposed copy is made.
"""

from __future__ import annotations

import numpy as np
from numba import njit

REASONS: tuple[str, ...] = (
    "rebalance",  # 0: target-weight trade
    "universe_exit",  # 1: forced exit, the instrument left the universe
    "missing_price",  # 2: no trade: no price on the execution session
    "not_in_universe",  # 3: no trade: nonzero target for an instrument outside the universe
    "non_positive_equity",  # 4: no trade at all: pre-trade equity <= 0 (instrument -1)
)
SIDES: tuple[str, ...] = ("buy", "sell", "none")
SERIES: tuple[str, ...] = (
    "equity",
    "cash",
    "gross",
    "net",
    "traded",
    "costs",
    "funding",
    "borrow",
    "interest",
    "dividends",
)
"""Rows of the kernel's ``series`` output, one value per session: equity, cash, gross and net
position notional, traded notional, trading costs, funding paid, borrow paid, interest
received, dividends received."""
N_SERIES = len(SERIES)
FILL_FLOATS = ("quantity", "price", "notional", "cost")
TRIP_FLOATS = ("quantity", "pnl", "return")
_PER_DAY = 1.0 / (86_400 * 10**9)


@njit(cache=True, nogil=True, error_model="numpy")
def run_portfolio(
    price,  # (N, T) float64, NaN = no price
    session_ns,  # (T,) int64 session dates
    exec_row,  # (T,) int64: column of `targets` executed at the close of t, -1 = none
    targets,  # (N, K) float64 target weights (leverage-capped)
    universe,  # (N, T) bool, or (0, 0) = always a member
    split_ptr,  # (T+1,) CSR offsets by session, then instrument and value arrays
    split_i,
    split_ratio,
    div_ptr,
    div_i,
    div_amount,
    fund_ptr,
    fund_i,
    fund_rate,  # one entry per settlement in the bar
    rf_bar,  # (T,) cash interest rate for the bar ending at t
    borrow_rate,  # per-session fee on short notional
    cost_rate,  # cost per unit of traded notional
    qty,  # (N,) in/out quantities
    last_p,  # (N,) in/out last known prices
    cash,  # starting cash
    accrue_first,  # a bar precedes session 0 (continuation)
    record,  # False: only series[0] (equity) is written: no log, no positions
    series,  # (N_SERIES, T) out
    pos,  # (T, N) out notional positions, or (0, 0) = not kept
    f_end,  # (T,) int64 out: log rows written by the end of session t (dates: np.repeat)
    f_i,  # (cap,) int16/int32 out: instrument (-1 = whole portfolio)
    f_code,  # (cap,) int8 out: side (SIDES) + 4 x reason (REASONS); one stream, not two
    f_val,  # (4, cap) float64 out: FILL_FLOATS
    rt_ns,  # (N,) in/out open round trips (module docstring): session opened, ns
    rt_f,  # (N, 3) in/out open round trips: units, entry notional, entry costs
    r_i,  # (cap,) int16/int32 out: round trips, instrument
    r_entry,  # (cap,) int64 out: entry ns
    r_end,  # (T,) int64 out: round trips written by the end of session t (exit dates)
    r_days,  # (cap,) int32 out: holding days
    r_val,  # (3, cap) float64 out: TRIP_FLOATS
    t_lo,  # simulate sessions t_lo <= t < t_hi
    t_hi,
    nf,  # log rows already written
    nr,  # round trips already written
):
    """Simulate sessions [t_lo, t_hi) of one portfolio; returns (log rows written in all,
    round trips written in all, cash, number of prices that are not NaN and not finite > 0 -
    the caller rejects the input when it is nonzero)."""
    N = price.shape[0]
    has_universe = universe.shape[0] > 0
    has_pos = pos.shape[0] > 0
    n_bad = 0
    p_t = np.empty(N)  # this session's prices, contiguous (price is instrument-major)
    sel = np.empty(6)  # branch-free selects of the open trade update (round trips)
    for t in range(t_lo, t_hi):
        t_ns = session_ns[t]
        # 1. splits at the open of t
        for e in range(split_ptr[t], split_ptr[t + 1]):
            i = split_i[e]
            r = split_ratio[e]
            qty[i] = qty[i] * r
            last_p[i] = last_p[i] / r
            if record:
                rt_f[i, 0] *= r  # same notional and costs, more units
        # 2. carry over the bar, on the position held since the previous close
        funding = 0.0
        borrow = 0.0
        interest = 0.0
        dividends = 0.0
        if t > 0 or accrue_first:
            interest = cash * rf_bar[t]
            for e in range(fund_ptr[t], fund_ptr[t + 1]):
                i = fund_i[e]
                if qty[i] != 0.0:
                    funding += qty[i] * last_p[i] * fund_rate[e]
            for e in range(div_ptr[t], div_ptr[t + 1]):
                dividends += qty[div_i[e]] * div_amount[e]
            if borrow_rate != 0.0:
                short = 0.0
                for i in range(N):
                    if qty[i] < 0.0:
                        short -= qty[i] * last_p[i]
                borrow = short * borrow_rate
            cash = cash + interest - funding - borrow + dividends
        # 3. marks, forced exits; positions are recorded here unless trading follows
        k = exec_row[t]
        trading = k >= 0
        traded = 0.0
        costs = 0.0
        held = 0.0
        gross = 0.0
        for i in range(N):
            p = price[i, t]
            p_t[i] = p  # the execution pass reads it here, not with a stride of T again
            if p == p:
                last_p[i] = p
                if not (p > 0.0 and p < np.inf):
                    n_bad += 1
            q = qty[i]
            v = 0.0
            if q != 0.0:
                if has_universe and not universe[i, t]:
                    px = last_p[i]
                    notional = -q * px
                    c = abs(notional) * cost_rate
                    cash -= notional + c
                    traded += abs(notional)
                    costs += c
                    qty[i] = 0.0
                    if record:
                        f_i[nf] = i
                        f_code[nf] = 5 if q > 0.0 else 4  # sell / buy, universe_exit
                        f_val[0, nf] = -q
                        f_val[1, nf] = px
                        f_val[2, nf] = notional
                        f_val[3, nf] = c
                        nf += 1
                        # the whole open round trip closes (module docstring)
                        direction = 1.0 if q > 0.0 else -1.0
                        r_i[nr] = i
                        r_entry[nr] = rt_ns[i]
                        r_val[0, nr] = direction * rt_f[i, 0]
                        r_val[1, nr] = direction * (rt_f[i, 0] * px - rt_f[i, 1]) - rt_f[i, 2] - c
                        r_val[2, nr] = r_val[1, nr] / rt_f[i, 1]
                        r_days[nr] = np.int32((t_ns - rt_ns[i]) * _PER_DAY + 0.5)
                        nr += 1
                        rt_f[i, 0] = 0.0
                        rt_f[i, 1] = 0.0
                        rt_f[i, 2] = 0.0
                else:
                    v = q * last_p[i]
                    held += v
            if not trading:
                if record:
                    gross += abs(v)
                if has_pos:
                    pos[t, i] = v
        # 4. execution
        if trading:
            value = cash + held
            if not value > 0.0:
                if record:
                    f_i[nf] = -1
                    f_code[nf] = 2 + 4 * 4  # none, non_positive_equity
                    f_val[0, nf] = 0.0
                    f_val[1, nf] = np.nan
                    f_val[2, nf] = 0.0
                    f_val[3, nf] = 0.0
                    nf += 1
                for i in range(N):
                    v = qty[i] * last_p[i] if qty[i] != 0.0 else 0.0
                    gross += abs(v)
                    if has_pos:
                        pos[t, i] = v
            else:
                held = 0.0
                for i in range(N):
                    w = targets[i, k]
                    cur = qty[i]
                    if w == 0.0 and cur == 0.0:
                        if has_pos:
                            pos[t, i] = 0.0
                        continue
                    p = p_t[i]
                    reason = -1
                    if has_universe and not universe[i, t]:
                        reason = 3
                    elif not p == p:
                        reason = 2
                    if reason >= 0:
                        v = cur * last_p[i] if cur != 0.0 else 0.0
                        held += v
                        if record:
                            f_i[nf] = i
                            f_code[nf] = 2 + 4 * reason  # none
                            f_val[0, nf] = 0.0
                            f_val[1, nf] = np.nan
                            f_val[2, nf] = 0.0
                            f_val[3, nf] = 0.0
                            nf += 1
                            gross += abs(v)
                        if has_pos:
                            pos[t, i] = v
                        continue
                    target = w * value / p
                    q = target - cur
                    if q != 0.0:
                        notional = q * p
                        c = abs(notional) * cost_rate
                        cash -= notional + c
                        traded += abs(notional)
                        costs += c
                        qty[i] = target
                        if record:
                            f_i[nf] = i
                            f_code[nf] = 0 if q > 0.0 else 1  # buy / sell, rebalance
                            f_val[0, nf] = q
                            f_val[1, nf] = p
                            f_val[2, nf] = notional
                            f_val[3, nf] = c
                            nf += 1
                            # round trips (module docstring); written out inline because a
                            # numba call with array arguments costs more than this work
                            size = abs(q)
                            if cur == 0.0:
                                rt_ns[i] = t_ns
                                rt_f[i, 0] = size
                                rt_f[i, 1] = size * p
                                rt_f[i, 2] = c
                            else:
                                # Adding to the open side or reducing it depends on the data
                                # (an unpredictable branch stalls the pass): the closing
                                # arithmetic always runs, its round trip row is always written
                                # and kept (nr advances) only when the fill closes units, and
                                # the open trade is updated by an indexed select.
                                closing = np.int64(q > 0.0) ^ np.int64(cur > 0.0)
                                open_units = rt_f[i, 0]
                                flip = target != 0.0 and (target > 0.0) != (cur > 0.0)
                                units = size if target != 0.0 and not flip else open_units
                                frac = units / open_units
                                invested = rt_f[i, 1] * frac
                                exit_costs = c * (units / size) if flip else c
                                direction = 1.0 if cur > 0.0 else -1.0
                                pnl = (
                                    direction * (units * p - invested)
                                    - rt_f[i, 2] * frac
                                    - exit_costs
                                )
                                r_i[nr] = i
                                r_entry[nr] = rt_ns[i]
                                r_val[0, nr] = direction * units
                                r_val[1, nr] = pnl
                                r_val[2, nr] = pnl / invested
                                # midnight-to-midnight: a float ratio, no 64-bit divide
                                r_days[nr] = np.int32((t_ns - rt_ns[i]) * _PER_DAY + 0.5)
                                nr += closing
                                if flip:
                                    rt_ns[i] = t_ns
                                    rt_f[i, 0] = size - units
                                    rt_f[i, 1] = (size - units) * p
                                    rt_f[i, 2] = c - exit_costs
                                else:
                                    keep = 1.0 - frac  # 0.0 when closing everything
                                    sel[0] = rt_f[i, 0] + size
                                    sel[1] = rt_f[i, 0] * keep
                                    sel[2] = rt_f[i, 1] + size * p
                                    sel[3] = rt_f[i, 1] * keep
                                    sel[4] = rt_f[i, 2] + c
                                    sel[5] = rt_f[i, 2] * keep
                                    rt_f[i, 0] = sel[closing]
                                    rt_f[i, 1] = sel[2 + closing]
                                    rt_f[i, 2] = sel[4 + closing]
                    v = target * p
                    held += v
                    if record:
                        gross += abs(v)
                    if has_pos:
                        pos[t, i] = v
        # 5. record
        series[0, t] = cash + held
        if record:
            series[1, t] = cash
            series[2, t] = gross
            series[3, t] = held
            series[4, t] = traded
            series[5, t] = costs
            series[6, t] = funding
            series[7, t] = borrow
            series[8, t] = interest
            series[9, t] = dividends
            f_end[t] = nf
            r_end[t] = nr
    return nf, nr, cash, n_bad


@njit(cache=True, nogil=True, error_model="numpy")
def run_batch(
    price,
    session_ns,
    exec_row,
    targets,  # (S, N, K)
    universe,
    split_ptr,
    split_i,
    split_ratio,
    div_ptr,
    div_i,
    div_amount,
    fund_ptr,
    fund_i,
    fund_rate,
    rf_bar,
    borrow_rate,
    cost_rate,
    cash0,
    no,  # False (a variable, so the callee's signature is the one `simulate` compiles)
    equity,  # (S, T) out
    lo,  # schedules lo <= s < hi; batches run in parallel threads (no GIL held)
    hi,
):
    """``run_portfolio`` (equity only) for weight schedules s in [lo, hi) sharing prices,
    events and costs; returns the number of bad prices seen."""
    N, T = price.shape
    no_i = np.zeros(0, dtype=np.int16)  # the instrument-code width `simulate` uses
    no_d = np.zeros(0, dtype=np.int32)
    no_c = np.zeros(0, dtype=np.int8)
    no_f = np.zeros((0, 0))
    no_t = np.zeros(0, dtype=np.int64)
    eq = np.empty((1, T))
    qty = np.empty(N)
    last_p = np.empty(N)
    bad = 0
    for s in range(lo, hi):
        qty[:] = 0.0
        last_p[:] = np.nan
        out = run_portfolio(
            price, session_ns, exec_row, targets[s], universe,
            split_ptr, split_i, split_ratio, div_ptr, div_i, div_amount,
            fund_ptr, fund_i, fund_rate, rf_bar, borrow_rate, cost_rate,
            qty, last_p, cash0, no, no,
            eq, no_f, no_t, no_i, no_c, no_f, no_t, no_f, no_i, no_t, no_t, no_d, no_f,
            0, T, 0, 0,
        )  # fmt: skip
        equity[s, :] = eq[0]
        bad = max(bad, out[3])
    return bad
