"""The ``sweep`` and ``sweeps`` commands of ``macro-pipeline`` (registered by ``cli.build_parser``).

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
from typing import Any


def _fmt(v: Any, pct: bool = False) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if x != x:
        return "n/a"
    return f"{x:.2%}" if pct else f"{x:.3f}"


def cmd_sweep(args: argparse.Namespace) -> int:
    from macro_pipeline.cli import _migrated_engine
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
    engine = _migrated_engine(args)
    out = run_sweep(engine, spec, system_as_of=args.system_as_of)
    report = None
    if args.report:
        from macro_pipeline.reports.files import write_sweep_report

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
    print(f"best by {spec.metric}: {out.labels[out.best]}  sharpe {_fmt(m['sharpe'])}  cagr {_fmt(m['cagr'], True)}  "
          f"max drawdown {_fmt(m['max_drawdown'], True)}")
    print(f"deflated sharpe ratio {_fmt(s['dsr'])} (expected max sharpe of {s['n_trials']} unskilled trials "
          f"{_fmt(s['sr0_annual'])})  PBO {_fmt(s['pbo'])} ({s['n_blocks']} blocks)  "
          f"min backtest length {_fmt(s['min_backtest_years'])} years for sharpe 1 ({_fmt(s['years'])} in the sample)")
    if out.walk_forward is not None:
        wm = out.walk_forward["metrics"]
        print(f"walk-forward: {len(out.folds)} folds, out-of-sample sharpe {_fmt(wm['sharpe'])}  "
              f"cagr {_fmt(wm['cagr'], True)}; chosen per fold: "
              + ", ".join(out.labels[f["chosen_config"]] for f in out.folds))
    if report is not None:
        print(f"report: {report}")
    return 0


def cmd_sweeps_list(args: argparse.Namespace) -> int:
    from macro_pipeline.cli import _migrated_engine
    from macro_pipeline.warehouse.sweeps import list_sweeps

    frame = list_sweeps(_migrated_engine(args))
    if args.json:
        print(frame.to_json(orient="records", date_format="iso"))
        return 0
    if frame.empty:
        print("no sweeps stored")
        return 0
    for r in frame.itertuples():
        print(f"{r.sweep_id[:12]}  {r.name or '-':<24} {r.kind:<16} {r.n_configs:>5} configs  best {r.best}  "
              f"DSR {_fmt(r.dsr)}  PBO {_fmt(r.pbo)}  as of {r.system_as_of}")
    return 0


def cmd_sweeps_show(args: argparse.Namespace) -> int:
    from macro_pipeline.cli import _migrated_engine
    from macro_pipeline.warehouse.sweeps import load_sweep, resolve_sweep_id

    engine = _migrated_engine(args)
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
        print(f"{r.config_idx:>5}  {r.label:<40} sharpe {_fmt(r.sharpe)}  cagr {_fmt(r.cagr, True)}  "
              f"mdd {_fmt(r.max_drawdown, True)}")
    return 0


def cmd_sweeps_report(args: argparse.Namespace) -> int:
    from macro_pipeline.cli import _migrated_engine
    from macro_pipeline.reports.files import write_sweep_report
    from macro_pipeline.warehouse.sweeps import resolve_sweep_id

    engine = _migrated_engine(args)
    print(write_sweep_report(engine, resolve_sweep_id(engine, args.sweep), out=args.out))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sw = sub.add_parser("sweep", help="a parameter sweep: grid, batched backtests, DSR, PBO, walk-forward")
    sw.add_argument("--name", help="run the sweep of this name from the sweeps file")
    sw.add_argument("--file", help="sweeps file (default: the package's sweeps.toml)")
    sw.add_argument("--kind")
    sw.add_argument("--grid", action="append", metavar="NAME=V1,V2|NAME=LO..HI:STEP")
    sw.add_argument("--param", action="append", metavar="K=V", help="a fixed parameter (repeatable)")
    sw.add_argument("--universe")
    sw.add_argument("--rebalance", choices=["daily", "weekly", "monthly"])
    sw.add_argument("--calendar", choices=["XNYS", "24/7"])
    sw.add_argument("--start")
    sw.add_argument("--end")
    sw.add_argument("--metric", default="sharpe", help="picks the best configuration (default sharpe)")
    sw.add_argument("--blocks", type=int, default=16, help="CSCV blocks of the PBO (even, default 16)")
    sw.add_argument("--walk-forward", metavar="train=36M,test=12M[,anchored]")
    sw.add_argument("--clean", action="store_true", help="costs zeroed")
    sw.add_argument("--system-as-of", metavar="TS", help="read the warehouse as of this watermark (reproduce)")
    sw.add_argument("--report", metavar="PATH", help="also write the HTML report there")
    sw.add_argument("--json", action="store_true")
    sw.set_defaults(func=cmd_sweep)

    sws = sub.add_parser("sweeps", help="stored sweeps: list, show, report")
    sws_sub = sws.add_subparsers(dest="sweeps_command", required=True, metavar="ACTION")
    ls = sws_sub.add_parser("list", help="stored sweeps: id, name, kind, configurations, best")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_sweeps_list)
    sh = sws_sub.add_parser("show", help="a sweep's lineage, statistics and best configurations")
    sh.add_argument("sweep", help="sweep id, a 6+ character prefix, or a sweep name (its newest)")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_sweeps_show)
    rp = sws_sub.add_parser("report", help="self-contained HTML report of a sweep")
    rp.add_argument("sweep")
    rp.add_argument("--out", help="file or existing directory (default $MACRO_PIPELINE_HOME/reports/)")
    rp.set_defaults(func=cmd_sweeps_report)
