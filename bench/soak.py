"""Soak: a simulated month of nightly operation through a real Dagster daemon (issue 13).

    python bench/soak.py [--days 22] [--strategies o-ema,o-ext | o-ema,o-carry,... | all] [--seed 13] [--keep]

Not in CI. What it does, on a fresh warehouse database (and its Dagster storage database) that it
creates on the configured server (``MACRO_PIPELINE_DATABASE_URL``, else 127.0.0.1:5432) and drops
at the end unless ``--keep``:

1. Loads the sensor oracle's synthetic world (``macro_pipeline_tests/backtest/oracle_world.py``: XNYS
   equities, a 24/7 perp and its spot leg with 8-hourly funding, quarterly macro with revisions,
   two universes, two external signals, 2019-01 .. 2020-02) through ``macro-pipeline ingest`` and
   registers the chosen strategies (``o-ema`` and ``o-ext`` by default: prices and external
   signals; ``o-carry`` adds the 24/7 calendar and funding, ``o-macro`` macro vintages) with
   ``macro-pipeline strategies add``, their universes renamed (``UNIVERSES``).
2. Starts ``macro-pipeline dev`` (webserver, daemon, code server on the packaged ``dagster.yaml``:
   queued runs, 2 at a time, run monitoring, run retries) with the nightly schedule's cron set
   to every minute (``MACRO_PIPELINE_NIGHTLY_CRON``): each wall-clock minute is a night. The
   registration sensor backfills every strategy's history; the soak waits for it.
3. Each simulated day (the sessions after the world's end, one calendar day at a time; a day
   with no session of any chosen strategy's calendar and nothing to revise is not simulated):
   the day's rows for every instrument (prices, funding, signals on Wednesdays) from random walks
   continuing the world's (fixed seed), ingested with ``macro-pipeline ingest``; then a few random
   revisions (a later vintage with ``known_at`` = the day's close) and corrections
   (``--correction``: restatements of past dates without ``known_at``). Simulated time is the
   data's: ``today`` (wall clock, 2026) is far after it, so every month up to the newest data is
   due, and what the nightly schedule and the sensor request follows from what was ingested.
   Then the soak waits for the daemon: a tick of ``point_in_time_sensor`` and one of
   ``nightly_schedule`` that both started after the ingests, then every run they (and the
   leaderboard sensor after them) requested in a terminal state. Meanwhile it samples
   ``pg_stat_activity`` every second.
4. At the end: stuck runs (any run not SUCCESS, FAILURE or CANCELED), failed runs, stale months
   against the brute-force oracle of ``test_sensor_oracle.py`` (every strategy recomputed from
   scratch over its whole history on the current data, diffed month by month with what is stored:
   equity per session and non-zero weights, exact equality), months with other than one current
   run, and per day: wall time, runs, peak connections, event-log rows and table growth (rows,
   bytes). Exit status 1 if anything is stuck, failed or stale.

The soak drives the product through its CLI and Dagster's GraphQL API (what the UI uses); the
only package internals it uses are the oracle's recomputation (``test_sensor_oracle.recompute``)
and database creation.

Time: a night costs at least one minute (the sensor's ``minimum_interval_seconds`` and the cron's
resolution), plus the runs it triggers when they spill past the minute: measured 2-3 minutes a
night with two strategies on a 2-core machine shared with other work (each backtest run spends
about 25 s in its steps, 14 s of it writing the strategy's report, plus its process start; the
sensor and the schedule both request the newest month of a new day, and each successful run is
followed by a leaderboard run). The defaults (22 nights, a month of XNYS sessions) take about
45-60 minutes there; ``--days`` shortens it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import requests
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from macro_pipeline.settings import DATABASE_URL_ENV, HOME_ENV, normalize_url  # noqa: E402
from macro_pipeline.warehouse import connection as db  # noqa: E402
from macro_pipeline_tests.backtest import oracle_world as world  # noqa: E402
from macro_pipeline_tests.backtest.test_sensor_oracle import recompute, stored, what_differs  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
DEFAULT_STRATEGIES = ("o-ema", "o-ext")  # prices and signals read; XNYS: a night per session (see --strategies)
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
NOT_TERMINAL = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "MANAGED"]
FIRST_DAY = pd.Timestamp(world.LAST) + pd.Timedelta(days=1)
PRICE_COLUMNS = ["instrument_id", "obs_date", "open", "high", "low", "close"]
# The world's universes renamed: the repository's own strategies (strategies.toml, registered by the
# registration sensor in every warehouse) include carry-simple on a universe named CRYPTO trading
# BTC-PERP; with the world's CRYPTO (PERP, SPOT) it raises in `select_instruments`, and that one
# error fails every tick of the registration sensor and the nightly schedule for all strategies.
UNIVERSES = {"EQ": "SOAK_EQ", "CRYPTO": "SOAK_CRYPTO"}
BACKFILL_TIMEOUT_S = 1800
DAY_TIMEOUT_S = 900
EQUITY_VOL, CRYPTO_VOL = 0.018, 0.035


# --------------------------------------------------------------------------- processes


def cli(env: dict[str, str], *args: str) -> str:
    """``macro-pipeline ARGS`` in a process of its own; its stdout (fails loudly)."""
    done = subprocess.run([sys.executable, "-m", "macro_pipeline.cli", *args], env=env, capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"macro-pipeline {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def ingest(env: dict[str, str], folder: Path, kind: str, frame: pd.DataFrame, name: str, *flags: str) -> str:
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return cli(env, "ingest", kind, str(path), "-q", *flags).strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Dev:
    """``macro-pipeline dev`` started by the soak (its own process group) and its GraphQL API."""

    proc: subprocess.Popen
    url: str
    log: Path
    location: str = ""
    repository: str = ""

    def gql(self, query: str, **variables) -> dict:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=120)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    def alive(self) -> None:
        if self.proc.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
            raise RuntimeError(f"macro-pipeline dev exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        """SIGINT to the group (as Ctrl-C), then SIGKILL to what is left of the group after 30 s."""
        for sig, grace_s in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=grace_s)
                with contextlib.suppress(ProcessLookupError):  # the group's children outlive the leader
                    os.killpg(self.proc.pid, 0)
                    time.sleep(2)
                    os.killpg(self.proc.pid, signal.SIGKILL)
                return
            except subprocess.TimeoutExpired:
                continue

    def ticks(self, kind: str, name: str, limit: int = 5) -> list[dict]:
        """The newest ticks of a sensor or schedule: timestamp (epoch s), status, runIds, skipReason."""
        selector = {"repositoryLocationName": self.location, "repositoryName": self.repository, f"{kind}Name": name}
        field_ = "sensorOrError(sensorSelector: $s)" if kind == "sensor" else "scheduleOrError(scheduleSelector: $s)"
        state = "sensorState" if kind == "sensor" else "scheduleState"
        data = self.gql(f"""query ($s: {kind.capitalize()}Selector!) {{ {field_} {{ __typename
            ... on {kind.capitalize()} {{ {state} {{ ticks(limit: {limit}) {{ timestamp status runIds skipReason
                error {{ message }} }} }} }} }} }}""", s=selector)
        body = next(iter(data.values()))
        if state not in body:
            raise RuntimeError(f"{kind} {name}: {body}")
        return body[state]["ticks"]

    def runs(self, statuses: list[str] | None = None) -> list[dict]:
        data = self.gql("""query ($f: RunsFilter) { runsOrError(filter: $f) { __typename ... on Runs {
            results { runId jobName status startTime endTime tags { key value } } } } }""",
                        f={"statuses": statuses} if statuses else {})
        return data["runsOrError"]["results"]


def start_dev(env: dict[str, str], home: Path) -> Dev:
    port = _free_port()
    log = home / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "macro_pipeline.cli", "dev", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    dev = Dev(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        dev.alive()
        with contextlib.suppress(requests.RequestException, RuntimeError, KeyError, TypeError):
            data = dev.gql("""{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
                locationOrLoadError { __typename ... on RepositoryLocation { repositories { name } } } } } } }""")
            for entry in data["workspaceOrError"]["locationEntries"]:
                loaded = entry["locationOrLoadError"]
                if entry["loadStatus"] == "LOADED" and loaded and loaded["__typename"] == "RepositoryLocation":
                    dev.location, dev.repository = entry["name"], loaded["repositories"][0]["name"]
                    return dev
        time.sleep(1)
    raise RuntimeError("macro-pipeline dev did not load its code location in 300 s")


# --------------------------------------------------------------------------- measurements


@dataclass
class Meter:
    """Connections sampled while waiting (peak per database), and the databases' growth."""

    warehouse: sa.Engine
    storage: sa.Engine
    peak: dict[str, int] = field(default_factory=dict)

    def sample(self) -> None:
        with self.warehouse.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT datname, count(*) FROM pg_stat_activity WHERE datname = ANY(%s) GROUP BY 1",
                ([self.warehouse.url.database, self.storage.url.database],)).all()
        for name, n in rows:
            self.peak[name] = max(self.peak.get(name, 0), n - (name == self.warehouse.url.database))  # not ours

    def take_peak(self) -> dict[str, int]:
        out, self.peak = self.peak, {}
        return out

    def tables(self) -> dict[str, tuple[int, int]]:
        """Every warehouse table: (rows, bytes with indexes and TOAST)."""
        with self.warehouse.connect() as conn:
            names = conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").scalars().all()
            return {t: (conn.exec_driver_sql(f'SELECT count(*) FROM "{t}"').scalar_one(),
                        conn.exec_driver_sql("SELECT pg_total_relation_size(%s)", (f'public."{t}"',)).scalar_one())
                    for t in names}

    def event_log(self) -> tuple[int, int]:
        """Dagster's event log: (rows, bytes of the storage database)."""
        with self.storage.connect() as conn:
            return (conn.exec_driver_sql("SELECT count(*) FROM event_logs").scalar_one(),
                    conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())

    def staging(self) -> int:
        with self.warehouse.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'ingest_staging'").scalar_one()


