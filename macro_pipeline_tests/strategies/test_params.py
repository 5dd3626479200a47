"""Parameters as pydantic models: stored params hashes unchanged, a JSON schema per kind."""

from __future__ import annotations

import numpy as np
import pytest

from macro_pipeline.strategies import KINDS, StrategyConfig, StrategyError, load_builtin_configs

# The params hash of every built-in configuration as computed before the parameters became
# pydantic models: stored runs are keyed by it, so it must never change for the same parameters.
BUILTIN_HASHES = {
    "bh-us-eq20": "6382ec9c60639de77a385cb188ceb735657a1c3ccd82b066c59d8f5de12a1a93",
    "ema-us-eq20": "2ea4cc537834ce4c24781efaa31351ac23ff6e115574b771a4ea7ded7148946d",
    "rsi-us-eq20": "2b2f1d28805f2fb538bc9c7986d2bd7973dd3ee0541fa472bd0a5b12b9ce5374",
    "atr-index": "513b16d31fedbcf256c4c801c2cea856ced1a4a505109ff555688cedc7edce0c",
    "tsmom-cross-asset": "761904232441b6d894ba276f0f5bc2940f1ae2e1c6f6d5c19c07417d397116a7",
    "macro-regime": "e745c385ba945d3b3e783b7ed76597cc3e9c6c152a9f80790271e7ddb037c324",
    "carry-simple": "12d37811879d243b99e0847595282e3f8eec2d232c7b5127ef0a2798a758856e",
    "carry-composite": "2aab1b4127c6ac9ac1ef3be91e7758c4368d16bed9cdd989baa4440334778b79",
    "external-demo": "8d9ded46bace11fe10a1816c02842bb4cfea880144525a795ca237dd696d7f2a",
}


def test_params_hash_of_every_builtin_configuration_is_pinned():
    assert {c.strategy_id: c.params_hash for c in load_builtin_configs()} == BUILTIN_HASHES


def test_numpy_scalars_and_negative_zero_hash_as_the_python_values():
    plain = StrategyConfig("x", "ema_crossover", {"fast": 10, "gross": 0.5, "allow_short": True})
    numpy = StrategyConfig(
        "x", "ema_crossover",
        {"fast": np.int64(10), "gross": np.float64(0.5), "allow_short": np.bool_(True)},
    )  # fmt: skip
    assert numpy.params_hash == plain.params_hash
    assert type(numpy.params["fast"]) is int and type(numpy.params["allow_short"]) is bool
    zero = StrategyConfig("x", "funding_carry", {"exit_threshold": -0.0})
    assert zero.params_hash == StrategyConfig("x", "funding_carry").params_hash


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_a_json_schema_with_types_bounds_and_descriptions(kind):
    params = KINDS[kind].Params
    schema = params.json_schema()
    assert schema["additionalProperties"] is False
    assert list(schema["properties"]) == list(params.fields())
    json_type = {bool: "boolean", int: "integer", float: "number", str: "string"}
    for name, (typ, spec) in params.fields().items():
        prop = schema["properties"][name]
        assert prop["description"] == spec.doc
        assert prop["type"] == json_type.get(typ, "array"), (kind, name)
        if spec.choices is not None:
            assert prop["enum"] == list(spec.choices)
        if spec.lo is not None:
            assert prop["exclusiveMinimum" if spec.lo_open else "minimum"] == spec.lo
        if spec.hi is not None:
            assert prop["exclusiveMaximum" if spec.hi_open else "maximum"] == spec.hi


def test_json_schema_of_ema_crossover_states_its_bounds():
    props = KINDS["ema_crossover"].Params.json_schema()["properties"]
    assert (props["fast"]["minimum"], props["fast"]["maximum"], props["fast"]["default"]) == (1, 1000, 20)
    assert (props["gross"]["exclusiveMinimum"], props["gross"]["maximum"]) == (0.0, 1.0)
    assert props["instruments"]["items"] == {"type": "string"}


def test_params_are_frozen():
    p = KINDS["ema_crossover"].Params(fast=5)
    with pytest.raises(ValueError):
        p.fast = 6  # type: ignore[misc]
    with pytest.raises(StrategyError, match=r"unknown parameter\(s\) 'fats'"):
        KINDS["ema_crossover"].Params(fats=5)
