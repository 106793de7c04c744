"""Standard image-encryption metrics, computed honestly.

All percentages are returned in percent (0-100), as the literature reports them.

* :func:`npcr`, :func:`uaci`: number of pixels change rate and unified average changing
  intensity between two uint8 images, in integer arithmetic (uint8 subtraction would wrap:
  the arrays are widened first).
* :func:`npcr_critical`, :func:`uaci_interval`: the critical values of Wu, Noonan & Agaian,
  "NPCR and UACI Randomness Tests for Image Encryption", Cyber Journals JSAT (2011): for two
  independent uniformly random images of ``T`` pixels with ``F = 255``,
  ``N*_a = (F - z_a sqrt(F/T)) / (F + 1)`` and
  ``U*_a = mu -/+ z_(a/2) sigma`` with ``mu = (F+2)/(3F+3)``,
  ``sigma^2 = (F+2)(F^2+2F+3) / (18 (F+1)^2 T F)``, ``z_q`` the upper ``q`` quantile of the
  standard normal. 256x256, a = 0.05: NPCR* = 99.5693 %, UACI in [33.2824, 33.6447] %.
  An NPCR/UACI pair "passes" when NPCR >= NPCR* and UACI lies in the interval.
* :func:`entropy` (Shannon, bits per pixel, 8 is the maximum for 8-bit images),
  :func:`encryption_quality` (Ahmed, Kalash & Farag Allah 2007: ``sum_L |H_C(L) - H_P(L)| / 256``),
  :func:`correlation` (adjacent-pixel Pearson correlation, horizontal / vertical / diagonal),
  :func:`psnr`, :func:`ssim` (scikit-image).
* :func:`differential` (one plaintext pixel changed), :func:`identical_plaintexts` (one
  image encrypted twice) and :func:`key_sensitivity` (one key bit flipped) run a pipeline.

NPCR/UACI between cipher images measure diffusion (how far a change spreads) and nothing
else: a keyless linear map can pass them. They are necessary, not sufficient.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = [
    "npcr", "uaci", "npcr_critical", "uaci_interval", "wu_test", "entropy",
    "encryption_quality", "adjacent_correlation", "correlation", "psnr", "ssim",
    "differential", "identical_plaintexts", "key_sensitivity",
]

_F = 255


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise TypeError("NPCR/UACI are defined on uint8 images")
    return a, b


def npcr(a: np.ndarray, b: np.ndarray) -> float:
    """Percentage of positions where ``a`` and ``b`` differ."""
    a, b = _pair(a, b)
    return 100.0 * int(np.count_nonzero(a != b)) / a.size


def uaci(a: np.ndarray, b: np.ndarray) -> float:
    """``100 * mean(|a - b|) / 255``, with the difference taken in int16 (no wrapping)."""
    a, b = _pair(a, b)
    total = int(np.abs(a.astype(np.int16) - b.astype(np.int16)).sum(dtype=np.int64))
    return 100.0 * total / (_F * a.size)


def _pixels(shape) -> int:
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2 or shape[0] < 1 or shape[1] < 1:
        raise ValueError("shape must be (H, W) or (H, W, C)")
    return shape[0] * shape[1]  # Wu et al. test each channel image of M x N pixels


def _z(q: float) -> float:
    if not 0.0 < q < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    return NormalDist().inv_cdf(1.0 - q)


def npcr_critical(shape, alpha: float = 0.05) -> float:
    """Wu et al.'s NPCR critical value N*_alpha, in percent, for images of ``shape``."""
    t = _pixels(shape)
    return 100.0 * (_F - _z(alpha) * math.sqrt(_F / t)) / (_F + 1)


def uaci_interval(shape, alpha: float = 0.05) -> tuple[float, float]:
    """Wu et al.'s UACI acceptance interval ``(U*-, U*+)`` in percent."""
    t = _pixels(shape)
    mu = (_F + 2) / (3 * _F + 3)
    var = (_F + 2) * (_F**2 + 2 * _F + 3) / (18 * (_F + 1) ** 2 * t * _F)
    half = _z(alpha / 2) * math.sqrt(var)
    return 100.0 * (mu - half), 100.0 * (mu + half)


def wu_test(c1: np.ndarray, c2: np.ndarray, alpha: float = 0.05) -> dict[str, Any]:
    """NPCR and UACI of two cipher images with Wu et al.'s pass/fail at level ``alpha``.

    Wu et al. test each channel image of M x N pixels against critical values for
    T = M N. A colour image is therefore tested channel by channel and passes only if every
    channel passes (``channels`` holds the per-channel results); ``npcr``/``uaci`` are
    reported pooled over all values. (Comparing the pooled statistic with the per-channel
    critical values would be too lenient: its variance is C times smaller.)"""
    c1, c2 = np.asarray(c1), np.asarray(c2)
    nc = npcr_critical(c1.shape, alpha)
    lo, hi = uaci_interval(c1.shape, alpha)
    planes = [(c1, c2)] if c1.ndim == 2 else [(c1[..., k], c2[..., k]) for k in range(c1.shape[-1])]
    channels = []
    for p1, p2 in planes:
        n, u = npcr(p1, p2), uaci(p1, p2)
        channels.append({"npcr": n, "uaci": u, "npcr_pass": n >= nc, "uaci_pass": lo <= u <= hi})
    npcr_pass = all(ch["npcr_pass"] for ch in channels)
    uaci_pass = all(ch["uaci_pass"] for ch in channels)
    return {
        "npcr": npcr(c1, c2), "uaci": uaci(c1, c2), "alpha": alpha, "npcr_critical": nc,
        "uaci_interval": [lo, hi], "npcr_pass": npcr_pass, "uaci_pass": uaci_pass,
        "pass": npcr_pass and uaci_pass, "channels": channels,
    }


