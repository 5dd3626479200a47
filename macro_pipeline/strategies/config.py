"""Strategy configurations: an id, a kind, its parameters and where/when it trades; the config
files that hold them.

Config file format (TOML), one ``[[strategy]]`` table per configuration::

    [[strategy]]
    id = "ema-us-eq20"          # ^[a-z0-9][a-z0-9_-]{0,62}$
    kind = "ema_crossover"      # a key of KINDS
    universe = "US_EQ20"        # optional: the kind's default
    rebalance = "daily"         # daily | weekly | monthly (optional: the kind's default)
    calendar = "XNYS"           # XNYS | 24/7 (optional: the kind's default)
    params = { fast = 20, slow = 100 }   # optional: every omitted parameter takes its default

Every configuration is validated as it is read (kind, each parameter's name, type and range,
the id); the first error raises ``StrategyError`` naming the file, the entry and the problem.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from macro_pipeline.strategies.base import CALENDARS, REBALANCE, Strategy
from macro_pipeline.strategies.params import SAFE_NAME, StrategyError
from macro_pipeline.strategies.registry import strategy_class

STRATEGY_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
BUILTIN_CONFIG = "strategies.toml"  # inside the macro_pipeline package


def validate_strategy_id(strategy_id: object) -> str:
    if not isinstance(strategy_id, str) or not STRATEGY_ID.fullmatch(strategy_id):
        raise StrategyError(
            f"invalid strategy id {strategy_id!r}: an id is 1-63 characters of lowercase letters, "
            f"digits, '_' and '-', starting with a letter or digit ({STRATEGY_ID.pattern})"
        )
    return strategy_id


@dataclass(frozen=True)
class StrategyConfig:
    """One strategy configuration: an id, a kind, its parameters and where/when it trades.

    On construction the id is checked, the kind looked up, every parameter validated and the
    defaults filled in (``params`` holds them all); ``universe``, ``rebalance`` and ``calendar``
    default to the kind's. ``params_hash`` identifies the configuration: sha256 of the canonical
    JSON of (kind, params with defaults filled, universe, rebalance, calendar); the id is not in
    it. A changed parameter is a new hash, so it needs a new id.
    """

    strategy_id: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    universe: str | None = None
    rebalance: str | None = None
    calendar: str | None = None

    def __post_init__(self) -> None:
        validate_strategy_id(self.strategy_id)
        cls = strategy_class(self.kind)
        if not isinstance(self.params, Mapping):
            raise StrategyError(
                f"params of {self.strategy_id!r} must be a mapping, got {type(self.params).__name__}"
            )
        normalized = cls.Params.from_mapping(self.params).to_dict()
        object.__setattr__(self, "params", MappingProxyType(normalized))
        for name, default, allowed in (
            ("universe", cls.default_universe, None),
            ("rebalance", cls.default_rebalance, REBALANCE),
            ("calendar", cls.default_calendar, CALENDARS),
        ):
            value = getattr(self, name)
            value = default if value is None else value
            if allowed is not None and value not in allowed:
                raise StrategyError(
                    f"{name} of {self.strategy_id!r} must be one of {', '.join(allowed)}, got {value!r}"
                )
            if allowed is None and (not isinstance(value, str) or not SAFE_NAME.fullmatch(value)):
                raise StrategyError(
                    f"universe of {self.strategy_id!r} must match {SAFE_NAME.pattern}, got {value!r}"
                )
            object.__setattr__(self, name, value)
        if self.calendar not in cls.calendars:
            raise StrategyError(
                f"kind {self.kind!r} runs on calendar(s) {', '.join(cls.calendars)}, "
                f"not {self.calendar!r} ({self.strategy_id!r})"
            )

    def canonical(self) -> str:
        body = {
            "kind": self.kind,
            "params": dict(self.params),
            "universe": self.universe,
            "rebalance": self.rebalance,
            "calendar": self.calendar,
        }
        return json.dumps(
            body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )

    @property
    def params_hash(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()

    def __hash__(self) -> int:
        return hash((self.strategy_id, self.params_hash))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StrategyConfig):
            return NotImplemented
        return (self.strategy_id, self.canonical()) == (other.strategy_id, other.canonical())

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy_id": self.strategy_id,
            "kind": self.kind,
            "params": dict(self.params),
            "universe": self.universe,
            "rebalance": self.rebalance,
            "calendar": self.calendar,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StrategyConfig:
        """Inverse of ``to_dict``; ``id`` is accepted for ``strategy_id``. A ``params_hash`` key,
        if present, must match (a stored configuration is never silently reinterpreted)."""
        data = dict(data)
        if "id" in data and "strategy_id" not in data:
            data["strategy_id"] = data.pop("id")
        expected_hash = data.pop("params_hash", None)
        allowed = {"strategy_id", "kind", "params", "universe", "rebalance", "calendar"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise StrategyError(
                f"unknown configuration key(s) {unknown}; allowed: {sorted(allowed)}"
            )
        missing = [k for k in ("strategy_id", "kind") if k not in data]
        if missing:
            raise StrategyError(f"configuration is missing {missing}")
        cfg = cls(**data)
        if expected_hash is not None and expected_hash != cfg.params_hash:
            raise StrategyError(
                f"params_hash of {cfg.strategy_id!r} does not match its parameters "
                f"({expected_hash[:12]} != {cfg.params_hash[:12]})"
            )
        return cfg


def build(config: StrategyConfig) -> Strategy:
    """The strategy a configuration describes (kind and every parameter validated)."""
    if not isinstance(config, StrategyConfig):
        raise StrategyError(f"build needs a StrategyConfig, got {type(config).__name__}")
    return strategy_class(config.kind).from_config(config)


def configs_from_mapping(data: Mapping[str, Any], source: str = "<config>") -> list[StrategyConfig]:
    entries = data.get("strategy", [])
    extra = sorted(set(data) - {"strategy"})
    if extra:
        raise StrategyError(f"{source}: unknown top-level key(s) {extra}; use [[strategy]] tables")
    if not isinstance(entries, list):
        raise StrategyError(f"{source}: 'strategy' must be an array of tables ([[strategy]])")
    configs: list[StrategyConfig] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries, start=1):
        label = (
            f"{source}: strategy #{n} ({entry.get('id', '?')!r})"
            if isinstance(entry, dict)
            else f"{source}: #{n}"
        )
        try:
            cfg = StrategyConfig.from_dict(entry)
        except StrategyError as exc:
            raise StrategyError(f"{label}: {exc}") from None
        if cfg.strategy_id in seen:
            raise StrategyError(f"{label}: id {cfg.strategy_id!r} appears twice")
        seen.add(cfg.strategy_id)
        configs.append(cfg)
    return configs


def load_config_file(path: str | Path) -> list[StrategyConfig]:
    """Every configuration in a TOML file, validated, in file order."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StrategyError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise StrategyError(f"{path}: not valid TOML: {exc}") from None
    return configs_from_mapping(data, str(path))


def load_builtin_configs() -> list[StrategyConfig]:
    """The configurations shipped in the package (``macro_pipeline/strategies.toml``)."""
    text = resources.files("macro_pipeline").joinpath(BUILTIN_CONFIG).read_text(encoding="utf-8")
    return configs_from_mapping(tomllib.loads(text), f"macro_pipeline/{BUILTIN_CONFIG}")
