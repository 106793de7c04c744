"""Standard normal tail functions on numpy arrays, from ``math.erfc`` only.

Why hand-written: the core package depends on numpy alone and numpy has no ``erfc``;
``math.erfc`` is correctly rounded to about 1 ulp, so mapping it over an array keeps full
relative precision in both tails (differences are always taken between two values of the
*same* tail, never as ``1 - tail``). For arguments beyond ``erfc``'s underflow
(``x > 37``) ``log_norm_sf`` switches to the asymptotic series of Mills' ratio.
"""

from __future__ import annotations

import math

import numpy as np

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_erfc_ufunc = np.frompyfunc(math.erfc, 1, 1)


def norm_sf(x) -> np.ndarray:
    """``P(Z > x)`` for a standard normal ``Z``, elementwise, with full relative precision."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * np.asarray(_erfc_ufunc(x * _SQRT1_2), dtype=np.float64)


def log_norm_sf(x: float) -> float:
    """``log P(Z > x)`` for a scalar ``x``, finite for every finite ``x``."""
    x = float(x)
    if x < -5.0:
        return math.log1p(-0.5 * math.erfc(-x * _SQRT1_2))
    if x < 37.0:
        return math.log(0.5 * math.erfc(x * _SQRT1_2))
    # Mills' ratio: sf(x) = phi(x)/x * (1 - 1/x^2 + 3/x^4 - 15/x^6 + ...), asymptotic;
    # at x >= 37 its terms fall below 1e-17 long before they start to grow.
    inv2, term, total, k = 1.0 / (x * x), 1.0, 1.0, 1
    while abs(term) > 1e-18 and k < 60:
        term *= -(2 * k - 1) * inv2
        total += term
        k += 1
    return -0.5 * x * x - _LOG_SQRT_2PI - math.log(x) + math.log(total)


def log_norm_cdf(x: float) -> float:
    """``log P(Z <= x)`` for a scalar ``x``."""
    return log_norm_sf(-x)


def interval_masses(points: np.ndarray) -> np.ndarray:
    """Masses ``P(points[i] < Z <= points[i+1])`` of consecutive intervals.

    ``points`` is non-decreasing and may hold ``-inf``/``+inf``. Each mass is a difference
    of two upper tails, two lower tails, or (for the interval that straddles 0) one minus
    both tails, so no mass loses relative precision to cancellation against 1.
    """
    points = np.asarray(points, dtype=np.float64)
    # One erfc per point: the tail on the point's own side is exact, the other is 1 - it
    # and is used only for the interval that straddles 0.
    tail = norm_sf(np.abs(points))
    upper = np.where(points >= 0.0, tail, 1.0 - tail)  # P(Z > p)
    lower = np.where(points >= 0.0, 1.0 - tail, tail)  # P(Z <= p)
    a_up, b_up = upper[:-1], upper[1:]
    a_lo, b_lo = lower[:-1], lower[1:]
    left, right = points[:-1], points[1:]
    return np.where(
        left >= 0.0,
        a_up - b_up,
        np.where(right <= 0.0, b_lo - a_lo, 1.0 - b_up - a_lo),
    ).clip(min=0.0)
