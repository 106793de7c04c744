"""Gradient inversion on what the server observes (issue 18)."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fl.leakage import (LeNetSigmoid, ObserveConfig, invert, match_and_score, observe, observe_detailed,
                        quantize_int8, recover_labels, topk_sparsify)
from privcrypt.rng import DeterministicRandom

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images / 16.0).astype(np.float32)[:, None]
    return X, d.target.astype(np.int64)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LeNetSigmoid((1, 8, 8))


def _batches(X, y, k, b, start=0):
    return [(torch.tensor(X[start + i * b:start + (i + 1) * b]), torch.tensor(y[start + i * b:start + (i + 1) * b]))
            for i in range(k)]


def test_plain_single_image_is_reconstructed(digits, model):
    X, y = digits
    batches = _batches(X, y, 1, 1, start=10)
    upd = observe(ObserveConfig(backend="plain"), batches, model)
    res = invert(model, upd, (1, 8, 8), 1, method="idlg")
    assert res.labels.tolist() == [int(y[10])]  # iDLG label recovery
    score = match_and_score(res.images, batches[0][0].numpy())
    assert score["psnr"] >= 20.0


def test_ten_client_masking_aggregate_defeats_the_single_image_attack(digits, model):
    X, y = digits
    batches = _batches(X, y, 10, 1, start=10)
    cfg = ObserveConfig(backend="masking", rng=DeterministicRandom(1))
    obs = observe_detailed(cfg, batches, model)
    assert obs.info["clipped"] == 0 and obs.info["survivors"] == 10
    res = invert(model, obs.update, (1, 8, 8), 1, method="idlg")
    score = match_and_score(res.images, batches[0][0].numpy())
    assert score["psnr"] < 12.0


def test_masking_refuses_a_one_client_round(digits, model):
    """A 'secure' mean of one client is that client's update: the backend refuses it
    (min_clients >= 2). That the backend's quantization does not stop the attack is shown
    by the two-client test below, which recovers both images through masking."""
    X, y = digits
    batches = _batches(X, y, 1, 1, start=20)
    with pytest.raises(ValueError, match="min_clients"):
        observe(ObserveConfig(backend="masking", rng=DeterministicRandom(2)), batches, model)


def test_two_client_aggregate_is_a_batch_of_two(digits, model):
    """FedSGD: the mean of K gradients is the gradient of the union batch, so attacking it
    with n_images = K recovers every client's image (secure aggregation of 2 is not 10)."""
    X, y = digits
    batches = _batches(X, y, 2, 1, start=30)
    upd = observe(ObserveConfig(backend="masking", rng=DeterministicRandom(3)), batches, model)
    res = invert(model, upd, (1, 8, 8), 2, method="idlg")
    union = np.concatenate([b[0].numpy() for b in batches])
    assert match_and_score(res.images, union)["psnr"] >= 20.0


def test_geiping_reconstructs_plain_update(digits, model):
    X, y = digits
    batches = _batches(X, y, 1, 1, start=1)
    upd = observe(ObserveConfig(), batches, model)
    res = invert(model, upd, (1, 8, 8), 1, method="geiping", steps=300)
    assert match_and_score(res.images, batches[0][0].numpy())["psnr"] >= 15.0
    assert res.loss_history[-1] < res.loss_history[0]


def test_delta_updates_are_converted(digits, model):
    X, y = digits
    batches = _batches(X, y, 1, 1, start=10)
    upd = observe(ObserveConfig(update_kind="delta", lr=0.5), batches, model)
    res = invert(model, upd, (1, 8, 8), 1, method="dlg", update_kind="delta", lr=0.5)
    assert match_and_score(res.images, batches[0][0].numpy())["psnr"] >= 20.0


def test_example_level_dp_noise_defeats_inversion(digits, model):
    X, y = digits
    batches = _batches(X, y, 1, 1, start=10)
    obs = observe_detailed(ObserveConfig(dp="example", epsilon=8.0, rng=DeterministicRandom(4)), batches, model)
    assert obs.info["noise_multiplier"] > 0
    res = invert(model, obs.update, (1, 8, 8), 1, method="idlg")
    assert match_and_score(res.images, batches[0][0].numpy())["psnr"] < 12.0


def test_secure_backend_that_would_clip_is_loud(digits, model):
    X, y = digits
    cfg = ObserveConfig(backend="spdz", secagg_clip=1e-6, rng=DeterministicRandom(5))
    with pytest.raises(ValueError, match="clipped"):
        observe(cfg, _batches(X, y, 2, 1), model)


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="method"):
        invert(model, np.zeros(10), (1, 8, 8), method="nope")
    with pytest.raises(ValueError, match="parameters"):
        invert(model, np.zeros(10), (1, 8, 8))
    with pytest.raises(ValueError, match="non-finite"):
        invert(model, np.full(sum(p.numel() for p in model.parameters()), np.nan), (1, 8, 8))
    with pytest.raises(ValueError, match="epsilon"):
        ObserveConfig(dp="example").validate()
    with pytest.raises(ValueError, match="backend"):
        ObserveConfig(backend="tls").validate()


def test_label_recovery_batch_heuristic_returns_n_labels(digits, model):
    X, y = digits
    b = _batches(X, y, 1, 4, start=0)[0]
    g = observe(ObserveConfig(), [b], model)
    labels = recover_labels(model, g, 4)
    assert labels.shape == (4,)
    assert set(labels.tolist()) <= set(range(10))


def test_match_and_score_finds_the_permutation():
    rng = np.random.default_rng(0)
    orig = rng.uniform(size=(3, 1, 8, 8))
    rec = orig[[2, 0, 1]]
    out = match_and_score(rec, orig)
    assert out["psnr"] == 100.0 and out["ssim"] == pytest.approx(1.0)
    assert sorted(out["pairs"]) == [(0, 2), (1, 0), (2, 1)]


@given(st.floats(0.01, 1.0), st.integers(1, 200))
def test_topk_keeps_k_largest(frac, n):
    u = np.random.default_rng(n).normal(size=n)
    out = topk_sparsify(u, frac)
    kept = np.flatnonzero(out)
    k = max(1, int(np.ceil(frac * n)))
    assert len(kept) == k
    assert np.min(np.abs(u[kept])) >= np.max(np.abs(np.delete(u, kept)), initial=0.0)


@given(st.lists(st.floats(-100, 100), min_size=1, max_size=50))
def test_int8_error_is_half_a_step(values):
    u = np.asarray(values)
    out = quantize_int8(u)
    step = np.max(np.abs(u)) / 127.0
    assert np.all(np.abs(out - u) <= step / 2 + 1e-12)
