"""`BacktestConfig`: the frozen, JSON-able description of one backtest run.

Units: money in the portfolio's currency, rates as decimals per year (``risk_free=0.03`` is
3 % a year), costs in basis points of traded notional (1 bp = 1e-4).
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
import pandas as pd

RebalanceFrequency = Literal["daily", "weekly", "monthly"]
REBALANCE_FREQUENCIES: tuple[str, ...] = ("daily", "weekly", "monthly")


class OptimisticExecutionWarning(UserWarning):
    """Raised when a config executes weights on the bar that decided them (execution_lag=0)."""


def _to_date(value: Any, field: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime | pd.Timestamp):
        if value.tzinfo is not None:
            raise ValueError(f"BacktestConfig.{field}: expected a date, got tz-aware {value!r}")
        if value.time() != dt.time(0):
            raise ValueError(f"BacktestConfig.{field}: {value!r} has a time of day; give a date")
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64 | str):
        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"BacktestConfig.{field}: cannot parse {value!r} as a date") from exc
        if ts.tzinfo is not None:
            raise ValueError(f"BacktestConfig.{field}: expected a date, got tz-aware {value!r}")
        if ts != ts.normalize():
            raise ValueError(f"BacktestConfig.{field}: {value!r} has a time of day; give a date")
        return ts.date()
    raise ValueError(f"BacktestConfig.{field}: expected a date (str/date/Timestamp), got {value!r}")


def _finite(value: Any, field: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"BacktestConfig.{field}: expected a number, got {value!r}") from exc
    if not math.isfinite(out):
        raise ValueError(f"BacktestConfig.{field}: must be finite, got {value!r}")
    return out


def _normalise_risk_free(value: Any) -> float | tuple[tuple[str, float], ...]:
    """A constant annual rate, or a step series as ((iso_date, annual_rate), ...) sorted by date."""
    if isinstance(value, pd.Series | Mapping):
        items = value.items()
        pairs: dict[str, float] = {}
        for key, rate in items:
            day = _to_date(key, "risk_free")
            pairs[day.isoformat()] = _finite(rate, "risk_free")
        if not pairs:
            raise ValueError("BacktestConfig.risk_free: the rate series is empty")
        return tuple(sorted(pairs.items()))
    if isinstance(value, tuple | list):
        return _normalise_risk_free(dict((k, v) for k, v in value))
    return _finite(value, "risk_free")


@dataclass(frozen=True)
class BacktestConfig:
    """Everything that decides a backtest's numbers, apart from the data.

    Fields
    - ``start``/``end``: first and last session simulated (inclusive dates; str, date or
      Timestamp accepted, stored as ``datetime.date``; ``None`` = open on that side).
    - ``initial_capital``: cash at the start of a fresh run (ignored when continuing from a
      ``start_state``, whose cash and positions are used instead).
    - ``rebalance_frequency``: which rows of the weights frame are acted upon. ``daily``: every
      row; ``weekly``/``monthly``: only rows dated on the last session of a week (Mon-Sun) /
      calendar month of the exchange calendar ``calendar`` (holidays included). A strategy can
      therefore hand in daily target weights and choose the rebalance rhythm here.
    - ``transaction_cost_bps`` + ``slippage_bps``: cost of a trade = abs(trade notional) x
      (transaction_cost_bps + slippage_bps) / 1e4, paid from cash at the fill.
    - ``max_leverage``: if sum(abs(w)) of a decision row exceeds it, the row is scaled down
      proportionally to exactly ``max_leverage`` (logged in ``BacktestResult.skipped``).
    - ``execution_lag``: weights decided at the close of session t execute at the close of
      session t + execution_lag. ``0`` (same-bar execution) is optimistic: it is accepted only
      when given explicitly, sets ``is_optimistic`` and warns.
    - ``clean``: zero all trading costs (a frictionless reference run).
    - ``calendar``: exchange_calendars name ("XNYS", "XLON", ..., "24/7" for crypto).
    - ``risk_free``: annual rate earned (or paid, if negative) by the cash balance; a constant
      or a step series {date: annual rate}. Accrual per session = rate / P, using the rate
      in force at the start of the bar (as of the previous session).
    - ``borrow_cost_bps``: annual fee on short notional; accrues per session as
      short notional at the previous close x borrow_cost_bps / 1e4 / P.
      ``P`` = `calendar.periods_per_year` (252 for exchange calendars, 365 for 24/7).
    """

    start: dt.date | None
    end: dt.date | None
    initial_capital: float = 1_000_000.0
    rebalance_frequency: RebalanceFrequency = "daily"
    transaction_cost_bps: float = 5.0
    slippage_bps: float = 2.0
    max_leverage: float = 1.0
    execution_lag: int = 1
    clean: bool = False
    calendar: str = "XNYS"
    risk_free: float | tuple[tuple[str, float], ...] = 0.0
    borrow_cost_bps: float = 0.0

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "start", _to_date(self.start, "start"))
        put(self, "end", _to_date(self.end, "end"))
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"BacktestConfig.start: {self.start} is after end {self.end}")
        capital = _finite(self.initial_capital, "initial_capital")
        if capital <= 0:
            raise ValueError(f"BacktestConfig.initial_capital: must be > 0, got {capital}")
        put(self, "initial_capital", capital)
        if self.rebalance_frequency not in REBALANCE_FREQUENCIES:
            raise ValueError(
                f"BacktestConfig.rebalance_frequency: {self.rebalance_frequency!r} is not one of "
                f"{REBALANCE_FREQUENCIES}"
            )
        for name in ("transaction_cost_bps", "slippage_bps", "borrow_cost_bps"):
            value = _finite(getattr(self, name), name)
            if value < 0:
                raise ValueError(f"BacktestConfig.{name}: must be >= 0, got {value}")
            put(self, name, value)
        leverage = _finite(self.max_leverage, "max_leverage")
        if leverage <= 0:
            raise ValueError(f"BacktestConfig.max_leverage: must be > 0, got {leverage}")
        put(self, "max_leverage", leverage)
        lag = self.execution_lag
        if isinstance(lag, bool) or not isinstance(lag, int | np.integer) or lag < 0:
            raise ValueError(f"BacktestConfig.execution_lag: must be an int >= 0, got {lag!r}")
        put(self, "execution_lag", int(lag))
        if not isinstance(self.clean, bool | np.bool_):
            raise ValueError(f"BacktestConfig.clean: must be a bool, got {self.clean!r}")
        put(self, "clean", bool(self.clean))
        from macro_pipeline.engine.calendar import is_known_calendar

        if not isinstance(self.calendar, str) or not is_known_calendar(self.calendar):
            raise ValueError(
                f"BacktestConfig.calendar: unknown exchange calendar {self.calendar!r}"
            )
        put(self, "risk_free", _normalise_risk_free(self.risk_free))
        if self.execution_lag == 0:
            warnings.warn(
                "BacktestConfig.execution_lag=0 executes weights on the bar that decided them "
                "(same-close execution); results are optimistic",
                OptimisticExecutionWarning,
                stacklevel=3,
            )

    @property
    def is_optimistic(self) -> bool:
        """True when weights fill at the close that decided them (execution_lag == 0)."""
        return self.execution_lag == 0

    @property
    def cost_rate(self) -> float:
        """Cost per unit of traded notional: (transaction_cost_bps + slippage_bps) / 1e4, 0 if clean."""
        if self.clean:
            return 0.0
        return (self.transaction_cost_bps + self.slippage_bps) / 1e4

    def risk_free_annual(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """Annual risk-free rate in force on each of ``dates`` (step series: last value on or before).

        Raises ValueError naming the first date that precedes the series' first point.
        """
        if isinstance(self.risk_free, float):
            return np.full(len(dates), self.risk_free)
        keys = pd.DatetimeIndex([k for k, _ in self.risk_free]).as_unit("ns")
        values = np.array([v for _, v in self.risk_free])
        pos = keys.searchsorted(pd.DatetimeIndex(dates).as_unit("ns"), side="right") - 1
        if len(pos) and pos.min() < 0:
            first = pd.DatetimeIndex(dates)[pos < 0][0].date()
            raise ValueError(
                f"BacktestConfig.risk_free: no rate in force on {first} (series starts {keys[0].date()})"
            )
        return values[pos]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (dates as ISO strings); ``from_dict(to_dict())`` == self."""
        out = asdict(self)
        out["start"] = None if self.start is None else self.start.isoformat()
        out["end"] = None if self.end is None else self.end.isoformat()
        if not isinstance(self.risk_free, float):
            out["risk_free"] = dict(self.risk_free)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BacktestConfig:
        """Inverse of ``to_dict``; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"BacktestConfig.from_dict: unknown field(s) {unknown}")
        return cls(**dict(data))
