"""Regressions for findings of the independent review."""

import numpy as np
import pytest

from privcrypt.dp import PLDAccountant, compute_epsilon
from privcrypt.dp.accountants import load_accountant
from privcrypt.dp.clip import clip_and_noise
from privcrypt.rng import DeterministicRandom


def test_pld_with_astronomically_many_steps_raises_instead_of_hanging():
    # Used to loop forever: the grid never fit and its spacing grew to inf.
    with pytest.raises(ValueError, match="rdp"):
        compute_epsilon(0.01, 0.1, 2**50, 1e-5, accountant="pld")
    assert np.isfinite(compute_epsilon(0.01, 0.1, 2**50, 1e-5, accountant="rdp"))


def test_step_counts_are_capped():
    with pytest.raises(ValueError):
        PLDAccountant().step(noise_multiplier=1.0, sample_rate=0.1, steps=2**53 + 1)


def test_clip_of_an_overflowing_norm_keeps_the_direction():
    # ||[1e308, 1e308]|| overflows to inf; the clipped update must still point that way.
    out = clip_and_noise(np.array([1e308, 1e308]), 1.0, 0.0, rng=DeterministicRandom(0))
    assert np.allclose(out, [2**-0.5, 2**-0.5])
