"""Overfitting statistics: the papers' worked examples, hand-worked small cases, simulations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from macro_pipeline.research.overfitting import (
    EULER_GAMMA,
    deflated_sharpe,
    deflated_sharpe_from_moments,
    expected_max_z,
    min_backtest_length,
    min_backtest_length_bound,
    pbo_cscv,
)


def test_dsr_reproduces_bailey_lopez_de_prado_2014_worked_example():
    # Section "A numerical example": N = 100 trials, V[SR_n] = 1/2 annualised, 5 years of daily
    # returns (T = 1250), annualised SR 2.5, skewness -3, kurtosis 10 -> SR0 = 0.1132, DSR = 0.9004.
    out = deflated_sharpe_from_moments(
        sharpe=2.5 / math.sqrt(250), n_obs=1250, n_trials=100, sharpe_variance=0.5 / 250,
        skewness=-3.0, kurtosis=10.0,
    )  # fmt: skip
    assert out.sr0 == pytest.approx(0.1132, abs=5e-5)
    assert out.dsr == pytest.approx(0.9004, abs=2e-4)
    # the formula, written out
    z = (1 - EULER_GAMMA) * stats.norm.ppf(0.99) + EULER_GAMMA * stats.norm.ppf(1 - 1 / (100 * math.e))
    sr0 = math.sqrt(0.5 / 250) * z
    sr = 2.5 / math.sqrt(250)
    expected = stats.norm.cdf((sr - sr0) * math.sqrt(1249) / math.sqrt(1 + 3 * sr + 9 / 4 * sr**2))
    assert out.dsr == pytest.approx(expected, abs=1e-12)


def test_dsr_from_a_return_matrix_uses_its_moments():
    rng = np.random.default_rng(5)
    r = rng.normal(0.0005, 0.01, size=(500, 7))
    out = deflated_sharpe(r, chosen=3)
    sr = r.mean(axis=0) / r.std(axis=0, ddof=1)
    assert out.sharpe == pytest.approx(sr[3], abs=1e-15)
    assert out.sharpe_variance == pytest.approx(sr.var(ddof=1), abs=1e-15)
    assert out.n_trials == 7 and out.n_obs == 500
    assert out.skewness == pytest.approx(stats.skew(r[:, 3]), abs=1e-12)
    assert out.kurtosis == pytest.approx(stats.kurtosis(r[:, 3], fisher=False), abs=1e-12)
    ref = deflated_sharpe_from_moments(sr[3], 500, 7, sr.var(ddof=1), out.skewness, out.kurtosis)
    assert out.dsr == ref.dsr


def test_one_trial_has_no_selection_benchmark():
    assert expected_max_z(1) == 0.0
    out = deflated_sharpe_from_moments(0.0, 100, 1, 0.0, 0.0, 3.0)
    assert out.dsr == pytest.approx(0.5)  # SR = SR0 = 0: a coin flip


def test_min_backtest_length_reproduces_the_papers_example():
    # Notices of the AMS 2014: with 5 years of data no more than 45 independent configurations
    # should be tried, or the best is expected to show an annualised Sharpe of 1 with no skill.
    assert min_backtest_length(45) == pytest.approx(5.0, abs=0.05)
    assert min_backtest_length(45) < min_backtest_length_bound(45) == pytest.approx(2 * math.log(45))
    assert min_backtest_length(1000, 2.0) == pytest.approx(expected_max_z(1000) ** 2 / 4)
    assert min_backtest_length(1) == 0.0


def test_pbo_hand_worked_two_blocks():
    # 2 blocks: C(2,1) = 2 combinations. Config 0 is good in block 0 and bad in block 1;
    # config 1 the reverse, config 2 mediocre in both. Each half's winner ranks last OOS.
    b0 = np.array([[0.02, -0.01, 0.001], [0.03, -0.02, 0.002], [0.01, 0.0, 0.0005]])
    b1 = np.array([[-0.01, 0.02, 0.001], [-0.02, 0.03, 0.002], [0.0, 0.01, 0.0005]])
    out = pbo_cscv(np.vstack([b0, b1]), n_blocks=2, keep_sharpes=True)
    assert out.n_combinations == 2
    assert list(out.chosen) == [0, 1]
    # the winner is the worst of 3 out of sample: rank 1, w = 1/4, logit ln(1/3)
    np.testing.assert_allclose(out.logits, [math.log(1 / 3)] * 2)
    assert out.pbo == 1.0
    sr = b0.mean(axis=0) / b0.std(axis=0, ddof=1)
    np.testing.assert_allclose(out.is_sharpe[0], sr, rtol=1e-12)


def test_pbo_matches_a_brute_force_loop():
    rng = np.random.default_rng(11)
    r = rng.normal(0, 0.01, (64, 6)) + np.linspace(0, 0.003, 6)
    out = pbo_cscv(r, n_blocks=8)
    blocks = np.split(r, 8)
    logits = []
    for train in itertools.combinations(range(8), 4):
        ins = np.vstack([blocks[i] for i in train])
        oos = np.vstack([blocks[i] for i in range(8) if i not in train])
        best = int(np.argmax(ins.mean(0) / ins.std(0, ddof=1)))
        sr_oos = oos.mean(0) / oos.std(0, ddof=1)
        w = stats.rankdata(sr_oos)[best] / 7
        logits.append(math.log(w / (1 - w)))
    np.testing.assert_allclose(out.logits, logits, atol=1e-12)
    assert out.pbo == np.mean(np.array(logits) <= 0)


def test_pbo_of_pure_noise_is_near_one_half():
    # 40 independent grids of 50 noise strategies over 1,000 days, 16 blocks. One grid's PBO is
    # widely spread (its 12,870 combinations share their data): in a 40-seed simulation its
    # standard deviation was 0.16, so the mean of 40 has a standard error of 0.16 / sqrt(40) =
    # 0.025; the tolerance is 3 standard errors, 0.075.
    pbos = [pbo_cscv(np.random.default_rng(s).normal(0, 0.01, (1000, 50)), 16).pbo for s in range(40)]
    assert abs(np.mean(pbos) - 0.5) < 0.075


def test_pbo_with_a_real_edge_is_near_zero():
    rng = np.random.default_rng(1)
    r = rng.normal(0, 0.01, (1000, 50))
    r[:, 7] += 0.002  # an annualised Sharpe of about 3 in one configuration
    out = pbo_cscv(r, 16)
    assert out.pbo < 0.05
    assert (out.chosen == 7).mean() > 0.95


def test_pbo_refuses_bad_input_naming_it():
    r = np.zeros((100, 3))
    with pytest.raises(ValueError, match="n_blocks must be an even integer >= 2, got 5"):
        pbo_cscv(r, 5)
    with pytest.raises(ValueError, match="at least 2 configurations, got 1"):
        pbo_cscv(r[:, :1])
    with pytest.raises(ValueError, match="10 rows are too few for 16 blocks"):
        pbo_cscv(r[:10])
    r[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pbo_cscv(r)
