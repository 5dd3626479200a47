"""Issue 13 item 2: ``report --out`` and ``compare --html`` must never replace a special file.

Measured: run as root, ``--out /dev/full`` replaced the device with an HTML file (exit 0); a
symbolic link and a FIFO were replaced the same way. Now: a device, FIFO or socket is refused
(exit 2, one line, nothing written); a symbolic link is written through (the link stays, the file
it names holds the report).
"""

from __future__ import annotations

import os
import stat

import pytest

from macro_pipeline import cli
from macro_pipeline.backtest.one_off import run_backtest
from macro_pipeline.settings import DATABASE_URL_ENV, HOME_ENV
from macro_pipeline_tests.conftest import demo_with_strategies


@pytest.fixture(scope="module")
def run_id(databases):
    engine = demo_with_strategies(databases)
    return engine, run_backtest(engine, "bh-us-eq20", "2016-03-01", "2016-03-31").run_id


@pytest.fixture
def run_cli(run_id, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(DATABASE_URL_ENV, run_id[0].url.render_as_string(hide_password=False))
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def _special_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = {"fifo": fifo}
    if os.geteuid() == 0:  # a character device like /dev/full (1, 7), made here: never the real one
        dev = tmp_path / "full"
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        out["device"] = dev
    link = tmp_path / "link-to-fifo"
    link.symlink_to(fifo)
    out["link to fifo"] = link
    return out


def test_report_out_dev_full_fifo_and_link_to_fifo_are_refused_not_replaced(run_cli, run_id, tmp_path):
    for what, path in _special_files(tmp_path).items():
        kind = stat.S_IFMT(os.stat(path).st_mode)
        for args in (("report", run_id[1], "--out", str(path)), ("compare", run_id[1], "--html", str(path))):
            code, out, err = run_cli(*args)
            assert code == 2, (what, args, err)
            assert "not a regular file" in err and err.count("\n") == 1 and "Traceback" not in err, err
            assert stat.S_IFMT(os.stat(path).st_mode) == kind, f"{what} was replaced"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_report_out_through_a_symlink_writes_the_file_it_names_and_keeps_the_link(run_cli, run_id, tmp_path):
    real = tmp_path / "real.html"
    real.write_text("old")
    link = tmp_path / "link.html"
    link.symlink_to(real)
    code, out, _ = run_cli("report", run_id[1], "--out", str(link))
    assert code == 0 and out == f"wrote {real}\n"
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text().startswith("<!DOCTYPE html>")
    dangling = tmp_path / "dangling.html"
    dangling.symlink_to(tmp_path / "new.html")
    code, _, _ = run_cli("compare", run_id[1], "--html", str(dangling))
    assert code == 0 and dangling.is_symlink() and (tmp_path / "new.html").read_text().startswith("<!DOCTYPE html>")
