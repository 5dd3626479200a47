"""Monthly chains (the Dagster ``backtest`` partitions): a stretch of consecutive months of one
strategy loaded (``load_month_inputs``), simulated once (``simulate_months``) and stored month by
month (``store_months``), each month continuing from the previous one's end state; the strategy's
stitched history; how far its months go (``data_limit``).

Timing and data are those of ``one_off`` (DESIGN sections 1-2): the weights of every month come
from one point-in-time view over the strategy's whole history, so a chain of months equals one
long run. Pipeline months are current results: always computed on the current data.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.backtest.configs import load_strategy
from macro_pipeline.backtest.one_off import (
    NoDataYet,
    backtest_config,
    engine_inputs,
    equity_frame,
    is_reproduction,
    sessions,
    strategy_view,
)
from macro_pipeline.engine import (
    ENGINE_VERSION,
    BacktestConfig,
    BacktestResult,
    EndState,
    compute_metrics,
    simulate,
)
from macro_pipeline.strategies.base import CODE_VERSION
from macro_pipeline.strategies.config import build
from macro_pipeline.warehouse.pit import DateLike, current_watermark, data_watermark, utc
from macro_pipeline.warehouse.results import (
    month_runs,
    previous_pipeline_run,
    run_metrics,
    stitched_rows,
)
from macro_pipeline.warehouse.runs import new_run_id, store_runs_in, write_reads_in
from macro_pipeline.warehouse.snapshots import SignalSnapshot, write_snapshots_in
from macro_pipeline.warehouse.strategies import input_spans, last_price_date, universe_instruments
from macro_pipeline.warehouse.view import PointInTimeView


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


def input_coverage(engine: sa.Engine, cfg, system_as_of: DateLike | None = None) -> list[dict[str, Any]]:
    """The span of each input the strategy requires besides prices (``Strategy.required_inputs``),
    as recorded by ``system_as_of``: source, entity, first and last observation date, the last
    time a value became known, and ``live_until`` (that time + the input's horizon, as a date)."""
    required = build(cfg).required_inputs()
    spans = input_spans(engine, [(source, entity) for source, entity, _ in required], _sys(system_as_of))
    out = []
    for (source, entity, horizon), (first, last, known) in zip(required, spans, strict=True):
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
    today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize() if today is None else pd.Timestamp(today)
    for span in input_coverage(engine, cfg, system_as_of):
        if span["live_until"] is not None:
            today = min(today, span["live_until"])
    members = universe_instruments(engine, cfg.universe)
    if not members:
        return today
    last = last_price_date(engine, build(cfg).select_instruments(members), _sys(system_as_of))
    return today if last is None else min(today, pd.Timestamp(last))


def _sys(system_as_of: DateLike | None) -> datetime | None:
    return None if system_as_of is None else utc(system_as_of).to_pydatetime()


@dataclass
class MonthInputs:
    """Everything the engine needs for a stretch of consecutive months of one strategy, read from
    the warehouse (point in time) by ``load_month_inputs``; ``simulate_months`` is pure,
    ``store_months`` writes. The Dagster ``backtest`` asset runs these three as separate ops."""

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


_SHARED = threading.local()  # per thread: a Dagster run's steps of one stretch run on one thread in process


def _view_key(engine: sa.Engine, cfg, end: pd.Timestamp, as_of: tuple) -> tuple:
    """What a stretch's view and weights depend on. ``as_of``: ("as of", an explicit watermark),
    or ("now", the newest ingest batch): as of "now", two reads with the same newest batch serve
    the same data (every later ingest stamps a later ``recorded_at``, see ``current_watermark``),
    so the batch, not the clock, is the key."""
    return (engine.url.render_as_string(hide_password=True), cfg.strategy_id, cfg.params_hash, CODE_VERSION,
            pd.Timestamp(end), as_of)


def _share_weights(key: tuple, view: PointInTimeView, weights: pd.DataFrame, epochs: int) -> None:
    """Keep the stretch's view and weights (``month_signals``) for ``load_month_inputs`` of the
    same stretch in this thread, so a run computes the weights once. Safe to reuse: the key holds
    everything the weights depend on, the watermark included, and a view as of a watermark
    serves the same data for ever (ingest refuses to rewrite what was recorded). One entry: the
    newest stretch; a different key is a miss and computes. ``key``: ``_view_key`` taken BEFORE
    the view's watermark, so a batch committed in between makes the key older than the view (a
    miss later), never newer."""
    _SHARED.entry = (key, view, weights, epochs)


def _shared_weights(engine: sa.Engine, cfg, end, requested: DateLike | None) -> tuple | None:
    entry = getattr(_SHARED, "entry", None)
    _SHARED.entry = None  # taken once: the view grows as the engine's inputs are read
    as_of = ("now", data_watermark(engine)) if requested is None else ("as of", utc(requested))
    if entry is None or entry[0] != _view_key(engine, cfg, end, as_of):
        return None
    return entry[1:]


def load_month_inputs(engine: sa.Engine, strategy_id: str, months: list[str], *,
                      system_as_of: DateLike | None = None) -> MonthInputs:
    """Read what a stretch of months needs: weights (computed once for the stretch), engine
    inputs, and the previous month's end state (``ValueError`` naming the month when the chain
    has a gap). Months before the strategy's data are ``before-data``; months with no session
    yet ``after-data``. Months are current results: a ``system_as_of`` older than the data is
    refused (``ValueError``; reproduce a window with ``run_backtest`` instead)."""
    if is_reproduction(engine, system_as_of):
        raise ValueError(f"pipeline months of {strategy_id} are current results, computed on the current data; "
                         f"system_as_of {utc(system_as_of).isoformat()} is older than the data (reproduce a window "
                         "with `macro-pipeline backtest --system-as-of` instead)")
    cfg = load_strategy(engine, strategy_id)
    requested = system_as_of
    system_as_of = current_watermark(engine) if system_as_of is None else utc(system_as_of)
    limit = data_limit(engine, cfg, system_as_of)
    ordered = sorted(set(pd.Timestamp(m).strftime("%Y-%m-01") for m in months))
    windows = {m: month_window(cfg, m, limit) for m in ordered}
    stretch = MonthInputs(strategy_id, cfg.params_hash,
                          {m: MonthOutcome(m, "after-data") for m in ordered if windows[m] is None},
                          [m for m in ordered if windows[m] is not None],
                          {m: w for m, w in windows.items() if w is not None})
    live = stretch.live
    if not live:
        return stretch
    for a, b in zip(live, live[1:], strict=False):
        if (pd.Timestamp(a) + pd.offsets.MonthBegin(1)).strftime("%Y-%m-01") != b:
            raise ValueError(f"months of {strategy_id} must be consecutive: {a} then {b}; run each stretch separately")
    end = windows[live[-1]][1]
    shared = _shared_weights(engine, cfg, end, requested)
    try:
        view = shared[0] if shared else strategy_view(engine, cfg, end, system_as_of)
    except NoDataYet:
        stretch.outcomes.update({m: MonthOutcome(m, "before-data") for m in live})
        stretch.live = []
        return stretch
    origin = view.decision_dates[0]
    for m in list(live):
        if windows[m][1] < origin:
            stretch.outcomes[m] = MonthOutcome(m, "before-data")
            live.remove(m)
    if not live:
        return stretch
    stretch.start = start = max(windows[live[0]][0], origin)
    first = view.decision_dates[view.decision_dates.searchsorted(start)]
    if shared and len(shared[1]) and shared[1].index[0] == first:  # month_signals computed them
        stretch.weights, stretch.epochs = shared[1], shared[2]
    else:
        strategy = build(cfg)
        stretch.weights = strategy.weights(view, since=start)
        stretch.epochs = strategy.epochs
    stretch.marks = view.input_watermarks()  # what the weights read (before the engine's inputs are loaded)
    prev_month = (pd.Timestamp(live[0]) - pd.offsets.MonthBegin(1)).strftime("%Y-%m-01")
    prev_window = month_window(cfg, prev_month, limit)
    if prev_window is not None and prev_window[1] >= origin:
        prev = previous_pipeline_run(engine, strategy_id, prev_window[0].date(), prev_window[1].date())
        if prev is None:
            raise ValueError(f"{strategy_id} {live[0][:7]} continues from {prev_month[:7]}, which has no stored "
                             f"backtest; materialize from {prev_month[:7]} (or the first missing month) on")
        stretch.start_state = EndState.from_dict(dict(prev.end_state))
        stretch.continues = prev.run_id
    stretch.inputs = engine_inputs(view, cfg, list(stretch.weights.columns), start, end)
    stretch.reads = view.reads()  # what the weights and the engine's inputs read
    stretch.decision_times = view.decision_times
    stretch.config = backtest_config(cfg, start, end)
    stretch.system_as_of = view.system_as_of
    return stretch


def simulate_months(stretch: MonthInputs) -> BacktestResult | None:
    """The engine over the whole stretch, once, with a checkpoint at each month's last session.
    Pure: no I/O."""
    if not stretch.live:
        return None
    inputs = dict(stretch.inputs)
    end = stretch.windows[stretch.live[-1]][1]
    return simulate(inputs.pop("prices"), stretch.weights.loc[stretch.start:end], stretch.config, start_state=stretch.start_state,
                    checkpoints=[stretch.windows[m][1] for m in stretch.live], **inputs)


def store_months(engine: sa.Engine, stretch: MonthInputs, result: BacktestResult | None, *,
                 orchestrator_run_id: str | None = None) -> list[MonthOutcome]:
    """Store each month of a simulated stretch as its own run (snapshot, equity, fills, trips,
    metrics, start and end state), continuing from the previous month's end state: the whole
    stretch in one transaction, with one statement or COPY per table (not per month)."""
    outcomes = dict(stretch.outcomes)
    if not stretch.live:
        return [outcomes[m] for m in sorted(outcomes)]
    returns, trips, fills = result.returns, result.round_trips, result.fills
    eq = equity_frame(result)
    bounds = [(max(stretch.windows[m][0], stretch.start), stretch.windows[m][1]) for m in stretch.live]
    sessions = eq.index
    cut = [(int(sessions.searchsorted(ms, "left")), int(sessions.searchsorted(me, "right"))) for ms, me in bounds]
    fill_pos = _positions_by_window(pd.DatetimeIndex(fills["date"]), bounds)
    trip_pos = _positions_by_window(pd.DatetimeIndex(trips["exit_date"]) if len(trips) else pd.DatetimeIndex([]), bounds)
    attribution = result.pnl_attribution_records(bounds)
    snaps = []
    for ms, me in bounds:
        w = stretch.weights.loc[ms:me]
        snaps.append(SignalSnapshot(stretch.strategy_id, stretch.params_hash, w.index[0].date(), w.index[-1].date(),
                                    stretch.marks, CODE_VERSION, w))
    state, continues = stretch.start_state, stretch.continues
    runs: list[dict] = []
    for i in range(len(stretch.live)):
        (ms, me), (a, b) = bounds[i], cut[i]
        month_trips = trips.iloc[trip_pos[i]]
        metrics = compute_metrics(returns.iloc[a:b], month_trips, calendar=stretch.config.calendar,
                                  exposure=result.exposure.iloc[a:b], turnover=result.turnover.iloc[a:b])
        end_state = result.state_at(me)
        month_eq = eq.iloc[a:b]
        runs.append(dict(
            run_id=new_run_id(), strategy_id=stretch.strategy_id, window_start=ms.date(), window_end=me.date(),
            config=replace(stretch.config, start=ms.date(), end=me.date()).to_dict(),
            system_as_of=stretch.system_as_of.to_pydatetime(), engine_version=ENGINE_VERSION,
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
        write_reads_in(conn, [r["run_id"] for r in runs], stretch.reads, valid_to=[me.date() for _, me in bounds],
                       first_decision=[stretch.decision_times.loc[ms] for ms, _ in bounds],
                       last_decision=[stretch.decision_times.loc[me] for _, me in bounds])
    for m, run, (sid, _), (a, b) in zip(stretch.live, runs, sids, cut, strict=True):
        outcomes[m] = MonthOutcome(m, "stored", run["run_id"], sid, run["metrics"], b - a)
    return [outcomes[m] for m in sorted(outcomes)]


def _positions_by_window(dates: pd.DatetimeIndex, bounds: list[tuple[pd.Timestamp, pd.Timestamp]]) -> list:
    """Per window [start, end], the rows of ``dates`` inside it, in their original order: a
    slice when ``dates`` is sorted (the fill log is), else positions (one stable sort, then a
    binary search per window)."""
    if dates.is_monotonic_increasing:
        return [slice(dates.searchsorted(lo, "left"), dates.searchsorted(hi, "right")) for lo, hi in bounds]
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
    stretch = load_month_inputs(engine, strategy_id, months, system_as_of=system_as_of)
    return store_months(engine, stretch, simulate_months(stretch), orchestrator_run_id=orchestrator_run_id)


def stitched_history(engine: sa.Engine, strategy_id: str) -> tuple[pd.Series, list[str]]:
    """The strategy's full-history daily equity from its current monthly pipeline runs (never a
    superseded run or a reproduction), and the ids of those runs in window order, up to the
    strategy's `data_limit` (months stored before an input was known to be stale are left out).
    One query, so the curve and the ids always describe the same runs."""
    limit = data_limit(engine, load_strategy(engine, strategy_id))
    rows = stitched_rows(engine, strategy_id, limit.date())
    equity = pd.Series([r[1] for r in rows], index=pd.DatetimeIndex([r[0] for r in rows]), name=strategy_id,
                       dtype="float64")
    return equity, list(dict.fromkeys(r[2] for r in rows))


def stitched_equity(engine: sa.Engine, strategy_id: str) -> pd.Series:
    """The strategy's full-history daily equity from its current monthly pipeline runs."""
    return stitched_history(engine, strategy_id)[0]


def month_signals(engine: sa.Engine, strategy_id: str, months: list[str], *,
                  system_as_of: DateLike | None = None) -> dict[str, str | None]:
    """Write the snapshot of each month (weights computed once for the range); month -> id
    (None for months without data)."""
    cfg = load_strategy(engine, strategy_id)
    newest = ("now", data_watermark(engine)) if system_as_of is None else ("as of", utc(system_as_of))
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
    strategy = build(cfg)
    weights = strategy.weights(view, since=windows[live[0]][0])
    _share_weights(_view_key(engine, cfg, windows[live[-1]][1], newest), view, weights, strategy.epochs)
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
    runs = month_runs(engine, strategy_id, min(w[0] for w in windows.values()).date(),
                      max(w[1] for w in windows.values()).date())
    found = {m: rid for m, end, rid in runs if m in windows and end == windows[m][1].date()}
    metrics = run_metrics(engine, list(found.values()))
    return [{"strategy_id": strategy_id, "month": m, "run_id": found[m], "metrics": metrics[found[m]]}
            for m in sorted(found)]


TO_DATE_KEYS = ("total_return", "cagr", "annual_volatility", "sharpe", "max_drawdown")


def history_to_date_metrics(engine: sa.Engine, strategy_id: str, months: list[str]) -> dict[str, dict[str, float]]:
    """For each month: `compute_metrics` of the strategy's stitched history from its first
    session to that month's last (``TO_DATE_KEYS``, annualised with its calendar). Cumulative
    numbers plot meaningfully over monthly partitions; one month annualised does not."""
    calendar = load_strategy(engine, strategy_id).calendar
    r = stitched_equity(engine, strategy_id).pct_change().dropna()
    out = {}
    for m in months:
        sub = r.loc[:pd.Timestamp(m) + pd.offsets.MonthEnd(0)]
        if len(sub) >= 2 and sub.index[-1] >= pd.Timestamp(m):
            met = compute_metrics(sub, calendar=calendar)
            out[m] = {k: float(met[k]) for k in TO_DATE_KEYS if met[k] == met[k]}
    return out
