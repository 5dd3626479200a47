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


def test_signals_then_inputs_compute_the_weights_once_and_equal_a_fresh_computation(demo, monkeypatch):
    """The signals step's weights are reused by the inputs step of the same stretch (same
    watermark, same end); a new watermark, another stretch or another thread computes afresh, and
    what is reused equals what a fresh computation gives, footprint included."""
    import threading

    from macro_pipeline.backtest import months as mod
    from macro_pipeline.strategies.base import Strategy

    calls = []
    real = Strategy.weights

    def counting(self, view, *args, **kwargs):
        calls.append(self.kind)
        return real(self, view, *args, **kwargs)

    monkeypatch.setattr(Strategy, "weights", counting)
    sys_as_of = current_watermark(demo)
    cfg = load_strategy(demo, "ema-us-eq20")
    first = pd.Timestamp(strategy_view(demo, cfg, "2016-04-29", sys_as_of).decision_dates[0]).replace(day=1)
    stretch = [first.strftime("%Y-%m-01"), (first + pd.offsets.MonthBegin(1)).strftime("%Y-%m-01")]  # starts fresh
    calls.clear()
    mod.month_signals(demo, "ema-us-eq20", stretch, system_as_of=sys_as_of)
    shared = mod.load_month_inputs(demo, "ema-us-eq20", stretch, system_as_of=sys_as_of)
    assert len(calls) == 1
    fresh = mod.load_month_inputs(demo, "ema-us-eq20", stretch, system_as_of=sys_as_of)  # entry taken: computes
    assert len(calls) == 2
    pd.testing.assert_frame_equal(shared.weights, fresh.weights, check_exact=True)
    assert shared.reads == fresh.reads and shared.marks == fresh.marks and shared.epochs == fresh.epochs
    # another stretch (a different end) does not reuse
    mod.month_signals(demo, "ema-us-eq20", stretch, system_as_of=sys_as_of)
    mod.load_month_inputs(demo, "ema-us-eq20", stretch[:1], system_as_of=sys_as_of)
    assert len(calls) == 4
    # another thread does not see this thread's entry
    mod.month_signals(demo, "ema-us-eq20", stretch, system_as_of=sys_as_of)
    worker = threading.Thread(target=mod.load_month_inputs, args=(demo, "ema-us-eq20", stretch),
                              kwargs={"system_as_of": sys_as_of})
    worker.start()
    worker.join()
    assert len(calls) == 6
    # a batch ingested between the two steps: the inputs step computes over the new data
    from macro_pipeline.warehouse.ingest import ingest
    from macro_pipeline.warehouse.pit import data_watermark

    mod.month_signals(demo, "ema-us-eq20", stretch)
    before = data_watermark(demo)
    ingest(demo, "macro", pd.DataFrame({"series_id": ["ZZ_CACHE"], "obs_date": ["2016-01-29"], "value": [1.0]}),
           register_unknown=True, register_release_rule="close")
    assert data_watermark(demo) != before
    mod.load_month_inputs(demo, "ema-us-eq20", stretch)
    assert len(calls) == 8
