"""Start-up: ``macro-pipeline --help`` and a one-off full-history backtest, each in a fresh process,
against a fresh Python importing pandas, numpy and SQLAlchemy.

    python bench/startup.py [--repeats 7]

On a throwaway database of the configured server (or the embedded one) loaded with the demo
data and the built-in strategies, three commands, each a new process:

- peer: ``python -c "import pandas, numpy, sqlalchemy"`` (what any command of this package
  imports at the least);
- help: ``python -m macro_pipeline.cli --help`` (the ``macro-pipeline`` console script runs the
  same ``main``);
- backtest: ``python -m macro_pipeline.cli backtest --strategy ema-us-eq20 --start 1990-01-01
  --end 2022-12-31``: the one-off backtest of the whole history, stored (snapshot, run, fills,
  round trips, reads), as a user types it.

Each command runs once untimed first (the bytecode, numba's and the calendars' on-disk caches
and the OS file cache warm, as on a user's machine after the first use), then ``--repeats`` rounds, each running the three
commands one after another in a rotating order (interleaved: the machine's load weighs on all
three alike). Wall time (perf_counter around the process) and CPU time (the child's user +
system) per run; medians; each as a ratio to the peer's median of the same run. ``uptime`` is
printed before and after.

Targets (issue 14): help <= 1.5x the peer, backtest <= 3x the peer.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import scratch_database  # noqa: E402

from macro_pipeline.settings import DATABASE_URL_ENV  # noqa: E402
from macro_pipeline.warehouse import connection as db  # noqa: E402

STRATEGY, START, END = "ema-us-eq20", "1990-01-01", "2022-12-31"
COMMANDS = {
    "peer": [sys.executable, "-c", "import pandas, numpy, sqlalchemy"],
    "help": [sys.executable, "-m", "macro_pipeline.cli", "--help"],
    "backtest": [sys.executable, "-m", "macro_pipeline.cli", "backtest", "--strategy", STRATEGY,
                 "--start", START, "--end", END],
}
TARGETS = {"help": 1.5, "backtest": 3.0}


def uptime() -> str:
    """The machine's load (`uptime`): the timings below are only as quiet as this."""
    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    return out.strip() or f"load average {os.getloadavg()}"


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``argv`` in a new process; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def load_demo(url: str) -> None:
    from macro_pipeline.backtest.configs import sync_builtin_strategies
    from macro_pipeline.demo.load import load_demo

    engine = db.get_engine(url)
    load_demo(engine)
    sync_builtin_strategies(engine)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (default 7)")
    args = parser.parse_args()
    print(f"uptime: {uptime()}", flush=True)
    package_root = str(Path(__file__).resolve().parent.parent)
    with scratch_database("bench_startup") as url:
        load_demo(url)
        # the children import this checkout's package (not whatever the venv installed) and use
        # the scratch database; they write bytecode as an installed package has it (a session
        # with PYTHONDONTWRITEBYTECODE would compile every module of the package on every run)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env |= {DATABASE_URL_ENV: url,
                "PYTHONPATH": os.pathsep.join([package_root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        for argv in COMMANDS.values():  # untimed: the on-disk caches and the OS file cache warm
            timed(argv, env)
        load_before = uptime()
        names = list(COMMANDS)
        wall: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.repeats):
            for name in names[r % len(names):] + names[:r % len(names)]:  # rotating order
                w, c = timed(COMMANDS[name], env)
                wall[name].append(w)
                cpu[name].append(c)
        load_after = uptime()
    print(f"load before: {load_before}")
    print(f"load after:  {load_after}")
    print(f"{args.repeats} interleaved rounds, medians; backtest: {STRATEGY} {START}..{END}, stored")
    peer_wall, peer_cpu = statistics.median(wall["peer"]), statistics.median(cpu["peer"])
    print(f"{'command':10s} {'wall s':>8s} {'cpu s':>8s} {'wall/peer':>10s} {'cpu/peer':>9s} {'target':>7s}  met")
    for name in names:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        if name == "peer":
            print(f"{name:10s} {w:8.3f} {c:8.3f}")
            continue
        target = TARGETS[name]
        met = "yes" if w / peer_wall <= target else "NO"
        print(f"{name:10s} {w:8.3f} {c:8.3f} {w / peer_wall:9.2f}x {c / peer_cpu:8.2f}x {target:6.1f}x  {met}")
    print("all runs (wall s): " + "; ".join(f"{n} " + " ".join(f"{x:.2f}" for x in wall[n]) for n in names))


if __name__ == "__main__":
    main()