def _hist(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise TypeError("histogram metrics are defined on uint8 images")
    return np.bincount(img.reshape(-1), minlength=256).astype(np.int64)


def entropy(img: np.ndarray) -> float:
    """Shannon entropy of the 256-bin histogram, in bits (maximum 8)."""
    h = _hist(img)
    p = h[h > 0] / h.sum()
    return float(-(p * np.log2(p)).sum())


def encryption_quality(plain: np.ndarray, cipher: np.ndarray) -> float:
    """Ahmed et al. (2007): ``sum_L |H_cipher(L) - H_plain(L)| / 256``."""
    hp, hc = _hist(plain), _hist(cipher)
    if np.asarray(plain).size != np.asarray(cipher).size:
        raise ValueError("plain and cipher must have the same number of pixels")
    return float(np.abs(hc - hp).sum() / 256.0)


def adjacent_correlation(img: np.ndarray, direction: str = "h") -> float:
    """Pearson correlation of all pairs of adjacent pixels (per channel, pooled).

    ``direction``: ``"h"`` (right neighbour), ``"v"`` (below), ``"d"`` (below right)."""
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    if direction == "h":
        a, b = x[:, :-1], x[:, 1:]
    elif direction == "v":
        a, b = x[:-1, :], x[1:, :]
    elif direction == "d":
        a, b = x[:-1, :-1], x[1:, 1:]
    else:
        raise ValueError("direction must be 'h', 'v' or 'd'")
    a, b = a.reshape(-1), b.reshape(-1)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def correlation(img: np.ndarray) -> dict[str, float]:
    """Adjacent-pixel correlation in the three directions: ``{"h", "v", "d"}``."""
    return {d: adjacent_correlation(img, d) for d in ("h", "v", "d")}


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (scikit-image, data range 255); inf if equal."""
    from skimage.metrics import peak_signal_noise_ratio

    reference, test = np.asarray(reference), np.asarray(test)
    if np.array_equal(reference, test):
        return float("inf")
    return float(peak_signal_noise_ratio(reference, test, data_range=255))


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Structural similarity (scikit-image, data range 255; channel axis last for colour)."""
    from skimage.metrics import structural_similarity

    reference, test = np.asarray(reference), np.asarray(test)
    kw = {"channel_axis": -1} if reference.ndim == 3 else {}
    return float(structural_similarity(reference, test, data_range=255, **kw))


# -- metrics that run a pipeline ---------------------------------------------------------------
def _one_pixel_change(img: np.ndarray, position=None) -> tuple[np.ndarray, tuple]:
    img2 = np.array(img, copy=True)
    if position is None:
        position = tuple(s // 2 for s in img.shape)
    position = tuple(position)
    img2[position] = (int(img2[position]) + 1) % 256
    return img2, position


def differential(pipe, img: np.ndarray, *, position=None, alpha: float = 0.05, rng=None) -> dict[str, Any]:
    """Encrypt ``img`` and ``img`` with one pixel changed by +1 (mod 256) under the same key;
    NPCR/UACI of the two 8-bit cipher renderings with Wu et al.'s verdict. The two
    encryptions draw independent noise, as two real encryptions would."""
    img2, position = _one_pixel_change(img, position)
    c1 = pipe.encrypt(img, rng=rng).to_uint8()
    c2 = pipe.encrypt(img2, rng=rng).to_uint8()
    out = wu_test(c1, c2, alpha)
    out["position"] = list(position)
    return out


def identical_plaintexts(pipe, img: np.ndarray, *, alpha: float = 0.05, rng=None) -> dict[str, Any]:
    """NPCR/UACI between two encryptions of the *same* image: what fresh noise alone gives."""
    c1 = pipe.encrypt(img, rng=rng).to_uint8()
    c2 = pipe.encrypt(img, rng=rng).to_uint8()
    return wu_test(c1, c2, alpha)


def key_sensitivity(pipe_factory, key, img: np.ndarray, *, bit: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """Flip one bit of the master key.

    ``pipe_factory(key) -> FlepPipeline`` (use a noise-free one, or fresh noise masks the
    effect). Reports NPCR/UACI between the ciphers of ``img`` under the two keys, and how
    the plaintext compares with what the flipped key decrypts (``verify_key=False``)."""
    other = key.with_bit_flipped(bit)
    p1, p2 = pipe_factory(key), pipe_factory(other)
    c1 = p1.encrypt(img)
    c2 = p2.encrypt(img)
    cipher = wu_test(c1.to_uint8(), c2.to_uint8(), alpha)
    wrong = p2.decrypt(c1, verify_key=False)
    return {
        "bit": int(bit),
        "cipher_npcr": cipher["npcr"], "cipher_uaci": cipher["uaci"], "cipher_pass": cipher["pass"],
        "wrong_key_decrypt_npcr": npcr(img, wrong), "wrong_key_decrypt_psnr": psnr(img, wrong),
    }
