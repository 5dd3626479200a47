"""One backtest over any window, end to end: strategy -> signal snapshot -> engine -> stored run
with lineage; and what every backtest (one-off or monthly, ``months``) reads: the strategy's
point-in-time view, the engine's inputs and configuration.

The CLI (`macro-pipeline backtest`) and the Dagster assets call these same functions.

Timing and data (DESIGN sections 1-2):
- Decisions are taken at the close of every session of the strategy's calendar. A strategy's
  weights are computed from a `PointInTimeView` over all sessions from the strategy's origin (the
  first day its universe has a member) to the window's end. Each cell it sees was known at that
  decision's time, so the weights on date d do not depend on the window asked for, only on data
  known at d. This is what makes a chain of monthly windows equal one long run.
- The snapshot keeps the weights of the window's decision dates. The engine executes them
  `execution_lag` sessions later, on prices as they were known at each session's close (the same
  view), with universe membership as known then, and funding settlements and corporate actions as
  stored up to `system_as_of`.
- `system_as_of` (default: now, read from the database clock) is recorded on the run. Rerunning
  with the same value reproduces the run bit for bit, even after later revisions.
- Current results and reproductions: a run computed now (no `system_as_of`, or one no older than
  the newest ingest batch) is the current result of its strategy, window and settings and
  supersedes the previous one. A run with an explicit `system_as_of` older than the data is a
  *reproduction*: it re-reads an earlier state of the warehouse, so it is stored (marked, with the
  id of the current run it reproduces) but never supersedes anything and never becomes current.
  Pipeline months are always computed on the current data (`months.load_month_inputs` refuses an
  older watermark).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from macro_pipeline.backtest.configs import load_strategy
from macro_pipeline.engine import ENGINE_VERSION, BacktestConfig, EndState
from macro_pipeline.engine.calendar import calendar_sessions
from macro_pipeline.strategies.base import CODE_VERSION
from macro_pipeline.strategies.config import StrategyConfig, build
from macro_pipeline.warehouse.pit import (
    DateLike,
    PointInTimeReader,
    current_watermark,
    data_watermark,
    utc,
)
from macro_pipeline.warehouse.runs import new_run_id, reproduced_run, store_run
from macro_pipeline.warehouse.snapshots import SignalSnapshot, write_snapshot
from macro_pipeline.warehouse.view import PointInTimeView, decision_times

if TYPE_CHECKING:
    from macro_pipeline.engine import BacktestResult


class NoDataYet(ValueError):
    """The window ends before the strategy's universe has any member (nothing to compute)."""


@dataclass
class BacktestOutcome:
    run_id: str | None
    snapshot_id: str
    snapshot_new: bool
    system_as_of: pd.Timestamp
    config: dict
    result: BacktestResult = field(repr=False)
    superseded: str | None = None
    reproduction: bool = False  # computed as of an older state than the data: stored, never current
    reproduces: str | None = None  # the current run of the same strategy, window and settings

    @property
    def metrics(self) -> dict:
        return self.result.metrics

    def to_json(self) -> dict:
        metrics = {k: (None if isinstance(v, float) and v != v else v) for k, v in self.metrics.items()
                   if k != "monthly_returns"}
        return {"run_id": self.run_id, "signal_snapshot_id": self.snapshot_id,
                "system_as_of": self.system_as_of.isoformat(), "config": self.config, "metrics": metrics,
                "reproduction": self.reproduction, "reproduces": self.reproduces}


def simulate(*args: Any, **kwargs: Any) -> BacktestResult:
    """``engine.simulate``."""
    # the simulation loads the compiled kernels (numba, ~0.5 s): imported on the first call, so
    # that importing this module does not, and `macro-pipeline backtest` can load them in a
    # thread while this module reads the warehouse (cli/backtest.py)
    from macro_pipeline.engine.simulation import simulate as engine_simulate

    return engine_simulate(*args, **kwargs)


# --------------------------------------------------------------------------- the strategy's view


@functools.cache
def _all_sessions(calendar: str) -> pd.DatetimeIndex:
    return pd.date_range("1985-01-01", "2035-12-31", freq="D") if calendar == "24/7" else calendar_sessions(calendar)


