"""The brute-force oracle that proves the point-in-time sensor (DESIGN section 4; STYLE habit 17).

A small synthetic world (``oracle_world``) with every fact kind is ingested, one strategy of every
built-in kind is registered, and every strategy's whole history is materialized THROUGH DAGSTER
(``backtest_job`` over each strategy's partition range, as the registration requests do). Then,
for each revision case, on a fresh copy of that warehouse (``CREATE DATABASE ... TEMPLATE``):

1. the sensor is ticked once (a first tick only sets the cursor);
2. the case's rows are ingested (explicit ``known_at``);
3. the sensor is ticked again and every requested run is executed through Dagster;
4. every strategy is recomputed from scratch on the current data (``load_month_inputs`` over its
   whole history with no start state, then ``simulate_months``) and diffed, month by month (daily
   equity per session and the month's non-zero signal weights, exact equality), with what was
   stored before the case and with what is stored after the requested runs.

Asserted per case: (a) every month whose recomputation differs from the results stored before
the case was requested (no missed month); (b) after the requested runs, no stored month differs
from the recomputation; (c) in the no-change cases nothing is requested. Requested months whose
recomputation equals what was stored are wasted reruns: counted and printed, not failed.

All cases run; the failures are collected and reported once, with the whole table, so one run
shows every case.

Speed (about 4 minutes on 2 cores): a Dagster range run costs about 2 s more than the same months
through ``run_months`` (Dagster's events per partition and asset, the asset checks). So the
history is materialized through ``backtest_job``, and so are the requests of the cases marked
``dagster=True`` (a 24/7 month end, a funding settlement at 00:00Z, the ad-hoc case); the other cases execute each requested range with
``run_months``, the functions the ``backtest`` asset's ops call, over exactly the requested months.
``MACRO_PIPELINE_ORACLE_DAGSTER=all`` executes every request through Dagster (slower, same
verdicts). Reports are not written (``write_strategy_report``/``write_comparison`` are stubbed):
they are files beside the results, not results.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from macro_pipeline.backtest.months import load_month_inputs, run_months, simulate_months
from macro_pipeline.backtest.one_off import run_backtest
from macro_pipeline.backtest.reruns import history_rerun, months_between
from macro_pipeline.defs import defs
from macro_pipeline.defs.automation.jobs import RANGE_END_TAG, RANGE_START_TAG
from macro_pipeline.defs.automation.sensors import point_in_time_sensor
from macro_pipeline.defs.resources import WarehouseResource
from macro_pipeline.warehouse import connection as db
from macro_pipeline.warehouse.strategies import register_strategy
from macro_pipeline_tests.backtest import oracle_world as world
from macro_pipeline_tests.conftest import postgres_instance

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
SIDS = [c.strategy_id for c in world.STRATEGIES]
EQ_SIDS = [c.strategy_id for c in world.STRATEGIES if c.universe == "EQ"]
MonthResult = tuple[tuple, frozenset]  # ((session, equity), ...), {((decision date, instrument), weight) != 0}


# --------------------------------------------------------------------------- plumbing


def _resources(engine: sa.Engine) -> dict:
    return {"warehouse": WarehouseResource(url=engine.url.render_as_string(hide_password=False))}


def _tick(instance, engine: sa.Engine, cursor: str | None) -> dg.SensorResult:
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=_resources(engine),
                                  repository_def=defs.get_repository_def())
    return point_in_time_sensor(ctx)


def _execute(instance, engine: sa.Engine, request: dg.RunRequest, through_dagster: bool) -> None:
    if not through_dagster:
        target = _requested_months(request)
        if target is not None:  # a leaderboard run ranks stored results: it changes none of them
            run_months(engine, target[0], target[1])
        return
    kwargs = {"partition_key": request.partition_key} if request.partition_key else {}
    result = defs.resolve_job_def(request.job_name).execute_in_process(
        instance=instance, tags=dict(request.tags), run_config=QUIET, resources=_resources(engine),
        raise_on_error=False, **kwargs)
    assert result.success, f"requested run {request.run_key} failed"


def _requested_months(request: dg.RunRequest) -> tuple[str, list[str]] | None:
    """(strategy, months) of a backtest request: a partition range or a single partition."""
    if request.job_name != "backtest_job":
        return None
    tags = request.tags
    if RANGE_START_TAG in tags:
        (m0, sid), (m1, _) = (tags[RANGE_START_TAG].split("|"), tags[RANGE_END_TAG].split("|"))
        return sid, months_between(m0, m1)
    key = request.partition_key or tags.get("dagster/partition")
    month, sid = key.split("|")
    return sid, [month]


def _copy(databases, template: str) -> sa.Engine:
    """A new warehouse database copied from ``template`` (dropped with the session's others)."""
    name = f"mpt_{uuid.uuid4().hex[:12]}"
    databases.created.append(name)
    return db.get_engine(db.create_database(databases.server_url, name, template=template))


def stored(engine: sa.Engine) -> dict[str, dict[str, MonthResult]]:
    """strategy -> month -> what its current pipeline run stored (equity per session, weights)."""
    current = ("FROM backtest_runs r {join} WHERE r.superseded_by IS NULL AND r.status = 'success' "
               "AND r.summary ->> 'pipeline' = 'true'")
    eq: dict[tuple[str, str], list] = {}
    w: dict[tuple[str, str], set] = {}
    with engine.connect() as conn:
        for sid, m, day, v in conn.execute(sa.text(
                "SELECT r.strategy_id, to_char(r.window_start, 'YYYY-MM-01'), e.session_date, e.equity "
                + current.format(join="JOIN daily_equity e USING (run_id)") + " ORDER BY 1, 2, 3")):
            eq.setdefault((sid, m), []).append((pd.Timestamp(day), v))
        for sid, m, day, iid, v in conn.execute(sa.text(
                "SELECT r.strategy_id, to_char(r.window_start, 'YYYY-MM-01'), s.decision_date, s.instrument_id, "
                "s.weight " + current.format(join="JOIN signals s ON s.snapshot_id = r.signal_snapshot_id")
                + " AND s.weight <> 0")):
            w.setdefault((sid, m), set()).add(((pd.Timestamp(day), iid), v))
    out: dict[str, dict[str, MonthResult]] = {sid: {} for sid in SIDS}
    for (sid, m), rows in eq.items():
        out.setdefault(sid, {})[m] = (tuple(rows), frozenset(w.get((sid, m), ())))
    return out


def recompute(engine: sa.Engine, strategies: list[str] | None = None) -> dict[str, dict[str, MonthResult]]:
    """Every strategy (default: all of the world's) from scratch on the current data: its whole
    history in one plan, from its first month with no start state. ``bench/soak.py`` uses it too."""
    out: dict[str, dict[str, MonthResult]] = {}
    for sid in SIDS if strategies is None else strategies:
        plan = load_month_inputs(engine, sid, history_rerun(engine, sid).months)
        assert plan.start_state is None, f"{sid}: a from-scratch plan must not continue a stored run"
        result = simulate_months(plan)
        months = {}
        for m in plan.live:
            lo, hi = max(plan.windows[m][0], plan.start), plan.windows[m][1]
            equity = tuple((pd.Timestamp(d), float(v)) for d, v in result.equity.loc[lo:hi].items())
            long = plan.weights.loc[lo:hi].stack()
            months[m] = (equity, frozenset(((pd.Timestamp(d), i), float(v)) for (d, i), v in long.items() if v != 0))
        out[sid] = months
    return out


def what_differs(a: MonthResult | None, b: MonthResult | None) -> str:
    """The first difference between a stored month ``a`` and a recomputed month ``b``."""
    if a is None or b is None:
        return "not stored" if a is None else "not recomputed"
    parts = []
    ea, eb = dict(a[0]), dict(b[0])
    if ea != eb:
        if set(ea) != set(eb):
            parts.append(f"sessions {len(ea)} stored vs {len(eb)} recomputed")
        else:
            d = min(k for k in ea if ea[k] != eb[k])
            parts.append(f"equity from {d.date()}: {ea[d]!r} stored vs {eb[d]!r} recomputed")
    if a[1] != b[1]:
        wa, wb = dict(a[1]), dict(b[1])
        k = min(set(wa) ^ set(wb) | {k for k in wa if k in wb and wa[k] != wb[k]})
        parts.append(f"weight {k[0].date()} {k[1]}: {wa.get(k, 0.0)!r} stored vs {wb.get(k, 0.0)!r} recomputed")
    return "; ".join(parts)


def differing(a: dict[str, dict[str, MonthResult]], b: dict[str, dict[str, MonthResult]]) -> dict[tuple[str, str], str]:
    out = {}
    for sid in SIDS:
        for m in sorted(set(a.get(sid, {})) | set(b.get(sid, {}))):
            x, y = a.get(sid, {}).get(m), b.get(sid, {}).get(m)
            if x != y:
                out[(sid, m)] = what_differs(x, y)
    return out


# --------------------------------------------------------------------------- the cases

A = world.decision_time  # a(d), the decision time of a session
MIN, HOUR = pd.Timedelta(minutes=1), pd.Timedelta(hours=1)


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _price(iid: str, day: str, factor: float, known_at: pd.Timestamp) -> tuple[str, pd.DataFrame]:
    base = world.frames()["prices"][0]
    row = base[(base["instrument_id"] == iid) & (base["obs_date"] == day)].iloc[[0]].copy()
    for col in ("open", "high", "low", "close"):
        if col in row and row[col].notna().all():
            row[col] = row[col] * factor
    row = row.dropna(axis=1)
    return "prices", row.assign(known_at=_iso(known_at))


def _macro(series: str, obs: str, factor: float, known_at: pd.Timestamp) -> tuple[str, pd.DataFrame]:
    first = world.frames()["macro"][0]
    row = first[(first["series_id"] == series) & (first["obs_date"] == obs)].iloc[[0]]
    return "macro", row.assign(value=row["value"] * factor, known_at=_iso(known_at))


def _funding(ts: str, rate: float, known_at: pd.Timestamp) -> tuple[str, pd.DataFrame]:
    return "funding", pd.DataFrame({"instrument_id": ["PERP"], "ts": [ts], "rate": [rate], "interval_hours": [8.0],
                                    "known_at": [_iso(known_at)]})


def _dividend(iid: str, ex: str, amount: float, known_at: pd.Timestamp) -> tuple[str, pd.DataFrame]:
    return "corporate-actions", pd.DataFrame({"instrument_id": [iid], "ex_date": [ex], "action": ["dividend"],
                                              "value": [amount], "known_at": [_iso(known_at)]})


def _signal(name: str, iid: str, obs: str, value: float, known_at: pd.Timestamp) -> tuple[str, pd.DataFrame]:
    return "signals", pd.DataFrame({"signal_name": [name], "instrument_id": [iid], "obs_date": [obs],
                                    "value": [value], "known_at": [_iso(known_at)]})


def _member(universe: str, iid: str, valid_from: str, known_at: pd.Timestamp,
            valid_to: str | None = None) -> tuple[str, pd.DataFrame]:
    row = {"universe": [universe], "instrument_id": [iid], "valid_from": [valid_from], "known_at": [_iso(known_at)]}
    if valid_to is not None:
        row["valid_to"] = [valid_to]
    return "universe", pd.DataFrame(row)


def _split(iid: str, ex: str, ratio: float, known_at: pd.Timestamp) -> tuple[str, pd.DataFrame]:
    return "corporate-actions", pd.DataFrame({"instrument_id": [iid], "ex_date": [ex], "action": ["split"],
                                              "value": [ratio], "known_at": [_iso(known_at)]})


def _ad_hoc_runs(engine: sa.Engine) -> None:
    """A one-off look and a stored one-off run of o-bh over two weeks of March 2019 (before EQD
    joined EQ): neither is a pipeline month, so neither may change what the sensor believes the
    pipeline months read."""
    run_backtest(engine, "o-bh", "2019-03-01", "2019-03-29", store=False)
    run_backtest(engine, "o-bh", "2019-03-04", "2019-03-15")


@dataclass(frozen=True)
class Case:
    name: str
    rows: Callable[[], list[tuple[str, pd.DataFrame]]]
    no_change: bool = False  # nothing any strategy reads changes: nothing may be requested
    before_ingest: Callable[[sa.Engine], None] | None = None
    only: tuple[str, ...] | None = None  # when set: no other strategy may be requested
    dagster: bool = False  # execute the requests through Dagster even on the fast path
    note: str = ""


MAY31 = "2019-05-31"  # a Friday, the last XNYS session of May: the first decision a late row reaches
JUN30 = "2019-06-30"  # the last 24/7 day of June: a(JUN30) = 2019-07-01T00:00Z
NOW = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(minutes=5)

CASES = [
    Case("baseline: nothing new", lambda: [], no_change=True),
    # prices, XNYS: a revision of an old close (2019-05-15) first reaching a(May 31) - 1h / at / + 1min,
    # and a correction of May 31's own close known exactly at its close
    *[Case(f"price XNYS old date, known {w} a(May 31)", lambda d=d: [_price("EQA", "2019-05-15", 1.04, A(MAY31) + d)])
      for w, d in (("before", -HOUR), ("at", 0 * MIN), ("after", MIN))],
    Case("price XNYS correction at the close, May 31", lambda: [_price("EQA", MAY31, 0.95, A(MAY31))]),
    # early closes: 2019-11-29 and 2019-12-24 close at 18:00 UTC
    Case("price XNYS early close 2019-11-29, known at 18:00Z", lambda: [_price("EQA", "2019-11-29", 0.93,
                                                                               A("2019-11-29"))]),
    Case("price XNYS early close 2019-11-29, known 18:30Z (after it)", lambda: [
        _price("EQB", "2019-11-29", 1.06, pd.Timestamp("2019-11-29T18:30Z"))]),
    Case("price XNYS early close 2019-12-24, known at 18:00Z", lambda: [_price("EQC", "2019-12-24", 0.94,
                                                                               A("2019-12-24"))]),
    # prices, 24/7: a(June 30) is 2019-07-01T00:00Z, a UTC date in July
    *[Case(f"price 24/7 old date, known {w} a(Jun 30)", lambda d=d: [_price("PERP", "2019-06-20", 1.05, A(JUN30, "24/7") + d)])
      for w, d in (("before", -HOUR), ("at", 0 * MIN), ("after", MIN))],
    Case("price 24/7 month end: Jun 30 close known 00:00Z Jul 1", lambda: [
        _price("PERP", JUN30, 0.9, A(JUN30, "24/7")), _price("SPOT", JUN30, 0.9, A(JUN30, "24/7"))], dagster=True),
    # macro: the newest quarter on May 31 is 2019Q1 (first print 2019-04-30), revised down hard
    *[Case(f"macro revision of 2019Q1, known {w} a(May 31)", lambda d=d: [_macro("GDP", "2019-01-01", 0.97, A(MAY31) + d)])
      for w, d in (("before", -HOUR), ("at", 0 * MIN), ("after", MIN))],
    # funding: the settlement at 00:00Z July 1 belongs to the 24/7 bar of June 30
    Case("funding 16:00Z Jun 30 corrected, known at settlement (before a(Jun 30))",
         lambda: [_funding("2019-06-30T16:00:00Z", 0.003, pd.Timestamp("2019-06-30T16:00Z"))]),
    Case("funding 00:00Z Jul 1 corrected, known at settlement = a(Jun 30)",
         lambda: [_funding("2019-07-01T00:00:00Z", 0.003, pd.Timestamp("2019-07-01T00:00Z"))], dagster=True),
    Case("funding 16:00Z Jun 30 revised, known 00:01Z Jul 1 (after a(Jun 30))",
         lambda: [_funding("2019-06-30T16:00:00Z", 0.003, pd.Timestamp("2019-07-01T00:01Z"))]),
    # corporate actions: a new dividend of EQA ex May 31, announced before / at / after its close
    *[Case(f"dividend ex May 31, known {w} a(May 31)", lambda d=d: [_dividend("EQA", MAY31, 2.0, A(MAY31) + d)])
      for w, d in (("before", -HOUR), ("at", 0 * MIN), ("after", MIN))],
    Case("split of EQB on 2019-06-03 corrected (ratio 2 -> 2.5), known at 00:00Z of its ex-date",
         lambda: [_split(world.SPLIT[0], world.SPLIT[1], 2.5, pd.Timestamp(world.SPLIT[1], tz="UTC"))]),
    # external signals: Wednesday May 29's SIG_A value (the newest on May 31) revised
    *[Case(f"signal SIG_A of May 29, known {w} a(May 31)", lambda d=d: [_signal("SIG_A", "EQA", "2019-05-29", 0.9, A(MAY31) + d)])
      for w, d in (("before", -HOUR), ("at", 0 * MIN), ("after", MIN))],
    Case("signal SIG_A of Nov 27, known 18:30Z Nov 29 (after the early close)",
         lambda: [_signal("SIG_A", "EQB", "2019-11-27", 0.9, pd.Timestamp("2019-11-29T18:30Z"))]),
    # universe: EQE joins EQ from May 31; only the EQ strategies may rerun
    *[Case(f"universe EQ gains EQE from May 31, known {w} a(May 31)", lambda d=d: [_member("EQ", "EQE", MAY31, A(MAY31) + d)],
           only=tuple(EQ_SIDS)) for w, d in (("before", -HOUR), ("at", 0 * MIN), ("after", MIN))],
    # SPOT leaves CRYPTO on Dec 1 (valid_to revised), known at 00:00Z Dec 1 = a(Nov 30, 24/7): only o-carry
    Case("universe CRYPTO: SPOT leaves Dec 1, known 00:00Z Dec 1", only=("o-carry",),
         rows=lambda: [_member("CRYPTO", "SPOT", "2019-01-01", pd.Timestamp("2019-12-01T00:00Z"), "2019-12-01")]),
    # a revision known today of an old date: it reaches no decision of the history
    Case("price XNYS 2019-03-15 revised, known today", lambda: [_price("EQA", "2019-03-15", 1.1, NOW)]),
    Case("signal SIG_A 2019-03-13 revised, known today", lambda: [_signal("SIG_A", "EQA", "2019-03-13", 0.7, NOW)]),
    # ad-hoc runs of o-bh over March 2019 in between, then a correction of EQD (in EQ from Sep);
    # the control case is the same correction without them
    Case("control: EQD Nov 15 close corrected at its close, no ad-hoc run",
         lambda: [_price("EQD", "2019-11-15", 0.9, A("2019-11-15"))]),
    Case("ad-hoc runs, then EQD Nov 15 close corrected at its close",
         lambda: [_price("EQD", "2019-11-15", 0.9, A("2019-11-15"))], before_ingest=_ad_hoc_runs, dagster=True),
    # things no strategy reads
    Case("signal SIG_B (read by no strategy) revised at the close", no_change=True,
         rows=lambda: [_signal("SIG_B", "EQA", "2019-05-29", 0.9, A("2019-05-29"))]),
    Case("price of EQX (in no universe) corrected", no_change=True,
         rows=lambda: [_price("EQX", "2019-07-15", 1.2, A("2019-07-15"))]),
]


# --------------------------------------------------------------------------- the test


@dataclass
class Outcome:
    case: Case
    changed: set = field(default_factory=set)
    requested: set = field(default_factory=set)
    wasted: set = field(default_factory=set)
    missed: dict = field(default_factory=dict)
    stale: dict = field(default_factory=dict)
    wrong_strategies: set = field(default_factory=set)
    through_dagster: bool = False
    error: str = ""  # the case could not run to the end (an ingest, a tick or a requested run raised)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.missed or self.stale or self.wrong_strategies or self.error
                    or (self.case.no_change and self.requested))


