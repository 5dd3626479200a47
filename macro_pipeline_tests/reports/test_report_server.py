"""The reports directory served on 127.0.0.1 (``reports/server.py``), as ``macro-pipeline dev``
starts it: a real report written from the demo warehouse in PostgreSQL, fetched over HTTP;
loopback only; nothing outside the directory; gone with the process that started it; and the
link the ``backtest_metrics`` and ``leaderboard`` materializations carry opens that report."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest

from macro_pipeline.defs.backtest.assets import backtest, backtest_metrics, leaderboard, signals
from macro_pipeline.defs.resources import WarehouseResource
from macro_pipeline.reports import served_url, write_strategy_report
from macro_pipeline.reports import server as report_server
from macro_pipeline.settings import HOME_ENV, REPORTS_PORT_ENV, load_settings
from macro_pipeline.strategies.config import load_builtin_configs
from macro_pipeline_tests.conftest import demo_with_strategies, postgres_instance


@pytest.fixture(scope="module")
def demo(databases):
    return demo_with_strategies(databases)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """GET ``path`` exactly as given (http.client sends it unnormalised: ``..`` stays ``..``)."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _wait_listening(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answers on 127.0.0.1:{port} after {timeout_s} s")


def _non_loopback_ipv4() -> str | None:
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    return None


def test_reports_port_comes_from_the_environment_with_a_default() -> None:
    assert load_settings({}).reports_port == 8765
    assert load_settings({REPORTS_PORT_ENV: "9123"}).reports_port == 9123
    for bad in ("0", "70000", "http"):
        with pytest.raises(ValueError, match=REPORTS_PORT_ENV):
            load_settings({REPORTS_PORT_ENV: bad})


