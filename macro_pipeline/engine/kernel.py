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
   qty x last mark; the per-instrument panel is rebuilt on demand by ``replay_positions``).

Prices are also checked here (the kernel reads every one anyway): a price that is not NaN
and not finite > 0 is counted and the caller rejects the input. ``fifo_step`` then matches
the fill log into round trips (see `Fifo`); ``run_batch`` runs many weight schedules.

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
FILL_FLOATS = ("quantity", "price", "notional", "cost", "position")
TRIP_FLOATS = ("quantity", "pnl", "return")
_DAY_NS = 86_400 * 10**9
_DUST = 1e-9


@njit(cache=True, nogil=True, error_model="numpy")
def _log(nf, t_ns, i, side, reason, q, p, notional, c, after, f_ns, f_i, f_code, f_val):
    f_ns[nf] = t_ns
    f_i[nf] = i
    f_code[0, nf] = side
    f_code[1, nf] = reason
    f_val[0, nf] = q
    f_val[1, nf] = p
    f_val[2, nf] = notional
    f_val[3, nf] = c
    f_val[4, nf] = after
    return nf + 1


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
    f_ns,  # (cap,) int64 out: fill log date (ns)
    f_i,  # (cap,) int32 out: instrument (-1 = whole portfolio)
    f_code,  # (2, cap) int8 out: side (SIDES), reason (REASONS)
    f_val,  # (5, cap) float64 out: FILL_FLOATS (position = units held after the row)
    t_lo,  # simulate sessions t_lo <= t < t_hi (a run can be resumed block by block)
    t_hi,
    nf,  # log rows already written
):
    """Simulate sessions [t_lo, t_hi) of one portfolio; returns (log rows written in all,
    cash, number of prices that are not NaN and not finite > 0 - the caller rejects the
    input when it is nonzero)."""
    N = price.shape[0]
    has_universe = universe.shape[0] > 0
    n_bad = 0
    for t in range(t_lo, t_hi):
        t_ns = session_ns[t]
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
                        nf = _log(nf, t_ns, i, 1 if q > 0.0 else 0, 1, -q, px, notional, c, 0.0,
                                  f_ns, f_i, f_code, f_val)  # fmt: skip
                else:
                    v = q * last_p[i]
                    held += v
            if record and not trading:
                gross += abs(v)
        # 4. execution
        if trading:
            value = cash + held
            if not value > 0.0:
                if record:
                    nf = _log(
                        nf, t_ns, -1, 2, 4, 0.0, np.nan, 0.0, 0.0, 0.0, f_ns, f_i, f_code, f_val
                    )
                    for i in range(N):
                        if qty[i] != 0.0:
                            gross += abs(qty[i] * last_p[i])
            else:
                held = 0.0
                for i in range(N):
                    w = targets[i, k]
                    cur = qty[i]
                    if w == 0.0 and cur == 0.0:
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
                            nf = _log(nf, t_ns, i, 2, reason, 0.0, np.nan, 0.0, 0.0, cur,
                                      f_ns, f_i, f_code, f_val)  # fmt: skip
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
                            nf = _log(nf, t_ns, i, 0 if q > 0.0 else 1, 0, q, p, notional, c, target,
                                      f_ns, f_i, f_code, f_val)  # fmt: skip
                    v = target * p
                    held += v
                    if record:
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
    return nf, cash, n_bad


@njit(cache=True, nogil=True, error_model="numpy")
def replay_positions(
    price, session_ns, f_ns, f_i, f_val, split_ptr, split_i, split_ratio, qty, last_p, pos
):
    """Notional positions (T, N) rebuilt from the start quantities and marks, the splits and
    the fill log: per session, splits, then that session's fills, then qty x last mark."""
    N, T = price.shape
    n = f_ns.shape[0]
    f = 0
    for t in range(T):
        for e in range(split_ptr[t], split_ptr[t + 1]):
            qty[split_i[e]] *= split_ratio[e]
            last_p[split_i[e]] /= split_ratio[e]
        while f < n and f_ns[f] == session_ns[t]:
            if f_i[f] >= 0:
                qty[f_i[f]] = f_val[4, f]  # the kernel's own quantity, bit for bit
            f += 1
        for i in range(N):
            p = price[i, t]
            if p == p:
                last_p[i] = p
            pos[t, i] = qty[i] * last_p[i] if qty[i] != 0.0 else 0.0
    return pos


