"""Strategies, compression, the client privacy pipeline and DP-SGD's pieces."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fl.client import LocalTrainer, get_vector, prepare_update, set_vector
from fl.compression import TopKCompressor, stochastic_quantize
from fl.config import FLConfig
from fl.strategy import FedAdam, FedAvg, FedAvgM, sample_clients
from privcrypt.rng import DeterministicRandom


def test_fedavg_and_momentum_by_hand():
    w = np.array([1.0, 2.0])
    assert np.allclose(FedAvg(0.5).update(w, np.array([2.0, -2.0])), [2.0, 1.0])
    m = FedAvgM(1.0, 0.5)
    w1 = m.update(w, np.array([1.0, 0.0]))        # v = [1, 0]
    w2 = m.update(w1, np.array([1.0, 0.0]))       # v = 0.5 [1, 0] + [1, 0] = [1.5, 0]
    assert np.allclose(w2, [1 + 1 + 1.5, 2.0])


def test_fedadam_first_step_by_hand():
    # Reddi et al. 2021, Alg. 2: m = (1-b1) d, v = b2 tau^2 + (1-b2) d^2, w += lr m / (sqrt(v) + tau)
    a = FedAdam(server_lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    d = np.array([0.5, -0.2])
    m = 0.1 * d
    v = 0.99 * 1e-6 + 0.01 * d**2
    assert np.allclose(a.update(np.zeros(2), d), 0.1 * m / (np.sqrt(v) + 1e-3))


def test_sampling_fixed_count_and_poisson():
    rs = np.random.default_rng(0)
    ids = list(range(20))
    s = sample_clients(ids, count=5, uniform=rs.random)
    assert len(s) == 5 and len(set(s)) == 5 and set(s) <= set(ids)
    counts = [len(sample_clients(ids, rate=0.25, uniform=rs.random)) for _ in range(400)]
    assert abs(np.mean(counts) - 5.0) < 0.5  # Poisson: 20 * 0.25 in expectation
    assert len(set(counts)) > 3               # and it varies
    assert sample_clients(ids, uniform=rs.random) == ids


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=1, max_size=50), st.sampled_from([8, 16]))
def test_stochastic_quantization_error_below_one_step(xs, bits):
    x = np.array(xs)
    q, clipped = stochastic_quantize(x, bits, 2.0, rng=DeterministicRandom(0))
    step = 4.0 / (2**bits - 1)
    assert clipped == int(np.sum(np.abs(x) > 2.0))
    assert np.all(np.abs(q - np.clip(x, -2, 2)) <= step + 1e-12)


def test_stochastic_quantization_is_unbiased():
    x = np.full(20000, 0.3337)
    q, _ = stochastic_quantize(x, 4, 1.0, rng=DeterministicRandom(1))
    assert abs(q.mean() - 0.3337) < 0.002
    assert len(np.unique(q)) == 2


def test_topk_error_feedback_loses_nothing():
    c = TopKCompressor(0.25)
    rs = np.random.default_rng(0)
    xs = [rs.normal(size=16) for _ in range(5)]
    sent = [c.compress(0, x) for x in xs]
    assert all(np.count_nonzero(s) == 4 for s in sent)
    # what was sent plus what is still held equals what was given
    assert np.allclose(sum(sent) + c._residual[0], sum(xs))


def test_prepare_update_clips_and_reports():
    out, info = prepare_update(np.array([3.0, 4.0]), 1.0)
    assert np.isclose(np.linalg.norm(out), 1.0) and info["clipped"] and info["norm"] == 5.0
    out, info = prepare_update(np.array([0.3, 0.4]), 1.0)
    assert np.allclose(out, [0.3, 0.4]) and not info["clipped"]


def test_vector_round_trip():
    from fl.models import CNN

    m = CNN((1, 8, 8), 3, width=2)
    v = get_vector(m)
    set_vector(m, v + 1.0)
    assert np.allclose(get_vector(m), v + 1.0)
    with pytest.raises(ValueError, match="vector has"):
        set_vector(m, v[:-1])


def test_dp_sgd_step_clips_per_example_and_adds_calibrated_noise():
    """With zero noise, one DP-SGD step moves the weights by lr * (sum of clipped
    per-example gradients) / expected batch: no example contributes more than clip."""
    torch.manual_seed(0)
    lin = lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    cfg = FLConfig(rounds=1, lr=1.0, batch_size=8, local_epochs=1)
    t = LocalTrainer(lin, "classification", cfg)
    X = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32) * 3
    y = np.array([0, 1] * 4)
    w0 = get_vector(t.model)
    up = t.train(w0, X, y, seed=0, dp={"noise_multiplier": 0.0, "clip": 0.1, "sample_rate": 1.0},
                 rng=DeterministicRandom(0))
    # by hand: every per-example gradient clipped to 0.1, summed, divided by the batch 8
    ref = lin()
    set_vector(ref, w0)
    expected = np.zeros_like(w0)
    binds = []
    for i in range(8):
        ref.zero_grad()
        loss = torch.nn.functional.cross_entropy(ref(torch.from_numpy(X[i:i + 1])), torch.tensor([y[i]]))
        loss.backward()
        g = np.concatenate([p.grad.reshape(-1).double().numpy() for p in ref.parameters()])
        binds.append(np.linalg.norm(g) > 0.1)
        expected += g * min(1.0, 0.1 / np.linalg.norm(g))
    assert sum(binds) >= 2  # the clip binds for some examples
    assert np.allclose(up.delta, -expected / 8, atol=1e-6)
    assert np.linalg.norm(up.delta) <= 0.1 + 1e-6
    up2 = t.train(w0, X, y, seed=0, dp={"noise_multiplier": 1.0, "clip": 0.1, "sample_rate": 1.0},
                  rng=DeterministicRandom(0))
    noise = up2.delta - up.delta
    # noise per coordinate: lr * N(0, (z clip)^2) / 8 -> std 0.0125
    assert 0.003 < np.std(noise) < 0.04


def test_dp_sgd_works_for_lstm_models():
    from fl.models import LSTMRegressor

    cfg = FLConfig(rounds=1, lr=0.1, batch_size=4, local_epochs=1)
    t = LocalTrainer(lambda: LSTMRegressor(1, hidden=4), "regression", cfg)
    X = np.random.default_rng(0).normal(size=(6, 5, 1)).astype(np.float32)
    y = np.zeros(6, dtype=np.float32)
    up = t.train(get_vector(t.model), X, y, seed=0, dp={"noise_multiplier": 0.5, "clip": 1.0, "sample_rate": 0.5},
                 rng=DeterministicRandom(0))
    assert np.all(np.isfinite(up.delta)) and np.any(up.delta != 0)
