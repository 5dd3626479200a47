"""HTML building blocks: one self-contained page (styles inlined, no script, no external
reference), number formatting, tables, the monthly-returns heatmap.

Numbers that tests or readers may want exactly carry their full value in ``data-value``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

import pandas as pd

from macro_pipeline import __version__

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


CSS = """
:root { --ink:#1b1b1b; --muted:#5f6b76; --line:#d9dee3; --accent:#1f4e79; --bad:#b00020; --good:#2e7d32; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; color: var(--ink);
       margin: 0; background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--accent); }
h3 { font-size: 14px; margin: 18px 0 6px; }
.sub { color: var(--muted); margin: 0 0 16px; }
.notes { border-left: 4px solid #e0a800; background: #fff8e1; padding: 8px 14px; margin: 12px 0; }
.notes li { margin: 2px 0; }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; margin: 12px 0; }
.kpi { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.kpi .k { color: var(--muted); font-size: 12px; }
.kpi .v { font-size: 18px; font-weight: 600; }
.neg { color: var(--bad); } .pos { color: var(--good); }
svg.chart { display: block; width: 100%; height: auto; margin: 6px 0; }
.caption { color: var(--muted); font-size: 12px; margin: 2px 0 10px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f3f6; font-weight: 600; }
td.note { color: var(--muted); text-align: left; font-size: 12px; }
table.heatmap td { min-width: 52px; font-size: 12px; }
table.metrics td { white-space: nowrap; }
table.side-by-side { font-size: 12px; } table.side-by-side th { white-space: normal; }
table.side-by-side td, table.side-by-side th { padding: 3px 5px; }
table.lineage td, table.monthly-runs td { text-align: left; font-family: ui-monospace, "DejaVu Sans Mono", monospace;
                                          font-size: 12px; word-break: break-all; }
.wide { overflow-x: auto; }
table.heatmap td.total { font-weight: 600; border-left: 2px solid var(--line); }
dl.lineage { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 8px 0; }
dl.lineage dt { color: var(--muted); }
dl.lineage dd { margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px;
                word-break: break-all; }
pre { background: #f6f8fa; padding: 8px 10px; overflow-x: auto; font-size: 12px; }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--accent); font-weight: 600; }
.scroll { max-height: 480px; overflow: auto; }
footer { color: var(--muted); font-size: 12px; margin-top: 36px; }
"""


def esc(value: Any) -> str:
    return escape(str(value), quote=True)


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


def table(header: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "", raw: bool = False) -> str:
    """A table; cells are escaped unless ``raw`` (pre-built ``<td>`` elements)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        body.append("<tr>" + ("".join(row) if raw else "".join(f"<td>{esc(c)}</td>" for c in row)) + "</tr>")
    return (f'<div class="wide"><table class="{esc(cls)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def metric_cell(name: str, value: Any) -> str:
    return (f'<td data-metric="{esc(name)}" data-value="{data_value(value)}" class="{sign_class(value) if name in ("total_return", "cagr") else ""}">'
            f"{esc(fmt_metric(name, value))}</td>")


def kpis(items: Sequence[tuple[str, str, str]]) -> str:
    """Headline figures: (label, text, css class)."""
    cells = "".join(f'<div class="kpi"><div class="k">{esc(k)}</div><div class="v {esc(c)}">{esc(v)}</div></div>'
                    for k, v, c in items)
    return f'<div class="kpis">{cells}</div>'


def _heat_color(value: float, scale: float) -> str:
    if is_missing(value):
        return "#ffffff"
    t = max(-1.0, min(1.0, value / scale))
    base = (46, 125, 50) if t >= 0 else (198, 40, 40)
    mix = abs(t) * 0.75
    r, g, b = (round(255 + (c - 255) * mix) for c in base)
    return f"#{r:02x}{g:02x}{b:02x}"


def _one_decimal(x: float) -> str:
    text = f"{x:.1f}"
    return "0.0" if text == "-0.0" else text


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def heatmap(table_: pd.DataFrame) -> str:
    """Year x month returns with a yearly total column, each cell coloured by its sign and size."""
    months = table_[list(range(1, 13))]
    finite = months.abs().stack()
    scale = max(0.02, float(finite.quantile(0.95)) if len(finite) else 0.02)
    rows = []
    for year, row in table_.iterrows():
        cells = [f"<td>{int(year)}</td>"]
        for m in range(1, 13):
            v = row[m]
            text = "" if is_missing(v) else _one_decimal(100 * v)
            cells.append(f'<td data-month="{int(year)}-{m:02d}" data-value="{data_value(v)}" '
                         f'style="background:{_heat_color(v, scale)}">{text}</td>')
        yv = row["year"]
        cells.append(f'<td class="total {sign_class(yv)}" data-year="{int(year)}" data-value="{data_value(yv)}">'
                     f"{fmt_pct(yv, 1)}</td>")
        rows.append(cells)
    return table(["year", *MONTHS, "year total"], rows, cls="heatmap", raw=True)


def lineage_block(items: dict[str, Any], config: dict[str, Any] | None) -> str:
    dl = "".join(f"<dt>{esc(k)}</dt><dd data-lineage=\"{esc(k)}\">{esc(v)}</dd>" for k, v in items.items())
    out = f'<dl class="lineage">{dl}</dl>'
    if config is not None:
        out += f"<h3>Engine config</h3><pre>{esc(json.dumps(config, indent=2, sort_keys=True, default=str))}</pre>"
    return out


def section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{body}</section>'


def caption(text: str) -> str:
    return f'<p class="caption">{esc(text)}</p>'


def paragraph(text: str, cls: str = "") -> str:
    return f'<p class="{esc(cls)}">{esc(text)}</p>'


def notes(items: Sequence[str]) -> str:
    if not items:
        return ""
    lis = "".join(f"<li>{esc(n)}</li>" for n in items)
    return f'<div class="notes" id="notes"><strong>Read this first</strong><ul>{lis}</ul></div>'


def page(title: str, subtitle: str, body: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{esc(title)}</h1><p class=\"sub\">{esc(subtitle)}</p>{body}"
        f"<footer>macro-pipeline {esc(__version__)} &middot; generated {esc(stamp)} &middot; "
        "self-contained: no scripts, no external resources</footer></main></body></html>\n"
    )
