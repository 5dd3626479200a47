"""One backtest, end to end: strategy -> signal snapshot -> engine -> stored run with lineage.

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
  Pipeline months are always computed on the current data (`plan_months` refuses an older
  watermark).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.engine import ENGINE_VERSION, BacktestConfig, BacktestResult, EndState, simulate
from macro_pipeline.engine.calendar import calendar_sessions
from macro_pipeline.warehouse.pit import DateLike, utc
from macro_pipeline.warehouse.runs import (
    current_sql,
    new_run_id,
    reproduced_run,
    store_run,
    store_runs_in,
    write_reads_in,
)
from macro_pipeline.warehouse.snapshots import SignalSnapshot, write_snapshot, write_snapshots_in
from macro_pipeline.warehouse.view import PointInTimeView


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


# --------------------------------------------------------------------------- strategies in the warehouse


def register_strategy(engine: sa.Engine, cfg) -> str:
    """Store a configuration; 'added' or 'exists'. Same id with other parameters is refused:
    changing parameters makes a new configuration (a new id), never an edit of an old one."""
    with engine.begin() as conn:
        row = conn.execute(sa.text("SELECT params_hash FROM strategies WHERE strategy_id = :s FOR UPDATE"),
                           {"s": cfg.strategy_id}).first()
        if row is not None:
            if row[0] != cfg.params_hash:
                raise ValueError(
                    f"strategy {cfg.strategy_id!r} is already registered with other parameters "
                    f"(params hash {row[0][:12]} != {cfg.params_hash[:12]}); give the new configuration a new id")
            return "exists"
        conn.execute(sa.text(
            "INSERT INTO strategies (strategy_id, kind, params, params_hash, universe) "
            "VALUES (:s, :k, CAST(:p AS jsonb), :h, :u)"),
            {"s": cfg.strategy_id, "k": cfg.kind, "p": json.dumps(cfg.to_dict(), sort_keys=True),
             "h": cfg.params_hash, "u": cfg.universe})
    return "added"


def sync_builtin_strategies(engine: sa.Engine) -> list[str]:
    """Register the configurations of the package's ``strategies.toml`` (idempotent; the same id
    with other parameters is an error); the ids newly added."""
    from macro_pipeline.strategies.registry import load_builtin_configs

    return [cfg.strategy_id for cfg in load_builtin_configs() if register_strategy(engine, cfg) == "added"]


def load_strategy(engine: sa.Engine, strategy_id: str):
    from macro_pipeline.strategies.base import StrategyConfig

    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT params FROM strategies WHERE strategy_id = :s"), {"s": strategy_id}).first()
    if row is None:
        raise ValueError(f"unknown strategy {strategy_id!r} (see `macro-pipeline strategies list`)")
    return StrategyConfig.from_dict(dict(row[0]))


def list_strategies(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(sa.text(
            "SELECT strategy_id, kind, universe, params_hash, params, created_at FROM strategies ORDER BY strategy_id"
        )).mappings().all())


# --------------------------------------------------------------------------- signals


def sessions(calendar: str, start: DateLike, end: DateLike) -> pd.DatetimeIndex:
    all_sessions = (pd.date_range("1985-01-01", "2035-12-31", freq="D") if calendar == "24/7"
                    else calendar_sessions(calendar))
    lo, hi = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    return all_sessions[(all_sessions >= lo) & (all_sessions <= hi)]


def _origin(engine: sa.Engine, cfg, end: DateLike, system_as_of: pd.Timestamp) -> pd.Timestamp:
    from macro_pipeline.warehouse.pit import PointInTimeReader

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
    from macro_pipeline.warehouse.view import decision_times

    return decision_times(pd.DatetimeIndex([day]), calendar).iloc[0]


def strategy_view(engine: sa.Engine, cfg, end: DateLike, system_as_of: DateLike | None) -> PointInTimeView:
    """The view a strategy computes on: every session from its origin to ``end``."""
    from macro_pipeline.warehouse.pit import current_watermark

    sys_ts = current_watermark(engine) if system_as_of is None else utc(system_as_of)
    origin = _origin(engine, cfg, end, sys_ts)
    days = sessions(cfg.calendar, origin, end)
    if len(days) == 0:
        raise NoDataYet(f"window ends {pd.Timestamp(end).date()}, before universe {cfg.universe!r} starts ({origin.date()})")
    return PointInTimeView(engine, days, calendar=cfg.calendar, system_as_of=sys_ts)


def generate_signals(engine: sa.Engine, cfg, start: DateLike, end: DateLike, *, system_as_of: DateLike | None = None,
                     view: PointInTimeView | None = None) -> tuple[SignalSnapshot, str, bool, PointInTimeView]:
    """Compute the strategy's weights for [start, end] and store them as an immutable snapshot.

    Returns (snapshot, its id, whether it was new, the view used)."""
    from macro_pipeline.strategies.base import CODE_VERSION
    from macro_pipeline.strategies.registry import build

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


# --------------------------------------------------------------------------- backtests


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
    from macro_pipeline.strategies.base import StrategyConfig

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
    from macro_pipeline.strategies.registry import build

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
    from macro_pipeline.warehouse.pit import data_watermark

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
        eq = pd.DataFrame({"equity": result.equity, "cash": result.cash, "gross_exposure": result.exposure["gross"],
                           "net_exposure": result.exposure["net"], "drawdown": result.drawdown, "turnover": result.turnover,
                           "costs": result.costs, "funding": result.funding})
        outcome.superseded = store_run(
            engine, run_id=run_id, strategy_id=strategy_id, window_start=start_d.date(), window_end=end_d.date(),
            config=config_json, snapshot_id=sid, system_as_of=view.system_as_of.to_pydatetime(),
            engine_version=ENGINE_VERSION, orchestrator_run_id=orchestrator_run_id, equity=eq, fills=result.fills,
            round_trips=result.round_trips, metrics=result.metrics,
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


def as_date(d: DateLike) -> date:
    return pd.Timestamp(d).date()


# --------------------------------------------------------------------------- monthly chains (Dagster partitions)


@dataclass
class MonthOutcome:
    month: str  # "YYYY-MM-01"
    status: str  # "stored" | "before-data" | "after-data"
    run_id: str | None = None
    snapshot_id: str | None = None
    metrics: dict = field(default_factory=dict)
    sessions: int = 0


def month_window(cfg, month: str, today: pd.Timestamp | None = None) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """First and last session of ``month`` on the strategy's calendar (the current month ends
    today); None when the month has no session yet."""
    first = pd.Timestamp(month).normalize().replace(day=1)
    last = first + pd.offsets.MonthEnd(0)
    today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize() if today is None else pd.Timestamp(today)
    days = sessions(cfg.calendar, first, min(last, today))
    return None if len(days) == 0 else (days[0], days[-1])


_INPUT_SPAN_SQL = {
    "macro": "SELECT min(obs_date), max(obs_date), max(known_at) FROM macro_observations WHERE series_id = :e",
    "funding": "SELECT min(ts)::date, max(ts)::date, max(ts) FROM funding_rates WHERE instrument_id = :e",
}


def input_coverage(engine: sa.Engine, cfg, system_as_of: DateLike | None = None) -> list[dict[str, Any]]:
    """The span of each input the strategy requires besides prices (``Strategy.required_inputs``),
    as recorded by ``system_as_of``: source, entity, first and last observation date, the last
    time a value became known, and ``live_until`` (that time + the input's horizon, as a date)."""
    from macro_pipeline.strategies.registry import build

    out = []
    with engine.connect() as conn:
        for source, entity, horizon in build(cfg).required_inputs():
            sql, params = _INPUT_SPAN_SQL[source], {"e": entity}
            if system_as_of is not None:
                sql += " AND recorded_at <= :sys"
                params["sys"] = utc(system_as_of).to_pydatetime()
            first, last, known = conn.execute(sa.text(sql), params).one()
            live = None if known is None else (pd.Timestamp(known).tz_convert(None).normalize()
                                               + pd.Timedelta(days=horizon))
            out.append({"source": source, "entity": entity, "first": first, "last": last,
                        "last_known_at": known, "horizon_days": horizon, "live_until": live})
    return out


def data_limit(engine: sa.Engine, cfg, system_as_of: DateLike | None = None,
               today: pd.Timestamp | None = None) -> pd.Timestamp:
    """The last day a strategy's months can cover: today (UTC), or the last price date of the
    instruments it trades (as recorded by ``system_as_of``), or the day a required input goes
    stale (`input_coverage`: ``live_until``), whichever is earliest. Months after it are
    ``after-data``: a history ends where its data ends, instead of carrying the last prices or
    the last macro print forward into flat, metric-diluting months."""
    from macro_pipeline.strategies.registry import build

    today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize() if today is None else pd.Timestamp(today)
    for span in input_coverage(engine, cfg, system_as_of):
        if span["live_until"] is not None:
            today = min(today, span["live_until"])
    with engine.connect() as conn:
        members = sorted(conn.execute(sa.text("SELECT DISTINCT instrument_id FROM universe_membership "
                                              "WHERE universe = :u"), {"u": cfg.universe}).scalars())
        if not members:
            return today
        sql = "SELECT max(obs_date) FROM prices WHERE instrument_id = ANY(:ids)"
        params: dict[str, Any] = {"ids": build(cfg).select_instruments(members)}
        if system_as_of is not None:
            sql += " AND recorded_at <= :sys"
            params["sys"] = utc(system_as_of).to_pydatetime()
        last = conn.execute(sa.text(sql), params).scalar()
    return today if last is None else min(today, pd.Timestamp(last))


def _previous_pipeline_run(engine: sa.Engine, strategy_id: str, window: tuple[pd.Timestamp, pd.Timestamp]):
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT run_id, end_state FROM backtest_runs WHERE strategy_id = :s "
            "AND date_trunc('month', window_start) = date_trunc('month', CAST(:ws AS date)) AND window_end = :we "
            f"AND {current_sql('')} AND summary ->> 'pipeline' = 'true' "
            "ORDER BY created_at DESC LIMIT 1"),
            {"s": strategy_id, "ws": window[0].date(), "we": window[1].date()}).first()


