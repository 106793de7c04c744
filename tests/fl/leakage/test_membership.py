"""Membership inference on an overfit model, and under DP-SGD against the (eps, delta)
bound (issue 18)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fl.leakage import MLP, dp_advantage_bound, loss_threshold_attack, membership_metrics, shadow_model_attack, train_classifier
from privcrypt.rng import DeterministicRandom

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(X))
    return X[perm], y[perm]


def _train(X, y, seed=0, **kw):
    torch.manual_seed(seed)
    m = MLP(64, 10)
    info = train_classifier(m, X, y, seed=seed, **kw)
    return m, info


@pytest.fixture(scope="module")
def overfit(data):
    X, y = data
    m, _ = _train(X[:100], y[:100], epochs=150, batch_size=20)
    return m


def test_loss_threshold_beats_chance_on_overfit_model(data, overfit):
    X, y = data
    r = loss_threshold_attack(overfit, (X[:100], y[:100]), (X[100:200], y[100:200]))
    assert r["auc"] > 0.6
    assert r["balanced_accuracy"] > 0.58


def test_shadow_attack_beats_chance(data, overfit):
    X, y = data

    def train_fn(Xs, ys):
        return _train(Xs, ys, seed=1, epochs=150, batch_size=20)[0]

    shadows = [(X[200 + 200 * i:300 + 200 * i], y[200 + 200 * i:300 + 200 * i],
                X[300 + 200 * i:400 + 200 * i], y[300 + 200 * i:400 + 200 * i]) for i in range(2)]
    r = shadow_model_attack(train_fn, overfit, shadows, (X[:100], y[:100]), (X[100:200], y[100:200]))
    assert r["auc"] > 0.6


@pytest.mark.parametrize("eps", [1.0, 4.0])
def test_dp_advantage_stays_below_bound(data, eps):
    X, y = data
    m, info = _train(X[:100], y[:100], epochs=20, batch_size=20, dp_epsilon=eps, dp_delta=1e-5,
                     dp_lr=0.1, rng=DeterministicRandom(7))
    assert info["noise_multiplier"] > 0 and info["steps"] == 100
    r = loss_threshold_attack(m, (X[:100], y[:100]), (X[100:200], y[100:200]))
    assert r["advantage"] <= dp_advantage_bound(eps, 1e-5)


def test_bound_known_values():
    # (e - 1) / (e + 1) = tanh(1/2) at eps = 1, delta = 0 (Kairouz et al. 2015 region)
    assert dp_advantage_bound(1.0, 0.0) == pytest.approx(math.tanh(0.5))
    assert dp_advantage_bound(0.0, 0.0) == 0.0
    assert dp_advantage_bound(50.0, 0.0) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        dp_advantage_bound(-1.0, 0.0)


@given(st.floats(0, 20), st.floats(0, 0.1), st.floats(0, 20))
def test_bound_monotone(e1, d, de):
    assert dp_advantage_bound(e1, d) <= dp_advantage_bound(e1 + de, d) + 1e-12


def test_metrics_perfect_and_inverted():
    m = np.r_[np.ones(5), np.zeros(5)]
    assert membership_metrics(m, m, predictions=m)["auc"] == 1.0
    r = membership_metrics(-m, m)
    assert r["auc"] == 0.0 and r["advantage"] == 0.0
    with pytest.raises(ValueError):
        membership_metrics([1.0, 2.0], [1, 1])
