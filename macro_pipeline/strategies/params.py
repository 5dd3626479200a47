"""Strategy parameters: one pydantic strict model per kind (types, bounds, meaning, JSON schema).

A kind declares its parameters as fields of a ``StrategyParams`` subclass::

    class EmaCrossoverParams(StrategyParams):
        kind = "ema_crossover"
        fast: int = param(20, "fast EMA span in rows (sessions)", lo=1, hi=1000)
        mode: Literal["simple", "composite"] = param("simple", "...")   # a choice of strings
        instruments: Ids = param((), "trade only these members of the universe (empty: all)")

pydantic (strict mode, frozen, no extra keys) checks types and bounds; ``check`` holds a kind's
cross-field rules. Every refusal is a ``StrategyError`` whose message names the parameter, the
kind, the rule and the value (``parameter 'fast' of ema_crossover: out of range: allowed
1 <= fast <= 1000, got 0``), as the CLI and config files show it.

Types are strict: an int parameter refuses 1.5, "10" and True; a float parameter takes ints
(stored as float) but not strings, NaN or infinities; a bool takes only True/False. NumPy scalars
count as the Python value they hold. Strings from the command line go through ``parse_value``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

import numpy as np
from annotated_types import Ge, Gt, Le, Lt
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")  # universes, signal names (as ingestion)
SAFE_INSTRUMENT = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")  # instrument ids (as ingestion)


class StrategyError(ValueError):
    """A strategy configuration or parameter is invalid; the message names what and why."""


def _ids(value: Any) -> Any:
    """A list of instrument ids: a comma-separated string (the CLI) or a list/tuple of ids."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise PydanticCustomError("ids", "must be a list of instrument ids")
    bad = [v for v in value if not SAFE_INSTRUMENT.fullmatch(v)]
    if bad:
        raise PydanticCustomError(
            "ids", "instrument ids must match {pattern}: {bad}",
            {"pattern": SAFE_INSTRUMENT.pattern, "bad": bad},
        )  # fmt: skip
    if len(set(value)) != len(value):
        raise PydanticCustomError("ids", "lists an instrument twice")
    return tuple(value)


# a list of instrument ids; from the CLI a comma-separated string
Ids = Annotated[tuple[str, ...], BeforeValidator(_ids)]


def param(
    default: Any,
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Any:
    """A parameter field: its default, what it means and its bounds (inclusive unless open)."""
    return Field(
        default,
        description=doc,
        ge=None if lo_open else lo,
        gt=lo if lo_open else None,
        le=None if hi_open else hi,
        lt=hi if hi_open else None,
    )


@dataclass(frozen=True)
class Spec:
    """One parameter as its pydantic field declares it, in the words error messages use."""

    doc: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple | None = None

    def allowed(self, name: str) -> str:
        if self.choices is not None:
            return f"one of {', '.join(map(repr, self.choices))}"
        left = "" if self.lo is None else f"{self.lo} {'<' if self.lo_open else '<='} "
        right = "" if self.hi is None else f" {'<' if self.hi_open else '<='} {self.hi}"
        return f"{left}{name}{right}" if (left or right) else "any value"


def _plain(value: Any) -> Any:
    """NumPy scalars as the Python value they hold; -0.0 as 0.0 (one canonical zero for the hash)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value == 0.0:
        value = 0.0
    return value


_STRICT = ConfigDict(strict=True, allow_inf_nan=False)


class StrategyParams(BaseModel):
    """Base of each kind's ``Params``: a frozen, strict pydantic model, validated on construction
    (types and bounds by pydantic, then the kind's cross-field rules in ``check``)."""

    model_config = ConfigDict(
        strict=True, frozen=True, extra="forbid", allow_inf_nan=False, validate_default=False
    )
    kind: ClassVar[str] = "?"

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise self._refusal(exc, data) from None

    @model_validator(mode="before")
    @classmethod
    def _plain_values(cls, data: Any) -> Any:
        return {k: _plain(v) for k, v in data.items()} if isinstance(data, Mapping) else data

    @model_validator(mode="after")
    def _cross_field(self) -> StrategyParams:
        self.check()
        return self

    # ---- introspection
    @classmethod
    def fields(cls) -> dict[str, tuple[Any, Spec]]:
        """name -> (type, Spec), in declaration order; the type of a choice is ``str``."""
        return _fields(cls)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return cls().to_dict()

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """One entry per parameter: name, type, default, allowed values, meaning."""
        return [
            {
                "name": name,
                "type": "ids" if typ == Ids else typ.__name__,
                "default": _jsonable(cls.model_fields[name].default),
                "allowed": spec.allowed(name),
                "doc": spec.doc,
            }
            for name, (typ, spec) in cls.fields().items()
        ]

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The kind's parameters as a JSON schema (types, bounds, defaults, descriptions)."""
        return cls.model_json_schema()

    # ---- construction
    @classmethod
    def from_mapping(cls, params: Mapping[str, Any] | None) -> StrategyParams:
        params = dict(params or {})
        known = cls.fields()
        unknown = sorted(k for k in params if k not in known)
        if unknown:
            raise StrategyError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} for kind {cls.kind!r}; "
                f"its parameters are {', '.join(known)}"
            )
        return cls(**params)

    def to_dict(self) -> dict[str, Any]:
        return {name: _jsonable(getattr(self, name)) for name in self.fields()}

    # ---- validation
    @classmethod
    def check_value(cls, name: str, value: Any) -> Any:
        """One parameter's value, type-checked and checked against its bounds or choices."""
        try:
            return _adapter(cls, name).validate_python(_plain(value))
        except ValidationError as exc:
            raise cls._refusal(exc, {name: value}, name) from None

    @classmethod
    def _refusal(
        cls, exc: ValidationError, data: Mapping[str, Any], field: str | None = None
    ) -> StrategyError:
        """pydantic's first error, in this project's words (``field``: the one validated alone)."""
        err = exc.errors(include_url=False)[0]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, StrategyError):  # a cross-field rule of ``check``
            return cause
        name = field or (str(err["loc"][0]) if err["loc"] else "")
        known = cls.fields()
        if err["type"] == "extra_forbidden" or name not in known:
            unknown = sorted(k for k in data if k not in known)
            return StrategyError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} for kind {cls.kind!r}; "
                f"its parameters are {', '.join(known)}"
            )
        typ, spec = known[name]
        value = data.get(name, err.get("input"))
        if err["type"] == "ids":
            why = err["msg"]
        elif err["type"] in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            why = f"out of range: allowed {spec.allowed(name)}"
        elif err["type"] == "finite_number":
            why = "must be finite"
        elif spec.choices is not None and isinstance(value, str):
            why = f"must be {spec.allowed(name)}"
        else:
            why = {
                bool: "must be a boolean (true or false)",
                int: f"must be an integer ({spec.allowed(name)})",
                float: f"must be a number ({spec.allowed(name)})",
            }.get(typ, "must be a string")
        if isinstance(value, tuple) and typ == Ids:
            value = list(value)
        return StrategyError(f"parameter {name!r} of {cls.kind}: {why}, got {value!r}")

    def validate(self) -> None:
        """Check every value against its type and range, then the kind's cross-field rules."""
        for name in self.fields():
            self.check_value(name, getattr(self, name))
        self.check()

    def check(self) -> None:
        """Cross-field rules of a kind (e.g. fast < slow); raise ``StrategyError``."""


