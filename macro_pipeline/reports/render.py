"""The pages: one subject (a run or a stitched strategy history), and a comparison of several.

``render_*`` return the HTML text (``files.write_*`` write it). A page is one file with every
style and chart inline (SVG, no script), so it opens anywhere with no network. Sections are
composed here from the template blocks (``blocks.py``, ``templates/``); every text is escaped
there.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa
from markupsafe import Markup

from macro_pipeline.engine.metrics import (
    STRESS_WINDOWS,
    drawdown_periods,
    relative_metrics,
    stress_table,
    tail_risk,
)
from macro_pipeline.reports import blocks as h
from macro_pipeline.reports import charts, queries
from macro_pipeline.reports import formatting as fmt
from macro_pipeline.reports.data import (
    SCALAR_METRICS,
    Subject,
    benchmark_curve,
    default_benchmark_curve,
    load_run_subject,
    load_strategy_subject,
    monthly_returns,
    period_returns,
    position_spells,
    return_statistics,
    rolling_stats,
    trade_statistics,
)

# --------------------------------------------------------------------------- one subject


def _title(s: Subject) -> tuple[str, str]:
    lo, hi = s.window
    mode = "clean (no trading costs)" if s.clean else "realistic costs"
    span = f"{lo.date()} .. {hi.date()}, {len(s.equity):,} session{'s' if len(s.equity) != 1 else ''}"
    if s.kind == "run":
        return f"Backtest report: {s.strategy_id}", f"run {s.ident} · {span} · {mode}"
    return (f"Strategy report: {s.strategy_id} (full history)",
            f"{len(s.runs)} monthly pipeline runs stitched · {span} · {mode}")


def _summary(s: Subject, bench: tuple[float, str] | None) -> Markup:
    m = s.metrics
    final = float(s.equity["equity"].iloc[-1])
    items = [
        ("total return", fmt.fmt_metric("total_return", m.get("total_return")), fmt.sign_class(m.get("total_return"))),
        ("CAGR", fmt.fmt_metric("cagr", m.get("cagr")), fmt.sign_class(m.get("cagr"))),
        ("Sharpe", fmt.fmt_metric("sharpe", m.get("sharpe")), ""),
        ("max drawdown", fmt.fmt_metric("max_drawdown", m.get("max_drawdown")), ""),
        ("annual volatility", fmt.fmt_metric("annual_volatility", m.get("annual_volatility")), ""),
        ("final equity", f"{final:,.0f}", ""),
        ("trades (fills)", f"{len(s.trades):,}", ""),
        ("round trips", f"{len(s.round_trips):,}", ""),
        ("costs paid", fmt.fmt_money(s.costs_paid), ""),
        ("funding paid", fmt.fmt_money(s.funding_paid), ""),
    ]
    if bench is not None:
        total, mine, window = bench
        items.insert(1, (f"benchmark total return ({window})", fmt.fmt_pct(total), fmt.sign_class(total)))
        items.insert(2, ("strategy total return, same window", fmt.fmt_pct(mine), fmt.sign_class(mine)))
    return h.kpis(items)


def _equity_section(s: Subject, bench: pd.Series | None, bench_caption: str) -> tuple[Markup, tuple[float, str] | None]:
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
    return h.section("equity", "Equity against the benchmark, and drawdown", h.join(parts)), bench_total


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


def _relative_table(rel: dict, window: str, periods_per_year: int) -> Markup:
    rows = []
    for label, key, note in RELATIVE_ROWS:
        if key is None:
            k = "total_return" if label.startswith("total") else "cagr"
            value = f"{fmt.fmt_pct(rel[k])} / {fmt.fmt_pct(rel['benchmark_' + k])}"
        elif key in ("alpha", "tracking_error"):
            value = fmt.fmt_pct(rel[key])
        else:
            value = fmt.fmt_metric(key, rel[key])
        rows.append([label, value, re.sub(r"\bP\b", str(periods_per_year), note)])
    return (h.heading(f"Against the benchmark over the common window ({window})")
            + h.table(["measure", "value", "definition"], rows, cls="relative"))


def _rolling_section(s: Subject) -> Markup:
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
            f"{s.periods_per_year} periods a year, risk-free 0; Sortino's downside deviation as in the metrics. "
            f"Latest: Sharpe {fmt.fmt_metric('sharpe', stats['sharpe'].iloc[-1])}, Sortino "
            f"{fmt.fmt_metric('sortino', stats['sortino'].iloc[-1])}, volatility {fmt.fmt_pct(stats['volatility'].iloc[-1])}.")
    return h.section("rolling", "Rolling 12-month Sharpe, Sortino and volatility", body)


def _exposure_section(s: Subject) -> Markup:
    e = s.equity
    body = charts.exposure(e) + h.caption(
        f"Average gross {fmt.fmt_pct(e['gross_exposure'].mean())}, net {fmt.fmt_pct(e['net_exposure'].mean())}; "
        f"maximum gross {fmt.fmt_pct(e['gross_exposure'].max())}.")
    return h.section("exposure", "Gross and net exposure", body)


def _turnover_section(s: Subject) -> Markup:
    t = s.equity["turnover"]
    monthly = t.groupby(pd.DatetimeIndex(t.index).to_period("M")).sum()
    monthly.index = monthly.index.to_timestamp() + pd.Timedelta(days=14)
    body = charts.turnover(monthly) + h.caption(
        f"Annualised turnover {fmt.fmt_metric('turnover', s.metrics.get('turnover'))} (mean daily traded notional / "
        f"equity x {s.periods_per_year}); busiest session {fmt.fmt_pct(t.max())} on {t.idxmax().date()}.")
    return h.section("turnover", "Turnover", body)


STATISTIC_ROWS = (
    ("best day", "best_day", "pct"), ("worst day", "worst_day", "pct"),
    ("best month", "best_month", "pct"), ("worst month", "worst_month", "pct"),
    ("best year", "best_year", "pct"), ("worst year", "worst_year", "pct"),
    ("average up month", "avg_up_month", "pct"), ("average down month", "avg_down_month", "pct"),
    ("win days", "win_days", "pct"), ("win months", "win_months", "pct"),
    ("win quarters", "win_quarters", "pct"), ("win years", "win_years", "pct"),
    ("skew (daily)", "skew", "num"), ("excess kurtosis (daily)", "kurtosis", "num"),
    ("tail ratio", "tail_ratio", "num"), ("gain/pain ratio (daily)", "gain_pain", "num"),
    ("ulcer index", "ulcer_index", "num"),
)


def _compounded(r: pd.Series, freq: str) -> pd.Series:
    """Returns compounded per calendar period (``ME``, ``QE``, ``YE``, ``W-SUN``), periods with no
    session left out."""
    idx = pd.DatetimeIndex(r.index)
    key = idx.to_period({"ME": "M", "QE": "Q", "YE": "Y", "W-SUN": "W-SUN"}[freq])
    return (1.0 + r).groupby(key).prod() - 1.0


def _tearsheet_section(s: Subject, bench: pd.Series | None) -> Markup:
    """What quantstats' full tearsheet has beside ours (README, Reports): returns by trailing
    period, its return statistics, end-of-year returns against the benchmark, monthly and daily
    return distributions, return quantiles, volatility-matched growth and rolling beta (the
    worst-drawdown periods and the underwater plot are in the stress section)."""
    r = s.returns
    b = bench.pct_change().dropna() if bench is not None else None
    b = b if b is not None and len(b) else None
    parts = []
    # trailing periods, each ending at the last session; the benchmark's only when its data
    # reaches that session (otherwise its windows would end elsewhere)
    mine = period_returns(r, s.calendar)
    same_end = b is not None and b.index[-1] == r.index[-1]
    theirs = period_returns(b, s.calendar) if same_end else {}
    rows = [[label, fmt.fmt_pct(v), fmt.fmt_pct(theirs.get(label)) if same_end else "n/a"]
            for label, v in mine.items()]
    parts.append(h.heading(f"Returns by period, to {r.index[-1].date()}") + h.table(
        ["period", "strategy", "benchmark"], rows, cls="periods") + h.caption(
        "Compounded over the sessions on or after the window's first day (MTD from the 1st of the month, 3M/6M/1Y "
        "back from the last session, YTD from January 1); 3Y, 5Y and 10Y look back 35, 59 and 119 months, as "
        "quantstats does, and are annualised like the CAGR (elapsed calendar time, 365-day years); n/a where the "
        "series is shorter than the window" + ("" if same_end or b is None else
                                               f", and for the benchmark, whose data ends {b.index[-1].date()}") + "."))
    stats, bstats = return_statistics(r), return_statistics(b) if b is not None else {}
    rows = [[label, (fmt.fmt_pct if kind == "pct" else fmt.fmt_ratio)(stats[key]),
             (fmt.fmt_pct if kind == "pct" else fmt.fmt_ratio)(bstats.get(key))] for label, key, kind in STATISTIC_ROWS]
    parts.append(h.heading("Return statistics") + h.table(["measure", "strategy", "benchmark"], rows,
                                                           cls="return-stats") + h.caption(
        "Quantstats' conventions: months, quarters and years compounded per calendar period; a win rate is the share "
        "of positive periods among those with a non-zero return; tail ratio = 95th percentile / |5th percentile| of "
        "daily returns; gain/pain = sum of daily returns / |sum of the negative ones|; ulcer index = sqrt(sum of "
        "squared drawdowns / (n - 1))."))
    years = _compounded(r, "YE")
    years.index = years.index.year
    by = _compounded(b, "YE") if b is not None else pd.Series(dtype=float)
    by.index = by.index.year if len(by) else by.index
    parts.append(charts.yearly_returns(years, by if len(by) else None))
    rows = [[str(y), fmt.fmt_pct(v), fmt.fmt_pct(by.get(y)), fmt.fmt_pct(v - by[y]) if y in by.index else "n/a"]
            for y, v in years.items()]
    parts.append(h.heading("Returns by calendar year") + h.table(
        ["year", "strategy", "benchmark", "difference"], rows, cls="yearly")
        + h.caption("Compounded over the sessions of each year inside the window (a partial first or last year "
                    "covers only those); the benchmark over its sessions in that year."))
    months = _compounded(r, "ME")
    parts.append(charts.monthly_distribution(months, _compounded(b, "ME") if b is not None else None) + h.caption(
        f"{len(months):,} calendar month{'s' if len(months) != 1 else ''} compounded from the sessions; the "
        "benchmark's on the same bins."))
    tails = tail_risk(r)
    parts.append(charts.return_distribution(r, float(np.percentile(r, 5)), tails["es_95"])
                 + h.caption("Daily returns of the whole window; VaR 95% = the 5th percentile, ES 95% = the mean of "
                             "the worst 5%."))
    parts.append(charts.daily_returns(r))
    groups = {"daily": r, "weekly": _compounded(r, "W-SUN"), "monthly": months, "quarterly": _compounded(r, "QE"),
              "yearly": years}
    parts.append(charts.return_quantiles(groups) + h.caption(
        "Compounded per calendar week (Monday to Sunday), month, quarter and year; box = 25th to 75th percentile, "
        "line = median, whiskers = 1.5 x the interquartile range, dots beyond."))
    if b is not None:
        both = pd.concat([r.rename("r"), b.rename("b")], axis=1, join="inner").dropna()
        if len(both) > 2 and both["r"].std() > 0:
            scaled = both["r"] * (both["b"].std() / both["r"].std())
            parts.append(charts.volatility_matched((1 + scaled).cumprod(), (1 + both["b"]).cumprod()) + h.caption(
                f"The strategy's daily returns times sd(b) / sd(r) = {both['b'].std() / both['r'].std():,.3f} over "
                f"the common window ({both.index[0].date()} .. {both.index[-1].date()}), compounded: what the "
                "strategy would have made at the benchmark's volatility (leverage free, no costs of leverage)."))
        betas = {}
        for window in (s.periods_per_year // 2, s.periods_per_year):
            if len(both) > window:
                cov = both["r"].rolling(window).cov(both["b"])
                beta = (cov / both["b"].rolling(window).var()).dropna()
                if len(beta) > 1:
                    betas[window] = beta
        if betas:
            parts.append(charts.rolling_beta(betas) + h.caption(
                "cov(r, b) / var(b) over the trailing " + " and ".join(str(w) for w in betas)
                + f" sessions (6 and 12 months on the {s.calendar} calendar)."))
    return h.section("tearsheet", "Tearsheet: period returns, statistics, years, distributions and rolling beta",
                     h.join(parts))


def _stress_section(s: Subject, bench: pd.Series | None) -> Markup:
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
                         fmt.fmt_pct(w.total_return), fmt.fmt_pct(t["total_return"]) if t is not None else "n/a",
                         fmt.fmt_pct(w.max_drawdown), fmt.fmt_pct(t["max_drawdown"]) if t is not None else "n/a",
                         fmt.fmt_pct(w.annual_volatility), fmt.fmt_pct(t["annual_volatility"]) if t is not None else "n/a"])
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
                 str(x.recovery.date()) if not pd.isna(x.recovery) else "not recovered", fmt.fmt_pct(x.depth),
                 f"{x.days:,}", f"{x.sessions:,}"] for x in dd.itertuples()]
        parts.append(h.heading("Five worst drawdowns") + h.table(
            ["start", "trough", "last under water", "recovery", "depth", "days", "sessions"], rows, cls="drawdowns"))
        parts.append(h.caption("Wealth anchored at the start of the series; days = calendar days from the first to "
                               "the last session under water, inclusive (quantstats' drawdown_details convention)."))
        wealth = (1.0 + r).cumprod()
        underwater = wealth / np.maximum.accumulate(np.maximum(wealth.to_numpy(), 1.0)) - 1.0
        parts.append(charts.worst_drawdowns(wealth, dd, underwater) + h.caption(
            "Shaded: each of the periods above, from its start to its recovery (or to the end, when not recovered). "
            "Below, the underwater plot with its mean over every session."))
    tails = tail_risk(r)
    if tails:
        rows = [("worst day", f"{fmt.fmt_pct(tails['worst_day'])} on {tails['worst_day_date']}"),
                ("worst calendar week", f"{fmt.fmt_pct(tails['worst_week'])} ({tails['worst_week_period']})"),
                ("worst calendar month", f"{fmt.fmt_pct(tails['worst_month'])} ({tails['worst_month_period']})"),
                ("expected shortfall 95% (daily)", fmt.fmt_pct(tails["es_95"])),
                ("expected shortfall 99% (daily)", fmt.fmt_pct(tails["es_99"])),
                ("Hill tail index of losses", fmt.fmt_metric("tail_index", s.metrics.get("tail_index")))]
        parts.append(h.heading("Tails") + h.table(["measure", "value"], rows, cls="tails"))
        parts.append(h.caption("Expected shortfall: the mean of the worst 5% / 1% of daily returns (historical)."))
    return h.section("stress", "Stress windows, drawdowns and tails", h.join(parts))


def _metrics_section(s: Subject) -> Markup:
    notes = fmt.metric_notes(s.periods_per_year)
    rows = [[k, h.metric_cell(k, s.metrics.get(k)), h.cell(notes.get(k, ""), **{"class": "note"})]
            for k in SCALAR_METRICS]
    src = ("as stored with the run (the engine's compute_metrics)" if s.kind == "run"
           else "compute_metrics over the stitched history")
    conv = (f"Conventions: the {s.calendar} calendar, P = {s.periods_per_year} periods a year annualise volatility, "
            "Sharpe, Sortino and turnover; CAGR from elapsed calendar time (365-day years, from the close before the "
            "first return to the last close).")
    return h.section("metrics", "Metrics", h.caption(f"All of the engine's metrics, {src}; n/a where undefined. {conv}")
                     + h.table(["metric", "value", "meaning"], rows, cls="metrics"))


def _trades_section(s: Subject) -> Markup:
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
               else fmt.fmt_metric("profit_factor", pf))
    rows = [
        ("fills", f"{len(trades):,} ({buys:,} buys, {len(trades) - buys:,} sells)"),
        ("no-trade log rows", f"{len(s.fills) - len(trades):,}"),
        ("round trips closed (exit-trades convention)", f"{int(stats['round_trips']):,}"),
        ("win rate (share of round trips with P&L > 0)", fmt.fmt_pct(stats["win_rate"])),
        ("profit factor (gross round-trip profit / gross loss)", pf_text),
        ("average win (money)", fmt.fmt_money(stats["avg_win"])),
        ("average loss (money)", fmt.fmt_money(stats["avg_loss"])),
        ("best / worst round trip (money)", f"{fmt.fmt_money(stats['best'])} / {fmt.fmt_money(stats['worst'])}"),
        ("total round-trip P&L (money; excludes carry)", fmt.fmt_money(stats["total_pnl"])),
    ]
    body += h.heading("Round trips (exit-trades convention)")
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
    body += h.heading("Round-trip holding periods (calendar days, entry from flat to each closing fill)")
    body += h.table([q for q, _ in hold], [[f"{v:,.1f}" for _, v in hold]], cls="holding")
    body += charts.holding_histogram(s.round_trips["holding_days"])
    by = s.round_trips.groupby("instrument_id")["pnl"].agg(["count", "sum", lambda x: (x > 0).mean()])
    by.columns = ["trips", "pnl", "win_rate"]
    by = by.reindex(by["pnl"].abs().sort_values(ascending=False).index).head(12)
    body += h.heading("By instrument (largest P&L first, at most 12)")
    body += h.table(["instrument", "round trips", "P&L", "win rate"],
                    [[i, f"{int(r.trips):,}", fmt.fmt_money(r.pnl), fmt.fmt_pct(r.win_rate)] for i, r in by.iterrows()])
    body += h.caption("Round trips follow the exit-trades convention (one per closing fill, average cost); their "
                      "P&L is net of trading costs and excludes carry (funding, dividends, borrow, interest).")
    return h.section("trades", "Trade statistics", body)


def _attribution_block(s: Subject) -> Markup:
    """P&L by instrument, adding up to the equity change."""
    a = s.attribution
    if a is None:
        return h.paragraph("No P&L attribution is stored with these runs (made before engine 1.1); rerun them to "
                           "see P&L by instrument.", "note")
    if a.empty:
        return h.join([])
    cols = ["price", "funding", "dividends", "borrow", "costs", "interest", "total"]
    inst = a.drop(index="cash", errors="ignore")
    order = inst["total"].abs().sort_values(ascending=False).index
    shown, rest = inst.loc[order[:12]], inst.loc[order[12:]]
    rows = [[str(i)] + [fmt.fmt_money(r[c]) for c in cols] for i, r in shown.iterrows()]
    if len(rest):
        rows.append([f"{len(rest)} other instruments"] + [fmt.fmt_money(rest[c].sum()) for c in cols])
    if "cash" in a.index:
        rows.append(["cash (interest)"] + [fmt.fmt_money(a.loc["cash", c]) for c in cols])
    rows.append(["total"] + [fmt.fmt_money(a[c].sum()) for c in cols])
    change = float(s.equity["equity"].iloc[-1]) - s.start_equity
    return (h.heading("P&L by instrument (money)")
            + h.table(["instrument", "price", "funding", "dividends", "borrow", "costs", "cash interest", "total"],
                      rows, cls="attribution")
            + h.caption(f"Price = change in position value less the notional traded (mark-to-market); funding and "
                        f"dividends received (negative = paid); borrow and trading costs paid (negative). The total, "
                        f"{fmt.fmt_money(a['total'].sum())}, is the equity change {fmt.fmt_money(change)} "
                        "(final less starting equity), from the engine's own ledger."))


def _positions_block(s: Subject) -> Markup:
    """Position-level holding periods: from the fill that opens a position from flat to the fill
    that takes it back to flat (splits ignored; a position open at the end is counted apart)."""
    held = (s.start_state or {}).get("quantities") or {}
    spells = position_spells(s.trades, held, s.window[0])
    if spells.empty:
        return h.join([])
    closed = spells[spells["closed"]]
    q = closed["days"].quantile([0.5, 0.9]) if len(closed) else pd.Series([math.nan, math.nan], index=[0.5, 0.9])
    rows = [("positions opened from flat", f"{len(spells):,}"),
            ("closed back to flat / still open at the end", f"{len(closed):,} / {len(spells) - len(closed):,}"),
            ("holding period of closed positions: median / 90th percentile / max (calendar days)",
             f"{q[0.5]:,.1f} / {q[0.9]:,.1f} / {closed['days'].max() if len(closed) else math.nan:,.1f}"),
            ("positions closed with a gain (price P&L of the spell's fills)",
             fmt.fmt_pct((closed["pnl"] > 0).mean()) if len(closed) else "n/a")]
    return h.heading("Positions (flat to flat)") + h.table(["statistic", "value"], rows, cls="positions")


def _costs_section(engine: sa.Engine, s: Subject) -> Markup:
    costs, carry, funding = s.costs_daily, s.carry_daily, s.funding_daily
    carry_total = float(carry.sum())
    rows = [("trading costs paid", fmt.fmt_money(s.costs_paid)),
            ("funding paid (negative = received)", fmt.fmt_money(s.funding_paid)),
            ("all carry paid, from the cash ledger", fmt.fmt_money(carry_total))]
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
            body += h.heading("Clean vs realistic") + _drag_table([(real, clean)])
    return h.section("costs", "Costs and funding", body)


def _lineage_section(s: Subject) -> Markup:
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
                 f"{r.sessions:,}", fmt.fmt_metric("total_return", r.total_return), fmt.fmt_money(r.costs_paid),
                 fmt.fmt_money(r.funding_paid)] for r in runs.itertuples()]
        body += h.details("monthly-runs", f"The {len(runs)} monthly pipeline runs stitched (run id, signal "
                                          "snapshot id, watermark, ...)",
                          h.table(["month", "window", "run id", "signal snapshot id", "system_as_of", "engine",
                                   "orchestrator run id", "sessions", "return", "costs paid", "funding paid"], rows,
                                  cls="monthly-runs"))
    return h.section("lineage", "Lineage", body)


def render_subject(engine: sa.Engine, s: Subject, benchmark: str | None = None) -> str:
    """The full report of one subject; ``benchmark`` None means the strategy's own benchmark
    (`backtest.one_off.benchmark_config`), an instrument id that instrument's close (e.g. ``SPX``, a
    price index without dividends)."""
    if benchmark is None:
        bench, bench_caption = default_benchmark_curve(engine, s)
    else:
        bench, bench_caption = benchmark_curve(engine, benchmark, s, explicit=True)
    equity_html, bench_total = _equity_section(s, bench, bench_caption)
    table = monthly_returns(s.returns, s.calendar)
    monthly_html = h.section("monthly-returns", "Monthly returns", h.heatmap(table) + h.caption(
        "Compounded session returns per calendar month, in percent; the year total compounds the year's sessions "
        "in this window (a partial first or last year covers only its sessions)."))
    title, subtitle = _title(s)
    body = h.join([
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


def _drag_table(pairs: Sequence[tuple[Subject, Subject]]) -> Markup:
    rows = []
    for real, clean in pairs:
        rm, cm = real.metrics, clean.metrics

        def diff(k: str, rm=rm, cm=cm) -> str:
            a, b = rm.get(k), cm.get(k)
            return "n/a" if fmt.is_missing(a) or fmt.is_missing(b) else f"{100 * (b - a):.2f} pp"

        rows.append([real.strategy_id, f"{real.stored_window[0]} .. {real.stored_window[1]}", real.ident[:12],
                     clean.ident[:12], fmt.fmt_metric("total_return", rm.get("total_return")),
                     fmt.fmt_metric("total_return", cm.get("total_return")), diff("total_return"), diff("cagr"),
                     fmt.fmt_money(real.costs_paid)])
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
        rows = [[lab, *(h.metric_cell(k, s.metrics.get(k)) for k in keys)]
                for lab, s in zip(labels, subjects, strict=True)]
        tables.append(h.heading(title) + h.table(["result", *keys], rows, cls="metrics side-by-side"))
    rows = [[lab, f"{s.window[0].date()} .. {s.window[1].date()}", f"{len(s.equity):,}", s.calendar,
             fmt.fmt_money(s.costs_paid), fmt.fmt_money(s.funding_paid), "clean" if s.clean else "realistic costs",
             "run" if s.kind == "run" else f"history ({len(s.runs)} months)"]
            for lab, s in zip(labels, subjects, strict=True)]
    tables.append(h.heading("Windows and costs") + h.table(
        ["result", "window", "sessions", "calendar", "costs paid", "funding paid", "mode", "kind"], rows,
        cls="side-by-side"))
    body += h.section("metrics", "Metrics side by side", h.join(tables) + h.caption(
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


def _drag_section(engine: sa.Engine, subjects: Sequence[Subject]) -> Markup:
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
    body = _drag_table(pairs) if pairs else h.join([])
    if missing:
        body += h.bullets(collapse_notes(missing))
    return body
