"""Tables as the command line prints them (plain text, fixed-width columns).

The metric names come from ``engine.metrics.METRIC_KEYS`` (where the metrics are defined), never
a copy; the numbers in them are formatted by ``reports/formatting.py`` (``plain_metric``), the one
home of number formatting.
"""

from __future__ import annotations

from typing import Any

from macro_pipeline.reports.formatting import plain_metric


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


def metric_table(metrics: dict[str, Any]) -> str:
    """Every headline metric of one run or history, one per row."""
    return table([[k, plain_metric(k, metrics.get(k))] for k in headline_metrics()], ["metric", "value"])
