import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from imaging.blend import DwtBlender
from imaging.diffusion import Diffuser
from imaging.noise import GaussianNoise
from imaging.scramble import ChaoticScrambler, spiral_order
from privcrypt.rng import DeterministicRandom

KEY = bytes(range(32))


def test_spiral_order_known_answers():
    assert spiral_order(1).tolist() == [0]
    assert spiral_order(2).tolist() == [0, 1, 3, 2]
    assert spiral_order(3).tolist() == [0, 1, 2, 5, 8, 7, 6, 3, 4]
    for s in range(1, 9):
        assert sorted(spiral_order(s).tolist()) == list(range(s * s))


@given(h=st.integers(1, 40), w=st.integers(1, 40), block=st.integers(1, 5), full=st.booleans())
def test_scrambler_is_a_permutation(h, w, block, full):
    sc = ChaoticScrambler(KEY, block=block, full_permutation=full)
    perm, inv = sc.permutation(h, w)
    assert sorted(perm.tolist()) == list(range(h * w))
    assert (perm[inv] == np.arange(h * w)).all()


def test_scrambler_keeps_histogram_and_depends_on_key():
    img = np.arange(64 * 64, dtype=np.int64).reshape(64, 64)
    a = ChaoticScrambler(KEY).encrypt(img)
    b = ChaoticScrambler(bytes(32)).encrypt(img)
    assert sorted(a.ravel().tolist()) == img.ravel().tolist()
    assert (a != b).mean() > 0.9
    # known plaintext with distinct values reveals the permutation: the layer's weakness
    assert (a.ravel() == img.ravel()[ChaoticScrambler(KEY).permutation(64, 64)[0]]).all()


def test_uniform_alpha_dwt_blend_is_pixel_blend():
    x = DeterministicRandom(3).uniform((32, 48)) * 255
    bl = DwtBlender(KEY, alpha=0.8)
    y = bl.encrypt(x)
    assert np.allclose(y, 0.8 * x + 0.2 * bl.carrier(x.shape), atol=1e-9)
    per = DwtBlender(KEY, alpha=(0.9, 0.6, 0.7, 0.5))
    assert not np.allclose(per.encrypt(x), 0.8 * x + 0.2 * per.carrier(x.shape), atol=1e-3)
    assert np.allclose(per.decrypt(per.encrypt(x), x.shape), x, atol=1e-9)
    assert per.noise_gain() > 1 / 0.9


def test_user_carrier_and_odd_sizes():
    carrier = (np.arange(100 * 80) % 251).reshape(100, 80).astype(np.uint8)
    bl = DwtBlender(KEY, carrier=carrier, wavelet="db2")
    x = DeterministicRandom(4).uniform((17, 9, 3)) * 255
    y = bl.encrypt(x)
    assert y.shape == (18, 10, 3)
    assert np.allclose(bl.decrypt(y, x.shape), x, atol=1e-9)


def test_noise_is_public_mean_and_sigma():
    x = np.zeros((200, 200))
    n = GaussianNoise(25.0, mean=3.0).encrypt(x, rng=DeterministicRandom(5))
    assert abs(n.mean() - 3.0) < 0.3 and abs(n.std() - 25.0) < 0.3
    assert (GaussianNoise(0.0).encrypt(x) == x).all()
    with pytest.raises(ValueError):
        GaussianNoise(-1.0)


@given(h=st.integers(1, 12), w=st.integers(1, 12), c=st.sampled_from([None, 3]), rounds=st.integers(1, 3),
       seed=st.integers(0, 2**32))
def test_diffusion_round_trip(h, w, c, rounds, seed):
    shape = (h, w) if c is None else (h, w, c)
    u = DeterministicRandom(seed).integers(2**32, shape, dtype=np.uint64).astype(np.uint32)
    d = Diffuser(KEY, rounds=rounds)
    assert (d.undiffuse(d.diffuse(u)) == u).all()


def test_diffusion_spreads_one_change_everywhere():
    d = Diffuser(KEY, rounds=1)
    u = np.zeros((64, 64), dtype=np.uint32)
    v = u.copy()
    v[40, 13] = 1
    assert (d.diffuse(u) != d.diffuse(v)).mean() > 0.99


def test_fixed_point_range_is_checked():
    d = Diffuser(KEY)
    with pytest.raises(ValueError):
        d.to_fixed(np.array([[40000.0]]))
    y = np.array([[-123.456, 0.0, 255.0]])
    assert np.abs(d.from_fixed(d.to_fixed(y)) - y).max() <= 2.0**-17