@pytest.fixture(scope="module")
def materialized(databases, tmp_path_factory):
    """The world's warehouse with every strategy's whole history materialized through Dagster,
    and the Dagster instance (one ``strategy`` key per registered configuration)."""
    with pytest.MonkeyPatch.context() as mp:
        yield from _materialize(databases, tmp_path_factory, mp)


def _materialize(databases, tmp_path_factory, mp: pytest.MonkeyPatch):
    mp.setenv("DAGSTER_EVENT_BATCH_SIZE", "500")  # as `macro-pipeline dev`/`demo` set it
    import macro_pipeline.reports as reports

    mp.setattr(reports, "write_strategy_report", lambda *a, **k: Path(os.devnull))
    mp.setattr(reports, "write_comparison", lambda *a, **k: Path(os.devnull))
    engine = databases.new()
    world.load_world(engine, tmp_path_factory.mktemp("oracle_world"))
    for cfg in world.STRATEGIES:
        register_strategy(engine, cfg)
    with postgres_instance(databases) as instance:
        instance.add_dynamic_partitions("strategy", SIDS)
        job = defs.resolve_job_def("backtest_job")
        for sid in SIDS:
            rerun = history_rerun(engine, sid)
            result = job.execute_in_process(
                instance=instance, run_config=QUIET, resources=_resources(engine), raise_on_error=False,
                tags={RANGE_START_TAG: f"{rerun.first_month}|{sid}", RANGE_END_TAG: f"{rerun.last_month}|{sid}"})
            assert result.success, f"materializing {sid} failed"
        base = stored(engine)
        for sid in SIDS:  # a strategy that never holds anything here would prove nothing
            assert len(base[sid]) == 14 and any(weights for _, weights in base[sid].values()), (
                f"{sid}: {len(base[sid])} months stored, holding something in "
                f"{sum(bool(w) for _, w in base[sid].values())}: the world must make every strategy trade")
        template = engine.url.database
        db.dispose_engines(template)
        yield template, base, instance


