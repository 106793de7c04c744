"""Gaussian mechanism: classic bound, analytic calibration against mpmath."""

import math

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privcrypt.dp import gaussian_delta, gaussian_epsilon, gaussian_sigma


def mp_analytic_sigma(epsilon, delta, sensitivity=1.0):
    """Solve Balle & Wang 2018 (Thm. 8) exactly at 40 digits:
    Phi(D/(2s) - eps s/D) - e^eps Phi(-D/(2s) - eps s/D) = delta."""
    with mpmath.workdps(40):
        e, d, D = mpmath.mpf(epsilon), mpmath.mpf(delta), mpmath.mpf(sensitivity)
        f = lambda s: mpmath.ncdf(D / (2 * s) - e * s / D) - mpmath.exp(e) * mpmath.ncdf(-D / (2 * s) - e * s / D) - d
        return float(mpmath.findroot(f, gaussian_sigma(epsilon, delta, sensitivity)))


@pytest.mark.parametrize(
    "epsilon,delta,sensitivity",
    [(0.1, 1e-5, 1.0), (1.0, 1e-5, 1.0), (1.0, 1e-6, 2.5), (8.0, 1e-5, 1.0), (30.0, 1e-6, 0.3), (0.5, 1e-10, 1.0)],
)
def test_analytic_sigma_matches_mpmath(epsilon, delta, sensitivity):
    assert gaussian_sigma(epsilon, delta, sensitivity) == pytest.approx(
        mp_analytic_sigma(epsilon, delta, sensitivity), rel=1e-9)


def test_classic_bound_and_its_validity_range():
    # Dwork & Roth 2014, Thm A.1: sigma = sqrt(2 ln(1.25/delta)) * sensitivity / epsilon.
    assert gaussian_sigma(0.5, 1e-5, 2.0, method="classic") == pytest.approx(
        2.0 * math.sqrt(2 * math.log(1.25e5)) / 0.5, rel=1e-15)
    with pytest.raises(ValueError, match="epsilon < 1"):
        gaussian_sigma(1.0, 1e-5, method="classic")
    with pytest.raises(ValueError):
        gaussian_sigma(0.5, 1e-5, method="laplace")
    # Seed 000 (sec. 9.1) multiplies by a stray epsilon; the analytic sigma is smaller
    # than the classic one and the classic one is valid (not the seed's).
    assert gaussian_sigma(0.5, 1e-5) < gaussian_sigma(0.5, 1e-5, method="classic")


@pytest.mark.parametrize("bad", [(0.0, 1e-5), (-1.0, 1e-5), (1.0, 0.0), (1.0, 1.0), (float("nan"), 1e-5)])
def test_invalid_arguments(bad):
    with pytest.raises(ValueError):
        gaussian_sigma(*bad)


@settings(max_examples=40, deadline=None)
@given(epsilon=st.floats(0.01, 50.0), delta=st.floats(1e-12, 0.1))
def test_analytic_sigma_is_tight(epsilon, delta):
    """sigma meets delta; 1e-9 less noise does not (within float resolution of delta)."""
    sigma = gaussian_sigma(epsilon, delta)
    assert gaussian_delta(sigma, epsilon) <= delta
    assert gaussian_delta(sigma * (1 - 1e-9), epsilon) >= delta * (1 - 1e-6)


@settings(max_examples=40, deadline=None)
@given(sigma=st.floats(0.05, 20.0), delta=st.floats(1e-12, 0.1))
def test_epsilon_and_sigma_are_inverse(sigma, delta):
    eps = gaussian_epsilon(sigma, delta)
    assert gaussian_delta(sigma, eps) <= delta
    if eps > 0:
        assert gaussian_sigma(eps, delta) == pytest.approx(sigma, rel=1e-8)
