"""`BacktestConfig`: validation names the field, JSON round trip, optimistic same-bar mode."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from macro_pipeline.engine import BacktestConfig, OptimisticExecutionWarning


def make(**kw) -> BacktestConfig:
    base = dict(start="2020-01-02", end="2020-12-31")
    base.update(kw)
    return BacktestConfig(**base)


def test_dates_are_normalised_from_str_date_and_timestamp() -> None:
    for start in (
        "2020-01-02",
        dt.date(2020, 1, 2),
        pd.Timestamp("2020-01-02"),
        dt.datetime(2020, 1, 2),
    ):
        assert make(start=start).start == dt.date(2020, 1, 2)


def test_defaults_match_the_design() -> None:
    c = make()
    assert (c.transaction_cost_bps, c.slippage_bps, c.max_leverage, c.execution_lag) == (
        5.0,
        2.0,
        1.0,
        1,
    )
    assert (c.clean, c.calendar, c.risk_free, c.borrow_cost_bps) == (False, "XNYS", 0.0, 0.0)
    assert c.cost_rate == (5.0 + 2.0) / 1e4
    assert not c.is_optimistic


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        (dict(start="2021-01-01", end="2020-01-01"), "start"),
        (dict(start="2020-01-02 10:30"), "start"),
        (dict(end="not a date"), "end"),
        (dict(start=pd.Timestamp("2020-01-02", tz="UTC")), "start"),
        (dict(initial_capital=0), "initial_capital"),
        (dict(initial_capital=float("nan")), "initial_capital"),
        (dict(rebalance_frequency="quarterly"), "rebalance_frequency"),
        (dict(transaction_cost_bps=-1), "transaction_cost_bps"),
        (dict(slippage_bps=float("inf")), "slippage_bps"),
        (dict(max_leverage=0), "max_leverage"),
        (dict(execution_lag=-1), "execution_lag"),
        (dict(execution_lag=1.5), "execution_lag"),
        (dict(execution_lag=True), "execution_lag"),
        (dict(clean="yes"), "clean"),
        (dict(calendar="NOPE"), "calendar"),
        (dict(risk_free="high"), "risk_free"),
        (dict(risk_free={}), "risk_free"),
        (dict(borrow_cost_bps=-5), "borrow_cost_bps"),
    ],
)
def test_invalid_values_fail_at_construction_naming_the_field(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"BacktestConfig\.{field}"):
        make(**kw)


def test_same_bar_execution_must_be_explicit_and_is_labelled_optimistic() -> None:
    with pytest.warns(OptimisticExecutionWarning, match="optimistic"):
        c = make(execution_lag=0)
    assert c.is_optimistic


def test_clean_mode_zeroes_the_cost_rate() -> None:
    assert make(clean=True, transaction_cost_bps=10).cost_rate == 0.0


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(start=None, end=None, clean=True, calendar="24/7", rebalance_frequency="weekly"),
        dict(risk_free={"2020-01-01": 0.01, "2020-06-01": 0.02}, borrow_cost_bps=25.0),
    ],
)
def test_to_dict_is_json_and_round_trips(kw: dict) -> None:
    c = make(**kw)
    data = json.loads(json.dumps(c.to_dict()))
    assert BacktestConfig.from_dict(data) == c
    assert hash(BacktestConfig.from_dict(data)) == hash(c)


def test_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        BacktestConfig.from_dict({**make().to_dict(), "leverage": 2})


def test_risk_free_series_is_a_step_function_known_from_its_dates() -> None:
    c = make(risk_free=pd.Series([0.01, 0.02], index=pd.to_datetime(["2020-01-01", "2020-06-01"])))
    dates = pd.to_datetime(["2020-01-01", "2020-05-29", "2020-06-01", "2021-01-04"])
    assert c.risk_free_annual(pd.DatetimeIndex(dates)).tolist() == [0.01, 0.01, 0.02, 0.02]
    with pytest.raises(ValueError, match="no rate in force on 2019-12-31"):
        c.risk_free_annual(pd.DatetimeIndex(["2019-12-31"]))