def sessions(calendar: str, start: DateLike, end: DateLike) -> pd.DatetimeIndex:
    """The calendar's sessions from ``start`` to ``end`` (both included): a slice of the cached
    whole calendar (a pipeline stretch asks once per month)."""
    every = _all_sessions(calendar)
    lo, hi = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    return every[every.searchsorted(lo, "left"):every.searchsorted(hi, "right")]


def strategy_origin(engine: sa.Engine, cfg, end: DateLike, system_as_of: pd.Timestamp) -> pd.Timestamp:
    """The first day the strategy's universe has a member, as known at the decision time of the
    last session up to ``end`` and recorded by ``system_as_of`` (``NoDataYet`` while none is)."""
    end_sessions = sessions(cfg.calendar, "1985-01-01", end)
    if len(end_sessions) == 0:
        raise ValueError(f"window ends {pd.Timestamp(end).date()}, before the data and the {cfg.calendar} "
                         "calendar start (1985)")
    reader = PointInTimeReader(engine, _decision_time(cfg.calendar, end_sessions[-1]), system_as_of)
    members = reader.universe(cfg.universe)
    if members.empty:
        raise NoDataYet(f"universe {cfg.universe!r} has no members known by {pd.Timestamp(end).date()}")
    return pd.Timestamp(members["valid_from"].min())


def _decision_time(calendar: str, day: pd.Timestamp) -> pd.Timestamp:
    return decision_times(pd.DatetimeIndex([day]), calendar).iloc[0]


def strategy_view(engine: sa.Engine, cfg, end: DateLike, system_as_of: DateLike | None,
                  view_class: type[PointInTimeView] = PointInTimeView) -> PointInTimeView:
    """The view a strategy computes on: every session from its origin to ``end`` (a ``view_class``:
    a sweep's ``SharedView``)."""
    sys_ts = current_watermark(engine) if system_as_of is None else utc(system_as_of)
    origin = strategy_origin(engine, cfg, end, sys_ts)
    days = sessions(cfg.calendar, origin, end)
    if len(days) == 0:
        raise NoDataYet(f"window ends {pd.Timestamp(end).date()}, before universe {cfg.universe!r} starts ({origin.date()})")
    return view_class(engine, days, calendar=cfg.calendar, system_as_of=sys_ts)


def generate_signals(engine: sa.Engine, cfg, start: DateLike, end: DateLike, *, system_as_of: DateLike | None = None,
                     view: PointInTimeView | None = None) -> tuple[SignalSnapshot, str, bool, PointInTimeView]:
    """Compute the strategy's weights for [start, end] and store them as an immutable snapshot.

    Returns (snapshot, its id, whether it was new, the view used)."""
    strategy = build(cfg)
    view = view or strategy_view(engine, cfg, end, system_as_of)
    if view.decision_dates[-1] < pd.Timestamp(start).normalize():
        window = pd.DataFrame()
    else:  # only the instruments the strategy trades
        window = strategy.weights(view, since=start).loc[:pd.Timestamp(end)]
    if window.empty:
        raise ValueError(f"no {cfg.calendar} decision dates for {cfg.strategy_id} in [{pd.Timestamp(start).date()}, "
                         f"{pd.Timestamp(end).date()}] (the universe starts {view.decision_dates[0].date()})")
    snap = SignalSnapshot(cfg.strategy_id, cfg.params_hash, window.index[0].date(), window.index[-1].date(),
                          view.input_watermarks(), CODE_VERSION, window)
    sid, new = write_snapshot(engine, snap)
    return snap, sid, new, view


# --------------------------------------------------------------------------- the engine's inputs and outputs


