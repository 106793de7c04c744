"""PLD accounting: exactness at q = 1, pessimism, agreement with dp-accounting."""

import math
import warnings

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privcrypt.dp import PLDAccountant, compute_epsilon, gaussian_epsilon
from privcrypt.dp.pld import _self_compose, pld_epsilon, subsampled_gaussian_pld


def mp_gaussian_epsilon(s, delta):
    """Exact epsilon of the Gaussian mechanism with noise s (sensitivity 1), solving
    Balle & Wang's condition Phi(1/(2s) - eps s) - e^eps Phi(-1/(2s) - eps s) = delta."""
    with mpmath.workdps(40):
        s, d = mpmath.mpf(s), mpmath.mpf(delta)
        f = lambda e: mpmath.ncdf(1 / (2 * s) - e * s) - mpmath.exp(e) * mpmath.ncdf(-1 / (2 * s) - e * s) - d
        return float(mpmath.findroot(f, gaussian_epsilon(float(s), float(delta))))


def _tol(eps):
    return max(1e-4, 1e-3 * eps)


@pytest.mark.parametrize("sigma,steps,delta", [(0.5, 1, 1e-5), (1.0, 100, 1e-6), (5.0, 10_000, 1e-5), (2.0, 3, 1e-6)])
def test_q1_is_the_exact_composed_gaussian(sigma, steps, delta):
    exact = mp_gaussian_epsilon(sigma / math.sqrt(steps), delta)
    ours = compute_epsilon(sigma, 1.0, steps, delta, accountant="pld")
    assert exact * (1 - 1e-14) <= ours <= exact + _tol(exact)


@pytest.mark.parametrize("sigma,steps,delta", [(1.0, 1, 1e-5), (1.0, 100, 1e-6), (3.0, 2_000, 1e-5)])
def test_discretized_gaussian_is_pessimistic_and_tight(sigma, steps, delta):
    """The connect-the-dots grid and the FFT composition, run on the Gaussian (q = 1),
    never go below the closed form and stay within max(1e-4, 1e-3 eps) of it."""
    exact = mp_gaussian_epsilon(sigma / math.sqrt(steps), delta)
    for direction in ("remove", "add"):
        eps = _self_compose(subsampled_gaussian_pld(sigma, 1.0, direction), steps).epsilon(delta)
        assert exact <= eps <= exact + _tol(exact)


def test_delta_and_epsilon_are_inverse():
    pld = _self_compose(subsampled_gaussian_pld(1.0, 0.05, "remove"), 300)
    for delta in (1e-3, 1e-5, 1e-7):
        eps = pld.epsilon(delta)
        assert pld.delta(eps) == pytest.approx(delta, rel=1e-9)
        assert pld.delta(eps * 0.99) > delta


def test_discretization_preserves_both_masses():
    pld = subsampled_gaussian_pld(1.0, 0.05, "remove")
    import numpy as np

    losses = (pld.offset + np.arange(pld.probs.size)) * pld.interval
    assert pld.probs.sum() + pld.infinity_mass == pytest.approx(1.0, abs=1e-12)
    assert float(np.sum(pld.probs * np.exp(-losses))) == pytest.approx(1.0, abs=1e-9)  # Q-mass


_PLD_GRID = [
    (1.0, 0.01, 10_000, 1e-5),
    (0.7, 0.3, 40, 1e-6),
    (2.5, 0.05, 3_000, 1e-5),
    (0.55, 0.002, 700, 1e-6),
    (4.0, 0.9, 12, 1e-5),
]


def _dp_accounting_pld(entries, delta):
    import dp_accounting
    from dp_accounting.pld import pld_privacy_accountant

    acc = pld_privacy_accountant.PLDAccountant()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for sigma, q, steps in entries:
            event = dp_accounting.GaussianDpEvent(sigma)
            if q < 1:
                event = dp_accounting.PoissonSampledDpEvent(q, event)
            acc.compose(event, steps)
    return acc.get_epsilon(delta)


@pytest.mark.oracle
@pytest.mark.parametrize("sigma,q,steps,delta", _PLD_GRID)
def test_pld_against_dp_accounting_and_below_rdp(sigma, q, steps, delta):
    ours = compute_epsilon(sigma, q, steps, delta, accountant="pld")
    theirs = _dp_accounting_pld([(sigma, q, steps)], delta)
    assert abs(ours - theirs) <= max(3e-3, 1e-3 * theirs)
    assert ours < compute_epsilon(sigma, q, steps, delta, accountant="rdp")


