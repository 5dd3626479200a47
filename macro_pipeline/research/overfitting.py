"""Overfitting statistics of a parameter sweep: pure numpy/scipy, no I/O.

- ``deflated_sharpe``: the Deflated Sharpe Ratio (Bailey and Lopez de Prado, "The Deflated
  Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and Non-Normality",
  JPM 40(5), 2014). With SR the chosen configuration's per-period Sharpe ratio over T returns
  of skewness g3 and (non-excess) kurtosis g4, N trials and V the variance of the trials'
  per-period Sharpe ratios:
  1. SR0 = sqrt(V) x ((1 - gamma) Z^-1[1 - 1/N] + gamma Z^-1[1 - 1/(N e)]), the expected
     maximum Sharpe ratio of N unskilled trials (gamma = Euler-Mascheroni);
  2. DSR = Z[(SR - SR0) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2)], the probabilistic
     Sharpe ratio of SR against the benchmark SR0.
  The paper's worked example (N = 100, V = 1/2 annualised, T = 1250 daily returns, annualised
  SR = 2.5, g3 = -3, g4 = 10 -> SR0 = 0.1132 per day, DSR = 0.9004) is a test.
- ``pbo_cscv``: the Probability of Backtest Overfitting by combinatorially symmetric
  cross-validation (Bailey, Borwein, Lopez de Prado and Zhu, "The Probability of Backtest
  Overfitting", J. Computational Finance 20(4), 2017; SSRN 2013/2015). The T x N return matrix
  is cut into S equal blocks of rows (S even, default 16); for each of the C(S, S/2) choices of
  half the blocks as the training set (the rest is the test set):
  1. the Sharpe ratio of every configuration on the training rows and on the test rows;
  2. n* = the configuration with the best training Sharpe (lowest index on ties);
  3. its relative rank on the test rows, w = rank / (N + 1) (rank 1 = worst, N = best);
  4. the logit lambda = ln(w / (1 - w)).
  PBO = the share of combinations with lambda <= 0: how often the in-sample winner is at or below
  the median out of sample. Sharpe ratios here are per period (the ranking is unaffected).
  Rows past S x floor(T / S) (the last T mod S) are dropped, as in the paper's equal blocks.
- ``min_backtest_length``: the minimum backtest length in years (Bailey, Borwein, Lopez de
  Prado and Zhu, "Pseudo-mathematics and financial charlatanism", Notices of the AMS 61(5),
  2014): MinBTL = (((1 - gamma) Z^-1[1 - 1/N] + gamma Z^-1[1 - 1/(N e)]) / E[max])^2, the years
  of data needed so that N unskilled trials are not expected to reach an annualised Sharpe of
  E[max] (default 1). Its upper bound is 2 ln N / E[max]^2. Example from the paper: N = 45
  trials reach an expected maximum Sharpe of 1 on about 5 years of data.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_Z = NormalDist()  # the standard normal (stdlib: no scipy at run time; the tests cross-check with scipy)


def _moments(x: np.ndarray) -> tuple[float, float]:
    """Population skewness and (non-excess) kurtosis, scipy's ``skew``/``kurtosis(fisher=False)``
    with ``bias=True``: m3 / m2^1.5 and m4 / m2^2 of the deviations from the mean."""
    d = x - x.mean()
    m2 = float(np.mean(d**2))
    if m2 == 0:
        return float("nan"), float("nan")
    return float(np.mean(d**3)) / m2**1.5, float(np.mean(d**4)) / m2**2


def expected_max_z(n_trials: int) -> float:
    """E[max of n_trials standard normals], the false-strategy approximation
    (1 - gamma) Z^-1[1 - 1/N] + gamma Z^-1[1 - 1/(N e)]; 0 for a single trial."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if n_trials == 1:
        return 0.0
    n = float(n_trials)
    return (1 - EULER_GAMMA) * _Z.inv_cdf(1 - 1 / n) + EULER_GAMMA * _Z.inv_cdf(1 - 1 / (n * math.e))


def sharpe_per_period(returns: np.ndarray) -> np.ndarray:
    """mean / sample std (ddof=1) along axis 0; NaN where the std is 0 or fewer than 2 rows."""
    r = np.asarray(returns, dtype=np.float64)
    n = r.shape[0]
    if n < 2:
        return np.full(r.shape[1:], np.nan)
    sd = r.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, r.mean(axis=0) / sd, np.nan)


@dataclass(frozen=True)
class DeflatedSharpe:
    dsr: float  # probability that the chosen configuration's true Sharpe exceeds sr0
    sharpe: float  # per period
    sr0: float  # expected maximum per-period Sharpe of n_trials unskilled trials
    n_trials: int
    sharpe_variance: float  # of the trials' per-period Sharpe ratios
    n_obs: int
    skewness: float
    kurtosis: float  # non-excess (normal = 3)


def deflated_sharpe_from_moments(
    sharpe: float, n_obs: int, n_trials: int, sharpe_variance: float, skewness: float,
    kurtosis: float,
) -> DeflatedSharpe:  # fmt: skip
    """DSR from its ingredients, all per period (see the module docstring)."""
    if n_obs < 2:
        raise ValueError(f"n_obs must be >= 2, got {n_obs}")
    if not (sharpe_variance >= 0):
        raise ValueError(f"sharpe_variance must be >= 0, got {sharpe_variance}")
    sr0 = math.sqrt(sharpe_variance) * expected_max_z(n_trials)
    denom = 1 - skewness * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if not denom > 0:  # also NaN moments (a constant series)
        dsr = float("nan")
    else:
        dsr = float(_Z.cdf((sharpe - sr0) * math.sqrt(n_obs - 1) / math.sqrt(denom)))
    return DeflatedSharpe(dsr, sharpe, sr0, n_trials, sharpe_variance, n_obs, skewness, kurtosis)


