"""Start-up stays fast: ``macro-pipeline --help`` imports neither Dagster, matplotlib nor numba,
and a one-off backtest imports numba (it simulates) but neither Dagster nor matplotlib."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from macro_pipeline.settings import DATABASE_URL_ENV
from macro_pipeline_tests.conftest import demo_with_strategies

HEAVY = ("dagster", "matplotlib", "numba")
PROBE = """
import json, sys
from macro_pipeline import cli
try:
    code = cli.main({argv!r})
except SystemExit as exc:
    code = exc.code
print(json.dumps([code, sorted(m for m in {heavy!r} if m in sys.modules)]), file=sys.stderr)
"""


def _heavy_modules_loaded(argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    """The heavy packages a fresh process running ``macro-pipeline argv`` imported (it must
    succeed)."""
    proc = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    code, loaded = json.loads(proc.stderr.strip().splitlines()[-1])
    assert code in (0, None), proc.stderr
    return loaded


def test_help_imports_neither_dagster_matplotlib_nor_numba():
    assert _heavy_modules_loaded(["--help"]) == []


def test_strategies_add_help_lists_the_kinds_and_only_then_imports_them():
    """The kinds (and with them the engine's numba) are imported when their help is printed."""
    proc = subprocess.run([sys.executable, "-m", "macro_pipeline.cli", "strategies", "add", "--help"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "one of buy_and_hold, ema_crossover" in proc.stdout
    assert "funding_carry: universe CROSS_ASSET" in proc.stdout and "entry_threshold" in proc.stdout
    assert _heavy_modules_loaded(["strategies", "--help"]) == []


def test_one_off_backtest_imports_numba_but_neither_dagster_nor_matplotlib(databases):
    """A fresh ``macro-pipeline backtest`` simulates (numba) and stores its run; the
    orchestrator and the charts stay out."""
    demo = demo_with_strategies(databases)
    env = {**os.environ, DATABASE_URL_ENV: demo.url.render_as_string(hide_password=False)}
    argv = ["backtest", "--strategy", "ema-us-eq20", "--start", "2021-01-01", "--end", "2021-12-31", "--json"]
    assert _heavy_modules_loaded(argv, env) == ["numba"]
