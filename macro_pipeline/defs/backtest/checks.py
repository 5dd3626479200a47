"""Asset checks of the strategy side: invariants of the signals and backtests stored.

Blocking checks stop downstream materializations when a failure would make results wrong.
Each check is one query of ``warehouse/checks.py`` (no business math here).

The checks of ``signals`` and ``backtest`` are ``check_specs`` of those assets, and their results
are emitted by the step that materializes them (``SIGNALS_CHECKS``/``signals_check_results``,
``BACKTEST_CHECKS``/``backtest_check_results``), right after the materializations: Dagster
resolves a check's target materialization when the result is emitted, so a result emitted by a
separate check step, after other runs (two run at once) had materialized the same asset, was
attached to another run's materialization, and the UI showed the latest one as never checked.
Blocking still holds: a failed blocking result fails the step after its materializations, so
downstream steps do not run. (The ``prices`` checks are separate ``@asset_check``s, in
``defs/ingest/checks.py``: ``prices`` is unpartitioned and only the ingest job writes it.)
"""

import dagster as dg
import sqlalchemy as sa

from macro_pipeline.warehouse.checks import (
    decisions_over_leverage,
    equity_invariant_violations,
    lookahead_violations,
)

BACKTEST_CHECKS = [
    dg.AssetCheckSpec("backtest_equity_invariant", asset="backtest", blocking=True,
                      description="equity == cash + net exposure at every stored session of every current run."),
]
SIGNALS_CHECKS = [
    dg.AssetCheckSpec("signals_within_leverage", asset="signals",
                      description="Gross weight of every decision within max leverage (1.0); the engine scales "
                                  "larger rows down, so this warns rather than blocks."),
    dg.AssetCheckSpec("signals_no_lookahead", asset="signals", blocking=True,
                      description="No look-ahead: no snapshot read data recorded after the watermark of a run that "
                                  "used it."),
]


def backtest_equity_invariant(engine: sa.Engine) -> dg.AssetCheckResult:
    bad = equity_invariant_violations(engine)
    return dg.AssetCheckResult(asset_key="backtest", check_name="backtest_equity_invariant", passed=bad == 0,
                               metadata={"violating_sessions": bad})


def signals_within_leverage(engine: sa.Engine) -> dg.AssetCheckResult:
    over = decisions_over_leverage(engine)
    return dg.AssetCheckResult(asset_key="signals", check_name="signals_within_leverage", passed=over == 0,
                               severity=dg.AssetCheckSeverity.WARN, metadata={"decisions_over_leverage": over})


def signals_no_lookahead(engine: sa.Engine) -> dg.AssetCheckResult:
    # every input watermark of a snapshot must be <= the system_as_of of each run consuming it
    bad = lookahead_violations(engine)
    return dg.AssetCheckResult(asset_key="signals", check_name="signals_no_lookahead", passed=bad == 0,
                               metadata={"violations": bad})


def signals_check_results(engine: sa.Engine) -> list[dg.AssetCheckResult]:
    return [signals_within_leverage(engine), signals_no_lookahead(engine)]


def backtest_check_results(engine: sa.Engine) -> list[dg.AssetCheckResult]:
    return [backtest_equity_invariant(engine)]

