"""The service layer: strategy, signal snapshot, engine and stored run tied together. No SQL here
(it is in ``macro_pipeline.warehouse``); the CLI and the Dagster definitions call these modules.

- ``configs``: a stored strategy configuration as a ``StrategyConfig``; the built-in ones registered.
- ``one_off``: one backtest over any window (the strategy's view, the engine's inputs, the benchmark).
- ``months``: monthly chains: a stretch of months loaded, simulated and stored; the stitched history.
- ``reruns``: which months run after new data, a registration or a night (``Rerun``).
- ``leaderboard``: every strategy ranked on its stitched history.
"""
