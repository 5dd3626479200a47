"""`compute_metrics`: performance and trade statistics from a daily return series.

Conventions (each written here, in the report's metric table, and checked in the tests):
- Periods a year ``P`` come from the series' calendar (`engine.calendar.periods_per_year`):
  252 for exchange sessions (XNYS, ...), 365 for "24/7" (crypto: every calendar day is a
  session). Mixed cases: a run has one calendar, which decides; a comparison of series on
  different calendars (leaderboard, benchmark cards) annualises each series with its own
  calendar; relative metrics (alpha, beta, tracking error, ...) use the sessions both series
  share, annualised with the strategy's calendar.
- Volatility, Sharpe, Sortino and turnover scale with ``P``: sample standard deviation
  (ddof=1) x sqrt(P); Sharpe = mean(r - rf) / sd(r - rf) x sqrt(P); Sortino = mean(r - rf) x P /
  (sqrt(mean(min(r - rf, 0)^2)) x sqrt(P)), downside deviation over all periods.
- CAGR comes from elapsed calendar time, not from a count of periods: years = (last date -
  start) / 365 days, where start is the close the first return is measured from (the previous
  session of the calendar; for 24/7 the day before), and CAGR = prod(1 + r) ** (1 / years) - 1.
  A year is 365 calendar days (quantstats' convention), so on 24/7 years = n / 365 and CAGR
  equals empyrical's ``cagr(annualization=365)`` exactly. Without dates, years = n / P
  (empyrical). Calmar = CAGR / |max drawdown|.
- Maximum drawdown negative and anchored at the starting value; historical VaR (5th percentile,
  linear interpolation) and CVaR (mean of the int((n - 1) * 0.05) + 1 worst returns), per period.

Equal to empyrical(-reloaded) with ``annualization=P`` to 1e-9 in the tests (the CAGR with the
annualization that matches the elapsed time). Deliberate differences from empyrical:
- ``sortino`` uses ``risk_free`` as the minimum acceptable return (empyrical's sortino has no
  risk_free argument; its ``required_return`` defaults to 0 - identical when risk_free = 0).
- a zero-dispersion return series gives ``sharpe``/``sortino`` NaN, never +-inf.
- ``cagr`` is -1.0 when the portfolio is wiped out (prod(1 + r) <= 0), where empyrical
  returns NaN for a negative ending value.
- ``cagr`` on an exchange calendar uses calendar time (empyrical counts 252 sessions a year;
  the two differ by the year's actual session count).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from macro_pipeline.engine.calendar import DAYS_PER_YEAR, previous_session_ns
from macro_pipeline.engine.calendar import periods_per_year as calendar_periods

METRIC_KEYS: tuple[str, ...] = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration_days",
    "var_95",
    "cvar_95",
    "tail_index",
    "win_rate",
    "profit_factor",
    "avg_win",
    "avg_loss",
    "avg_holding_days",
    "trade_count",
    "turnover",
    "gross_exposure",
    "net_exposure",
    "monthly_returns",
)
_NAN = float("nan")


def _max_drawdown_duration(wealth: np.ndarray, index: pd.Index | None) -> float:
    """Longest stretch under a previous peak: from the peak's date to the first date back at
    or above it (or the last date if never), in calendar days (periods without dates)."""
    n = len(wealth)
    if n == 0:
        return _NAN
    peak = np.maximum.accumulate(np.r_[1.0, wealth])[1:]
    under = wealth < peak
    if not under.any():
        return 0.0
    # index of the peak each point is measured against (anchor at -1 -> first date)
    is_peak = ~under
    last_peak = np.where(is_peak, np.arange(n), -1)
    last_peak = np.maximum.accumulate(last_peak)
    starts = np.maximum(last_peak, 0)
    # a spell ends at the first non-underwater point after it, or at the last point
    ends = np.where(is_peak, np.arange(n), n)
    ends = np.minimum.accumulate(ends[::-1])[::-1]
    ends = np.minimum(ends, n - 1)
    if isinstance(index, pd.DatetimeIndex):
        days = (index.asi8[ends] - index.asi8[starts]) / (86_400 * 10**9 / _unit_scale(index))
        return float(days[under].max())
    return float((ends - starts)[under].max())


def _unit_scale(index: pd.DatetimeIndex) -> int:
    return {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[index.unit]


def elapsed_years(index: pd.DatetimeIndex, calendar: str | None, periods_per_year: float) -> float:
    """Calendar years a daily return series on ``index`` spans: from the close its first return
    is measured from (the calendar's previous session; without a calendar, one average period,
    365 / periods_per_year days, before the first date) to its last date, in 365-day years."""
    first = index[0].normalize().as_unit("ns").value
    start = previous_session_ns(calendar, first) if calendar is not None else None
    day = 86_400 * 10**9
    if start is None:
        start = first - round(day * DAYS_PER_YEAR / periods_per_year)
    return (index[-1].as_unit("ns").value - start) / day / DAYS_PER_YEAR


def _hill_tail_index(returns: np.ndarray, tail: float = 0.05) -> float:
    """Hill estimator of the left (loss) tail exponent: with losses L sorted descending and
    k = max(2, int(tail * n)), alpha = k / sum_{i<=k} ln(L_i / L_{k+1}). NaN if fewer than
    k + 1 losses. Lower alpha = fatter tail (alpha < 2: infinite variance)."""
    losses = -returns[returns < 0]
    k = max(2, int(tail * len(returns)))
    if len(losses) < k + 1:
        return _NAN
    top = -np.sort(-losses)[: k + 1]
    logs = np.log(top[:k] / top[k])
    total = logs.sum()
    return float(k / total) if total > 0 else _NAN


def compute_metrics(
    returns: pd.Series | np.ndarray,
    round_trips: pd.DataFrame | None = None,
    *,
    calendar: str | None = None,
    periods_per_year: int | None = None,
    risk_free: float | np.ndarray | pd.Series = 0.0,
    exposure: pd.DataFrame | None = None,
    turnover: pd.Series | np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics of one return series (and optionally its trades, exposure and turnover).

    - ``returns``: simple per-period returns (decimals), ideally a Series on session dates
      (needed for ``monthly_returns``, a CAGR from elapsed time and a drawdown duration in
      calendar days).
    - ``calendar``: the series' calendar ("XNYS", "24/7", ...): gives the periods a year and
      the session before the first return; ``periods_per_year`` overrides the former (one of
      the two is required: no silent 252).
    - ``round_trips``: frame with ``pnl`` (money) and ``holding_days`` columns, e.g.
      ``BacktestResult.round_trips``; trade statistics are NaN (count 0) without it.
    - ``risk_free``: per-period risk-free return (empyrical's convention: 0.03 / P for 3 %
      a year), a constant or an array aligned with ``returns``.
    - ``exposure``: frame with ``gross``/``net`` columns (fractions of equity); ``turnover``:
      per-period traded notional / equity.

    Returns a dict with exactly ``METRIC_KEYS``. Units: returns and drawdowns as decimals;
    ``annual_volatility``, ``cagr`` annualised; ``var_95``/``cvar_95`` per period (negative =
    loss); ``avg_win``/``avg_loss``/``profit_factor`` from round-trip pnl in money
    (``avg_loss`` negative); ``avg_holding_days`` in calendar days; ``turnover`` annualised
    (mean per-period turnover x periods_per_year, both sides counted); ``gross_exposure``/
    ``net_exposure`` averages over periods; ``monthly_returns`` a year x month (1-12) frame of
    compounded returns.
    """
    if calendar is None and periods_per_year is None:
        raise TypeError("compute_metrics: give the series' calendar (or periods_per_year)")
    index = returns.index if isinstance(returns, pd.Series) else None
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError("compute_metrics: returns must be one-dimensional")
    if np.isnan(r).any():
        raise ValueError("compute_metrics: returns contain NaN")
    n = len(r)
    ppy = float(periods_per_year if periods_per_year is not None else calendar_periods(calendar))
    out: dict[str, Any] = dict.fromkeys(METRIC_KEYS, _NAN)

    if n:
        wealth = np.cumprod(1.0 + r)
        ending = wealth[-1]
        out["total_return"] = float(ending - 1.0)
        years = elapsed_years(index, calendar, ppy) if isinstance(index, pd.DatetimeIndex) else n / ppy
        out["cagr"] = float(ending ** (1.0 / years) - 1.0) if ending > 0 else -1.0
        anchored = np.r_[100.0, 100.0 * wealth]
        peak = np.fmax.accumulate(anchored)
        mdd = float(np.min((anchored - peak) / peak))
        out["max_drawdown"] = mdd
        out["calmar"] = out["cagr"] / abs(mdd) if mdd < 0 else _NAN
        out["max_drawdown_duration_days"] = _max_drawdown_duration(wealth, index)
        out["var_95"] = float(np.percentile(r, 5))
        cut = int((n - 1) * 0.05)
        out["cvar_95"] = float(np.mean(np.partition(r, cut)[: cut + 1]))
        out["tail_index"] = _hill_tail_index(r)
    if n >= 2:
        rf = np.asarray(risk_free.reindex(index) if isinstance(risk_free, pd.Series) else risk_free)
        adj = r - rf if np.any(rf != 0) else r
        out["annual_volatility"] = float(np.std(r, ddof=1) * np.sqrt(ppy))
        sd = np.std(adj, ddof=1)
        constant = adj.max() == adj.min()
        out["sharpe"] = float(np.mean(adj) / sd * np.sqrt(ppy)) if sd > 0 and not constant else _NAN
        downside = np.sqrt(np.mean(np.square(np.clip(adj, -np.inf, 0.0)))) * np.sqrt(ppy)
        out["sortino"] = float(np.mean(adj) * ppy / downside) if downside > 0 else _NAN

    trades = 0
    if round_trips is not None and len(round_trips):
        pnl = round_trips["pnl"].to_numpy(dtype=np.float64)
        trades = len(pnl)
        wins, losses = pnl[pnl > 0], pnl[pnl < 0]
        out["win_rate"] = float(len(wins) / trades)
        gross_loss = -losses.sum()
        if gross_loss > 0:
            out["profit_factor"] = float(wins.sum() / gross_loss)
        elif len(wins):
            out["profit_factor"] = float("inf")
        out["avg_win"] = float(wins.mean()) if len(wins) else _NAN
        out["avg_loss"] = float(losses.mean()) if len(losses) else _NAN
        out["avg_holding_days"] = float(round_trips["holding_days"].to_numpy().mean())
    out["trade_count"] = trades
    if turnover is not None and len(turnover):
        out["turnover"] = float(np.mean(np.asarray(turnover, dtype=np.float64)) * ppy)
    if exposure is not None and len(exposure):
        out["gross_exposure"] = float(exposure["gross"].mean())
        out["net_exposure"] = float(exposure["net"].mean())
    out["monthly_returns"] = _monthly_table(r, index)
    return out


