"""macro_pipeline: point-in-time correct, reproducible cross-asset backtests on Dagster + PostgreSQL.

Layers never reach upward: ``engine`` (pure numpy) <- ``warehouse`` (SQL) <- ``defs`` (Dagster)
<- ``cli``.
"""

__version__ = "0.1.0"
