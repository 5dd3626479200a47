"""Grid parsing and validation: every refusal names the offending values; nothing is read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.engine import compute_metrics
from macro_pipeline.research.config import load_sweeps_file, specs_from_text
from macro_pipeline.research.grid import GridError, expand, parse_grid_item
from macro_pipeline.research.metrics import METRICS, metrics_matrix
from macro_pipeline.research.sweep import SweepSpec
from macro_pipeline.research.walkforward import WalkForward


def test_lists_and_ranges_are_typed():
    assert parse_grid_item("ema_crossover", "fast=5,10, 20") == ("fast", [5, 10, 20])
    assert parse_grid_item("ema_crossover", "slow=100..200:50") == ("slow", [100, 150, 200])
    assert parse_grid_item("ema_crossover", "slow=100..220:50") == ("slow", [100, 150, 200])
    # decimal steps do not drift: 0.1 + 0.1 + 0.1 would be 0.30000000000000004
    assert parse_grid_item("ema_crossover", "gross=0.1..0.5:0.1") == ("gross", [0.1, 0.2, 0.3, 0.4, 0.5])
    assert parse_grid_item("ema_crossover", "allow_short=true,false") == ("allow_short", [True, False])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("bogus=1,2", "unknown parameter 'bogus' for kind 'ema_crossover'; its parameters are fast, slow"),
        ("fast=50..5:5", r"grid .fast.: empty range 50..5 \(lo > hi\)"),
        ("fast=5..50:0", "grid 'fast': the step must be > 0, got 0"),
        ("fast=", "grid 'fast': no values given"),
        ("fast=a,10,0", "got 'a'.*out of range: allowed 1 <= fast <= 1000, got 0"),
        ("fast=1.5..3:1", "must be an integer .* got '1.5'"),
        ("fast=5,5", "value\\(s\\) given twice: 5"),
        ("gross=0.5..2:0.5", "gross.*out of range.*got 1.5.*got 2.0"),
        ("allow_short=1..2:1", "a range lo..hi:step needs a numeric parameter"),
        ("fast", "must look like name=v1,v2"),
    ],
)
def test_invalid_grid_items_are_refused_naming_the_values(item, message):
    with pytest.raises(GridError, match=message):
        parse_grid_item("ema_crossover", item)


def test_combinations_the_kind_refuses_are_listed():
    with pytest.raises(GridError) as err:
        expand("ema_crossover", {"fast": [10, 100, 200], "slow": [100, 150]})
    msg = str(err.value)
    assert "refuses 3 of 6 combination(s)" in msg
    assert "fast=100,slow=100" in msg and "fast=200,slow=100" in msg and "fast=200,slow=150" in msg
    assert "fast=10,slow=100" not in msg


def test_expand_fills_defaults_in_grid_order():
    configs = expand("ema_crossover", {"fast": [10, 20], "slow": [100, 200]}, {"vol_window": 30})
    assert [(c["fast"], c["slow"]) for c in configs] == [(10, 100), (10, 200), (20, 100), (20, 200)]
    assert all(c["vol_window"] == 30 and c["allow_short"] is False for c in configs)


def test_spec_refuses_bad_windows_metrics_blocks_and_walk_forward():
    with pytest.raises(GridError, match="--start 2010-01-01 is after --end 2009-01-01"):
        SweepSpec.build("ema_crossover", {"fast": "5,10"}, "2010-01-01", "2009-01-01")
    with pytest.raises(GridError, match="metric 'max_drawdown' cannot rank"):
        SweepSpec.build("ema_crossover", {"fast": "5,10"}, "2000-01-01", "2009-01-01", metric="max_drawdown")
    with pytest.raises(GridError, match="--blocks must be an even integer >= 2, got 15"):
        SweepSpec.build("ema_crossover", {"fast": "5,10"}, "2000-01-01", "2009-01-01", n_blocks=15)
    with pytest.raises(GridError, match="must look like train=36M,test=12M"):
        SweepSpec.build("ema_crossover", {"fast": "5,10"}, "2000-01-01", "2009-01-01", walk_forward="36,12")
    with pytest.raises(GridError, match="leaves no fold in 2000-01-01..2002-01-01"):
        SweepSpec.build("ema_crossover", {"fast": "5,10"}, "2000-01-01", "2002-01-01",
                        walk_forward="train=36M,test=12M")
    with pytest.raises(Exception, match="unknown strategy kind 'nope'"):
        SweepSpec.build("nope", {"fast": "5,10"}, "2000-01-01", "2009-01-01")


def test_walk_forward_folds_rolling_and_anchored():
    days = pd.bdate_range("2000-01-03", "2004-12-31")
    rolling = WalkForward.parse("train=24M,test=12M").folds(days)
    assert [(days[tr[0]].date().isoformat(), days[te[0]].date().isoformat(), days[te[-1]].date().isoformat())
            for tr, te in rolling] == [("2000-01-03", "2002-01-03", "2003-01-02"),
                                       ("2001-01-03", "2003-01-03", "2004-01-02"),
                                       ("2002-01-03", "2004-01-05", "2004-12-31")]
    anchored = WalkForward.parse("train=24M,test=12M,anchored").folds(days)
    assert all(tr[0] == 0 for tr, _ in anchored)
    for tr, te in rolling:  # training always ends before testing starts
        assert tr[-1] + 1 == te[0]


def test_metrics_matrix_equals_compute_metrics_per_column():
    rng = np.random.default_rng(3)
    r = rng.normal(0.0004, 0.012, size=(700, 5))
    r[:, 4] = 0.0  # constant: Sharpe NaN
    rf = np.full(700, 0.02 / 252)
    got = metrics_matrix(r, periods_per_year=252, risk_free=rf)
    for j in range(5):
        ref = compute_metrics(r[:, j], periods_per_year=252, risk_free=rf)
        for k in METRICS:
            np.testing.assert_allclose(got[k][j], ref[k], rtol=1e-12, atol=0, equal_nan=True, err_msg=k)


def test_the_packaged_sweeps_file_is_valid_and_a_bad_entry_is_named():
    specs = load_sweeps_file()
    assert [s.name for s in specs][:1] == ["ema-us-eq20-grid"]
    bad = """
[[sweep]]
name = "x"
kind = "ema_crossover"
start = "2000-01-01"
end = "2005-01-01"
grid = { fast = [10, 300], slow = "100..200:100" }
"""
    with pytest.raises(GridError, match=r"sweeps.toml: sweep #1 \('x'\): kind 'ema_crossover' refuses 2 of 4.*fast=300,slow=100"):
        specs_from_text(bad, "sweeps.toml")
    with pytest.raises(GridError, match=r"unknown key\(s\) \['grids'\]"):
        specs_from_text(bad.replace("grid =", "grids ="), "sweeps.toml")
