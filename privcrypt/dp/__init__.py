"""Differential privacy: Gaussian mechanism, clip-and-noise, RDP and tight PLD accounting.

Contract names (DESIGN.md)::

    gaussian_sigma(epsilon, delta, sensitivity=1.0, method="analytic" | "classic") -> float
    compute_epsilon(noise_multiplier, sample_rate, steps, delta, accountant="rdp" | "pld")
    noise_multiplier_for(epsilon, delta, sample_rate, steps, accountant="rdp" | "pld")
    RDPAccountant(), PLDAccountant(): .step(noise_multiplier=, sample_rate=, steps=1),
                                      .get_epsilon(delta)

Distributed DP (exact discrete Gaussian noise summed under secure aggregation)::

    sample_discrete_gaussian(sigma, shape, *, rng=None) -> int64 array
    DDGaussConfig(...).plan() -> DDGaussPlan: .encode / .decode / .round_rdp
    calibrate_ddgauss(epsilon, delta, *, dim, clip, n_min, n_max, sample_rate, rounds)
    RDPAccountant().step_rdp(plan.round_rdp(n_survivors, sample_rate))

Everything here needs numpy only (no scipy, no torch). See docs/dp.md.
"""

from privcrypt.dp.accountants import PLDAccountant, RDPAccountant, load_accountant
from privcrypt.dp.budget import PrivacyBudget
from privcrypt.dp.calibrate import compute_epsilon, noise_multiplier_for
from privcrypt.dp.clip import add_gaussian_noise, clip_and_noise, clip_update
from privcrypt.dp.discrete import (
    add_discrete_gaussian_noise,
    discrete_gaussian_pmf,
    discrete_gaussian_sigma2,
    sample_discrete_gaussian,
)
from privcrypt.dp.distributed import (
    DDGaussConfig,
    DDGaussPlan,
    calibrate_ddgauss,
    ddgauss_rdp,
)
from privcrypt.dp.mechanisms import gaussian_delta, gaussian_epsilon, gaussian_sigma
from privcrypt.dp.pld import pld_epsilon
from privcrypt.dp.rdp import DEFAULT_ORDERS, rdp_poisson_subsampled_gaussian, rdp_to_epsilon
from privcrypt.exceptions import PrivacyBudgetExceeded

__all__ = [
    "gaussian_sigma",
    "gaussian_delta",
    "gaussian_epsilon",
    "compute_epsilon",
    "noise_multiplier_for",
    "RDPAccountant",
    "PLDAccountant",
    "load_accountant",
    "PrivacyBudget",
    "PrivacyBudgetExceeded",
    "clip_and_noise",
    "clip_update",
    "add_gaussian_noise",
    "rdp_poisson_subsampled_gaussian",
    "rdp_to_epsilon",
    "pld_epsilon",
    "DEFAULT_ORDERS",
    # distributed DP (docs/dp.md, "Distributed DP")
    "sample_discrete_gaussian",
    "discrete_gaussian_sigma2",
    "discrete_gaussian_pmf",
    "add_discrete_gaussian_noise",
    "DDGaussConfig",
    "DDGaussPlan",
    "calibrate_ddgauss",
    "ddgauss_rdp",
]