@dataclass
class MonthPlan:
    """Everything the engine needs for a stretch of consecutive months of one strategy, read from
    the warehouse (point in time) by ``plan_months``; ``simulate_plan`` is pure, ``store_months``
    writes. The Dagster ``backtest`` asset runs these three as separate ops."""

    strategy_id: str
    params_hash: str
    outcomes: dict[str, MonthOutcome]  # months already decided (before/after the data)
    live: list[str]  # months to simulate and store, consecutive
    windows: dict[str, tuple[pd.Timestamp, pd.Timestamp]]
    start: pd.Timestamp | None = None
    weights: pd.DataFrame | None = field(default=None, repr=False)
    marks: dict = field(default_factory=dict)
    reads: list = field(default_factory=list)  # the footprint: every entity the view read
    epochs: int = 0  # vintage epochs the weights were computed in (Strategy.weights)
    decision_times: pd.Series | None = field(default=None, repr=False)
    start_state: EndState | None = None
    continues: str | None = None  # the stored run whose end state is start_state
    inputs: dict = field(default_factory=dict, repr=False)
    config: BacktestConfig | None = None
    system_as_of: pd.Timestamp | None = None
    rebalance: str = ""
    calendar: str = ""

    @property
    def months(self) -> list[str]:
        return sorted(set(self.outcomes) | set(self.live))


