"""Ingest throughput: `macro-pipeline ingest prices` of a first load vs raw COPYs of the same rows.

5,000,000 synthetic daily price rows (2,000 instruments x 2,500 sessions, OHLCV, no known_at:
the release rule fills it) are written to one CSV. Each repetition runs in a fresh database (a
copy of a migrated template with the instruments registered) and times, each once:
  1. bare: raw COPY of the CSV into a bare table (same columns, no index, no constraint);
  2. schema-csv: raw COPY of the rows as the ingest stores them (known_at, recorded_at and
     batch_id filled; a CSV exported once from an untimed warm-up ingest) into an empty table
     ``LIKE prices INCLUDING ALL``: the same unique and BRIN indexes and CHECKs, the physical
     work of this schema with nothing else;
  3. schema-binary: the same rows and table, from a binary COPY file (no text parsing in the
     server either: the strictest limit, since the ingest's own COPY is binary);
  4. ingest: the real CLI, `macro-pipeline ingest prices FILE` in a subprocess (process start,
     reading, validation, release-rule known_at, the first-load COPY into the indexed,
     constrained, bitemporal table: everything a user waits for).
The steps are interleaved: repetition k starts at step k (mod 4), so no step always runs first
or right after the same neighbour on a shared machine. Medians are quoted, the ratios of the
medians are the result, and each repetition's own ratios are printed as well.
Targets: ingest >= 0.5 x bare COPY rows/s; ingest >= 0.8 x schema COPY rows/s. The bench also
prints the schema's own limit against the bare COPY (schema-binary vs bare): no ingest into this
table, however lean, can beat it.

Each timed step starts from a quiet server: a CHECKPOINT first (so no step pays for the
previous one's dirty buffers and WAL), and every table of the bench database has autovacuum
off (else vacuuming the rows one step just wrote runs during, and is charged to, the next).
The CSV is generated once per row count and cached in the temp directory. The machine's load
(`uptime`) is printed before the first and after the last repetition.

    python bench/ingest.py [--rows 5000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import scratch_database, server_url  # noqa: E402

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


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


STORED = "instrument_id, obs_date, open, high, low, close, volume, known_at, recorded_at, batch_id"
STEPS = ("bare", "schema-csv", "schema-binary", "ingest")


def run_cli(url: str, path: Path) -> str:
    env = dict(os.environ, **{DATABASE_URL_ENV: url})
    out = subprocess.run([sys.executable, "-m", "macro_pipeline.cli", "ingest", "prices", str(path), "-q"],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return out.stdout.strip()


def copy_in(engine, sql: str, path: Path, mode: str) -> None:
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur, open(path, mode) as fh:
            cur.copy_expert(sql, fh, size=1 << 20)
        raw.commit()
    finally:
        raw.close()


def timed_step(step: str, url: str, path: Path, stored_csv: Path, stored_bin: Path) -> float:
    engine = db.get_engine(url)
    with engine.begin() as conn:  # created untimed; each step's table is empty when it starts
        conn.exec_driver_sql(
            "CREATE TABLE bare_copy (instrument_id text, obs_date date, open float8, high float8, "
            "low float8, close float8, volume float8) WITH (autovacuum_enabled = off)" if step == "bare" else
            "CREATE TABLE schema_copy (LIKE prices INCLUDING ALL) WITH (autovacuum_enabled = off)"
            if step.startswith("schema") else "SELECT 1")
    checkpoint(engine)
    t = time.perf_counter()
    if step == "bare":
        copy_in(engine, "COPY bare_copy FROM STDIN WITH (FORMAT csv, HEADER true)", path, "r")
    elif step == "schema-csv":
        copy_in(engine, f"COPY schema_copy ({STORED}) FROM STDIN WITH (FORMAT csv)", stored_csv, "r")
    elif step == "schema-binary":
        copy_in(engine, f"COPY schema_copy ({STORED}) FROM STDIN WITH (FORMAT binary)", stored_bin, "rb")
    else:
        run_cli(url, path)
    seconds = time.perf_counter() - t
    table = {"bare": "bare_copy", "ingest": "prices"}.get(step, "schema_copy")
    with engine.begin() as conn:
        stored = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
        conn.exec_driver_sql(f"DROP TABLE {table}" if table != "prices" else "SELECT 1")
    db.dispose_engines(engine.url.database)
    assert stored > 0
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    t = time.perf_counter()
    path, rows, ids = cached_file(args.rows)
    print(f"{rows:,} rows ({path.stat().st_size / 1e6:.0f} MB CSV, {path}) ready in {time.perf_counter() - t:.1f} s")
    print(f"load before: {uptime()}")
    server = server_url()
    times: dict[str, list[float]] = {s: [] for s in STEPS}
    with scratch_database("bench_ingest") as template_url, tempfile.TemporaryDirectory() as tmp:
        template = db.get_engine(template_url)
        ingest(template, "instruments", pd.DataFrame({"instrument_id": ids, "asset_class": "equity", "kind": "spot"}))
        with template.begin() as conn:  # the bench's own copies: no vacuum between the timed steps
            for table in ("prices", "ingest_batches"):
                conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
        template_name = template.url.database
        db.dispose_engines(template_name)
        # warm-up (untimed): one ingest, whose stored rows become the schema COPY's input files
        stored_csv, stored_bin = Path(tmp) / "stored.csv", Path(tmp) / "stored.bin"
        warm = db.create_database(server, f"{template_name}_w", template=template_name)
        try:
            print(run_cli(warm, path))
            raw = db.get_engine(warm).raw_connection()
            with raw.cursor() as cur:
                for target, fmt, mode in ((stored_csv, "csv", "w"), (stored_bin, "binary", "wb")):
                    with open(target, mode) as fh:
                        cur.copy_expert(f"COPY (SELECT {STORED} FROM prices ORDER BY instrument_id, obs_date) "
                                        f"TO STDOUT WITH (FORMAT {fmt})", fh)
            raw.close()
        finally:
            db.drop_database(server, make_url(warm).database)
        for rep in range(args.repeat):
            order = STEPS[rep % len(STEPS):] + STEPS[:rep % len(STEPS)]
            url = db.create_database(server, f"{template_name}_{rep}", template=template_name)
            try:
                line = []
                for step in order:
                    times[step].append(timed_step(step, url, path, stored_csv, stored_bin))
                    line.append(f"{step} {times[step][-1]:.2f} s")
            finally:
                db.drop_database(server, make_url(url).database)
            r = {s: times[s][-1] for s in STEPS}
            print(f"repetition {rep + 1}: {', '.join(line)}; ratios ingest/bare {r['bare'] / r['ingest']:.2f}, "
                  f"ingest/schema-csv {r['schema-csv'] / r['ingest']:.2f}, "
                  f"ingest/schema-binary {r['schema-binary'] / r['ingest']:.2f}")
    print(f"load after:  {uptime()}")

    med = {s: statistics.median(v) for s, v in times.items()}
    print()
    print(f"{'what (median of ' + str(args.repeat) + ', interleaved)':<58}{'seconds':>10}{'rows/s':>14}")
    labels = {
        "bare": "raw COPY (CSV) into a bare table",
        "schema-csv": "raw COPY (CSV) into an empty LIKE prices INCLUDING ALL",
        "schema-binary": "raw COPY (binary) into an empty LIKE prices INCLUDING ALL",
        "ingest": "macro-pipeline ingest prices, first load (end to end)",
    }
    for s in STEPS:
        print(f"{labels[s]:<58}{med[s]:>10.2f}{rows / med[s]:>14,.0f}")
    bare, schema, binary = med["bare"] / med["ingest"], med["schema-csv"] / med["ingest"], med["schema-binary"] / med["ingest"]
    print(f"ratio ingest/bare COPY          = {bare:.2f}  (target >= 0.50: {'met' if bare >= 0.5 else 'NOT met'})")
    print(f"ratio ingest/schema COPY (CSV)  = {schema:.2f}  (target >= 0.80: {'met' if schema >= 0.8 else 'NOT met'})")
    print(f"ratio ingest/schema COPY (binary) = {binary:.2f}  (the same target against the strictest peer)")
    limit = med["bare"] / med["schema-binary"]
    print(f"physical limit: schema COPY (binary)/bare COPY = {limit:.2f}, the most any ingest into this schema "
          f"reaches against the bare COPY")


if __name__ == "__main__":
    main()
