"""The Dagster code location ``macro_pipeline.defs`` (named by ``workspace.yaml`` and
``deploy/k8s/values.yaml``): its ``Definitions`` live in ``definitions.py``.

Layout: ``definitions.py`` (the Definitions), ``resources.py`` (the warehouse), ``instance.py``
(Dagster's instance home and storage), ``launcher.py`` (the run launcher ``dagster.yaml`` names),
``executors.py`` and ``celery_app.py`` (in-process or Celery steps), ``ingest/`` (ingest assets and
their checks), ``backtest/`` (signals, backtest, metrics, leaderboard: assets, checks, partitions,
per-partition metadata), ``automation/`` (jobs, sensors, schedules), ``research/`` (sweeps).

``defs`` is loaded on first access (PEP 562 ``__getattr__``; Dagster finds it through ``dir()``):
``defs.launcher`` is named by ``dagster.yaml``, so every process that opens the instance (the CLI,
the webserver, the daemon) imports this package, and ``defs.instance`` serves CLI commands that
must start fast; neither should load the whole code location.
"""

import importlib

__all__ = ["defs"]


def __getattr__(name: str):
    if name == "defs":  # imported here, on first use, to keep the start-up of the above fast
        value = importlib.import_module("macro_pipeline.defs.definitions").defs
        globals()["defs"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "defs"})
