"""HTML blocks of a report page, rendered from the jinja2 templates in ``templates/`` with
autoescape on: every text a block receives is escaped, and what a block returns is ``Markup``
(safe to nest in another block). The only other markup is the SVG charts, marked safe where
they are made (``charts._svg``). Joining blocks: ``join(...)`` (a plain ``"".join`` would lose
the mark, and the next block would escape the markup as text).

Numbers that tests or readers may want exactly carry their full value in ``data-value``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from macro_pipeline import __version__
from macro_pipeline.reports.formatting import (
    data_value,
    fmt_metric,
    fmt_pct,
    is_missing,
    one_decimal,
    sign_class,
)

ENV = jinja2.Environment(loader=jinja2.PackageLoader("macro_pipeline.reports", "templates"),
                         autoescape=True, undefined=jinja2.StrictUndefined)
_BLOCKS = ENV.get_template("blocks.html.j2").module
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Cell:
    """A table cell with attributes (``data-value``, ``class``, ``style``...); ``tag`` td or th."""

    text: Any
    attrs: tuple[tuple[str, str], ...] = ()
    tag: str = "td"


def cell(text: Any, tag: str = "td", **attrs: str) -> Cell:
    """A cell; attribute names with ``_`` become ``-`` (``data_value=`` -> ``data-value``)."""
    return Cell(text, tuple((k.replace("_", "-"), v) for k, v in attrs.items()), tag)


def join(parts: Iterable[Markup | str]) -> Markup:
    """Blocks (and escaped text) one after the other."""
    return Markup("").join(parts)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, cls: str = "") -> Markup:
    """A table: each cell is text (escaped) or a `Cell`."""
    return _BLOCKS.table(list(header), [list(r) for r in rows], cls)


def kpis(items: Sequence[tuple[str, str, str]]) -> Markup:
    """Headline figures: (label, text, css class)."""
    return _BLOCKS.kpis(list(items))


def section(section_id: str, title: str, body: Markup | str) -> Markup:
    return _BLOCKS.section(section_id, title, body)


def heading(text: str) -> Markup:
    return _BLOCKS.heading(text)


def caption(text: str) -> Markup:
    return _BLOCKS.caption(text)


def paragraph(text: str, cls: str = "") -> Markup:
    return _BLOCKS.paragraph(text, cls)


def bullets(items: Sequence[str]) -> Markup:
    return _BLOCKS.bullets(list(items))


def notes(items: Sequence[str]) -> Markup:
    """The "Read this first" box; nothing when there is no note."""
    return _BLOCKS.notes(list(items))


def preformatted(text: str) -> Markup:
    return _BLOCKS.preformatted(text)


def details(details_id: str, summary: str, body: Markup | str) -> Markup:
    """A collapsed block (scrolling when long)."""
    return _BLOCKS.details(details_id, summary, body)


def lineage_block(items: Mapping[str, Any], config: dict[str, Any] | None) -> Markup:
    """The lineage as a definition list, then the engine config as JSON when given."""
    config_json = None if config is None else json.dumps(config, indent=2, sort_keys=True, default=str)
    return _BLOCKS.lineage([(k, v) for k, v in items.items()], config_json)


def metric_cell(name: str, value: Any) -> Cell:
    """A metric in its unit, with its full value in ``data-value`` (sign-coloured for returns)."""
    return cell(fmt_metric(name, value), data_metric=name, data_value=data_value(value),
                **{"class": sign_class(value) if name in ("total_return", "cagr") else ""})


def heat_color(value: float, scale: float) -> str:
    """Green (positive) or red (negative), stronger towards ``scale``; white when missing."""
    if is_missing(value):
        return "#ffffff"
    t = max(-1.0, min(1.0, value / scale))
    base = (46, 125, 50) if t >= 0 else (198, 40, 40)
    mix = abs(t) * 0.75
    r, g, b = (round(255 + (c - 255) * mix) for c in base)
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(table_: pd.DataFrame) -> Markup:
    """Year x month returns with a yearly total column, each cell coloured by its sign and size."""
    months = table_[list(range(1, 13))]
    finite = months.abs().stack()
    scale = max(0.02, float(finite.quantile(0.95)) if len(finite) else 0.02)
    rows = []
    for year, row in table_.iterrows():
        cells: list[Any] = [str(int(year))]
        for m in range(1, 13):
            v = row[m]
            cells.append(cell("" if is_missing(v) else one_decimal(100 * v), data_month=f"{int(year)}-{m:02d}",
                              data_value=data_value(v), style=f"background:{heat_color(v, scale)}"))
        yv = row["year"]
        cells.append(cell(fmt_pct(yv, 1), data_year=str(int(year)), data_value=data_value(yv),
                          **{"class": f"total {sign_class(yv)}"}))
        rows.append(cells)
    return table(["year", *MONTHS, "year total"], rows, cls="heatmap")


def page(title: str, subtitle: str, body: Markup) -> str:
    """The whole page (``templates/page.html.j2``)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return ENV.get_template("page.html.j2").render(title=title, subtitle=subtitle, body=body,
                                                   version=__version__, stamp=stamp) + "\n"
