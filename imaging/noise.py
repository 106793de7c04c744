"""Layer 3: additive white Gaussian noise (the FLEP paper's third layer).

``y = x + mean + N(0, sigma^2)`` per pixel, drawn from ``privcrypt.rng`` (the CSPRNG).
``mean`` and ``sigma`` are public parameters: they are stored in the cipher and, in the
paper, select the receiver's DnCNN. Removal is statistical, by a denoiser, never exact.

What it protects and what it does not: noise is **not encryption**. It destroys
information for everyone alike, the key holder included (decryption is lossy once
``sigma > 0``), and it hides nothing that the denoiser cannot restore, because the
denoiser is public. It does make two encryptions of the same image differ (fresh noise):
with ``sigma = 25`` the 8-bit renderings of two encryptions of one image already give
NPCR ~ 98.7 % but UACI ~ 11 %, which is noise, not diffusion.
"""

from __future__ import annotations

import math

import numpy as np

from privcrypt.rng import RandomSource, resolve_rng

__all__ = ["GaussianNoise"]


class GaussianNoise:
    """AWGN with public ``sigma`` and ``mean`` (0-255 scale)."""

    def __init__(self, sigma: float = 25.0, mean: float = 0.0):
        sigma, mean = float(sigma), float(mean)
        if not math.isfinite(sigma) or sigma < 0:
            raise ValueError("sigma must be finite and >= 0")
        if not math.isfinite(mean):
            raise ValueError("mean must be finite")
        self.sigma, self.mean = sigma, mean

    def __repr__(self) -> str:
        return f"GaussianNoise(sigma={self.sigma}, mean={self.mean})"

    def encrypt(self, x: np.ndarray, *, rng: RandomSource | None = None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.sigma == 0:
            return x + self.mean
        return x + self.mean + resolve_rng(rng).normal(self.sigma, x.shape)

    def decrypt(self, y: np.ndarray) -> np.ndarray:
        """Removes the (public) mean; the noise itself is left to the denoiser."""
        return np.asarray(y, dtype=np.float64) - self.mean
