"""Small models for the built-in workloads. Any ``torch.nn.Module`` works with ``fl.run``.

None of them uses batch statistics (BatchNorm), so example-level DP-SGD applies: a
per-example gradient must not depend on the other examples of the batch.

| model | input | output | task |
|---|---|---|---|
| :class:`CNN` | ``(N, C, H, W)`` | ``(N, classes)`` logits | classification |
| :class:`LeNet` | ``(N, 1, 28, 28)`` (or larger) | ``(N, classes)`` | classification |
| :class:`MLP` | ``(N, ...)`` flattened | ``(N, classes)`` or ``(N, 1)`` | either |
| :class:`LSTMRegressor` | ``(N, T, F)`` | ``(N,)`` | regression (RUL) |
| :class:`LSTMAutoencoder` | ``(N, T, F)`` | ``(N, T, F)`` reconstruction | anomaly |
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["CNN", "LeNet", "MLP", "LSTMRegressor", "LSTMAutoencoder", "default_model_fn"]


class CNN(nn.Module):
    """Two 3x3 conv layers (16 and 32 channels, ReLU, 2x2 max-pool after each when the
    image is large enough) and a linear head. ``in_shape = (C, H, W)``."""

    def __init__(self, in_shape=(1, 28, 28), n_classes: int = 10, width: int = 16):
        super().__init__()
        c, h, w = in_shape
        layers: list[nn.Module] = []
        ch = c
        for out in (width, 2 * width):
            layers += [nn.Conv2d(ch, out, 3, padding=1), nn.ReLU()]
            if min(h, w) >= 8:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            ch = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch * h * w, n_classes)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


class LeNet(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling, as used by FDA³ on MNIST:
    conv 5x5 (6, padding 2) -> pool -> conv 5x5 (16) -> pool -> 120 -> 84 -> classes.
    Needs images of at least 12x12."""

    def __init__(self, in_shape=(1, 28, 28), n_classes: int = 10):
        super().__init__()
        c, h, w = in_shape
        if min(h, w) < 12:
            raise ValueError(f"LeNet needs images of at least 12x12, got {h}x{w}; use CNN")
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        h2, w2 = (h // 2 - 4) // 2, (w // 2 - 4) // 2
        self.head = nn.Sequential(nn.Linear(16 * h2 * w2, 120), nn.ReLU(), nn.Linear(120, 84),
                                  nn.ReLU(), nn.Linear(84, n_classes))

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


class MLP(nn.Module):
    """Flatten, then hidden ReLU layers, then ``n_out`` outputs (``n_out=1`` squeezes to
    ``(N,)`` for regression)."""

    def __init__(self, in_features: int, n_out: int = 10, hidden=(128, 64)):
        super().__init__()
        dims = [int(in_features), *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], n_out))
        self.net = nn.Sequential(*layers)
        self.n_out = n_out

    def forward(self, x):
        out = self.net(torch.flatten(x, 1))
        return out.squeeze(-1) if self.n_out == 1 else out


class LSTMRegressor(nn.Module):
    """A 2-layer LSTM over a window ``(N, T, F)``; the last hidden state feeds a linear
    layer that predicts one value per window (remaining useful life, scaled)."""

    def __init__(self, n_features: int = 1, hidden: int = 32, layers: int = 2):
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        if x.dim() == 2:
            x = x.unsqueeze(-1)
        out, _ = self.lstm(x)
        return self.head(out[:, -1]).squeeze(-1)


class LSTMAutoencoder(nn.Module):
    """LSTM encoder to a ``latent``-sized code, repeated over time, LSTM decoder back to
    ``(N, T, F)``. Anomalies are windows whose reconstruction error exceeds a threshold
    (chosen by the FL layer from the clients' training errors)."""

    def __init__(self, n_features: int = 1, hidden: int = 32, latent: int = 16):
        super().__init__()
        self.encoder = nn.LSTM(n_features, hidden, batch_first=True)
        self.to_latent = nn.Linear(hidden, latent)
        self.decoder = nn.LSTM(latent, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_features)

    def forward(self, x):
        squeeze = x.dim() == 2
        if squeeze:
            x = x.unsqueeze(-1)
        _, (h, _) = self.encoder(x)
        z = self.to_latent(h[-1])
        dec, _ = self.decoder(z.unsqueeze(1).expand(-1, x.shape[1], -1))
        out = self.out(dec)
        return out.squeeze(-1) if squeeze else out


def default_model_fn(input_shape, task: str, n_classes: int | None = None, name: str | None = None):
    """A ``() -> nn.Module`` factory for a data set's shape and task: CNN for images,
    LSTM regressor for regression windows, LSTM autoencoder for anomaly windows, MLP for
    flat features. ``name`` forces one (``cnn``, ``lenet``, ``mlp``, ``lstm``, ``lstm_ae``)."""
    shape = tuple(int(s) for s in input_shape)
    if name is None:
        if task == "regression":
            name = "lstm"
        elif task == "anomaly":
            name = "lstm_ae"
        else:
            name = "cnn" if len(shape) == 3 else "mlp"
    if name in ("cnn", "lenet"):
        if len(shape) != 3:
            raise ValueError(f"{name} needs (C, H, W) inputs, got shape {shape}")
        cls = CNN if name == "cnn" else LeNet
        return lambda: cls(shape, n_classes or 10)
    if name == "mlp":
        n_out = 1 if task == "regression" else (n_classes or 10)
        return lambda: MLP(math.prod(shape), n_out)
    feats = shape[-1] if len(shape) == 2 else 1
    if name == "lstm":
        return lambda: LSTMRegressor(feats)
    if name == "lstm_ae":
        return lambda: LSTMAutoencoder(feats)
    raise ValueError(f"unknown model {name!r}; choose cnn, lenet, mlp, lstm or lstm_ae")
