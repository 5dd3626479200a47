"""Room: warehouse/finite. How an undefined number is stored and shown: as NULL / None.

A metric the engine cannot compute (Sharpe of one return, a ratio over zero) is NaN or infinite;
JSON and the ``metrics`` table hold no such value, and a reader shows it as n/a. The results
writer (``runs.py``), the sweeps writer (``sweeps.py``), the report data (``reports/data.py``) and
the Dagster metadata of backtests and sweeps (``defs/backtest/assets.py``, ``defs/research/sweep.py``)
all use this one rule.
"""

from __future__ import annotations

import math
from typing import Any


def finite_or_none(x: Any) -> float | None:
    """``x`` as a float when it is a finite number; None when it is NaN, infinite, None or not a
    number at all."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
