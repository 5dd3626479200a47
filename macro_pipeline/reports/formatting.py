"""Numbers, percentages and money as people read them: the one home of that formatting, for the
reports and the command line. Missing values (None, NaN) read ``n/a``; ``data_value`` is the full
precision a page keeps in ``data-value`` attributes.

The command line prints plain text (``plain_metric``, ``plain_number``): no thousands separators,
counts and whole days as integers, other non-percent metrics with 3 decimals, a missing metric as
``-``. Light on purpose (standard library only): ``macro-pipeline --help`` imports it.
"""

from __future__ import annotations

import math
from typing import Any

PERCENT = {"total_return", "cagr", "annual_volatility", "max_drawdown", "var_95", "cvar_95", "win_rate",
           "turnover", "gross_exposure", "net_exposure"}
MONEY = {"avg_win", "avg_loss"}
DAYS = {"max_drawdown_duration_days", "avg_holding_days"}
COUNTS = {"trade_count"}

METRIC_NOTES = {
    "total_return": "final equity / starting equity - 1",
    "cagr": "compound annual growth over elapsed calendar time: (1 + total return) ^ (365 / days) - 1",
    "annual_volatility": "sample std of daily returns x sqrt(P)",
    "sharpe": "mean / std of daily returns x sqrt(P), less the configured risk-free rate",
    "sortino": "mean return x P / downside deviation (all periods)",
    "calmar": "CAGR / |max drawdown|",
    "max_drawdown": "worst fall from a running peak",
    "max_drawdown_duration_days": "longest time under a previous peak, calendar days",
    "var_95": "daily value at risk, historical 5th percentile",
    "cvar_95": "mean of the daily returns at or below the VaR",
    "tail_index": "Hill estimator of the loss tail (lower = fatter)",
    "win_rate": "share of round trips with positive P&L",
    "profit_factor": "gross profit / gross loss of round trips",
    "avg_win": "mean P&L of winning round trips (money)",
    "avg_loss": "mean P&L of losing round trips (money)",
    "avg_holding_days": "mean round-trip holding period, calendar days",
    "trade_count": "round trips closed",
    "turnover": "annualised traded notional / equity, both sides (mean daily x P)",
    "gross_exposure": "average sum |positions| / equity",
    "net_exposure": "average sum positions / equity",
}


def metric_notes(periods_per_year: int) -> dict[str, str]:
    """``METRIC_NOTES`` with P, the periods a year of the calendar (252 exchange, 365 for 24/7),
    written out."""
    p = str(periods_per_year)
    return {k: v.replace("sqrt(P)", f"sqrt({p})").replace("x P", f"x {p}") for k, v in METRIC_NOTES.items()}


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_metric(name: str, value: Any) -> str:
    """A metric for reading: percentages, money, days and counts in their units; n/a if missing."""
    if is_missing(value):
        return "n/a"
    value = float(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if name in PERCENT:
        return f"{100 * value:.2f}%"
    if name in MONEY:
        return f"{value:,.2f}"
    if name in COUNTS:
        return f"{int(value):,}"
    if name in DAYS:
        return f"{value:,.1f}"
    return f"{value:.3f}"


def display_float(value: Any, digits: int = 4) -> float | None:
    """A number rounded to ``digits`` significant digits for display where a float must stay a
    float (Dagster metadata plots); None if missing. Full precision stays in the warehouse."""
    if is_missing(value):
        return None
    value = float(value)
    return value if value == 0 or math.isinf(value) else float(f"{value:.{digits}g}")


def fmt_money(value: Any) -> str:
    return "n/a" if is_missing(value) else f"{float(value):,.2f}"


def fmt_pct(value: Any, digits: int = 2) -> str:
    return "n/a" if is_missing(value) else f"{100 * float(value):.{digits}f}%"


def sign_class(value: Any) -> str:
    if is_missing(value):
        return ""
    return "neg" if float(value) < 0 else ("pos" if float(value) > 0 else "")


def data_value(value: Any) -> str:
    return "" if is_missing(value) else repr(float(value))


def one_decimal(x: float) -> str:
    """One decimal, never "-0.0"."""
    text = f"{x:.1f}"
    return "0.0" if text == "-0.0" else text


def fmt_ratio(value: Any) -> str:
    """A ratio without a unit (skew, tail ratio...): three decimals; n/a if missing."""
    return "n/a" if is_missing(value) else f"{float(value):.3f}"


# --------------------------------------------------------------------------- plain text (the CLI)

# the metrics the command line prints as integers: the counts and the drawdown duration (whole days)
PLAIN_INTEGERS = COUNTS | {"max_drawdown_duration_days"}


def plain_metric(name: str, value: Any) -> str:
    """One metric's value as the command line prints it: percent with 2 decimals, an integer, or
    3 decimals; "-" when missing."""
    if is_missing(value):
        return "-"
    if name in PERCENT:
        return fmt_pct(value)
    if name in PLAIN_INTEGERS:
        return f"{int(value)}"
    return f"{value:.3f}"


def plain_number(v: Any, pct: bool = False) -> str:
    """A number as the sweep commands print it: 3 decimals, or a percent with 2; "n/a" for NaN;
    anything that is not a number as its text."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if is_missing(x):
        return "n/a"
    return fmt_pct(x) if pct else f"{x:.3f}"
