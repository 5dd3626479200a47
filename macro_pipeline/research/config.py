"""Declared sweeps: ``sweeps.toml`` (the package ships one, ``macro_pipeline/sweeps.toml``).

One ``[[sweep]]`` table per sweep::

    [[sweep]]
    name = "ema-us-eq20-grid"        # ^[a-z0-9][a-z0-9_-]{0,62}$, unique in the file
    kind = "ema_crossover"
    universe = "US_EQ20"             # optional: the kind's default (also rebalance, calendar)
    rebalance = "monthly"
    start = "2000-01-01"
    end = "2022-12-31"
    metric = "sharpe"                # optional (default sharpe): what picks the best configuration
    blocks = 16                      # optional (default 16): CSCV blocks of the PBO
    walk_forward = "train=36M,test=12M"   # optional; append ",anchored" for an anchored window
    clean = false                    # optional: costs zeroed
    grid = { fast = [10, 20, 40], slow = "100..250:50" }   # lists or lo..hi:step ranges
    params = { vol_window = 60 }     # optional: fixed parameters

Every entry is validated as the file is read (the same rules as ``--grid``), the first error
naming the file, the entry and the offending values.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from macro_pipeline.research.grid import GridError
from macro_pipeline.research.sweep import SweepSpec
from macro_pipeline.strategies.config import STRATEGY_ID
from macro_pipeline.strategies.params import StrategyError

BUILTIN = "sweeps.toml"
SWEEPS_FILE_ENV = "MACRO_PIPELINE_SWEEPS_FILE"  # the declared sweeps (default: the package's file)
KEYS = {"name", "kind", "universe", "rebalance", "calendar", "start", "end", "metric", "blocks",
        "walk_forward", "clean", "grid", "params"}  # fmt: skip


def spec_from_entry(entry: dict[str, Any]) -> SweepSpec:
    unknown = sorted(set(entry) - KEYS)
    if unknown:
        raise GridError(f"unknown key(s) {unknown}; allowed: {sorted(KEYS)}")
    missing = [k for k in ("name", "kind", "start", "end", "grid") if k not in entry]
    if missing:
        raise GridError(f"missing key(s) {missing}")
    if not isinstance(entry["name"], str) or not STRATEGY_ID.fullmatch(entry["name"]):
        raise GridError(f"name {entry['name']!r} must match {STRATEGY_ID.pattern}")
    return SweepSpec.build(
        entry["kind"], dict(entry["grid"]), entry["start"], entry["end"], fixed=entry.get("params"),
        universe=entry.get("universe"), rebalance=entry.get("rebalance"), calendar=entry.get("calendar"),
        clean=bool(entry.get("clean", False)), metric=entry.get("metric", "sharpe"),
        n_blocks=entry.get("blocks", 16), walk_forward=entry.get("walk_forward"), name=entry["name"],
    )  # fmt: skip


def specs_from_text(text: str, source: str) -> list[SweepSpec]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"{source}: not valid TOML: {exc}") from None
    extra = sorted(set(data) - {"sweep"})
    if extra or not isinstance(data.get("sweep", []), list):
        raise GridError(f"{source}: use [[sweep]] tables (unknown top-level keys {extra})")
    out: list[SweepSpec] = []
    for n, entry in enumerate(data.get("sweep", []), start=1):
        label = f"{source}: sweep #{n} ({entry.get('name', '?')!r})"
        try:
            spec = spec_from_entry(entry)
        except StrategyError as exc:
            raise GridError(f"{label}: {exc}") from None
        if any(s.name == spec.name for s in out):
            raise GridError(f"{label}: name {spec.name!r} appears twice")
        out.append(spec)
    return out


def declared_sweeps_file() -> str | None:
    """``$MACRO_PIPELINE_SWEEPS_FILE``, or None for the package's ``sweeps.toml``."""
    import os

    return os.environ.get(SWEEPS_FILE_ENV) or None


def load_sweeps_file(path: str | Path | None = None) -> list[SweepSpec]:
    """Every sweep of a file (default: ``declared_sweeps_file()``), validated, in file order."""
    path = path if path is not None else declared_sweeps_file()
    if path is None:
        text = resources.files("macro_pipeline").joinpath(BUILTIN).read_text(encoding="utf-8")
        return specs_from_text(text, BUILTIN)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such sweeps file")
    return specs_from_text(path.read_text(encoding="utf-8"), str(path))


def find_sweep(name: str, path: str | Path | None = None) -> SweepSpec:
    specs = load_sweeps_file(path)
    for spec in specs:
        if spec.name == name:
            return spec
    raise GridError(f"no sweep named {name!r} in {path or declared_sweeps_file() or BUILTIN}; names: {', '.join(s.name or '' for s in specs)}")
