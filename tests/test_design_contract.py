"""The public names DESIGN.md declares a contract, exercised once each on tiny inputs.

A rename or a signature change that breaks the callers outside the project (docs,
benchmark scripts, users' stacks) fails here first."""

import numpy as np
import pytest

from privcrypt.rng import DeterministicRandom


def test_mpc_contract():
    from privcrypt.exceptions import MacCheckFailed
    from privcrypt.mpc import SpdzEngine

    eng = SpdzEngine(n_parties=3, frac_bits=16, rng=DeterministicRandom(1))
    x = eng.share(np.array([1.5, -2.0]))
    y = eng.share(np.array([0.5, 4.0]))
    assert x.shares.shape == (3, 2) and x.macs.shape == (3, 2)
    assert np.allclose(eng.open(eng.add(x, y)), [2.0, 2.0])
    assert np.allclose(eng.open(eng.mul(x, y)), [0.75, -8.0], atol=1e-3)
    assert np.allclose(eng.open(eng.sum(x)), -0.5)
    assert np.allclose(eng.open(eng.norm2(x)), 6.25, atol=1e-3)
    z = eng.share(np.array([3.0]))
    z.shares[1, 0] += 1
    with pytest.raises(MacCheckFailed):
        eng.open(z)


@pytest.mark.parametrize("name", ["plain", "masking", "spdz", "ckks"])
def test_secagg_contract(name):
    from privcrypt.secagg import make_aggregator

    updates = {i: np.full(4, 0.1 * i) for i in range(6)}
    weights = {i: 1.0 + i for i in range(6)}
    res = make_aggregator(name).aggregate(updates, weights, dropped=frozenset({5}))
    exact = sum(weights[i] * updates[i] for i in range(5)) / sum(weights[i] for i in range(5))
    assert np.allclose(res.mean, exact, atol=1e-3)
    assert res.bytes_up > 0 and res.bytes_down >= 0


def test_dp_contract():
    from privcrypt.dp import (PLDAccountant, RDPAccountant, compute_epsilon, gaussian_sigma,
                              noise_multiplier_for)

    assert gaussian_sigma(1.0, 1e-5, sensitivity=1.0, method="analytic") < \
        gaussian_sigma(0.9, 1e-5, sensitivity=1.0, method="classic")
    for acc in ("rdp", "pld"):
        eps = compute_epsilon(1.1, 0.01, 100, 1e-5, accountant=acc)
        sigma = noise_multiplier_for(eps, 1e-5, 0.01, 100, accountant=acc)
        assert abs(sigma - 1.1) < 1e-3
    for cls in (RDPAccountant, PLDAccountant):
        a = cls()
        a.step(noise_multiplier=1.1, sample_rate=0.01, steps=100)
        assert a.get_epsilon(1e-5) > 0


def test_imaging_contract():
    from imaging import FlepKey, FlepPipeline
    from imaging import metrics

    key = FlepKey.generate()
    assert FlepKey.from_bytes(key.to_bytes()) == key
    img = (np.arange(32 * 30) % 251).astype(np.uint8).reshape(32, 30)
    pipe = FlepPipeline(key, sigma=0, diffusion=True)
    c = pipe.encrypt(img)
    assert c.to_uint8().dtype == np.uint8
    assert np.array_equal(pipe.decrypt(c), img)
    for name in ("npcr", "uaci", "entropy", "encryption_quality", "correlation",
                 "npcr_critical", "uaci_interval", "psnr", "ssim"):
        assert callable(getattr(metrics, name))


def test_denoise_contract():
    from imaging.denoise import load_denoiser

    out = load_denoiser(25).denoise(np.full((17, 19), 128, dtype=np.uint8))
    assert out.dtype == np.float32 and out.shape == (17, 19)
