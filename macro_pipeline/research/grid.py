"""Parameter grids of a sweep: parsing and validation, before anything runs. Pure, no I/O.

A grid is an ordered mapping parameter -> values. From the command line each ``--grid`` is
``name=v1,v2,...`` (a list) or ``name=lo..hi:step`` (an inclusive range: lo, lo + step, ...,
up to hi; ints for an int parameter, floats rounded to 12 significant digits so 0.1 steps do not
drift); from ``sweeps.toml`` a TOML array or the same range string. The configurations are the
Cartesian product in the order the names were given (the last name varies fastest), each with
the kind's defaults for the parameters not in the grid, plus any fixed ``params``.

Refused, naming the offending values (``GridError``, a ``StrategyError``): an unknown kind or
parameter, a parameter given twice, a value of the wrong type or out of its range, an empty
list, an empty range (lo > hi), a step that is not positive, a duplicate value, and every
combination the kind refuses (its cross-field rules, e.g. ``fast < slow``), listed up to 10 with
a count.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from macro_pipeline.strategies.params import StrategyError, parse_value
from macro_pipeline.strategies.registry import strategy_class

RANGE = re.compile(r"^\s*(?P<lo>[^.:\s][^:]*?)\s*\.\.\s*(?P<hi>[^:]+?)\s*:\s*(?P<step>.+?)\s*$")
MAX_CONFIGS = 100_000


class GridError(StrategyError):
    """An invalid grid; the message names every offending value."""


def parse_grid_item(kind: str, text: str) -> tuple[str, list[Any]]:
    """``"fast=5,10"`` or ``"fast=5..50:5"`` -> ``("fast", [5, 10, ...])``, typed and range-checked."""
    if not isinstance(text, str) or "=" not in text:
        raise GridError(f"--grid {text!r} must look like name=v1,v2 or name=lo..hi:step")
    name, _, raw = text.partition("=")
    return name.strip(), grid_values(kind, name.strip(), raw)


def grid_values(kind: str, name: str, raw: str | Sequence[Any]) -> list[Any]:
    """The values of one grid parameter, typed and checked against the kind's ``Spec``."""
    params_cls = strategy_class(kind).Params
    fields = params_cls.fields()
    if name not in fields:
        raise GridError(
            f"unknown parameter {name!r} for kind {kind!r}; its parameters are {', '.join(fields)}"
        )
    typ, _spec = fields[name]
    bad: list[str] = []
    if isinstance(raw, str):
        m = RANGE.match(raw) if ".." in raw else None
        if m:
            try:
                values = _range(params_cls, name, typ, m["lo"], m["hi"], m["step"])
            except GridError:
                raise
            except StrategyError as exc:
                raise GridError(f"grid {name!r}: {exc}") from None
        else:
            values = []
            for v in (v for v in raw.split(",") if v.strip()):
                try:
                    values.append(parse_value(params_cls, name, v))
                except StrategyError as exc:
                    bad.append(str(exc))
    elif isinstance(raw, Sequence):
        values = list(raw)
    else:
        raise GridError(f"grid {name!r}: values must be a list or a range string, got {raw!r}")
    if not values and not bad:
        raise GridError(f"grid {name!r}: no values given ({raw!r})")
    checked = []
    for v in values:
        try:
            checked.append(params_cls.check_value(name, v))
        except StrategyError as exc:
            bad.append(str(exc))
    if bad:
        raise GridError(f"grid {name!r}: " + "; ".join(bad))
    dupes = sorted({repr(v) for v in checked if checked.count(v) > 1})
    if dupes:
        raise GridError(f"grid {name!r}: value(s) given twice: {', '.join(dupes)}")
    return checked


def _range(params_cls, name: str, typ: type, lo_s: str, hi_s: str, step_s: str) -> list[Any]:
    if typ not in (int, float):
        raise GridError(f"grid {name!r}: a range lo..hi:step needs a numeric parameter, not {typ.__name__}")
    lo, hi, step = (parse_value(params_cls, name, s) for s in (lo_s, hi_s, step_s))
    if typ is int and not all(isinstance(x, int) for x in (lo, hi, step)):
        raise GridError(f"grid {name!r}: an int parameter needs an int range, got {lo_s}..{hi_s}:{step_s}")
    if not step > 0:
        raise GridError(f"grid {name!r}: the step must be > 0, got {step_s}")
    if lo > hi:
        raise GridError(f"grid {name!r}: empty range {lo_s}..{hi_s} (lo > hi)")
    if typ is int:
        return list(range(lo, hi + 1, step))
    d_lo, d_hi, d_step = Decimal(lo_s.strip()), Decimal(hi_s.strip()), Decimal(step_s.strip())
    count = int((d_hi - d_lo) / d_step) + 1
    if count > MAX_CONFIGS:
        raise GridError(f"grid {name!r}: {count} values in {lo_s}..{hi_s}:{step_s}, more than {MAX_CONFIGS}")
    return [float(d_lo + k * d_step) for k in range(count)]


def expand(kind: str, grid: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any] | None = None
           ) -> list[dict[str, Any]]:  # fmt: skip
    """Every configuration's full parameters (defaults filled), in grid order. Refuses the whole
    grid if the kind refuses any combination, naming up to 10 of them and the count."""
    cls = strategy_class(kind)
    fixed = dict(fixed or {})
    both = sorted(set(fixed) & set(grid))
    if both:
        raise GridError(f"parameter(s) {both} are both fixed and in the grid")
    if not grid:
        raise GridError("the grid is empty: give at least one --grid name=values")
    names = list(grid)
    total = 1
    for n in names:
        total *= len(grid[n])
    if total > MAX_CONFIGS:
        raise GridError(f"the grid has {total} configurations, more than {MAX_CONFIGS}")
    out: list[dict[str, Any]] = []
    refused: list[str] = []
    for combo in itertools.product(*(grid[n] for n in names)):
        params = {**fixed, **dict(zip(names, combo, strict=True))}
        try:
            out.append(cls.Params.from_mapping(params).to_dict())
        except StrategyError as exc:
            refused.append(f"{_label(dict(zip(names, combo, strict=True)))} ({exc})")
    if refused:
        shown = "; ".join(refused[:10])
        more = f" ... ({len(refused)} in all)" if len(refused) > 10 else f" ({len(refused)} in all)"
        raise GridError(f"kind {kind!r} refuses {len(refused)} of {total} combination(s): {shown}{more}")
    return out


def _label(params: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items())


def config_label(params: Mapping[str, Any], grid_names: Sequence[str]) -> str:
    """``fast=10,slow=100``: a configuration named by its grid parameters only."""
    return _label({n: params[n] for n in grid_names})