# --------------------------------------------------------------------------- the simulated market


class Market:
    """The world's random walks continued day by day (fixed seed), and the random revisions."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        frames = world.frames()
        prices = frames["prices"][0]
        self.last = prices.sort_values("obs_date").groupby("instrument_id")["close"].last().to_dict()
        self.sessions = set(world.XNYS_DAYS)
        self.history = prices[PRICE_COLUMNS].copy()  # what may be corrected
        self.xnys = xcals.get_calendar("XNYS")
        self.signals = frames["signals"][0]
        self.macro = frames["macro"][0]
        funding = frames["funding"][0]
        self.funding = funding[["ts", "rate"]].copy()

    def is_session(self, d: pd.Timestamp) -> bool:
        return bool(self.xnys.is_session(d))

    def day(self, d: pd.Timestamp) -> dict[str, pd.DataFrame]:
        """The rows of day ``d``: every instrument's close (equities on XNYS sessions), the perp's
        three funding settlements (08:00, 16:00, 00:00 next day), the signals on Wednesdays."""
        ds = d.strftime("%Y-%m-%d")
        xnys = self.is_session(d)
        rows = []
        if xnys:
            self.sessions.add(d)
            for iid in world.EQUITIES:
                self.last[iid] *= float(np.exp(self.rng.normal(0.0003, EQUITY_VOL)))
                row = {"instrument_id": iid, "obs_date": ds, "close": self.last[iid]}
                if iid == "EQA":
                    spread = float(self.rng.uniform(0.002, 0.02))
                    row.update(open=self.last[iid], high=self.last[iid] * (1 + spread), low=self.last[iid] * (1 - spread))
                rows.append(row)
        step = float(np.exp(self.rng.normal(0.0003, CRYPTO_VOL)))
        self.last["PERP"] *= step
        self.last["SPOT"] = self.last["PERP"] * 0.999
        rows += [{"instrument_id": iid, "obs_date": ds, "close": self.last[iid]} for iid in ("PERP", "SPOT")]
        out = {"prices": pd.DataFrame(rows)}
        self.history = pd.concat([self.history, out["prices"].reindex(columns=PRICE_COLUMNS)], ignore_index=True)
        ts = pd.date_range(d + pd.Timedelta(hours=8), d + pd.Timedelta(days=1), freq="8h", tz="UTC")
        rate = 0.00006 + self.rng.normal(0, 0.00003, len(ts))
        out["funding"] = pd.DataFrame({"instrument_id": "PERP", "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                       "rate": rate, "interval_hours": 8.0})
        self.funding = pd.concat([self.funding, out["funding"][["ts", "rate"]]], ignore_index=True)
        if xnys and d.day_of_week == 2:
            out["signals"] = pd.DataFrame([
                {"signal_name": name, "instrument_id": iid, "obs_date": ds,
                 "value": round(float(self.rng.uniform(-0.2, 0.4)), 4)}
                for name in ("SIG_A", "SIG_B") for iid in ("EQA", "EQB", "EQC", "EQD")])
            self.signals = pd.concat([self.signals, out["signals"]], ignore_index=True)
        return out

    def _past(self, frame: pd.DataFrame, col: str) -> pd.Series:
        """A past row: within the last 90 days four times in five, anywhere in the history otherwise."""
        dates = pd.to_datetime(frame[col], utc=col == "ts")
        recent = frame[dates >= dates.max() - pd.Timedelta(days=90)]
        pool = recent if self.rng.random() < 0.8 else frame
        return pool.iloc[int(self.rng.integers(len(pool)))]

    def revisions(self, d: pd.Timestamp, close: pd.Timestamp) -> list[tuple[str, str, pd.DataFrame, bool]]:
        """0-3 random revisions and corrections: (label, kind, rows, is a correction)."""
        out = []
        known = close.strftime("%Y-%m-%dT%H:%M:%SZ")
        for _ in range(int(self.rng.integers(0, 4))):
            what = self.rng.choice(["price-revision", "price-correction", "macro-revision", "signal-correction",
                                    "funding-correction"])
            if what in ("price-revision", "price-correction"):
                # a date before today: a revision known at today's XNYS close must not precede the close of
                # the price's own session (a 24/7 day closes at 00:00 UTC of the next day)
                row = self._past(self.history[self.history["obs_date"] < d.strftime("%Y-%m-%d")], "obs_date")
                factor = 1 + self.rng.normal(0, 0.03)  # a bad tick: the whole bar scaled, as the oracle's cases do
                new = pd.DataFrame([row.dropna()])
                for col in ("open", "high", "low", "close"):
                    if col in new:
                        new[col] = new[col] * factor
                if what == "price-revision":
                    new["known_at"] = known
                label = f"{what} {row['instrument_id']} {row['obs_date']}"
                out.append((label, "prices", new, what == "price-correction"))
            elif what == "macro-revision":
                row = self.macro.iloc[int(self.rng.integers(len(self.macro)))]
                new = pd.DataFrame({"series_id": [row["series_id"]], "obs_date": [row["obs_date"]],
                                    "value": [row["value"] * (1 + self.rng.normal(0, 0.01))], "known_at": [known]})
                out.append((f"{what} {row['series_id']} {row['obs_date']}", "macro", new, False))
            elif what == "signal-correction":
                row = self._past(self.signals, "obs_date")
                new = pd.DataFrame({"signal_name": [row["signal_name"]], "instrument_id": [row["instrument_id"]],
                                    "obs_date": [row["obs_date"]], "value": [round(float(self.rng.uniform(-0.2, 0.4)), 4)]})
                out.append((f"{what} {row['signal_name']} {row['instrument_id']} {row['obs_date']}", "signals", new, True))
            else:
                row = self._past(self.funding, "ts")
                new = pd.DataFrame({"instrument_id": ["PERP"], "ts": [row["ts"]],
                                    "rate": [row["rate"] + self.rng.normal(0, 0.00005)], "interval_hours": [8.0]})
                out.append((f"{what} PERP {row['ts']}", "funding", new, True))
        return out


# --------------------------------------------------------------------------- the daemon's day


def wait_for_night(dev: Dev, meter: Meter, after: float, timeout_s: float) -> dict:
    """Wait for a point-in-time sensor tick and a nightly schedule tick that started after ``after``
    (epoch s) and finished, then for every run to end, then for the leaderboard sensor to have
    ticked after the last run ended and its run (if any) to end. Samples connections every second.
    Returns what the ticks did."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, dict] = {}

    def done_tick(kind: str, name: str, since: float) -> dict | None:
        """The first finished tick that started after ``since`` (ticks come newest first)."""
        for t in reversed(dev.ticks(kind, name, limit=10)):
            if t["timestamp"] > since and t["status"] in ("SUCCESS", "SKIPPED", "FAILURE"):
                return t
        return None

    def idle() -> bool:
        return not dev.runs(NOT_TERMINAL)

    while time.monotonic() < deadline:
        dev.alive()
        meter.sample()
        for kind, name in (("sensor", "point_in_time_sensor"), ("schedule", "nightly_schedule")):
            if name not in seen and (t := done_tick(kind, name, after)):
                seen[name] = t
        if len(seen) == 2 and idle():
            last_end = max([r["endTime"] or 0 for r in dev.runs() if r["jobName"] == "backtest_job"], default=0)
            if done_tick("sensor", "leaderboard_sensor", max(last_end, after)) and idle():
                return seen
        time.sleep(1)
    raise RuntimeError(f"the night after {pd.Timestamp(after, unit='s')} did not settle in {timeout_s} s; seen {seen}")


