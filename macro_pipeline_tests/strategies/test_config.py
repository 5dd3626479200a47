"""Configurations: ids, kinds, typed parameters, params hash, config files (no database)."""

from __future__ import annotations

import importlib
import json

import pytest

from macro_pipeline.strategies import (
    CODE_VERSION,
    KINDS,
    StrategyConfig,
    StrategyError,
    build,
    load_builtin_configs,
    load_config_file,
    parse_param,
    parse_params,
)

BUILTIN_IDS = [
    "bh-us-eq20",
    "ema-us-eq20",
    "rsi-us-eq20",
    "atr-index",
    "tsmom-cross-asset",
    "macro-regime",
    "carry-simple",
    "carry-composite",
    "external-demo",
]


def test_builtin_config_file_ships_every_kind_and_validates():
    configs = load_builtin_configs()
    assert [c.strategy_id for c in configs] == BUILTIN_IDS
    assert {c.kind for c in configs} == set(KINDS)
    for c in configs:
        s = build(c)
        assert s.kind == c.kind and s.universe == c.universe and s.calendar == c.calendar
        assert c.universe in ("US_EQ20", "CROSS_ASSET", "CRYPTO", "ALL")
    carry = {c.strategy_id: c for c in configs if c.kind == "funding_carry"}
    assert {c.params["mode"] for c in carry.values()} == {"simple", "composite"}
    assert all(c.calendar == "24/7" for c in carry.values())
    assert isinstance(CODE_VERSION, str) and CODE_VERSION


def test_every_kind_documents_its_parameters():
    for kind, cls in KINDS.items():
        assert cls.__module__.endswith(kind)  # one module per kind
        doc = importlib.import_module(cls.__module__).__doc__
        for word in ("Inputs", "Timing", "Parameters", "Outputs"):
            assert word in doc, (kind, word)
        for p in cls.Params.describe():
            assert p["doc"] and p["allowed"], (kind, p)
            assert p["name"] in doc, (
                kind,
                p["name"],
            )  # each parameter is named in the module docstring


# --------------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    "bad",
    [
        "x'; DROP TABLE strategies;--",
        "Bad Id",
        "",
        "UPPER",
        "-leading-dash",
        "a" * 64,
        "semi;colon",
        'quo"te',
        "back\\slash",
        "tab\tid",
        "ümlaut",
        None,
        42,
    ],
)
def test_unsafe_ids_are_refused_naming_the_id(bad):
    with pytest.raises(ValueError, match="invalid strategy id") as err:
        StrategyConfig(bad, "buy_and_hold")
    assert repr(bad) in str(err.value)


@pytest.mark.parametrize("good", ["a", "bh-us-eq20", "carry_simple_2", "0x", "a" * 63])
def test_safe_ids_are_accepted(good):
    assert StrategyConfig(good, "buy_and_hold").strategy_id == good


# --------------------------------------------------------------------------- kinds and parameters


def test_unknown_kind_names_the_kind_and_lists_the_kinds():
    with pytest.raises(
        ValueError, match=r"unknown strategy kind 'momentum'.*buy_and_hold.*external"
    ):
        StrategyConfig("x", "momentum")


