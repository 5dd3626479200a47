"""A 1,000-schedule weight sweep in one batched call, beside vectorbt on the same sweep.

1,000 monthly target-weight schedules (Dirichlet long-only weights summing to 0.95, fixed
seed) over the 20 real US equities of the package's demo data (8,313 XNYS sessions,
1990-2022), 7 bps costs, execution lag 1:
- engine: one `simulate_many` call (threads over batches of schedules, compiled kernel);
- vectorbt: `Portfolio.from_orders` on 1,000 groups of 20 columns (cash shared within a
  group, call_seq="auto"), the closes tiled per group, order sizes NaN except on execution
  rows; timed through `final_value()`. vectorbt materialises every (session x column) array,
  about 14 MB per group (1,000 groups in one call would need ~14 GB), so the same 1,000
  groups run as consecutive calls of --vbt-chunk groups and their times are summed.
Both after one warm-up (compilation). Engine: median of --repeats runs; vectorbt: one run
(it takes about a minute). Final values are compared for every schedule.
Target (issue 3): engine under 3 s on 2 cores.

End to end (issue 16), in a scratch database holding the demo data (its load is not timed):
`research.sweep.run_sweep` of 1,000 `ema_crossover` configurations (fast 2..41 x slow
50..290:10, monthly rebalance, 1990-01-01..2022-12-31: 20 equities x 8,313 sessions): one
point-in-time view, every configuration's weights, batched engine calls, metrics, DSR, PBO
(16 blocks), minimum backtest length, and the stored sweep (one transaction). Targets: < 30 s on
2 cores, and CSCV with 16 blocks over the 1,000 configurations' returns < 5 s (timed alone).

Run: .venv/bin/python bench/sweep.py [--schedules 1000] [--repeats 5] [--vbt-chunk 100] [--no-end-to-end]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import macro_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))

SEED = 20240102
COST_BPS = 7.0
INITIAL_CAPITAL = 1_000_000.0
DATA = Path(macro_pipeline.__file__).parent / "demo" / "data" / "us_equities_20_adjclose_daily.csv.gz"


def make_inputs(n_schedules: int) -> tuple[pd.DataFrame, pd.DatetimeIndex, np.ndarray]:
    from macro_pipeline.engine import rebalance_dates

    prices = pd.read_csv(DATA, parse_dates=["Date"], index_col="Date")
    months = rebalance_dates("XNYS", "monthly", prices.index[0], prices.index[-1])
    months = months[months.isin(prices.index)]
    rng = np.random.default_rng(SEED)
    weights = rng.dirichlet(np.ones(prices.shape[1]), size=(n_schedules, len(months))) * 0.95
    return prices, months, weights


def engine_sweep(prices, months, weights):
    from macro_pipeline.engine import BacktestConfig, simulate_many

    cfg = BacktestConfig(
        start=None, end=None, initial_capital=INITIAL_CAPITAL, rebalance_frequency="monthly",
        transaction_cost_bps=COST_BPS, slippage_bps=0.0,
    )  # fmt: skip
    return simulate_many(prices, weights, cfg, decision_dates=months).final_value


def vectorbt_sweep(prices, months, weights, chunk: int):
    return np.concatenate(
        [
            _vectorbt_groups(prices, months, weights[a : a + chunk])
            for a in range(0, len(weights), chunk)
        ]
    )


def _vectorbt_groups(prices, months, weights):
    import vectorbt as vbt

    S, K, N = weights.shape
    rows = prices.index.get_indexer(months) + 1  # lag 1
    keep = rows < len(prices)
    close = np.tile(prices.to_numpy(), (1, S))
    size = np.full(close.shape, np.nan)
    size[rows[keep]] = weights[:, keep, :].transpose(1, 0, 2).reshape(int(keep.sum()), S * N)
    pf = vbt.Portfolio.from_orders(
        close, size, size_type="targetpercent", cash_sharing=True,
        group_by=np.repeat(np.arange(S), N), call_seq="auto", fees=COST_BPS / 1e4,
        init_cash=INITIAL_CAPITAL, max_orders=int(keep.sum()) * S * N,
    )  # fmt: skip
    return np.asarray(pf.final_value())


def timed(fn, *args, repeats: int, warm_up=None):
    (warm_up or fn)(*args)  # compilation / cache load
    times, out = [], None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
        gc.collect()
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vbt-chunk", type=int, default=100)
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the stored sweep")
    args = parser.parse_args()

    prices, months, weights = make_inputs(args.schedules)
    t_engine, fv_engine = timed(engine_sweep, prices, months, weights, repeats=args.repeats)
    t_vbt, fv_vbt = timed(
        vectorbt_sweep, prices, months, weights, args.vbt_chunk, repeats=1,
        warm_up=lambda p, m, w, c: _vectorbt_groups(p, m, w[:2]),
    )  # fmt: skip
    rel = np.abs(fv_engine / fv_vbt - 1.0)

    import numba
    import vectorbt

    S, K, N = weights.shape
    print(
        f"sweep: {S} monthly schedules x {N} equities x {len(prices)} sessions "
        f"({K} decisions each), {COST_BPS:g} bps, lag 1; vectorbt {vectorbt.__version__}, "
        f"numba {numba.__version__}, {os.cpu_count()} cores; after warm-up, engine median of "
        f"{args.repeats}, vectorbt one run in calls of {args.vbt_chunk} groups"
    )
    header = f"{'side':<28} {'seconds':>8} {'ratio':>7} {'ns/cell':>8}"
    print(header)
    print("-" * len(header))
    cells = S * N * len(prices)
    print(
        f"{'engine simulate_many':<28} {t_engine:>8.3f} {t_engine / t_vbt:>7.3f} {t_engine / cells * 1e9:>8.2f}"
    )
    print(f"{'vectorbt from_orders':<28} {t_vbt:>8.3f} {1.0:>7.3f} {t_vbt / cells * 1e9:>8.2f}")
    print(
        f"final values: max relative difference over {S} schedules {rel.max():.1e}; "
        f"median final value {np.median(fv_engine):,.2f}"
    )
    ok = t_engine < 3.0 and rel.max() <= 1e-9
    print("target met: engine < 3 s, equal final values" if ok else "NOT all targets met")
    if not args.no_end_to_end:
        end_to_end(t_vbt)


def end_to_end(t_vbt: float) -> None:
    from _common import scratch_database

    from macro_pipeline.demo.load import load_demo
    from macro_pipeline.research.overfitting import pbo_cscv
    from macro_pipeline.research.sweep import SweepSpec, run_sweep
    from macro_pipeline.warehouse import connection as db

    spec = SweepSpec.build(
        "ema_crossover", {"fast": "2..41:1", "slow": "50..290:10"}, "1990-01-01", "2022-12-31",
        rebalance="monthly",
    )  # fmt: skip
    with scratch_database("bench_sweep") as url:
        engine = db.get_engine(url)
        load_demo(engine)
        gc.collect()
        t0 = time.perf_counter()
        out = run_sweep(engine, spec)
        total = time.perf_counter() - t0
        gc.collect()
        t1 = time.perf_counter()
        pbo = pbo_cscv(out.returns, 16)
        t_cscv = time.perf_counter() - t1
        engine.dispose()
    T, S = out.returns.shape
    sec = out.seconds
    print()
    print(f"end to end: {S} ema_crossover configurations x 20 equities x {T} sessions, monthly, stored")
    header = f"{'step':<44} {'seconds':>8}"
    print(header)
    print("-" * len(header))
    rows = [("view, engine inputs (one read)", sec["inputs"]), ("signals (point-in-time weights)", sec["weights"]),
            ("engine (batched simulate_many)", sec["engine"]), ("metrics, DSR, PBO, MinBTL", sec["stats"]),
            ("store (one transaction)", sec["store"]), ("total run_sweep", total),
            ("vectorbt, engine part only (above)", t_vbt), ("CSCV 16 blocks alone", t_cscv)]  # fmt: skip
    for name, t in rows:
        print(f"{name:<44} {t:>8.3f}")
    s = out.stats
    print(f"best {s['best_label']}: sharpe {s['sharpe_annual']:.3f}, DSR {s['dsr']:.3f}, PBO {pbo.pbo:.3f} "
          f"({pbo.n_combinations} combinations), MinBTL {s['min_backtest_years']:.2f} years for sharpe 1")
    ok = total < 30.0 and t_cscv < 5.0
    print("target met: end to end < 30 s, CSCV < 5 s" if ok else "NOT all targets met")


if __name__ == "__main__":
    main()
