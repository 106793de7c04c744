"""Small digits-sized fixtures for the FL tests (one torch thread, a few rounds)."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_clients():
    """Ten IID clients of scikit-learn's digits (8x8, [0, 1]) and a 300-image test set."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.data / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(0).permutation(len(y))
    X, y = X[idx], y[idx]
    test = (X[:300], y[:300])
    clients = [(X[300 + i::10][:80], y[300 + i::10][:80]) for i in range(10)]
    return clients, test


@pytest.fixture(scope="session")
def small_cnn():
    from fl.models import CNN

    return lambda: CNN((1, 8, 8), 10, width=4)