def deflated_sharpe(returns: np.ndarray, chosen: int) -> DeflatedSharpe:
    """DSR of configuration ``chosen`` of a T x N matrix of per-period returns (N = trials).
    Skewness and kurtosis are the population moments of its returns (scipy ``bias=True``),
    the variance of the trials' Sharpe ratios uses ddof=1 over the finite ones."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2:
        raise ValueError(f"returns must be T x N with T >= 2, got shape {r.shape}")
    sr = sharpe_per_period(r)
    finite = sr[np.isfinite(sr)]
    variance = float(finite.var(ddof=1)) if len(finite) > 1 else 0.0
    skew, kurt = _moments(r[:, chosen])
    return deflated_sharpe_from_moments(float(sr[chosen]), r.shape[0], r.shape[1], variance, skew, kurt)


@dataclass(frozen=True)
class PboResult:
    pbo: float
    logits: np.ndarray  # one per combination, in ``itertools.combinations`` order
    n_blocks: int
    n_combinations: int
    is_sharpe: np.ndarray  # combinations x N, per period (training rows)
    oos_sharpe: np.ndarray  # combinations x N, per period (test rows)
    chosen: np.ndarray  # combinations: the in-sample best configuration


def pbo_cscv(returns: np.ndarray, n_blocks: int = 16, *, keep_sharpes: bool = False) -> PboResult:
    """Probability of Backtest Overfitting by CSCV over a T x N return matrix (module docstring).

    Vectorised: per-block sums of r and r^2 and counts (S x N), then each combination's
    training and test moments are one matrix product (C x S) @ (S x N). NaN returns are refused.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"returns must be T x N, got shape {r.shape}")
    T, N = r.shape
    if not isinstance(n_blocks, int) or n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"n_blocks must be an even integer >= 2, got {n_blocks!r}")
    if N < 2:
        raise ValueError(f"PBO needs at least 2 configurations, got {N}")
    if T // n_blocks < 2:
        raise ValueError(f"{T} rows are too few for {n_blocks} blocks of at least 2 rows")
    if not np.isfinite(r).all():
        raise ValueError("returns hold NaN or infinite values")
    rows = T // n_blocks
    blocks = r[: rows * n_blocks].reshape(n_blocks, rows, N)
    s1, s2 = blocks.sum(axis=1), (blocks**2).sum(axis=1)  # S x N
    half = n_blocks // 2
    combos = np.array(list(itertools.combinations(range(n_blocks), half)), dtype=np.intp)
    train = np.zeros((len(combos), n_blocks))
    train[np.arange(len(combos))[:, None], combos] = 1.0
    n = rows * half
    is_s1, is_s2 = train @ s1, train @ s2
    oos_sr = _sharpe_from_sums(s1.sum(axis=0) - is_s1, s2.sum(axis=0) - is_s2, n)
    is_sr = _sharpe_from_sums(is_s1, is_s2, n)
    chosen = np.argmax(np.where(np.isfinite(is_sr), is_sr, -np.inf), axis=1)
    oos_best = oos_sr[np.arange(len(combos)), chosen]
    oos_f = np.where(np.isfinite(oos_sr), oos_sr, -np.inf)
    rank = (oos_f < np.where(np.isfinite(oos_best), oos_best, -np.inf)[:, None]).sum(axis=1) + 1
    w = rank / (N + 1)
    logits = np.log(w / (1 - w))
    return PboResult(
        float((logits <= 0).mean()), logits, n_blocks, len(combos),
        is_sr if keep_sharpes else np.empty((0, N)), oos_sr if keep_sharpes else np.empty((0, N)),
        chosen,
    )  # fmt: skip


def _sharpe_from_sums(s1: np.ndarray, s2: np.ndarray, n: int) -> np.ndarray:
    """mean / sample std from sums of r and r^2 over n rows; NaN where the std is 0. Consumes
    its arguments (in place: the arrays are combinations x configurations, 100 MB at 1,000)."""
    mean = np.divide(s1, n, out=s1)
    var = np.subtract(s2, n * mean * mean, out=s2)
    np.maximum(var, 0.0, out=var)
    var /= n - 1
    sd = np.sqrt(var, out=var)
    sd[sd == 0] = np.nan
    return np.divide(mean, sd, out=mean)


def min_backtest_length(n_trials: int, target_sharpe: float = 1.0) -> float:
    """Years of data below which N unskilled trials are expected to show an annualised Sharpe
    of ``target_sharpe`` (module docstring). 0 for one trial."""
    if not target_sharpe > 0:
        raise ValueError(f"target_sharpe must be > 0, got {target_sharpe}")
    return (expected_max_z(n_trials) / target_sharpe) ** 2


def min_backtest_length_bound(n_trials: int, target_sharpe: float = 1.0) -> float:
    """The paper's upper bound 2 ln N / E[max]^2 (years)."""
    return 2 * math.log(n_trials) / target_sharpe**2
