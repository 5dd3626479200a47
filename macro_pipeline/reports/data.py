"""What a report is about: one stored run, or a strategy's full history stitched from its current
monthly pipeline runs. Both become a `Subject` with the same fields, so one renderer serves both.

Derived series (all on the subject's session dates):
- ``returns``: equity / previous equity - 1, the first session against the starting equity (the
  start state's, or the config's initial capital), the same series the engine's metrics use.
- ``costs_daily``: trading costs paid per session, the sum of the fills' ``cost``.
- ``carry_daily``: carry paid per session (funding, borrow; interest and dividends count as
  negative payments), from the cash ledger: the engine keeps
  ``cash_t = cash_{t-1} + interest + dividends - funding - borrow - sum(fill notional + cost)``,
  so ``carry paid_t = -(cash_t - cash_{t-1} + sum over fills at t of (notional + cost))``.
- ``funding_daily``: perpetual funding paid per session (negative = received), as stored in
  ``daily_equity.funding`` (runs stored since ``sql/006``); None for older runs, whose funding is
  stored only as a total (``summary.funding_paid``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.backtest.configs import load_strategy
from macro_pipeline.backtest.months import data_limit, input_coverage
from macro_pipeline.backtest.one_off import benchmark_equity
from macro_pipeline.engine.calendar import periods_per_year as calendar_periods
from macro_pipeline.engine.metrics import METRIC_KEYS, compute_metrics, elapsed_years
from macro_pipeline.reports import queries
from macro_pipeline.warehouse import report_reads
from macro_pipeline.warehouse.finite import finite_or_none
from macro_pipeline.warehouse.pit import PointInTimeReader, utc
from macro_pipeline.warehouse.runs import load_run

DEFAULT_BENCHMARK = "SPX"  # the S&P 500 index of the demo data
SCALAR_METRICS: tuple[str, ...] = tuple(k for k in METRIC_KEYS if k != "monthly_returns")


class UnknownSubject(ValueError):
    """An id that names no stored run or strategy, or more than one."""


@dataclass
class Subject:
    """A run or a stitched strategy history, with everything a report shows."""

    kind: Literal["run", "strategy"]
    ident: str  # run id or strategy id
    strategy_id: str
    strategy: dict[str, Any]  # kind, params, universe, rebalance, calendar, params_hash
    config: dict[str, Any]
    equity: pd.DataFrame  # equity, cash, gross_exposure, net_exposure, drawdown, turnover
    start_equity: float
    start_cash: float
    fills: pd.DataFrame  # session_date, instrument_id, side, quantity, price, notional, cost, reason
    round_trips: pd.DataFrame  # instrument_id, entry_date, exit_date, holding_days, pnl, return_pct
    metrics: dict[str, float | None]
    costs_paid: float
    funding_paid: float
    lineage: dict[str, Any]
    system_as_of: pd.Timestamp  # the (latest) watermark the data was read at
    stored_window: tuple[Any, Any]  # window_start, window_end as stored (may be non-session days)
    start_state: dict | None = None
    runs: pd.DataFrame | None = None  # strategy subjects: the monthly runs stitched
    notes: list[str] = field(default_factory=list)  # edge cases the report must say
    # P&L by instrument (price, funding, dividends, borrow, costs, interest, total) in money, as
    # stored with the run(s) (`backtest.one_off.attribution_json`); None when a run stored none
    attribution: pd.DataFrame | None = None

    @property
    def clean(self) -> bool:
        return bool(self.config.get("clean"))

    @property
    def calendar(self) -> str:
        return str(self.strategy.get("calendar") or self.config.get("calendar") or "XNYS")

    @property
    def window(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        return self.equity.index[0], self.equity.index[-1]

    @property
    def label(self) -> str:
        mode = " (clean)" if self.clean else ""
        if self.kind == "run":
            return f"{self.strategy_id}{mode} run {self.ident[:8]}"
        return f"{self.strategy_id}{mode} full history"

    @property
    def returns(self) -> pd.Series:
        eq = self.equity["equity"]
        prev = eq.shift(1)
        prev.iloc[0] = self.start_equity
        return (eq / prev - 1.0).rename("returns")

    @property
    def trades(self) -> pd.DataFrame:
        """Fills that traded (not the no-trade log rows)."""
        if self.fills.empty:
            return self.fills
        return self.fills[self.fills["side"].isin(["buy", "sell"])]

    @property
    def costs_daily(self) -> pd.Series:
        idx = self.equity.index
        if self.fills.empty:
            return pd.Series(0.0, index=idx, name="costs")
        by_day = self.fills.groupby(pd.to_datetime(self.fills["session_date"]))["cost"].sum()
        return by_day.reindex(idx, fill_value=0.0).rename("costs")

    @property
    def funding_daily(self) -> pd.Series | None:
        col = self.equity.get("funding")
        if col is None or col.isna().any():
            return None
        return col.astype(float).rename("funding")

    @property
    def carry_daily(self) -> pd.Series:
        idx = self.equity.index
        cash = self.equity["cash"]
        prev = cash.shift(1)
        prev.iloc[0] = self.start_cash
        flows = pd.Series(0.0, index=idx)
        if not self.fills.empty:
            f = self.fills
            spent = (f["notional"].fillna(0.0) + f["cost"].fillna(0.0)).groupby(pd.to_datetime(f["session_date"])).sum()
            flows = spent.reindex(idx, fill_value=0.0)
        return (-(cash - prev + flows)).rename("carry")

    @property
    def periods_per_year(self) -> int:
        return calendar_periods(self.calendar)


# --------------------------------------------------------------------------- loading


def _start_point(config: dict, start_state: dict | None) -> tuple[float, float]:
    if start_state:
        return float(start_state["equity"]), float(start_state["cash"])
    capital = float(config.get("initial_capital", 1_000_000.0))
    return capital, capital


def _strategy(engine: sa.Engine, strategy_id: str) -> dict[str, Any]:
    row = report_reads.strategy_row(engine, strategy_id)
    if row is None:
        raise UnknownSubject(f"unknown strategy {strategy_id!r} (see `macro-pipeline strategies list`)")
    params = row["params"] if isinstance(row["params"], dict) else json.loads(row["params"])
    return {"kind": row["kind"], "params": params.get("params", {}), "universe": row["universe"],
            "rebalance": params.get("rebalance"), "calendar": params.get("calendar"),
            "params_hash": row["params_hash"]}


def resolve_run_id(engine: sa.Engine, text: str) -> str:
    """A full run id, or a unique prefix of one (at least 6 hex characters)."""
    found = queries.run_ids_matching(engine, text)
    if len(found) == 1:
        return found[0]
    if not found:
        raise UnknownSubject(f"no backtest run {text!r} (see `macro-pipeline runs list`)")
    raise UnknownSubject(f"run id prefix {text!r} is ambiguous: it matches {', '.join(found[:5])}"
                         f"{', ...' if len(found) > 5 else ''}; give more characters")


def load_run_subject(engine: sa.Engine, run_id: str) -> Subject:
    """One stored run; metrics are the stored ones (the engine's ``compute_metrics``)."""
    rec = load_run(engine, resolve_run_id(engine, run_id))
    m = rec.meta
    config = dict(m["config"] or {})
    summary = dict(m["summary"] or {})
    start_equity, start_cash = _start_point(config, m["start_state"])
    metrics = {k: rec.metrics.get(k) for k in SCALAR_METRICS}
    lineage = {
        "run id": m["run_id"],
        "strategy id": m["strategy_id"],
        "window": f"{m['window_start']} .. {m['window_end']}",
        "signal snapshot id": m["signal_snapshot_id"],
        "system_as_of (watermark)": pd.Timestamp(m["system_as_of"]).isoformat(),
        "engine version": m["engine_version"],
        "orchestrator run id": m["orchestrator_run_id"] or "none (not run by Dagster)",
        "pipeline run (one month of the Dagster chain)": "yes" if summary.get("pipeline") else "no",
        "standing": m["standing"] + (f" of {m['reproduces']}" if m["standing"] == "reproduction" and m["reproduces"]
                                     else f" by {m['superseded_by']}" if m["standing"] == "superseded" else ""),
        "stored at": pd.Timestamp(m["created_at"]).isoformat(),
        "start state": f"continues from {m['start_state']['date']}" if m["start_state"] else "fresh start",
    }
    subject = Subject("run", m["run_id"], m["strategy_id"], _strategy(engine, m["strategy_id"]), config,
                      rec.equity, start_equity, start_cash, rec.fills, rec.round_trips, metrics,
                      float(summary.get("costs_paid", 0.0) or 0.0), float(summary.get("funding_paid", 0.0) or 0.0),
                      lineage, pd.Timestamp(m["system_as_of"]), (m["window_start"], m["window_end"]),
                      m["start_state"])
    subject.attribution = attribution_frame([summary])
    if m["reproduction"]:
        subject.notes.append("This run is a reproduction: computed as of an older system_as_of than the data, it "
                             "re-reads an earlier state of the warehouse and is never the current result.")
    if m["standing"] == "superseded":
        subject.notes.append(f"This run has been superseded by run {m['superseded_by']} (a rerun of the same "
                             "strategy, window and settings); it is shown as stored.")
    _edge_notes(subject)
    return subject


def load_strategy_subject(engine: sa.Engine, strategy_id: str) -> Subject:
    """A strategy's full history: its current monthly pipeline runs concatenated (equity, fills,
    round trips; costs and funding summed) with metrics recomputed over the whole history by the
    engine's ``compute_metrics``."""
    strategy = _strategy(engine, strategy_id)
    cfg = load_strategy(engine, strategy_id)
    limit = data_limit(engine, cfg)  # months stored before an input was known to be stale are left out
    runs = report_reads.current_pipeline_runs(engine, strategy_id, limit.date())
    if runs.empty:
        raise UnknownSubject(
            f"strategy {strategy_id!r} has no monthly pipeline runs yet (materialize its `backtest` partitions "
            "in Dagster); for a one-off run use `macro-pipeline report RUN_ID`")
    equity, fills, trips = report_reads.run_rows(engine, list(runs["run_id"]))
    first = runs.iloc[0]
    config = dict(first["config"])
    config["end"] = str(runs.iloc[-1]["window_end"])
    start_equity, start_cash = _start_point(config, first["start_state"])
    summaries = [dict(s or {}) for s in runs["summary"]]
    runs = runs.assign(costs_paid=[float(s.get("costs_paid", 0.0) or 0.0) for s in summaries],
                       funding_paid=[float(s.get("funding_paid", 0.0) or 0.0) for s in summaries],
                       sessions=equity.groupby(_run_of_session(equity.index, runs)).size().reindex(
                           runs["run_id"]).fillna(0).astype(int).to_numpy())
    subject = Subject("strategy", strategy_id, strategy_id, strategy, config, equity, start_equity, start_cash,
                      fills, trips, {}, float(runs["costs_paid"].sum()), float(runs["funding_paid"].sum()), {},
                      pd.Timestamp(runs["system_as_of"].max()),
                      (runs.iloc[0]["window_start"], runs.iloc[-1]["window_end"]), first["start_state"], runs=runs)
    subject.attribution = attribution_frame(summaries)
    exposure = equity[["gross_exposure", "net_exposure"]].rename(columns={"gross_exposure": "gross",
                                                                          "net_exposure": "net"})
    computed = compute_metrics(subject.returns, trips, calendar=subject.calendar, exposure=exposure,
                               turnover=equity["turnover"])
    subject.metrics = {k: finite_or_none(computed[k]) for k in SCALAR_METRICS}
    marks = sorted({pd.Timestamp(t).isoformat() for t in runs["system_as_of"]})
    subject.lineage = {
        "strategy id": strategy_id,
        "history": f"{runs.iloc[0]['window_start']} .. {runs.iloc[-1]['window_end']} "
                   f"({len(runs)} monthly pipeline run{'s' if len(runs) != 1 else ''})",
        "system_as_of (watermarks)": marks[0] if len(marks) == 1 else f"{marks[0]} .. {marks[-1]} ({len(marks)} distinct)",
        "engine versions": ", ".join(sorted(set(runs["engine_version"]))),
        # a missing id is None or NaN in a frame column (NaN is truthy): test with notna
        "orchestrator run ids": ", ".join(sorted({str(x) for x in runs["orchestrator_run_id"] if pd.notna(x) and x}))
                                or "none",
        "signal snapshots": f"{runs['signal_snapshot_id'].nunique()} distinct, one per monthly run",
    }
    for span in input_coverage(engine, cfg):
        subject.lineage[f"input {span['source']} {span['entity']}"] = (
            f"observations {span['first']} .. {span['last']}; last known "
            f"{pd.Timestamp(span['last_known_at']).date() if span['last_known_at'] is not None else 'never'}; "
            f"stale after {span['horizon_days']} days without news, so the history ends by "
            f"{span['live_until'].date() if span['live_until'] is not None else 'n/a'}")
    _chain_notes(subject)
    _edge_notes(subject)
    return subject


def _run_of_session(sessions: pd.DatetimeIndex, runs: pd.DataFrame) -> np.ndarray:
    starts = pd.to_datetime(runs["window_start"]).to_numpy()
    pos = np.searchsorted(starts, sessions.to_numpy(), side="right") - 1
    return runs["run_id"].to_numpy()[np.clip(pos, 0, len(runs) - 1)]


def _chain_notes(subject: Subject) -> None:
    """Say where the monthly chain is broken: a month that starts fresh after the first, or
    continues from a state other than the previous month's last session."""
    runs = subject.runs
    for prev, cur in zip(runs.iloc[:-1].itertuples(), runs.iloc[1:].itertuples(), strict=True):
        state = cur.start_state
        if not state:
            subject.notes.append(f"The chain restarts fresh at {cur.window_start} (no start state): equity before "
                                 "and after are separate runs.")
        elif str(state.get("date")) != str(prev.window_end):
            subject.notes.append(f"Gap in the monthly chain: the run of {cur.window_start} continues from "
                                 f"{state.get('date')}, but the previous stored month ends {prev.window_end}.")


def _edge_notes(s: Subject) -> None:
    """The edge cases a reader must be told about, in words."""
    n = len(s.equity)
    what = "This run" if s.kind == "run" else "This history"
    if n == 1:
        s.notes.append(f"{what} covers a single session ({s.window[0].date()}): volatility, Sharpe, Sortino and "
                       "the rolling statistics need at least two returns and are shown as n/a.")
    if s.trades.empty:
        why = ""
        if n == 1 and int(s.config.get("execution_lag", 1)) >= 1:
            why = " (a decision executes the session after it is made, so a one-session run cannot trade)"
        s.notes.append(f"No trades: {what.lower()} never traded{why}, so the trade statistics are empty; equity "
                       "moved only with carry and any positions carried in from the start state.")
    elif s.round_trips.empty:
        s.notes.append("No round trip was closed in this window (positions are still open at the end): "
                       "win rate, profit factor and average win/loss are undefined.")
    total = s.equity["equity"].iloc[-1] / s.start_equity - 1.0
    if total < 0:
        s.notes.append(f"Negative total return: {what.lower()} lost {-100 * total:.2f}% "
                       f"(equity {s.start_equity:,.0f} to {s.equity['equity'].iloc[-1]:,.0f}).")
    if (s.equity["equity"] <= 0).any():
        s.notes.append("Equity fell to zero or below: the equity chart uses a linear scale.")


def resolve_subject(engine: sa.Engine, ident: str) -> Subject:
    """A run id (or unique prefix) or a strategy id; a clear error when it is neither or both."""
    runs = queries.run_ids_matching(engine, ident)
    is_strategy = report_reads.strategy_row(engine, ident) is not None
    if is_strategy and runs:
        raise UnknownSubject(f"{ident!r} is ambiguous: it is a strategy id and matches run {runs[0]}; "
                             "give the full run id")
    if is_strategy:
        return load_strategy_subject(engine, ident)
    if len(runs) == 1:
        return load_run_subject(engine, runs[0])
    if len(runs) > 1:
        raise UnknownSubject(f"run id prefix {ident!r} is ambiguous: it matches {', '.join(runs[:5])}; "
                             "give more characters")
    raise UnknownSubject(f"{ident!r} is neither a stored run id nor a strategy id (see `macro-pipeline runs list` "
                         "and `macro-pipeline strategies list`)")


# --------------------------------------------------------------------------- derived tables


def monthly_returns(returns: pd.Series, calendar: str) -> pd.DataFrame:
    """Year x month (1-12) compounded returns, the engine's table (``compute_metrics``'
    ``monthly_returns``), plus a ``year`` column compounding the year's months in this series (a
    partial year covers only its sessions)."""
    # a session with no return (0 / 0 after equity reached zero) compounds as unchanged, as a
    # skipna product does; compute_metrics refuses NaN
    table = compute_metrics(returns.fillna(0.0), calendar=calendar)["monthly_returns"]
    if table.empty:
        return pd.DataFrame(columns=[*range(1, 13), "year"])
    table = table.rename_axis(index="year", columns=None)
    table.columns = list(range(1, 13))
    table["year"] = (1.0 + table.fillna(0.0)).prod(axis=1) - 1.0
    return table


def rolling_stats(returns: pd.Series, window: int, periods_per_year: int) -> pd.DataFrame:
    """Rolling annualised volatility (sample std x sqrt(periods)), Sharpe (mean / std x
    sqrt(periods), risk-free 0) and Sortino (mean / downside deviation x sqrt(periods), the
    downside deviation sqrt(mean(min(r, 0)^2)) as in `compute_metrics`) over ``window`` sessions;
    NaN until the window is full."""
    mean = returns.rolling(window, min_periods=window).mean()
    std = returns.rolling(window, min_periods=window).std(ddof=1)
    downside = np.sqrt((returns.clip(upper=0.0) ** 2).rolling(window, min_periods=window).mean())
    scale = math.sqrt(periods_per_year)
    sharpe = (mean / std.where(std > 0)) * scale
    sortino = (mean / downside.where(downside > 0)) * scale
    return pd.DataFrame({"sharpe": sharpe, "sortino": sortino, "volatility": std * scale})


def period_returns(returns: pd.Series, calendar: str) -> dict[str, float | None]:
    """Returns over the trailing windows of quantstats' metrics table, ending at the last
    session: MTD, 3M, 6M, YTD and 1Y compounded (the returns dated on or after the window's first
    day: the first of the month, 3 or 6 months back, January 1, a year back, as quantstats'
    ``comp`` on ``df[df.index >= d]``), then 3Y, 5Y and 10Y annualised (windows of 35, 59 and 119
    months back, quantstats' choice) and all-time annualised. Annualised = CAGR over elapsed
    calendar time (365-day years from the ``calendar``'s session before the window's first return
    to the last: the engine's `elapsed_years`, so all-time equals the CAGR metric). None for a
    window that starts before the series (a partial window would pass for a full one)."""
    r = returns.astype(float)
    out: dict[str, float | None] = {}
    if r.empty:
        return dict.fromkeys(PERIOD_RETURNS)
    today = pd.Timestamp(r.index[-1])
    first = pd.Timestamp(r.index[0])
    starts = {"MTD": today.replace(day=1), "3M": today - pd.DateOffset(months=3),
              "6M": today - pd.DateOffset(months=6), "YTD": today.replace(month=1, day=1),
              "1Y": today - pd.DateOffset(years=1), "3Y (ann.)": today - pd.DateOffset(months=35),
              "5Y (ann.)": today - pd.DateOffset(months=59), "10Y (ann.)": today - pd.DateOffset(months=119)}
    for label, start in starts.items():
        if start < first and label not in ("MTD", "YTD"):
            out[label] = None
            continue
        out[label] = _window_return(r, start, calendar, annualise=label.endswith("(ann.)"))
    out["all-time (ann.)"] = _window_return(r, first, calendar, annualise=True)
    return out


PERIOD_RETURNS = ("MTD", "3M", "6M", "YTD", "1Y", "3Y (ann.)", "5Y (ann.)", "10Y (ann.)", "all-time (ann.)")


def _window_return(r: pd.Series, start: pd.Timestamp, calendar: str, *, annualise: bool) -> float | None:
    inside = r[r.index >= start]
    if inside.empty:
        return None
    total = float(np.prod(1.0 + inside.to_numpy())) - 1.0
    if not annualise:
        return total
    years = elapsed_years(pd.DatetimeIndex(inside.index), calendar, calendar_periods(calendar))
    return (1.0 + total) ** (1.0 / years) - 1.0 if years > 0 and total > -1 else None


def return_statistics(returns: pd.Series) -> dict[str, float | None]:
    """Quantstats' full-tearsheet return statistics, with its conventions (checked against
    ``quantstats.stats`` in the tests): best and worst day, month and year (compounded per
    calendar period); win rate of days, months, quarters and years (share of positive among the
    non-zero period returns); average up and down month; skew and excess kurtosis (pandas,
    sample); tail ratio (95th percentile / |5th percentile| of daily returns); gain/pain (sum of
    daily returns / |sum of the negative ones|); ulcer index (root of the sum of squared
    drawdowns / (n - 1), drawdown from the running peak of wealth anchored at 1)."""
    r = returns.astype(float)
    keys = ("best_day", "worst_day", "best_month", "worst_month", "best_year", "worst_year", "win_days",
            "win_months", "win_quarters", "win_years", "avg_up_month", "avg_down_month", "skew", "kurtosis",
            "tail_ratio", "gain_pain", "ulcer_index")
    out: dict[str, float | None] = dict.fromkeys(keys)
    if len(r) < 2:
        return out
    idx = pd.DatetimeIndex(r.index)

    def compounded(by) -> pd.Series:
        return (1.0 + r).groupby(by).prod() - 1.0

    months = compounded([idx.year, idx.month])
    quarters = compounded([idx.year, idx.quarter])
    years = compounded(idx.year)

    def win(x: pd.Series) -> float | None:
        nz = x[x != 0]
        return float((nz > 0).mean()) if len(nz) else None

    def clean(v) -> float | None:
        return None if v is None or not np.isfinite(v) else float(v)

    out.update(best_day=float(r.max()), worst_day=float(r.min()), best_month=float(months.max()),
               worst_month=float(months.min()), best_year=float(years.max()), worst_year=float(years.min()),
               win_days=win(r), win_months=win(months), win_quarters=win(quarters), win_years=win(years),
               avg_up_month=clean(months[months > 0].mean()), avg_down_month=clean(months[months < 0].mean()),
               skew=clean(r.skew()), kurtosis=clean(r.kurt()))
    lo, hi = r.quantile(0.05), r.quantile(0.95)
    out["tail_ratio"] = clean(abs(hi / lo)) if lo != 0 else None
    down = r[r < 0].sum()
    out["gain_pain"] = clean(r.sum() / abs(down)) if down != 0 else None
    wealth = np.cumprod(1.0 + r.to_numpy())
    dd = wealth / np.maximum.accumulate(np.maximum(wealth, 1.0)) - 1.0
    out["ulcer_index"] = float(np.sqrt((dd ** 2).sum() / (len(r) - 1)))
    return out


def trade_statistics(trips: pd.DataFrame) -> dict[str, float | None]:
    """Win rate, profit factor, average win/loss (money): the engine's (``compute_metrics`` on the
    round trips alone; undefined ones None); and beside them the best, worst and total round trip
    (money), the holding-period quantiles (calendar days), and whether the profit factor is
    degenerate (losses under 0.1 % of the gross P&L make the ratio meaningless)."""
    out: dict[str, float | None] = dict.fromkeys(
        ["round_trips", "win_rate", "profit_factor", "avg_win", "avg_loss", "best", "worst", "total_pnl",
         "holding_min", "holding_median", "holding_mean", "holding_p90", "holding_max"])
    out["round_trips"] = float(len(trips))
    if trips.empty:
        return out
    engine = compute_metrics(np.empty(0), trips, periods_per_year=1)  # no returns: only the trade statistics
    for k in ("win_rate", "profit_factor", "avg_win", "avg_loss"):
        out[k] = None if math.isnan(engine[k]) else engine[k]
    pnl = trips["pnl"].to_numpy(dtype=float)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    out["profit_factor_degenerate"] = bool(len(wins) and -losses.sum() < 1e-3 * (wins.sum() - losses.sum()))
    out["best"], out["worst"], out["total_pnl"] = float(pnl.max()), float(pnl.min()), float(pnl.sum())
    hold = trips["holding_days"].to_numpy(dtype=float)
    out["holding_min"], out["holding_max"] = float(hold.min()), float(hold.max())
    out["holding_median"], out["holding_mean"] = float(np.median(hold)), float(hold.mean())
    out["holding_p90"] = float(np.percentile(hold, 90))
    return out


def benchmark_curve(engine: sa.Engine, instrument: str, subject: Subject, *, explicit: bool) -> tuple[pd.Series | None, str]:
    """The benchmark's close on the subject's sessions, rebased to the subject's equity on the
    first session both have, as stored up to the subject's ``system_as_of``; (None, why) when
    there is nothing to show. An unknown instrument named explicitly is an error."""
    if not queries.instrument_exists(engine, instrument):
        if explicit:
            raise ValueError(f"unknown benchmark instrument {instrument!r} (not in the warehouse's instruments)")
        return None, f"No benchmark: the default {instrument} is not in this warehouse."
    lo, hi = subject.window
    sys_as_of = utc(subject.system_as_of)
    reader = PointInTimeReader(engine, max(sys_as_of, utc(hi) + pd.Timedelta(days=2)), sys_as_of)
    panel = reader.price_panel([instrument], lo - pd.Timedelta(days=10), hi)
    if panel.empty or instrument not in panel:
        return None, f"No benchmark: {instrument} has no prices between {lo.date()} and {hi.date()}."
    close = panel[instrument].dropna()
    last = close.index.max()
    aligned = close.reindex(close.index.union(subject.equity.index)).ffill().reindex(subject.equity.index)
    aligned[aligned.index > last] = np.nan
    first_valid = aligned.first_valid_index()
    if first_valid is None:
        return None, f"No benchmark: {instrument} has no prices between {lo.date()} and {hi.date()}."
    curve = aligned / aligned.loc[first_valid] * subject.equity["equity"].loc[first_valid]
    kind = (report_reads.instrument_kind(engine, instrument) or ("", ""))[0]
    what = "price index, excludes dividends" if kind == "index" else "close as stored, price only"
    caption = f"{instrument} ({what}), rebased to the strategy's equity on {first_valid.date()}"
    if last < hi:
        caption += f"; its data ends {last.date()}"
    return curve.rename(instrument), caption


def default_benchmark_curve(engine: sa.Engine, subject: Subject) -> tuple[pd.Series | None, str]:
    """The strategy's own benchmark (`backtest.one_off.benchmark_config`: equal-weight buy-and-hold of
    its universe, or the spot leg for carry) over the subject's window as the warehouse stood at
    its ``system_as_of``, on the subject's sessions, rebased to the subject's equity on the first
    session it holds anything; (None, why) when there is none."""
    lo, hi = subject.window
    bench = benchmark_equity(engine, subject.strategy_id, lo, hi, system_as_of=subject.system_as_of)
    if bench is None:
        return None, f"No benchmark: the strategy's universe has no data between {lo.date()} and {hi.date()}."
    eq = bench.equity.reindex(subject.equity.index)
    first = eq.first_valid_index()
    if first is None:
        return None, f"No benchmark: nothing to hold between {lo.date()} and {hi.date()}."
    curve = (eq / eq.loc[first] * subject.equity["equity"].loc[first]).rename("benchmark")
    return curve, f"{bench.label}; rebased to the strategy's equity on {first.date()}"


ATTRIBUTION_COLUMNS = ("price", "funding", "dividends", "borrow", "costs", "interest", "total")


def attribution_frame(summaries: list[dict]) -> pd.DataFrame | None:
    """The P&L attribution stored in each run's summary, summed over the runs (consecutive
    windows add up); None if any run has none (stored before attribution existed)."""
    if not summaries or any("attribution" not in s for s in summaries):
        return None
    rows = [pd.DataFrame.from_dict(s["attribution"], orient="index") for s in summaries if s["attribution"]]
    if not rows:
        return pd.DataFrame(columns=list(ATTRIBUTION_COLUMNS), dtype=float)
    out = pd.concat(rows).groupby(level=0).sum().reindex(columns=list(ATTRIBUTION_COLUMNS), fill_value=0.0)
    out.index.name = "instrument"
    return out


def position_spells(trades: pd.DataFrame, held: dict[str, float] | None = None,
                    since: pd.Timestamp | None = None) -> pd.DataFrame:
    """Positions from flat to flat, per instrument, from the trading fills in order: one row per
    spell with instrument, opened, closed (bool: back to flat by the end), days (calendar days
    from the opening fill to the closing one, or to the last fill's date when still open) and
    pnl (minus the sum of the spell's signed notionals and costs: the money a closed spell made
    from prices, net of costs; carry excluded). Flat = |units| under 1e-9 of the largest held. ``held``: units held at ``since`` (a
    continued run's start state); such a position's spell counts from ``since``."""
    cols = ["instrument", "opened", "closed", "days", "pnl"]
    if trades.empty:
        return pd.DataFrame(columns=cols)
    t = trades.sort_values(["session_date", "fill_no"]) if "fill_no" in trades else trades
    out = []
    last_day = pd.Timestamp(pd.to_datetime(t["session_date"]).max())
    held = {k: float(v) for k, v in (held or {}).items() if v}
    for inst, g in t.groupby("instrument_id", sort=False):
        q0 = held.get(str(inst), 0.0)
        if q0:  # a position carried in: its spell starts at ``since``, with no opening flow
            g = pd.concat([pd.DataFrame({"session_date": [since], "quantity": [q0], "notional": [0.0], "cost": [0.0]}),
                           g[["session_date", "quantity", "notional", "cost"]]], ignore_index=True)
        qty = g["quantity"].to_numpy(dtype=float).cumsum()
        tol = 1e-9 * max(np.abs(qty).max(), 1e-12)
        flat = np.abs(qty) <= tol
        days = pd.to_datetime(g["session_date"]).to_numpy()
        flows = -(g["notional"].to_numpy(dtype=float) + g["cost"].to_numpy(dtype=float))
        start = 0
        for k in range(len(g)):
            if flat[k]:
                out.append((inst, pd.Timestamp(days[start]), True, (pd.Timestamp(days[k]) - pd.Timestamp(days[start])).days,
                            float(flows[start:k + 1].sum())))
                start = k + 1
        if start < len(g):
            out.append((inst, pd.Timestamp(days[start]), False, (last_day - pd.Timestamp(days[start])).days, math.nan))
    return pd.DataFrame(out, columns=cols)