def plan_months(engine: sa.Engine, strategy_id: str, months: list[str], *,
                system_as_of: DateLike | None = None) -> MonthPlan:
    """Read what a stretch of months needs: weights (computed once for the stretch), engine
    inputs, and the previous month's end state (``ValueError`` naming the month when the chain
    has a gap). Months before the strategy's data are ``before-data``; months with no session
    yet ``after-data``. Months are current results: a ``system_as_of`` older than the data is
    refused (``ValueError``; reproduce a window with ``run_backtest`` instead)."""
    from macro_pipeline.strategies.registry import build
    from macro_pipeline.warehouse.pit import current_watermark

    if is_reproduction(engine, system_as_of):
        raise ValueError(f"pipeline months of {strategy_id} are current results, computed on the current data; "
                         f"system_as_of {utc(system_as_of).isoformat()} is older than the data (reproduce a window "
                         "with `macro-pipeline backtest --system-as-of` instead)")
    cfg = load_strategy(engine, strategy_id)
    system_as_of = current_watermark(engine) if system_as_of is None else utc(system_as_of)
    limit = data_limit(engine, cfg, system_as_of)
    ordered = sorted(set(pd.Timestamp(m).strftime("%Y-%m-01") for m in months))
    windows = {m: month_window(cfg, m, limit) for m in ordered}
    plan = MonthPlan(strategy_id, cfg.params_hash, {m: MonthOutcome(m, "after-data") for m in ordered if windows[m] is None},
                     [m for m in ordered if windows[m] is not None], {m: w for m, w in windows.items() if w is not None},
                     rebalance=cfg.rebalance, calendar=cfg.calendar)
    live = plan.live
    if not live:
        return plan
    for a, b in zip(live, live[1:], strict=False):
        if (pd.Timestamp(a) + pd.offsets.MonthBegin(1)).strftime("%Y-%m-01") != b:
            raise ValueError(f"months of {strategy_id} must be consecutive: {a} then {b}; run each stretch separately")
    end = windows[live[-1]][1]
    try:
        view = strategy_view(engine, cfg, end, system_as_of)
    except NoDataYet:
        plan.outcomes.update({m: MonthOutcome(m, "before-data") for m in live})
        plan.live = []
        return plan
    origin = view.decision_dates[0]
    for m in list(live):
        if windows[m][1] < origin:
            plan.outcomes[m] = MonthOutcome(m, "before-data")
            live.remove(m)
    if not live:
        return plan
    plan.start = start = max(windows[live[0]][0], origin)
    strategy = build(cfg)
    plan.weights = strategy.weights(view, since=start)
    plan.epochs = strategy.epochs
    plan.marks = view.input_watermarks()  # what the weights read (before the engine's inputs are loaded)
    prev_month = (pd.Timestamp(live[0]) - pd.offsets.MonthBegin(1)).strftime("%Y-%m-01")
    prev_window = month_window(cfg, prev_month, limit)
    if prev_window is not None and prev_window[1] >= origin:
        prev = _previous_pipeline_run(engine, strategy_id, prev_window)
        if prev is None:
            raise ValueError(f"{strategy_id} {live[0][:7]} continues from {prev_month[:7]}, which has no stored "
                             f"backtest; materialize from {prev_month[:7]} (or the first missing month) on")
        plan.start_state = EndState.from_dict(dict(prev.end_state))
        plan.continues = prev.run_id
    plan.inputs = engine_inputs(view, cfg, list(plan.weights.columns), start, end)
    plan.reads = view.reads()  # what the weights and the engine's inputs read
    plan.decision_times = view.decision_times
    plan.config = backtest_config(cfg, start, end)
    plan.system_as_of = view.system_as_of
    return plan


