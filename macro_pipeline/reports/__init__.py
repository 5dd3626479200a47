"""Backtest reports: one self-contained HTML file per run, per strategy history, per sweep, or a
comparison.

Layer: above ``engine``, ``warehouse`` and ``backtests`` (it reads stored runs), below ``defs`` and
``cli`` (which call the functions here). A page inlines every style and chart (matplotlib SVG, no
script), so it opens with no network.

Rooms: ``data.py`` (what a report is about: the `Subject` and its derived series),
``queries.py`` (the warehouse reads composed; the SQL is in ``warehouse/report_reads.py``),
``charts.py`` (SVG), ``formatting.py`` (numbers for people), ``blocks.py`` and ``templates/``
(jinja2 with autoescape), ``render.py`` (run, strategy and comparison pages), ``sweep.py`` (the
sweep page), ``files.py`` (writing them).

- ``write_run_report(engine, run_id, out=None, benchmark=None) -> Path``: one stored run.
- ``write_strategy_report(engine, strategy_id, out=None, benchmark=None) -> Path``: a strategy's
  full history, stitched from its current monthly pipeline runs.
- ``write_comparison(engine, ids, out=None) -> Path``: run ids and/or strategy ids side by side.
- ``write_reports``: bulk, with a progress bar.
- ``reports_dir()``: ``$MACRO_PIPELINE_HOME/reports``, the default destination.

``out`` may be a file or an existing directory (the default file name goes inside). The
benchmark defaults to the demo data's S&P 500 index (``SPX``).
"""

from macro_pipeline.reports.data import DEFAULT_BENCHMARK, UnknownSubject
from macro_pipeline.reports.files import (
    ReportWriteError,
    reports_dir,
    write_comparison,
    write_reports,
    write_run_report,
    write_strategy_report,
    write_sweep_report,
)
from macro_pipeline.reports.render import (
    render_comparison,
    render_run_report,
    render_strategy_report,
)

__all__ = [
    "DEFAULT_BENCHMARK",
    "ReportWriteError",
    "UnknownSubject",
    "render_comparison",
    "render_run_report",
    "render_strategy_report",
    "reports_dir",
    "write_comparison",
    "write_reports",
    "write_run_report",
    "write_strategy_report",
    "write_sweep_report",
]
