"""Which monthly partitions need (re)materializing, and why: the logic behind the point-in-time
sensor, the strategy-registration sensor and the nightly schedule. No Dagster here: the
definitions in ``macro_pipeline.defs.automation`` only turn these plans into run requests.

Months are keys of the ``month`` partition dimension ("YYYY-MM-01"); "today" and the newest month
are taken in UTC.

How new data maps to reruns (DESIGN section 4):
- The sensor reads the rows recorded in (cursor, watermark]. A row can first change the decision
  of day ``max(valid date, known_at date)`` (known_at's UTC date: never later than the first
  decision that can see it, so the rerun can only start early, never late).
- A row affects a strategy when its instrument or series is in the strategy's footprint (every
  id its latest signal snapshot read: traded instruments, macro series, hedge legs, external
  signals), or when it is a universe row of the strategy's universe.
- Each affected strategy gets one rerun from the month of its earliest affected day (never
  before its first month of data, never after its first month without a stored run) to the
  newest month, in order, in one run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import pandas as pd
import sqlalchemy as sa

from macro_pipeline.warehouse.pit import _TABLES

# table -> (entity column, SQL giving the first decision day a row can affect)
_FIRST_DAY = {
    table: (entity, f"greatest(({valid} AT TIME ZONE 'UTC')::date, (known_at AT TIME ZONE 'UTC')::date)" if ts_valid
            else f"greatest({valid}, (known_at AT TIME ZONE 'UTC')::date)")
    for table, entity, valid, _values, ts_valid in _TABLES.values()
}
_KEY = re.compile(r"^(?:universe:(?P<universe>.+)|[a-z_]+(?::[^\[]*)?\[(?P<ids>[^\]]*)\])$")


def month_of(d) -> str:
    return pd.Timestamp(d).strftime("%Y-%m-01")


def today_utc() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()


def months_between(first: str, last: str) -> list[str]:
    return [m.strftime("%Y-%m-01") for m in pd.date_range(first, last, freq="MS")]


@dataclass(frozen=True)
class Rerun:
    """Materialize ``first_month`` .. ``last_month`` (inclusive) of one strategy, in one run."""

    strategy_id: str
    first_month: str
    last_month: str
    reason: str

    @property
    def months(self) -> list[str]:
        return months_between(self.first_month, self.last_month)


@dataclass(frozen=True)
class Change:
    """New rows of one table for one entity (instrument, series or universe) in a batch."""

    table: str
    entity: str
    first_day: date
    rows: int
    universe: str | None = None


# --------------------------------------------------------------------------- strategies


def registered(engine: sa.Engine) -> dict[str, str]:
    """strategy_id -> universe, for every registered configuration."""
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT strategy_id, universe FROM strategies ORDER BY strategy_id")).all())


def origin(engine: sa.Engine, strategy_id: str) -> pd.Timestamp | None:
    """The first day of the strategy's universe (any vintage stored now); None while empty."""
    from macro_pipeline.backtests import load_strategy

    cfg = load_strategy(engine, strategy_id)
    with engine.connect() as conn:
        start = conn.execute(sa.text("SELECT min(valid_from) FROM universe_membership WHERE universe = :u"),
                             {"u": cfg.universe}).scalar()
    return None if start is None else pd.Timestamp(start)


def first_month(engine: sa.Engine, strategy_id: str) -> str | None:
    """The month of the strategy's first decision (None while its universe is empty)."""
    start = origin(engine, strategy_id)
    return None if start is None else month_of(start)


def stored_months(engine: sa.Engine, strategy_id: str) -> dict[str, date]:
    """Months with a current, successful pipeline run -> the last session that run covers."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT window_end FROM backtest_runs WHERE strategy_id = :s AND superseded_by IS NULL "
            "AND status = 'success' AND summary ->> 'pipeline' = 'true'"), {"s": strategy_id}).scalars().all()
    return {month_of(d): d for d in rows}


def first_missing_month(engine: sa.Engine, strategy_id: str, today: pd.Timestamp | None = None) -> str | None:
    """The first month of the strategy's history without a stored run (None: all present)."""
    from macro_pipeline.backtests import data_limit, load_strategy, month_window

    today = today_utc() if today is None else pd.Timestamp(today)
    start = origin(engine, strategy_id)
    if start is None:
        return None
    cfg = load_strategy(engine, strategy_id)
    limit = data_limit(engine, cfg, today=today)  # months after the data's end are never missing
    have = stored_months(engine, strategy_id)
    for m in months_between(month_of(start), month_of(limit)):
        window = month_window(cfg, m, limit)
        if window is not None and window[1] >= start and have.get(m) != window[1].date():
            return m  # never stored, or stored before the month was complete
    return None


def newest_month(engine: sa.Engine, strategy_id: str, today: pd.Timestamp | None = None) -> str:
    """The strategy's newest month: the current month, or the month its data ends in when that
    is earlier (later months have nothing to compute; they stay unmaterialized)."""
    from macro_pipeline.backtests import data_limit, load_strategy

    today = today_utc() if today is None else pd.Timestamp(today)
    return month_of(data_limit(engine, load_strategy(engine, strategy_id), today=today))