def _run_case(databases, instance, template: str, base: dict, case: Case, folder: Path) -> Outcome:
    t0 = time.monotonic()
    out = Outcome(case, through_dagster=case.dagster or os.environ.get("MACRO_PIPELINE_ORACLE_DAGSTER") == "all")
    engine = _copy(databases, template)
    try:
        _oracle(instance, engine, base, case, folder, out)
    except Exception as exc:  # reported with every other case, not raised: one run shows them all
        out.error = f"{type(exc).__name__}: {exc}"[:600]
    finally:
        db.dispose_engines(engine.url.database)
        db.drop_database(databases.server_url, engine.url.database)
        databases.created.remove(engine.url.database)
    out.seconds = time.monotonic() - t0
    return out


def _oracle(instance, engine: sa.Engine, base: dict, case: Case, folder: Path, out: Outcome) -> None:
    """Steps 1-4 of the module docstring on ``engine`` (a fresh copy), filling ``out``."""
    cursor = _tick(instance, engine, None).cursor  # the first tick only sets the cursor
    if case.before_ingest is not None:
        case.before_ingest(engine)
    for n, (kind, frame) in enumerate(case.rows()):
        world.ingest_csv(engine, kind, frame, folder, f"row-{n}")
    result = _tick(instance, engine, cursor)
    errors = []
    for request in result.run_requests:
        target = _requested_months(request)
        if target is not None:
            out.requested |= {(target[0], m) for m in target[1]}
        try:
            _execute(instance, engine, request, out.through_dagster)
        except Exception as exc:  # the diff below still shows what the failed run left stale
            errors.append(f"{request.run_key}: {type(exc).__name__}: {exc}"[:300])
    out.error = "; ".join(errors)
    truth = recompute(engine)
    changed = differing(base, truth)
    out.changed = set(changed)
    out.missed = {k: v for k, v in changed.items() if k not in out.requested}
    out.wasted = {k for k in out.requested if k not in changed}
    out.stale = differing(stored(engine), truth)
    if case.only is not None:
        out.wrong_strategies = {sid for sid, _ in out.requested if sid not in case.only}