def simulate_plan(plan: MonthPlan) -> BacktestResult | None:
    """The engine over the whole stretch, once, with a checkpoint at each month's last session.
    Pure: no I/O."""
    if not plan.live:
        return None
    inputs = dict(plan.inputs)
    end = plan.windows[plan.live[-1]][1]
    return simulate(inputs.pop("prices"), plan.weights.loc[plan.start:end], plan.config, start_state=plan.start_state,
                    checkpoints=[plan.windows[m][1] for m in plan.live], **inputs)


def store_months(engine: sa.Engine, plan: MonthPlan, result: BacktestResult | None, *,
                 orchestrator_run_id: str | None = None) -> list[MonthOutcome]:
    """Store each month of a simulated stretch as its own run (snapshot, equity, fills, trips,
    metrics, start and end state), continuing from the previous month's end state: the whole
    stretch in one transaction, with one statement or COPY per table (not per month)."""
    from macro_pipeline.engine import compute_metrics
    from macro_pipeline.strategies.base import CODE_VERSION

    outcomes = dict(plan.outcomes)
    if not plan.live:
        return [outcomes[m] for m in sorted(outcomes)]
    returns, trips, fills = result.returns, result.round_trips, result.fills
    eq = pd.DataFrame({"equity": result.equity, "cash": result.cash, "gross_exposure": result.exposure["gross"],
                       "net_exposure": result.exposure["net"], "drawdown": result.drawdown,
                       "turnover": result.turnover, "costs": result.costs, "funding": result.funding})
    bounds = [(max(plan.windows[m][0], plan.start), plan.windows[m][1]) for m in plan.live]
    sessions = eq.index
    cut = [(int(sessions.searchsorted(ms, "left")), int(sessions.searchsorted(me, "right"))) for ms, me in bounds]
    fill_pos = _positions_by_window(pd.DatetimeIndex(fills["date"]), bounds)
    trip_pos = _positions_by_window(pd.DatetimeIndex(trips["exit_date"]) if len(trips) else pd.DatetimeIndex([]), bounds)
    attribution = result.pnl_attribution_records(bounds)
    snaps = []
    for ms, me in bounds:
        w = plan.weights.loc[ms:me]
        snaps.append(SignalSnapshot(plan.strategy_id, plan.params_hash, w.index[0].date(), w.index[-1].date(),
                                    plan.marks, CODE_VERSION, w))
    state, continues = plan.start_state, plan.continues
    runs: list[dict] = []
    for i in range(len(plan.live)):
        (ms, me), (a, b) = bounds[i], cut[i]
        month_trips = trips.iloc[trip_pos[i]]
        metrics = compute_metrics(returns.iloc[a:b], month_trips, calendar=plan.config.calendar,
                                  exposure=result.exposure.iloc[a:b], turnover=result.turnover.iloc[a:b])
        end_state = result.state_at(me)
        month_eq = eq.iloc[a:b]
        runs.append(dict(
            run_id=new_run_id(), strategy_id=plan.strategy_id, window_start=ms.date(), window_end=me.date(),
            config=replace(plan.config, start=ms.date(), end=me.date()).to_dict(),
            system_as_of=plan.system_as_of.to_pydatetime(), engine_version=ENGINE_VERSION,
            orchestrator_run_id=orchestrator_run_id, equity=month_eq, fills=fills.iloc[fill_pos[i]],
            round_trips=month_trips, metrics=metrics, start_state=state.to_dict() if state is not None else None,
            end_state=end_state.to_dict(),
            summary={"pipeline": True, "costs_paid": float(month_eq["costs"].sum()),
                     "funding_paid": float(month_eq["funding"].sum()), "attribution": attribution[i]},
            pipeline_month=True, continues=continues))
        state, continues = end_state, runs[-1]["run_id"]
    with engine.begin() as conn:  # one transaction: the whole stretch is stored, or nothing
        sids = write_snapshots_in(conn, snaps)
        for run, (sid, _) in zip(runs, sids, strict=True):
            run["snapshot_id"] = sid
        store_runs_in(conn, runs)
        # every month of the stretch read what the stretch's view read (up to its own last decision)
        write_reads_in(conn, [r["run_id"] for r in runs], plan.reads, valid_to=[me.date() for _, me in bounds],
                       first_decision=[plan.decision_times.loc[ms] for ms, _ in bounds],
                       last_decision=[plan.decision_times.loc[me] for _, me in bounds])
    for m, run, (sid, _), (a, b) in zip(plan.live, runs, sids, cut, strict=True):
        outcomes[m] = MonthOutcome(m, "stored", run["run_id"], sid, run["metrics"], b - a)
    return [outcomes[m] for m in sorted(outcomes)]


