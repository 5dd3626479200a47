"""Compiled (numba, cached on disk) portfolio kernels. Pure array code: no pandas, no I/O.

``run_portfolio`` walks the sessions once. Per session t (bar = (close t-1, close t]):

1. splits with ex-date t (at the open): quantity x ratio, last mark / ratio, open lots
   rescaled (value unchanged);
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
   says why. Each trade also updates the instrument's FIFO lots (round trips);
5. record: positions (notional = qty x last mark), equity = cash + sum(positions).

Arrays are instrument-major where the kernel reads a whole panel (price, targets, universe:
(N, T)), which is the memory layout pandas already holds, so no transposed copy is made.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

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
TRIP_INTS = ("instrument", "entry_ns", "exit_ns", "holding_days")
TRIP_FLOATS = ("quantity", "entry_price", "exit_price", "pnl", "return")
_DAY_NS = 86_400 * 10**9
_DUST = 1e-9


@njit(cache=True, nogil=True)
def _log(nf, t_ns, i, side, reason, q, p, notional, c, f_int, f_code, f_val):
    f_int[0, nf] = t_ns
    f_int[1, nf] = i
    f_code[0, nf] = side
    f_code[1, nf] = reason
    f_val[0, nf] = q
    f_val[1, nf] = p
    f_val[2, nf] = notional
    f_val[3, nf] = c
    return nf + 1


@njit(cache=True, nogil=True)
def _match_lots(i, q, p, c, t_ns, lot_f, lot_i, lot_hd, n_inst, r_int, r_val, nr):
    """Apply a trade of q units at p (cost c) to instrument i's FIFO lots.

    A trade against open lots of the other side closes them oldest first and writes one
    round trip (aggregated over the lots it closed, as pyfolio does): entry = the oldest
    closed lot's date, quantity = units closed (>0 long), pnl = sum of signed units x
    (exit - entry price) - units x (entry + exit cost per unit), return = pnl / entry
    notional closed. Whatever is left opens a new lot. Returns the new round-trip count.

    Lot pool: lot_f rows = qty, price, cost per unit; lot_i rows = entry ns, next slot, free
    stack; lot_hd rows = head, tail per instrument, with [0, n_inst] = slots used and
    [1, n_inst] = free slots.
    """
    cpu = c / abs(q)
    rem = q
    head = lot_hd[0, i]
    if head >= 0 and (lot_f[0, head] > 0.0) != (q > 0.0):
        tol = _DUST * abs(q)
        entry_ns = lot_i[0, head]
        units = 0.0
        pnl = 0.0
        invested = 0.0
        long_trip = lot_f[0, head] > 0.0
        while rem != 0.0 and head >= 0 and (lot_f[0, head] > 0.0) != (rem > 0.0):
            lq = lot_f[0, head]
            closed = min(abs(rem), abs(lq))
            signed = closed if lq > 0.0 else -closed
            pnl += signed * (p - lot_f[1, head]) - closed * (lot_f[2, head] + cpu)
            invested += closed * lot_f[1, head]
            units += closed
            lq -= signed
            rem += signed
            if abs(lq) <= _DUST * closed:
                nxt = lot_i[1, head]
                lot_i[2, lot_hd[1, n_inst]] = head
                lot_hd[1, n_inst] += 1
                head = nxt
            else:
                lot_f[0, head] = lq
            if abs(rem) <= tol:
                rem = 0.0
        lot_hd[0, i] = head
        if head < 0:
            lot_hd[1, i] = -1
        r_int[0, nr] = i
        r_int[1, nr] = entry_ns
        r_int[2, nr] = t_ns
        r_int[3, nr] = (t_ns - entry_ns) // _DAY_NS
        r_val[0, nr] = units if long_trip else -units
        r_val[1, nr] = invested / units
        r_val[2, nr] = p
        r_val[3, nr] = pnl
        r_val[4, nr] = pnl / invested
        nr += 1
    if rem != 0.0:
        n_free = lot_hd[1, n_inst]
        if n_free > 0:
            slot = lot_i[2, n_free - 1]
            lot_hd[1, n_inst] = n_free - 1
        else:
            slot = lot_hd[0, n_inst]
            lot_hd[0, n_inst] = slot + 1
        lot_f[0, slot] = rem
        lot_f[1, slot] = p
        lot_f[2, slot] = cpu
        lot_i[0, slot] = t_ns
        lot_i[1, slot] = -1
        tail = lot_hd[1, i]
        if tail >= 0:
            lot_i[1, tail] = slot
        else:
            lot_hd[0, i] = slot
        lot_hd[1, i] = slot
    return nr


@njit(cache=True, nogil=True)
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
    record,  # False: only series[0] (equity) is written: no log, lots, positions
    series,  # (N_SERIES, T) out
    pos,  # (T, N) out notional positions, or (0, 0)
    f_int,  # (2, cap) int64 out: date ns, instrument
    f_code,  # (2, cap) int8 out: side, reason
    f_val,  # (4, cap) float64 out: FILL_FLOATS
    lot_f,  # FIFO lot pool in/out, see _match_lots
    lot_i,
    lot_hd,
    r_int,  # (4, cap) int64 out: TRIP_INTS
    r_val,  # (5, cap) float64 out: TRIP_FLOATS
):
    """Simulate one portfolio; returns (log rows written, round trips written, final cash)."""
    N, T = price.shape
    has_universe = universe.shape[0] > 0
    nf = 0
    nr = 0
    for t in range(T):
        t_ns = session_ns[t]
        # 1. splits at the open of t
        for e in range(split_ptr[t], split_ptr[t + 1]):
            i = split_i[e]
            r = split_ratio[e]
            qty[i] = qty[i] * r
            last_p[i] = last_p[i] / r
            if record:
                s = lot_hd[0, i]
                while s >= 0:
                    lot_f[0, s] *= r
                    lot_f[1, s] /= r
                    lot_f[2, s] /= r
                    s = lot_i[1, s]
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
            if p == p:
                last_p[i] = p
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
                        nf = _log(nf, t_ns, i, 1 if q > 0.0 else 0, 1, -q, px, notional, c,
                                  f_int, f_code, f_val)  # fmt: skip
                        nr = _match_lots(i, -q, px, c, t_ns, lot_f, lot_i, lot_hd, N, r_int,
                                         r_val, nr)  # fmt: skip
                else:
                    v = q * last_p[i]
                    held += v
            if record and not trading:
                pos[t, i] = v
                gross += abs(v)
        # 4. execution
        if trading:
            value = cash + held
            if not value > 0.0:
                if record:
                    nf = _log(nf, t_ns, -1, 2, 4, 0.0, np.nan, 0.0, 0.0, f_int, f_code, f_val)
                    for i in range(N):
                        v = qty[i] * last_p[i] if qty[i] != 0.0 else 0.0
                        pos[t, i] = v
                        gross += abs(v)
            else:
                held = 0.0
                for i in range(N):
                    w = targets[i, k]
                    cur = qty[i]
                    if w == 0.0 and cur == 0.0:
                        if record:
                            pos[t, i] = 0.0
                        continue
                    p = price[i, t]
                    reason = -1
                    if has_universe and not universe[i, t]:
                        reason = 3
                    elif not p == p:
                        reason = 2
                    if reason >= 0:
                        v = cur * last_p[i] if cur != 0.0 else 0.0
                        held += v
                        if record:
                            nf = _log(nf, t_ns, i, 2, reason, 0.0, np.nan, 0.0, 0.0,
                                      f_int, f_code, f_val)  # fmt: skip
                            pos[t, i] = v
                            gross += abs(v)
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
                            nf = _log(nf, t_ns, i, 0 if q > 0.0 else 1, 0, q, p, notional, c,
                                      f_int, f_code, f_val)  # fmt: skip
                            nr = _match_lots(i, q, p, c, t_ns, lot_f, lot_i, lot_hd, N,
                                             r_int, r_val, nr)  # fmt: skip
                    v = target * p
                    held += v
                    if record:
                        pos[t, i] = v
                        gross += abs(v)
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
    return nf, nr, cash


@njit(cache=True, nogil=True)
def open_lots(lot_f, lot_i, lot_hd):
    """Open lots in instrument order, oldest first: (instrument, entry ns, qty, price, cpu)."""
    n_inst = lot_hd.shape[1] - 1
    n = lot_hd[0, n_inst] - lot_hd[1, n_inst]
    o_i = np.empty(n, dtype=np.int64)
    o_ns = np.empty(n, dtype=np.int64)
    o_f = np.empty((3, n))
    m = 0
    for i in range(n_inst):
        s = lot_hd[0, i]
        while s >= 0:
            o_i[m] = i
            o_ns[m] = lot_i[0, s]
            o_f[0, m] = lot_f[0, s]
            o_f[1, m] = lot_f[1, s]
            o_f[2, m] = lot_f[2, s]
            m += 1
            s = lot_i[1, s]
    return o_i[:m], o_ns[:m], o_f[:, :m]


@njit(cache=True, parallel=True)
def run_many(
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
    equity,  # (S, T) out
):
    """``run_portfolio`` (equity only) for S weight schedules sharing everything else,
    spread over the available cores."""
    S = targets.shape[0]
    N, T = price.shape
    no_i = np.zeros((0, 0), dtype=np.int64)
    no_c = np.zeros((0, 0), dtype=np.int8)
    no_f = np.zeros((0, 0))
    for s in prange(S):
        qty = np.zeros(N)
        last_p = np.full(N, np.nan)
        eq = np.empty((1, T))
        run_portfolio(
            price, session_ns, exec_row, targets[s], universe,
            split_ptr, split_i, split_ratio, div_ptr, div_i, div_amount,
            fund_ptr, fund_i, fund_rate, rf_bar, borrow_rate, cost_rate,
            qty, last_p, cash0, False, False,
            eq, no_f, no_i, no_c, no_f, no_f, no_i, no_i, no_i, no_f,
        )  # fmt: skip
        equity[s, :] = eq[0]
