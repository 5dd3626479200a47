"""``macro-pipeline sweep`` (a parameter sweep) and ``sweeps`` (stored sweeps: list, show, report).

    macro-pipeline sweep --kind KIND --grid name=v1,v2 --grid name=lo..hi:step --start D --end D
                         [--param k=v] [--universe U] [--rebalance R] [--calendar C] [--metric M]
                         [--blocks 16] [--walk-forward train=36M,test=12M[,anchored]] [--clean]
                         [--system-as-of TS] [--report PATH] [--json]
    macro-pipeline sweep --name NAME [--file sweeps.toml] [...]   # a declared sweep
    macro-pipeline sweeps list [--json] | show SWEEP [--json] | report SWEEP [--out PATH]

Errors follow the CLI's rules: bad input (an invalid grid, ...) is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json

from macro_pipeline.cli.db import migrated_engine
from macro_pipeline.reports.formatting import plain_number
from macro_pipeline.warehouse.sweeps import list_sweeps, load_sweep, resolve_sweep_id


def cmd_sweep(args: argparse.Namespace) -> int:
    # sweeps and the kinds import the engine (numba): kept out of the CLI's start-up
    from macro_pipeline.research.config import find_sweep
    from macro_pipeline.research.grid import GridError
    from macro_pipeline.research.sweep import SweepSpec, run_sweep
    from macro_pipeline.strategies.registry import parse_params

    if args.name:
        if args.kind or args.grid:
            raise GridError("--name runs a declared sweep: give either --name or --kind/--grid, not both")
        spec = find_sweep(args.name, args.file)
    else:
        missing = [o for o, v in (("--kind", args.kind), ("--grid", args.grid), ("--start", args.start),
                                  ("--end", args.end)) if not v]  # fmt: skip
        if missing:
            raise GridError(f"missing {', '.join(missing)} (or --name NAME for a declared sweep)")
        grid: dict[str, str] = {}
        for item in args.grid:
            name, sep, raw = item.partition("=")
            if not sep:
                raise GridError(f"--grid {item!r} must look like name=v1,v2 or name=lo..hi:step")
            if name.strip() in grid:
                raise GridError(f"--grid {name.strip()!r} given twice")
            grid[name.strip()] = raw
        spec = SweepSpec.build(
            args.kind, grid, args.start, args.end, fixed=parse_params(args.kind, args.param or []),
            universe=args.universe, rebalance=args.rebalance, calendar=args.calendar, clean=args.clean,
            metric=args.metric, n_blocks=args.blocks, walk_forward=args.walk_forward,
        )  # fmt: skip
    engine = migrated_engine(args)
    out = run_sweep(engine, spec, system_as_of=args.system_as_of)
    report = None
    if args.report:
        from macro_pipeline.reports.files import write_sweep_report  # matplotlib: only when asked

        report = write_sweep_report(engine, out.sweep_id, out=args.report)
    if args.json:
        body = out.to_json()
        body["report"] = None if report is None else str(report)
        print(json.dumps(body, default=str))
        return 0
    s = out.stats
    state = "stored" if out.new else ("reproduced bit for bit (already stored)" if out.reproduced else "not stored")
    print(f"sweep {out.sweep_id}  {spec.kind}  {len(out.labels)} configurations x {len(out.sessions)} sessions  "
          f"{spec.start.date()}..{spec.end.date()}  {state}")
    print(f"system_as_of {out.system_as_of.isoformat()}")
    m = {k: v[out.best] for k, v in out.metrics.items()}
    print(f"best by {spec.metric}: {out.labels[out.best]}  sharpe {plain_number(m['sharpe'])}  cagr {plain_number(m['cagr'], True)}  "
          f"max drawdown {plain_number(m['max_drawdown'], True)}")
    print(f"deflated sharpe ratio {plain_number(s['dsr'])} (expected max sharpe of {s['n_trials']} unskilled trials "
          f"{plain_number(s['sr0_annual'])})  PBO {plain_number(s['pbo'])} ({s['n_blocks']} blocks)  "
          f"min backtest length {plain_number(s['min_backtest_years'])} years for sharpe 1 ({plain_number(s['years'])} in the sample)")
    if out.walk_forward is not None:
        wm = out.walk_forward["metrics"]
        print(f"walk-forward: {len(out.folds)} folds, out-of-sample sharpe {plain_number(wm['sharpe'])}  "
              f"cagr {plain_number(wm['cagr'], True)}; chosen per fold: "
              + ", ".join(out.labels[f["chosen_config"]] for f in out.folds))
    if report is not None:
        print(f"report: {report}")
    return 0


def cmd_sweeps_list(args: argparse.Namespace) -> int:
    frame = list_sweeps(migrated_engine(args))
    if args.json:
        print(frame.to_json(orient="records", date_format="iso"))
        return 0
    if frame.empty:
        print("no sweeps stored")
        return 0
    for r in frame.itertuples():
        print(f"{r.sweep_id[:12]}  {r.name or '-':<24} {r.kind:<16} {r.n_configs:>5} configs  best {r.best}  "
              f"DSR {plain_number(r.dsr)}  PBO {plain_number(r.pbo)}  as of {r.system_as_of}")
    return 0


def cmd_sweeps_show(args: argparse.Namespace) -> int:
    engine = migrated_engine(args)
    sw = load_sweep(engine, resolve_sweep_id(engine, args.sweep))
    meta = {k: v for k, v in sw.meta.items() if k != "stats"}
    stats = {k: v for k, v in sw.meta["stats"].items() if not isinstance(v, list)}
    body = {"sweep": meta, "stats": stats,
            "configs": sw.configs.drop(columns=["sweep_id"]).to_dict(orient="records"),
            "folds": sw.folds.drop(columns=["sweep_id", "is_metric", "oos_metric"], errors="ignore").to_dict(orient="records")}
    if args.json:
        print(json.dumps(body, default=str))
        return 0
    print(json.dumps({"sweep": meta, "stats": stats}, default=str, indent=1))
    top = sw.configs.sort_values(sw.meta["metric"], ascending=False).head(10)
    for r in top.itertuples():
        print(f"{r.config_idx:>5}  {r.label:<40} sharpe {plain_number(r.sharpe)}  cagr {plain_number(r.cagr, True)}  "
              f"mdd {plain_number(r.max_drawdown, True)}")
    return 0


def cmd_sweeps_report(args: argparse.Namespace) -> int:
    # reports import matplotlib: only when asked
    from macro_pipeline.reports.files import write_sweep_report

    engine = migrated_engine(args)
    print(write_sweep_report(engine, resolve_sweep_id(engine, args.sweep), out=args.out))
    return 0
