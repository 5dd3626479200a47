"""The Dagster code location ``macro_pipeline.defs`` (named by ``workspace.yaml`` and
``deploy/k8s/values.yaml``): its ``Definitions`` live in ``definitions.py``.

Layout: ``definitions.py`` (the Definitions), ``resources.py`` (the warehouse), ``instance.py``
(Dagster's instance home and storage), ``launcher.py`` (the run launcher ``dagster.yaml`` names),
``executors.py`` and ``celery_app.py`` (in-process or Celery steps), ``ingest/`` (ingest assets and
their checks), ``backtest/`` (signals, backtest, metrics, leaderboard: assets, checks, partitions,
per-partition metadata), ``automation/`` (jobs, sensors, schedules), ``research/`` (sweeps).
"""

from macro_pipeline.defs.definitions import defs

__all__ = ["defs"]
