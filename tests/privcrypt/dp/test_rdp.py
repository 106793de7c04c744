"""RDP of the Poisson-subsampled Gaussian: mpmath, exact sums, dp-accounting, invariants."""

import math
import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privcrypt.dp import compute_epsilon
from privcrypt.dp.rdp import (
    DEFAULT_ORDERS,
    _log_a_minus_1_fractional,
    _log_a_minus_1_integer,
    rdp_poisson_subsampled_gaussian,
    rdp_to_epsilon,
)


def mp_rdp(q, sigma, alpha, dps=40):
    """RDP from the defining integral (Mironov, Talwar & Zhang 2019, Sec. 3):
    log(E_{z~N(0,s^2)}[((1-q) + q exp((2z-1)/(2 s^2)))^alpha]) / (alpha - 1)."""
    with mpmath.workdps(dps):
        q, s, a = mpmath.mpf(q), mpmath.mpf(sigma), mpmath.mpf(alpha)

        def integrand(z):
            dens = mpmath.exp(-z * z / (2 * s * s)) / (s * mpmath.sqrt(2 * mpmath.pi))
            return dens * ((1 - q) + q * mpmath.exp((2 * z - 1) / (2 * s * s))) ** a

        z0 = s * s * mpmath.log((1 - q) / q) + mpmath.mpf(1) / 2
        pts = sorted({-12 * s, mpmath.mpf(0), mpmath.mpf(1), z0, a, a + 12 * s})
        a_val = mpmath.quad(integrand, [-mpmath.inf, *[p for p in pts if -12 * s <= p <= a + 12 * s], mpmath.inf])
        return float(mpmath.log(a_val) / (a - 1))


# (q, sigma, alpha): fractional and integer orders, tiny and large RDP, the transition.
MP_POINTS = [
    (0.001, 5.0, 1.5),  # RDP ~ 1e-8: needs A - 1, not A
    (0.001, 0.5, 3.7),
    (0.01, 1.0, 4.1),
    (0.1, 2.0, 1.9),  # dp-accounting's series runs ~36 % high at orders like this
    (0.5, 0.7, 7.3),
    (0.9, 0.5, 1.1),
    (0.05, 1.3, 10.9),
    (0.02, 0.8, 12),  # integer
    (0.3, 3.0, 2),
]


@pytest.mark.parametrize("q,sigma,alpha", MP_POINTS)
def test_per_order_rdp_matches_mpmath_integral(q, sigma, alpha):
    ours = rdp_poisson_subsampled_gaussian(q, sigma, [alpha])[0]
    assert ours == pytest.approx(mp_rdp(q, sigma, alpha), rel=1e-9)


@pytest.mark.parametrize("q", [0.001, 0.03, 0.4, 0.99])
@pytest.mark.parametrize("sigma", [0.5, 1.0, 4.0])
def test_quadrature_equals_exact_integer_sum(q, sigma):
    """The fractional-order quadrature, run at integer orders, reproduces the
    positive-term binomial sum (an independent exact formula)."""
    orders = np.array([2.0, 3.0, 7.0, 11.0])
    quad = _log_a_minus_1_fractional(q, sigma, orders)
    exact = _log_a_minus_1_integer(q, sigma, orders)
    np.testing.assert_allclose(quad, exact, rtol=1e-12, atol=1e-12)


def test_gaussian_and_trivial_cases():
    orders = np.array([1.5, 2.0, 32.0])
    np.testing.assert_array_equal(rdp_poisson_subsampled_gaussian(1.0, 2.0, orders), orders / 8.0)
    np.testing.assert_array_equal(rdp_poisson_subsampled_gaussian(0.0, 2.0, orders), 0.0)
    assert np.all(np.isinf(rdp_poisson_subsampled_gaussian(0.5, 0.0, orders)))
    assert compute_epsilon(0.0, 0.5, 10, 1e-5) == math.inf
    assert compute_epsilon(1.0, 0.0, 10, 1e-5) == 0.0


@pytest.mark.parametrize("bad", [dict(sample_rate=1.5, noise_multiplier=1.0), dict(sample_rate=0.1, noise_multiplier=-1.0),
                                 dict(sample_rate=0.1, noise_multiplier=1.0, orders=[1.0]),
                                 dict(sample_rate=0.1, noise_multiplier=float("nan"))])
