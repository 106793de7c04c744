"""Optional layer 4: key-dependent diffusion (not in the FLEP paper; the fix).

Without diffusion a one-pixel plaintext change alters about one cipher pixel (the other
layers are a permutation and pixel-wise affine maps), so the differential NPCR is
~ 1/(M N) and the paper's NPCR/UACI figures cannot come from its construction.

Integer domain. The float cipher ``y`` (after blend and noise) is first put in fixed point,
``q = round(y * 2^frac_bits) mod 2^32`` (two's complement; ``|y| < 2^(31 - frac_bits)`` is
checked, nothing wraps silently). With ``frac_bits = 16`` the quantization error is
``2^-17``, far below the 0.5 that rounding to uint8 tolerates, so noise-free decryption
stays bit-exact.

Diffusion on the uint32 words, ``rounds`` times, four passes each (along rows
left-to-right, along columns top-to-bottom, rows right-to-left, columns bottom-to-top):

    x ^= k_(r,p)                  # keystream words, AES-256-CTR under the layer key
    x  = chained sum along the pass (x_i <- x_i + x_(i-1) mod 2^32; a cumulative sum)
    x  = rotl(x, 13)              # brings high bits down so the low byte depends on all

A change anywhere reaches every word after one round (the four directions), and the
rotation makes the map nonlinear over Z_2^32 (add, rotate, xor). Every step is a
vectorized numpy operation; the inverse uses ``np.diff``. RGB images are diffused as one
``(H, W*C)`` array.

It must come **after** the noise: diffusion before noise would let the (unremovable) noise
avalanche through the chains at decryption and destroy the image.

What it protects and what it does not: it is what makes the differential metrics
(NPCR/UACI between encryptions of images differing in one pixel) pass Wu et al.'s tests.
It is a home-made ARX-style mixing with a fixed (image-independent, nonce-free)
keystream: equal plaintexts give equal noise-free ciphers, and it has no security proof.
For confidentiality use an authenticated cipher (AES-GCM) on the image bytes.
"""

from __future__ import annotations

import numpy as np

from imaging._stream import keystream

__all__ = ["Diffuser"]

_ROT = 13
_PASSES = ((1, False), (0, False), (1, True), (0, True))  # (axis, reversed)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _rotr(x: np.ndarray, r: int) -> np.ndarray:
    return (x >> np.uint32(r)) | (x << np.uint32(32 - r))


def _chain(x: np.ndarray, axis: int, rev: bool) -> np.ndarray:
    if rev:
        x = np.flip(x, axis)
    y = np.cumsum(x, axis=axis, dtype=np.uint32)
    return np.flip(y, axis) if rev else y


def _unchain(y: np.ndarray, axis: int, rev: bool) -> np.ndarray:
    if rev:
        y = np.flip(y, axis)
    x = np.diff(y, axis=axis, prepend=np.zeros_like(np.take(y, [0], axis=axis)))
    return np.flip(x, axis) if rev else x


class Diffuser:
    """Keyed diffusion on a fixed-point uint32 representation of the float cipher."""

    def __init__(self, layer_key: bytes, *, rounds: int = 2, frac_bits: int = 16):
        rounds, frac_bits = int(rounds), int(frac_bits)
        if rounds < 1:
            raise ValueError("rounds must be >= 1")
        if not 8 <= frac_bits <= 20:
            raise ValueError("frac_bits must be in [8, 20]")
        self._key = bytes(layer_key)
        self.rounds, self.frac_bits = rounds, frac_bits
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def __repr__(self) -> str:
        return f"Diffuser(rounds={self.rounds}, frac_bits={self.frac_bits}, key=<redacted>)"

    @property
    def limit(self) -> float:
        """Largest ``|y|`` the fixed-point representation holds."""
        return float(2 ** (31 - self.frac_bits))

    def _keys(self, shape2: tuple[int, int]) -> np.ndarray:
        if shape2 not in self._cache:
            n = self.rounds * len(_PASSES) * shape2[0] * shape2[1]
            ks = keystream(self._key, f"diffusion/{shape2}", 4 * n).view(np.uint32)
            ks = ks.reshape(self.rounds, len(_PASSES), *shape2)
            ks.setflags(write=False)
            self._cache[shape2] = ks
        return self._cache[shape2]

    # -- fixed point ----------------------------------------------------------------------
    def to_fixed(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        q = np.rint(y * float(1 << self.frac_bits))
        if q.size and (not np.all(np.isfinite(q)) or np.abs(q).max() >= 2.0**31):
            raise ValueError(
                f"cipher values exceed the fixed-point range |y| < {self.limit} "
                f"(frac_bits={self.frac_bits}); lower sigma or frac_bits"
            )
        return q.astype(np.int64).astype(np.uint32)  # two's complement mod 2^32

    def from_fixed(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(u, dtype=np.uint32).view(np.int32).astype(np.float64) / float(1 << self.frac_bits)

    # -- the layer ------------------------------------------------------------------------
    def diffuse(self, u: np.ndarray) -> np.ndarray:
        """Diffuse uint32 words of shape ``(H, W[, C])``; same shape out."""
        shape = u.shape
        x = np.array(u, dtype=np.uint32).reshape(shape[0], -1)
        ks = self._keys(x.shape)
        for r in range(self.rounds):
            for p, (axis, rev) in enumerate(_PASSES):
                x ^= ks[r, p]
                x = _rotl(_chain(x, axis, rev), _ROT)
        return x.reshape(shape)

    def undiffuse(self, c: np.ndarray) -> np.ndarray:
        shape = c.shape
        x = np.array(c, dtype=np.uint32).reshape(shape[0], -1)
        ks = self._keys(x.shape)
        for r in reversed(range(self.rounds)):
            for p in reversed(range(len(_PASSES))):
                axis, rev = _PASSES[p]
                x = _unchain(_rotr(x, _ROT), axis, rev)
                x ^= ks[r, p]
        return x.reshape(shape)

    def encrypt(self, y: np.ndarray) -> np.ndarray:
        """float cipher -> diffused uint32 words."""
        return self.diffuse(self.to_fixed(y))

    def decrypt(self, c: np.ndarray) -> np.ndarray:
        """diffused uint32 words -> float cipher (exact up to 2^-(frac_bits+1))."""
        return self.from_fixed(self.undiffuse(c))