@cache
def _fields(cls: type[StrategyParams]) -> dict[str, tuple[Any, Spec]]:
    out: dict[str, tuple[Any, Spec]] = {}
    for name, info in cls.model_fields.items():
        typ, choices = info.annotation, None
        if typ == tuple[str, ...]:  # pydantic keeps Ids' validator in the metadata
            typ = Ids
        elif get_origin(typ) is Literal:
            choices, typ = get_args(typ), str
        elif typ != Ids and typ not in (bool, int, float, str):
            raise TypeError(f"unsupported parameter type {typ!r} for {name}")  # a bug in a Params class
        spec: dict[str, Any] = {}
        for bound in info.metadata:
            if isinstance(bound, Ge | Gt):
                spec.update(lo=bound.ge if isinstance(bound, Ge) else bound.gt, lo_open=isinstance(bound, Gt))
            elif isinstance(bound, Le | Lt):
                spec.update(hi=bound.le if isinstance(bound, Le) else bound.lt, hi_open=isinstance(bound, Lt))
        out[name] = (typ, Spec(info.description or "", choices=choices, **spec))
    return out


@cache
def _adapter(cls: type[StrategyParams], name: str) -> TypeAdapter:
    info = cls.model_fields[name]
    typ = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    return TypeAdapter(typ, config=_STRICT)


def parse_value(params_cls: type[StrategyParams], name: str, text: str) -> Any:
    """A command-line string -> the typed value of parameter ``name`` (type checked here, range
    checked when the parameters are built)."""
    fields = params_cls.fields()
    if name not in fields:
        raise StrategyError(
            f"unknown parameter {name!r} for kind {params_cls.kind!r}; "
            f"its parameters are {', '.join(fields)}"
        )
    typ, spec = fields[name]
    raw = text.strip()
    try:
        if typ is bool:
            low = raw.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if not re.fullmatch(r"[+-]?\d+", raw):
                raise ValueError
            return int(raw)
        if typ is float:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        what = {bool: "a boolean (true or false)", int: "an integer", float: "a finite number"}[typ]
        raise StrategyError(
            f"parameter {name!r} of {params_cls.kind}: must be {what} "
            f"({spec.allowed(name)}), got {text!r}"
        ) from None
    return raw  # str and Ids (comma-separated, split when validated)


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v
