"""Layer 1: chaotic sub-block scrambling (the FLEP paper's first layer, after its ref. [7]).

The image is cut into ``block x block`` sub-blocks. Inside every block a fixed spiral scan
reorders the pixels (read along a clockwise spiral from the top-left corner, written in
raster order); the blocks themselves are then reordered by sorting a logistic-map sequence
(``x <- mu x (1 - x)``) whose parameters come from the key. Pixels in the strips that do not
fill a whole block (odd sizes) are permuted among themselves by a second chaotic sequence,
so every size works. ``full_permutation=True`` replaces all of it by one chaotic permutation
of all pixels.

Vectorization: the logistic sequence is produced by ``K`` independent chains (one numpy
vector) iterated ``ceil(n / K)`` times after a burn-in, so a 256x256 image costs a few
hundred vector steps instead of 16 384 scalar ones. The permutation for a given shape is
computed once and cached; scrambling is then one gather.

What it protects and what it does not: the layer is a keyed *permutation* of pixel
positions. It hides the layout but leaves every pixel value, and so the histogram,
unchanged; one known plaintext/cipher pair with distinct pixel values reveals the
permutation for that shape (known-plaintext attack), and with the sorted-chaotic-sequence
construction that permutation is the whole key for that shape.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from imaging._stream import keystream_uniform

__all__ = ["ChaoticScrambler", "spiral_order", "logistic_sequence"]

_CHAINS = 64
_BURN_IN = 128


@lru_cache(maxsize=64)
def spiral_order(side: int) -> np.ndarray:
    """Flat (raster) indices of a ``side x side`` block read along a clockwise spiral."""
    side = int(side)
    if side < 1:
        raise ValueError("block side must be >= 1")
    top, bottom, left, right = 0, side - 1, 0, side - 1
    out: list[int] = []
    while top <= bottom and left <= right:
        out += [top * side + c for c in range(left, right + 1)]
        out += [r * side + right for r in range(top + 1, bottom + 1)]
        if top < bottom:
            out += [bottom * side + c for c in range(right - 1, left - 1, -1)]
        if left < right:
            out += [r * side + left for r in range(bottom - 1, top, -1)]
        top, bottom, left, right = top + 1, bottom - 1, left + 1, right - 1
    arr = np.asarray(out, dtype=np.int64)
    arr.setflags(write=False)
    return arr


def logistic_sequence(x0: np.ndarray, mu: np.ndarray, n: int) -> np.ndarray:
    """``n`` values of ``len(x0)`` interleaved logistic chains (after a burn-in).

    Value ``t * K + k`` is chain ``k`` at step ``t``. Only multiplications and
    subtractions in IEEE float64, so the sequence is the same on every platform.
    """
    x = np.array(x0, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    k = x.size
    steps = math.ceil(n / k) if n else 0
    for _ in range(_BURN_IN):
        x = mu * x * (1.0 - x)
    out = np.empty((steps, k), dtype=np.float64)
    for t in range(steps):
        x = mu * x * (1.0 - x)
        out[t] = x
    return out.reshape(-1)[:n]


class ChaoticScrambler:
    """Keyed pixel permutation: spiral scan inside blocks + chaotic block order.

    ``layer_key``: 32 bytes (from :meth:`FlepKey.layer_key`). ``block``: sub-block side
    (the paper uses 2). The chaotic parameters ``x0`` (in [0.05, 0.95)) and ``mu`` (in
    [3.99, 4.0)) of each chain are derived from the layer key.
    """

    def __init__(self, layer_key: bytes, *, block: int = 2, full_permutation: bool = False):
        block = int(block)
        if block < 1:
            raise ValueError("block side must be >= 1")
        self._key = bytes(layer_key)
        self.block = block
        self.full_permutation = bool(full_permutation)
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def __repr__(self) -> str:
        return f"ChaoticScrambler(block={self.block}, full_permutation={self.full_permutation}, key=<redacted>)"

    # -- the chaotic permutation ------------------------------------------------------------
    def _chaotic_argsort(self, n: int, label: str) -> np.ndarray:
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        u = keystream_uniform(self._key, f"scramble/{label}/params", 2 * _CHAINS)
        x0 = 0.05 + 0.9 * u[:_CHAINS]
        mu = 3.99 + 0.00999 * u[_CHAINS:]
        seq = logistic_sequence(x0, mu, n)
        return np.argsort(seq, kind="stable")

    def permutation(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """``(perm, inverse)`` flat index arrays: ``scrambled.flat[d] = img.flat[perm[d]]``."""
        key = (int(h), int(w))
        if key in self._cache:
            return self._cache[key]
        h, w = key
        if self.full_permutation:
            perm = self._chaotic_argsort(h * w, f"full/{h}x{w}")
        else:
            perm = self._block_permutation(h, w)
        inv = np.empty_like(perm)
        inv[perm] = np.arange(perm.size, dtype=perm.dtype)
        perm.setflags(write=False)
        inv.setflags(write=False)
        self._cache[key] = (perm, inv)
        return perm, inv

    def _block_permutation(self, h: int, w: int) -> np.ndarray:
        b = self.block
        hb, wb = h // b, w // b
        idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
        perm = idx.copy()
        if hb and wb:
            # source pixel indices of every block, each block's pixels in spiral order
            blocks = idx[: hb * b, : wb * b].reshape(hb, b, wb, b).transpose(0, 2, 1, 3)
            blocks = blocks.reshape(hb * wb, b * b)[:, spiral_order(b)]
            order = self._chaotic_argsort(hb * wb, f"blocks/{h}x{w}/{b}")
            src = blocks[order]  # destination block j takes source block order[j]
            dest = src.reshape(hb, wb, b, b).transpose(0, 2, 1, 3).reshape(hb * b, wb * b)
            perm[: hb * b, : wb * b] = dest
        # the strips that do not fill a block: permuted among themselves
        rest_mask = np.ones((h, w), dtype=bool)
        rest_mask[: hb * b, : wb * b] = False
        rest = idx[rest_mask]
        if rest.size:
            perm[rest_mask] = rest[self._chaotic_argsort(rest.size, f"rest/{h}x{w}/{b}")]
        return perm.reshape(-1)

    # -- the layer ------------------------------------------------------------------------
    def encrypt(self, img: np.ndarray) -> np.ndarray:
        """Scramble an ``(H, W)`` or ``(H, W, C)`` array (any dtype); same shape out."""
        h, w = img.shape[:2]
        perm, _ = self.permutation(h, w)
        flat = img.reshape(h * w, -1)
        return flat[perm].reshape(img.shape)

    def decrypt(self, img: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`encrypt`."""
        h, w = img.shape[:2]
        _, inv = self.permutation(h, w)
        flat = img.reshape(h * w, -1)
        return flat[inv].reshape(img.shape)
