"""Fixtures for the evasion-attack tests: scikit-learn digits (8x8, scaled to [0, 1]) and
small models defined here (a tiny CNN on (N, 1, 8, 8) and an MLP on (N, 64)), trained for
a second or two once per session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


class TinyCNN(torch.nn.Module):
    """conv3x3(16) - relu - maxpool2 - fc(64) - relu - fc(10) on (N, 1, 8, 8)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16 * 4 * 4, 64)
        self.out = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.out(torch.relu(self.fc(x.flatten(1))))


def make_mlp(n_in: int = 64, hidden: int = 32, n_out: int = 10, *, dropout: float = 0.0) -> torch.nn.Module:
    """A small MLP on (N, n_in); optional dropout so that eval/train modes matter."""
    layers = [torch.nn.Linear(n_in, hidden), torch.nn.ReLU()]
    if dropout:
        layers.append(torch.nn.Dropout(dropout))
    layers.append(torch.nn.Linear(hidden, n_out))
    return torch.nn.Sequential(*layers)


def train_plain(model, x, y, *, epochs: int = 15, lr: float = 1e-2, seed: int = 0):
    """Plain (non-adversarial) training with Adam, fixed data order."""
    from fl.adversarial import adversarial_train_epoch

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for ep in range(epochs):
        adversarial_train_epoch(model, (x, y), opt, None, 0.0, batch_size=64, generator=seed * 1000 + ep)
    model.eval()
    return model


@pytest.fixture(scope="session")
def digits():
    """(x_train, y_train, x_test, y_test): 1200 / 300 digits as (N, 1, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor((d.data / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
    y = torch.tensor(d.target).long()
    return x[:1200], y[:1200], x[1200:1500], y[1200:1500]


@pytest.fixture(scope="session")
def cnn(digits):
    """An undefended TinyCNN trained on the digits (about 95 % test accuracy)."""
    torch.manual_seed(0)
    xtr, ytr, _, _ = digits
    return train_plain(TinyCNN(), xtr, ytr)


@pytest.fixture(scope="session")
def mlp(digits):
    """An undefended MLP on flattened digits (N, 64)."""
    torch.manual_seed(1)
    xtr, ytr, _, _ = digits
    return train_plain(make_mlp(), xtr.flatten(1), ytr)


@pytest.fixture(scope="session")
def model_factory():
    """Builders for test models: ``{"cnn": TinyCNN, "mlp": make_mlp}``."""
    return {"cnn": TinyCNN, "mlp": make_mlp, "train": train_plain}
