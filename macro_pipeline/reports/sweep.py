"""The report of one stored sweep: one self-contained HTML page (inline SVG, no script).

Sections, in order: the headline (best configuration, its Sharpe, DSR, PBO, trials, minimum
backtest length); the metric over the grid (a heatmap table for a two-parameter grid, and the
ranked configurations for any grid); the in-sample vs out-of-sample scatter per walk-forward fold;
the CSCV logit histogram; the walk-forward equity against the in-sample best; the lineage
(sweep id, spec, input watermarks, system_as_of, code and engine versions).
"""

from __future__ import annotations

import json

import numpy as np
import sqlalchemy as sa
from markupsafe import Markup

from macro_pipeline.reports import charts
from macro_pipeline.reports.blocks import (
    caption,
    cell,
    heading,
    heat_color,
    join,
    kpis,
    lineage_block,
    notes,
    page,
    preformatted,
    section,
    table,
)
from macro_pipeline.reports.formatting import data_value, fmt_metric
from macro_pipeline.warehouse.sweeps import StoredSweep, load_returns, load_sweep

RANKED = 25  # configurations listed in the ranked table


def _num(v) -> str:
    return fmt_metric("sharpe", v)


def _grid_heatmap(sw: StoredSweep) -> Markup:
    grid = sw.meta["spec"]["grid"]
    metric = sw.meta["metric"]
    (a, a_vals), (b, b_vals) = grid
    values = {(json.dumps(p[a]), json.dumps(p[b])): v for p, v in zip(sw.configs["params"], sw.configs[metric], strict=True)}
    finite = [abs(v) for v in values.values() if v is not None and np.isfinite(v)]
    scale = max(finite) if finite else 1.0
    rows = []
    for av in a_vals:
        cells = [cell(f"{a}={av}", tag="th")]
        for bv in b_vals:
            v = values.get((json.dumps(av), json.dumps(bv)))
            best = v is not None and v == sw.configs[metric].iloc[sw.meta["best_config"]]
            cells.append(cell(_num(v), data_cell=f"{a}={av},{b}={bv}", data_value=data_value(v),
                              style=f"background:{heat_color(v if v is not None else float('nan'), scale)}",
                              **({"class": "best"} if best else {})))
        rows.append(cells)
    head = [f"{a} \\ {b}", *[f"{b}={v}" for v in b_vals]]
    return table(head, rows, cls="heatmap sweep-grid") + caption(
        f"{metric} of every configuration over the grid ({a} down, {b} across); the best is outlined.")


def _ranked(sw: StoredSweep) -> Markup:
    metric = sw.meta["metric"]
    top = sw.configs.sort_values(metric, ascending=False, na_position="last").head(RANKED)
    cols = ["sharpe", "cagr", "annual_volatility", "max_drawdown", "sortino", "calmar"]
    rows = []
    for r in top.itertuples():
        cells = [str(int(r.config_idx)), r.label]
        cells += [cell(fmt_metric(c, getattr(r, c)), data_metric=c, data_value=data_value(getattr(r, c)))
                  for c in cols]
        rows.append(cells)
    return table(["#", "configuration", *cols], rows, cls="ranked") + caption(
        f"The {min(RANKED, len(sw.configs))} best of {len(sw.configs)} configurations by {metric}.")


