"""Authenticated additive shares: the :class:`Shared` container.

A secret ``x ∈ Z_p`` is held as ``x = Σ_i x_i`` with MAC shares ``m_i`` such that
``Σ_i m_i = α·(x - o)``, where ``α = Σ_i α_i`` is the global MAC key and ``o`` a *public*
offset known to every party (zero unless public constants were added); party ``i`` holds
``(x_i, m_i, α_i)`` and nobody ever learns ``α``. The public offset is the "public
modifier" of the original SPDZ representation (Damgård, Pastro, Smart, Zakarias, CRYPTO
2012, ⟨a⟩ = (δ, (a_i), (γ(a)_i))): adding a public constant ``c`` changes ``x_0`` and ``o``
instead of making every party compute ``α_i·c``. It changes nothing about security: ``o``
is a function of broadcast values, and the MAC check verifies ``Σ m_i = α·(v - o)`` for
every opened ``v``. Fixed-point values carry their scale
(``frac_bits``) and a public, declared magnitude ``bound`` that every operation propagates,
so that a result that could leave the decodable range raises instead of wrapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from privcrypt.mpc.field import P

__all__ = ["Shared", "check_fits", "MAX_ABS_BITS"]

#: Largest bit length of |encoded value| that any Shared may declare: 2^59 < p/4, which
#: leaves room for the 2^(L+1) shift of truncation (see docs/mpc.md).
MAX_ABS_BITS = 59


def check_fits(bound: float, frac_bits: int, what: str = "result") -> int:
    """Return ``L`` with ``bound·2^frac_bits < 2^L``; raise ``ValueError`` (overflow) when
    ``L > MAX_ABS_BITS``, i.e. when a value of the declared magnitude could wrap mod p."""
    if not (bound >= 0 and math.isfinite(bound)):
        raise ValueError(f"{what}: bound must be finite and >= 0, got {bound}")
    top = math.ceil(bound * 2.0**frac_bits)
    bits = int(top).bit_length()
    if bits > MAX_ABS_BITS:
        raise ValueError(
            f"overflow: {what} may reach |x| = {bound:g} at {frac_bits} fractional bits, "
            f"beyond the 2^{MAX_ABS_BITS} range of Z_p (p = 2^61-1); declare tighter bounds "
            "or use fewer fractional bits"
        )
    return bits


@dataclass
class Shared:
    """An authenticated secret-shared array.

    ``shares`` and ``macs``: uint64 arrays of shape ``(n_parties, *shape)`` with residues in
    ``[0, p)``; row ``i`` is what party ``i`` holds. ``offset``: the public offset ``o`` of
    the MAC relation ``Σ_i m_i = α·(x - o)`` (residues of the secret's shape; None means 0);
    every party holds it. The engine never modifies these arrays in place. ``frac_bits``: fixed-point scale of the
    secret. ``bound``: public declared bound on ``|secret|`` (real units); not a secret.

    Threat model: any ``n_parties - 1`` rows are uniformly distributed independently of the
    secret; changing a share or a MAC share is caught by the MAC check of the opening (chance
    of escape ``<= 2/p`` per check). ``repr`` never prints share values.
    """

    shares: np.ndarray
    macs: np.ndarray
    frac_bits: int
    bound: float
    offset: np.ndarray | None = None

    def __post_init__(self):
        if self.shares.shape != self.macs.shape or self.shares.ndim < 1:
            raise ValueError("shares and macs must have the same shape (n_parties, *shape)")
        if self.shares.dtype != np.uint64 or self.macs.dtype != np.uint64:
            raise TypeError("shares and macs must be uint64 residues mod p")
        if self.offset is not None and (self.offset.shape != self.shape or self.offset.dtype != np.uint64):
            raise ValueError("offset must be None or uint64 residues of the secret's shape")

    @property
    def n_parties(self) -> int:
        return self.shares.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.shares.shape[1:]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def party_view(self, party: int) -> tuple[np.ndarray, np.ndarray]:
        """What party ``party`` holds: ``(its shares, its MAC shares)``."""
        return self.shares[party], self.macs[party]

    def reshape(self, *shape) -> "Shared":
        """A view with the secret reshaped (shares and MACs alike)."""
        n = self.n_parties
        off = None if self.offset is None else self.offset.reshape(*shape)
        return Shared(self.shares.reshape(n, *shape), self.macs.reshape(n, *shape),
                      self.frac_bits, self.bound, off)

    def __getitem__(self, idx) -> "Shared":
        """Shares of ``secret[idx]`` (a local operation)."""
        if not isinstance(idx, tuple):
            idx = (idx,)
        sel = (slice(None),) + idx
        off = None if self.offset is None else np.array(self.offset[idx], dtype=np.uint64, order="C")
        return Shared(np.ascontiguousarray(self.shares[sel]), np.ascontiguousarray(self.macs[sel]),
                      self.frac_bits, self.bound, off)

    def __repr__(self) -> str:
        return (f"Shared(n_parties={self.n_parties}, shape={self.shape}, "
                f"frac_bits={self.frac_bits}, bound={self.bound:g}, <shares redacted>)")

    @staticmethod
    def modulus() -> int:
        return P
