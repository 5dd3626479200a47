"""Property-based: accounting identities hold on random inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macro_pipeline.engine import simulate
from macro_pipeline_tests.engine.frames import config, sessions


@st.composite
def portfolios(draw):
    n_sessions = draw(st.integers(3, 25))
    n_inst = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    idx = sessions("2021-03-01", n_sessions)
    cols = [f"I{j}" for j in range(n_inst)]
    prices = 50 * np.exp(np.cumsum(rng.normal(0, 0.05, (n_sessions, n_inst)), axis=0))
    prices[rng.random(prices.shape) < draw(st.sampled_from([0.0, 0.1, 0.3]))] = np.nan
    n_dec = draw(st.integers(0, n_sessions))
    rows = np.sort(rng.choice(n_sessions, n_dec, replace=False))
    weights = rng.normal(0, draw(st.sampled_from([0.2, 0.6, 1.5])), (n_dec, n_inst))
    universe = None
    if draw(st.booleans()):
        universe = pd.DataFrame(rng.random((n_sessions, n_inst)) > 0.2, index=idx, columns=cols)
    kw = dict(
        execution_lag=draw(st.integers(0, 3)),
        transaction_cost_bps=draw(st.sampled_from([0.0, 5.0, 50.0])),
        slippage_bps=draw(st.sampled_from([0.0, 2.0])),
        max_leverage=draw(st.sampled_from([0.5, 1.0, 3.0])),
        risk_free=draw(st.sampled_from([0.0, 0.05])),
        borrow_cost_bps=draw(st.sampled_from([0.0, 100.0])),
        rebalance_frequency=draw(st.sampled_from(["daily", "weekly"])),
    )
    return (
        pd.DataFrame(prices, index=idx, columns=cols),
        pd.DataFrame(weights, index=idx[rows], columns=cols),
        kw,
        universe,
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(portfolios())
def test_equity_is_cash_plus_positions_at_every_session(case) -> None:
    prices, weights, kw, universe = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lag 0 warns; weekly on a short frame may warn
        r = simulate(prices, weights, config(**kw), universe=universe)
    scale = max(
        1.0, float(r.positions.abs().to_numpy().max(initial=0.0)), float(r.cash.abs().max())
    )
    np.testing.assert_allclose(
        r.equity, r.cash + r.positions.sum(axis=1), rtol=0, atol=1e-9 * scale
    )
    # the fill log explains every change in cash that is not carry
    flows = r.cashflows
    cash_change = np.diff(np.r_[1000.0, r.cash.to_numpy()])
    traded = r.fills.groupby("date")[["notional", "cost"]].sum().reindex(r.sessions, fill_value=0.0)
    explained = (
        -traded["notional"] - traded["cost"] + flows["interest"] - flows["borrow"] - flows["funding"]
        + flows["dividends"]
    )  # fmt: skip
    np.testing.assert_allclose(cash_change, explained, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(r.costs.sum(), r.fills["cost"].sum(), rtol=1e-12, atol=1e-12)
    assert (r.fills.loc[r.fills["side"] == "none", "quantity"] == 0).all()
    assert (r.drawdown <= 1e-15).all()
    # positions never open outside the universe
    if universe is not None:
        assert (r.positions.to_numpy()[~universe.to_numpy()] == 0).all()