def _positions_by_window(dates: pd.DatetimeIndex, bounds: list[tuple[pd.Timestamp, pd.Timestamp]]) -> list[np.ndarray]:
    """Per window [start, end], the positions of ``dates`` inside it, in their original order
    (one stable sort, then a binary search per window)."""
    order = np.argsort(dates.asi8, kind="stable")
    ordered = dates[order]
    return [np.sort(order[ordered.searchsorted(lo, "left"):ordered.searchsorted(hi, "right")]) for lo, hi in bounds]


def run_months(engine: sa.Engine, strategy_id: str, months: list[str], *, system_as_of: DateLike | None = None,
               orchestrator_run_id: str | None = None) -> list[MonthOutcome]:
    """Materialize consecutive monthly partitions of one strategy: the weights are computed once,
    the engine simulates the whole range once (with a checkpoint at each month's last session),
    and each month is stored as its own run continuing from the previous month's end state.

    The first month of the strategy's history starts fresh; any later month needs the previous
    month's pipeline run (``ValueError`` naming the missing month otherwise). Months before the
    strategy's data are reported as ``before-data``; months with no session yet as
    ``after-data``. Chain invariance: materializing months one by one or as a range gives the
    same equity as one engine call over the whole range.
    """
    plan = plan_months(engine, strategy_id, months, system_as_of=system_as_of)
    return store_months(engine, plan, simulate_plan(plan), orchestrator_run_id=orchestrator_run_id)


