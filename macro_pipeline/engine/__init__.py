"""Pure backtest engine: target weights in, event-correct portfolio accounting out.

No I/O, no database, no Dagster: numpy/pandas arrays in, numpy/pandas out, with a compiled
(numba, cached on disk) kernel. Semantics: DESIGN.md section 2; timing in `simulate`.

Public API: `BacktestConfig`, `simulate` -> `BacktestResult`, `simulate_many` ->
`SweepResult`, `EndState` (continuation), `compute_metrics`, `rebalance_dates`,
`calendar_sessions`, `warm_up` (compile or load the kernels ahead of the first call),
`ENGINE_VERSION`.
"""

from importlib import import_module
from typing import TYPE_CHECKING

# Lazy (PEP 562): `import macro_pipeline.engine.calendar` (the warehouse needs sessions) must not
# compile or load the numba kernel; the public names load their module on first use.
_HOME = {
    "calendar_sessions": "calendar", "rebalance_dates": "calendar",
    "BacktestConfig": "config", "OptimisticExecutionWarning": "config",
    "METRIC_KEYS": "metrics", "compute_metrics": "metrics",
    "BacktestResult": "result",
    "SweepResult": "simulation", "simulate": "simulation", "simulate_many": "simulation", "warm_up": "simulation",
    "EndState": "state", "OpenLots": "state", "PendingOrder": "state",
    "ENGINE_VERSION": "version",
}

if TYPE_CHECKING:
    from macro_pipeline.engine.calendar import calendar_sessions, rebalance_dates
    from macro_pipeline.engine.config import BacktestConfig, OptimisticExecutionWarning
    from macro_pipeline.engine.metrics import METRIC_KEYS, compute_metrics
    from macro_pipeline.engine.result import BacktestResult
    from macro_pipeline.engine.simulation import SweepResult, simulate, simulate_many, warm_up
    from macro_pipeline.engine.state import EndState, OpenLots, PendingOrder
    from macro_pipeline.engine.version import ENGINE_VERSION


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ENGINE_VERSION",
    "METRIC_KEYS",
    "BacktestConfig",
    "BacktestResult",
    "EndState",
    "OpenLots",
    "OptimisticExecutionWarning",
    "PendingOrder",
    "SweepResult",
    "calendar_sessions",
    "compute_metrics",
    "rebalance_dates",
    "simulate",
    "simulate_many",
    "warm_up",
]