def test_served_on_loopback_only_a_written_report_and_nothing_outside(demo, tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    port = _free_port()
    monkeypatch.setenv(HOME_ENV, str(home))
    monkeypatch.setenv(REPORTS_PORT_ENV, str(port))
    directory = report_server.reports_dir()
    assert directory == home.resolve() / "reports"
    # a real report of the demo warehouse, where `dev` serves it from
    from macro_pipeline.backtest.months import run_months

    assert {m.status for m in run_months(demo, "carry-simple", ["2015-01-01", "2015-02-01"])} == {"stored"}
    report = write_strategy_report(demo, "carry-simple")
    assert report.parent == directory
    url = served_url(report)
    assert url == f"http://127.0.0.1:{port}/strategy-carry-simple.html"
    assert served_url(tmp_path / "elsewhere.html") is None  # not in the reports directory: no link

    secret = tmp_path / "home" / "secret.txt"  # beside the reports directory, not in it
    secret.write_text("not a report")
    (directory / "link-out.txt").symlink_to(secret)
    proc, _ = report_server.start(directory, port)
    try:
        _wait_listening(port)
        # bound to 127.0.0.1 and nothing else
        listening = [c.laddr for c in psutil.Process(proc.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening == [("127.0.0.1", port)]
        if (other := _non_loopback_ipv4()) is not None:
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=2).close()
        # the report, byte for byte
        status, body = _get(port, "/strategy-carry-simple.html")
        assert status == 200 and body == report.read_bytes() and b"<svg" in body
        status, listing = _get(port, "/")
        assert status == 200 and b"strategy-carry-simple.html" in listing
        # nothing outside the directory: .. in every spelling, an absolute path, a link pointing out
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%2E%2E%2Fsecret.txt",
                     "/x/../../secret.txt", "//" + str(secret), "/" + str(secret), "/link-out.txt",
                     "/../home/secret.txt", "/nope.html"):
            status, body = _get(port, path)
            assert status in (403, 404), (path, status)
            assert b"not a report" not in body, path
        # read-only
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("PUT", "/x.html", body=b"x")
        assert conn.getresponse().status == 501 and not (directory / "x.html").exists()
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_busy_port_fails_before_anything_starts_or_gives_way_when_asked(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match=f"cannot serve reports on 127.0.0.1:{taken.getsockname()[1]}"):
            report_server.start(tmp_path, taken.getsockname()[1])
        # the default port gives way to a free one when asked (dev, with no port set)
        proc, port = report_server.start(tmp_path, taken.getsockname()[1], any_port_if_busy=True)
        try:
            assert port != taken.getsockname()[1]
            _wait_listening(port)
        finally:
            proc.terminate()
            proc.wait(10)


def test_the_server_ends_with_the_process_that_started_it(tmp_path) -> None:
    """As under ``dev``: the starter becomes another program (exec, same pid) and the server keeps
    serving; when that program exits, the server exits too."""
    port = _free_port()
    (tmp_path / "r.html").write_text("<p>r</p>")
    starter = textwrap.dedent(f"""
        import os, sys
        from macro_pipeline.reports import server
        proc, _ = server.start({str(tmp_path)!r}, {port})
        print(proc.pid, flush=True)
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(4)"])
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True, env=env)
    child = psutil.Process(int(parent.stdout.readline()))
    try:
        _wait_listening(port)
        assert parent.poll() is None  # the exec'd program still runs: the server serves
        assert _get(port, "/r.html") == (200, b"<p>r</p>")
        parent.wait(20)
        child.wait(10)  # gone within the half-second check after its parent
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        if child.is_running():
            child.kill()
        parent.stdout.close()


def test_materializations_link_their_report_on_the_server(demo, databases, tmp_path, monkeypatch) -> None:
    """``backtest_metrics`` and ``leaderboard`` carry a URL metadata value to their report on the
    server (beside the file path); the link, followed, returns the report the asset wrote."""
    port = _free_port()
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(REPORTS_PORT_ENV, str(port))
    resources = {"warehouse": WarehouseResource(url=demo.url.render_as_string(hide_password=False))}
    key = dg.MultiPartitionKey({"month": "2015-01-01", "strategy": "carry-simple"})
    with postgres_instance(databases) as instance:
        instance.add_dynamic_partitions("strategy", [c.strategy_id for c in load_builtin_configs()])
        result = dg.materialize([signals, backtest, backtest_metrics], partition_key=key, instance=instance,
                                resources=resources)
        assert result.success
        board = dg.materialize([leaderboard], instance=instance, resources=resources)
        assert board.success
    meta = next(e for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == "backtest_metrics").step_materialization_data.materialization.metadata
    board_meta = board.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata
    assert isinstance(meta["report_url"], dg.UrlMetadataValue) and isinstance(meta["report"], dg.PathMetadataValue)
    assert meta["report_url"].value == f"http://127.0.0.1:{port}/strategy-carry-simple.html"
    assert board_meta["comparison_report_url"].value == f"http://127.0.0.1:{port}/leaderboard.html"
    proc, _ = report_server.start(report_server.reports_dir(), port)
    try:
        _wait_listening(port)
        for url_meta, path_meta in ((meta["report_url"], meta["report"]),
                                    (board_meta["comparison_report_url"], board_meta["comparison_report"])):
            status, body = _get(port, url_meta.value.split(str(port), 1)[1])
            assert status == 200 and body == Path(path_meta.value).read_bytes()
    finally:
        proc.terminate()
        proc.wait(10)


def test_dev_starts_the_report_server_before_it_becomes_dagster_dev(tmp_path, monkeypatch, capsys) -> None:
    """``macro-pipeline dev`` up to its exec: the reports directory is served on the configured
    port, and then the process becomes ``dagster dev`` (its exec replaced here by a stop)."""
    import argparse

    from macro_pipeline.cli import dev

    port = _free_port()
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(REPORTS_PORT_ENV, str(port))
    monkeypatch.setattr(dev.instance, "prepare", lambda settings=None: {"DAGSTER_HOME": str(tmp_path / "dg")})

    class Exec(Exception):
        pass

    def fake_exec(path, argv, env):
        raise Exec(argv, env)

    monkeypatch.setattr(dev.os, "execve", fake_exec)
    before = {p.pid for p in psutil.Process().children()}
    with pytest.raises(Exec) as stopped:
        dev.cmd_dev(argparse.Namespace(host="127.0.0.1", port=3999))
    assert stopped.value.args[0][1:4] == ["-m", "dagster", "dev"]
    assert stopped.value.args[1][REPORTS_PORT_ENV] == str(port)  # what the code server's links use
    server = [p for p in psutil.Process().children() if p.pid not in before
              and "macro_pipeline.reports.server" in p.cmdline()]
    assert len(server) == 1
    try:
        _wait_listening(port)
        (tmp_path / "home" / "reports" / "x.html").write_text("<p>x</p>")
        assert _get(port, "/x.html") == (200, b"<p>x</p>")
        assert f"reports on http://127.0.0.1:{port}/" in capsys.readouterr().out
    finally:
        server[0].terminate()
        server[0].wait(10)
