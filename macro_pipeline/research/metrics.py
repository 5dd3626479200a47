"""The headline metrics of many return series at once (sessions x configurations). Pure numpy.

Same conventions as ``engine.metrics.compute_metrics`` (empyrical's: ``periods_per_year``
periods, ddof=1, Sortino downside over all periods, maximum drawdown negative and anchored at the
start, CAGR -1 when wiped out, Sharpe/Sortino NaN for a constant series, in excess of the per-period
``risk_free``), column by column, so a sweep's row equals the single-run value (tested to 1e-12).
Why not call ``compute_metrics`` per column: it also builds monthly tables, drawdown durations
and tail indices, about 5 ms a series, 5 s for a 1,000-configuration sweep; this is one pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ("sharpe", "cagr", "annual_volatility", "sortino", "max_drawdown", "calmar", "total_return")
HIGHER_IS_BETTER = ("sharpe", "sortino", "cagr", "calmar", "total_return")


def metrics_matrix(
    returns: np.ndarray, *, calendar: str | None = None, periods_per_year: int | None = None,
    dates: pd.DatetimeIndex | None = None, risk_free: float | np.ndarray = 0.0,
) -> dict[str, np.ndarray]:
    """``METRICS`` of every column of ``returns`` (T x S simple per-period returns), with
    ``compute_metrics``' conventions: periods a year from ``calendar`` (or ``periods_per_year``;
    one is required), CAGR from the elapsed calendar time of ``dates`` (the rows' session dates;
    without them, T / periods a year)."""
    from macro_pipeline.engine.calendar import periods_per_year as calendar_periods
    from macro_pipeline.engine.metrics import elapsed_years

    if calendar is None and periods_per_year is None:
        raise TypeError("metrics_matrix: give the returns' calendar (or periods_per_year)")
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"returns must be T x S, got shape {r.shape}")
    n, s = r.shape
    ppy = float(periods_per_year if periods_per_year is not None else calendar_periods(calendar))
    years = elapsed_years(pd.DatetimeIndex(dates), calendar, ppy) if dates is not None and n else n / ppy
    nan = np.full(s, np.nan)
    out = {k: nan.copy() for k in METRICS}
    if n == 0:
        return out
    wealth = np.cumprod(1.0 + r, axis=0)
    ending = wealth[-1]
    out["total_return"] = ending - 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out["cagr"] = np.where(ending > 0, np.abs(ending) ** (1.0 / years) - 1.0, -1.0)
    anchored = np.vstack([np.full((1, s), 100.0), 100.0 * wealth])
    peak = np.fmax.accumulate(anchored, axis=0)
    mdd = np.min((anchored - peak) / peak, axis=0)
    out["max_drawdown"] = mdd
    with np.errstate(invalid="ignore", divide="ignore"):
        out["calmar"] = np.where(mdd < 0, out["cagr"] / np.abs(mdd), np.nan)
    if n >= 2:
        rf = np.asarray(risk_free, dtype=np.float64)
        adj = r - (rf[:, None] if rf.ndim == 1 else rf) if np.any(rf != 0) else r
        out["annual_volatility"] = np.std(r, axis=0, ddof=1) * np.sqrt(ppy)
        sd = np.std(adj, axis=0, ddof=1)
        constant = adj.max(axis=0) == adj.min(axis=0)
        mean = np.mean(adj, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["sharpe"] = np.where((sd > 0) & ~constant, mean / sd * np.sqrt(ppy), np.nan)
            downside = np.sqrt(np.mean(np.square(np.clip(adj, -np.inf, 0.0)), axis=0)) * np.sqrt(ppy)
            out["sortino"] = np.where(downside > 0, mean * ppy / downside, np.nan)
    return out