def stitched_history(engine: sa.Engine, strategy_id: str) -> tuple[pd.Series, list[str]]:
    """The strategy's full-history daily equity from its current monthly pipeline runs (never a
    superseded run or a reproduction), and the ids of those runs in window order, up to the
    strategy's `data_limit` (months stored before an input was known to be stale are left out).
    One query, so the curve and the ids always describe the same runs."""
    limit = data_limit(engine, load_strategy(engine, strategy_id))
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT e.session_date, e.equity, r.run_id FROM backtest_runs r JOIN daily_equity e USING (run_id) "
            f"WHERE r.strategy_id = :s AND {current_sql('r')} AND r.window_start <= :lim "
            "AND r.summary ->> 'pipeline' = 'true' ORDER BY e.session_date"),
            {"s": strategy_id, "lim": limit.date()}).all()
    equity = pd.Series([r[1] for r in rows], index=pd.DatetimeIndex([r[0] for r in rows]), name=strategy_id,
                       dtype="float64")
    return equity, list(dict.fromkeys(r[2] for r in rows))


def stitched_equity(engine: sa.Engine, strategy_id: str) -> pd.Series:
    """The strategy's full-history daily equity from its current monthly pipeline runs."""
    return stitched_history(engine, strategy_id)[0]


def runs_digest(run_ids: list[str]) -> str:
    """sha256 of run ids in window order, comma-joined: names the exact set of runs a ranking used."""
    import hashlib

    return hashlib.sha256(",".join(run_ids).encode()).hexdigest()


def month_signals(engine: sa.Engine, strategy_id: str, months: list[str], *,
                  system_as_of: DateLike | None = None) -> dict[str, str | None]:
    """Write the snapshot of each month (weights computed once for the range); month -> id
    (None for months without data)."""
    from macro_pipeline.strategies.base import CODE_VERSION
    from macro_pipeline.strategies.registry import build
    from macro_pipeline.warehouse.pit import current_watermark

    cfg = load_strategy(engine, strategy_id)
    system_as_of = current_watermark(engine) if system_as_of is None else utc(system_as_of)
    limit = data_limit(engine, cfg, system_as_of)
    ordered = sorted(set(pd.Timestamp(m).strftime("%Y-%m-01") for m in months))
    windows = {m: month_window(cfg, m, limit) for m in ordered}
    out: dict[str, str | None] = {m: None for m in ordered}
    live = [m for m in ordered if windows[m] is not None]
    if not live:
        return out
    try:
        view = strategy_view(engine, cfg, windows[live[-1]][1], system_as_of)
    except NoDataYet:
        return out
    weights = build(cfg).weights(view, since=windows[live[0]][0])
    marks = view.input_watermarks()
    snaps: dict[str, SignalSnapshot] = {}
    for m in live:
        w = weights.loc[windows[m][0]:windows[m][1]]
        if not w.empty:
            snaps[m] = SignalSnapshot(cfg.strategy_id, cfg.params_hash, w.index[0].date(), w.index[-1].date(),
                                      marks, CODE_VERSION, w)
    with engine.begin() as conn:  # every month's snapshot, or none: one INSERT and one COPY
        out.update({m: sid for m, (sid, _) in zip(snaps, write_snapshots_in(conn, list(snaps.values())), strict=True)})
    return out


