"""Writing reports to files: ``write_*`` render a page and write it atomically where asked (a
file, or a directory for the default name; default the reports directory) and return the path.
A place that cannot be written fails before any work is done (`ReportWriteError`).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import sqlalchemy as sa
from tqdm import tqdm

from macro_pipeline.reports import server
from macro_pipeline.reports.data import Subject, resolve_run_id, resolve_subject
from macro_pipeline.reports.render import (
    render_comparison,
    render_run_report,
    render_strategy_report,
)
from macro_pipeline.reports.server import reports_dir
from macro_pipeline.reports.sweep import render_sweep_report
from macro_pipeline.settings import HOME_ENV, REPORTS_PORT_ENV, load_settings
from macro_pipeline.warehouse.sweeps import resolve_sweep_id


class ReportWriteError(ValueError):
    """The report file cannot be written where asked."""


def served_url(path: str | os.PathLike, settings=None) -> str | None:
    """The address of a report in the reports directory on the server ``macro-pipeline dev``
    runs (``http://127.0.0.1:<reports port>/<name>``); None for a file outside that directory.
    Cheap enough per partition's metadata: the directory and port are resolved once per
    environment."""
    if settings is None:
        directory, port = _served_root(os.environ.get(HOME_ENV), os.environ.get(REPORTS_PORT_ENV), os.getcwd())
    else:
        directory, port = reports_dir(settings), settings.reports_port
    return server.report_url(path, directory, port)


@functools.lru_cache(maxsize=8)
def _served_root(home: str | None, port: str | None, _cwd: str) -> tuple[Path, int]:
    settings = load_settings({HOME_ENV: home or "", REPORTS_PORT_ENV: port or ""})
    return reports_dir(settings), settings.reports_port


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:120]


def _target(out: str | os.PathLike | None, default_name: str) -> Path:
    """``out`` as a file, or ``default_name`` inside ``out`` when it is an existing directory (or
    inside the default reports directory when ``out`` is None). Fails before any work is done
    when the place cannot be written."""
    path = reports_dir() / default_name if out is None else Path(out).expanduser()
    if path.is_dir():
        path = path / default_name
    path = _regular_target(path)
    _check_directory(path.parent, path)
    return path


def _regular_target(path: Path) -> Path:
    """The file a report replaces: ``path`` itself, or the file a symbolic link at ``path`` names
    (a link is written through, so it keeps pointing at the new report). Anything that exists and
    is not a regular file (a device such as /dev/full, a FIFO, a socket) is refused: the report is
    written to a temporary file renamed over the target, which would replace the special file."""
    target = path.resolve() if path.is_symlink() else path
    if target.exists() and not target.is_file():
        via = f" (the symbolic link {path} points to it)" if target != path else ""
        raise ReportWriteError(f"cannot write report to {target}{via}: not a regular file "
                               "(a device, FIFO or socket); give a file or directory path")
    return target


def _check_directory(directory: Path, target: Path) -> None:
    """``directory`` exists and is writable, or can be created below a writable directory."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ReportWriteError(f"cannot write report to {target}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ReportWriteError(f"cannot write report to {target}: {existing} is not writable")


def _write(path: Path, text: str) -> Path:
    """Write atomically (a temporary file renamed over the target): never a half-written report."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        _regular_target(path)  # still no special file there (it may have appeared meanwhile)
        os.replace(tmp, path)
    except ReportWriteError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ReportWriteError(f"cannot write report to {path}: {exc.strerror or exc}") from exc
    return path.resolve()


def write_run_report(engine: sa.Engine, run_id: str, out: str | os.PathLike | None = None,
                     benchmark: str | None = None) -> Path:
    """Write the report of stored run ``run_id`` (full id or unique prefix) to ``out`` (a file,
    or a directory for ``run-<id>.html``; default the reports directory); returns the path."""
    run_id = resolve_run_id(engine, run_id)
    path = _target(out, f"run-{run_id}.html")
    return _write(path, render_run_report(engine, run_id, benchmark))


def write_strategy_report(engine: sa.Engine, strategy_id: str, out: str | os.PathLike | None = None,
                          benchmark: str | None = None) -> Path:
    """Write the full-history report of ``strategy_id`` (its current monthly pipeline runs,
    stitched) to ``out`` (file or directory for ``strategy-<id>.html``); returns the path."""
    path = _target(out, f"strategy-{_safe(strategy_id)}.html")
    return _write(path, render_strategy_report(engine, strategy_id, benchmark))


def write_comparison(engine: sa.Engine, ids: Sequence[str | Subject], out: str | os.PathLike | None = None) -> Path:
    """Write the comparison of ``ids`` (run ids, unique prefixes or strategy ids, at least one;
    already loaded `Subject`s are taken as they are) to ``out`` (file or directory); returns the
    path."""
    if not ids:
        raise ValueError("compare needs at least one run or strategy id")
    subjects = [i if isinstance(i, Subject) else resolve_subject(engine, i) for i in ids]
    name = "compare-" + "_".join(_safe(s.ident[:12] if s.kind == "run" else s.ident) for s in subjects)[:100] + ".html"
    path = _target(out, name)
    return _write(path, render_comparison(engine, subjects))


def write_reports(engine: sa.Engine, *, run_ids: Iterable[str] = (), strategy_ids: Iterable[str] = (),
                  out_dir: str | os.PathLike | None = None, benchmark: str | None = None,
                  progress: bool | None = None) -> list[Path]:
    """Bulk: one report per run and per strategy into ``out_dir`` (default the reports
    directory), with a progress bar on stderr (default: when stderr is a terminal)."""
    targets = [("run", r) for r in run_ids] + [("strategy", s) for s in strategy_ids]
    directory = reports_dir() if out_dir is None else Path(out_dir).expanduser()
    if directory.exists() and not directory.is_dir():
        raise ReportWriteError(f"cannot write reports to {directory}: it is a file, not a directory")
    _check_directory(directory, directory)  # fail before the work when it cannot be written
    paths = []
    show = sys.stderr.isatty() if progress is None else progress
    for kind, ident in tqdm(targets, desc="reports", unit="report", disable=not show):
        if kind == "run":
            paths.append(write_run_report(engine, ident, directory / f"run-{resolve_run_id(engine, ident)}.html",
                                          benchmark))
        else:
            paths.append(write_strategy_report(engine, ident, directory / f"strategy-{_safe(ident)}.html", benchmark))
    return paths


def write_sweep_report(engine: sa.Engine, sweep: str, out: str | os.PathLike | None = None) -> Path:
    """Write the report of a stored sweep (id, 6+ character prefix or name) to ``out`` (file or
    directory for ``sweep-<id>.html``; default the reports directory); returns the path."""
    sweep_id = resolve_sweep_id(engine, sweep)
    path = _target(out, f"sweep-{sweep_id[:16]}.html")
    return _write(path, render_sweep_report(engine, sweep_id))
