"""Point-in-time read vs a plain SELECT of the same latest rows, same run.

500 instruments x 2,520 sessions x 3 vintages (3.78 M rows) in `prices`: each (instrument, date)
has a first print at the close, a revision a day later and another a day after that. The
point-in-time read as of a decision time after all of them must pick the latest vintage of each
of the 1.26 M keys. The peer: a plain `SELECT` of exactly those 1.26 M rows from a table that
holds only them (no versions to choose between), fetched through the same COPY-to-DataFrame path.
Two peers, both printed:
  - same table: a plain `SELECT` of exactly the latest rows from `prices` itself, picked by a
    filter that knows in advance which rows are latest (`recorded_at` of the newest vintage):
    the cost of the point-in-time resolution alone (primary ratio);
  - compact table: the same rows from a table holding only them (a stricter bound: it also
    removes the other vintages from the scan).
Median of 5 runs after one warm-up each. Target: PIT read time <= 2 x plain SELECT.

    python bench/pit_read.py [--instruments 500 --sessions 2520]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import scratch_database  # noqa: E402

from macro_pipeline.warehouse import connection as db  # noqa: E402
from macro_pipeline.warehouse.pit import PointInTimeReader, copy_query  # noqa: E402


def load(engine, n_inst: int, n_sessions: int) -> None:
    """Bench setup (not measured): the three vintages generated inside the database."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO instruments (instrument_id, asset_class, kind) "
            f"SELECT 'I' || lpad(g::text, 4, '0'), 'equity', 'spot' FROM generate_series(0, {n_inst - 1}) g")
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE bench_sessions AS SELECT d::date AS obs_date FROM generate_series('2010-01-04'::date, "
            f"'2010-01-04'::date + {n_sessions * 2}, interval '1 day') d WHERE extract(isodow FROM d) < 6 LIMIT {n_sessions}")
        for v in range(3):
            rec = f"'2024-01-0{v + 1}T00:00:00Z'::timestamptz"
            batch = conn.exec_driver_sql(
                "INSERT INTO ingest_batches (kind, source, rows_in_file, rows_added, revisions_added, unchanged, recorded_at) "
                f"VALUES ('prices', 'bench vintage {v}', 0, 0, 0, 0, {rec}) RETURNING batch_id").scalar_one()
            conn.exec_driver_sql(
                "INSERT INTO prices (instrument_id, obs_date, close, known_at, recorded_at, batch_id) "
                f"SELECT i.instrument_id, s.obs_date, 50 + 10 * random() + {v}, "
                f"(s.obs_date + time '21:00') AT TIME ZONE 'UTC' + interval '{v} day', {rec}, {batch} "
                "FROM instruments i CROSS JOIN bench_sessions s ORDER BY 1, 2")
        conn.exec_driver_sql(
            "CREATE TABLE latest_only AS SELECT DISTINCT ON (instrument_id, obs_date) instrument_id, obs_date, open, high, low, close, volume, known_at, recorded_at "
            "FROM prices ORDER BY instrument_id, obs_date, known_at DESC, recorded_at DESC")
        conn.exec_driver_sql("CREATE INDEX ON latest_only (instrument_id, obs_date)")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE prices")
        conn.exec_driver_sql("VACUUM ANALYZE latest_only")


def timed(fn, runs: int = 5) -> tuple[float, object]:
    fn()  # warm-up
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=2520)
    args = parser.parse_args()
    with scratch_database("bench_pit") as url:
        engine = db.get_engine(url)
        t = time.perf_counter()
        load(engine, args.instruments, args.sessions)
        print(f"loaded {3 * args.instruments * args.sessions:,} rows (3 vintages) in {time.perf_counter() - t:.1f} s")
        ids = [f"I{i:04d}" for i in range(args.instruments)]
        reader = PointInTimeReader(engine, "2030-01-01 00:00Z")

        pit_s, pit_frame = timed(lambda: reader.prices(ids, "2000-01-01", "2029-12-31"))
        cols = "instrument_id, obs_date, open, high, low, close, volume, known_at, recorded_at"
        same_sql = (f"SELECT {cols} FROM prices WHERE recorded_at = '2024-01-03T00:00:00Z' "
                    "AND instrument_id = ANY(%(ids)s) AND obs_date BETWEEN %(s)s AND %(e)s")
        compact_sql = (f"SELECT {cols} FROM latest_only "
                       "WHERE instrument_id = ANY(%(ids)s) AND obs_date BETWEEN %(s)s AND %(e)s")
        params = {"ids": ids, "s": "2000-01-01", "e": "2029-12-31"}
        plain_s, plain_frame = timed(lambda: copy_query(engine, same_sql, params))
        compact_s, compact_frame = timed(lambda: copy_query(engine, compact_sql, params))
        panel_s, panel = timed(lambda: reader.price_panel(ids, "2000-01-01", "2029-12-31"), runs=3)

    expected = args.instruments * args.sessions
    assert len(pit_frame) == len(plain_frame) == len(compact_frame) == expected
    a = pit_frame.sort_values(["instrument_id", "obs_date"])["close"].to_numpy()
    for peer in (plain_frame, compact_frame):
        b = peer.sort_values(["instrument_id", "obs_date"])["close"].to_numpy()
        assert np.array_equal(a, b), "PIT read and plain SELECT disagree"
    assert panel.shape == (args.sessions, args.instruments)
    ratio = pit_s / plain_s
    print()
    print(f"{'read (' + format(expected, ',') + ' rows out)':<60}{'median s':>10}")
    print(f"{'plain SELECT of the latest rows, same table':<60}{plain_s:>10.3f}")
    print(f"{'plain SELECT of the latest rows, compact latest-only table':<60}{compact_s:>10.3f}")
    print(f"{'point-in-time read (3 vintages, DISTINCT ON)':<60}{pit_s:>10.3f}")
    print(f"{'point-in-time panel (read + pivot to wide)':<60}{panel_s:>10.3f}")
    print(f"ratio PIT/plain (same table)    = {ratio:.2f}  (target <= 2.00: {'met' if ratio <= 2.0 else 'NOT met'})")
    print(f"ratio PIT/plain (compact table) = {pit_s / compact_s:.2f}")


if __name__ == "__main__":
    main()
