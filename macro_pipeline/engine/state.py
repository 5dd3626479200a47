"""`EndState`: everything needed to continue a portfolio in a later call.

Simulating [a, c] in one call equals simulating [a, b] and then (b, c] with
``start_state=first.end_state`` (to 1e-12 relative; in practice bit for bit), also after a
JSON round trip through ``to_dict``/``from_dict`` (floats are written with ``repr``, which
round-trips exactly). Instrument ids are stored as ``str(column label)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class OpenLots:
    """Open round trips, column-wise, at most one per instrument (vectorbt's exit-trades
    convention): the position opened from flat on ``entry_date``; ``quantity`` units now
    held (>0 long, <0 short, split-adjusted); ``entry_notional`` and ``entry_costs`` still
    attributed to them (their average entry price is entry_notional / abs(quantity))."""

    instrument: tuple[str, ...] = ()
    entry_date: tuple[dt.date, ...] = ()
    quantity: tuple[float, ...] = ()
    entry_notional: tuple[float, ...] = ()
    entry_costs: tuple[float, ...] = ()

    def __len__(self) -> int:
        return len(self.instrument)

    def to_dict(self) -> dict[str, list]:
        return {
            "instrument": list(self.instrument),
            "entry_date": [d.isoformat() for d in self.entry_date],
            "quantity": list(self.quantity),
            "entry_notional": list(self.entry_notional),
            "entry_costs": list(self.entry_costs),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OpenLots:
        return cls(
            instrument=tuple(str(x) for x in d.get("instrument", ())),
            entry_date=tuple(_date(x) for x in d.get("entry_date", ())),
            quantity=tuple(float(x) for x in d.get("quantity", ())),
            entry_notional=tuple(float(x) for x in d.get("entry_notional", ())),
            entry_costs=tuple(float(x) for x in d.get("entry_costs", ())),
        )


@dataclass(frozen=True)
class PendingOrder:
    """A decision made before the end of a call that executes after it (execution lag).

    It executes at the close of the session with index ``sessions_ahead`` (0-based) among the
    sessions that follow ``EndState.date``. ``weights`` are already leverage-capped.
    """

    decision_date: dt.date
    sessions_ahead: int
    weights: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_date": self.decision_date.isoformat(),
            "sessions_ahead": self.sessions_ahead,
            "weights": dict(self.weights),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PendingOrder:
        return cls(
            decision_date=_date(d["decision_date"]),
            sessions_ahead=int(d["sessions_ahead"]),
            weights={str(k): float(v) for k, v in d["weights"].items()},
        )


@dataclass(frozen=True)
class EndState:
    """Portfolio state at the close of ``date``.

    - ``close_ns``: UTC close instant of ``date`` (ns since epoch): the next bar starts there,
      so funding settlements after it belong to the continuation.
    - ``cash``, ``equity``, ``high_water_mark`` (for drawdown) in money.
    - ``quantities``: nonzero positions in units (shares, contracts), by instrument id.
    - ``last_prices``: last known price per instrument (marks for missing prices).
    - ``pending_orders``: decisions not yet executed; ``open_lots``: open round trips.
    - ``execution_lag``/``calendar``: checked against the continuing call's config.
    """

    date: dt.date
    close_ns: int
    cash: float
    equity: float
    high_water_mark: float
    quantities: Mapping[str, float] = field(default_factory=dict)
    last_prices: Mapping[str, float] = field(default_factory=dict)
    pending_orders: tuple[PendingOrder, ...] = ()
    open_lots: OpenLots = field(default_factory=OpenLots)
    execution_lag: int = 1
    calendar: str = "XNYS"
    engine_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; ``EndState.from_dict(json.loads(json.dumps(s.to_dict()))) == s``."""
        return {
            "date": self.date.isoformat(),
            "close_ns": int(self.close_ns),
            "cash": self.cash,
            "equity": self.equity,
            "high_water_mark": self.high_water_mark,
            "quantities": dict(self.quantities),
            "last_prices": dict(self.last_prices),
            "pending_orders": [p.to_dict() for p in self.pending_orders],
            "open_lots": self.open_lots.to_dict(),
            "execution_lag": self.execution_lag,
            "calendar": self.calendar,
            "engine_version": self.engine_version,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EndState:
        return cls(
            date=_date(d["date"]),
            close_ns=int(d["close_ns"]),
            cash=float(d["cash"]),
            equity=float(d["equity"]),
            high_water_mark=float(d["high_water_mark"]),
            quantities={str(k): float(v) for k, v in d.get("quantities", {}).items()},
            last_prices={str(k): float(v) for k, v in d.get("last_prices", {}).items()},
            pending_orders=tuple(PendingOrder.from_dict(p) for p in d.get("pending_orders", ())),
            open_lots=OpenLots.from_dict(d.get("open_lots", {})),
            execution_lag=int(d.get("execution_lag", 1)),
            calendar=str(d.get("calendar", "XNYS")),
            engine_version=str(d.get("engine_version", "")),
        )
