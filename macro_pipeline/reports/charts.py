"""Charts as inline SVG: matplotlib figures (no pyplot, no GUI backend) saved as SVG text.

Each function returns one ``<svg>`` element as ``Markup``, ready to inline in HTML: the XML
prolog, DOCTYPE and metadata are stripped, text stays text (``svg.fonttype = none``) and the
ids matplotlib derives from hashes are salted per chart, so several charts in one page never
share an id. Nothing references anything outside the element.
"""

from __future__ import annotations

import io
import re

import matplotlib as mpl
import numpy as np
import pandas as pd
from markupsafe import Markup
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FuncFormatter,
    MaxNLocator,
    NullFormatter,
    NullLocator,
    ScalarFormatter,
)

from macro_pipeline.warehouse.sweeps import StoredSweep

WIDTH_IN = 10.0
# 16 distinct colours (the first eight as before; then Tableau/Tol-style hues that stay apart on
# white): a comparison of up to 16 strategies gives each its own colour
PALETTE = ("#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000", "#2e75b6", "#a5a5a5", "#843c0c",
           "#e377c2", "#17becf", "#000000", "#b00020", "#8c564b", "#bcbd22", "#0b8457", "#ff7f0e")
_STYLE = {
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same text metrics everywhere
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e5e5",
    "grid.linewidth": 0.6,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "legend.frameon": False,
    "legend.fontsize": 8,
}
_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


def _svg(fig: Figure, name: str) -> Markup:
    """The figure as one ``<svg>`` element, marked safe here, its one source: matplotlib writes the
    markup and escapes the texts (labels, titles, legends) inside it."""
    buf = io.StringIO()
    with mpl.rc_context({**_STYLE, "svg.hashsalt": name}):
        fig.savefig(buf, format="svg", metadata={"Date": None})  # constrained layout already fits: no second "tight" pass
    text = _METADATA.sub("", _PROLOG.sub("", buf.getvalue(), count=1))
    return Markup(text.replace("<svg ", f'<svg class="chart" data-chart="{name}" role="img" ', 1))


def _figure(height_in: float, rows: int = 1, ratios: tuple[float, ...] | None = None):
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
        axes = fig.subplots(rows, 1, sharex=True, gridspec_kw={"height_ratios": ratios} if ratios else None,
                            squeeze=False)[:, 0]
    return fig, list(axes)


def _dates(ax, index: pd.Index) -> None:
    locator = AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    if len(index) and index[0] == index[-1]:  # one session: a week around it, not years
        day = pd.Timestamp(index[0])
        ax.set_xlim(day - pd.Timedelta(days=4), day + pd.Timedelta(days=4))


def _x(index: pd.Index) -> np.ndarray:
    return pd.DatetimeIndex(index).to_numpy()


