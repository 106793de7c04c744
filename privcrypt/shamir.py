"""Shamir t-of-n secret sharing of 256-bit secrets over the prime field GF(2^256 + 297).

Why not pycryptodome's ``Crypto.Protocol.SecretSharing.Shamir``: it shares only 16-byte
secrets (over GF(2^128)), so a 32-byte X25519 key or mask seed would have to be split into
two halves shared independently, doubling the shares; and it draws its polynomial
coefficients from ``Crypto.Random`` rather than ``privcrypt.rng``, so a test could not
make a round reproducible with :class:`~privcrypt.rng.DeterministicRandom` nor check that
every secret comes from one audited source. The field here is the integers modulo the
smallest prime above 2^256 (p = 2^256 + 297, checked by :func:`_check_prime` in the tests),
so any 32-byte string is one field element and one share is 33 bytes.

Security (information theoretic): any t-1 shares are independent of the secret, because the
t-1 coefficients above the constant term are uniform in Z_p (drawn by rejection sampling,
no modulo bias). Share x-coordinates must be distinct and non-zero.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from privcrypt.rng import RandomSource, resolve_rng

__all__ = ["PRIME", "SHARE_BYTES", "split", "combine", "secret_to_int", "int_to_secret"]

PRIME = 2**256 + 297
#: Bytes of one share's y-coordinate (an element of Z_p).
SHARE_BYTES = 33
SECRET_BYTES = 32


def secret_to_int(secret: bytes) -> int:
    if len(secret) != SECRET_BYTES:
        raise ValueError("secret must be 32 bytes")
    return int.from_bytes(secret, "big")


def int_to_secret(value: int) -> bytes:
    if not 0 <= value < 2**256:
        raise ValueError("reconstructed value is not a 32-byte secret (inconsistent shares)")
    return value.to_bytes(SECRET_BYTES, "big")


def _field_element(rng: RandomSource) -> int:
    while True:  # rejection sampling: 257-bit candidates, accept below p (probability ~1/2)
        cand = int.from_bytes(rng.bytes(SHARE_BYTES), "big") & ((1 << 257) - 1)
        if cand < PRIME:
            return cand


def split(secret: bytes, threshold: int, xs: Iterable[int], *,
          rng: RandomSource | None = None) -> dict[int, int]:
    """Share a 32-byte ``secret``; returns ``{x: y}`` for each x in ``xs`` (distinct, in
    [1, p)). Any ``threshold`` shares reconstruct; fewer reveal nothing."""
    xs = [int(x) for x in xs]
    t = int(threshold)
    if not 1 <= t <= len(xs):
        raise ValueError(f"threshold must be in [1, {len(xs)}], got {t}")
    if len(set(xs)) != len(xs) or any(not 0 < x < PRIME for x in xs):
        raise ValueError("share x-coordinates must be distinct and in [1, p)")
    rng = resolve_rng(rng)
    coeffs = [secret_to_int(secret)] + [_field_element(rng) for _ in range(t - 1)]
    out = {}
    for x in xs:
        acc = 0
        for c in reversed(coeffs):  # Horner
            acc = (acc * x + c) % PRIME
        out[x] = acc
    return out


def combine(shares: Mapping[int, int], threshold: int) -> bytes:
    """Reconstruct the secret from at least ``threshold`` shares ``{x: y}`` by Lagrange
    interpolation at 0 (the first ``threshold`` shares by x are used). Raises
    ``ValueError`` with fewer shares, or when the result is not a 32-byte value."""
    t = int(threshold)
    if len(shares) < t:
        raise ValueError(f"{len(shares)} shares, at least {t} needed")
    pts = sorted((int(x) % PRIME, int(y) % PRIME) for x, y in shares.items())[:t]
    secret = 0
    for i, (xi, yi) in enumerate(pts):
        num, den = 1, 1
        for j, (xj, _) in enumerate(pts):
            if i != j:
                num = num * xj % PRIME
                den = den * (xj - xi) % PRIME
        secret = (secret + yi * num * pow(den, -1, PRIME)) % PRIME
    return int_to_secret(secret)
