"""Clip-and-noise: the Gaussian mechanism applied to a model update.

``clip_and_noise(update, clip_norm, noise_multiplier, rng=...)`` scales ``update`` so its
L2 norm is at most ``clip_norm`` and adds N(0, (noise_multiplier * clip_norm)^2) to every
coordinate, with noise from :mod:`privcrypt.rng` (a CSPRNG; never numpy.random).

Two uses (docs/dp.md):

* local (client-side) DP: each client calls it on its own update before sending; the
  server and every other party are untrusted. One client's contribution is protected
  with sensitivity ``clip_norm``.
* central (server-side) DP: each client calls :func:`clip_update` only; a trusted
  aggregator (or secure aggregation) sums the clipped updates and calls
  :func:`add_gaussian_noise` once on the sum (``noise_multiplier`` relative to the same
  ``clip_norm``: one client's add/remove changes the sum by at most ``clip_norm``).

Caveat: floating-point Gaussian samples are not exactly Gaussian in their low bits; a
guarantee that must survive floating-point attacks needs a discrete Gaussian.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from privcrypt.rng import RandomSource, resolve_rng

__all__ = ["clip_update", "add_gaussian_noise", "clip_and_noise"]

_NORM_MARGIN = 1.0 + 8 * sys.float_info.epsilon


def _check_clip(clip_norm: float) -> float:
    clip_norm = float(clip_norm)
    if not (clip_norm > 0 and math.isfinite(clip_norm)):
        raise ValueError(f"clip_norm must be finite and > 0, got {clip_norm}")
    if clip_norm < sys.float_info.min:  # subnormal: scaling to it loses the direction
        raise ValueError(f"clip_norm must be at least {sys.float_info.min:g} (a normal float), got {clip_norm}")
    return clip_norm


def _as_float_array(update) -> np.ndarray:
    arr = np.array(update, dtype=np.float64, copy=True)
    if not np.all(np.isfinite(arr)):
        raise ValueError("update contains NaN or infinite values")
    return arr


def _l2_norm(arr: np.ndarray) -> float:
    """The L2 norm without underflow: entries are scaled by the largest magnitude first,
    so tiny updates (squares below 1e-308) keep their true norm instead of 0. Overflow
    gives inf, handled by the caller."""
    flat = arr.ravel()
    if flat.size == 0:
        return 0.0
    big = float(np.max(np.abs(flat)))
    if big == 0.0:
        return 0.0
    with np.errstate(over="ignore", under="ignore"):
        return big * float(np.linalg.norm(flat / big))


def clip_update(update, clip_norm: float) -> tuple[np.ndarray, float]:
    """Return ``(clipped copy, original L2 norm)``; the input is never modified.

    The copy is ``update * min(1, clip_norm / norm)``. Raises ``ValueError`` for a
    non-finite update or a non-positive ``clip_norm``.
    """
    clip_norm = _check_clip(clip_norm)
    arr = _as_float_array(update)
    norm = _l2_norm(arr)
    if norm > clip_norm:
        if math.isinf(norm):  # finite entries whose norm overflows: scale down first
            arr /= float(np.max(np.abs(arr)))
            norm_scaled = _l2_norm(arr)
            arr *= clip_norm / norm_scaled
        else:
            with np.errstate(under="ignore"):  # two steps: clip_norm / norm may underflow
                arr /= norm
                arr *= clip_norm
        # Rounding (or entries that became subnormal) may leave the norm a little above
        # the bound: step every entry one ulp towards zero until it is not (then halve,
        # so the loop always ends).
        shrink = 0
        while _l2_norm(arr) * _NORM_MARGIN > clip_norm:  # margin: numpy's norm may round down
            shrink += 1
            with np.errstate(under="ignore"):
                arr = np.nextafter(arr, 0.0) if shrink <= 16 else arr * 0.5
    return arr, norm


def add_gaussian_noise(
    value, clip_norm: float, noise_multiplier: float, *, rng: RandomSource | None = None
) -> np.ndarray:
    """``value + N(0, (noise_multiplier * clip_norm)^2)`` per coordinate (a new array).

    Noise from ``rng`` (default: a fresh OS-seeded :class:`~privcrypt.rng.SystemRandom`;
    numpy generators are rejected). ``noise_multiplier`` must be finite and >= 0.
    """
    clip_norm = _check_clip(clip_norm)
    noise_multiplier = float(noise_multiplier)
    if not (noise_multiplier >= 0 and math.isfinite(noise_multiplier)):
        raise ValueError(f"noise_multiplier must be finite and >= 0, got {noise_multiplier}")
    source = resolve_rng(rng)
    arr = _as_float_array(value)
    return arr + source.normal(noise_multiplier * clip_norm, arr.shape)


def clip_and_noise(
    update, clip_norm: float, noise_multiplier: float, *, rng: RandomSource | None = None
) -> np.ndarray:
    """Clip ``update`` to L2 norm ``clip_norm`` and add CSPRNG Gaussian noise of std
    ``noise_multiplier * clip_norm`` to every coordinate (local DP; see module doc).

    Returns a new float64 array with the input's shape. Raises ``ValueError`` for a
    non-finite update or invalid clip_norm / noise_multiplier, ``TypeError`` for a
    non-privcrypt ``rng``.
    """
    clipped, _ = clip_update(update, clip_norm)
    return add_gaussian_noise(clipped, clip_norm, noise_multiplier, rng=rng)