def test_unknown_parameter_names_it_and_lists_the_kinds_parameters():
    with pytest.raises(
        ValueError, match=r"unknown parameter\(s\) 'fats' for kind 'ema_crossover'.*fast, slow"
    ):
        StrategyConfig("x", "ema_crossover", {"fats": 3})


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        (
            "ema_crossover",
            {"fast": 1.5},
            r"'fast' of ema_crossover: must be an integer \(1 <= fast <= 1000\), got 1.5",
        ),
        ("ema_crossover", {"fast": "10"}, r"'fast' .* must be an integer"),
        ("ema_crossover", {"fast": True}, r"'fast' .* must be an integer"),
        (
            "ema_crossover",
            {"gross": "abc"},
            r"'gross' of ema_crossover: must be a number .*got 'abc'",
        ),
        ("ema_crossover", {"gross": float("nan")}, r"'gross' .* must be finite"),
        (
            "ema_crossover",
            {"gross": 1.5},
            r"'gross' of ema_crossover: out of range: allowed 0.0 < gross <= 1.0, got 1.5",
        ),
        ("ema_crossover", {"gross": 0}, r"'gross' .* out of range"),
        ("ema_crossover", {"fast": 0}, r"'fast' .* out of range: allowed 1 <= fast <= 1000, got 0"),
        ("ema_crossover", {"allow_short": "yes"}, r"'allow_short' .* must be a boolean"),
        (
            "ema_crossover",
            {"fast": 50, "slow": 20},
            r"'fast' of ema_crossover must be < slow \(20\), got 50",
        ),
        ("ema_crossover", {"instruments": ["SPX", "SPX"]}, r"'instruments' .* twice"),
        ("ema_crossover", {"instruments": ["SP X"]}, r"'instruments' .* must match"),
        (
            "rsi_mean_revert",
            {"entry": 60.0},
            r"'entry' of rsi_mean_revert must be < exit \(55.0\), got 60.0",
        ),
        ("rsi_mean_revert", {"exit": 100}, r"'exit' .* out of range: allowed 0.0 < exit < 100.0"),
        (
            "rsi_mean_revert",
            {"window": 1},
            r"'window' .* out of range: allowed 2 <= window <= 500, got 1",
        ),
        ("atr_breakout", {"atr_mult": -1.0}, r"'atr_mult' .* out of range"),
        ("atr_breakout", {"channel": 2.0}, r"'channel' .* must be an integer"),
        (
            "ts_momentum",
            {"target_vol": 0.0},
            r"'target_vol' .* out of range: allowed 0.0 < target_vol <= 2.0",
        ),
        ("ts_momentum", {"lookback": 99999}, r"'lookback' .* out of range"),
        (
            "macro_regime",
            {"inflation_measure": "core"},
            r"'inflation_measure' .* must be one of 'yoy_index', 'rate_percent'",
        ),
        ("macro_regime", {"equity": "SPX", "bond": "SPX"}, r"three different instruments"),
        (
            "macro_regime",
            {"growth_series": "GDP'; --"},
            r"'growth_series' of macro_regime must match",
        ),
        ("funding_carry", {"mode": "fancy"}, r"'mode' .* must be one of 'simple', 'composite'"),
        (
            "funding_carry",
            {"entry_threshold": 0.0001, "exit_threshold": 0.0002},
            r"'exit_threshold' of funding_carry must be <= entry_threshold \(0.0001\), got 0.0002",
        ),
        (
            "funding_carry",
            {"entry_score": 0.5, "exit_score": 1.0},
            r"'exit_score' .* must be <= entry_score",
        ),
        ("funding_carry", {"fast": 30, "slow": 30}, r"'fast' of funding_carry must be < slow"),
        ("external", {"signal_name": "a b"}, r"'signal_name' of external must match"),
    ],
)
def test_bad_parameter_types_ranges_and_combinations(kind, params, message):
    with pytest.raises(ValueError, match=message):
        StrategyConfig("x", kind, params)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rebalance", "hourly", "rebalance of 'x' must be one of daily, weekly, monthly"),
        ("calendar", "XLON", "calendar of 'x' must be one of XNYS, 24/7"),
        ("universe", "US EQ; DROP", "universe of 'x' must match"),
    ],
)
def test_bad_universe_rebalance_calendar(field, value, message):
    with pytest.raises(ValueError, match=message):
        StrategyConfig("x", "buy_and_hold", **{field: value})


def test_defaults_are_filled_and_floats_normalised():
    c = StrategyConfig("x", "rsi_mean_revert", {"entry": 25})
    assert c.params == {"window": 14, "entry": 25.0, "exit": 55.0, "gross": 1.0, "instruments": []}
    assert isinstance(c.params["entry"], float)
    assert (c.universe, c.rebalance, c.calendar) == ("US_EQ20", "daily", "XNYS")
    assert StrategyConfig("y", "funding_carry").calendar == "24/7"
    assert StrategyConfig("z", "buy_and_hold").rebalance == "monthly"
    with pytest.raises(TypeError):
        c.params["entry"] = 1.0  # frozen


# --------------------------------------------------------------------------- params hash


def test_params_hash_is_stable_across_key_order_defaults_and_number_spelling():
    a = StrategyConfig("a", "ema_crossover", {"fast": 10, "slow": 50, "gross": 1})
    b = StrategyConfig(
        "b",
        "ema_crossover",
        {
            "gross": 1.0,
            "slow": 50,
            "fast": 10,
            "allow_short": False,
            "vol_window": 60,
            "instruments": [],
        },
    )
    assert a.params_hash == b.params_hash and len(a.params_hash) == 64
    assert (
        StrategyConfig.from_dict(json.loads(json.dumps(a.to_dict()))).params_hash == a.params_hash
    )


def _other_value(name, typ, value, spec):
    if typ is bool:
        return not value
    if spec.choices:
        return next(c for c in spec.choices if c != value)
    if typ is int:
        return value + 1 if spec.hi is None or value + 1 <= spec.hi else value - 1
    if typ is float:
        return value * 0.5 if value else 0.001
    if typ is str:
        return {
            "equity": "NASDAQ",
            "bond": "UST_10Y",
            "commodity": "GOLD",
            "instrument": "ETH-PERP",
        }.get(name, value + "2")
    return ("SPX",)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_params_hash_changes_when_any_parameter_changes(kind):
    base = StrategyConfig("x", kind)
    seen = {base.params_hash}
    for name, (typ, spec) in KINDS[kind].Params.fields().items():
        value = _other_value(name, typ, base.params[name], spec)
        params = {name: value}
        if kind == "ema_crossover" and name == "fast":
            params = {"fast": 21}
        if kind == "rsi_mean_revert" and name in ("entry", "exit"):
            params = {name: base.params[name] + 1.0}
        if kind == "funding_carry" and name == "entry_threshold":
            params = {"entry_threshold": 0.0001}
        if kind == "funding_carry" and name == "exit_score":
            params = {"exit_score": -1.0}
        if kind == "funding_carry" and name == "exit_threshold":
            params = {"exit_threshold": -0.0001}
        changed = StrategyConfig("x", kind, params)
        assert changed.params_hash not in seen, (kind, name)
        seen.add(changed.params_hash)
    for field, value in (("universe", "ALL"), ("rebalance", "weekly")):
        assert StrategyConfig("x", kind, **{field: value}).params_hash not in seen
    assert (
        StrategyConfig("other-id", kind).params_hash == base.params_hash
    )  # the id is not in the hash


