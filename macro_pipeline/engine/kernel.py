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

The fill log is the smallest record that determines everything else: per row instrument,
one code byte, quantity and price (19 bytes; notional = quantity x price and cost =
abs(notional) x cost_rate are recomputed on access with the same operations, so bit for
bit). Code = side (``SIDES``) + 4 x reason (``REASONS``) + 32 x kind, where kind says what
a rebalance fill does to the instrument's open round trip, decided where the position
before and after the fill are known: 0 opens it (from flat), 1 adds to its side, 2
reduces it, 3 closes it (target 0), 4 flips it (closes it and opens the other side).

Round trips follow vectorbt's exit-trades convention (average cost) and are built from the
fill log only when asked for (``replay_round_trips``). An instrument's open round trip
(rt_ns = the session its position opened from flat; rt_f columns = units, entry notional,
entry costs) grows with every fill on its side. A fill against it closes units at the
average entry price: one round trip per closing fill, with quantity = units closed (>0
long), pnl = direction x (units x exit price - entry notional closed) - entry costs pro
rata - exit costs, and return = pnl / entry notional closed. A universe exit closes the
whole round trip. What is left keeps its average (the three sums scale down); a flip closes
everything and opens the rest at the fill price with the rest of the fill's cost. Splits
multiply units.

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
_PER_DAY = 1.0 / (86_400 * 10**9)


@njit(cache=True, nogil=True, error_model="numpy")
def run_portfolio(
    price,  # (N, T) float64, NaN = no price
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
    f_code,  # (cap,) uint8 out: side + 4 x reason + 32 x kind (module docstring)
    f_q,  # (cap,) float64 out: quantity (signed units; 0 = no trade)
    f_p,  # (cap,) float64 out: price (NaN = no trade)
    t_lo,  # simulate sessions t_lo <= t < t_hi
    t_hi,
    nf,  # log rows already written
):
    """Simulate sessions [t_lo, t_hi) of one portfolio; returns (log rows written in all,
    cash, number of prices that are not NaN and not finite > 0 - the caller rejects the
    input when it is nonzero)."""
    N = price.shape[0]
    has_universe = universe.shape[0] > 0
    has_pos = pos.shape[0] > 0
    n_bad = 0
    p_t = np.empty(N)  # this session's prices, contiguous (price is instrument-major)
    for t in range(t_lo, t_hi):
        # 1. splits at the open of t
        for e in range(split_ptr[t], split_ptr[t + 1]):
            i = split_i[e]
            r = split_ratio[e]
            qty[i] = qty[i] * r
            last_p[i] = last_p[i] / r
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
                        f_q[nf] = -q
                        f_p[nf] = px
                        nf += 1
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
                    f_q[nf] = 0.0
                    f_p[nf] = np.nan
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
                            f_q[nf] = 0.0
                            f_p[nf] = np.nan
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
                            # what the fill does to the open round trip (module docstring):
                            # 0 opens, 1 adds, 2 reduces, 3 closes, 4 flips. Which one depends
                            # on the data, so it is arithmetic, not branches the CPU would
                            # mispredict: adds = q and cur on one side; closes = target 0.
                            sell = np.uint8(not q > 0.0)
                            long = cur > 0.0
                            adds = np.uint8(not (q > 0.0) ^ long)
                            zero = np.uint8(target == 0.0)
                            flips = np.uint8((target > 0.0) ^ long) & (1 - zero)
                            kind = np.uint8(cur != 0.0) * (adds + (1 - adds) * (2 + zero + 2 * flips))
                            f_i[nf] = i
                            f_code[nf] = sell + 32 * kind  # buy / sell, rebalance
                            f_q[nf] = q
                            f_p[nf] = p
                            nf += 1
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
    return nf, cash, n_bad


