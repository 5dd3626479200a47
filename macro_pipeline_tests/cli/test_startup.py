"""``macro-pipeline --help`` starts fast: it imports neither Dagster, matplotlib nor numba."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("dagster", "matplotlib", "numba")
PROBE = """
import json, sys
from macro_pipeline import cli
try:
    cli.main({argv!r})
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def _heavy_modules_loaded(argv: list[str]) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stderr.strip().splitlines()[-1])


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
