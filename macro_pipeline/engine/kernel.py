"""Compiled (numba) portfolio kernels. Pure array code: no pandas, no I/O.

``run_portfolio`` walks the sessions once. Per session t (bar = (close t-1, close t]):

1. splits with ex-date t (at the open): quantity x ratio, last mark / ratio (value unchanged);
2. carry over the bar, on the position held since the close of t-1 (valued at that close):
   cash interest = cash x rf_bar[t]; borrow = short notional x borrow_rate; funding =
   sum over settlements in the bar of notional x rate (longs pay positive rates); dividends =
   quantity x amount per share (shorts pay it);
3. marks: last known price <- price[t] where the price is finite;
4. forced exits: instruments held but outside the universe at t are sold at their last
   tradable price (price[t] if there is one, else the last known price);
5. execution (if a decision row executes at t): pre-trade equity E = cash + sum(qty x mark);
   target quantity = w x E / price[t]; trade = target - current; cost = abs(trade notional) x
   cost_rate, paid from cash. No price at t or outside the universe: no trade, a log row says why;
6. record: positions (notional = qty x last mark), equity = cash + sum(positions).

Fill log reason codes are in ``REASONS`` (index = code).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

REASONS: tuple[str, ...] = (
    "rebalance",  # 0: target-weight trade
    "universe_exit",  # 1: forced exit, instrument left the universe
    "missing_price",  # 2: no trade: no price on the execution session
    "not_in_universe",  # 3: no trade: nonzero target for an instrument outside the universe
    "non_positive_equity",  # 4: no trade: pre-trade equity <= 0 (instrument -1)
)
R_REBALANCE, R_UNIVERSE_EXIT, R_MISSING_PRICE, R_NOT_IN_UNIVERSE, R_NONPOS_EQUITY = range(5)
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
"""Rows of the kernel's ``series`` output: equity, cash, gross and net exposure (notional),
traded notional, trading costs, funding paid, borrow paid, interest received, dividends
received, one value per session."""
N_SERIES = len(SERIES)


@njit(cache=True, nogil=True)
def run_portfolio(
    price,  # (T, N) float64, NaN = no price
    exec_row,  # (T,) int64: row of `targets` executed at the close of t, -1 = none
    targets,  # (K, N) float64 target weights (already leverage-capped)
    universe,  # (T, N) bool, or shape (0, 0) = every instrument always a member
    split_ptr,  # (T+1,) int64 CSR offsets by session
    split_i,
    split_ratio,
    div_ptr,
    div_i,
    div_amount,
    fund_ptr,
    fund_i,
    fund_rate,  # summed settlement rates per (bar, instrument)
    rf_bar,  # (T,) cash interest rate for the bar ending at t
    borrow_rate,  # per-session fee on short notional
    cost_rate,  # cost per unit traded notional
    qty,  # (N,) in/out quantities
    last_p,  # (N,) in/out last known prices
    cash,  # starting cash
    accrue_first,  # True when a bar precedes session 0 (continuation)
    record,  # False: only equity (series[0]) is written
    series,  # (10, T) float64 out, rows as in SERIES (only row 0 when not record)
    pos,  # (T, N) float64 out notional positions, or (0, 0)
    fill_t,  # fill log out (capacity arrays), or length 0
    fill_i,
    fill_qty,
    fill_price,
    fill_cost,
    fill_reason,
):
    """Simulate one portfolio; returns (number of log rows written, final cash)."""
    T, N = price.shape
    has_universe = universe.shape[0] > 0
    nf = 0
    for t in range(T):
        # 1. splits at the open of t
        for k in range(split_ptr[t], split_ptr[t + 1]):
            i = split_i[k]
            r = split_ratio[k]
            qty[i] = qty[i] * r
            last_p[i] = last_p[i] / r
        # 2. carry over the bar, on the position held since the previous close
        funding = 0.0
        borrow = 0.0
        interest = 0.0
        dividends = 0.0
        if t > 0 or accrue_first:
            interest = cash * rf_bar[t]
            for k in range(fund_ptr[t], fund_ptr[t + 1]):
                i = fund_i[k]
                if qty[i] != 0.0:
                    funding += qty[i] * last_p[i] * fund_rate[k]
            for k in range(div_ptr[t], div_ptr[t + 1]):
                i = div_i[k]
                dividends += qty[i] * div_amount[k]
            if borrow_rate != 0.0:
                short = 0.0
                for i in range(N):
                    if qty[i] < 0.0:
                        short -= qty[i] * last_p[i]
                borrow = short * borrow_rate
            cash = cash + interest - funding - borrow + dividends
        # 3-4. marks and forced universe exits
        traded = 0.0
        costs = 0.0
        for i in range(N):
            p = price[t, i]
            if p == p:
                last_p[i] = p
            if has_universe and qty[i] != 0.0 and not universe[t, i]:
                q = -qty[i]
                notional = q * last_p[i]
                c = abs(notional) * cost_rate
                cash -= notional + c
                traded += abs(notional)
                costs += c
                qty[i] = 0.0
                if record:
                    fill_t[nf] = t
                    fill_i[nf] = i
                    fill_qty[nf] = q
                    fill_price[nf] = last_p[i]
                    fill_cost[nf] = c
                    fill_reason[nf] = R_UNIVERSE_EXIT
                    nf += 1
        # 5. execution
        k = exec_row[t]
        if k >= 0:
            value = cash
            for i in range(N):
                if qty[i] != 0.0:
                    value += qty[i] * last_p[i]
            if not value > 0.0:
                if record:
                    fill_t[nf] = t
                    fill_i[nf] = -1
                    fill_qty[nf] = 0.0
                    fill_price[nf] = np.nan
                    fill_cost[nf] = 0.0
                    fill_reason[nf] = R_NONPOS_EQUITY
                    nf += 1
            else:
                for i in range(N):
                    w = targets[k, i]
                    cur = qty[i]
                    if w == 0.0 and cur == 0.0:
                        continue
                    p = price[t, i]
                    reason = -1
                    if has_universe and not universe[t, i]:
                        if w != 0.0:
                            reason = R_NOT_IN_UNIVERSE
                        else:
                            continue
                    elif not p == p:
                        reason = R_MISSING_PRICE
                    if reason >= 0:
                        if record:
                            fill_t[nf] = t
                            fill_i[nf] = i
                            fill_qty[nf] = 0.0
                            fill_price[nf] = np.nan
                            fill_cost[nf] = 0.0
                            fill_reason[nf] = reason
                            nf += 1
                        continue
                    target = w * value / p
                    q = target - cur
                    if q == 0.0:
                        continue
                    notional = q * p
                    c = abs(notional) * cost_rate
                    cash -= notional + c
                    traded += abs(notional)
                    costs += c
                    qty[i] = target
                    if record:
                        fill_t[nf] = t
                        fill_i[nf] = i
                        fill_qty[nf] = q
                        fill_price[nf] = p
                        fill_cost[nf] = c
                        fill_reason[nf] = R_REBALANCE
                        nf += 1
        # 6. record
        gross = 0.0
        net = 0.0
        if record:
            for i in range(N):
                v = 0.0
                if qty[i] != 0.0:
                    v = qty[i] * last_p[i]
                pos[t, i] = v
                gross += abs(v)
                net += v
        else:
            for i in range(N):
                if qty[i] != 0.0:
                    net += qty[i] * last_p[i]
        series[0, t] = cash + net
        if record:
            series[1, t] = cash
            series[2, t] = gross
            series[3, t] = net
            series[4, t] = traded
            series[5, t] = costs
            series[6, t] = funding
            series[7, t] = borrow
            series[8, t] = interest
            series[9, t] = dividends
    return nf, cash


@njit(cache=True, parallel=True)
def run_many(
    price,
    exec_row,
    targets,  # (S, K, N)
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
    equity,  # (S, T) out
):
    """``run_portfolio`` for S weight schedules sharing prices and events, in parallel."""
    S = targets.shape[0]
    T, N = price.shape
    empty_i = np.zeros(0, dtype=np.int32)
    empty_f = np.zeros(0, dtype=np.float64)
    empty_r = np.zeros(0, dtype=np.int8)
    pos = np.zeros((0, 0), dtype=np.float64)
    for s in prange(S):
        qty = np.zeros(N)
        last_p = np.full(N, np.nan)
        eq = np.empty((1, T))
        run_portfolio(
            price, exec_row, targets[s], universe,
            split_ptr, split_i, split_ratio, div_ptr, div_i, div_amount,
            fund_ptr, fund_i, fund_rate, rf_bar, borrow_rate, cost_rate,
            qty, last_p, cash0, False, False,
            eq, pos, empty_i, empty_i, empty_f, empty_f, empty_f, empty_r,
        )  # fmt: skip
        equity[s, :] = eq[0]


@njit(cache=True)
def _grow(a, n):
    out = np.empty(max(2 * a.shape[0], n, 16), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True)
def fifo_round_trips(
    n_instruments,
    session_ns,  # (T,) int64 session dates
    fill_t,
    fill_i,
    fill_qty,
    fill_price,
    fill_cost,
    split_ptr,
    split_i,
    split_ratio,
    lot_i,  # initial open lots (from a start state), oldest first per instrument
    lot_ns,
    lot_qty,
    lot_price,
    lot_cpu,
):
    """Match fills into first-in-first-out lots.

    Every buy (sell) first closes the oldest open short (long) lots of that instrument, one
    round trip per (closing fill, lot) pair, and opens a new lot with what is left. pnl of a
    round trip = signed quantity x (exit price - entry price) - quantity x (entry cost per
    unit + exit cost per unit): price pnl net of both fills' costs, pro rata. Splits scale
    open lots (quantity x ratio, price and cost per unit / ratio).

    Returns (round-trip arrays: instrument, entry_ns, exit_ns, qty, entry price, exit price,
    pnl; open lots: instrument, entry_ns, qty, price, cost per unit).
    """
    T = session_ns.shape[0]
    n_fills = fill_t.shape[0]
    cap = max(16, lot_i.shape[0] + 16)
    l_next = np.full(cap, -1, dtype=np.int64)
    l_qty = np.zeros(cap)
    l_price = np.zeros(cap)
    l_cpu = np.zeros(cap)
    l_ns = np.zeros(cap, dtype=np.int64)
    head = np.full(n_instruments, -1, dtype=np.int64)
    tail = np.full(n_instruments, -1, dtype=np.int64)
    free = np.empty(cap, dtype=np.int64)
    n_free = 0
    n_used = 0

    rcap = max(16, n_fills)
    r_i = np.empty(rcap, dtype=np.int64)
    r_entry = np.empty(rcap, dtype=np.int64)
    r_exit = np.empty(rcap, dtype=np.int64)
    r_qty = np.empty(rcap)
    r_pin = np.empty(rcap)
    r_pout = np.empty(rcap)
    r_pnl = np.empty(rcap)
    nr = 0

    for j in range(lot_i.shape[0]):
        slot = n_used
        n_used += 1
        i = lot_i[j]
        l_qty[slot] = lot_qty[j]
        l_price[slot] = lot_price[j]
        l_cpu[slot] = lot_cpu[j]
        l_ns[slot] = lot_ns[j]
        l_next[slot] = -1
        if tail[i] >= 0:
            l_next[tail[i]] = slot
        else:
            head[i] = slot
        tail[i] = slot

    f = 0
    for t in range(T):
        for k in range(split_ptr[t], split_ptr[t + 1]):
            i = split_i[k]
            r = split_ratio[k]
            s = head[i]
            while s >= 0:
                l_qty[s] *= r
                l_price[s] /= r
                l_cpu[s] /= r
                s = l_next[s]
        while f < n_fills and fill_t[f] == t:
            i = fill_i[f]
            q = fill_qty[f]
            p = fill_price[f]
            if q == 0.0 or i < 0:
                f += 1
                continue
            cpu = fill_cost[f] / abs(q)
            rem = q
            tol = 1e-9 * abs(q)
            while rem != 0.0 and head[i] >= 0 and (l_qty[head[i]] > 0.0) != (rem > 0.0):
                s = head[i]
                lq = l_qty[s]
                closed = min(abs(rem), abs(lq))
                signed = closed if lq > 0.0 else -closed
                if nr == r_i.shape[0]:
                    r_i = _grow(r_i, nr + 1)
                    r_entry = _grow(r_entry, nr + 1)
                    r_exit = _grow(r_exit, nr + 1)
                    r_qty = _grow(r_qty, nr + 1)
                    r_pin = _grow(r_pin, nr + 1)
                    r_pout = _grow(r_pout, nr + 1)
                    r_pnl = _grow(r_pnl, nr + 1)
                r_i[nr] = i
                r_entry[nr] = l_ns[s]
                r_exit[nr] = session_ns[t]
                r_qty[nr] = signed
                r_pin[nr] = l_price[s]
                r_pout[nr] = p
                r_pnl[nr] = signed * (p - l_price[s]) - closed * (l_cpu[s] + cpu)
                nr += 1
                lq -= signed
                rem += signed
                if abs(lq) <= 1e-9 * closed:
                    head[i] = l_next[s]
                    if head[i] < 0:
                        tail[i] = -1
                    free[n_free] = s
                    n_free += 1
                else:
                    l_qty[s] = lq
                if abs(rem) <= tol:
                    rem = 0.0
            if rem != 0.0:
                if n_free > 0:
                    n_free -= 1
                    slot = free[n_free]
                else:
                    if n_used == l_qty.shape[0]:
                        l_next = _grow(l_next, n_used + 1)
                        l_qty = _grow(l_qty, n_used + 1)
                        l_price = _grow(l_price, n_used + 1)
                        l_cpu = _grow(l_cpu, n_used + 1)
                        l_ns = _grow(l_ns, n_used + 1)
                        free = _grow(free, n_used + 1)
                    slot = n_used
                    n_used += 1
                l_qty[slot] = rem
                l_price[slot] = p
                l_cpu[slot] = cpu
                l_ns[slot] = session_ns[t]
                l_next[slot] = -1
                if tail[i] >= 0:
                    l_next[tail[i]] = slot
                else:
                    head[i] = slot
                tail[i] = slot
            f += 1

    n_open = n_used - n_free
    o_i = np.empty(n_open, dtype=np.int64)
    o_ns = np.empty(n_open, dtype=np.int64)
    o_qty = np.empty(n_open)
    o_price = np.empty(n_open)
    o_cpu = np.empty(n_open)
    m = 0
    for i in range(n_instruments):
        s = head[i]
        while s >= 0:
            o_i[m] = i
            o_ns[m] = l_ns[s]
            o_qty[m] = l_qty[s]
            o_price[m] = l_price[s]
            o_cpu[m] = l_cpu[s]
            m += 1
            s = l_next[s]
    return (
        r_i[:nr], r_entry[:nr], r_exit[:nr], r_qty[:nr], r_pin[:nr], r_pout[:nr], r_pnl[:nr],
        o_i, o_ns, o_qty, o_price, o_cpu,
    )  # fmt: skip
