"""The pages: one subject (a run or a stitched strategy history), and a comparison of several.

``render_*`` return the HTML text; ``write_*`` render and write it to a file and return the
path. A page is one file with every style and chart inline (SVG, no script), so it opens
anywhere with no network.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from macro_pipeline.engine.metrics import (
    STRESS_WINDOWS,
    drawdown_periods,
    relative_metrics,
    stress_table,
    tail_risk,
)
from macro_pipeline.reports import charts, queries
from macro_pipeline.reports import html as h
from macro_pipeline.reports.data import (
    SCALAR_METRICS,
    Subject,
    benchmark_curve,
    default_benchmark_curve,
    load_run_subject,
    load_strategy_subject,
    monthly_returns,
    position_spells,
    resolve_run_id,
    resolve_subject,
    rolling_stats,
    trade_statistics,
)


class ReportWriteError(ValueError):
    """The report file cannot be written where asked."""


# --------------------------------------------------------------------------- one subject


def _title(s: Subject) -> tuple[str, str]:
    lo, hi = s.window
    mode = "clean (no trading costs)" if s.clean else "realistic costs"
    span = f"{lo.date()} .. {hi.date()}, {len(s.equity):,} session{'s' if len(s.equity) != 1 else ''}"
    if s.kind == "run":
        return f"Backtest report: {s.strategy_id}", f"run {s.ident} · {span} · {mode}"
    return (f"Strategy report: {s.strategy_id} (full history)",
            f"{len(s.runs)} monthly pipeline runs stitched · {span} · {mode}")


def _summary(s: Subject, bench: tuple[float, str] | None) -> str:
    m = s.metrics
    final = float(s.equity["equity"].iloc[-1])
    items = [
        ("total return", h.fmt_metric("total_return", m.get("total_return")), h.sign_class(m.get("total_return"))),
        ("CAGR", h.fmt_metric("cagr", m.get("cagr")), h.sign_class(m.get("cagr"))),
        ("Sharpe", h.fmt_metric("sharpe", m.get("sharpe")), ""),
        ("max drawdown", h.fmt_metric("max_drawdown", m.get("max_drawdown")), ""),
        ("annual volatility", h.fmt_metric("annual_volatility", m.get("annual_volatility")), ""),
        ("final equity", f"{final:,.0f}", ""),
        ("trades (fills)", f"{len(s.trades):,}", ""),
        ("round trips", f"{len(s.round_trips):,}", ""),
        ("costs paid", h.fmt_money(s.costs_paid), ""),
        ("funding paid", h.fmt_money(s.funding_paid), ""),
    ]
    if bench is not None:
        total, mine, window = bench
        items.insert(1, (f"benchmark total return ({window})", h.fmt_pct(total), h.sign_class(total)))
        items.insert(2, ("strategy total return, same window", h.fmt_pct(mine), h.sign_class(mine)))
    return h.kpis(items)


def _equity_section(s: Subject, bench: pd.Series | None, bench_caption: str) -> tuple[str, tuple[float, str] | None]:
    eq = s.equity["equity"].rename(s.strategy_id)
    log = bool((eq > 0).all())
    # anchored at the starting equity, as the max drawdown metric is (a continued run's stored
    # drawdown measures from the chain's older peak; regression: card -3.12%, chart about -6%)
    drawdown = eq / np.maximum.accumulate(np.maximum(eq.to_numpy(), s.start_equity)) - 1.0
    svg = charts.equity_drawdown(eq, drawdown, bench, log=log)
    parts = [svg, h.caption("Equity at each session close in the portfolio currency; drawdown (the underwater "
                            "plot) = equity / running peak - 1, the peak starting at this window's starting equity, "
                            "as in the max drawdown metric.")]
    bench_total = None
    parts.append(h.caption("Benchmark: " + bench_caption + "."))
    if bench is not None and bench.notna().sum() >= 3:
        # relative metrics on the strategy's sessions where both exist (a benchmark that does not
        # trade on a session, e.g. an index on a 24/7 weekend, counts as unchanged)
        rel = relative_metrics(s.returns, bench.pct_change().dropna(), calendar=s.calendar)
        if rel["sessions"] >= 2:
            window = f"{rel['first']} .. {rel['last']}, {rel['sessions']:,} sessions"
            bench_total = (rel["benchmark_total_return"], rel["total_return"], window)
            parts.append(_relative_table(rel, window, s.periods_per_year))
    return h.section("equity", "Equity against the benchmark, and drawdown", "".join(parts)), bench_total


RELATIVE_ROWS = (
    ("total return (strategy / benchmark)", None, "over the common window"),
    ("CAGR (strategy / benchmark)", None, "elapsed calendar time, 365-day years"),
    ("alpha", "alpha", "annualised: (1 + mean(r - beta b)) ^ P - 1, risk-free 0 (as empyrical alpha_beta)"),
    ("beta", "beta", "cov(r, b) / var(b)"),
    ("correlation", "correlation", "Pearson, daily returns"),
    ("tracking error", "tracking_error", "sd(r - b) x sqrt(P)"),
    ("information ratio", "information_ratio", "mean(r - b) x P / tracking error"),
    ("up capture", "up_capture", "annualised return on benchmark up days / the benchmark's"),
    ("down capture", "down_capture", "annualised return on benchmark down days / the benchmark's (< 1 is better)"),
)


def _relative_table(rel: dict, window: str, periods_per_year: int) -> str:
    rows = []
    for label, key, note in RELATIVE_ROWS:
        if key is None:
            k = "total_return" if label.startswith("total") else "cagr"
            value = f"{h.fmt_pct(rel[k])} / {h.fmt_pct(rel['benchmark_' + k])}"
        elif key in ("alpha", "tracking_error"):
            value = h.fmt_pct(rel[key])
        else:
            value = h.fmt_metric(key, rel[key])
        rows.append([label, value, re.sub(r"\bP\b", str(periods_per_year), note)])
    return (f"<h3>Against the benchmark over the common window ({h.esc(window)})</h3>"
            + h.table(["measure", "value", "definition"], rows, cls="relative"))


def _rolling_section(s: Subject) -> str:
    window = s.periods_per_year
    r = s.returns
    if len(r) < window:
        body = h.paragraph(f"Rolling 12-month statistics need {window} sessions; this "
                           f"{'run' if s.kind == 'run' else 'history'} has {len(r)}, so there is no full "
                           "window to show.", "note")
    else:
        stats = rolling_stats(r, window, s.periods_per_year)
        body = charts.rolling(stats.dropna(how="all"), window) + h.caption(
            f"Over the trailing {window} sessions (12 months on the {s.calendar} calendar), annualised with "
            f"{s.periods_per_year} periods a year, risk-free 0. Latest: Sharpe {h.fmt_metric('sharpe', stats['sharpe'].iloc[-1])}, "
            f"volatility {h.fmt_pct(stats['volatility'].iloc[-1])}.")
    return h.section("rolling", "Rolling 12-month Sharpe and volatility", body)


def _exposure_section(s: Subject) -> str:
    e = s.equity
    body = charts.exposure(e) + h.caption(
        f"Average gross {h.fmt_pct(e['gross_exposure'].mean())}, net {h.fmt_pct(e['net_exposure'].mean())}; "
        f"maximum gross {h.fmt_pct(e['gross_exposure'].max())}.")
    return h.section("exposure", "Gross and net exposure", body)


def _turnover_section(s: Subject) -> str:
    t = s.equity["turnover"]
    monthly = t.groupby(pd.DatetimeIndex(t.index).to_period("M")).sum()
    monthly.index = monthly.index.to_timestamp() + pd.Timedelta(days=14)
    body = charts.turnover(monthly) + h.caption(
        f"Annualised turnover {h.fmt_metric('turnover', s.metrics.get('turnover'))} (mean daily traded notional / "
        f"equity x {s.periods_per_year}); busiest session {h.fmt_pct(t.max())} on {t.idxmax().date()}.")
    return h.section("turnover", "Turnover", body)


def _tearsheet_section(s: Subject, bench: pd.Series | None) -> str:
    """What quantstats' tearsheet has beside ours: return distribution, yearly returns against
    the benchmark, rolling beta (the underwater plot is the drawdown panel above)."""
    r = s.returns
    tails = tail_risk(r)
    parts = [charts.return_distribution(r, float(np.percentile(r, 5)), tails["es_95"]),
             h.caption("Daily returns of the whole window; VaR 95% = the 5th percentile, ES 95% = the mean of "
                       "the worst 5%.")]
    b = bench.pct_change().dropna() if bench is not None else None
    years = (1 + r).groupby(r.index.year).prod() - 1
    by = (1 + b).groupby(b.index.year).prod() - 1 if b is not None and len(b) else pd.Series(dtype=float)
    rows = [[str(y), h.fmt_pct(v), h.fmt_pct(by.get(y)), h.fmt_pct(v - by[y]) if y in by.index else "n/a"]
            for y, v in years.items()]
    parts.append("<h3>Returns by calendar year</h3>" + h.table(
        ["year", "strategy", "benchmark", "difference"], rows, cls="yearly")
        + h.caption("Compounded over the sessions of each year inside the window (a partial first or last year "
                    "covers only those); the benchmark over its sessions in that year."))
    window = s.periods_per_year // 2
    if b is not None:
        both = pd.concat([r.rename("r"), b.rename("b")], axis=1, join="inner").dropna()
        if len(both) > window:
            cov = both["r"].rolling(window).cov(both["b"])
            beta = (cov / both["b"].rolling(window).var()).dropna()
            if len(beta) > 1:
                parts.append(charts.rolling_beta(beta, window) + h.caption(
                    f"cov(r, b) / var(b) over the trailing {window} sessions (6 months on the {s.calendar} "
                    "calendar)."))
    return h.section("tearsheet", "Distribution, years and rolling beta", "".join(parts))


def _stress_section(s: Subject, bench: pd.Series | None) -> str:
    """Historical stress windows (strategy and benchmark), the five worst drawdowns, the worst
    day/week/month and expected shortfall."""
    r = s.returns
    b = bench.pct_change().dropna() if bench is not None else None
    mine = stress_table(r, calendar=s.calendar)
    theirs = stress_table(b, calendar=s.calendar).set_index("window") if b is not None and len(b) else None
    parts = []
    if mine.empty:
        parts.append(h.paragraph(f"None of the {len(STRESS_WINDOWS)} stress windows falls inside this "
                                 f"{'run' if s.kind == 'run' else 'history'}.", "note"))
    else:
        rows = []
        for w in mine.itertuples():
            t = theirs.loc[w.window] if theirs is not None and w.window in theirs.index else None
            rows.append([w.window, f"{w.first} .. {w.last}", f"{w.sessions:,} ({w.coverage})",
                         h.fmt_pct(w.total_return), h.fmt_pct(t["total_return"]) if t is not None else "n/a",
                         h.fmt_pct(w.max_drawdown), h.fmt_pct(t["max_drawdown"]) if t is not None else "n/a",
                         h.fmt_pct(w.annual_volatility), h.fmt_pct(t["annual_volatility"]) if t is not None else "n/a"])
        parts.append(h.table(["window", "dates", "sessions", "return", "benchmark return", "max drawdown",
                              "benchmark max drawdown", "volatility (annualised)", "benchmark volatility"],
                             rows, cls="stress"))
        parts.append(h.caption("Windows: the S&P 500's peak-to-trough dates as commonly cited "
                               "(engine.metrics.STRESS_WINDOWS); partial = the series covers only part of the "
                               "window, and the numbers cover only that part. Returns compounded inside the "
                               f"window; volatility x sqrt({s.periods_per_year})."))
    dd = drawdown_periods(r, 5)
    if len(dd):
        rows = [[str(x.start.date()), str(x.trough.date()), str(x.end.date()),
                 str(x.recovery.date()) if not pd.isna(x.recovery) else "not recovered", h.fmt_pct(x.depth),
                 f"{x.days:,}", f"{x.sessions:,}"] for x in dd.itertuples()]
        parts.append("<h3>Five worst drawdowns</h3>" + h.table(
            ["start", "trough", "last under water", "recovery", "depth", "days", "sessions"], rows, cls="drawdowns"))
        parts.append(h.caption("Wealth anchored at the start of the series; days = calendar days from the first to "
                               "the last session under water, inclusive (quantstats' drawdown_details convention)."))
    tails = tail_risk(r)
    if tails:
        rows = [("worst day", f"{h.fmt_pct(tails['worst_day'])} on {tails['worst_day_date']}"),
                ("worst calendar week", f"{h.fmt_pct(tails['worst_week'])} ({tails['worst_week_period']})"),
                ("worst calendar month", f"{h.fmt_pct(tails['worst_month'])} ({tails['worst_month_period']})"),
                ("expected shortfall 95% (daily)", h.fmt_pct(tails["es_95"])),
                ("expected shortfall 99% (daily)", h.fmt_pct(tails["es_99"])),
                ("Hill tail index of losses", h.fmt_metric("tail_index", s.metrics.get("tail_index")))]
        parts.append("<h3>Tails</h3>" + h.table(["measure", "value"], rows, cls="tails"))
        parts.append(h.caption("Expected shortfall: the mean of the worst 5% / 1% of daily returns (historical)."))
    return h.section("stress", "Stress windows, drawdowns and tails", "".join(parts))


def _metrics_section(s: Subject) -> str:
    notes = h.metric_notes(s.periods_per_year)
    rows = [[f"<td>{h.esc(k)}</td>", h.metric_cell(k, s.metrics.get(k)),
             f'<td class="note">{h.esc(notes.get(k, ""))}</td>'] for k in SCALAR_METRICS]
    src = ("as stored with the run (the engine's compute_metrics)" if s.kind == "run"
           else "compute_metrics over the stitched history")
    conv = (f"Conventions: the {s.calendar} calendar, P = {s.periods_per_year} periods a year annualise volatility, "
            "Sharpe, Sortino and turnover; CAGR from elapsed calendar time (365-day years, from the close before the "
            "first return to the last close).")
    return h.section("metrics", "Metrics", h.caption(f"All of the engine's metrics, {src}; n/a where undefined. {conv}")
                     + h.table(["metric", "value", "meaning"], rows, cls="metrics", raw=True))


def _trades_section(s: Subject) -> str:
    trades = s.trades
    if trades.empty:
        return h.section("trades", "Trade statistics", h.paragraph(
            "No trades: no fill in this window, so there are no round trips, win rate, profit factor or holding "
            "periods to show.", "note"))
    stats = trade_statistics(s.round_trips)
    buys = int((trades["side"] == "buy").sum())
    body = _attribution_block(s)
    body += _positions_block(s)
    pf = stats["profit_factor"]
    pf_text = ("n/a (losses under 0.1% of gross round-trip P&L)" if stats.get("profit_factor_degenerate")
               else h.fmt_metric("profit_factor", pf))
    rows = [
        ("fills", f"{len(trades):,} ({buys:,} buys, {len(trades) - buys:,} sells)"),
        ("no-trade log rows", f"{len(s.fills) - len(trades):,}"),
        ("round trips closed (exit-trades convention)", f"{int(stats['round_trips']):,}"),
        ("win rate (share of round trips with P&L > 0)", h.fmt_pct(stats["win_rate"])),
        ("profit factor (gross round-trip profit / gross loss)", pf_text),
        ("average win (money)", h.fmt_money(stats["avg_win"])),
        ("average loss (money)", h.fmt_money(stats["avg_loss"])),
        ("best / worst round trip (money)", f"{h.fmt_money(stats['best'])} / {h.fmt_money(stats['worst'])}"),
        ("total round-trip P&L (money; excludes carry)", h.fmt_money(stats["total_pnl"])),
    ]
    body += "<h3>Round trips (exit-trades convention)</h3>"
    body += h.caption("Every fill that reduces a position closes a round trip at the average entry cost, so a "
                      "rebalancing strategy's trims count as round trips: read these as statistics of closing "
                      "fills, not of positions (see the positions table above). Money in the portfolio currency.")
    body += h.table(["statistic", "value"], rows, cls="trade-stats")
    if s.round_trips.empty:
        body += h.paragraph("No round trip was closed: every position opened is still open at the end, so win rate, "
                            "profit factor and holding periods are undefined.", "note")
        return h.section("trades", "Trade statistics", body)
    hold = [("min", stats["holding_min"]), ("median", stats["holding_median"]), ("mean", stats["holding_mean"]),
            ("90th percentile", stats["holding_p90"]), ("max", stats["holding_max"])]
    body += "<h3>Round-trip holding periods (calendar days, entry from flat to each closing fill)</h3>"
    body += h.table([q for q, _ in hold], [[f"{v:,.1f}" for _, v in hold]], cls="holding")
    body += charts.holding_histogram(s.round_trips["holding_days"])
    by = s.round_trips.groupby("instrument_id")["pnl"].agg(["count", "sum", lambda x: (x > 0).mean()])
    by.columns = ["trips", "pnl", "win_rate"]
    by = by.reindex(by["pnl"].abs().sort_values(ascending=False).index).head(12)
    body += "<h3>By instrument (largest P&amp;L first, at most 12)</h3>"
    body += h.table(["instrument", "round trips", "P&L", "win rate"],
                    [[i, f"{int(r.trips):,}", h.fmt_money(r.pnl), h.fmt_pct(r.win_rate)] for i, r in by.iterrows()])
    body += h.caption("Round trips follow the exit-trades convention (one per closing fill, average cost); their "
                      "P&L is net of trading costs and excludes carry (funding, dividends, borrow, interest).")
    return h.section("trades", "Trade statistics", body)


def _attribution_block(s: Subject) -> str:
    """P&L by instrument, adding up to the equity change."""
    a = s.attribution
    if a is None:
        return h.paragraph("No P&L attribution is stored with these runs (made before engine 1.1); rerun them to "
                           "see P&L by instrument.", "note")
    if a.empty:
        return ""
    cols = ["price", "funding", "dividends", "borrow", "costs", "interest", "total"]
    inst = a.drop(index="cash", errors="ignore")
    order = inst["total"].abs().sort_values(ascending=False).index
    shown, rest = inst.loc[order[:12]], inst.loc[order[12:]]
    rows = [[str(i)] + [h.fmt_money(r[c]) for c in cols] for i, r in shown.iterrows()]
    if len(rest):
        rows.append([f"{len(rest)} other instruments"] + [h.fmt_money(rest[c].sum()) for c in cols])
    if "cash" in a.index:
        rows.append(["cash (interest)"] + [h.fmt_money(a.loc["cash", c]) for c in cols])
    rows.append(["total"] + [h.fmt_money(a[c].sum()) for c in cols])
    change = float(s.equity["equity"].iloc[-1]) - s.start_equity
    return ("<h3>P&amp;L by instrument (money)</h3>"
            + h.table(["instrument", "price", "funding", "dividends", "borrow", "costs", "cash interest", "total"],
                      rows, cls="attribution")
            + h.caption(f"Price = change in position value less the notional traded (mark-to-market); funding and "
                        f"dividends received (negative = paid); borrow and trading costs paid (negative). The total, "
                        f"{h.fmt_money(a['total'].sum())}, is the equity change {h.fmt_money(change)} "
                        "(final less starting equity), from the engine's own ledger."))


def _positions_block(s: Subject) -> str:
    """Position-level holding periods: from the fill that opens a position from flat to the fill
    that takes it back to flat (splits ignored; a position open at the end is counted apart)."""
    held = (s.start_state or {}).get("quantities") or {}
    spells = position_spells(s.trades, held, s.window[0])
    if spells.empty:
        return ""
    closed = spells[spells["closed"]]
    q = closed["days"].quantile([0.5, 0.9]) if len(closed) else pd.Series([math.nan, math.nan], index=[0.5, 0.9])
    rows = [("positions opened from flat", f"{len(spells):,}"),
            ("closed back to flat / still open at the end", f"{len(closed):,} / {len(spells) - len(closed):,}"),
            ("holding period of closed positions: median / 90th percentile / max (calendar days)",
             f"{q[0.5]:,.1f} / {q[0.9]:,.1f} / {closed['days'].max() if len(closed) else math.nan:,.1f}"),
            ("positions closed with a gain (price P&L of the spell's fills)",
             h.fmt_pct((closed["pnl"] > 0).mean()) if len(closed) else "n/a")]
    return "<h3>Positions (flat to flat)</h3>" + h.table(["statistic", "value"], rows, cls="positions")


def _costs_section(engine: sa.Engine, s: Subject) -> str:
    costs, carry, funding = s.costs_daily, s.carry_daily, s.funding_daily
    carry_total = float(carry.sum())
    rows = [("trading costs paid", h.fmt_money(s.costs_paid)),
            ("funding paid (negative = received)", h.fmt_money(s.funding_paid)),
            ("all carry paid, from the cash ledger", h.fmt_money(carry_total))]
    body = h.table(["", "money"], rows, cls="costs")
    body += charts.costs_carry(costs, carry, funding=funding)
    stored = ("Funding is also stored per session and drawn on its own." if funding is not None else
              "Funding alone is stored only as a total"
              + (" per month (see the monthly runs in the lineage)." if s.kind == "strategy" else "."))
    body += h.caption("Costs are the fills' costs by session. Carry per session comes from the cash ledger "
                      "(cash change plus what the fills spent): funding and borrow paid, less interest and "
                      "dividends received. " + stored
                      + (" Here the ledger carry equals the stored funding total."
                         if math.isclose(carry_total, s.funding_paid, rel_tol=1e-6, abs_tol=1e-4) else ""))
    if s.clean:
        body += h.paragraph("Clean run: trading costs and slippage are zero by construction.", "note")
    if s.kind == "run":
        other_id = queries.counterpart_run(engine, s.strategy_id, *s.stored_window, s.config, s.start_state)
        if other_id is None:
            want = "clean" if not s.clean else "realistic"
            body += h.paragraph(f"No {want} counterpart of this run is stored (same strategy, window and settings"
                                f"{', clean' if want == 'clean' else ''}); "
                                f"`macro-pipeline backtest --strategy {s.strategy_id} --start {s.stored_window[0]} "
                                f"--end {s.stored_window[1]}{' --clean' if want == 'clean' else ''}` makes one.", "note")
        else:
            other = load_run_subject(engine, other_id)
            real, clean = (s, other) if not s.clean else (other, s)
            body += "<h3>Clean vs realistic</h3>" + _drag_table([(real, clean)])
    return h.section("costs", "Costs and funding", body)


def _lineage_section(s: Subject) -> str:
    st = s.strategy
    items = dict(s.lineage)
    items["strategy kind"] = st["kind"]
    items["strategy params"] = json.dumps(st["params"], sort_keys=True)
    items["universe / rebalance / calendar"] = f"{st['universe']} / {st['rebalance']} / {st['calendar']}"
    items["params hash"] = st["params_hash"]
    body = h.lineage_block(items, s.config)
    if s.kind == "strategy":
        runs = s.runs
        rows = [[str(r.window_start)[:7], f"{r.window_start} .. {r.window_end}", r.run_id, r.signal_snapshot_id,
                 pd.Timestamp(r.system_as_of).isoformat(), r.engine_version,
                 r.orchestrator_run_id if isinstance(r.orchestrator_run_id, str) else "",
                 f"{r.sessions:,}", h.fmt_metric("total_return", r.total_return), h.fmt_money(r.costs_paid),
                 h.fmt_money(r.funding_paid)] for r in runs.itertuples()]
        body += (f'<details id="monthly-runs"><summary>The {len(runs)} monthly pipeline runs stitched '
                 "(run id, signal snapshot id, watermark, ...)</summary><div class=\"scroll\">"
                 + h.table(["month", "window", "run id", "signal snapshot id", "system_as_of", "engine",
                            "orchestrator run id", "sessions", "return", "costs paid", "funding paid"], rows,
                           cls="monthly-runs")
                 + "</div></details>")
    return h.section("lineage", "Lineage", body)


def render_subject(engine: sa.Engine, s: Subject, benchmark: str | None = None) -> str:
    """The full report of one subject; ``benchmark`` None means the strategy's own benchmark
    (`backtests.benchmark_config`), an instrument id that instrument's close (e.g. ``SPX``, a
    price index without dividends)."""
    if benchmark is None:
        bench, bench_caption = default_benchmark_curve(engine, s)
    else:
        bench, bench_caption = benchmark_curve(engine, benchmark, s, explicit=True)
    equity_html, bench_total = _equity_section(s, bench, bench_caption)
    table = monthly_returns(s.returns)
    monthly_html = h.section("monthly-returns", "Monthly returns", h.heatmap(table) + h.caption(
        "Compounded session returns per calendar month, in percent; the year total compounds the year's sessions "
        "in this window (a partial first or last year covers only its sessions)."))
    title, subtitle = _title(s)
    body = "".join([
        h.notes(s.notes),
        h.section("summary", "Summary", _summary(s, bench_total)),
        equity_html, monthly_html, _rolling_section(s), _exposure_section(s), _turnover_section(s),
        _stress_section(s, bench), _tearsheet_section(s, bench), _metrics_section(s), _trades_section(s), _costs_section(engine, s), _lineage_section(s),
    ])
    return h.page(title, subtitle, body)


def render_run_report(engine: sa.Engine, run_id: str, benchmark: str | None = None) -> str:
    return render_subject(engine, load_run_subject(engine, run_id), benchmark)


def render_strategy_report(engine: sa.Engine, strategy_id: str, benchmark: str | None = None) -> str:
    return render_subject(engine, load_strategy_subject(engine, strategy_id), benchmark)


# --------------------------------------------------------------------------- comparison


def _drag_table(pairs: Sequence[tuple[Subject, Subject]]) -> str:
    rows = []
    for real, clean in pairs:
        rm, cm = real.metrics, clean.metrics

        def diff(k: str, rm=rm, cm=cm) -> str:
            a, b = rm.get(k), cm.get(k)
            return "n/a" if h.is_missing(a) or h.is_missing(b) else f"{100 * (b - a):.2f} pp"

        rows.append([real.strategy_id, f"{real.stored_window[0]} .. {real.stored_window[1]}", real.ident[:12],
                     clean.ident[:12], h.fmt_metric("total_return", rm.get("total_return")),
                     h.fmt_metric("total_return", cm.get("total_return")), diff("total_return"), diff("cagr"),
                     h.fmt_money(real.costs_paid)])
    return h.table(["strategy", "window", "realistic run", "clean run", "total return (realistic)",
                    "total return (clean)", "cost drag, total return", "cost drag, CAGR", "costs paid"], rows,
                   cls="cost-drag") + h.caption("Cost drag = clean - realistic, in percentage points: what trading "
                                                "costs and slippage took.")


def render_comparison(engine: sa.Engine, subjects: Sequence[Subject]) -> str:
    """Overlaid growth curves and drawdowns, metrics side by side, and the clean vs realistic cost
    drag for every run whose counterpart (same strategy, window and settings, the other clean
    flag) is among the subjects or stored."""
    labels = _unique_labels(subjects)
    curves = {lab: s.equity["equity"] / s.start_equity for lab, s in zip(labels, subjects, strict=True)}
    drawdowns = {lab: s.equity["drawdown"] for lab, s in zip(labels, subjects, strict=True)}
    log = all(bool((c > 0).all()) for c in curves.values())
    notes = collapse_notes([(lab, n) for lab, s in zip(labels, subjects, strict=True) for n in s.notes])
    windows = {s.window for s in subjects}
    body = h.notes(notes)
    overlay = charts.overlay(curves, drawdowns, log=log)
    cap = "Each curve is equity / its own starting equity, so curves with different capital compare."
    if len(windows) > 1:
        cap += " The windows differ: each curve starts at 1 on its own first session."
    body += h.section("equity", "Equity and drawdown, overlaid", overlay + h.caption(cap))
    tables = []
    for title, keys in METRIC_GROUPS:  # strategies as rows, a few metrics per table: fits the page
        rows = [[f"<td>{h.esc(lab)}</td>", *(h.metric_cell(k, s.metrics.get(k)) for k in keys)]
                for lab, s in zip(labels, subjects, strict=True)]
        tables.append(f"<h3>{h.esc(title)}</h3>" + h.table(["result", *keys], rows, cls="metrics side-by-side",
                                                           raw=True))
    rows = [[lab, f"{s.window[0].date()} .. {s.window[1].date()}", f"{len(s.equity):,}", s.calendar,
             h.fmt_money(s.costs_paid), h.fmt_money(s.funding_paid), "clean" if s.clean else "realistic costs",
             "run" if s.kind == "run" else f"history ({len(s.runs)} months)"]
            for lab, s in zip(labels, subjects, strict=True)]
    tables.append("<h3>Windows and costs</h3>" + h.table(
        ["result", "window", "sessions", "calendar", "costs paid", "funding paid", "mode", "kind"], rows,
        cls="side-by-side"))
    body += h.section("metrics", "Metrics side by side", "".join(tables) + h.caption(
        "Each result's metrics over its own window (see Windows and costs), annualised with its own calendar "
        "(252 sessions a year; 365 for 24/7)."))
    body += h.section("cost-drag", "Clean vs realistic cost drag", _drag_section(engine, subjects))
    lineage_rows = [[lab, s.kind, s.ident, s.lineage.get("signal snapshot id", s.lineage.get("signal snapshots", "")),
                     s.lineage.get("system_as_of (watermark)", s.lineage.get("system_as_of (watermarks)", "")),
                     s.lineage.get("engine version", s.lineage.get("engine versions", ""))]
                    for lab, s in zip(labels, subjects, strict=True)]
    body += h.section("lineage", "Lineage", h.table(["label", "kind", "id", "signal snapshot", "system_as_of",
                                                     "engine"], lineage_rows, cls="lineage"))
    title = "Comparison: " + ", ".join(dict.fromkeys(s.strategy_id for s in subjects))
    return h.page(title, f"{len(subjects)} results: " + "; ".join(labels), body)


METRIC_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Return and risk", ("total_return", "cagr", "annual_volatility", "sharpe", "sortino", "calmar", "max_drawdown",
                         "max_drawdown_duration_days")),
    ("Tails", ("var_95", "cvar_95", "tail_index")),
    ("Trading and exposure", ("win_rate", "profit_factor", "avg_win", "avg_loss", "avg_holding_days", "trade_count",
                              "turnover", "gross_exposure", "net_exposure")),
)


def collapse_notes(notes: Sequence[tuple[str, str]]) -> list[str]:
    """(label, note) pairs -> one line per distinct note naming every label it applies to, in
    first-seen order: nine identical notes become one."""
    by_text: dict[str, list[str]] = {}
    for label, text in notes:
        by_text.setdefault(text, []).append(label)
    return [f"{', '.join(labels)}: {text}" for text, labels in by_text.items()]


def _unique_labels(subjects: Sequence[Subject]) -> list[str]:
    labels = [s.label for s in subjects]
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if labels.count(lab) == 1 else f"{lab} #{seen[lab]}")
    return out


def _drag_section(engine: sa.Engine, subjects: Sequence[Subject]) -> str:
    by_id = {s.ident: s for s in subjects if s.kind == "run"}
    pairs, missing, done = [], [], set()
    for s in subjects:
        if s.kind != "run":
            missing.append((s.label, "a pipeline history has no clean counterpart; compare a one-off run with its "
                                     "--clean twin instead."))
            continue
        if s.ident in done:
            continue
        other_id = queries.counterpart_run(engine, s.strategy_id, *s.stored_window, s.config, s.start_state)
        if other_id is None:
            missing.append((s.label, f"no {'clean' if not s.clean else 'realistic'} counterpart stored "
                                     f"(same strategy, window {s.stored_window[0]} .. {s.stored_window[1]} and "
                                     "settings)."))
            continue
        other = by_id.get(other_id) or load_run_subject(engine, other_id)
        done.update({s.ident, other_id})
        pairs.append((s, other) if not s.clean else (other, s))
    body = _drag_table(pairs) if pairs else ""
    if missing:
        body += "<ul>" + "".join(f"<li>{h.esc(m)}</li>" for m in collapse_notes(missing)) + "</ul>"
    return body


# --------------------------------------------------------------------------- files


def reports_dir(settings=None) -> Path:
    """Where reports go by default: ``$MACRO_PIPELINE_HOME/reports``."""
    from macro_pipeline.settings import load_settings

    return (settings or load_settings()).home / "reports"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:120]


def _target(out: str | os.PathLike | None, default_name: str) -> Path:
    """``out`` as a file, or ``default_name`` inside ``out`` when it is an existing directory (or
    inside the default reports directory when ``out`` is None). Fails before any work is done
    when the place cannot be written."""
    path = reports_dir() / default_name if out is None else Path(out).expanduser()
    if path.is_dir():
        path = path / default_name
    path = _regular_target(path)
    _check_directory(path.parent, path)
    return path


def _regular_target(path: Path) -> Path:
    """The file a report replaces: ``path`` itself, or the file a symbolic link at ``path`` names
    (a link is written through, so it keeps pointing at the new report). Anything that exists and
    is not a regular file (a device such as /dev/full, a FIFO, a socket) is refused: the report is
    written to a temporary file renamed over the target, which would replace the special file."""
    target = path.resolve() if path.is_symlink() else path
    if target.exists() and not target.is_file():
        via = f" (the symbolic link {path} points to it)" if target != path else ""
        raise ReportWriteError(f"cannot write report to {target}{via}: not a regular file "
                               "(a device, FIFO or socket); give a file or directory path")
    return target


def _check_directory(directory: Path, target: Path) -> None:
    """``directory`` exists and is writable, or can be created below a writable directory."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ReportWriteError(f"cannot write report to {target}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ReportWriteError(f"cannot write report to {target}: {existing} is not writable")


