"""Deterministic keystreams for the keyed layers: AES-256-CTR under a layer key.

A layer key comes from :meth:`imaging.key.FlepKey.layer_key` (HKDF of the master key,
which itself comes from ``privcrypt.rng``). The CTR nonce is derived from a label (the
purpose and the array shape), so different purposes and shapes never share a counter range
under one key.
"""

from __future__ import annotations

import hashlib

import numpy as np

from privcrypt.keystream import aes_ctr_keystream


def keystream(key: bytes, label: str, n: int) -> np.ndarray:
    """``n`` bytes of AES-256-CTR keystream under ``key``, nonce = SHA-256(label)[:8]."""
    if len(key) != 32:
        raise ValueError("layer key must be 32 bytes")
    nonce = hashlib.sha256(label.encode("utf-8")).digest()[:8]
    return aes_ctr_keystream(key, int(n), nonce=nonce)


def keystream_uniform(key: bytes, label: str, n: int) -> np.ndarray:
    """``n`` float64 in [0, 1) with 53 bits each, from :func:`keystream`."""
    words = keystream(key, label, 8 * int(n)).view(np.uint64)
    return (words >> np.uint64(11)).astype(np.float64) * 2.0**-53