def _monthly_table(r: np.ndarray, index: pd.Index | None) -> pd.DataFrame:
    """Year x month (1-12) table of compounded returns: each cell the product of (1 + r) over the
    month's periods, in date order, minus 1 (NaN where the series has no period)."""
    months = pd.RangeIndex(1, 13, name="month")
    if not isinstance(index, pd.DatetimeIndex) or len(r) == 0:
        return pd.DataFrame(columns=months)
    stamps = index.tz_localize(None) if index.tz is not None else index  # the wall-clock month
    key = stamps.to_numpy().astype("datetime64[M]").astype(np.int64) + 1970 * 12  # year * 12 + month - 1
    growth = 1.0 + r
    if len(key) > 1 and np.any(key[1:] < key[:-1]):
        order = np.argsort(key, kind="stable")  # dates in order within each month
        key, growth = key[order], growth[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    cells = np.multiply.reduceat(growth, starts) - 1.0
    first = key[starts]
    years = np.unique(first // 12)
    table = np.full((len(years), 12), np.nan)
    table[np.searchsorted(years, first // 12), first % 12] = cells
    return pd.DataFrame(table, index=pd.Index(years.astype(np.int32), name="year"), columns=months)


RELATIVE_KEYS: tuple[str, ...] = (
    "sessions", "first", "last", "total_return", "benchmark_total_return", "cagr", "benchmark_cagr",
    "alpha", "beta", "correlation", "tracking_error", "information_ratio", "up_capture", "down_capture",
)


def relative_metrics(returns: pd.Series, benchmark: pd.Series, *, calendar: str) -> dict[str, Any]:
    """A strategy's daily returns against its benchmark's, over the common window only: the
    dates both series have (the intersection; the benchmark's first return is measured from its
    first close, so its first date is dropped).

    With P = `periods_per_year(calendar)` (the strategy's calendar), r the strategy's and b the
    benchmark's returns on the common dates, a = r - b:
    - ``beta`` = cov(r, b) / var(b); ``alpha`` = (1 + mean(r - beta b)) ^ P - 1, annualised
      (empyrical's ``alpha_beta`` with risk-free 0, checked in the tests);
    - ``correlation``: Pearson; ``tracking_error`` = sd(a, ddof=1) sqrt(P); ``information_ratio``
      = mean(a) P / tracking_error;
    - ``up_capture`` / ``down_capture``: the strategy's annualised return on the dates the
      benchmark rose / fell, over the benchmark's on those dates (empyrical's convention:
      annual return = prod(1 + x) ^ (P / n) - 1);
    - ``total_return``/``cagr`` of each over the common window (CAGR as in `compute_metrics`);
      ``sessions``, ``first``, ``last``: the common window itself.
    NaN where undefined (fewer than two common dates, zero variance)."""
    out: dict[str, Any] = dict.fromkeys(RELATIVE_KEYS, _NAN)
    both = pd.concat([returns.rename("r"), benchmark.rename("b")], axis=1, join="inner").dropna()
    out["sessions"] = len(both)
    if len(both) < 2:
        return out
    r, b = both["r"].to_numpy(dtype=np.float64), both["b"].to_numpy(dtype=np.float64)
    ppy = float(calendar_periods(calendar))
    out["first"], out["last"] = both.index[0].date(), both.index[-1].date()
    mine = compute_metrics(both["r"], calendar=calendar)
    theirs = compute_metrics(both["b"], calendar=calendar)
    out["total_return"], out["cagr"] = mine["total_return"], mine["cagr"]
    out["benchmark_total_return"], out["benchmark_cagr"] = theirs["total_return"], theirs["cagr"]
    var_b = np.mean((b - b.mean()) ** 2)
    if var_b > 0:
        beta = float(np.mean((b - b.mean()) * (r - r.mean())) / var_b)
        out["beta"] = beta
        out["alpha"] = float((1.0 + np.mean(r - beta * b)) ** ppy - 1.0)
        sd_r = np.std(r)
        out["correlation"] = float(np.corrcoef(r, b)[0, 1]) if sd_r > 0 else _NAN
    active = r - b
    te = np.std(active, ddof=1) * np.sqrt(ppy)
    out["tracking_error"] = float(te)
    out["information_ratio"] = float(np.mean(active) * ppy / te) if te > 0 else _NAN

    def annual(x: np.ndarray) -> float:
        return float(np.prod(1.0 + x) ** (ppy / len(x)) - 1.0) if len(x) else _NAN

    for key, mask in (("up_capture", b > 0), ("down_capture", b < 0)):
        denom = annual(b[mask])
        out[key] = annual(r[mask]) / denom if denom == denom and denom != 0 else _NAN
    return out


# --------------------------------------------------------------------------- stress and tails

STRESS_WINDOWS: tuple[tuple[str, str, str], ...] = (
    # (name, first day, last day): the S&P 500's peak-to-trough dates as commonly cited (closes);
    # 2022 runs from the January peak to the October low
    ("1987 crash", "1987-10-05", "1987-10-30"),
    ("1998 LTCM / Russia", "1998-07-17", "1998-10-08"),
    ("2000-02 dot-com bust", "2000-03-24", "2002-10-09"),
    ("2007-09 financial crisis", "2007-10-09", "2009-03-09"),
    ("2011 euro debt / US downgrade", "2011-04-29", "2011-10-03"),
    ("2015-08 yuan devaluation", "2015-08-10", "2015-08-25"),
    ("2018-Q4 selloff", "2018-09-20", "2018-12-24"),
    ("2020-02/03 COVID crash", "2020-02-19", "2020-03-23"),
    ("2022 rate shock", "2022-01-03", "2022-10-12"),
)


def stress_table(returns: pd.Series, *, calendar: str,
                 windows: tuple[tuple[str, str, str], ...] = STRESS_WINDOWS) -> pd.DataFrame:
    """Per stress window the series covers at least in part: ``total_return`` (compounded inside
    the window), ``max_drawdown`` (anchored at the value the window starts from),
    ``annual_volatility`` (sample std x sqrt(P), NaN under two returns), ``sessions`` and
    ``coverage`` ("full" when the series has returns from the window's first to its last
    session, else "partial": the numbers then cover only its dates inside the window)."""
    rows = []
    for name, lo, hi in windows:
        r = returns.loc[lo:hi]
        if r.empty:
            continue
        m = compute_metrics(r, calendar=calendar)
        full = returns.index[0] <= pd.Timestamp(lo) and returns.index[-1] >= pd.Timestamp(hi)
        rows.append({"window": name, "first": lo, "last": hi, "sessions": len(r), "coverage": "full" if full else "partial",
                     "total_return": m["total_return"], "max_drawdown": m["max_drawdown"],
                     "annual_volatility": m["annual_volatility"]})
    return pd.DataFrame(rows, columns=["window", "first", "last", "sessions", "coverage", "total_return",
                                       "max_drawdown", "annual_volatility"])


def drawdown_periods(returns: pd.Series, top: int = 5) -> pd.DataFrame:
    """The ``top`` deepest drawdown periods of a daily return series (wealth anchored at 1 before
    the first return), deepest first: ``start`` (first date under the previous peak),
    ``trough`` (the lowest date), ``end`` (last date under water), ``recovery`` (first date back
    at the peak; NaT if never), ``depth`` (trough / peak - 1, negative), ``days`` (calendar
    days start..end inclusive, quantstats' ``drawdown_details`` convention) and ``sessions``
    under water. Equal to quantstats' ``drawdown_details`` on start, valley, end, days and max
    drawdown (checked in the tests)."""
    cols = ["start", "trough", "end", "recovery", "depth", "days", "sessions"]
    wealth = np.cumprod(1.0 + returns.to_numpy(dtype=np.float64))
    peak = np.maximum.accumulate(np.r_[1.0, wealth])[1:]
    dd = wealth / peak - 1.0
    under = dd < 0
    if not under.any():
        return pd.DataFrame(columns=cols)
    idx = returns.index
    edges = np.diff(np.r_[0, under.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # stop: first index after
    rows = []
    for a, b in zip(starts, stops, strict=True):
        k = a + int(np.argmin(dd[a:b]))
        rows.append((idx[a], idx[k], idx[b - 1], idx[b] if b < len(idx) else pd.NaT, float(dd[k]),
                     (idx[b - 1] - idx[a]).days + 1, int(b - a)))
    out = pd.DataFrame(rows, columns=cols).sort_values("depth", kind="stable").head(top)
    return out.reset_index(drop=True)


def tail_risk(returns: pd.Series) -> dict[str, Any]:
    """Worst day, calendar week (Monday-Sunday) and calendar month (compounded returns, with the
    date / period), and expected shortfall at 95 % and 99 %: the mean of the int((n - 1) x a) + 1
    worst daily returns for a = 5 %, 1 % (the CVaR convention of `compute_metrics`)."""
    r = returns.astype(float)
    out: dict[str, Any] = {}
    if r.empty:
        return out
    growth = 1.0 + r
    week = growth.groupby(r.index.to_period("W-SUN")).prod() - 1.0
    month = growth.groupby(r.index.to_period("M")).prod() - 1.0
    out["worst_day"], out["worst_day_date"] = float(r.min()), r.idxmin().date()
    out["worst_week"], out["worst_week_period"] = float(week.min()), str(week.idxmin())
    out["worst_month"], out["worst_month_period"] = float(month.min()), str(month.idxmin())
    x = r.to_numpy()
    for a, key in ((0.05, "es_95"), (0.01, "es_99")):
        cut = int((len(x) - 1) * a)
        out[key] = float(np.mean(np.partition(x, cut)[: cut + 1]))
    return out