def wait_for_backfill(dev: Dev, meter: Meter, strategies: list[str], timeout_s: float) -> None:
    """The registration sensor's first tick requests every strategy's history: wait for those runs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dev.alive()
        meter.sample()
        registered = [r for r in dev.runs() if {"key": "macro_pipeline/trigger", "value": "register"} in r["tags"]]
        names = {t["value"] for r in registered for t in r["tags"] if t["key"] == "macro_pipeline/strategy"}
        if set(strategies) <= names and all(r["status"] in TERMINAL for r in registered) and not dev.runs(NOT_TERMINAL):
            failed = [r["runId"] for r in registered if r["status"] != "SUCCESS"]
            if failed:
                raise RuntimeError(f"history runs failed: {failed}")
            return
        time.sleep(2)
    raise RuntimeError(f"the history backfill did not finish in {timeout_s} s")


# --------------------------------------------------------------------------- the oracle


def stale_months(engine: sa.Engine, strategies: list[str]) -> dict[tuple[str, str], str]:
    have, want = stored(engine), recompute(engine, strategies)
    out = {}
    for sid in strategies:
        for m in sorted(set(have.get(sid, {})) | set(want[sid])):
            a, b = have.get(sid, {}).get(m), want[sid].get(m)
            if a != b:
                out[(sid, m)] = what_differs(a, b)
    return out


def current_runs_per_month(engine: sa.Engine, strategies: list[str]) -> dict[tuple[str, str], int]:
    """(strategy, month) -> current pipeline runs, where that is not exactly one."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT strategy_id, to_char(window_start, 'YYYY-MM'), count(*) FROM backtest_runs "
            "WHERE superseded_by IS NULL AND NOT reproduction AND summary ->> 'pipeline' = 'true' "
            "AND strategy_id = ANY(:s) GROUP BY 1, 2 HAVING count(*) <> 1"), {"s": strategies}).all()
    return {(s, m): n for s, m, n in rows}


