"""`BacktestResult.pnl_attribution`: P&L by instrument that adds up exactly to the equity change,
each source equal to the kernel's own session totals, and windows that add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from macro_pipeline.engine import simulate
from macro_pipeline_tests.engine.frames import config, panel, weights_at


def _rich_run(**cfg_extra):
    """Shorts with borrow, a split, dividends, a missing price, a universe exit, a step cash rate."""
    rng = np.random.default_rng(3)
    n, names = 40, ["A", "B", "C", "D"]
    prices = panel("2021-03-01", **{k: list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))) for k in names})
    prices.iloc[5:8, 1] = np.nan
    prices.iloc[20:, 0] *= 0.5  # unadjusted 2-for-1 split of A on session 20
    weights = pd.DataFrame(rng.normal(0, 0.4, (n, 4)), index=prices.index, columns=names)
    universe = pd.DataFrame(True, index=prices.index, columns=names)
    universe.iloc[25:33, 3] = False
    events = dict(
        splits=pd.DataFrame({"ex_date": [prices.index[20]], "instrument": ["A"], "ratio": [2.0]}),
        dividends=pd.DataFrame({"ex_date": prices.index[[10, 21]], "instrument": ["C", "C"], "amount": [0.5, 0.7]}),
        universe=universe,
    )
    kw = dict(execution_lag=2, transaction_cost_bps=3.0, max_leverage=1.5, borrow_cost_bps=40.0,
              risk_free={"2021-01-01": 0.02, "2021-03-20": 0.03}, **cfg_extra)
    return simulate(prices, weights, config(**kw), **events)


def _perp_run():
    rng = np.random.default_rng(5)
    prices = panel("2021-01-01", calendar="24/7", PERP=list(30000 * np.exp(np.cumsum(rng.normal(0, 0.03, 30)))))
    stamps = pd.date_range("2020-12-31 08:00", periods=3 * 32, freq="8h", tz="UTC")
    funding = pd.DataFrame({"ts": stamps, "instrument": "PERP", "rate": rng.normal(1e-4, 1e-4, len(stamps))})
    weights = pd.DataFrame({"PERP": rng.choice([-1.0, 0.5, 1.0], 30)}, index=prices.index)
    return simulate(prices, weights, config(calendar="24/7", transaction_cost_bps=2.0), funding=funding)


@pytest.mark.parametrize("make", [_rich_run, _perp_run])
def test_attribution_adds_up_to_the_equity_change_and_each_source_to_the_kernel(make) -> None:
    r = make()
    a = r.pnl_attribution()
    change = r.equity.iloc[-1] - r._prep.prev_equity
    assert a["total"].sum() == pytest.approx(change, rel=1e-10, abs=1e-6)
    flows = r.cashflows
    assert -a["funding"].sum() == pytest.approx(flows["funding"].sum(), rel=1e-10, abs=1e-9)
    assert a["dividends"].sum() == pytest.approx(flows["dividends"].sum(), rel=1e-10, abs=1e-9)
    assert -a["borrow"].sum() == pytest.approx(flows["borrow"].sum(), rel=1e-10, abs=1e-9)
    assert a["interest"].sum() == pytest.approx(flows["interest"].sum(), rel=1e-10, abs=1e-9)
    assert -a["costs"].sum() == pytest.approx(flows["costs"].sum(), rel=1e-10, abs=1e-9)
    assert a.loc["cash", ["price", "funding", "dividends", "borrow", "costs"]].eq(0).all()


def test_rich_run_has_every_source_and_windows_add_up() -> None:
    r = _rich_run()
    a = r.pnl_attribution()
    assert a.loc["C", "dividends"] != 0 and a["borrow"].sum() < 0 and a.loc["cash", "interest"] > 0
    cut = r.sessions[17]
    first, second = r.pnl_attribution(end=cut), r.pnl_attribution(start=cut + pd.Timedelta(days=1))
    pd.testing.assert_frame_equal(first + second, a, rtol=1e-10, atol=1e-6)
    eq_cut = r.equity.loc[cut]
    assert second["total"].sum() == pytest.approx(r.equity.iloc[-1] - eq_cut, rel=1e-10, abs=1e-6)


def test_hand_worked_attribution_of_one_long_position() -> None:
    """Decide weight 1 on day 0; bought at the close of day 1 at 100 with the whole equity (1,000:
    10 units, 5 bps = 0.50 of costs from cash); marked at 105 and 110. Price P&L = 10 x (110 -
    100), costs = -1,000 x 5e-4, nothing else; total = the equity change."""
    prices = panel("2021-03-01", X=[100.0, 100.0, 105.0, 110.0])
    r = simulate(prices, weights_at(prices, {0: {"X": 1.0}}), config(transaction_cost_bps=5.0))
    a = r.pnl_attribution()
    assert a.loc["X", "price"] == pytest.approx(10 * (110.0 - 100.0), rel=1e-14)
    assert a.loc["X", "costs"] == pytest.approx(-1000.0 * 5e-4, rel=1e-14)
    assert a.loc["X", ["funding", "dividends", "borrow", "interest"]].eq(0).all()
    assert a["total"].sum() == pytest.approx(10 * 10.0 - 0.5, rel=1e-14)
    assert r.equity.iloc[-1] - 1000.0 == pytest.approx(99.5, rel=1e-14)


@pytest.mark.parametrize("make", [_rich_run, _perp_run])
def test_records_by_window_equal_the_frame_of_each_window(make) -> None:
    """`pnl_attribution_records` (what a pipeline stretch stores per month) holds exactly the
    numbers of `pnl_attribution` over each window, with the all-zero rows left out."""
    result = make()
    s = result.sessions
    windows = [(s[0], s[6]), (s[7], s[19]), (s[20], s[-1]), (s[3], s[3])]
    for (start, end), records in zip(windows, result.pnl_attribution_records(windows), strict=True):
        frame = result.pnl_attribution(start, end)
        frame = frame[frame.drop(columns="total").abs().sum(axis=1) > 0]
        expected = {str(i): {k: float(v) for k, v in row.items()} for i, row in frame.iterrows()}
        assert records == expected
