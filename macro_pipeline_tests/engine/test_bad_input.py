"""Bad input raises ValueError naming the offending dates and/or instruments."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.engine import simulate
from macro_pipeline_tests.engine.frames import config, panel, weights_at


def good() -> tuple[pd.DataFrame, pd.DataFrame]:
    prices = panel("2021-03-01", A=[100.0, 101.0, 102.0, 103.0], B=[50.0, 51.0, 52.0, 53.0])
    return prices, weights_at(prices, {0: {"A": 0.5, "B": 0.5}, 2: {"A": 1.0}})


def _set(frame: pd.DataFrame, row: int, col: str, value: float) -> pd.DataFrame:
    frame = frame.copy()
    frame.iloc[row, frame.columns.get_loc(col)] = value
    return frame


def _reindex(frame: pd.DataFrame, dates: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    frame.index = pd.DatetimeIndex(dates)
    return frame


Case = Callable[[pd.DataFrame, pd.DataFrame], dict]
CASES: dict[str, tuple[Case, str]] = {
    "price index not dates": (
        lambda p, w: dict(prices=p.reset_index(drop=True)),
        r"prices: index must be a DatetimeIndex",
    ),
    "price index not increasing": (
        lambda p, w: dict(prices=p.iloc[[0, 2, 1, 3]]),
        r"prices: index is not increasing at 2021-03-02",
    ),
    "duplicate price dates": (
        lambda p, w: dict(
            prices=_reindex(p, ["2021-03-01", "2021-03-02", "2021-03-02", "2021-03-03"])
        ),
        r"prices: duplicate dates 2021-03-02",
    ),
    "price index with times": (
        lambda p, w: dict(prices=p.set_axis(p.index + pd.Timedelta(hours=16))),
        r"prices: index has times of day .*2021-03-01 16:00:00",
    ),
    "tz-aware price index": (
        lambda p, w: dict(prices=p.tz_localize("UTC")),
        r"prices: index must be tz-naive",
    ),
    "duplicate instruments": (
        lambda p, w: dict(prices=p.set_axis(["A", "A"], axis=1), weights=None),
        r"prices: duplicate instruments A",
    ),
    "negative price": (
        lambda p, w: dict(prices=_set(p, 1, "B", -51.0)),
        r"prices: must be finite and > 0 .*\(2021-03-02, B, -51\.0\)",
    ),
    "zero price": (
        lambda p, w: dict(prices=_set(p, 2, "A", 0.0)),
        r"\(2021-03-03, A, 0\.0\)",
    ),
    "infinite price": (
        lambda p, w: dict(prices=_set(p, 3, "A", np.inf)),
        r"\(2021-03-04, A, inf\)",
    ),
    "NaN weight": (
        lambda p, w: dict(weights=_set(w, 1, "B", np.nan)),
        r"weights: NaN or infinite weights at \(date, instrument\) \(2021-03-03, B\)",
    ),
    "weights for unknown instrument": (
        lambda p, w: dict(weights=w.assign(ZZZ=0.1)),
        r"weights: instruments not in prices: ZZZ",
    ),
    "decision date not a session": (
        lambda p, w: dict(
            prices=panel("2021-03-01", A=[100.0] * 6, B=[50.0] * 6),  # to Monday 2021-03-08
            weights=_reindex(w, ["2021-03-01", "2021-03-06"]),  # a Saturday
        ),
        r"weights: decision dates not in the price index .*2021-03-06",
    ),
    "decision date missing from prices": (
        lambda p, w: dict(prices=p.drop(p.index[2]), weights=w),
        r"weights: decision dates not in the price index .*2021-03-03",
    ),
    "weights index not increasing": (
        lambda p, w: dict(weights=w.iloc[::-1]),
        r"weights: index is not increasing at 2021-03-01",
    ),
    "universe missing sessions": (
        lambda p, w: dict(universe=pd.DataFrame(True, index=p.index[:2], columns=p.columns)),
        r"universe: sessions missing from the index: 2021-03-03, 2021-03-04",
    ),
    "universe missing instrument": (
        lambda p, w: dict(universe=pd.DataFrame(True, index=p.index, columns=["A"])),
        r"universe: no membership column for instruments B",
    ),
    "dividend for unknown instrument": (
        lambda p, w: dict(
            dividends=pd.DataFrame({"ex_date": [p.index[1]], "instrument": ["C"], "amount": [1.0]})
        ),
        r"dividends: instruments not in prices: C",
    ),
    "dividend ex-date not a session": (
        lambda p, w: dict(
            dividends=pd.DataFrame(
                {"ex_date": ["2021-03-03 12:00"], "instrument": ["A"], "amount": [1.0]}
            )
        ),
        r"dividends: ex_date not a session",
    ),
    "split ratio not positive": (
        lambda p, w: dict(
            splits=pd.DataFrame({"ex_date": [p.index[1]], "instrument": ["A"], "ratio": [0.0]})
        ),
        r"splits: ratio must be finite and > 0 at \(ex_date, instrument\) \(2021-03-02, A\)",
    ),
    "funding without time zone": (
        lambda p, w: dict(
            funding=pd.DataFrame(
                {"ts": [pd.Timestamp("2021-03-02 08:00")], "instrument": ["A"], "rate": [1e-4]}
            )
        ),
        r"funding: ts must be tz-aware",
    ),
    "funding rate NaN": (
        lambda p, w: dict(
            funding=pd.DataFrame(
                {
                    "ts": [pd.Timestamp("2021-03-02 08:00", tz="UTC")],
                    "instrument": ["B"],
                    "rate": [np.nan],
                }
            )
        ),
        r"funding: NaN or infinite rate at \(ts, instrument\) \(2021-03-02 08:00:00\+00:00, B\)",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_value_error_naming_dates_and_instruments(case: str) -> None:
    change, message = CASES[case]
    prices, weights = good()
    kwargs = dict(prices=prices, weights=weights)
    kwargs.update(change(prices, weights))
    with pytest.raises(ValueError, match=message):
        simulate(kwargs.pop("prices"), kwargs.pop("weights"), config(), **kwargs)


def test_the_good_case_gives_the_worked_fills_cash_and_equity() -> None:
    """The good input with 10 bps costs, worked by hand (lag 1: a decision at the close of
    session d executes at the close of d+1; cost = 0.001 x abs(notional), paid from cash).

    Mon 03-01 (A 100, B 50): decide A 0.5, B 0.5; nothing held: cash = equity = 1000.
    Tue 03-02 (A 101, B 51): pre-trade equity E1 = 1000. Buy A 0.5 x 1000 / 101 units
      (notional 500, cost 0.5), buy B 0.5 x 1000 / 51 (notional 500, cost 0.5).
      cash = 1000 - 500 - 0.5 - 500 - 0.5 = -1; equity = -1 + 500 + 500 = 999.
    Wed 03-03 (A 102, B 52): decide A 1.0, B 0; marks only: equity = -1 + qA x 102 + qB x 52.
    Thu 03-04 (A 103, B 53): E3 = -1 + qA x 103 + qB x 53. Buy A to E3 / 103 units
      (notional E3 - qA x 103), sell all B (notional -qB x 53); cash = -1 - the two notionals
      - their costs = -(costs) (the fully invested book pays its costs from cash);
      equity = E3 - costs.
    """
    prices, weights = good()
    r = simulate(prices, weights, config(transaction_cost_bps=10.0))
    qa, qb = 500.0 / 101.0, 500.0 / 51.0
    e3 = -1.0 + qa * 103.0 + qb * 53.0
    buy_a, sell_b = e3 - qa * 103.0, -qb * 53.0
    costs3 = 0.001 * (abs(buy_a) + abs(sell_b))
    f = r.fills
    assert f["date"].dt.strftime("%m-%d").tolist() == ["03-02", "03-02", "03-04", "03-04"]
    assert f["instrument"].astype(str).tolist() == ["A", "B", "A", "B"]
    assert f["side"].astype(str).tolist() == ["buy", "buy", "buy", "sell"]
    assert f["reason"].astype(str).tolist() == ["rebalance"] * 4
    rel = dict(rel=1e-12)
    assert f["price"].tolist() == [101.0, 51.0, 103.0, 53.0]
    assert f["quantity"].tolist() == pytest.approx([qa, qb, e3 / 103.0 - qa, -qb], **rel)
    assert f["notional"].tolist() == pytest.approx([500.0, 500.0, buy_a, sell_b], **rel)
    assert f["cost"].tolist() == pytest.approx(
        [0.5, 0.5, 0.001 * abs(buy_a), 0.001 * abs(sell_b)], **rel
    )
    assert r.cash.tolist() == pytest.approx([1000.0, -1.0, -1.0, -costs3], **rel)
    assert r.equity.tolist() == pytest.approx(
        [1000.0, 999.0, -1.0 + qa * 102.0 + qb * 52.0, e3 - costs3], **rel
    )
    # B's round trip: bought qb at 51 (cost 0.5), sold at 53 (cost 0.001 x qb x 53)
    assert len(r.round_trips) == 1
    trip = r.round_trips.iloc[0]
    assert (trip["instrument"], trip["quantity"]) == ("B", pytest.approx(qb, **rel))
    pnl = qb * 53.0 - 500.0 - 0.5 - 0.001 * qb * 53.0
    assert trip["pnl"] == pytest.approx(pnl, **rel)
    assert trip["return"] == pytest.approx(pnl / 500.0, **rel)
    assert r.end_state.open_lots.instrument == ("A",)


def test_weights_outside_the_simulated_range_are_ignored_not_rejected() -> None:
    prices, weights = good()
    early = pd.DataFrame({"A": [np.nan]}, index=pd.DatetimeIndex(["2021-02-27"]))  # a Saturday
    r = simulate(prices, pd.concat([early, weights]).fillna(0.0), config(start="2021-03-01"))
    assert len(r.fills) == 4


def test_weight_columns_may_be_a_subset_in_any_order() -> None:
    prices, _ = good()
    prices = prices.assign(C=[10.0, 10.0, 10.0, 10.0])
    weights = pd.DataFrame({"C": [0.2], "A": [0.3]}, index=prices.index[:1])
    r = simulate(prices, weights, config())
    assert r.positions.iloc[1].tolist() == pytest.approx([0.3 * 1000.0, 0.0, 0.2 * 1000.0])


def test_price_rows_that_are_not_sessions_are_dropped_with_a_warning() -> None:
    prices, weights = good()
    saturday = pd.DataFrame({"A": [1.0], "B": [1.0]}, index=pd.DatetimeIndex(["2021-03-06"]))
    monday = pd.DataFrame({"A": [104.0], "B": [54.0]}, index=pd.DatetimeIndex(["2021-03-08"]))
    extended = pd.concat([prices, saturday, monday])
    with pytest.warns(UserWarning, match=r"1 row\(s\) are not XNYS sessions .*2021-03-06"):
        r = simulate(extended, weights, config())
    assert pd.Timestamp("2021-03-06") not in r.sessions
    assert len(r.sessions) == 5


@pytest.mark.filterwarnings("ignore:weights. none of the")
def test_nan_weights_are_rejected_even_on_rows_not_acted_upon() -> None:
    prices, weights = good()
    with pytest.raises(ValueError, match=r"\(2021-03-01, A\)"):
        simulate(prices, _set(weights, 0, "A", np.nan), config(rebalance_frequency="monthly"))