def _plot(ax, index: pd.Index, values, **kw) -> None:
    """A line, or markers when there is one point (a line of one point draws nothing)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        ax.plot(_x(index), values, marker="o", **{**kw, "linestyle": "none"})
    else:
        ax.plot(_x(index), values, **{"linewidth": 1.1, **kw})


def _log_axis(ax, values: np.ndarray) -> None:
    """Log scale; under a 20x range the default decade ticks leave the axis nearly unlabelled,
    so evenly spaced ticks are used there instead."""
    ax.set_yscale("log")
    finite = values[np.isfinite(values) & (values > 0)]
    if len(finite) and finite.max() / finite.min() < 20:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.yaxis.set_minor_locator(NullLocator())
    else:
        ax.yaxis.set_minor_formatter(NullFormatter())


def _percent(ax) -> FuncFormatter:
    """Percent ticks with as many decimals as the axis span needs (a 1% drawdown axis reads
    -0.2%, -0.4%, not -0%, -0%)."""

    def fmt(value: float, _pos=None) -> str:
        lo, hi = ax.get_ylim()
        span = abs(hi - lo)
        digits = 0 if span >= 0.1 else (1 if span >= 0.01 else 2)
        text = f"{100 * value:.{digits}f}"
        return ("0" if float(text) == 0 else text) + "%"

    return FuncFormatter(fmt)


def _money(x: float, _pos=None) -> str:
    ax = abs(x)
    if ax >= 1e9:
        return f"{x / 1e9:.1f}bn"
    if ax >= 1e6:
        return f"{x / 1e6:.2f}m"
    if ax >= 1e3:
        return f"{x / 1e3:.0f}k"
    return f"{x:.0f}"


def equity_drawdown(equity: pd.Series, drawdown: pd.Series, benchmark: pd.Series | None, *, log: bool,
                    name: str = "equity") -> Markup:
    """Equity (log scale when ``log``) against the rebased benchmark, with the drawdown below."""
    log = log and len(equity) > 1
    with mpl.rc_context(_STYLE):
        fig, (top, bottom) = _figure(5.2, 2, (3, 1.3))
        _plot(top, equity.index, equity, color=PALETTE[0], label=str(equity.name or "strategy"))
        if benchmark is not None and benchmark.notna().any():
            _plot(top, benchmark.index, benchmark, color=PALETTE[6], label=str(benchmark.name), zorder=1)
        if log:
            _log_axis(top, np.r_[np.asarray(equity, float), np.asarray(benchmark, float) if benchmark is not None else []])
        top.yaxis.set_major_formatter(FuncFormatter(_money))
        top.set_title("Equity" + (" (log scale)" if log else ""))
        top.legend(loc="upper left")
        dd = np.asarray(drawdown, dtype=float)
        if len(dd) > 1:
            bottom.fill_between(_x(drawdown.index), dd, 0.0, color="#c00000", alpha=0.35, linewidth=0)
        _plot(bottom, drawdown.index, dd, color="#c00000")
        bottom.yaxis.set_major_formatter(_percent(bottom))
        bottom.set_title("Drawdown")
        bottom.set_ylim(top=0.0, bottom=min(-0.01, float(np.nanmin(dd)) * 1.1 if len(dd) else -0.01))
        _dates(bottom, equity.index)
        return _svg(fig, name)


def rolling(stats: pd.DataFrame, window: int, name: str = "rolling") -> Markup:
    """Rolling Sharpe, Sortino and annualised volatility, one panel each."""
    with mpl.rc_context(_STYLE):
        fig, (top, middle, bottom) = _figure(5.6, 3, (1, 1, 1))
        _plot(top, stats.index, stats["sharpe"], color=PALETTE[0])
        top.axhline(0.0, color="#808080", linewidth=0.8)
        top.set_title(f"Rolling Sharpe ({window} sessions)")
        _plot(middle, stats.index, stats["sortino"], color=PALETTE[2])
        middle.axhline(0.0, color="#808080", linewidth=0.8)
        middle.set_title(f"Rolling Sortino ({window} sessions)")
        _plot(bottom, stats.index, stats["volatility"], color=PALETTE[1])
        bottom.yaxis.set_major_formatter(_percent(bottom))
        bottom.set_title(f"Rolling volatility, annualised ({window} sessions)")
        bottom.set_ylim(bottom=0.0)
        _dates(bottom, stats.index)
        return _svg(fig, name)


def exposure(frame: pd.DataFrame, name: str = "exposure") -> Markup:
    """Gross and net exposure as fractions of equity."""
    with mpl.rc_context(_STYLE):
        fig, (ax,) = _figure(2.8)
        _plot(ax, frame.index, frame["gross_exposure"], color=PALETTE[0], label="gross")
        _plot(ax, frame.index, frame["net_exposure"], color=PALETTE[1], label="net", linestyle="--")
        ax.axhline(0.0, color="#808080", linewidth=0.8)
        ax.yaxis.set_major_formatter(_percent(ax))
        ax.set_title("Exposure (fraction of equity)")
        ax.legend(loc="upper left", ncols=2)
        _dates(ax, frame.index)
        return _svg(fig, name)


def turnover(monthly: pd.Series, name: str = "turnover") -> Markup:
    """Turnover summed per month (traded notional / equity, both sides)."""
    with mpl.rc_context(_STYLE):
        fig, (ax,) = _figure(2.6)
        x = _x(monthly.index)
        # one stepped area instead of one bar per month: the same picture, a single SVG path (a
        # bar chart of 30 years is hundreds of elements and most of a report's drawing time)
        ax.fill_between(x, monthly.to_numpy(dtype=float), step="mid", color=PALETTE[0], linewidth=0)
        ax.yaxis.set_major_formatter(_percent(ax))
        ax.set_title("Turnover per month (traded notional / equity, both sides)")
        ax.set_ylim(bottom=0.0)
        _dates(ax, monthly.index)
        return _svg(fig, name)


def costs_carry(costs: pd.Series, carry: pd.Series, name: str = "costs", funding: pd.Series | None = None) -> Markup:
    """Cumulative trading costs paid and cumulative carry paid (negative = received); with
    ``funding``, perpetual funding on its own as a third line."""
    with mpl.rc_context(_STYLE):
        fig, (ax,) = _figure(2.8)
        _plot(ax, costs.index, costs.cumsum(), color="#c00000", label="trading costs paid")
        _plot(ax, carry.index, carry.cumsum(), color=PALETTE[2], label="funding and other carry paid")
        if funding is not None:
            _plot(ax, funding.index, funding.cumsum(), color=PALETTE[1], label="funding paid (stored per session)")
        ax.axhline(0.0, color="#808080", linewidth=0.8)
        ax.yaxis.set_major_formatter(FuncFormatter(_money))
        ax.set_title("Cumulative costs and carry (money; below zero = received)")
        ax.legend(loc="upper left", ncols=2)
        _dates(ax, costs.index)
        return _svg(fig, name)


def holding_histogram(holding_days: pd.Series, name: str = "holding") -> Markup:
    """Distribution of round-trip holding periods (calendar days)."""
    values = holding_days.to_numpy(dtype=float)
    with mpl.rc_context(_STYLE):
        fig, (ax,) = _figure(2.6)
        hi = max(1.0, float(values.max()))
        bins = np.unique(np.ceil(np.geomspace(1, hi + 1, 30))) if hi > 30 else np.arange(0, hi + 2) - 0.5
        ax.hist(values, bins=bins, color=PALETTE[0], edgecolor="white", linewidth=0.4)
        if hi > 30:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("holding period (calendar days)")
        ax.set_ylabel("round trips")
        ax.set_title("Holding periods")
        return _svg(fig, name)


def overlay(curves: dict[str, pd.Series], drawdowns: dict[str, pd.Series], *, log: bool, name: str = "overlay") -> Markup:
    """Several growth curves (each 1.0 at its own start) and their drawdowns, overlaid."""
    log = log and max(len(c) for c in curves.values()) > 1
    with mpl.rc_context(_STYLE):
        fig, (top, bottom) = _figure(5.6, 2, (3, 1.4))
        for i, (label, curve) in enumerate(curves.items()):
            color = PALETTE[i % len(PALETTE)]
            _plot(top, curve.index, curve, color=color, label=label)
            _plot(bottom, drawdowns[label].index, drawdowns[label], color=color)
        if log:
            _log_axis(top, np.concatenate([np.asarray(c, float) for c in curves.values()]))
        top.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.2f}"))
        top.set_title("Growth of 1" + (" (log scale)" if log else ""))
        top.legend(loc="upper left")
        bottom.yaxis.set_major_formatter(_percent(bottom))
        bottom.set_title("Drawdown")
        bottom.set_ylim(top=0.0)
        _dates(bottom, pd.DatetimeIndex(np.concatenate([c.index.to_numpy() for c in curves.values()])).sort_values())
        return _svg(fig, name)


def rolling_beta(betas: dict[int, pd.Series], name: str = "rolling-beta") -> Markup:
    """Rolling beta against the benchmark, one line per window (sessions)."""
    with mpl.rc_context(_STYLE):
        fig, (ax,) = _figure(2.6)
        for i, (window, beta) in enumerate(betas.items()):
            _plot(ax, beta.index, beta, color=PALETTE[i], label=f"{window} sessions",
                  **({"linestyle": "--"} if i else {}))
        ax.axhline(0.0, color="#808080", linewidth=0.8)
        ax.set_title("Rolling beta to the benchmark")
        ax.legend(loc="upper left", ncols=len(betas))
        _dates(ax, pd.DatetimeIndex(np.concatenate([b.index.to_numpy() for b in betas.values()])).sort_values())
        return _svg(fig, name)


def yearly_returns(years: pd.Series, benchmark: pd.Series | None, name: str = "yearly") -> Markup:
    """End-of-year returns, the strategy's bars beside the benchmark's (quantstats' EOY returns)."""
    with mpl.rc_context(_STYLE):
        fig, (ax,) = _figure(2.8)
        x = np.arange(len(years))
        both = benchmark is not None and benchmark.notna().any()
        width = 0.4 if both else 0.7
        ax.bar(x - (width / 2 if both else 0), years.to_numpy(dtype=float), width, color=PALETTE[0], label="strategy")
        if both:
            ax.bar(x + width / 2, benchmark.reindex(years.index).to_numpy(dtype=float), width, color=PALETTE[6],
                   label="benchmark")
        ax.axhline(0.0, color="#808080", linewidth=0.8)
        step = max(1, len(years) // 20)
        ax.set_xticks(x[::step], [str(y) for y in years.index[::step]])
        ax.yaxis.set_major_formatter(_percent(ax))
        ax.set_title("Returns by calendar year" + (" against the benchmark" if both else ""))
        ax.legend(loc="upper left", ncols=2)
        return _svg(fig, name)


def monthly_distribution(monthly: pd.Series, benchmark: pd.Series | None, name: str = "monthly-distribution") -> Markup:
    """Histogram of calendar-month returns, the benchmark's as an outline on the same bins."""
    values = monthly.to_numpy(dtype=float)
    with mpl.rc_context(_STYLE):
        fig, (ax,) = _figure(2.6)
        pool = values if benchmark is None else np.r_[values, benchmark.to_numpy(dtype=float)]
        bins = np.histogram_bin_edges(pool[np.isfinite(pool)], bins=min(40, max(8, len(values) // 4)))
        ax.hist(values, bins=bins, color=PALETTE[0], alpha=0.85, label="strategy")
        if benchmark is not None and len(benchmark):
            ax.hist(benchmark.to_numpy(dtype=float), bins=bins, histtype="step", color=PALETTE[1], linewidth=1.2,
                    label="benchmark")
        ax.axvline(float(np.mean(values)), color="#c00000", linewidth=1.0, linestyle="--",
                   label=f"mean {100 * float(np.mean(values)):.2f}%")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{100 * v:.1f}%"))
        ax.set_xlabel("monthly return")
        ax.set_ylabel("months")
        ax.set_title("Distribution of monthly returns")
        ax.legend(loc="upper left")
        return _svg(fig, name)


def daily_returns(returns: pd.Series, name: str = "daily-returns") -> Markup:
    """Each session's return over time (one line, not a bar per session)."""
    with mpl.rc_context(_STYLE):
        fig, (ax,) = _figure(2.4)
        _plot(ax, returns.index, returns, color=PALETTE[0], linewidth=0.6)
        ax.axhline(0.0, color="#808080", linewidth=0.8)
        ax.yaxis.set_major_formatter(_percent(ax))
        ax.set_title("Daily returns")
        _dates(ax, returns.index)
        return _svg(fig, name)


def return_quantiles(groups: dict[str, pd.Series], name: str = "quantiles") -> Markup:
    """Box plots of the returns compounded per day, week, month, quarter and year (quantstats'
    return quantiles): box = quartiles, whiskers = 1.5 IQR, dots beyond."""
    labels = [k for k, v in groups.items() if len(v)]
    with mpl.rc_context(_STYLE):
        fig, (ax,) = _figure(2.8)
        ax.boxplot([groups[k].to_numpy(dtype=float) for k in labels], tick_labels=labels, widths=0.5,
                   patch_artist=True, boxprops={"facecolor": "#dbe6f1", "edgecolor": PALETTE[0]},
                   medianprops={"color": PALETTE[1]}, flierprops={"markersize": 2, "markeredgecolor": "#808080"})
        ax.axhline(0.0, color="#808080", linewidth=0.8)
        ax.yaxis.set_major_formatter(_percent(ax))
        ax.set_title("Return quantiles by period")
        return _svg(fig, name)


def worst_drawdowns(growth: pd.Series, periods: pd.DataFrame, underwater: pd.Series,
                    name: str = "worst-drawdowns") -> Markup:
    """Growth of 1 with the worst drawdown periods shaded (start to recovery, or to the end when
    not recovered), and the underwater curve below with its mean."""
    with mpl.rc_context(_STYLE):
        fig, (top, bottom) = _figure(4.6, 2, (2.2, 1.3))
        _plot(top, growth.index, growth, color=PALETTE[0])
        last = pd.Timestamp(growth.index[-1])
        for p in periods.itertuples():
            end = last if pd.isna(p.recovery) else pd.Timestamp(p.recovery)
            top.axvspan(pd.Timestamp(p.start), end, color="#c00000", alpha=0.12, linewidth=0)
        top.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.2f}"))
        top.set_title(f"Growth of 1, the {len(periods)} worst drawdown periods shaded")
        dd = underwater.to_numpy(dtype=float)
        if len(dd) > 1:
            bottom.fill_between(_x(underwater.index), dd, 0.0, color="#c00000", alpha=0.35, linewidth=0)
        _plot(bottom, underwater.index, dd, color="#c00000")
        mean = float(np.mean(dd)) if len(dd) else 0.0
        bottom.axhline(mean, color=PALETTE[0], linewidth=0.9, linestyle="--", label=f"mean {100 * mean:.2f}%")
        bottom.yaxis.set_major_formatter(_percent(bottom))
        bottom.set_title("Underwater (equity / running peak - 1)")
        bottom.set_ylim(top=0.0, bottom=min(-0.01, float(np.nanmin(dd)) * 1.1 if len(dd) else -0.01))
        bottom.legend(loc="lower left")
        _dates(bottom, growth.index)
        return _svg(fig, name)


def volatility_matched(strategy: pd.Series, benchmark: pd.Series, name: str = "vol-matched") -> Markup:
    """Growth of 1 of the strategy's returns scaled to the benchmark's volatility, beside the
    benchmark's (quantstats' volatility-matched returns)."""
    with mpl.rc_context(_STYLE):
        fig, (ax,) = _figure(2.8)
        _plot(ax, strategy.index, strategy, color=PALETTE[0], label="strategy, scaled to the benchmark's volatility")
        _plot(ax, benchmark.index, benchmark, color=PALETTE[6], label="benchmark")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.2f}"))
        ax.set_title("Growth of 1, volatility matched to the benchmark")
        ax.legend(loc="upper left")
        _dates(ax, strategy.index)
        return _svg(fig, name)


def return_distribution(returns: pd.Series, var_95: float, es_95: float, name: str = "distribution") -> Markup:
    """Histogram of daily returns with the 95% VaR and expected shortfall marked."""
    values = returns.to_numpy(dtype=float)
    with mpl.rc_context(_STYLE):
        fig, (ax,) = _figure(2.6)
        ax.hist(values, bins=min(80, max(10, len(values) // 20)), color=PALETTE[0], edgecolor="white", linewidth=0.3)
        ax.axvline(var_95, color=PALETTE[1], linewidth=1.0, label=f"VaR 95% {100 * var_95:.2f}%")
        ax.axvline(es_95, color="#c00000", linewidth=1.0, label=f"ES 95% {100 * es_95:.2f}%")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{100 * v:.1f}%"))
        ax.set_xlabel("daily return")
        ax.set_ylabel("sessions")
        ax.set_title("Distribution of daily returns")
        ax.legend(loc="upper left")
        return _svg(fig, name)


def sweep_is_oos(sw: StoredSweep) -> Markup:
    """Per walk-forward fold: every configuration's in-sample vs out-of-sample metric, the chosen one starred."""
    fig, axes = _figure(3.6)
    ax = axes[0]
    for k, f in enumerate(sw.folds.itertuples()):
        color = PALETTE[k % len(PALETTE)]
        ins, oos = np.asarray(f.is_metric, dtype=float), np.asarray(f.oos_metric, dtype=float)
        ax.scatter(ins, oos, s=10, alpha=0.55, color=color, label=f"fold {f.fold} ({f.test_start.year})")
        ax.scatter([ins[f.chosen_config]], [oos[f.chosen_config]], s=60, marker="*", color=color, edgecolor="black")
    ax.axhline(0, color="#888", lw=0.6)
    ax.axvline(0, color="#888", lw=0.6)
    ax.set_xlabel(f"in-sample {sw.meta['metric']} (training window)")
    ax.set_ylabel(f"out-of-sample {sw.meta['metric']}")
    ax.set_title("In-sample vs out-of-sample, per fold (star: the configuration chosen)")
    ax.legend(ncols=4, fontsize=7)
    return _svg(fig, "is-oos")


def cscv_logits(logits: list[float], pbo: float) -> Markup:
    """Histogram of the CSCV logits; PBO is the share at or left of 0."""
    fig, axes = _figure(3.0)
    ax = axes[0]
    x = np.asarray(logits, dtype=float)
    ax.hist(x, bins=41, color=PALETTE[0], alpha=0.85)
    ax.axvline(0.0, color=PALETTE[1], lw=1.2)
    ax.set_xlabel("logit of the in-sample best's out-of-sample relative rank")
    ax.set_ylabel("combinations")
    ax.set_title(f"CSCV logits: PBO = share at or left of 0 = {pbo:.3f}")
    return _svg(fig, "cscv-logits")


def walk_forward(sw: StoredSweep, returns: np.ndarray) -> Markup:
    """The stitched walk-forward equity against the in-sample best over the whole window."""
    wf = sw.walk_forward
    sessions = wf["sessions"]
    eq = pd.Series(wf["equity"] / wf["equity"][0], index=sessions)
    pos = sw.sessions.get_indexer(sessions)
    best = sw.meta["best_config"]
    growth = np.cumprod(1.0 + returns[pos, best])
    ins = pd.Series(growth / growth[0], index=sessions)
    fig, axes = _figure(3.4)
    ax = axes[0]
    _plot(ax, eq.index, eq.to_numpy(), color=PALETTE[0], label="walk-forward (out of sample, stitched)")
    _plot(ax, ins.index, ins.to_numpy(), color=PALETTE[1],
                 label=f"in-sample best over the whole window ({sw.configs['label'].iloc[best]})")
    _dates(ax, eq.index)
    ax.set_title("Growth of 1 from the first test session")
    ax.legend()
    return _svg(fig, "walk-forward")
