"""Ingest throughput: `macro-pipeline ingest prices` vs a raw COPY of the same file, same run.

5,000,000 synthetic daily price rows (2,000 instruments x 2,500 sessions, OHLCV, no known_at:
the release rule fills it) are written to one CSV. Measured in this order, each once:
  1. raw COPY of the file into a bare table (same columns, no index, no constraint);
  2. the real CLI, `macro-pipeline ingest prices FILE` in a subprocess (process start, reading,
     validation, release-rule known_at, COPY to staging, set-based insert into the indexed,
     constrained, bitemporal table: everything a user waits for).
Target: ingest rows/s >= 0.5 x raw COPY rows/s.

Each timed step starts from a quiet server: a CHECKPOINT first (so neither pays for the other's
dirty buffers and WAL), and the bare table has autovacuum off (otherwise vacuuming the 5M rows
just copied runs during, and is charged to, the ingest). The CSV is generated once per row
count and cached in the temp directory.

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
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import scratch_database  # noqa: E402

from macro_pipeline.settings import DATABASE_URL_ENV  # noqa: E402
from macro_pipeline.warehouse import connection as db  # noqa: E402
from macro_pipeline.warehouse.ingest import ingest  # noqa: E402

FILE_VERSION = 2  # bump when make_file's output changes (invalidates the cache)


def make_file(path: Path, rows: int, seed: int = 1) -> tuple[int, list[str]]:
    """Write the synthetic prices CSV (pyarrow's multi-threaded writer: seconds, not a minute)."""
    n_sessions = 2500
    n_inst = rows // n_sessions
    rng = np.random.default_rng(seed)
    sessions = pd.bdate_range("2010-01-04", periods=n_sessions)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_sessions, n_inst)), axis=0))
    spread = np.abs(rng.normal(0, 0.005, close.shape))
    ids = [f"I{i:05d}" for i in range(n_inst)]
    high, low = (close * (1 + spread)).T.ravel(), (close * (1 - spread)).T.ravel()
    close = close.T.ravel()
    table = pa.table({
        "instrument_id": pa.DictionaryArray.from_arrays(
            np.repeat(np.arange(n_inst, dtype=np.int32), n_sessions), pa.array(ids)).cast(pa.string()),
        "obs_date": pa.array(np.tile(sessions.to_numpy().astype("datetime64[D]"), n_inst), pa.date32()),
        "open": np.round(np.clip(close, low, high), 6),  # open = close, kept inside [low, high]
        "high": np.round(high, 6),
        "low": np.round(low, 6),
        "close": np.round(close, 6),
        "volume": rng.integers(1_000, 1_000_000, close.size).astype(float),
    })
    pacsv.write_csv(table, str(path), pacsv.WriteOptions(quoting_style="none"))  # ids need no quoting
    return table.num_rows, ids


def cached_file(rows: int) -> tuple[Path, int, list[str]]:
    """The generated file for ``rows``, reused across runs from the temp directory."""
    path = Path(tempfile.gettempdir()) / f"macro_pipeline_bench_prices_{rows}_v{FILE_VERSION}.csv"
    n_inst = rows // 2500
    if not path.exists():
        part = path.with_suffix(f".part{os.getpid()}")
        make_file(part, rows)
        part.rename(path)
    return path, n_inst * 2500, [f"I{i:05d}" for i in range(n_inst)]


def checkpoint(engine) -> None:
    """Flush dirty buffers and start a new WAL cycle before a timed step (needs superuser or
    pg_checkpoint; skipped with a note otherwise)."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")
    except Exception as exc:  # noqa: BLE001 - the bench still runs, only less isolated
        print(f"note: CHECKPOINT not allowed ({type(exc).__name__}); steps may disturb each other")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    args = parser.parse_args()
    t = time.perf_counter()
    path, rows, ids = cached_file(args.rows)
    print(f"{rows:,} rows ({path.stat().st_size / 1e6:.0f} MB CSV, {path}) ready in {time.perf_counter() - t:.1f} s")
    with scratch_database("bench_ingest") as url:
        engine = db.get_engine(url)
        ingest(engine, "instruments", pd.DataFrame({"instrument_id": ids, "asset_class": "equity", "kind": "spot"}))

        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE bare_copy (instrument_id text, obs_date date, open float8, high float8, "
                "low float8, close float8, volume float8) WITH (autovacuum_enabled = off)")
        checkpoint(engine)
        raw = engine.raw_connection()
        t = time.perf_counter()
        with raw.cursor() as cur, open(path) as fh:
            cur.copy_expert("COPY bare_copy FROM STDIN WITH (FORMAT csv, HEADER true)", fh)
        raw.commit()
        copy_s = time.perf_counter() - t
        raw.close()

        env = dict(os.environ, **{DATABASE_URL_ENV: url})
        cli = str(Path(sys.executable).parent / "macro-pipeline")
        checkpoint(engine)
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