def _write(path: Path, text: str) -> Path:
    """Write atomically (a temporary file renamed over the target): never a half-written report."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        _regular_target(path)  # still no special file there (it may have appeared meanwhile)
        os.replace(tmp, path)
    except ReportWriteError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ReportWriteError(f"cannot write report to {path}: {exc.strerror or exc}") from exc
    return path.resolve()


def write_run_report(engine: sa.Engine, run_id: str, out: str | os.PathLike | None = None,
                     benchmark: str | None = None) -> Path:
    """Write the report of stored run ``run_id`` (full id or unique prefix) to ``out`` (a file,
    or a directory for ``run-<id>.html``; default the reports directory); returns the path."""
    run_id = resolve_run_id(engine, run_id)
    path = _target(out, f"run-{run_id}.html")
    return _write(path, render_run_report(engine, run_id, benchmark))


def write_strategy_report(engine: sa.Engine, strategy_id: str, out: str | os.PathLike | None = None,
                          benchmark: str | None = None) -> Path:
    """Write the full-history report of ``strategy_id`` (its current monthly pipeline runs,
    stitched) to ``out`` (file or directory for ``strategy-<id>.html``); returns the path."""
    path = _target(out, f"strategy-{_safe(strategy_id)}.html")
    return _write(path, render_strategy_report(engine, strategy_id, benchmark))


def write_comparison(engine: sa.Engine, ids: Sequence[str | Subject], out: str | os.PathLike | None = None) -> Path:
    """Write the comparison of ``ids`` (run ids, unique prefixes or strategy ids, at least one;
    already loaded `Subject`s are taken as they are) to ``out`` (file or directory); returns the
    path."""
    if not ids:
        raise ValueError("compare needs at least one run or strategy id")
    subjects = [i if isinstance(i, Subject) else resolve_subject(engine, i) for i in ids]
    name = "compare-" + "_".join(_safe(s.ident[:12] if s.kind == "run" else s.ident) for s in subjects)[:100] + ".html"
    path = _target(out, name)
    return _write(path, render_comparison(engine, subjects))


def write_reports(engine: sa.Engine, *, run_ids: Iterable[str] = (), strategy_ids: Iterable[str] = (),
                  out_dir: str | os.PathLike | None = None, benchmark: str | None = None,
                  progress: bool | None = None) -> list[Path]:
    """Bulk: one report per run and per strategy into ``out_dir`` (default the reports
    directory), with a progress bar on stderr (default: when stderr is a terminal)."""
    from tqdm import tqdm

    targets = [("run", r) for r in run_ids] + [("strategy", s) for s in strategy_ids]
    directory = reports_dir() if out_dir is None else Path(out_dir).expanduser()
    if directory.exists() and not directory.is_dir():
        raise ReportWriteError(f"cannot write reports to {directory}: it is a file, not a directory")
    _check_directory(directory, directory)  # fail before the work when it cannot be written
    paths = []
    show = sys.stderr.isatty() if progress is None else progress
    for kind, ident in tqdm(targets, desc="reports", unit="report", disable=not show):
        if kind == "run":
            paths.append(write_run_report(engine, ident, directory / f"run-{resolve_run_id(engine, ident)}.html",
                                          benchmark))
        else:
            paths.append(write_strategy_report(engine, ident, directory / f"strategy-{_safe(ident)}.html", benchmark))
    return paths


def write_strategy_reports(engine: sa.Engine, strategy_ids: Iterable[str] | None = None,
                           out_dir: str | os.PathLike | None = None, benchmark: str | None = None,
                           progress: bool | None = None) -> list[Path]:
    """A full-history report for each strategy (default: every strategy with pipeline runs)."""
    ids = queries.strategies_with_pipeline_runs(engine) if strategy_ids is None else list(strategy_ids)
    return write_reports(engine, strategy_ids=ids, out_dir=out_dir, benchmark=benchmark, progress=progress)

