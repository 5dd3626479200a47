"""Backtest reports: one self-contained HTML file per run, per strategy history, or comparison.

Layer: above ``engine`` and ``warehouse`` (it reads stored runs), below ``defs`` and ``cli``
(which call the functions here). A page inlines every style and chart (matplotlib SVG, no
script), so it opens with no network.

- ``write_run_report(engine, run_id, out=None, benchmark=None) -> Path``: one stored run.
- ``write_strategy_report(engine, strategy_id, out=None, benchmark=None) -> Path``: a strategy's
  full history, stitched from its current monthly pipeline runs.
- ``write_comparison(engine, ids, out=None) -> Path``: run ids and/or strategy ids side by side.
- ``write_reports`` / ``write_strategy_reports``: bulk, with a progress bar.
- ``reports_dir()``: ``$MACRO_PIPELINE_HOME/reports``, the default destination.

``out`` may be a file or an existing directory (the default file name goes inside). The
benchmark defaults to the demo data's S&P 500 index (``SPX``).
"""

from macro_pipeline.reports.data import DEFAULT_BENCHMARK, UnknownSubject
from macro_pipeline.reports.report import (
    ReportWriteError,
    render_comparison,
    render_run_report,
    render_strategy_report,
    reports_dir,
    write_comparison,
    write_reports,
    write_run_report,
    write_strategy_report,
    write_strategy_reports,
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
    "write_strategy_reports",
]