def render_sweep_report(engine: sa.Engine, sweep_id: str) -> str:
    sw = load_sweep(engine, sweep_id)
    returns = load_returns(engine, sweep_id)
    m, st = sw.meta, sw.meta["stats"]
    best = m["best_config"]
    row = sw.configs.iloc[best]
    body = []
    warn = []
    if st.get("dsr") is not None and st["dsr"] < 0.95:
        warn.append(f"The Deflated Sharpe Ratio of the best configuration is {st['dsr']:.3f} (< 0.95): its Sharpe "
                    f"is not significant once the {st['n_trials']} trials are accounted for.")
    if st.get("pbo") is not None and st["pbo"] > 0.5:
        warn.append(f"PBO is {st['pbo']:.3f}: the in-sample best ranks in the lower half out of sample more often than not.")
    if st.get("years") is not None and st["years"] < st["min_backtest_years"]:
        warn.append(f"The sample ({st['years']:.1f} years) is shorter than the minimum backtest length for "
                    f"{st['n_trials']} trials ({st['min_backtest_years']:.1f} years).")
    body.append(notes(warn))
    body.append(kpis([
        ("best configuration", str(row["label"]), ""),
        ("sharpe", _num(row["sharpe"]), ""),
        ("deflated sharpe ratio", _num(st.get("dsr")), ""),
        ("PBO (CSCV)", _num(st.get("pbo")), ""),
        ("trials", str(st["n_trials"]), ""),
        ("min backtest length", f"{st['min_backtest_years']:.1f} y (have {st['years']:.1f})", ""),
    ]))  # fmt: skip
    stats_rows = [["sharpe (annual)", _num(st["sharpe_annual"])],
                  ["expected max sharpe of the trials, no skill (annual)", _num(st["sr0_annual"])],
                  ["variance of the trials' sharpe (per session)", f"{st['sharpe_variance']:.3e}"],
                  ["skewness / kurtosis of the best's returns", f"{st['skewness']:.3f} / {st['kurtosis']:.3f}"],
                  ["sessions", str(st["n_sessions"])], ["CSCV blocks / combinations",
                                                          f"{st['n_blocks']} / {st.get('n_combinations', 'n/a')}"],
                  ["min backtest length for the best's sharpe (years)", _num(st.get("min_backtest_years_for_best"))]]
    body.append(section("statistics", "Overfitting statistics", table(["statistic", "value"], stats_rows) + caption(
        "DSR: Bailey and Lopez de Prado (2014). PBO: Bailey, Borwein, Lopez de Prado and Zhu (2015), "
        "combinatorially symmetric cross-validation. Minimum backtest length: the years below which the "
        "trials are expected to reach a Sharpe of 1 with no skill.")))
    grid = m["spec"]["grid"]
    grid_html = _grid_heatmap(sw) if len(grid) == 2 else join([])
    body.append(section("grid", f"{m['metric']} over the grid", grid_html + _ranked(sw)))
    if len(sw.folds):
        fold_rows = [[str(f.fold), f"{f.train_start}..{f.train_end}", f"{f.test_start}..{f.test_end}",
                      str(sw.configs["label"].iloc[f.chosen_config]), _num(f.is_metric[f.chosen_config]),
                      _num(f.oos_metric[f.chosen_config])] for f in sw.folds.itertuples()]
        body.append(section("folds", "Walk-forward: in-sample vs out-of-sample", charts.sweep_is_oos(sw) + table(
            ["fold", "train", "test", "chosen", f"in-sample {m['metric']}", f"out-of-sample {m['metric']}"],
            fold_rows, cls="folds")))
    if st.get("pbo_logits"):
        body.append(section("cscv", "CSCV logit distribution", charts.cscv_logits(st["pbo_logits"], st["pbo"])))
    if sw.walk_forward is not None:
        wm = sw.walk_forward["metrics"]
        body.append(section("walk-forward", "Walk-forward equity", charts.walk_forward(sw, returns) + table(
            ["metric", "walk-forward", "in-sample best (whole window)"],
            [[k, fmt_metric(k, wm.get(k)), fmt_metric(k, row[k])] for k in
             ("sharpe", "cagr", "annual_volatility", "max_drawdown")])))
    lineage = {"sweep id": m["sweep_id"], "name": m["name"] or "-", "kind": m["kind"],
               "system_as_of": m["system_as_of"].isoformat(), "code version": m["code_version"],
               "engine version": m["engine_version"], "orchestrator run id": m["orchestrator_run_id"] or "-",
               "created": m["created_at"].isoformat(),
               "input watermarks": json.dumps(m["input_watermarks"], sort_keys=True)}
    body.append(section("lineage", "Lineage", lineage_block(lineage, None)
        + heading("Sweep spec") + preformatted(json.dumps(m["spec"], indent=2, sort_keys=True)) + caption(
        f"Rerun with --system-as-of {m['system_as_of'].isoformat()} to reproduce this sweep bit for bit.")))
    spec = m["spec"]
    title = f"Sweep {m['name'] or m['sweep_id'][:12]}: {m['kind']}"
    subtitle = (f"{len(sw.configs)} configurations, {spec['universe']}, {spec['rebalance']}, "
                f"{spec['start']}..{spec['end']}{', clean' if spec['clean'] else ''}")
    return page(title, subtitle, join(body))
