"""One-call epsilon and noise calibration for Poisson-subsampled Gaussian training.

``compute_epsilon`` runs a fresh accountant; ``noise_multiplier_for`` finds the smallest
noise multiplier whose epsilon meets a target, by bracketing bisection in log sigma
(accelerated by Illinois false-position steps, which never leave the bracket). The
returned sigma is the upper end of the final bracket, re-verified: ``compute_epsilon``
at it is <= the target.
"""

from __future__ import annotations

import math

from privcrypt.dp.accountants import (SIGMA_ACCOUNTED_MAX, SIGMA_NO_PRIVACY, PLDAccountant, RDPAccountant,
                                      validate_step)

__all__ = ["compute_epsilon", "noise_multiplier_for", "make_accountant"]


def make_accountant(accountant: str = "rdp"):
    """A fresh accountant by name: ``"rdp"`` or ``"pld"``."""
    if accountant == "rdp":
        return RDPAccountant()
    if accountant == "pld":
        return PLDAccountant()
    raise ValueError(f"accountant must be 'rdp' or 'pld', got {accountant!r}")


def compute_epsilon(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    """Epsilon after ``steps`` Poisson-subsampled Gaussian steps at ``delta``.

    ``inf`` when noise_multiplier is below ``SIGMA_NO_PRIVACY`` (1e-6; e.g. 0) and
    sample_rate, steps > 0: no privacy. A noise multiplier above ``SIGMA_ACCOUNTED_MAX``
    (1e3) is accounted at 1e3, which is still an upper bound. Raises
    ``ValueError``/``TypeError`` for invalid arguments (negative, NaN or infinite ones).
    """
    acc = make_accountant(accountant)
    acc.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps)
    return acc.get_epsilon(delta)


def noise_multiplier_for(
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = "rdp",
    *,
    rtol: float = 1e-7,
) -> float:
    """The smallest noise multiplier (to ``rtol`` relative) with epsilon <= ``epsilon``.

    Returns 0.0 when nothing is spent (sample_rate 0 or steps 0). Raises ``ValueError``
    for epsilon <= 0, delta outside (0, 1), or if no sigma up to ``SIGMA_ACCOUNTED_MAX``
    (1e3) meets the target.
    """
    epsilon = float(epsilon)
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError(f"epsilon must be finite and > 0, got {epsilon}")
    if not 0.0 < float(delta) < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    make_accountant(accountant)  # validates the name
    _, q, steps = validate_step(1.0, sample_rate, steps)
    if q == 0.0 or steps == 0:
        return 0.0

    def excess(sigma: float) -> float:  # log(eps(sigma)/target), decreasing in sigma
        eps = compute_epsilon(sigma, q, steps, delta, accountant)
        if eps == 0.0:
            return -math.inf
        return math.log(eps / epsilon)

    hi, f_hi = 1.0, excess(1.0)
    lo, f_lo = hi, f_hi
    while f_hi > 0:
        if hi >= SIGMA_ACCOUNTED_MAX:
            raise ValueError(f"no noise multiplier up to {SIGMA_ACCOUNTED_MAX:g} (the largest the accountants "
                             f"evaluate) meets epsilon {epsilon:g}")
        lo, f_lo = hi, f_hi
        hi = min(hi * 4.0, SIGMA_ACCOUNTED_MAX)
        f_hi = excess(hi)
    while f_lo <= 0:
        hi, f_hi = lo, f_lo
        lo /= 4.0
        if lo < SIGMA_NO_PRIVACY:  # even almost no noise meets the target
            return hi
        f_lo = excess(lo)
    # Invariant: f(lo) > 0 >= f(hi). Work in t = log sigma. Illinois false position,
    # with each trial kept at least rtol/2 inside the bracket (so it closes from both
    # sides, as in Brent's method) and a bisection whenever 3 trials did not halve it.
    t_lo, t_hi = math.log(lo), math.log(hi)
    side, trials, width_before = 0, 0, t_hi - t_lo
    while t_hi - t_lo > rtol:
        width = t_hi - t_lo
        t = 0.5 * (t_lo + t_hi)
        if trials < 3 and math.isfinite(f_lo) and math.isfinite(f_hi) and f_lo != f_hi:
            cand = t_hi - f_hi * width / (f_hi - f_lo)
            t = min(max(cand, t_lo + 0.5 * rtol), t_hi - 0.5 * rtol)
        f = excess(math.exp(t))
        if f > 0:
            t_lo, f_lo = t, f
            if side == -1:
                f_hi *= 0.5  # Illinois: keep false position from stalling on one side
            side = -1
        else:
            t_hi, f_hi = t, f
            if side == 1:
                f_lo *= 0.5
            side = 1
        trials += 1
        if t_hi - t_lo <= 0.5 * width_before:
            trials, width_before = 0, t_hi - t_lo
        elif trials > 3:
            trials = 0  # the next trial is a plain bisection step
            width_before = t_hi - t_lo
    return math.exp(t_hi)