@pytest.mark.oracle
def test_mixed_history_against_dp_accounting():
    entries = [(1.2, 0.02, 500), (3.0, 1.0, 20), (0.9, 0.01, 300)]
    acc = PLDAccountant()
    for sigma, q, steps in entries:
        acc.step(noise_multiplier=sigma, sample_rate=q, steps=steps)
    ours, theirs = acc.get_epsilon(1e-5), _dp_accounting_pld(entries, 1e-5)
    assert abs(ours - theirs) <= max(3e-3, 1e-3 * theirs)


@settings(max_examples=8, deadline=None)
@given(sigma=st.floats(0.5, 5.0), q=st.floats(0.001, 0.5), steps=st.integers(1, 200))
def test_pld_monotone_in_steps_and_q(sigma, q, steps):
    """At a coarse grid (1e-3, to stay fast) eps still increases in steps and q and
    decreases in sigma."""
    eps = pld_epsilon([(sigma, q, steps)], 1e-5, interval=1e-3)
    slack = 1e-9 * max(eps, 1.0)
    assert pld_epsilon([(sigma, q, 2 * steps)], 1e-5, interval=1e-3) >= eps - slack
    assert pld_epsilon([(sigma, 2 * q, steps)], 1e-5, interval=1e-3) >= eps - slack
    assert pld_epsilon([(sigma * 1.5, q, steps)], 1e-5, interval=1e-3) <= eps + slack


def test_huge_epsilon_pld_is_bounded_and_below_rdp(monkeypatch):
    """Tiny noise, many steps: the grid would exceed MAX_GRID (lowered here so the test
    is fast), so the interval is coarsened; the result is finite, huge, below RDP, and
    a coarser grid only loosens it."""
    from privcrypt.dp import pld

    monkeypatch.setattr(pld, "MAX_GRID", 1 << 17)
    finer = pld_epsilon([(0.3, 0.5, 1_000)], 1e-6)
    monkeypatch.setattr(pld, "MAX_GRID", 1 << 14)
    eps = pld_epsilon([(0.3, 0.5, 1_000)], 1e-6)
    assert math.isfinite(eps) and eps > 1e3
    assert finer <= eps < compute_epsilon(0.3, 0.5, 1_000, 1e-6, accountant="rdp")
    assert pld_epsilon([(0.0, 0.5, 10)], 1e-6) == math.inf
    assert pld_epsilon([(1.0, 0.0, 10)], 1e-6) == 0.0


def test_tiny_noise_matches_the_counting_argument(monkeypatch):
    """sigma = 1e-3, q = 0.5, T = 10: a sampled step leaks loss ~ 1/(2 sigma^2) = 5e5, and
    all 10 steps sample the record with probability 2^-10 > delta, so eps >= ~5e6. Guards
    against losses beyond exp's range being rounded *down* (an optimistic bug)."""
    from privcrypt.dp import pld

    monkeypatch.setattr(pld, "MAX_GRID", 1 << 18)
    eps = pld_epsilon([(1e-3, 0.5, 10)], 1e-5)
    assert 4.99e6 <= eps <= compute_epsilon(1e-3, 0.5, 10, 1e-5, accountant="rdp")


@settings(max_examples=10, deadline=None)
@given(sigma=st.floats(1e-3, 0.3), q=st.floats(0.01, 1.0), steps=st.integers(10, 100_000))
def test_huge_epsilon_pld_property(sigma, q, steps):
    """Any tiny-noise, many-step run: finite, positive, never above RDP (grid capped low
    here so each example is quick; the cap only loosens the bound)."""
    from privcrypt.dp import pld

    old = pld.MAX_GRID
    pld.MAX_GRID = 1 << 15
    try:
        eps = pld_epsilon([(sigma, q, steps)], 1e-6)
    finally:
        pld.MAX_GRID = old
    rdp = compute_epsilon(sigma, q, steps, 1e-6, accountant="rdp")
    assert math.isfinite(eps) and 0 < eps <= rdp * (1 + 1e-9)
