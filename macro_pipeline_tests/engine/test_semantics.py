"""Hand-worked semantics of `simulate` (DESIGN.md section 2), one rule per test.

Each test runs a 3-8 session series and writes the expected money as the formula that
produces it. Sessions are real XNYS sessions (2021-03-01 is a Monday).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.engine import OptimisticExecutionWarning, simulate
from macro_pipeline_tests.engine.frames import config, panel, sessions, weights_at

approx = pytest.approx


# --- timing -------------------------------------------------------------------------------


@pytest.mark.parametrize("lag", [0, 1, 2])
def test_weights_decided_at_close_t_execute_at_close_t_plus_lag(lag: int) -> None:
    prices = panel("2021-03-01", A=[100.0, 110.0, 121.0, 133.1])
    weights = weights_at(prices, {0: {"A": 1.0}})
    if lag == 0:
        with pytest.warns(OptimisticExecutionWarning):
            cfg = config(execution_lag=0)
        assert cfg.is_optimistic
    else:
        cfg = config(execution_lag=lag)
        assert not cfg.is_optimistic

    r = simulate(prices, weights, cfg)

    p = prices["A"].to_numpy()
    units = 1000.0 / p[lag]  # all of the equity, bought at the close of session lag
    expected = [1000.0 if t < lag else units * p[t] for t in range(4)]
    assert r.equity.to_numpy() == approx(expected, rel=1e-15)
    fill = r.fills.iloc[0]
    assert len(r.fills) == 1
    assert fill["date"] == prices.index[lag]
    assert (fill["side"], fill["reason"]) == ("buy", "rebalance")
    assert fill["quantity"] == approx(units)
    assert fill["price"] == p[lag]
    assert fill["notional"] == approx(1000.0)


def test_positions_drift_between_decision_dates() -> None:
    prices = panel("2021-03-01", A=[100.0, 100.0, 200.0, 200.0], B=[100.0, 100.0, 100.0, 100.0])
    r = simulate(prices, weights_at(prices, {0: {"A": 0.5, "B": 0.5}}), config())
    # 500 each at 100 on session 1; A doubles on session 2 and is not traded back to 50 %
    assert r.positions.loc[prices.index[3]].tolist() == approx([1000.0, 500.0])
    assert len(r.fills) == 2


# --- costs, clean mode, leverage ----------------------------------------------------------


def test_cost_is_abs_notional_times_cost_plus_slippage_bps_paid_from_cash() -> None:
    prices = panel("2021-03-01", A=[100.0, 110.0, 121.0])
    cfg = config(transaction_cost_bps=5.0, slippage_bps=2.0)
    r = simulate(prices, weights_at(prices, {0: {"A": 1.0}}), cfg)

    notional = 1.0 * 1000.0  # target = w x pre-trade equity
    cost = abs(notional) * (5.0 + 2.0) / 1e4
    units = notional / 110.0
    assert r.fills["cost"].tolist() == approx([cost])
    assert r.costs.tolist() == approx([0.0, cost, 0.0])
    assert r.cash.tolist() == approx([1000.0, 1000.0 - notional - cost, 1000.0 - notional - cost])
    assert r.equity.tolist() == approx([1000.0, 1000.0 - cost, units * 121.0 - cost], rel=1e-15)


def test_clean_mode_zeroes_costs() -> None:
    prices = panel("2021-03-01", A=[100.0, 110.0, 121.0])
    cfg = config(transaction_cost_bps=5.0, slippage_bps=2.0, clean=True)
    r = simulate(prices, weights_at(prices, {0: {"A": 1.0}}), cfg)
    assert cfg.cost_rate == 0.0
    assert r.fills["cost"].tolist() == [0.0]
    assert r.equity.tolist() == approx([1000.0, 1000.0, 1000.0 / 110.0 * 121.0])


def test_weights_above_max_leverage_are_scaled_down_proportionally_and_logged() -> None:
    prices = panel("2021-03-01", A=[100.0, 100.0, 100.0], B=[50.0, 50.0, 50.0])
    weights = weights_at(prices, {0: {"A": 0.8, "B": -0.8}})  # gross 1.6

    capped = simulate(prices, weights, config(max_leverage=1.0))
    factor = 1.0 / (0.8 + 0.8)
    assert capped.positions.iloc[1].tolist() == approx(
        [0.8 * factor * 1000.0, -0.8 * factor * 1000.0]
    )
    event = capped.skipped[capped.skipped["reason"] == "leverage_scaled"]
    assert event["date"].tolist() == [prices.index[0]]
    assert event["value"].tolist() == approx([factor])

    levered = simulate(prices, weights, config(max_leverage=2.0))
    assert levered.positions.iloc[1].tolist() == approx([800.0, -800.0])
    assert levered.cash.iloc[1] == approx(1000.0 - 800.0 + 800.0)
    assert (levered.skipped["reason"] != "leverage_scaled").all()
    # `weights` itself is never modified
    assert weights.iloc[0].tolist() == [0.8, -0.8]


# --- calendar -----------------------------------------------------------------------------


def _daily_target_frame(start: str, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    idx = sessions(start, n)
    prices = pd.DataFrame({"A": 100.0, "B": 100.0}, index=idx)
    # alternate targets every session so every acted-upon row trades
    a = np.where(np.arange(n) % 2 == 0, 0.3, 0.7)
    return prices, pd.DataFrame({"A": a, "B": 1.0 - a}, index=idx)


def test_monthly_rebalances_on_the_last_session_of_the_month_before_memorial_day() -> None:
    prices, weights = _daily_target_frame("2021-05-20", 10)  # 2021-05-31 is Memorial Day
    r = simulate(prices, weights, config(rebalance_frequency="monthly"))
    # only the 2021-05-28 row is acted upon; it executes at the next session, 2021-06-01
    assert sorted(set(r.fills["date"])) == [pd.Timestamp("2021-06-01")]
    acted = weights.loc["2021-05-28"]
    assert r.positions.loc["2021-06-01"].tolist() == approx((acted * 1000.0).tolist())


@pytest.mark.parametrize(
    ("start", "last_session_of_week", "next_session"),
    [
        ("2020-06-29", "2020-07-02", "2020-07-06"),  # Friday 2020-07-03: Independence Day observed
        ("2021-03-29", "2021-04-01", "2021-04-05"),  # Friday 2021-04-02: Good Friday
    ],
)
def test_weekly_rebalances_on_the_last_session_of_the_week_around_holidays(
    start: str, last_session_of_week: str, next_session: str
) -> None:
    prices, weights = _daily_target_frame(start, 5)
    r = simulate(prices, weights, config(rebalance_frequency="weekly"))
    assert pd.Timestamp(last_session_of_week) in prices.index
    assert sorted(set(r.fills["date"])) == [pd.Timestamp(next_session)]
    acted = weights.loc[last_session_of_week]
    assert r.positions.loc[next_session].tolist() == approx((acted * 1000.0).tolist())


def test_daily_acts_on_every_row() -> None:
    prices, weights = _daily_target_frame("2021-03-01", 5)
    r = simulate(prices, weights, config())
    assert sorted(set(r.fills["date"])) == list(prices.index[1:])


# --- shorts, borrow, cash interest --------------------------------------------------------


def test_short_pays_borrow_on_short_notional_and_cash_earns_risk_free() -> None:
    prices = panel("2021-03-01", A=[100.0, 100.0, 90.0, 99.0])
    rf, borrow_bps = 0.0504, 252.0
    r = simulate(
        prices,
        weights_at(prices, {0: {"A": -0.5}}),
        config(risk_free=rf, borrow_cost_bps=borrow_bps),
    )
    i = rf / 252  # cash interest per session
    b = borrow_bps / 1e4 / 252  # borrow fee per session on short notional at the previous close

    cash1 = 1000.0 * (1 + i)  # session 1: interest on the bar, then the trade
    units = -0.5 * cash1 / 100.0
    cash1 += -units * 100.0  # short sale proceeds
    cash2 = cash1 * (1 + i) - (-units * 100.0) * b
    cash3 = cash2 * (1 + i) - (-units * 90.0) * b
    assert r.cash.tolist() == approx([1000.0, cash1, cash2, cash3], rel=1e-14)
    assert r.equity.tolist() == approx(
        [1000.0, cash1 + units * 100.0, cash2 + units * 90.0, cash3 + units * 99.0], rel=1e-14
    )
    flows = r.cashflows
    assert flows["interest"].tolist() == approx([0.0, 1000.0 * i, cash1 * i, cash2 * i])
    assert flows["borrow"].tolist() == approx([0.0, 0.0, -units * 100.0 * b, -units * 90.0 * b])
    assert r.exposure["net"].iloc[2] == approx(units * 90.0 / r.equity.iloc[2])
    assert r.fills["side"].tolist() == ["sell"]


def test_risk_free_step_series_uses_the_rate_in_force_at_the_start_of_the_bar() -> None:
    prices = panel("2021-03-01", A=[100.0, 100.0, 100.0])
    cfg = config(risk_free={"2021-01-01": 0.0252, "2021-03-02": 0.0504})
    r = simulate(prices, None, cfg)
    # bar 1 starts at the close of 03-01 (2.52 %), bar 2 at the close of 03-02 (5.04 %)
    assert r.cash.tolist() == approx(
        [1000.0, 1000.0 * (1 + 0.0252 / 252), 1000.0 * (1 + 0.0252 / 252) * (1 + 0.0504 / 252)]
    )


# --- perpetual funding --------------------------------------------------------------------


def _perp_case(weight: float):
    prices = panel("2021-01-01", calendar="24/7", PERP=[100.0, 110.0, 100.0, 105.0])
    stamps = pd.date_range("2021-01-01 08:00", "2021-01-05 00:00", freq="8h", tz="UTC")
    rates = np.arange(1, len(stamps) + 1) * 1e-4  # a different rate for every settlement
    funding = pd.DataFrame({"ts": stamps, "instrument": "PERP", "rate": rates})
    r = simulate(
        prices,
        weights_at(prices, {0: {"PERP": weight}}),
        config(calendar="24/7"),
        funding=funding,
    )
    return prices, funding, r


@pytest.mark.parametrize("weight", [1.0, -1.0])
def test_every_8h_funding_settlement_in_a_daily_bar_applies(weight: float) -> None:
    prices, funding, r = _perp_case(weight)
    # the position is opened at the close of 2021-01-02 (= 2021-01-03 00:00 UTC) at 110
    units = weight * 1000.0 / 110.0
    rate = funding.set_index("ts")["rate"]
    # bar 2021-01-03 = (01-03 00:00, 01-04 00:00]: settlements at 08:00, 16:00 and 00:00 of 01-04
    day3 = rate["2021-01-03 08:00Z"] + rate["2021-01-03 16:00Z"] + rate["2021-01-04 00:00Z"]
    day4 = rate["2021-01-04 08:00Z"] + rate["2021-01-04 16:00Z"] + rate["2021-01-05 00:00Z"]
    paid = [0.0, 0.0, units * 110.0 * day3, units * 100.0 * day4]  # notional at the previous close
    assert r.funding.tolist() == approx(paid, rel=1e-14)
    if weight > 0:
        assert paid[2] > 0  # longs pay positive rates
    else:
        assert paid[2] < 0  # shorts receive them
    cash = 1000.0 - units * 110.0
    assert r.equity.tolist() == approx(
        [1000.0, 1000.0, cash - paid[2] + units * 100.0, cash - paid[2] - paid[3] + units * 105.0],
        rel=1e-14,
    )


# --- corporate actions --------------------------------------------------------------------


def test_split_changes_quantity_not_value_and_round_trip_uses_adjusted_basis() -> None:
    prices = panel("2021-03-01", A=[100.0, 100.0, 50.0, 55.0])  # unadjusted: 2-for-1 on 03-03
    splits = pd.DataFrame({"ex_date": [prices.index[2]], "instrument": ["A"], "ratio": [2.0]})
    weights = weights_at(prices, {0: {"A": 1.0}, 2: {"A": 0.5}})
    r = simulate(prices, weights, config(), splits=splits)

    units = 1000.0 / 100.0  # bought on 03-02
    assert r.equity.tolist() == approx([1000.0, 1000.0, 2 * units * 50.0, 2 * units * 55.0])
    assert r.equity.iloc[2] == r.equity.iloc[1]  # the split alone changes nothing
    sold = 2 * units - 0.5 * (2 * units * 55.0) / 55.0  # to 50 % of 1,100 at 55
    assert r.fills["quantity"].tolist() == approx([units, -sold])
    trip = r.round_trips.iloc[0]
    assert trip["quantity"] == approx(sold)
    assert trip["pnl"] == approx(sold * (55.0 - 100.0 / 2))  # entry price split-adjusted
    assert trip["return"] == approx((55.0 - 50.0) / 50.0)
    assert r.end_state.quantities == approx({"A": 2 * units - sold})


@pytest.mark.parametrize("weight", [1.0, -1.0])
def test_cash_dividend_is_credited_on_ex_date_to_holders_of_record(weight: float) -> None:
    prices = panel("2021-03-01", A=[100.0, 100.0, 98.0, 99.0])
    dividends = pd.DataFrame({"ex_date": [prices.index[2]], "instrument": ["A"], "amount": [2.0]})
    r = simulate(prices, weights_at(prices, {0: {"A": weight}}), config(), dividends=dividends)
    units = weight * 1000.0 / 100.0  # held at the close before the ex-date
    assert r.cashflows["dividends"].tolist() == approx([0.0, 0.0, units * 2.0, 0.0])
    cash = 1000.0 - units * 100.0 + units * 2.0  # shorts pay the dividend
    assert r.equity.tolist() == approx([1000.0, 1000.0, cash + units * 98.0, cash + units * 99.0])


# --- missing prices and the universe ------------------------------------------------------


def test_missing_price_on_execution_day_is_not_traded_and_logged() -> None:
    prices = panel("2021-03-01", A=[100.0, 100.0, 100.0], B=[50.0, np.nan, 60.0])
    r = simulate(prices, weights_at(prices, {0: {"A": 0.5, "B": 0.5}}), config())
    trade, skip = r.fills.iloc[0], r.fills.iloc[1]
    assert (trade["instrument"], trade["notional"]) == ("A", approx(500.0))
    assert (skip["instrument"], skip["side"], skip["reason"]) == ("B", "none", "missing_price")
    assert skip["quantity"] == 0.0 and skip["cost"] == 0.0
    assert r.skipped[["instrument", "reason"]].values.tolist() == [["B", "missing_price"]]
    assert r.equity.tolist() == approx([1000.0, 1000.0, 1000.0])
    assert r.positions["B"].tolist() == [0.0, 0.0, 0.0]


def test_missing_price_marks_at_the_last_known_price() -> None:
    prices = panel("2021-03-01", A=[100.0, 100.0, 120.0, np.nan, 90.0])
    r = simulate(prices, weights_at(prices, {0: {"A": 1.0}}), config())
    units = 1000.0 / 100.0
    assert r.equity.tolist() == approx([1000.0, 1000.0, units * 120.0, units * 120.0, units * 90.0])


@pytest.mark.parametrize(
    ("b_prices", "exit_price"),
    [([50.0, 50.0, 55.0, 60.0, 61.0], 60.0), ([50.0, 50.0, 55.0, np.nan, np.nan], 55.0)],
    ids=["still-priced", "delisted"],
)
def test_leaving_the_universe_forces_an_exit_at_the_last_tradable_price(
    b_prices: list[float], exit_price: float
) -> None:
    prices = panel("2021-03-01", A=[100.0] * 5, B=b_prices)
    weights = weights_at(prices, {0: {"A": 0.5, "B": 0.5}, 3: {"A": 0.5, "B": 0.5}})
    member = pd.DataFrame(True, index=prices.index, columns=prices.columns)
    member.loc[prices.index[3] :, "B"] = False  # B leaves the universe on session 3
    intervals = pd.DataFrame(
        {"instrument": ["A", "B"], "from": [prices.index[0]] * 2, "to": [None, prices.index[2]]}
    )
    for universe in (member, intervals):
        r = simulate(prices, weights, config(transaction_cost_bps=10.0), universe=universe)
        units = 500.0 / 50.0
        exit_row = r.fills[r.fills["reason"] == "universe_exit"].iloc[0]
        assert exit_row["date"] == prices.index[3]
        assert exit_row["quantity"] == approx(-units)
        assert exit_row["price"] == exit_price
        assert exit_row["cost"] == approx(units * exit_price * 10.0 / 1e4)
        assert r.positions["B"].iloc[3:].tolist() == [0.0, 0.0]
        # the session-3 decision wants B again: not traded, logged
        skip = r.fills[r.fills["reason"] == "not_in_universe"]
        assert skip["date"].tolist() == [prices.index[4]]
        assert skip["instrument"].tolist() == ["B"]


# --- round trips --------------------------------------------------------------------------


def test_round_trip_pnl_is_entry_to_exit_price_move_net_of_both_costs() -> None:
    prices = panel("2021-03-01", A=[100.0, 100.0, 110.0, 120.0])
    weights = weights_at(prices, {0: {"A": 0.5}, 2: {"A": 0.0}})
    r = simulate(prices, weights, config(transaction_cost_bps=10.0))
    c = 10.0 / 1e4
    units = 500.0 / 100.0
    trip = r.round_trips.iloc[0]
    assert len(r.round_trips) == 1
    assert (trip["entry_date"], trip["exit_date"]) == (prices.index[1], prices.index[3])
    assert trip["holding_days"] == 2
    assert trip["pnl"] == approx(units * (120.0 - 100.0) - units * 100.0 * c - units * 120.0 * c)
    assert trip["return"] == approx(trip["pnl"] / (units * 100.0))
    assert len(r.end_state.open_lots) == 0


# --- accounting identity on a richer case -------------------------------------------------


def test_equity_is_cash_plus_positions_with_every_feature_on() -> None:
    prices = panel(
        "2021-03-01",
        A=[100.0, 101.0, 50.0, 52.0, 51.0, np.nan, 53.0],
        B=[20.0, 19.0, 21.0, np.nan, 22.0, 23.0, 22.5],
        C=[10.0, 10.5, 10.2, 10.1, 9.9, 10.0, 10.3],
    )
    weights = weights_at(
        prices,
        {0: {"A": 0.6, "B": -0.3, "C": 0.5}, 2: {"A": 0.2, "B": 0.4, "C": -0.5}, 4: {"A": 1.0}},
    )
    r = simulate(
        prices,
        weights,
        config(
            transaction_cost_bps=3.0,
            slippage_bps=1.0,
            max_leverage=1.2,
            risk_free=0.03,
            borrow_cost_bps=50.0,
        ),  # fmt: skip
        splits=pd.DataFrame({"ex_date": [prices.index[2]], "instrument": ["A"], "ratio": [2.0]}),
        dividends=pd.DataFrame(
            {"ex_date": [prices.index[4]], "instrument": ["C"], "amount": [0.1]}
        ),
    )
    assert r.equity.to_numpy() == approx((r.cash + r.positions.sum(axis=1)).to_numpy(), rel=1e-14)
    assert r.costs.sum() == approx(r.fills["cost"].sum())
    assert r.exposure["gross"].to_numpy() == approx(
        (r.positions.abs().sum(axis=1) / r.equity).to_numpy()
    )
    assert (r.drawdown <= 0).all()
