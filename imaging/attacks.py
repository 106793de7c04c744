"""A chosen-plaintext attack on the paper's configuration, to make its weakness measurable.

Without diffusion the cipher is ``c = alpha * S(x) + (1 - alpha) * s + n``: a keyed pixel
permutation ``S``, a fixed key-dependent carrier ``s`` and fresh noise ``n`` (one alpha is
pixel blending; see :mod:`imaging.blend`). An attacker who can have images of one shape
encrypted (``alpha`` and ``sigma`` are public) recovers everything the key determines for
that shape:

1. encrypt the all-zero image ``r`` times: the mean is ``(1 - alpha) s`` up to noise
   ``sigma / sqrt(r)``;
2. for every bit ``b`` of the pixel index (16 bits for 256x256) encrypt the image whose
   pixel ``i`` is 255 when bit ``b`` of ``i`` is set, else 0, ``r`` times; subtracting
   step 1 and thresholding at ``alpha * 255 / 2`` reads, at every cipher position, bit
   ``b`` of the plaintext position it came from.

That is ``r * (1 + ceil(log2(H W)))`` encryptions (68 for 256x256 with ``r = 4``), after
which any cipher of that shape is decrypted without the key. The attack is written for the
pixel layers; against the diffusion layer it recovers nothing (the benchmark shows both),
which says only that *this* attack fails there, not that the diffusion layer is secure.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["chosen_plaintext_attack", "decrypt_with_recovered"]


def chosen_plaintext_attack(
    encrypt: Callable[[np.ndarray], np.ndarray], shape: tuple[int, int], alpha: float, *, repeats: int = 4
) -> dict:
    """Recover ``(perm, offset)`` for gray images of ``shape`` from an encryption oracle.

    ``encrypt(img_uint8) -> float cipher array`` (the cipher file's data). Returns
    ``{"perm": flat source index per cipher position, "offset": (1 - alpha) * carrier
    estimate, "queries": number of encryptions}``."""
    h, w = shape
    n = h * w

    def mean_cipher(img):
        return np.mean([np.asarray(encrypt(img), dtype=np.float64)[:h, :w] for _ in range(repeats)], axis=0)

    offset = mean_cipher(np.zeros(shape, dtype=np.uint8))
    idx = np.arange(n, dtype=np.int64).reshape(shape)
    perm = np.zeros(shape, dtype=np.int64)
    bits = max(1, math.ceil(math.log2(n)))
    for b in range(bits):
        probe = np.where((idx >> b) & 1, 255, 0).astype(np.uint8)
        diff = mean_cipher(probe) - offset
        perm |= (diff > alpha * 255 / 2).astype(np.int64) << b
    return {"perm": perm.reshape(-1), "offset": offset, "queries": repeats * (bits + 1)}


def decrypt_with_recovered(cipher: np.ndarray, recovered: dict, alpha: float) -> np.ndarray:
    """Undo blend and permutation with the recovered material (no key). Returns float64;
    positions whose recovered source index is out of range or duplicated keep the cipher
    value's estimate only once (the rest stay 0)."""
    h, w = recovered["offset"].shape
    y = (np.asarray(cipher, dtype=np.float64)[:h, :w] - recovered["offset"]) / alpha
    out = np.zeros(h * w)
    perm = np.clip(recovered["perm"], 0, h * w - 1)
    out[perm] = y.reshape(-1)
    return out.reshape(h, w)