def _span(keys: set) -> str:
    """{(strategy, month)} -> 'o-bh 2019-05..2020-02, o-ema 2019-06' (compact, per strategy)."""
    per: dict[str, list[str]] = {}
    for sid, m in sorted(keys):
        per.setdefault(sid, []).append(m[:7])
    return ", ".join(f"{sid} {ms[0]}" + (f"..{ms[-1]}({len(ms)})" if len(ms) > 1 else "") for sid, ms in per.items())


def _report(outcomes: list[Outcome]) -> str:
    w = max(len(o.case.name) for o in outcomes)
    lines = [f"{'case':<{w}}  changed  requested  wasted  missed  stale  s", "-" * (w + 48)]
    for o in outcomes:
        lines.append(f"{o.case.name:<{w}}  {len(o.changed):>7}  {len(o.requested):>9}  {len(o.wasted):>6}  "
                     f"{len(o.missed):>6}  {len(o.stale):>5}  {o.seconds:4.1f}" + ("  FAIL" if o.failed else ""))
    tot = [sum(len(getattr(o, k)) for o in outcomes) for k in ("changed", "requested", "wasted", "missed", "stale")]
    lines.append("-" * (w + 48))
    lines.append(f"totals: cases {len(outcomes)}, changed months {tot[0]}, requested {tot[1]}, wasted {tot[2]}, "
                 f"missed {tot[3]}, stale after the reruns {tot[4]}, failing cases {sum(o.failed for o in outcomes)}")
    details = []
    for o in outcomes:
        if not o.failed:
            continue
        details.append(f"\n[{o.case.name}]")
        if o.error:
            details.append(f"  ERROR (the case did not finish): {o.error}")
        details.append(f"  changed:   {_span(o.changed) or '-'}")
        details.append(f"  requested: {_span(o.requested) or '-'}")
        if o.case.name.startswith("baseline") and o.changed:
            details.append("  the recomputation differs from the history Dagster materialized, with no new data: the "
                           "oracle itself is noisy (chain not bit-for-bit invariant); every other row is suspect")
        if o.case.no_change and o.requested:
            details.append("  (c) nothing any strategy reads changed, yet runs were requested")
        if o.wrong_strategies:
            details.append(f"  requested strategies outside the case's universe: {sorted(o.wrong_strategies)}")
        first: dict[str, tuple[str, str]] = {}
        for (sid, m), why in sorted(o.missed.items()):
            first.setdefault(sid, (m, why))
        for sid, (m, why) in first.items():
            n = sum(1 for s, _ in o.missed if s == sid)
            details.append(f"  (a) MISSED {sid}: first diverging month {m[:7]} NOT requested ({n} month(s) missed): {why}")
        first = {}
        for (sid, m), why in sorted(o.stale.items()):
            first.setdefault(sid, (m, why))
        for sid, (m, why) in first.items():
            req = "requested" if (sid, m) in o.requested else "not requested"
            details.append(f"  (b) STALE after the reruns {sid}: first {m[:7]} ({req}): {why}")
    return "\n".join(lines + details)


@pytest.mark.slow
def test_sensor_reruns_every_month_a_revision_changes(materialized, databases, tmp_path, capsys):
    template, base, instance = materialized
    outcomes = []
    for n, case in enumerate(CASES):
        o = _run_case(databases, instance, template, base, case, tmp_path / f"case{n}")
        outcomes.append(o)
        print(f"[{n + 1}/{len(CASES)}] {case.name}: changed {len(o.changed)}, requested {len(o.requested)}, "
              f"missed {len(o.missed)}, stale {len(o.stale)} ({o.seconds:.1f} s{', Dagster' if o.through_dagster else ''})",
              flush=True)
    report = _report(outcomes)
    with capsys.disabled():  # the counts show in every run's output, not only on failure
        print("\n" + report)
    assert not any(o.failed for o in outcomes), "the point-in-time sensor disagrees with the oracle:\n" + report
