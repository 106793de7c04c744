"""The Gaussian mechanism: exact (epsilon, delta) curve and noise calibration.

Adding ``N(0, sigma^2)`` to a function of L2 sensitivity ``Delta`` is
``(epsilon, delta)``-DP exactly when (Balle & Wang 2018, "Improving the Gaussian
Mechanism for Differential Privacy", Theorem 8)::

    delta(epsilon) = Phi(Delta/(2 sigma) - epsilon sigma/Delta)
                     - e^epsilon Phi(-Delta/(2 sigma) - epsilon sigma/Delta)

``gaussian_sigma(method="analytic")`` solves that condition for the smallest sigma; it is
tight for every epsilon. ``method="classic"`` is the textbook bound
``sigma = Delta sqrt(2 ln(1.25/delta)) / epsilon`` (Dwork & Roth 2014, Thm A.1), valid only
for ``epsilon < 1``. Seed paper 000 (sec. 9.1) multiplies that bound by a stray epsilon;
this module does not.
"""

from __future__ import annotations

import math

from privcrypt.dp._normal import log_norm_cdf

__all__ = ["gaussian_delta", "gaussian_epsilon", "gaussian_sigma"]


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return value


def _check_delta(delta: float) -> float:
    delta = float(delta)
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    return delta


def gaussian_delta(sigma: float, epsilon: float, sensitivity: float = 1.0) -> float:
    """Exact delta of the Gaussian mechanism with noise ``sigma`` at ``epsilon``.

    Evaluated in log space (``log Phi``) so that it keeps relative precision when delta
    is tiny. Raises ``ValueError`` for non-positive sigma/sensitivity or negative epsilon.
    """
    s = _check_positive("sigma", sigma) / _check_positive("sensitivity", sensitivity)
    epsilon = float(epsilon)
    if not epsilon >= 0 or math.isnan(epsilon):
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    if math.isinf(epsilon):
        return 0.0
    a = 0.5 / s - epsilon * s
    b = -0.5 / s - epsilon * s
    log_first = log_norm_cdf(a)
    log_second = epsilon + log_norm_cdf(b)
    if log_second >= log_first:
        return 0.0
    return math.exp(log_first) * -math.expm1(log_second - log_first)


def gaussian_epsilon(sigma: float, delta: float, sensitivity: float = 1.0) -> float:
    """The smallest epsilon for which ``N(0, sigma^2)`` noise is (epsilon, delta)-DP.

    Exact up to bisection to 1e-14 relative; the returned value is the *upper* end of the
    final bracket, so it is never below the true epsilon (beyond float rounding of delta).
    This is also the exact epsilon of T composed Gaussian mechanisms with ``sigma/sqrt(T)``.
    """
    delta = _check_delta(delta)
    if gaussian_delta(sigma, 0.0, sensitivity) <= delta:
        return 0.0
    lo, hi = 0.0, 1.0
    while gaussian_delta(sigma, hi, sensitivity) > delta:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:  # pragma: no cover - delta(eps) -> 0, so this cannot happen
            raise ArithmeticError("epsilon bracket diverged")
    while hi - lo > 1e-14 * hi:
        mid = 0.5 * (lo + hi)
        if gaussian_delta(sigma, mid, sensitivity) > delta:
            lo = mid
        else:
            hi = mid
    return hi


def gaussian_sigma(
    epsilon: float, delta: float, sensitivity: float = 1.0, method: str = "analytic"
) -> float:
    """Noise standard deviation for an (epsilon, delta)-DP Gaussian mechanism.

    ``method="analytic"``: the smallest sigma satisfying Balle & Wang's exact condition,
    by bisection on log sigma to 1e-14 relative (the upper end is returned, so the
    guarantee holds). ``method="classic"``: ``sensitivity * sqrt(2 ln(1.25/delta)) /
    epsilon``; raises ``ValueError`` for ``epsilon >= 1``, where that bound is not valid.
    """
    epsilon = _check_positive("epsilon", epsilon)
    delta = _check_delta(delta)
    sensitivity = _check_positive("sensitivity", sensitivity)
    if method == "classic":
        if epsilon >= 1.0:
            raise ValueError(
                "the classic Gaussian bound is valid only for epsilon < 1; "
                "use method='analytic' (tight for every epsilon)"
            )
        return sensitivity * math.sqrt(2.0 * math.log(1.25 / delta)) / epsilon
    if method != "analytic":
        raise ValueError(f"method must be 'analytic' or 'classic', got {method!r}")
    lo = hi = 1.0
    while gaussian_delta(hi, epsilon) > delta:
        hi *= 2.0
    while gaussian_delta(lo, epsilon) <= delta:
        lo *= 0.5
        if lo < 1e-300:  # delta(eps) at vanishing noise is still <= target
            return 0.0
    while hi - lo > 1e-14 * hi:
        mid = math.sqrt(lo * hi) if hi / lo > 2.0 else 0.5 * (lo + hi)
        if gaussian_delta(mid, epsilon) > delta:
            lo = mid
        else:
            hi = mid
    return hi * sensitivity
