"""The trusted dealer: the MAC key and batched, authenticated, single-use preprocessing.

Seed 001 speeds up SPDZ-style aggregation with "precomputed randomness"; here that is a
dealer that, before any input is known, hands each party its share of the global MAC key
``α`` and batches of authenticated correlated randomness:

* Beaver triples ``([a], [b], [c])`` with ``c = a·b`` (for :meth:`SpdzEngine.mul`);
* input / output masks ``[r]`` with ``r`` revealed to one party only (SPDZ's input protocol:
  the owner broadcasts ``x - r``; for private output, ``x - r`` is opened and ``r`` lets only
  its holder learn ``x``);
* truncation pairs ``([r], [r >> k])`` with ``r`` uniform in Z_p (fixed-point truncation).

Threat model: the dealer is **semi-honest** and trusted for privacy: it generates everything
correctly from ``privcrypt.rng``, never sees an input or an output, and forgets ``α`` and the
unshared values after dealing (in this in-process simulation the object still holds them; in
deployment it runs once, offline). The parties may deviate on openings (malicious with
abort): MACs catch it. Each batch may be used exactly once: a second ``consume()`` raises
``ProtocolAbort`` (reusing a triple would reveal ``x - x'`` for two masked pairs).
"""

from __future__ import annotations

import numpy as np

from privcrypt.exceptions import ProtocolAbort
from privcrypt.mpc import field
from privcrypt.mpc.shares import Shared
from privcrypt.rng import RandomSource, resolve_rng

__all__ = ["TrustedDealer", "OneShot"]


class OneShot:
    """A batch of preprocessed material that may be consumed once.

    ``consume()`` returns the material and wipes the reference; a second call raises
    :class:`~privcrypt.exceptions.ProtocolAbort` (stage ``"preprocessing"``)."""

    def __init__(self, kind: str, material: tuple):
        self.kind = kind
        self._material = material
        self.used = False

    def consume(self) -> tuple:
        if self.used:
            raise ProtocolAbort(f"{self.kind} batch already used; preprocessed material is "
                                "single-use", stage="preprocessing")
        self.used = True
        material, self._material = self._material, None
        return material

    def __repr__(self) -> str:
        return f"OneShot({self.kind}, used={self.used})"


class TrustedDealer:
    """Deals the MAC key shares and authenticated preprocessing to ``n_parties`` parties.

    All randomness comes from ``rng`` (``privcrypt.rng``; default a fresh OS-seeded
    ``SystemRandom``). ``α`` is uniform in Z_p and is never output; each party gets only
    ``α_i`` through :meth:`mac_key_share`.
    """

    def __init__(self, n_parties: int = 3, *, rng: RandomSource | None = None):
        if int(n_parties) < 2:
            raise ValueError("SPDZ needs at least 2 parties")
        self.n_parties = int(n_parties)
        self._rng = resolve_rng(rng)
        self._alpha_shares = field.random_elements(self._rng, self.n_parties)
        self._alpha = field.sum_mod(self._alpha_shares)
        self._alpha_split = field.split(self._alpha)

    def __repr__(self) -> str:
        return f"TrustedDealer(n_parties={self.n_parties}, <MAC key redacted>)"

    def mac_key_share(self, party: int) -> int:
        """``α_party``: what party ``party`` receives at set-up."""
        return int(self._alpha_shares[party])

    # -- authenticated sharing -----------------------------------------------------------
    def _share_out(self, values: np.ndarray) -> np.ndarray:
        """Additive shares of ``values``: n-1 uniform rows, the last one fixing the sum."""
        n = self.n_parties
        out = np.empty((n, *values.shape), dtype=np.uint64)
        field.random_elements(self._rng, (n - 1, *values.shape), out=out[:-1])
        field.submod(values, field.sum_mod(out[:-1], axis=0), out=out[-1:])
        return out

    def _mac_shares(self, values: np.ndarray) -> np.ndarray:
        """Additive shares of ``α·values``: n-1 uniform rows, the last one ``α·values`` minus
        their sum, in one fused pass (:func:`field.mul_sub_rows`, up to 7 parties)."""
        n = self.n_parties
        if n - 1 > 6:
            return self._share_out(field.mulmod_scalar(values, self._alpha_split))
        out = np.empty((n, *values.shape), dtype=np.uint64)
        field.random_elements(self._rng, (n - 1, *values.shape), out=out[:-1])
        field.mul_sub_rows(values, self._alpha_split, out[:-1], out=out[-1:].reshape(values.shape))
        return out

    def _random_authenticated(self, shape) -> tuple[np.ndarray, Shared]:
        """A uniform secret ``r`` and ``[r]``: the n shares are drawn uniformly and ``r`` is
        defined as their sum (same distribution as sharing a uniform ``r``, one draw less)."""
        shares = field.random_elements(self._rng, (self.n_parties, *shape))
        r = field.sum_mod(shares, axis=0)
        return r, Shared(shares, self._mac_shares(r), 0, float(field.P))

    def authenticate(self, values: np.ndarray, *, frac_bits: int = 0, bound: float | None = None) -> Shared:
        """Authenticated shares of residues ``values`` (uint64 in ``[0, p)``): uniform
        shares and uniform MAC shares of ``α·values``. ``bound`` defaults to the full field
        (the values are treated as uniform randomness, not as fixed-point numbers)."""
        values = field._contig(values, dtype=np.uint64)
        shares = self._share_out(values)
        return Shared(shares, self._mac_shares(values), frac_bits, float(field.P) if bound is None else bound)

    # -- preprocessing batches -----------------------------------------------------------
    def triples(self, shape) -> OneShot:
        """A batch of authenticated Beaver triples shaped ``shape``: ``consume()`` ->
        ``(a, b, c)`` as :class:`Shared` with ``c = a·b mod p``, a and b uniform."""
        shape = _shape(shape)
        a, sa = self._random_authenticated(shape)
        b, sb = self._random_authenticated(shape)
        return OneShot("beaver-triple", (sa, sb, self.authenticate(field.mulmod(a, b, out=a))))

    def input_masks(self, shape) -> tuple[OneShot, np.ndarray]:
        """Authenticated random masks for the input (or private-output) protocol: returns
        ``(batch, r)``; ``batch.consume()`` -> ``[r]`` for the parties, and ``r`` in the
        clear goes to the one input owner (or output receiver) only."""
        r, sr = self._random_authenticated(_shape(shape))
        return OneShot("input-mask", (sr,)), r

    def trunc_pairs(self, shape, bits: int) -> OneShot:
        """Authenticated truncation pairs: ``consume()`` -> ``([r], [r >> bits])`` with r
        uniform in Z_p."""
        if not 0 < int(bits) < field.P_BITS:
            raise ValueError("bits must be in [1, 60]")
        r, sr = self._random_authenticated(_shape(shape))
        return OneShot("truncation-pair", (sr, self.authenticate(r >> np.uint64(bits))))


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)
