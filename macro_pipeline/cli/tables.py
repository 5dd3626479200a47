"""Numbers and tables as the command line prints them (plain text, fixed-width columns).

The metric names come from ``engine.metrics.METRIC_KEYS`` (where the metrics are defined), never
a copy. The HTML reports format numbers in ``reports``; the two are to become one formatter.
"""

from __future__ import annotations

from typing import Any

# metrics printed as percentages (the rest with 3 decimals, counts as integers)
PERCENT = frozenset({"total_return", "cagr", "annual_volatility", "max_drawdown", "var_95", "cvar_95",
                     "win_rate", "turnover", "gross_exposure", "net_exposure"})  # fmt: skip
COUNTS = frozenset({"trade_count", "max_drawdown_duration_days"})


def headline_metrics() -> tuple[str, ...]:
    """Every scalar metric of a run, in ``METRIC_KEYS`` order (the monthly table left out)."""
    # imports the engine package, and with it numba: kept out of the CLI's start-up
    from macro_pipeline.engine.metrics import METRIC_KEYS

    return tuple(k for k in METRIC_KEYS if k != "monthly_returns")


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned columns under a header and a rule of dashes."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def metric(name: str, value: Any) -> str:
    """One metric's value: percent with 2 decimals, a count, or 3 decimals; "-" when missing."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if name in PERCENT:
        return f"{100 * value:.2f}%"
    if name in COUNTS:
        return f"{int(value)}"
    return f"{value:.3f}"


def metric_table(metrics: dict[str, Any]) -> str:
    """Every headline metric of one run or history, one per row."""
    return table([[k, metric(k, metrics.get(k))] for k in headline_metrics()], ["metric", "value"])


def number(v: Any, pct: bool = False) -> str:
    """A number of the sweep commands: 3 decimals, or a percent with 2; "n/a" for NaN; anything
    that is not a number as its text."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if x != x:
        return "n/a"
    return f"{x:.2%}" if pct else f"{x:.3f}"