def test_invalid_arguments_raise(bad):
    with pytest.raises(ValueError):
        rdp_poisson_subsampled_gaussian(**bad)


def test_default_orders_cover_dp_accounting():
    from dp_accounting.rdp.rdp_privacy_accountant import DEFAULT_RDP_ORDERS

    assert set(DEFAULT_RDP_ORDERS) <= set(DEFAULT_ORDERS)


def _grid(n, seed):
    """Sample points of the issue's grid: sigma in [0.5, 5], q in [0.001, 1] (log-uniform,
    with q = 1 included), steps in [1, 1e4] (log-uniform), delta in {1e-5, 1e-6}.
    numpy's generator only picks test points here; it never makes noise."""
    gen = np.random.default_rng(seed)
    pts = []
    for k in range(n):
        sigma = float(np.exp(gen.uniform(np.log(0.5), np.log(5.0))))
        q = 1.0 if k % 6 == 0 else float(np.exp(gen.uniform(np.log(0.001), 0.0)))
        steps = int(round(np.exp(gen.uniform(0.0, np.log(1e4)))))
        delta = (1e-5, 1e-6)[k % 2]
        pts.append((round(sigma, 3), round(q, 4), steps, delta))
    return pts


@pytest.mark.oracle
@pytest.mark.parametrize("sigma,q,steps,delta", _grid(18, seed=5) + [(2.0, 0.1, 10000, 1e-5), (1.0, 0.01, 10000, 1e-5)])
def test_rdp_epsilon_against_dp_accounting(sigma, q, steps, delta):
    import dp_accounting
    from dp_accounting.rdp import rdp_privacy_accountant as rdp_lib

    acc = rdp_lib.RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acc.compose(event, steps)
    theirs = acc.get_epsilon(delta)
    ours, order = rdp_to_epsilon(DEFAULT_ORDERS, steps * rdp_poisson_subsampled_gaussian(q, sigma), delta)
    assert ours <= theirs * (1 + 1e-6)
    if q == 1.0 or float(order).is_integer():
        # Our values equal theirs at integer orders and are <= theirs elsewhere, so an
        # integer optimum must give the same epsilon.
        assert ours == pytest.approx(theirs, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    sigma=st.floats(0.5, 5.0),
    factor=st.floats(1.001, 3.0),
    q=st.floats(0.001, 1.0),
    steps=st.integers(1, 10_000),
)
def test_epsilon_monotone(sigma, factor, q, steps):
    """eps decreases in sigma and increases in steps and in q."""
    eps = compute_epsilon(sigma, q, steps, 1e-5)
    tol = 1e-12 * max(eps, 1.0)
    assert compute_epsilon(sigma * factor, q, steps, 1e-5) <= eps + tol
    assert compute_epsilon(sigma, q, steps * 2, 1e-5) >= eps - tol
    assert compute_epsilon(sigma, min(1.0, q * factor), steps, 1e-5) >= eps - tol


@settings(max_examples=15, deadline=None)
@given(sigma=st.floats(0.01, 0.3), q=st.floats(0.01, 1.0), steps=st.integers(1_000, 1_000_000))
def test_huge_epsilon_is_finite_and_ordered(sigma, q, steps):
    """Tiny noise and many steps: a finite, large epsilon (the RDP bound at the smallest
    useful order), never NaN, and still decreasing in sigma."""
    eps = compute_epsilon(sigma, q, steps, 1e-6)
    assert math.isfinite(eps) and eps > 1.0
    assert compute_epsilon(sigma * 2, q, steps, 1e-6) <= eps


def test_conversion_matches_formula_and_kl_shortcut():
    orders, rdp = np.array([1.005, 2.0, 10.0]), np.array([0.1, 0.5, 3.0])
    expected = min(r + math.log1p(-1 / a) - math.log(1e-5 * a) / (a - 1) for a, r in zip(orders[1:], rdp[1:]))
    assert rdp_to_epsilon(orders, rdp, 1e-5)[0] == pytest.approx(expected, rel=1e-15)
    assert rdp_to_epsilon(orders, np.full(3, 1e-13), 1e-5)[0] == 0.0  # KL shortcut
    with pytest.raises(ValueError):
        rdp_to_epsilon(orders, rdp, 0.0)