def engine_inputs(view: PointInTimeView, cfg, instruments: list[str], start: DateLike, end: DateLike) -> dict[str, Any]:
    """Prices, universe, funding and corporate actions for the engine over [start, end]."""
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    prices = view.session_prices(instruments).loc[lo:hi]
    have = prices.notna().any()
    if not have.any():
        raise ValueError(f"window [{lo.date()}, {hi.date()}] is outside the data: no prices for {instruments[:8]}")
    members = view.members(cfg.universe).reindex(columns=instruments, fill_value=False).loc[lo:hi]
    settle = view.settlements(instruments)
    bars = view.decision_dates[settle["bar"].to_numpy(dtype=int)] if len(settle) else pd.DatetimeIndex([])
    funding = settle.loc[(bars >= lo) & (bars <= hi), ["ts", "instrument", "rate"]]
    actions = view.corporate_actions(instruments)
    actions = actions[(pd.DatetimeIndex(actions["ex_date"]) >= lo) & (pd.DatetimeIndex(actions["ex_date"]) <= hi)]
    dividends = actions[actions["action"] == "dividend"].rename(columns={"value": "amount"})[["ex_date", "instrument", "amount"]]
    splits = actions[actions["action"] == "split"].rename(columns={"value": "ratio"})[["ex_date", "instrument", "ratio"]]
    return {"prices": prices, "universe": members, "funding": funding if len(funding) else None,
            "dividends": dividends if len(dividends) else None, "splits": splits if len(splits) else None}


def backtest_config(cfg, start: DateLike, end: DateLike, *, clean: bool = False, **overrides: Any) -> BacktestConfig:
    return BacktestConfig(start=pd.Timestamp(start).date(), end=pd.Timestamp(end).date(),
                          rebalance_frequency=cfg.rebalance, calendar=cfg.calendar, clean=clean, **overrides)


@dataclass
class Benchmark:
    """A strategy's benchmark over a window: ``equity`` on the strategy's calendar (the engine's
    clean run of ``config``), what it is (``label``) and its ``calendar``."""
    equity: pd.Series
    label: str
    calendar: str


def benchmark_config(cfg):
    """The benchmark configuration of strategy configuration ``cfg`` (a fair comparison, not a
    flattering one): for ``funding_carry`` its spot leg (``hedge``, else the traded instrument)
    bought and held (weight 1, so its daily rebalance never trades after the first buy); for every other kind an equal-weight buy-and-hold of its own universe,
    rebalanced monthly. Both run clean (no costs) on the strategy's calendar over adjusted
    closes, so they are total return wherever the strategy's prices are. Returns (config, label)."""
    if cfg.kind == "funding_carry":
        leg = cfg.params.get("hedge") or cfg.params["instrument"]
        # one instrument at weight 1 never drifts, so a daily rebalance trades nothing after the
        # first buy, and the leg is held from the first session the data allows
        bench = StrategyConfig("benchmark", "buy_and_hold", {"instruments": [leg]}, universe=cfg.universe,
                               rebalance="daily", calendar=cfg.calendar)
        return bench, f"{leg} bought and held (the spot leg of the carry trade)"
    bench = StrategyConfig("benchmark", "buy_and_hold", {}, universe=cfg.universe, rebalance="monthly",
                           calendar=cfg.calendar)
    return bench, (f"equal-weight buy-and-hold of {cfg.universe}, rebalanced monthly, no costs "
                   "(total return on adjusted closes)")


def benchmark_equity(engine: sa.Engine, strategy_id: str, start: DateLike, end: DateLike, *,
                     system_as_of: DateLike | None = None) -> Benchmark | None:
    """The strategy's default benchmark (`benchmark_config`) simulated by the engine over
    [start, end] as the warehouse stood at ``system_as_of`` (not stored); None when its
    universe has no data in the window."""
    cfg = load_strategy(engine, strategy_id)
    bench, label = benchmark_config(cfg)
    lo, hi = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    try:
        view = strategy_view(engine, bench, hi, system_as_of)
    except NoDataYet:
        return None
    # start a month early: the monthly rebalance decided at the previous month's end is held from
    # the window's first session on (the strategy's own first trade executes no earlier)
    sim_lo = max(lo - pd.Timedelta(days=40), view.decision_dates[0])
    weights = build(bench).weights(view, since=sim_lo).loc[:hi]
    if weights.empty:
        return None
    inputs = engine_inputs(view, bench, list(weights.columns), sim_lo, hi)
    result = simulate(inputs.pop("prices"), weights, backtest_config(bench, sim_lo, hi, clean=True), **inputs)
    held = result.exposure["gross"].gt(0).cummax()  # from the first session it holds anything
    equity = result.equity[held & (result.equity.index >= lo)]
    return Benchmark(equity.rename("benchmark"), label, cfg.calendar) if len(equity) else None


