"""Walk-forward analysis over a sweep: choose on a training window, trade the next test window.

``--walk-forward train=36M,test=12M[,anchored]``. Folds over the sweep's sessions, from its
first session s0 (months added with ``pd.DateOffset``, so a month is a calendar month):
- fold k tests the sessions in [s0 + train + k x test, s0 + train + (k + 1) x test), the last
  fold cut at the window end; folds stop when a test window has no session;
- it trains on the sessions in [test start - train, test start) (rolling), or [s0, test start)
  (``anchored``).

Per fold (``run_walk_forward``):
1. every configuration's ``metric`` on the training rows of the sweep's return matrix; the
   chosen configuration is the best (lowest index on ties). Those rows depend only on data known
   by the end of the training window: each return is made of weights decided point in time and
   prices known at their sessions' closes, and the simulation is causal. So changing any data
   after the training end cannot change the choice (tested by perturbing it);
2. every configuration's metric on the test rows (the in-sample vs out-of-sample scatter);
3. the chosen configuration trades the test window in its own engine run, continuing from the
   previous fold's end state (positions, cash, pending orders), so switching configuration pays
   its real trading costs; the first fold starts fresh.
The stitched out-of-sample equity is the concatenation of the fold runs; its metrics are
``compute_metrics`` of the stitched returns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from macro_pipeline.research.grid import GridError

SPEC = re.compile(r"^train=(?P<train>\d+)M,test=(?P<test>\d+)M(?P<anchored>,anchored)?$")


@dataclass(frozen=True)
class WalkForward:
    train_months: int
    test_months: int
    anchored: bool = False

    @classmethod
    def parse(cls, text: str) -> WalkForward:
        m = SPEC.match(str(text).replace(" ", ""))
        if not m:
            raise GridError(f"--walk-forward {text!r} must look like train=36M,test=12M[,anchored]")
        wf = cls(int(m["train"]), int(m["test"]), bool(m["anchored"]))
        if wf.train_months < 1 or wf.test_months < 1:
            raise GridError(f"--walk-forward {text!r}: train and test must be at least 1 month")
        return wf

    def to_dict(self) -> dict[str, Any]:
        return {"train_months": self.train_months, "test_months": self.test_months, "anchored": self.anchored}

    def folds(self, sessions: pd.DatetimeIndex) -> list[tuple[np.ndarray, np.ndarray]]:
        """(training rows, test rows) per fold, as integer positions in ``sessions``."""
        s0, last = sessions[0], sessions[-1]
        out = []
        k = 0
        while True:
            lo = s0 + pd.DateOffset(months=self.train_months + k * self.test_months)
            if lo > last:
                break
            hi = lo + pd.DateOffset(months=self.test_months)
            train_lo = s0 if self.anchored else lo - pd.DateOffset(months=self.train_months)
            train = np.flatnonzero((sessions >= train_lo) & (sessions < lo))
            test = np.flatnonzero((sessions >= lo) & (sessions < hi))
            if len(test) and len(train) >= 2:
                out.append((train, test))
            k += 1
        if not out:
            raise GridError(
                f"--walk-forward train={self.train_months}M,test={self.test_months}M leaves no fold in "
                f"{s0.date()}..{last.date()}: the window must be longer than the training period"
            )
        return out


def choose(returns: np.ndarray, rows: np.ndarray, metric: str, rf: np.ndarray, sessions: pd.DatetimeIndex,
           calendar: str) -> tuple[int, np.ndarray]:
    """(best configuration, every configuration's metric) on ``rows`` of the return matrix."""
    from macro_pipeline.research.metrics import metrics_matrix

    values = metrics_matrix(returns[rows], calendar=calendar, dates=sessions[rows], risk_free=rf[rows])[metric]
    finite = np.where(np.isfinite(values), values, -np.inf)
    return int(np.argmax(finite)), values


def run_walk_forward(
    wf: WalkForward, returns: np.ndarray, sessions: pd.DatetimeIndex, metric: str, rf: np.ndarray,
    weights_of: Callable[[int, pd.Timestamp, pd.Timestamp], pd.DataFrame],
    inputs_of: Callable[[pd.Timestamp, pd.Timestamp], tuple[dict[str, Any], Any]], calendar: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """Folds (chosen configuration, in- and out-of-sample metrics) and the stitched run.

    ``weights_of(k, lo, hi)``: configuration k's point-in-time weights for decisions in
    [lo, hi]; ``inputs_of(lo, hi)``: the engine inputs and ``BacktestConfig`` of that window."""
    from macro_pipeline.engine import compute_metrics, simulate

    folds, equity, rets = [], [], []
    state = None
    for k, (train, test) in enumerate(wf.folds(sessions)):
        chosen, is_metric = choose(returns, train, metric, rf, sessions, calendar)
        _, oos_metric = choose(returns, test, metric, rf, sessions, calendar)
        lo, hi = sessions[test[0]], sessions[test[-1]]
        inputs, config = inputs_of(lo, hi)
        prices = inputs.pop("prices")
        result = simulate(prices, weights_of(chosen, lo, hi), config, start_state=state, **inputs)
        state = result.end_state
        equity.append(result.equity)
        rets.append(result.returns)
        folds.append({"fold": k, "train_start": sessions[train[0]].date(), "train_end": sessions[train[-1]].date(),
                      "test_start": lo.date(), "test_end": hi.date(), "chosen_config": chosen,
                      "is_metric": is_metric, "oos_metric": oos_metric,
                      "chosen_is": float(is_metric[chosen]), "chosen_oos": float(oos_metric[chosen])})
    eq = pd.concat(equity)
    r = pd.concat(rets)
    metrics = {k: v for k, v in compute_metrics(r, calendar=calendar).items() if k != "monthly_returns"}
    return folds, {"sessions": eq.index, "equity": eq.to_numpy(), "metrics": metrics,
                   "end_state": state.to_dict()}