def history_rerun(engine: sa.Engine, strategy_id: str, today: pd.Timestamp | None = None) -> Rerun | None:
    """The whole history of a strategy (a newly registered configuration)."""
    start = first_month(engine, strategy_id)
    if start is None:
        return None
    return Rerun(strategy_id, start, max(start, newest_month(engine, strategy_id, today)),
                 "full history of a new configuration")


def nightly_reruns(engine: sa.Engine, strategy_ids: list[str], today: pd.Timestamp | None = None) -> list[Rerun]:
    """For each strategy: from its first missing or incomplete month (see ``first_missing_month``:
    never stored, or stored with a window end before the month's last session in the data) to its
    newest month, since each month continues from the previous one's end state. A strategy whose
    history is complete gets nothing: a night with no new session and no gap requests no run.

    A new session in the data makes the newest month incomplete (its stored window ends before
    it), so that month is rerun; revisions of history are the point-in-time sensor's job."""
    today = today_utc() if today is None else pd.Timestamp(today)
    out = []
    for sid in strategy_ids:
        if first_month(engine, sid) is None:
            continue
        missing = first_missing_month(engine, sid, today)
        if missing is None:
            continue
        newest = newest_month(engine, sid, today)
        first = min(missing, newest)
        out.append(Rerun(sid, first, newest, "newest month incomplete" if first == newest
                         else f"missing or incomplete months from {first[:7]}"))
    return out


# --------------------------------------------------------------------------- new data -> reruns


def footprint(engine: sa.Engine, strategy_id: str, universe: str) -> set[str]:
    """Every id a strategy's results depend on: what its latest signal snapshot read (the traded
    instruments' prices, macro series, funding, hedge legs, external signals; actions and
    funding of the traded instruments come with them), or, before any snapshot, every id its
    universe ever held. Universe rows are matched by universe name, separately."""
    with engine.connect() as conn:
        marks = conn.execute(sa.text("SELECT input_watermarks FROM signal_snapshots WHERE strategy_id = :s "
                                     "ORDER BY created_at DESC LIMIT 1"), {"s": strategy_id}).scalar()
        if not marks:
            return set(conn.execute(sa.text("SELECT DISTINCT instrument_id FROM universe_membership WHERE universe = :u"),
                                    {"u": universe}).scalars())
    ids: set[str] = set()
    for key in marks:
        m = _KEY.match(key)
        if m and m.group("ids"):
            ids.update(i for i in m.group("ids").split(",") if i)
    return ids


def changes_between(engine: sa.Engine, after: pd.Timestamp, upto: pd.Timestamp) -> list[Change]:
    """Rows recorded in (after, upto], grouped per table and entity, with the first decision day
    each group can affect. Uses the BRIN indexes on ``recorded_at``."""
    out: list[Change] = []
    params = {"after": after.to_pydatetime(), "upto": upto.to_pydatetime()}
    with engine.connect() as conn:
        for table, (entity, first_day) in _FIRST_DAY.items():
            for ent, day, n in conn.execute(sa.text(
                    f"SELECT {entity}, min({first_day}), count(*) FROM {table} "
                    "WHERE recorded_at > :after AND recorded_at <= :upto GROUP BY 1"), params):
                out.append(Change(table, ent, day, int(n)))
        for uni, ent, day, n in conn.execute(sa.text(
                "SELECT universe, instrument_id, min(greatest(valid_from, (known_at AT TIME ZONE 'UTC')::date)), count(*) "
                "FROM universe_membership WHERE recorded_at > :after AND recorded_at <= :upto GROUP BY 1, 2"), params):
            out.append(Change("universe_membership", ent, day, int(n), universe=uni))
    return out


def pit_reruns(engine: sa.Engine, changes: list[Change], today: pd.Timestamp | None = None) -> list[Rerun]:
    """The reruns a batch of changes calls for: per affected strategy, from the month of the
    earliest day any change can affect to the newest month. Strategies with no stored run yet
    are left to registration and the nightly schedule (their history is not built yet)."""
    if not changes:
        return []
    today = today_utc() if today is None else pd.Timestamp(today)
    out = []
    for sid, universe in sorted(registered(engine).items()):
        if not stored_months(engine, sid):
            continue
        newest = newest_month(engine, sid, today)
        ids = footprint(engine, sid, universe)
        hits = [c for c in changes if (c.universe == universe if c.table == "universe_membership" else c.entity in ids)]
        if not hits:
            continue
        first_hit = min(hits, key=lambda c: c.first_day)
        start = max(month_of(first_hit.first_day), first_month(engine, sid) or newest)
        missing = first_missing_month(engine, sid, today)
        if missing is not None:
            start = min(start, missing)
        start = min(start, newest)
        what = sorted({f"{c.table}:{c.entity}" for c in hits})
        out.append(Rerun(sid, start, newest, f"{sum(c.rows for c in hits)} new row(s) in {', '.join(what[:6])}"
                                             f"{' ...' if len(what) > 6 else ''}; first affected day {first_hit.first_day}"))
    return out