def current_month_runs(engine: sa.Engine, strategy_id: str, months: list[str]) -> list[dict]:
    """The current pipeline run of each month that has one (covering the month as far as the data
    goes), with its scalar metrics; two queries, whatever the number of months."""
    cfg = load_strategy(engine, strategy_id)
    limit = data_limit(engine, cfg)
    windows = {m: w for m in sorted(set(months)) if (w := month_window(cfg, m, limit)) is not None}
    if not windows:
        return []
    with engine.connect() as conn:
        runs = conn.execute(sa.text(
            "SELECT DISTINCT ON (date_trunc('month', window_start)) to_char(window_start, 'YYYY-MM-01'), window_end, run_id "
            f"FROM backtest_runs WHERE strategy_id = :s AND {current_sql('')} "
            "AND summary ->> 'pipeline' = 'true' AND window_start >= :lo AND window_start <= :hi "
            "ORDER BY date_trunc('month', window_start), created_at DESC"),
            {"s": strategy_id, "lo": min(w[0] for w in windows.values()).date(),
             "hi": max(w[1] for w in windows.values()).date()}).all()
        found = {m: rid for m, end, rid in runs if m in windows and end == windows[m][1].date()}
        metrics: dict[str, dict] = {rid: {} for rid in found.values()}
        for rid, name, value in conn.execute(sa.text(
                "SELECT run_id, metric_name, value FROM metrics WHERE run_id = ANY(:ids)"), {"ids": list(metrics)}):
            metrics[rid][name] = value
    return [{"strategy_id": strategy_id, "month": m, "run_id": found[m], "metrics": metrics[found[m]]}
            for m in sorted(found)]


TO_DATE_KEYS = ("total_return", "cagr", "annual_volatility", "sharpe", "max_drawdown")


def history_to_date_metrics(engine: sa.Engine, strategy_id: str, months: list[str]) -> dict[str, dict[str, float]]:
    """For each month: `compute_metrics` of the strategy's stitched history from its first
    session to that month's last (``TO_DATE_KEYS``, annualised with its calendar). Cumulative
    numbers plot meaningfully over monthly partitions; one month annualised does not."""
    from macro_pipeline.engine import compute_metrics

    calendar = load_strategy(engine, strategy_id).calendar
    r = stitched_equity(engine, strategy_id).pct_change().dropna()
    out = {}
    for m in months:
        sub = r.loc[:pd.Timestamp(m) + pd.offsets.MonthEnd(0)]
        if len(sub) >= 2 and sub.index[-1] >= pd.Timestamp(m):
            met = compute_metrics(sub, calendar=calendar)
            out[m] = {k: float(met[k]) for k in TO_DATE_KEYS if met[k] == met[k]}
    return out


def leaderboard_frame(engine: sa.Engine) -> pd.DataFrame:
    """Every strategy with pipeline results, ranked by Sharpe on its stitched full history (current
    monthly runs only: superseded runs and reproductions are never ranked). Columns: the headline
    metrics (annualised with each strategy's own calendar: 252 sessions, 365 days for 24/7; see
    `engine.metrics`), tails (``worst_month``, ``es_95``, ``es_99``), ``stress`` (stress window ->
    return inside it, for the windows the history covers), ``calendar``, ``first``/``last`` session,
    and what was ranked: ``runs`` (count), ``runs_sha256`` (``runs_digest`` of their ids in window
    order) and ``newest_run``."""
    from macro_pipeline.engine import compute_metrics
    from macro_pipeline.engine.metrics import stress_table, tail_risk

    rows = {}
    strategies = list_strategies(engine)
    for strategy_id in strategies["strategy_id"] if len(strategies) else []:
        eq, run_ids = stitched_history(engine, strategy_id)
        if len(eq) < 2:
            continue
        calendar = load_strategy(engine, strategy_id).calendar
        r = eq.pct_change().dropna()
        m = compute_metrics(r, calendar=calendar)
        tails = tail_risk(r)
        rows[strategy_id] = {k: m[k] for k in ("total_return", "cagr", "annual_volatility", "sharpe", "sortino",
                                               "max_drawdown", "calmar")} | {
            "worst_month": tails["worst_month"], "es_95": tails["es_95"], "es_99": tails["es_99"],
            "stress": {w.window: w.total_return for w in stress_table(r, calendar=calendar).itertuples()},
            "calendar": calendar, "first": eq.index[0].date(), "last": eq.index[-1].date(), "runs": len(run_ids),
            "runs_sha256": runs_digest(run_ids), "newest_run": run_ids[-1]}
    board = pd.DataFrame.from_dict(rows, orient="index")
    return board.sort_values("sharpe", ascending=False) if len(board) else board