class Fifo:
    """State of the first-in-first-out lot matcher (arrays, so steps can resume).

    Each buy (sell) first closes the oldest open short (long) lots of its instrument and
    opens a new lot with whatever is left. Each fill that closes lots gives one round trip,
    aggregated over the lots it closed (pyfolio's convention): entry = the oldest closed
    lot's date, quantity = units closed (>0: a long round trip), pnl = sum over closed lots
    of signed units x (exit - entry price) - units x (entry + exit cost per unit), return =
    pnl / entry notional closed. Splits rescale open lots (quantity x ratio, price and cost
    per unit / ratio) at their ex-date, before that session's fills.
    """

    def __init__(self, n_instruments: int, capacity: int, lots: tuple) -> None:
        codes, entry_ns, values = lots
        cap = capacity + len(codes)
        # lot pool: a lot's fields share a cache line; freed slots are reused (stack)
        self.lot_f = np.empty((cap, 3))  # quantity, price, cost per unit
        self.lot_i = np.empty((cap, 3), dtype=np.int64)  # entry ns, next lot, free stack
        self.head = np.full(n_instruments, -1, dtype=np.int64)
        self.tail = np.full(n_instruments, -1, dtype=np.int64)
        self.count = np.zeros(4, dtype=np.int64)  # lots used, lots free, trips, splits done
        # round trips, one per closing fill at most (np.empty: unused capacity costs nothing)
        self.r_i = np.empty(capacity, dtype=np.int32)
        self.r_ns = np.empty((2, capacity), dtype=np.int64)  # entry, exit
        self.r_days = np.empty(capacity, dtype=np.int32)
        self.r_f = np.empty((3, capacity))  # TRIP_FLOATS
        n = len(codes)
        if n:  # start-state lots, oldest first per instrument: consecutive slots, linked
            order = np.argsort(codes, kind="stable")
            codes = codes[order]
            self.lot_f[:n] = values[:, order].T
            self.lot_i[:n, 0] = entry_ns[order]
            first = np.r_[True, codes[1:] != codes[:-1]]
            last = np.r_[codes[1:] != codes[:-1], True]
            self.lot_i[:n, 1] = np.where(last, -1, np.arange(1, n + 1))
            self.head[codes[first]] = np.flatnonzero(first)
            self.tail[codes[last]] = np.flatnonzero(last)
        self.count[0] = len(codes)

    def arrays(self) -> tuple:
        return (self.lot_f, self.lot_i, self.head, self.tail, self.count,
                self.r_i, self.r_ns, self.r_days, self.r_f)  # fmt: skip

    def trips(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = int(self.count[2])
        return self.r_i[:n], self.r_ns[:, :n], self.r_days[:n], self.r_f[:, :n]


@njit(cache=True, nogil=True, error_model="numpy")
def fifo_step(
    f_ns,  # fill log (run_portfolio's), chronological
    f_i,
    f_val,
    f_lo,  # process log rows f_lo <= f < f_hi
    f_hi,
    s_ns,  # splits, chronological: ex-date ns, instrument, ratio
    s_i,
    s_ratio,
    last,  # True on the final step: apply the splits after the last fill too
    lot_f,  # Fifo.arrays()
    lot_i,
    head,
    tail,
    count,
    r_i,
    r_ns,
    r_days,
    r_f,
):
    """Match log rows [f_lo, f_hi) into lots and round trips (see `Fifo`)."""
    n_used = count[0]
    n_free = count[1]
    nr = count[2]
    k = count[3]
    for f in range(f_lo, f_hi + 1):
        if f == f_hi:
            if not last:
                break
            t_ns = np.iinfo(np.int64).max
        else:
            t_ns = f_ns[f]
        while k < s_ns.shape[0] and s_ns[k] <= t_ns:
            r = s_ratio[k]
            h = head[s_i[k]]
            while h >= 0:
                lot_f[h, 0] *= r
                lot_f[h, 1] /= r
                lot_f[h, 2] /= r
                h = lot_i[h, 1]
            k += 1
        if f == f_hi:
            break
        i = f_i[f]
        q = f_val[0, f]
        if q == 0.0 or i < 0:
            continue
        p = f_val[1, f]
        cpu = f_val[3, f] / abs(q)
        rem = q
        h = head[i]
        if h >= 0 and (lot_f[h, 0] > 0.0) != (q > 0.0):
            tol = _DUST * abs(q)
            entry_ns = lot_i[h, 0]
            units = 0.0
            pnl = 0.0
            invested = 0.0
            while h >= 0:
                lq = lot_f[h, 0]
                closed = min(abs(rem), abs(lq))
                signed = closed if lq > 0.0 else -closed
                pnl += signed * (p - lot_f[h, 1]) - closed * (lot_f[h, 2] + cpu)
                invested += closed * lot_f[h, 1]
                units += signed
                lq -= signed
                rem += signed
                if abs(lq) <= _DUST * closed:  # lot used up (dust from float rounding too)
                    lot_i[n_free, 2] = h
                    n_free += 1
                    h = lot_i[h, 1]
                else:
                    lot_f[h, 0] = lq
                if abs(rem) <= tol:
                    rem = 0.0
                    break
            head[i] = h
            if h < 0:
                tail[i] = -1
            r_i[nr] = i
            r_ns[0, nr] = entry_ns
            r_ns[1, nr] = t_ns
            r_days[nr] = (t_ns - entry_ns) // _DAY_NS
            r_f[0, nr] = units
            r_f[1, nr] = pnl
            r_f[2, nr] = pnl / invested
            nr += 1
        if rem != 0.0:
            if n_free > 0:
                n_free -= 1
                slot = lot_i[n_free, 2]
            else:
                slot = n_used
                n_used += 1
            lot_f[slot, 0] = rem
            lot_f[slot, 1] = p
            lot_f[slot, 2] = cpu
            lot_i[slot, 0] = t_ns
            lot_i[slot, 1] = -1
            if tail[i] >= 0:
                lot_i[tail[i], 1] = slot
            else:
                head[i] = slot
            tail[i] = slot
    count[0] = n_used
    count[1] = n_free
    count[2] = nr
    count[3] = k


@njit(cache=True, nogil=True)
def open_lots(lot_f, lot_i, head, count):
    """Open lots in instrument order, oldest first: (instrument, entry ns, (3, n) floats)."""
    n = count[0] - count[1]
    o_i = np.empty(n, dtype=np.int64)
    o_ns = np.empty(n, dtype=np.int64)
    o_f = np.empty((3, n))
    m = 0
    for i in range(head.shape[0]):
        h = head[i]
        while h >= 0:
            o_i[m] = i
            o_ns[m] = lot_i[h, 0]
            o_f[0, m] = lot_f[h, 0]
            o_f[1, m] = lot_f[h, 1]
            o_f[2, m] = lot_f[h, 2]
            m += 1
            h = lot_i[h, 1]
    return o_i[:m], o_ns[:m], o_f[:, :m]


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
    no_ns = np.zeros(0, dtype=np.int64)
    no_i = np.zeros(0, dtype=np.int32)
    no_c = np.zeros((0, 0), dtype=np.int8)
    no_f = np.zeros((0, 0))
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
            eq, no_ns, no_i, no_c, no_f, 0, T, 0,
        )  # fmt: skip
        equity[s, :] = eq[0]
        bad = max(bad, out[2])
    return bad


@njit(cache=True, nogil=True, error_model="numpy")
def column_l1(w):
    """sum(abs(w)) down each column of an (N, K) array (NaN/inf propagate)."""
    N, K = w.shape
    out = np.zeros(K)
    for i in range(N):
        for k in range(K):
            out[k] += abs(w[i, k])
    return out