def test_to_dict_from_dict_round_trip_and_a_stale_hash_is_refused():
    c = load_builtin_configs()[3]
    d = c.to_dict()
    assert StrategyConfig.from_dict(d) == c
    assert StrategyConfig.from_dict({**d, "params_hash": c.params_hash}) == c
    with pytest.raises(ValueError, match="params_hash of 'atr-index' does not match"):
        StrategyConfig.from_dict({**d, "params_hash": "0" * 64})
    with pytest.raises(ValueError, match="unknown configuration key"):
        StrategyConfig.from_dict({**d, "colour": "red"})


# --------------------------------------------------------------------------- CLI parameters


def test_parse_param_types_values_for_the_cli():
    assert parse_param("ema_crossover", "fast=10") == ("fast", 10)
    assert parse_param("ema_crossover", "gross= 0.5") == ("gross", 0.5)
    assert parse_param("ema_crossover", "allow_short=true") == ("allow_short", True)
    assert parse_param("atr_breakout", "instruments=SPX,NASDAQ") == (
        "instruments",
        ("SPX", "NASDAQ"),
    )
    assert parse_param("funding_carry", "mode=composite") == ("mode", "composite")
    assert parse_params("ema_crossover", ["fast=5", "slow=50"]) == {"fast": 5, "slow": 50}
    cfg = StrategyConfig(
        "cli", "ema_crossover", parse_params("ema_crossover", ["fast=5", "slow=50"])
    )
    assert cfg.params["fast"] == 5


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("ema_crossover", "fast=1.5", r"'fast' of ema_crossover: must be an integer .*got '1.5'"),
        (
            "ema_crossover",
            "gross=abc",
            r"'gross' of ema_crossover: must be a finite number .*got 'abc'",
        ),
        ("ema_crossover", "gross=nan", r"must be a finite number"),
        ("ema_crossover", "gross=2", r"out of range: allowed 0.0 < gross <= 1.0"),
        ("ema_crossover", "allow_short=maybe", r"must be a boolean"),
        ("ema_crossover", "fats=3", r"unknown parameter 'fats'"),
        ("ema_crossover", "fast", r"must look like name=value"),
        ("nope", "fast=3", r"unknown strategy kind 'nope'"),
        ("funding_carry", "mode=fancy", r"must be one of 'simple', 'composite'"),
    ],
)
def test_parse_param_errors_name_the_problem(kind, text, message):
    with pytest.raises(ValueError, match=message):
        parse_param(kind, text)
    with pytest.raises(StrategyError):
        parse_param(kind, text)


def test_parse_params_refuses_a_parameter_given_twice():
    with pytest.raises(ValueError, match="'fast' given twice"):
        parse_params("ema_crossover", ["fast=5", "fast=6"])


# --------------------------------------------------------------------------- config files


def test_load_config_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[[strategy]]\nid = "mine"\nkind = "ts_momentum"\nparams = { lookback = 126 }\n'
    )
    (cfg,) = load_config_file(path)
    assert (
        cfg.strategy_id == "mine"
        and cfg.params["lookback"] == 126
        and cfg.universe == "CROSS_ASSET"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[strategy]]\nid = "a"\nkind = "external"\n[[strategy]]\nid = "a"\nkind = "external"\n',
            "appears twice",
        ),
        (
            '[[strategy]]\nid = "a"\nkind = "nope"\n',
            r"strategy #1 \('a'\): unknown strategy kind 'nope'",
        ),
        (
            '[[strategy]]\nid = "a"\nkind = "ema_crossover"\nparams = { fast = 1.5 }\n',
            "'fast' of ema_crossover",
        ),
        ('[[strategy]]\nid = "Bad Id"\nkind = "external"\n', "invalid strategy id 'Bad Id'"),
        ('[[strategy]]\nid = "a"\n', "missing"),
        ("[strategies]\nx = 1\n", "unknown top-level key"),
        ("[[strategy]\n", "not valid TOML"),
    ],
)
def test_bad_config_files_name_the_file_and_the_entry(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        load_config_file(path)
    assert "bad.toml" in str(err.value)
