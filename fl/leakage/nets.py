"""Small victim models for the leakage attacks and their tests.

These are the architectures the gradient-inversion literature attacks: a LeNet-like CNN
with sigmoid activations (Zhu et al. 2019, "Deep Leakage from Gradients", use sigmoid
because it is twice differentiable everywhere, which L-BFGS on the gradient-matching loss
needs) and a small MLP for membership inference. They are deliberately tiny so that the
attacks run on a CPU in seconds; the FL layer's own models (``fl/models.py``) are owned
elsewhere and can be attacked the same way (every attack here takes any ``nn.Module``).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LeNetSigmoid", "MLP", "param_shapes", "n_params"]


class LeNetSigmoid(nn.Module):
    """LeNet-like CNN with sigmoid activations for ``(C, H, W)`` inputs (DLG's victim).

    Two 5x5 (or 3x3 for inputs below 16 pixels) convolutions with 12 channels, the second
    with stride 2, then one linear layer to ``n_classes`` logits."""

    def __init__(self, input_shape=(1, 8, 8), n_classes: int = 10, channels: int = 12):
        super().__init__()
        c, h, w = (int(v) for v in input_shape)
        k = 3 if min(h, w) < 16 else 5
        p = k // 2
        self.body = nn.Sequential(
            nn.Conv2d(c, channels, k, padding=p, stride=1), nn.Sigmoid(),
            nn.Conv2d(channels, channels, k, padding=p, stride=2), nn.Sigmoid(),
        )
        with torch.no_grad():
            feat = self.body(torch.zeros(1, c, h, w)).numel()
        self.fc = nn.Linear(feat, int(n_classes))

    def forward(self, x):  # noqa: D102 - standard forward
        return self.fc(self.body(x).flatten(1))


class MLP(nn.Module):
    """A two-hidden-layer ReLU MLP on flattened inputs (the membership-inference victim)."""

    def __init__(self, in_features: int = 64, n_classes: int = 10, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(int(in_features), hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, int(n_classes)),
        )

    def forward(self, x):  # noqa: D102 - standard forward
        return self.net(x)


def param_shapes(model: nn.Module) -> list[torch.Size]:
    """Shapes of ``model.parameters()`` in order: the layout of every flat update here."""
    return [p.shape for p in model.parameters()]


def n_params(model: nn.Module) -> int:
    """Length of the flat update vector of ``model``."""
    return sum(p.numel() for p in model.parameters())
