"""Ingest throughput: `macro-pipeline ingest prices` vs a raw COPY of the same file, same run.

5,000,000 synthetic daily price rows (2,000 instruments x 2,500 sessions, OHLCV, no known_at:
the release rule fills it) are written to one CSV. Measured in this order, each once:
  1. raw COPY of the file into a bare table (same columns, no index, no constraint);
  2. the real CLI, `macro-pipeline ingest prices FILE` in a subprocess (process start, reading,
     validation, release-rule known_at, COPY to staging, set-based insert into the indexed,
     constrained, bitemporal table: everything a user waits for).
Target: ingest rows/s >= 0.5 x raw COPY rows/s.

    python bench/ingest.py [--rows 5000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import scratch_database  # noqa: E402

from macro_pipeline.settings import DATABASE_URL_ENV  # noqa: E402
from macro_pipeline.warehouse import db  # noqa: E402
from macro_pipeline.warehouse.ingest import ingest  # noqa: E402


def make_file(path: Path, rows: int, seed: int = 1) -> int:
    n_sessions = 2500
    n_inst = rows // n_sessions
    rng = np.random.default_rng(seed)
    sessions = pd.bdate_range("2010-01-04", periods=n_sessions)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_sessions, n_inst)), axis=0))
    spread = np.abs(rng.normal(0, 0.005, close.shape))
    frame = pd.DataFrame({
        "instrument_id": np.repeat([f"I{i:05d}" for i in range(n_inst)], n_sessions),
        "obs_date": np.tile(sessions.strftime("%Y-%m-%d"), n_inst),
        "open": close.T.ravel(),
        "high": (close * (1 + spread)).T.ravel(),
        "low": (close * (1 - spread)).T.ravel(),
        "close": close.T.ravel(),
        "volume": rng.integers(1_000, 1_000_000, close.size).astype(float),
    })
    frame["open"] = frame["open"].clip(frame["low"], frame["high"])
    frame.to_csv(path, index=False, float_format="%.6f")
    return len(frame), sorted(frame["instrument_id"].unique())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, scratch_database("bench_ingest") as url:
        path = Path(tmp) / "prices.csv"
        t = time.perf_counter()
        rows, ids = make_file(path, args.rows)
        print(f"generated {rows:,} rows ({path.stat().st_size / 1e6:.0f} MB CSV) in {time.perf_counter() - t:.1f} s")
        engine = db.get_engine(url)
        ingest(engine, "instruments", pd.DataFrame({"instrument_id": ids, "asset_class": "equity", "kind": "spot"}))

        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE bare_copy (instrument_id text, obs_date date, open float8, high float8, "
                "low float8, close float8, volume float8)")
        raw = engine.raw_connection()
        t = time.perf_counter()
        with raw.cursor() as cur, open(path) as fh:
            cur.copy_expert("COPY bare_copy FROM STDIN WITH (FORMAT csv, HEADER true)", fh)
        raw.commit()
        copy_s = time.perf_counter() - t
        raw.close()

        env = dict(os.environ, **{DATABASE_URL_ENV: url})
        cli = str(Path(sys.executable).parent / "macro-pipeline")
        t = time.perf_counter()
        out = subprocess.run([cli, "ingest", "prices", str(path), "-q"], env=env, capture_output=True, text=True)
        ingest_s = time.perf_counter() - t
        if out.returncode:
            raise SystemExit(out.stderr)
        print(out.stdout.strip())
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT count(*) FROM prices").scalar_one()
        assert stored == rows, (stored, rows)

    copy_rps, ingest_rps = rows / copy_s, rows / ingest_s
    ratio = ingest_rps / copy_rps
    print()
    print(f"{'what':<44}{'seconds':>10}{'rows/s':>14}")
    print(f"{'raw COPY into a bare table':<44}{copy_s:>10.2f}{copy_rps:>14,.0f}")
    print(f"{'macro-pipeline ingest prices (end to end)':<44}{ingest_s:>10.2f}{ingest_rps:>14,.0f}")
    print(f"ratio ingest/COPY = {ratio:.2f}  (target >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
