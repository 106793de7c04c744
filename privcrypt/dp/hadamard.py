"""Randomized Walsh–Hadamard rotation with a public shared seed (for distributed DP).

``U x = H (xi * pad(x)) / sqrt(D)``: ``pad`` appends zeros up to ``D``, the next power of
two; ``xi`` is a vector of random signs; ``H`` is the (unnormalized, symmetric) D x D
Walsh–Hadamard matrix, so ``U`` is orthogonal and ``U^{-1} y = xi * (H y) / sqrt(D)``.
The rotation spreads a vector's energy evenly over the coordinates: for any fixed ``x``,
each coordinate of ``U x`` is a Rademacher sum with variance proxy ``||x||^2 / D``
(Hoeffding), which is what bounds the integer range in :mod:`privcrypt.dp.distributed`.

The signs come from AES-256-CTR (:func:`privcrypt.keystream.aes_ctr_keystream`) keyed by a
32-byte *public* round seed that every client and the server share. The seed needs no
secrecy (the rotation is not a privacy mechanism), but it must be fresh per round and
must not be known to a client before its update is fixed, or a malicious client can craft
an update that concentrates on few coordinates (a robustness issue: more wraps, not less
privacy).

Transform cost: O(D log D), numpy in place, float64 (about 1e-15 relative round-trip error).
"""

from __future__ import annotations

import numpy as np

from privcrypt.keystream import aes_ctr_keystream

__all__ = ["padded_dim", "fwht", "random_signs", "rotate", "unrotate"]

_SIGN_NONCE = b"ddgsign\x00"


def padded_dim(dim: int) -> int:
    """The next power of two >= ``dim`` (``dim >= 1``)."""
    dim = int(dim)
    if dim < 1:
        raise ValueError("dim must be >= 1")
    return 1 << (dim - 1).bit_length()


def fwht(x) -> np.ndarray:
    """Unnormalized fast Walsh–Hadamard transform ``H x`` along the last axis (a copy,
    float64). The length must be a power of two (``ValueError`` otherwise)."""
    a = np.array(x, dtype=np.float64, copy=True)
    d = a.shape[-1]
    if d < 1 or d & (d - 1):
        raise ValueError(f"length {d} is not a power of two")
    lead = a.shape[:-1]
    h = 1
    while h < d:
        v = a.reshape(*lead, d // (2 * h), 2, h)
        s = v[..., 0, :] + v[..., 1, :]
        v[..., 1, :] = v[..., 0, :] - v[..., 1, :]
        v[..., 0, :] = s
        h *= 2
    return a


def random_signs(seed: bytes, dim: int) -> np.ndarray:
    """``dim`` signs in {-1.0, +1.0} from AES-256-CTR keyed by the 32-byte ``seed``."""
    seed = bytes(seed)
    if len(seed) != 32:
        raise ValueError("seed must be 32 bytes")
    bits = np.unpackbits(aes_ctr_keystream(seed, (int(dim) + 7) // 8, nonce=_SIGN_NONCE))[: int(dim)]
    return 1.0 - 2.0 * bits.astype(np.float64)


def rotate(x, seed: bytes) -> np.ndarray:
    """``U x`` for a 1-D ``x``: zero-pad to :func:`padded_dim`, random signs, Hadamard,
    divide by sqrt(D). Preserves the L2 norm (up to float rounding)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError("x must be 1-D")
    d = padded_dim(x.size)
    v = np.zeros(d)
    v[: x.size] = x
    v *= random_signs(seed, d)
    return fwht(v) / np.sqrt(d)


def unrotate(y, seed: bytes, dim: int) -> np.ndarray:
    """``U^{-1} y`` truncated to the first ``dim`` coordinates (the inverse of
    :func:`rotate` for a vector of length ``dim``)."""
    y = np.asarray(y, dtype=np.float64)
    d = y.size
    if y.ndim != 1 or d != padded_dim(max(1, d)) or not 1 <= int(dim) <= d:
        raise ValueError("y must be 1-D with a power-of-two length >= dim")
    return (fwht(y) * random_signs(seed, d) / np.sqrt(d))[: int(dim)]
