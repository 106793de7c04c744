"""DnCNN (Zhang et al., 2017) in torch.

``depth`` convolution layers of 3x3 kernels and ``features`` channels: conv+ReLU, then
``depth - 2`` times conv+BN+ReLU, then conv. The network predicts the noise (residual
learning) and :meth:`DnCNN.forward` returns ``input - predicted noise``. Depth 17 is
DnCNN-S (the shipped models), depth 9 the receiver of the FLEP paper. Images are fed on
the 0-1 scale (pixel / 255).
"""

from __future__ import annotations

import torch
from torch import nn


class DnCNN(nn.Module):
    def __init__(self, depth: int = 17, features: int = 64, channels: int = 1):
        super().__init__()
        if depth < 3:
            raise ValueError("depth must be at least 3")
        self.depth, self.features, self.channels = depth, features, channels
        layers: list[nn.Module] = [nn.Conv2d(channels, features, 3, padding=1, bias=True), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(features, features, 3, padding=1, bias=False),
                nn.BatchNorm2d(features, eps=1e-4, momentum=0.05),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(features, channels, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Start close to the identity map: the last layer's noise estimate begins small.
        last = self.body[-1]
        with torch.no_grad():
            last.weight.mul_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)

    @property
    def receptive_field(self) -> int:
        """Pixels seen by one output pixel along each axis (``2 * depth + 1``)."""
        return 2 * self.depth + 1


def fold_batchnorm(model: DnCNN) -> nn.Sequential:
    """An inference-only copy of ``model.body`` with each BatchNorm folded into the conv
    before it (same outputs in eval mode, fewer passes over memory)."""
    layers = list(model.body)
    out: list[nn.Module] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, nn.Conv2d) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d):
            bn = layers[i + 1]
            conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, padding=layer.padding, bias=True)
            with torch.no_grad():
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight.copy_(layer.weight * scale.reshape(-1, 1, 1, 1))
                b0 = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
                conv.bias.copy_((b0 - bn.running_mean) * scale + bn.bias)
            out.append(conv)
            i += 2
        else:
            out.append(layer)
            i += 1
    return nn.Sequential(*out).eval()


class FoldedDnCNN(nn.Module):
    """``x - body(x)`` with the BN-folded body; what :class:`imaging.denoise.Denoiser` runs."""

    def __init__(self, model: DnCNN):
        super().__init__()
        self.body = fold_batchnorm(model)
        self.depth = model.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)
