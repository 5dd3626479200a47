"""Parameter sweeps end to end: grid -> point-in-time weights -> batched engine -> statistics ->
stored sweep with lineage. The CLI (`macro-pipeline sweep`) and the Dagster `sweep` asset call
``run_sweep``.

Timing and data (DESIGN sections 1-2, as `backtest.one_off.run_backtest`):
1. The grid is validated first (``research.grid``): nothing is read before it passes.
2. One point-in-time view over every session from the kind's origin to the window end, as of
   ``system_as_of`` (default: the database clock). The view memoises its aligned panels
   (``SharedView``), so the prices, memberships and macro series are read and aligned once and
   every configuration computes on the same frames.
3. Each configuration's weights come from ``Strategy.weights(view)`` (full as-of vintages: each
   decision's row over the data as known at its decision time), over the union of the
   instruments the configurations trade (a column a configuration does not trade is 0).
4. Batches of ``BATCH`` configurations run through ``engine.simulate_many`` (one batched,
   threaded call each) on the same prices, universe, funding and corporate actions as a single
   backtest of the window, with the same ``BacktestConfig``.
5. Per configuration: daily returns (equity / previous equity - 1, the first relative to the
   initial capital) and the headline metrics (``research.metrics``, compute_metrics' conventions).
6. Statistics over the sessions x configurations return matrix: the best configuration by
   ``metric``, its Deflated Sharpe Ratio, the PBO by CSCV (``n_blocks``), the minimum backtest
   length for the number of trials (``research.overfitting``).
7. Walk-forward, if asked (``research.walkforward``).

Lineage: the sweep id is the sha256 of the spec (kind, grid, fixed parameters, universe,
rebalance, calendar, window, engine config, metric, blocks, walk-forward), the input watermarks
the view actually read (greatest ``recorded_at`` per input, so new data for other instruments
does not change it) and the code versions. A rerun on unchanged data has the same id: the stored
sweep is not rewritten, the recomputed returns are compared with it bit for bit
(``outcome.reproduced``). ``system_as_of`` set to a stored sweep's watermark re-reads the
warehouse as it was, so after later revisions it gives the same id and the same bits.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.backtest.one_off import backtest_config, engine_inputs, strategy_view
from macro_pipeline.engine import ENGINE_VERSION, simulate_many
from macro_pipeline.engine.inputs import _rf_bar
from macro_pipeline.research.grid import GridError, config_label, expand, grid_values
from macro_pipeline.research.metrics import HIGHER_IS_BETTER, metrics_matrix
from macro_pipeline.research.overfitting import (
    deflated_sharpe,
    min_backtest_length,
    pbo_cscv,
    sharpe_per_period,
)
from macro_pipeline.research.walkforward import WalkForward
from macro_pipeline.strategies.base import CODE_VERSION
from macro_pipeline.strategies.config import StrategyConfig, build
from macro_pipeline.strategies.registry import strategy_class
from macro_pipeline.warehouse.pit import DateLike
from macro_pipeline.warehouse.view import PointInTimeView

SWEEP_VERSION = "sweeps-1.0.0"  # bump when a sweep's numbers could change
BATCH = 50  # configurations per simulate_many call: 50 x 8,313 x 20 float64 weights = 66 MB
SWEEP_STRATEGY_ID = "sweep"


class SharedView(PointInTimeView):
    """A ``PointInTimeView`` shared by every configuration of a sweep: aligned panels are
    memoized by the view itself (per vintage epoch), and features shared between configurations
    are cached here per epoch (``strategies.features.shared``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.feature_cache: dict[tuple, Any] = {}  # strategies.features.shared

    def feature_epoch(self) -> Any:
        """The vintage epoch reads are served in now (None: real time); see ``as_known_at``."""
        return self._epoch


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep asks for; ``validate`` refuses anything invalid before a row is read."""

    kind: str
    grid: tuple[tuple[str, tuple], ...]
    start: pd.Timestamp
    end: pd.Timestamp
    fixed: tuple[tuple[str, Any], ...] = ()
    universe: str | None = None
    rebalance: str | None = None
    calendar: str | None = None
    clean: bool = False
    metric: str = "sharpe"
    n_blocks: int = 16
    walk_forward: WalkForward | None = None
    name: str | None = None

    @classmethod
    def build(cls, kind: str, grid: dict[str, Any], start: DateLike, end: DateLike, **kw: Any) -> SweepSpec:
        """From raw values (CLI strings or TOML lists/ranges), every grid value typed and checked."""
        strategy_class(kind)
        if not isinstance(grid, dict) or not grid:
            raise GridError("the grid is empty: give at least one --grid name=values")
        typed = tuple((name, tuple(grid_values(kind, name, raw))) for name, raw in grid.items())
        fixed = tuple(sorted((kw.pop("fixed", None) or {}).items()))
        wf = kw.pop("walk_forward", None)
        if isinstance(wf, str):
            wf = WalkForward.parse(wf)
        try:
            s, e = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        except (ValueError, TypeError) as exc:
            raise GridError(f"invalid window: {exc}") from None
        spec = cls(kind, typed, s, e, fixed, walk_forward=wf, **kw)
        spec.validate()
        return spec

    def validate(self) -> list[dict[str, Any]]:
        """Every configuration's parameters; raises ``GridError`` naming what is wrong."""
        if self.start > self.end:
            raise GridError(f"--start {self.start.date()} is after --end {self.end.date()}")
        if self.metric not in HIGHER_IS_BETTER:
            raise GridError(f"metric {self.metric!r} cannot rank configurations; use one of {', '.join(HIGHER_IS_BETTER)}")
        if not isinstance(self.n_blocks, int) or self.n_blocks < 2 or self.n_blocks % 2:
            raise GridError(f"--blocks must be an even integer >= 2, got {self.n_blocks!r}")
        names = [n for n, _ in self.grid]
        if len(set(names)) != len(names):
            raise GridError(f"a grid parameter is given twice: {sorted(n for n in names if names.count(n) > 1)}")
        params = expand(self.kind, dict(self.grid), dict(self.fixed))
        self.configs(params)  # universe / rebalance / calendar
        if self.walk_forward is not None:
            self.walk_forward.folds(pd.date_range(self.start, self.end, freq="D"))
        return params

    def configs(self, params: list[dict[str, Any]] | None = None) -> list[StrategyConfig]:
        params = params if params is not None else expand(self.kind, dict(self.grid), dict(self.fixed))
        return [StrategyConfig(SWEEP_STRATEGY_ID, self.kind, p, self.universe, self.rebalance, self.calendar)
                for p in params]

    def canonical(self) -> dict[str, Any]:
        cfg = self.configs()[0]
        return {"kind": self.kind, "grid": [[n, list(v)] for n, v in self.grid], "fixed": dict(self.fixed),
                "universe": cfg.universe, "rebalance": cfg.rebalance, "calendar": cfg.calendar,
                "start": self.start.date().isoformat(), "end": self.end.date().isoformat(), "clean": self.clean,
                "metric": self.metric, "n_blocks": self.n_blocks,
                "walk_forward": None if self.walk_forward is None else self.walk_forward.to_dict()}


@dataclass
class SweepOutcome:
    sweep_id: str
    spec: SweepSpec
    new: bool  # stored by this call
    reproduced: bool  # the id was stored before and the recomputed returns equal its bits
    system_as_of: pd.Timestamp
    input_watermarks: dict[str, str]
    sessions: pd.DatetimeIndex
    labels: list[str]
    params: list[dict[str, Any]]
    returns: np.ndarray = field(repr=False)  # sessions x configurations
    metrics: dict[str, np.ndarray] = field(repr=False)
    best: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    folds: list[dict[str, Any]] = field(default_factory=list)
    walk_forward: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def num(v: Any) -> Any:
            v = float(v)
            return v if np.isfinite(v) else None

        return {
            "sweep_id": self.sweep_id, "name": self.spec.name, "new": self.new, "reproduced": self.reproduced,
            "system_as_of": self.system_as_of.isoformat(), "spec": self.spec.canonical(),
            "n_configs": len(self.labels), "sessions": len(self.sessions),
            "best": {"config": self.best, "label": self.labels[self.best],
                     **{k: num(v[self.best]) for k, v in self.metrics.items()}},
            "stats": {k: (num(v) if isinstance(v, float) else v) for k, v in self.stats.items()
                      if not isinstance(v, list)},
            "folds": [{k: (v if not isinstance(v, (list, np.ndarray)) else None) for k, v in f.items()
                       if k not in ("is_metric", "oos_metric")} for f in self.folds],
            "walk_forward": None if self.walk_forward is None else
            {k: num(v) for k, v in self.walk_forward["metrics"].items()},
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def sweep_view(engine: sa.Engine, cfg: StrategyConfig, end: DateLike, system_as_of: DateLike | None) -> SharedView:
    """``backtest.one_off.strategy_view`` as a ``SharedView``: every session from the origin to ``end``."""
    return strategy_view(engine, cfg, end, system_as_of, view_class=SharedView)


def sweep_id_of(spec: SweepSpec, input_watermarks: dict[str, str]) -> str:
    body = {"spec": spec.canonical(), "inputs": input_watermarks,
            "code": [SWEEP_VERSION, CODE_VERSION, ENGINE_VERSION]}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def compute_sweep(engine: sa.Engine, spec: SweepSpec, *, system_as_of: DateLike | None = None) -> SweepOutcome:
    """Steps 1-7 of the module docstring, without storing."""
    clock: dict[str, float] = {}
    t0 = time.perf_counter()
    params = spec.validate()
    cfgs = spec.configs(params)
    strategies = [build(c) for c in cfgs]
    view = sweep_view(engine, cfgs[0], spec.end, system_as_of)
    members = list(view.members(cfgs[0].universe).columns)
    cols = list(dict.fromkeys(i for s in strategies for i in s.select_instruments(members)))
    base = strategies[0].weights(view, instruments=cols, since=spec.start).loc[: spec.end]
    if base.empty:
        raise ValueError(f"no decision dates in [{spec.start.date()}, {spec.end.date()}]")
    inputs = engine_inputs(view, cfgs[0], cols, spec.start, spec.end)
    prices = inputs.pop("prices")
    config = backtest_config(cfgs[0], spec.start, spec.end, clean=spec.clean)
    clock["inputs"] = time.perf_counter() - t0

    def weights_of(k: int) -> np.ndarray:
        if k == 0:
            return base.to_numpy()
        return strategies[k].weights(view, instruments=cols, since=spec.start).loc[: spec.end].to_numpy()

    S, T = len(cfgs), len(prices)
    equity = np.empty((S, T))
    t_w = t_e = 0.0
    # weights one configuration at a time: a view serves one vintage epoch at a time
    # (``as_known_at`` sets it), so it must not be shared between threads
    for a in range(0, S, BATCH):
        t1 = time.perf_counter()
        w = np.stack([weights_of(k) for k in range(a, min(a + BATCH, S))])
        t2 = time.perf_counter()
        equity[a : a + len(w)] = simulate_many(prices, w, config, decision_dates=base.index, **inputs).equity_matrix
        t_e += time.perf_counter() - t2
        t_w += t2 - t1
    clock["weights"], clock["engine"] = t_w, t_e
    t3 = time.perf_counter()
    prev = np.empty_like(equity)
    prev[:, 0] = config.initial_capital
    prev[:, 1:] = equity[:, :-1]
    returns = (equity / prev - 1.0).T  # sessions x configurations
    rf = _rf_bar(config, prices.index, None)
    metrics = metrics_matrix(returns, calendar=config.calendar, dates=prices.index, risk_free=rf)
    score = metrics[spec.metric]
    best = int(np.nanargmax(np.where(np.isfinite(score), score, -np.inf))) if np.isfinite(score).any() else 0
    stats = sweep_stats(returns, best, spec.n_blocks)
    stats["best_label"] = config_label(params[best], [n for n, _ in spec.grid])
    stats["best_params"] = params[best]
    clock["stats"] = time.perf_counter() - t3
    labels = [config_label(p, [n for n, _ in spec.grid]) for p in params]
    outcome = SweepOutcome("", spec, False, False, view.system_as_of, {}, prices.index, labels, params,
                           returns, metrics, best, stats)  # fmt: skip
    if spec.walk_forward is not None:
        from macro_pipeline.research.walkforward import run_walk_forward

        t4 = time.perf_counter()
        outcome.folds, outcome.walk_forward = run_walk_forward(
            spec.walk_forward, returns, prices.index, spec.metric, rf,
            lambda k, lo, hi: strategies[k].weights(view, instruments=cols, since=lo).loc[:hi],
            lambda lo, hi: (engine_inputs(view, cfgs[0], cols, lo, hi),
                            backtest_config(cfgs[0], lo, hi, clean=spec.clean)),
            config.calendar,
        )  # fmt: skip
        clock["walk_forward"] = time.perf_counter() - t4
    outcome.input_watermarks = view.input_watermarks()
    outcome.sweep_id = sweep_id_of(spec, outcome.input_watermarks)
    outcome.seconds = clock
    return outcome


def sweep_stats(returns: np.ndarray, best: int, n_blocks: int) -> dict[str, Any]:
    """DSR of ``best``, PBO by CSCV, minimum backtest length; NaN where a statistic is undefined
    (one configuration: no PBO; too few sessions for the blocks)."""
    T, S = returns.shape
    dsr = deflated_sharpe(returns, best)
    years = T / 252
    sr_ann = dsr.sharpe * np.sqrt(252)
    out: dict[str, Any] = {
        "n_trials": S, "n_sessions": T, "years": years,
        "dsr": dsr.dsr, "sharpe_per_session": dsr.sharpe, "sharpe_annual": sr_ann, "sr0_per_session": dsr.sr0,
        "sr0_annual": dsr.sr0 * np.sqrt(252), "sharpe_variance": dsr.sharpe_variance,
        "skewness": dsr.skewness, "kurtosis": dsr.kurtosis,
        "min_backtest_years": min_backtest_length(S, 1.0),
        "min_backtest_years_for_best": min_backtest_length(S, sr_ann) if sr_ann > 0 else float("nan"),
        "n_blocks": n_blocks, "pbo": float("nan"), "pbo_logits": [],
    }
    if S >= 2 and T // n_blocks >= 2:
        p = pbo_cscv(returns, n_blocks)
        out["pbo"] = p.pbo
        out["pbo_logits"] = [float(x) for x in p.logits]
        out["n_combinations"] = p.n_combinations
    out["trial_sharpes_annual"] = [float(x) for x in sharpe_per_period(returns) * np.sqrt(252)]
    return out


def run_sweep(engine: sa.Engine, spec: SweepSpec, *, system_as_of: DateLike | None = None, store: bool = True,
              orchestrator_run_id: str | None = None) -> SweepOutcome:
    """``compute_sweep``, then store it (one transaction) or, when its id is already stored,
    compare the recomputed returns with the stored bits (``reproduced``; a difference raises)."""
    from macro_pipeline.warehouse.sweeps import (
        CONFIG_METRICS,
        load_returns,
        store_sweep,
        sweep_exists,
    )

    outcome = compute_sweep(engine, spec, system_as_of=system_as_of)
    if not store:
        return outcome
    t0 = time.perf_counter()
    if sweep_exists(engine, outcome.sweep_id):
        stored = load_returns(engine, outcome.sweep_id)
        if stored.shape != outcome.returns.shape or stored.tobytes() != np.ascontiguousarray(outcome.returns).tobytes():
            raise RuntimeError(f"sweep {outcome.sweep_id[:12]} recomputed from the same inputs differs from "
                               "its stored returns: the computation is not deterministic")
        outcome.reproduced = True
    else:
        cfgs = spec.configs(outcome.params)
        configs = [{"params": p, "params_hash": c.params_hash, "label": lab,
                    **{m: outcome.metrics[m][k] for m in CONFIG_METRICS}}
                   for k, (p, c, lab) in enumerate(zip(outcome.params, cfgs, outcome.labels, strict=True))]
        meta = {"sweep_id": outcome.sweep_id, "name": spec.name, "kind": spec.kind, "spec": spec.canonical(),
                "input_watermarks": outcome.input_watermarks, "system_as_of": outcome.system_as_of.to_pydatetime(),
                "code_version": f"{SWEEP_VERSION};{CODE_VERSION}", "engine_version": ENGINE_VERSION,
                "sessions": outcome.sessions, "metric": spec.metric, "best_config": outcome.best,
                "stats": outcome.stats, "orchestrator_run_id": orchestrator_run_id}
        outcome.new = store_sweep(engine, meta=meta, configs=configs, returns=outcome.returns,
                                  folds=outcome.folds, walk_forward=outcome.walk_forward)
    outcome.seconds["store"] = time.perf_counter() - t0
    return outcome
