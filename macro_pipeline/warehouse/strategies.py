"""Strategy configurations as stored (``strategies``), and how far a strategy's inputs reach.

A configuration is immutable: the same id with other parameters is refused, changing parameters
makes a new configuration (a new id). The service turns the stored parameters back into a
``StrategyConfig`` (``backtest.configs.load_strategy``); this module speaks in plain values, so
the warehouse never imports the strategies above it.

The spans (``universe_origin``, ``universe_instruments``, ``last_price_date``, ``input_spans``)
are what ``backtest.months.data_limit`` needs to end a strategy's history where its data ends.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

if TYPE_CHECKING:
    from macro_pipeline.strategies.config import StrategyConfig

# --------------------------------------------------------------------------- configurations


def register_strategy(engine: sa.Engine, cfg: StrategyConfig) -> str:
    """Store a configuration; 'added' or 'exists'. Same id with other parameters is refused:
    changing parameters makes a new configuration (a new id), never an edit of an old one."""
    with engine.begin() as conn:
        row = conn.execute(sa.text("SELECT params_hash FROM strategies WHERE strategy_id = :s FOR UPDATE"),
                           {"s": cfg.strategy_id}).first()
        if row is not None:
            if row[0] != cfg.params_hash:
                raise ValueError(
                    f"strategy {cfg.strategy_id!r} is already registered with other parameters "
                    f"(params hash {row[0][:12]} != {cfg.params_hash[:12]}); give the new configuration a new id")
            return "exists"
        conn.execute(sa.text(
            "INSERT INTO strategies (strategy_id, kind, params, params_hash, universe) "
            "VALUES (:s, :k, CAST(:p AS jsonb), :h, :u)"),
            {"s": cfg.strategy_id, "k": cfg.kind, "p": json.dumps(cfg.to_dict(), sort_keys=True),
             "h": cfg.params_hash, "u": cfg.universe})
    return "added"


def strategy_params(engine: sa.Engine, strategy_id: str) -> dict | None:
    """The stored configuration of ``strategy_id`` (``StrategyConfig.to_dict``); None when unknown."""
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT params FROM strategies WHERE strategy_id = :s"), {"s": strategy_id}).first()
    return None if row is None else dict(row[0])


def list_strategies(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(sa.text(
            "SELECT strategy_id, kind, universe, params_hash, params, created_at FROM strategies ORDER BY strategy_id"
        )).mappings().all())


def registered(engine: sa.Engine) -> dict[str, str]:
    """strategy_id -> universe, for every registered configuration."""
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT strategy_id, universe FROM strategies ORDER BY strategy_id")).all())


def params_hashes(engine: sa.Engine) -> dict[str, str]:
    """strategy_id -> params hash, for every registered configuration."""
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT strategy_id, params_hash FROM strategies")).all())


# --------------------------------------------------------------------------- what the inputs cover


def universe_origin(engine: sa.Engine, universe: str) -> date | None:
    """The first ``valid_from`` of ``universe`` (any vintage stored now); None while empty."""
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT min(valid_from) FROM universe_membership WHERE universe = :u"),
                            {"u": universe}).scalar()


def universe_instruments(engine: sa.Engine, universe: str) -> list[str]:
    """Every instrument ever a member of ``universe`` (any vintage stored now), sorted."""
    with engine.connect() as conn:
        return sorted(conn.execute(sa.text("SELECT DISTINCT instrument_id FROM universe_membership "
                                           "WHERE universe = :u"), {"u": universe}).scalars())


def last_price_date(engine: sa.Engine, instruments: list[str], system_as_of: datetime | None = None) -> date | None:
    """The last price date of ``instruments`` as recorded by ``system_as_of`` (UTC; None: now)."""
    sql = "SELECT max(obs_date) FROM prices WHERE instrument_id = ANY(:ids)"
    params: dict[str, Any] = {"ids": instruments}
    if system_as_of is not None:
        sql += " AND recorded_at <= :sys"
        params["sys"] = system_as_of
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


_INPUT_SPAN_SQL = {
    "macro": "SELECT min(obs_date), max(obs_date), max(known_at) FROM macro_observations WHERE series_id = :e",
    "funding": "SELECT min(ts)::date, max(ts)::date, max(ts) FROM funding_rates WHERE instrument_id = :e",
}


def input_spans(engine: sa.Engine, inputs: list[tuple[str, str]],
                system_as_of: datetime | None = None) -> list[tuple[date | None, date | None, datetime | None]]:
    """For each (source, entity) of ``inputs`` (source ``macro`` or ``funding``), as recorded by
    ``system_as_of`` (UTC; None: now): the first and last observation date and the last time a
    value became known."""
    out = []
    with engine.connect() as conn:
        for source, entity in inputs:
            sql, params = _INPUT_SPAN_SQL[source], {"e": entity}
            if system_as_of is not None:
                sql += " AND recorded_at <= :sys"
                params["sys"] = system_as_of
            out.append(tuple(conn.execute(sa.text(sql), params).one()))
    return out
