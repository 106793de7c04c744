"""The one place that picks the denoiser used at decryption.

:func:`select_denoiser` returns the project's DnCNN (``imaging.denoise.load_denoiser``)
when that package is importable, and otherwise a documented scikit-image **stand-in**:
non-local means (``skimage.restoration.denoise_nl_means``, fast mode, patch 5, search
window 13, ``h = 0.8 sigma``, with ``sigma`` given, on the 0-1 scale). The stand-in is
weaker than a trained DnCNN; every benchmark names the denoiser it used (``.name``).

A denoiser takes a 2-D array on the 0-255 scale (uint8 or float) and returns float32 on
the same scale; RGB images are denoised channel by channel (:func:`denoise_image`).
"""

from __future__ import annotations

import warnings

import numpy as np

from privcrypt.exceptions import PrivcryptError

__all__ = ["select_denoiser", "SkimageNLMeans", "denoise_image"]


class SkimageNLMeans:
    """Stand-in denoiser: scikit-image non-local means tuned for Gaussian ``sigma``."""

    def __init__(self, sigma: float):
        self.sigma = float(sigma)
        self.name = f"skimage-nl-means(sigma={self.sigma:g}) [stand-in, not DnCNN]"

    def __repr__(self) -> str:
        return f"SkimageNLMeans(sigma={self.sigma:g})"

    def denoise(self, img: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_nl_means

        x = np.asarray(img, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError("denoise takes a 2-D array")
        if self.sigma <= 0:
            return x.astype(np.float32)
        s = self.sigma / 255.0
        out = denoise_nl_means(
            x / 255.0, patch_size=5, patch_distance=6, h=0.8 * s, sigma=s, fast_mode=True
        )
        return (out * 255.0).astype(np.float32)


def select_denoiser(sigma: float):
    """The DnCNN for ``sigma`` if ``imaging.denoise`` is importable, else the stand-in."""
    try:
        from imaging.denoise import load_denoiser
    except ModuleNotFoundError as exc:
        if exc.name not in ("imaging.denoise",):
            raise
        return SkimageNLMeans(sigma)
    try:
        return load_denoiser(sigma)
    except (FileNotFoundError, ValueError, PrivcryptError) as exc:  # no weights for this sigma
        warnings.warn(f"DnCNN unavailable for sigma={sigma:g} ({exc}); using the scikit-image stand-in",
                      RuntimeWarning, stacklevel=2)
        return SkimageNLMeans(sigma)


def denoiser_name(den) -> str:
    return str(getattr(den, "name", type(den).__name__))


def denoise_image(den, img: np.ndarray) -> np.ndarray:
    """Apply a 2-D denoiser to a gray ``(H, W)`` or multi-channel ``(H, W, C)`` image."""
    img = np.asarray(img)
    if img.ndim == 2:
        return np.asarray(den.denoise(img), dtype=np.float64)
    return np.stack(
        [np.asarray(den.denoise(img[..., ch]), dtype=np.float64) for ch in range(img.shape[2])], axis=2
    )
