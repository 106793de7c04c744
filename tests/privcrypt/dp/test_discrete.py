"""Exact discrete Gaussian sampler (Canonne, Kamath & Steinke, NeurIPS 2020): the empirical
pmf against the exact normalized pmf, exactness of the Bernoulli(exp(-gamma)) steps, and
that privcrypt.rng is the only randomness."""

import math
import random
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from privcrypt.dp import add_discrete_gaussian_noise, discrete_gaussian_pmf, discrete_gaussian_sigma2
from privcrypt.dp import sample_discrete_gaussian
from privcrypt.dp import discrete as dg
from privcrypt.rng import DeterministicRandom


def chi2_pvalue(samples, sigma_model):
    """Pearson chi-square of integer samples against N_Z(0, sigma_model^2); bins with an
    expected count below 5 are merged into the two tails."""
    n = samples.size
    lo, hi = int(samples.min()), int(samples.max())
    half = int(12 * float(sigma_model) + 12)
    support = np.arange(-half, half + 1)
    expected = n * discrete_gaussian_pmf(sigma_model, support)
    keep = expected >= 5
    inner = support[keep]
    counts = np.array([np.count_nonzero(samples == x) for x in inner], dtype=float)
    exp_in = expected[keep]
    left = np.count_nonzero(samples < inner[0]), n * discrete_gaussian_pmf(sigma_model, np.arange(-half, inner[0])).sum()
    right = np.count_nonzero(samples > inner[-1]), n * discrete_gaussian_pmf(sigma_model, np.arange(inner[-1] + 1, half + 1)).sum()
    obs, ex = list(counts), list(exp_in)
    for o, e in (left, right):
        if e > 0:
            obs.append(o)
            ex.append(e)
        else:
            assert o == 0, "a sample outside +-12 sigma"
    obs, ex = np.array(obs), np.array(ex)
    assert lo >= -half and hi <= half
    stat = float(np.sum((obs - ex) ** 2 / ex))
    return float(stats.chi2.sf(stat, obs.size - 1))


@pytest.mark.parametrize("sigma", [0.5, 1, 3, 10, 0.3, Fraction(7, 3)])
def test_empirical_pmf_matches_exact_pmf(sigma):
    x = sample_discrete_gaussian(sigma, 150_000, rng=DeterministicRandom(f"chi2-{sigma}"))
    assert x.dtype == np.int64 and x.shape == (150_000,)
    assert chi2_pvalue(x, sigma) > 1e-4


@pytest.mark.parametrize("sigma", [0.5, 3])
def test_chi_square_has_power_against_a_wrong_sigma(sigma):
    # The same test must reject a 5 % wrong sigma, else the test above proves nothing.
    x = sample_discrete_gaussian(sigma, 150_000, rng=DeterministicRandom(f"power-{sigma}"))
    assert chi2_pvalue(x, sigma * 1.05) < 1e-6


def test_python_integer_path_matches_pmf():
    # The exact fallback (sigma > 38_000 or overflow-prone candidates), driven directly at
    # a small sigma so that a chi-square is affordable.
    rng = DeterministicRandom("slow")
    s2 = Fraction(9, 4)
    x = np.array([dg._sample_exact(s2, 2, rng) for _ in range(4000)])
    assert chi2_pvalue(x, 1.5) > 1e-4


def test_large_sigma_uses_exact_path_and_has_right_scale():
    x = sample_discrete_gaussian(50_000, 600, rng=DeterministicRandom(1))
    assert not dg._params(50_000)[2]
    assert 0.8 < x.std() / 50_000 < 1.2


@pytest.mark.parametrize("num,den", [(0, 7), (1, 3), (5, 5), (123456789, 2**61 + 1)])
def test_bernoulli_exp_frac_frequency(num, den):
    m = 120_000
    out = dg._bern_exp_frac(np.full(m, num, dtype=np.int64), den, DeterministicRandom(f"b{num}"))
    p = math.exp(-num / den)
    assert abs(out.mean() - p) < 5 * math.sqrt(p * (1 - p) / m) + 1e-12


@pytest.mark.parametrize("y", [0, 1, 4, 9, 25])
def test_gaussian_acceptance_is_exact_including_floor_fixup(y):
    # Acceptance probability of candidate y must be exp(-(|y| - s2/t)^2 / (2 s2)), also when
    # gamma > 1 (the floor estimate and its mod-2^64 correction).
    p, q, t = 9, 1, 4  # sigma = 3
    m = 100_000
    acc = dg._accept_gaussian(np.full(m, y, dtype=np.int64), p, q, t, DeterministicRandom(f"a{y}"))
    gamma = (abs(y) - Fraction(p, q) / t) ** 2 / (2 * Fraction(p, q))
    prob = math.exp(-float(gamma))
    assert abs(acc.mean() - prob) < 5 * math.sqrt(prob * (1 - prob) / m) + 1e-9