@njit(cache=True, nogil=True, error_model="numpy")
def replay_round_trips(
    session_ns,  # (T,) int64 session dates
    f_end,  # the fill log of `run_portfolio`: rows by the end of each session, ...
    f_i,
    f_code,
    f_q,
    f_p,
    split_ptr,  # splits (CSR by session): units of the open round trips scale with them
    split_i,
    split_ratio,
    cost_rate,
    rt_ns,  # (N,) in/out open round trips (module docstring): session opened, ns
    rt_f,  # (N, 3) in/out open round trips: units, entry notional, entry costs
    record,  # False: only the open round trips are updated (no rows written)
    r_i,  # (cap,) out: instrument
    r_entry,  # (cap,) int64 out: entry ns
    r_end,  # (T,) int64 out: round trips written by the end of session t (exit dates)
    r_days,  # (cap,) int32 out: holding days
    r_q,  # (cap,) float64 out: units closed (>0 long)
    r_pnl,  # (cap,) float64 out
    r_ret,  # (cap,) float64 out
    t_lo,  # replay sessions t_lo <= t < t_hi
    t_hi,
    nr,  # round trips already written
):
    """Round trips of the fills of sessions [t_lo, t_hi), from the fill log alone (module
    docstring); returns the round trips written in all. The fill's cost is recomputed as the
    kernel computed it (abs(quantity x price) x cost_rate, the same operations)."""
    lo = f_end[t_lo - 1] if t_lo > 0 else 0
    for t in range(t_lo, t_hi):
        t_ns = session_ns[t]
        for e in range(split_ptr[t], split_ptr[t + 1]):
            rt_f[split_i[e], 0] *= split_ratio[e]  # same notional and costs, more units
        hi = f_end[t]
        for k in range(lo, hi):
            code = f_code[k]
            reason = (code >> 2) & 7
            if reason > 1:
                continue  # no trade
            i = f_i[k]
            q = f_q[k]
            p = f_p[k]
            c = abs(q * p) * cost_rate
            kind = code >> 5
            if reason == 1:
                # universe exit: the whole open round trip closes at the exit price
                direction = 1.0 if q < 0.0 else -1.0
                units = rt_f[i, 0]
                pnl = direction * (units * p - rt_f[i, 1]) - rt_f[i, 2] - c
                if record:
                    r_i[nr] = i
                    r_entry[nr] = rt_ns[i]
                    r_q[nr] = direction * units
                    r_pnl[nr] = pnl
                    r_ret[nr] = pnl / rt_f[i, 1]
                    r_days[nr] = np.int32((t_ns - rt_ns[i]) * _PER_DAY + 0.5)
                nr += 1
                rt_f[i, 0] = 0.0
                rt_f[i, 1] = 0.0
                rt_f[i, 2] = 0.0
                continue
            size = abs(q)
            if kind == 0:  # opens from flat
                rt_ns[i] = t_ns
                rt_f[i, 0] = size
                rt_f[i, 1] = size * p
                rt_f[i, 2] = c
            elif kind == 1:  # adds to the open side
                rt_f[i, 0] = rt_f[i, 0] + size
                rt_f[i, 1] = rt_f[i, 1] + size * p
                rt_f[i, 2] = rt_f[i, 2] + c
            else:  # closes units at the average entry price: reduces (2), closes (3), flips (4)
                flip = kind == 4
                open_units = rt_f[i, 0]
                units = size if kind == 2 else open_units
                frac = units / open_units
                invested = rt_f[i, 1] * frac
                exit_costs = c * (units / size) if flip else c
                direction = 1.0 if q < 0.0 else -1.0
                pnl = direction * (units * p - invested) - rt_f[i, 2] * frac - exit_costs
                if record:
                    r_i[nr] = i
                    r_entry[nr] = rt_ns[i]
                    r_q[nr] = direction * units
                    r_pnl[nr] = pnl
                    r_ret[nr] = pnl / invested
                    # midnight-to-midnight: a float ratio, no 64-bit divide
                    r_days[nr] = np.int32((t_ns - rt_ns[i]) * _PER_DAY + 0.5)
                nr += 1
                if flip:
                    rt_ns[i] = t_ns
                    rt_f[i, 0] = size - units
                    rt_f[i, 1] = (size - units) * p
                    rt_f[i, 2] = c - exit_costs
                else:
                    keep = 1.0 - frac  # 0.0 when closing everything
                    rt_f[i, 0] = rt_f[i, 0] * keep
                    rt_f[i, 1] = rt_f[i, 1] * keep
                    rt_f[i, 2] = rt_f[i, 2] * keep
        lo = hi
        if record:
            r_end[t] = nr
    return nr


@njit(cache=True, nogil=True, error_model="numpy")
def run_batch(
    price,
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
    no_c = np.zeros(0, dtype=np.uint8)
    no_f = np.zeros(0)
    no_pos = np.zeros((0, 0))
    no_t = np.zeros(0, dtype=np.int64)
    eq = np.empty((1, T))
    qty = np.empty(N)
    last_p = np.empty(N)
    bad = 0
    for s in range(lo, hi):
        qty[:] = 0.0
        last_p[:] = np.nan
        out = run_portfolio(
            price, exec_row, targets[s], universe,
            split_ptr, split_i, split_ratio, div_ptr, div_i, div_amount,
            fund_ptr, fund_i, fund_rate, rf_bar, borrow_rate, cost_rate,
            qty, last_p, cash0, no, no,
            eq, no_pos, no_t, no_i, no_c, no_f, no_f, 0, T, 0,
        )  # fmt: skip
        equity[s, :] = eq[0]
        bad = max(bad, out[2])
    return bad