def equity_frame(result: BacktestResult) -> pd.DataFrame:
    """The daily rows a run stores (``daily_equity``): equity, cash, gross and net exposure,
    drawdown, turnover, costs and funding, indexed by session."""
    return pd.DataFrame({"equity": result.equity, "cash": result.cash, "gross_exposure": result.exposure["gross"],
                         "net_exposure": result.exposure["net"], "drawdown": result.drawdown, "turnover": result.turnover,
                         "costs": result.costs, "funding": result.funding})


def attribution_json(result: BacktestResult, start: DateLike | None = None, end: DateLike | None = None) -> dict:
    """`BacktestResult.pnl_attribution` over [start, end] as stored in a run's summary: instrument ->
    {price, funding, dividends, borrow, costs, interest, total} in money, rows that are all zero
    left out (sums over consecutive windows add up to the whole)."""
    a = result.pnl_attribution(start, end)
    a = a[a.drop(columns="total").abs().sum(axis=1) > 0]
    return {str(i): {k: float(v) for k, v in row.items()} for i, row in a.iterrows()}


def is_reproduction(engine: sa.Engine, system_as_of: DateLike | None) -> bool:
    """Whether a run as of ``system_as_of`` re-reads an older state of the warehouse than a run
    made now: an explicit watermark before the newest ingest batch. None (now) never is; neither
    is a watermark after which nothing was recorded (it reads exactly what now reads)."""
    if system_as_of is None:
        return False
    newest = data_watermark(engine)
    return newest is not None and utc(system_as_of) < newest


def run_backtest(engine: sa.Engine, strategy_id: str, start: DateLike, end: DateLike, *, clean: bool = False,
                 system_as_of: DateLike | None = None, start_state: EndState | None = None,
                 orchestrator_run_id: str | None = None, store: bool = True, **config_overrides: Any) -> BacktestOutcome:
    """Generate (or reuse) the snapshot, simulate, and store the run with its lineage.

    Without ``system_as_of`` (or with one no older than the data) the stored run is the current
    result of (strategy, window, settings) and supersedes the previous one (``outcome.superseded``).
    With an explicit ``system_as_of`` older than the newest ingest batch it is a reproduction
    (``outcome.reproduction``): stored, superseding nothing, never current, naming the current run
    it reproduces (``outcome.reproduces``; None when the window has no current run)."""
    cfg = load_strategy(engine, strategy_id)
    reproduction = is_reproduction(engine, system_as_of)
    start_d, end_d = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if start_d > end_d:
        raise ValueError(f"--start {start_d.date()} is after --end {end_d.date()}")
    snap, sid, new, view = generate_signals(engine, cfg, start_d, end_d, system_as_of=system_as_of)
    instruments = list(snap.weights.columns)
    inputs = engine_inputs(view, cfg, instruments, start_d, end_d)
    config = backtest_config(cfg, start_d, end_d, clean=clean, **config_overrides)
    result = simulate(inputs.pop("prices"), snap.weights, config, start_state=start_state, **inputs)
    config_json = config.to_dict()
    outcome = BacktestOutcome(None, sid, new, view.system_as_of, config_json, result, reproduction=reproduction)
    if store:
        run_id = new_run_id()
        reads = view.reads()
        outcome.superseded = store_run(
            engine, run_id=run_id, strategy_id=strategy_id, window_start=start_d.date(), window_end=end_d.date(),
            config=config_json, snapshot_id=sid, system_as_of=view.system_as_of.to_pydatetime(),
            engine_version=ENGINE_VERSION, orchestrator_run_id=orchestrator_run_id, equity=equity_frame(result),
            fills=result.fills, round_trips=result.round_trips, metrics=result.metrics,
            start_state=start_state.to_dict() if start_state is not None else None,
            end_state=result.end_state.to_dict(),
            summary={"costs_paid": float(result.costs.sum()), "funding_paid": float(result.funding.sum()),
                     "attribution": attribution_json(result)},
            reads=(reads, view.decision_times.loc[start_d:end_d]),
            reproduction=reproduction,
        )
        outcome.run_id = run_id
        if reproduction:
            outcome.reproduces = reproduced_run(engine, run_id)
    return outcome
