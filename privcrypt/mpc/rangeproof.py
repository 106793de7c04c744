"""In-MPC range proof for a secret-shared input: ``v ∈ [-B, B]`` from a bit decomposition.

The input owner (a client, possibly malicious) shares, besides its encoded vector ``v``
(integers, scale ``2^f``), the ``L`` bits of ``u = v + B`` for every coordinate, through
the same SPDZ input protocol (dealer masks, ``δ = bit - r`` broadcast, MACs on everything).
The parties then check, with jointly tossed coefficients drawn *after* the inputs are fixed:

1. every bit is a bit: ``Σ_i r_i·b_i·(b_i - 1) = 0`` (one Beaver product per bit);
2. the bits recombine to the input: ``Σ_c s_c·(Σ_j w_j·b_cj - B - v_c) = 0``.

Both sums are opened together after a MAC check (a tampered share or opening by a compute
party raises ``MacCheckFailed``). Weights: ``w_j = 2^j`` for ``j < L-1`` and the top weight
``w_{L-1} = 2B - 2^(L-1) + 1``, with ``L`` the bit length of ``2B``. With plain powers of
two, ``L`` bits would only prove ``u < 2^L`` (up to ``≈ 4B``, i.e. ``|v|`` up to ``≈ 3B``);
with this top weight every bit pattern sums to ``[0, 2B]`` and every integer of ``[0, 2B]``
has a pattern, so the proof is tight: it shows exactly ``-B <= v <= B``.

Soundness: if some ``b_i ∉ {0, 1}`` the vector ``b_i(b_i - 1)`` is nonzero and a uniform
combination of it is 0 with probability ``1/p``; likewise for the recombination. A cheating
client passes with probability at most ``2/p < 2^-59`` (plus the MAC check's ``2/p`` against
cheating compute parties). Privacy: for an honest client both opened sums are 0 and the
Beaver openings are uniformly masked, so the parties learn nothing new. Cost per coordinate:
``L`` extra inputs and ``L`` Beaver triples (``L = 21`` at ``clip = 8``, 16 fractional bits).
"""

from __future__ import annotations

import numpy as np

from privcrypt.mpc import field
from privcrypt.mpc.dealer import OneShot
from privcrypt.mpc.shares import Shared

__all__ = ["range_weights", "decompose", "verify_range"]


def range_weights(B: int) -> list[int]:
    """The ``L`` recombination weights for ``u ∈ [0, 2B]``: ``2^j`` for ``j < L-1`` and
    ``2B - 2^(L-1) + 1`` on top (``L`` = bit length of ``2B``). ``B`` must be >= 1."""
    B = int(B)
    if B < 1:
        raise ValueError("range bound B must be a positive integer")
    L = (2 * B).bit_length()
    return [1 << j for j in range(L - 1)] + [2 * B - (1 << (L - 1)) + 1]


def decompose(v: np.ndarray, B: int) -> np.ndarray:
    """Owner side: bits (uint64 0/1, shape ``v.shape + (L,)``) of ``u = v + B`` under
    :func:`range_weights`, for signed integers ``v`` with ``|v| <= B`` (``ValueError``
    otherwise). Greedy from the top weight: ``u >= 2^(L-1)`` takes the top weight and leaves
    ``u - w_top < 2^(L-1)`` for the plain binary digits."""
    w = range_weights(B)
    L, top = len(w), w[-1]
    u = np.asarray(v, dtype=np.int64) + np.int64(B)
    if u.size and (int(u.min()) < 0 or int(u.max()) > 2 * B):
        raise ValueError(f"value outside [-{B}, {B}]")
    hi = u >= (1 << (L - 1))
    rest = np.where(hi, u - top, u)
    bits = (rest[..., None] >> np.arange(L - 1, dtype=np.int64)) & 1
    return np.concatenate([bits, hi[..., None]], axis=-1).astype(np.uint64)


def verify_range(engine, x: Shared, bits: Shared, B: int, *, label: bytes,
                 triples: OneShot | None = None) -> bool:
    """True iff the shared integers ``x`` (shape ``(d,)``, any scale: the check is on the
    encoded integers) lie in ``[-B, B]``, as witnessed by the shared ``bits`` (shape
    ``(d, L)``, scale 0). ``label`` must be unique per proof (it seeds the coin toss).
    ``triples``: a pre-dealt batch of shape ``(d, L)``. Opens two field elements, both 0 for
    an honest owner, after the MAC check: raises ``MacCheckFailed`` if a compute party
    altered a share or an opening; returns False (never raises) for a cheating owner."""
    w = range_weights(B)
    d, L = x.size, len(w)
    if bits.shape != (d, L):
        raise ValueError(f"bits have shape {bits.shape}, expected {(d, L)}")
    sq = engine.mul(bits, bits, truncate=False, triples=triples)   # [b²], Beaver
    quad = engine.sub(sq, bits)                                     # [b² - b]
    coins = engine.public_coins(b"range-proof/" + bytes(label), d * L + d)
    r, s = coins[: d * L].reshape(d, L), coins[d * L:]
    w_full = np.broadcast_to(field.to_field(np.array(w, dtype=object)), (d, L))
    s_w = field.mulmod(np.repeat(s[:, None], L, axis=1), np.ascontiguousarray(w_full))  # s_c·w_j
    s_sum = field.sum_mod(s)
    check_bits = engine.combine_public([(quad, r)])
    # Σ_c s_c (Σ_j w_j b_cj - v_c - B) = ⟨s⊗w, b⟩ + ⟨-s, v⟩ - B·Σ s
    check_sum = engine.combine_public([(bits, s_w), (x.reshape(-1), field.negmod(s))], -int(B) * s_sum)
    both = Shared(np.stack([check_bits.shares, check_sum.shares], axis=1),
                  np.stack([check_bits.macs, check_sum.macs], axis=1), 0, float(field.P),
                  np.array([check_bits.offset, check_sum.offset], dtype=np.uint64))
    opened = engine.open_residues(both)
    return bool(int(opened[0]) == 0 and int(opened[1]) == 0)