def test_overflowing_candidate_goes_to_the_exact_path():
    y = np.array([10**17, -(10**17), 3], dtype=np.int64)
    acc = dg._accept_gaussian(y, 9, 1, 4, DeterministicRandom(0))
    assert not acc[0] and not acc[1]  # probability exp(-1e33)


def test_sigma2_is_exact_or_rounded_up():
    assert discrete_gaussian_sigma2(0.5) == Fraction(1, 4)
    assert discrete_gaussian_sigma2(3) == 9
    assert discrete_gaussian_sigma2(Fraction(7, 3)) == Fraction(49, 9)
    for s in (0.1, 0.7, 1.3, 100.7, 12345.678, 0.003):
        s2 = discrete_gaussian_sigma2(s)
        assert s2 >= Fraction(s) ** 2
        assert float(s2) / s**2 - 1 < 1e-6
    assert not sample_discrete_gaussian(0, (3, 2), rng=DeterministicRandom(0)).any()
    with pytest.raises(ValueError):
        sample_discrete_gaussian(-1, 3, rng=DeterministicRandom(0))
    with pytest.raises(ValueError):
        sample_discrete_gaussian(float("nan"), 3, rng=DeterministicRandom(0))
    with pytest.raises(TypeError):
        sample_discrete_gaussian(1.0, 3, rng=np.random.default_rng(0))


def test_reproducible_with_deterministic_random_and_shape():
    a = sample_discrete_gaussian(2.5, (4, 5), rng=DeterministicRandom("r"))
    b = sample_discrete_gaussian(2.5, (4, 5), rng=DeterministicRandom("r"))
    c = sample_discrete_gaussian(2.5, (4, 5), rng=DeterministicRandom("other"))
    assert a.shape == (4, 5) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert sample_discrete_gaussian(2.5, rng=DeterministicRandom(1)).shape == ()


def test_uses_only_privcrypt_rng(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("numpy.random / random used")

    for name in ("default_rng", "normal", "randint", "random", "rand", "randn", "uniform", "choice", "shuffle", "permutation"):
        monkeypatch.setattr(np.random, name, boom)
    for name in ("random", "randrange", "randint", "getrandbits", "uniform"):
        monkeypatch.setattr(random, name, boom)
    x = sample_discrete_gaussian(4.0, 5000, rng=DeterministicRandom(2))
    assert x.std() > 3
    sample_discrete_gaussian(1.0, 10)  # default SystemRandom


def test_add_discrete_gaussian_noise_central():
    rng = DeterministicRandom("central")
    vals = np.arange(10_000, dtype=np.int64) - 5000
    out = add_discrete_gaussian_noise(vals, 20, rng=rng)
    assert out.dtype == np.int64 and abs((out - vals).std() - 20) < 1
    mod = add_discrete_gaussian_noise(np.zeros(1000, dtype=np.uint64), 3, modulus=2**16, rng=rng)
    assert mod.dtype == np.uint64 and int(mod.max()) < 2**16
    signed = mod.astype(np.int64)
    signed[signed >= 2**15] -= 2**16
    assert abs(signed.std() - 3) < 0.5
    odd = add_discrete_gaussian_noise(np.array([0, 5], dtype=np.int64), 1, modulus=7, rng=rng)
    assert int(odd.max()) < 7
    with pytest.raises(TypeError):
        add_discrete_gaussian_noise(np.zeros(3), 1.0, rng=rng)
    with pytest.raises(ValueError):
        add_discrete_gaussian_noise(np.array([2**63 - 1]), 5.0, rng=rng)


@pytest.mark.parametrize("sigma", [123.456, 2500.0])
def test_large_sigma_binned_chi_square(sigma):
    # Large den = 2 p q t^2 near 2^62: the floor estimate and its mod-2^64 correction.
    x = sample_discrete_gaussian(sigma, 200_000, rng=DeterministicRandom(f"big-{sigma}"))
    inner = np.linspace(-4 * sigma, 4 * sigma, 41).round().astype(np.int64)
    edges = np.concatenate([[-(10**12)], inner, [10**12]])
    support = np.arange(-int(12 * sigma), int(12 * sigma) + 1)
    pmf = discrete_gaussian_pmf(sigma, support)
    cdf = np.concatenate([[0.0], np.cumsum(pmf)])
    pos = np.searchsorted(support, np.clip(edges, support[0], support[-1] + 1))
    expected = np.diff(cdf[pos]) * x.size
    observed = np.diff(np.searchsorted(np.sort(x), edges))
    stat = float(np.sum((observed - expected) ** 2 / expected))
    assert stats.chi2.sf(stat, expected.size - 1) > 1e-4
    # and the test can fail: a 3 % wider model is rejected
    wide = discrete_gaussian_pmf(sigma * 1.03, support)
    exp_w = np.diff(np.concatenate([[0.0], np.cumsum(wide)])[pos]) * x.size
    assert stats.chi2.sf(float(np.sum((observed - exp_w) ** 2 / exp_w)), expected.size - 1) < 1e-6
