"""Backtest reports: one self-contained HTML file per run, per strategy history, per sweep, or a
comparison.

Layer: above ``engine``, ``warehouse`` and ``backtest`` (it reads stored runs), below ``defs`` and
``cli`` (which call the functions here). A page inlines every style and chart (matplotlib SVG, no
script), so it opens with no network.

Rooms: ``data.py`` (what a report is about: the `Subject` and its derived series),
``queries.py`` (the warehouse reads composed; the SQL is in ``warehouse/report_reads.py``),
``charts.py`` (SVG), ``formatting.py`` (numbers for people), ``blocks.py`` and ``templates/``
(jinja2 with autoescape), ``render.py`` (run, strategy and comparison pages), ``sweep.py`` (the
sweep page), ``files.py`` (writing them), ``server.py`` (serving them on 127.0.0.1).

- ``write_run_report(engine, run_id, out=None, benchmark=None) -> Path``: one stored run.
- ``write_strategy_report(engine, strategy_id, out=None, benchmark=None) -> Path``: a strategy's
  full history, stitched from its current monthly pipeline runs.
- ``write_comparison(engine, ids, out=None) -> Path``: run ids and/or strategy ids side by side.
- ``write_reports``: bulk, with a progress bar.
- ``reports_dir()``: ``$MACRO_PIPELINE_HOME/reports``, the default destination.
- ``served_url(path)``: the report's address on the 127.0.0.1 server ``macro-pipeline dev`` runs
  for the reports directory (``server.py``), which the Dagster assets link to.

``out`` may be a file or an existing directory (the default file name goes inside). The
benchmark defaults to the demo data's S&P 500 index (``SPX``).

The names above are loaded on first access (PEP 562 ``__getattr__``): they pull in matplotlib
and the engine (numba); the command line imports ``formatting`` at start-up, and ``server.py``
runs as a process of its own under ``macro-pipeline dev``: neither may load them.
"""

import importlib

# name -> the module of this package that defines it
_HOME = {
    "DEFAULT_BENCHMARK": "data",
    "UnknownSubject": "data",
    "ReportWriteError": "files",
    "reports_dir": "files",
    "served_url": "files",
    "write_comparison": "files",
    "write_reports": "files",
    "write_run_report": "files",
    "write_strategy_report": "files",
    "write_sweep_report": "files",
    "render_comparison": "render",
    "render_run_report": "render",
    "render_strategy_report": "render",
}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _HOME:  # imported here, on first use, to keep the CLI's start-up fast
        value = getattr(importlib.import_module(f"macro_pipeline.reports.{_HOME[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
