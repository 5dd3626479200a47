"""Monthly partitions: one by one, as a range in one call, and one engine call agree (1e-9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.backtest.configs import load_strategy
from macro_pipeline.backtest.months import run_months, stitched_equity
from macro_pipeline.backtest.one_off import backtest_config, engine_inputs, strategy_view
from macro_pipeline.engine import simulate
from macro_pipeline.strategies.config import build
from macro_pipeline.warehouse.pit import current_watermark
from macro_pipeline_tests.conftest import demo_with_strategies

MONTHS = ["2016-01-01", "2016-02-01", "2016-03-01", "2016-04-01"]


@pytest.fixture(scope="module")
def demo(databases):
    return demo_with_strategies(databases)


@pytest.mark.parametrize("strategy_id", ["ema-us-eq20", "carry-simple"])
def test_months_one_by_one_equal_the_range_and_one_engine_call(demo, databases, strategy_id):
    sys_as_of = current_watermark(demo)
    # the strategy's history must start fresh: chain from its first month with data
    cfg = load_strategy(demo, strategy_id)
    first = pd.Timestamp(strategy_view(demo, cfg, "2016-04-29", sys_as_of).decision_dates[0])
    months = [m.strftime("%Y-%m-01") for m in pd.date_range(first.replace(day=1), "2016-04-01", freq="MS")]
    ranged = run_months(demo, strategy_id, months, system_as_of=sys_as_of)
    assert [o.status for o in ranged][-4:] == ["stored"] * 4
    range_equity = stitched_equity(demo, strategy_id)
    # the last four months again, one by one (each continues from the stored previous month)
    for m in MONTHS:
        (one,) = run_months(demo, strategy_id, [m], system_as_of=sys_as_of)
        assert one.status == "stored"
    single_equity = stitched_equity(demo, strategy_id)
    # one engine call over the whole range
    view = strategy_view(demo, cfg, single_equity.index[-1], sys_as_of)
    weights = build(cfg).weights(view)
    start, end = single_equity.index[0], single_equity.index[-1]
    inputs = engine_inputs(view, cfg, list(weights.columns), start, end)
    direct = simulate(inputs.pop("prices"), weights.loc[start:end], backtest_config(cfg, start, end), **inputs)
    np.testing.assert_allclose(range_equity.to_numpy(), direct.equity.to_numpy(), rtol=1e-9, atol=0)
    np.testing.assert_allclose(single_equity.to_numpy(), direct.equity.to_numpy(), rtol=1e-9, atol=0)


def test_a_month_whose_previous_month_is_missing_is_refused(demo):
    with pytest.raises(ValueError, match="has no stored backtest"):
        run_months(demo, "bh-us-eq20", ["2005-06-01"])


def test_months_before_the_data_and_in_the_future(demo):
    out = run_months(demo, "carry-simple", ["2001-01-01"])
    assert [o.status for o in out] == ["before-data"]
    future = (pd.Timestamp.now() + pd.offsets.MonthBegin(2)).strftime("%Y-%m-01")
    assert [o.status for o in run_months(demo, "carry-simple", [future])] == ["after-data"]