# --------------------------------------------------------------------------- the soak


def strategy_args(sid: str) -> list[str]:
    cfg = next(c for c in world.STRATEGIES if c.strategy_id == sid)
    args = ["strategies", "add", "--id", cfg.strategy_id, "--kind", cfg.kind, "--universe", UNIVERSES[cfg.universe],
            "--rebalance", cfg.rebalance, "--calendar", cfg.calendar]
    for k, v in cfg.params.items():
        if v != []:  # an empty instrument list is the default: all of the universe
            args += ["--param", f"{k}={v}"]
    return args


def calendars(strategies: list[str]) -> set[str]:
    return {c.calendar for c in world.STRATEGIES if c.strategy_id in strategies}


def fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@dataclass
class Day:
    day: str
    wall_s: float
    ingested: int
    revisions: list[str]
    runs: dict[str, int]
    duplicates: int
    failed: int
    sensor: str
    schedule: str
    peak_connections: dict[str, int]
    table_rows: int
    table_bytes: int
    event_rows: int
    storage_bytes: int


def run(args: argparse.Namespace) -> int:
    strategies = [c.strategy_id for c in world.STRATEGIES] if args.strategies == "all" else args.strategies.split(",")
    unknown = sorted(set(strategies) - {c.strategy_id for c in world.STRATEGIES})
    if unknown:
        raise SystemExit(f"--strategies: unknown {unknown}; choose among {[c.strategy_id for c in world.STRATEGIES]}")
    server = normalize_url(os.environ.get(DATABASE_URL_ENV) or DEFAULT_SERVER)
    name = f"soak_{uuid.uuid4().hex[:8]}"
    storage_name = f"{name}_dagster"  # the default storage of a warehouse database (orchestration.dagster_database)
    tmp = Path(tempfile.mkdtemp(prefix="mp_soak_"))
    home = tmp / "home"
    home.mkdir()
    url = db.create_database(server, name)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update({DATABASE_URL_ENV: url, HOME_ENV: str(home), "PYTHONPATH": str(REPO),
                "MACRO_PIPELINE_NIGHTLY_CRON": "* * * * *", "MACRO_PIPELINE_HISTORY_START": world.FIRST[:8] + "01"})
    dev = None
    t_start = time.monotonic()
    print(f"soak: warehouse {name}, storage {storage_name}, strategies {', '.join(strategies)}, {args.days} days, "
          f"seed {args.seed}, files and logs in {tmp}", flush=True)
    try:
        cli(env, "db", "migrate")
        files = tmp / "files"
        files.mkdir()
        t0 = time.monotonic()
        for kind in ("instruments", "prices", "funding", "macro", "universe", "corporate-actions", "signals"):
            for n, frame in enumerate(world.frames()[kind]):
                if kind == "universe":
                    frame = frame.assign(universe=frame["universe"].map(UNIVERSES))
                ingest(env, files, kind, frame, f"world-{kind}-{n}")
        for sid in strategies:
            cli(env, *strategy_args(sid))
        print(f"world loaded and {len(strategies)} strategies registered in {time.monotonic() - t0:.0f} s", flush=True)

        # the soak's own connections: one at a time, none pooled (so pg_stat_activity counts only theirs)
        warehouse = sa.create_engine(url, poolclass=NullPool)
        dev = start_dev(env, home)
        storage = sa.create_engine(db.with_database(url, storage_name), poolclass=NullPool)
        meter = Meter(warehouse, storage)
        t0 = time.monotonic()
        wait_for_backfill(dev, meter, strategies, BACKFILL_TIMEOUT_S)
        history_runs = len(dev.runs())
        print(f"history backfilled through the daemon in {time.monotonic() - t0:.0f} s ({history_runs} runs)", flush=True)
        meter.take_peak()
        tables0, (events0, storage0) = meter.tables(), meter.event_log()
        prev_tables, prev_events = tables0, (events0, storage0)

        market = Market(args.seed)
        cals = calendars(strategies)
        days: list[Day] = []
        d = FIRST_DAY
        known_runs = {r["runId"] for r in dev.runs()}
        print(f"\n{'day':<11} {'wall s':>6} {'rows in':>7} {'revisions':>9} {'runs':>14} {'dup':>3} {'fail':>4} "
              f"{'conn wh/dg':>10} {'+rows':>7} {'+bytes':>9} {'+events':>7} {'+dg bytes':>9}  sensor / schedule",
              flush=True)
        carried: dict[str, list[pd.DataFrame]] = {}
        while len(days) < args.days:
            xnys = market.is_session(d)
            for kind, frame in market.day(d).items():
                carried.setdefault(kind, []).append(frame)
            if "24/7" not in cals and not xnys:  # no night for the chosen strategies: its rows come with the next
                d += pd.Timedelta(days=1)
                continue
            t_day = time.monotonic()
            rows, carried = {k: pd.concat(v, ignore_index=True) for k, v in carried.items()}, {}
            ingested = 0
            for kind, frame in rows.items():
                ingest(env, files, kind, frame, f"{d.date()}-{kind}")
                ingested += len(frame)
            close = world.decision_time(d, "XNYS" if xnys else "24/7")
            labels = []
            for k, (label, kind, frame, correction) in enumerate(market.revisions(d, close)):
                ingest(env, files, kind, frame, f"{d.date()}-rev{k}", *(["--correction"] if correction else []))
                labels.append(label)
            ingested_at = time.time()
            seen = wait_for_night(dev, meter, ingested_at, DAY_TIMEOUT_S)
            new_runs = [r for r in dev.runs() if r["runId"] not in known_runs]
            known_runs |= {r["runId"] for r in new_runs}
            by_trigger: dict[str, int] = {}
            ranges = [tuple(t["value"] for t in r["tags"] if t["key"] in (RANGE_START, RANGE_END))
                      for r in new_runs if r["jobName"] == "backtest_job"]
            duplicates = len(ranges) - len(set(ranges))  # the same strategy and months requested twice in a night
            for r in new_runs:
                trig = next((t["value"] for t in r["tags"] if t["key"] == "macro_pipeline/trigger"), r["jobName"])
                by_trigger[trig] = by_trigger.get(trig, 0) + 1
            tables, events = meter.tables(), meter.event_log()
            day = Day(str(d.date()), time.monotonic() - t_day, ingested, labels, by_trigger, duplicates,
                      sum(r["status"] != "SUCCESS" for r in new_runs),
                      _tick_summary(seen["point_in_time_sensor"]), _tick_summary(seen["nightly_schedule"]),
                      meter.take_peak(),
                      sum(v[0] for v in tables.values()) - sum(v[0] for v in prev_tables.values()),
                      sum(v[1] for v in tables.values()) - sum(v[1] for v in prev_tables.values()),
                      events[0] - prev_events[0], events[1] - prev_events[1])
            prev_tables, prev_events = tables, events
            days.append(day)
            runs_text = " ".join(f"{k}:{v}" for k, v in sorted(day.runs.items())) or "-"
            conn = f"{day.peak_connections.get(name, 0)}/{day.peak_connections.get(storage_name, 0)}"
            print(f"{day.day:<11} {day.wall_s:6.0f} {day.ingested:7d} {len(labels):9d} {runs_text:>14} {day.duplicates:3d} {day.failed:4d} "
                  f"{conn:>10} {day.table_rows:7d} {fmt_bytes(day.table_bytes):>9} {day.event_rows:7d} "
                  f"{fmt_bytes(day.storage_bytes):>9}  {day.sensor} / {day.schedule}", flush=True)
            for label in labels:
                print(f"{'':<11} {label}", flush=True)
            d += pd.Timedelta(days=1)

        # ---------------------------------------------------------------- the verdict
        stuck = dev.runs(NOT_TERMINAL)
        all_runs = dev.runs()
        failed = [r for r in all_runs if r["status"] != "SUCCESS" and r["status"] in TERMINAL]
        t0 = time.monotonic()
        stale = stale_months(warehouse, strategies)
        oracle_s = time.monotonic() - t0
        not_one = current_runs_per_month(warehouse, strategies)
        staging = meter.staging()
        tables_end, events_end = meter.tables(), meter.event_log()
        months = sum(len(v) for v in stored(warehouse).values())
        n = max(len(days), 1)
        walls = [x.wall_s for x in days]
        print("\nverdict")
        print(f"  stuck runs (not SUCCESS/FAILURE/CANCELED): {len(stuck)}"
              + (f"  {[(r['runId'][:8], r['status']) for r in stuck]}" if stuck else ""))
        print(f"  failed runs: {len(failed)} of {len(all_runs)}"
              + (f"  {[(r['runId'][:8], r['jobName'], r['status']) for r in failed]}" if failed else ""))
        print(f"  stale months against a from-scratch recomputation: {len(stale)} of {months} stored "
              f"strategy-months ({oracle_s:.0f} s)")
        for (sid, m), why in sorted(stale.items())[:20]:
            print(f"    {sid} {m}: {why}")
        print(f"  strategy-months with other than one current run: {len(not_one)}"
              + (f"  {sorted(not_one.items())[:10]}" if not_one else ""))
        print(f"  staging tables left: {staging}")
        peaks = [x.peak_connections.get(name, 0) for x in days]
        speaks = [x.peak_connections.get(storage_name, 0) for x in days]
        print(f"  connections, peak per day: warehouse max {max(peaks, default=0)} (median {np.median(peaks):.0f}), "
              f"Dagster storage max {max(speaks, default=0)} (median {np.median(speaks):.0f}); "
              f"first half {max(peaks[: n // 2], default=0)}/{max(speaks[: n // 2], default=0)}, "
              f"second half {max(peaks[n // 2:], default=0)}/{max(speaks[n // 2:], default=0)}")
        rows_day = [x.table_rows for x in days]
        bytes_day = [x.table_bytes for x in days]
        print(f"  warehouse growth per day: {np.mean(rows_day):.0f} rows, {fmt_bytes(np.mean(bytes_day))} "
              f"(total {sum(rows_day)} rows, {fmt_bytes(sum(bytes_day))}; size now "
              f"{fmt_bytes(sum(v[1] for v in tables_end.values()))})")
        grew = sorted(((t, tables_end[t][0] - tables0.get(t, (0, 0))[0], tables_end[t][1] - tables0.get(t, (0, 0))[1])
                       for t in tables_end), key=lambda x: -x[2])
        for t, r, b in grew[:8]:
            print(f"    {t:<24} +{r / n:9.0f} rows/day  +{fmt_bytes(b / n):>9}/day")
        print(f"  Dagster event log per day: {np.mean([x.event_rows for x in days]):.0f} rows, "
              f"{fmt_bytes(np.mean([x.storage_bytes for x in days]))} (rows now {events_end[0]}, storage "
              f"{fmt_bytes(events_end[1])})")
        print(f"  backtest runs per night: {np.mean([sum(v for k, v in x.runs.items() if k != 'leaderboard') for x in days]):.1f}"
              f" (requested twice in the same night by the sensor and the schedule: {sum(x.duplicates for x in days)} "
              f"in all); leaderboard runs per night {np.mean([x.runs.get('leaderboard', 0) for x in days]):.1f}")
        print(f"  wall time per day: median {np.median(walls):.0f} s, max {max(walls, default=0):.0f} s, "
              f"total {sum(walls):.0f} s over {len(days)} days; whole soak {time.monotonic() - t_start:.0f} s")
        bad = bool(stuck or failed or stale or not_one or staging)
        print(f"\n{'FAIL' if bad else 'OK'}: {len(stuck)} stuck, {len(failed)} failed, {len(stale)} stale, "
              f"{len(not_one)} months without exactly one current run, {staging} staging tables")
        return 1 if bad else 0
    except BaseException:
        if dev is not None:
            print("\n".join(dev.log.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
        raise
    finally:
        if dev is not None:
            dev.stop()
        if args.keep:
            print(f"kept: databases {name} and {storage_name}; home {home}")
        else:
            db.dispose_engines(name)
            db.dispose_engines(storage_name)
            db.drop_database(server, storage_name)
            db.drop_database(server, name)


def _tick_summary(tick: dict) -> str:
    if tick["status"] == "FAILURE":
        return f"FAILURE: {(tick.get('error') or {}).get('message', '')[:80]}"
    if tick["runIds"]:
        return f"{len(tick['runIds'])} run(s)"
    return "skip"


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)  # SIGTERM: stop `dev` and drop the databases on the way out


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=22, help="simulated days with new data (default 22: a month of "
                        "sessions)")
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES),
                        help="comma-separated ids of the oracle world's strategies, or 'all' "
                             f"(default {','.join(DEFAULT_STRATEGIES)})")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", action="store_true", help="keep the databases and files (default: drop them)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
