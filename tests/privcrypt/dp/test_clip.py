"""clip_and_noise: clipping bound, noise scale, CSPRNG-only randomness."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from privcrypt.dp import add_gaussian_noise, clip_and_noise, clip_update
from privcrypt.rng import DeterministicRandom


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 50), elements=st.floats(-1e6, 1e6)), st.floats(1e-3, 1e3))
def test_clip_bound_and_direction(update, clip_norm):
    clipped, norm = clip_update(update, clip_norm)
    assert np.linalg.norm(clipped) <= clip_norm
    assert norm == pytest.approx(np.linalg.norm(update))
    if norm <= clip_norm:
        np.testing.assert_array_equal(clipped, update)
    else:  # same direction
        np.testing.assert_allclose(clipped * norm / np.linalg.norm(clipped), update, rtol=1e-9, atol=1e-9 * norm)


def test_input_is_not_modified_and_shape_kept():
    update = np.full((3, 4), 10.0)
    before = update.copy()
    out = clip_and_noise(update, 1.0, 0.5, rng=DeterministicRandom(1))
    np.testing.assert_array_equal(update, before)
    assert out.shape == (3, 4) and out.dtype == np.float64


def test_noise_scale_and_determinism_with_test_rng():
    update = np.zeros(200_000)
    a = clip_and_noise(update, 2.0, 1.5, rng=DeterministicRandom("k"))
    b = clip_and_noise(update, 2.0, 1.5, rng=DeterministicRandom("k"))
    np.testing.assert_array_equal(a, b)
    # std 3.0; the sample std of 2e5 normals is within 1 % with overwhelming probability
    assert a.std() == pytest.approx(3.0, rel=0.01)
    assert abs(a.mean()) < 0.05
    fresh = clip_and_noise(update, 2.0, 1.5)  # default SystemRandom: different every call
    assert not np.array_equal(fresh, clip_and_noise(update, 2.0, 1.5))


def test_central_use_noises_the_sum_once():
    rng = DeterministicRandom("central")
    updates = [np.ones(10) * k for k in range(1, 6)]
    total = sum(clip_update(u, 1.0)[0] for u in updates)
    noisy = add_gaussian_noise(total, 1.0, 0.0, rng=rng)
    np.testing.assert_allclose(noisy, total)
    assert np.linalg.norm(total) <= 5.0 + 1e-12


@pytest.mark.parametrize("bad", [dict(clip_norm=0.0), dict(clip_norm=-1.0), dict(noise_multiplier=-0.1),
                                 dict(noise_multiplier=float("nan"))])
def test_invalid_parameters(bad):
    kwargs = dict(clip_norm=1.0, noise_multiplier=1.0) | bad
    with pytest.raises(ValueError):
        clip_and_noise(np.ones(3), **kwargs)


def test_rejects_non_finite_update_and_numpy_rng():
    with pytest.raises(ValueError):
        clip_and_noise(np.array([1.0, np.nan]), 1.0, 1.0)
    with pytest.raises(TypeError):
        clip_and_noise(np.ones(3), 1.0, 1.0, rng=np.random.default_rng(0))
