"""Fused, chunked kernels between floats and residues mod p, and for the input protocol.

Each kernel makes one pass over its inputs in cache-sized chunks (on the worker threads of
:mod:`privcrypt.mpc.field`) instead of several whole-array numpy passes; the results are
bit for bit those of the plain formulations (tested against FixedPoint and Python ints).
"""

from __future__ import annotations

import numpy as np

from privcrypt.mpc import field

__all__ = ["encode_nearest", "decode_centered", "mask_input"]

_P = np.uint64(field.P)
_H = np.uint64(field.P // 2)
_H_INT = np.int64(field.P // 2)


def encode_nearest(x: np.ndarray, scale: float) -> tuple[np.ndarray, float, float]:
    """``(rint(x·scale) mod p, min(x), max(x))`` for a flat float64 array: canonical uint64
    residues plus the range the caller must check (NaN propagates into min/max; the
    residues of non-finite or out-of-range inputs are meaningless and must be discarded).
    For finite ``x`` with ``|x·scale| < 2^62`` the residues equal
    ``FixedPoint.encode(rounding="nearest")``: a negative integer ``v`` is ``2^64 + v`` in
    uint64, and adding p wraps it to ``v + p``; for ``v >= 0`` the minimum keeps ``v``."""
    out = np.empty(x.size, dtype=np.uint64)

    def body(s, e, t):
        lo, hi = x[s:e].min(), x[s:e].max()  # the range check rides on the cache-hot chunk
        f = t[0].view(np.float64)
        np.multiply(x[s:e], scale, out=f)
        np.rint(f, out=f)
        with np.errstate(invalid="ignore"):  # NaN/Inf/huge inputs: rejected by the caller
            np.copyto(t[1].view(np.int64), f, casting="unsafe")  # integral, exact
        np.add(t[1], _P, out=t[2])
        np.minimum(t[1], t[2], out=out[s:e])
        return lo, hi

    ranges = field._for_chunks(x.size, body, scratch=3)
    if not ranges:
        return out, 0.0, 0.0
    lo, hi = np.array(ranges, dtype=np.float64).T  # numpy min/max propagate NaN (Python's do not)
    return out, float(lo.min()), float(hi.max())


def decode_centered(r: np.ndarray, frac_bits: int) -> np.ndarray:
    """Centered lift of canonical residues (``r <= (p-1)/2`` stays, larger ``r`` maps to
    ``r - p``) divided by ``2^frac_bits``, as float64 of ``r``'s shape. Branch-free:
    ``(r + H) mod p - H`` with ``H = (p-1)/2`` (``r + H < 2^62``; ``s - p`` wraps when
    ``s < p`` so the minimum picks the reduced value); scaling by a power of two is exact."""
    r = np.asarray(r, dtype=np.uint64)
    flat = field._contig(r).reshape(-1)
    out = np.empty(r.shape, dtype=np.float64)
    of = out.reshape(-1)
    scale = 2.0**-frac_bits

    def body(s, e, t):
        np.add(flat[s:e], _H, out=t[0])
        np.subtract(t[0], _P, out=t[1])
        np.minimum(t[0], t[1], out=t[0])
        lifted = t[0].view(np.int64)
        np.subtract(lifted, _H_INT, out=lifted)
        np.multiply(lifted, scale, out=of[s:e])

    field._for_chunks(flat.size, body, scratch=2)
    return out


def mask_input(enc: np.ndarray, r: np.ndarray, share0: np.ndarray) -> np.ndarray:
    """SPDZ input step in one pass: the owner's ``δ = enc - r mod p`` (returned, a fresh
    array) and party 0's share update ``share0 += δ mod p`` (in place). All canonical, of
    one shape, C-contiguous."""
    ef, rf, sf = (field._contig(v).reshape(-1) for v in (enc, r, share0))
    if not (ef.size == rf.size == sf.size and share0.flags.c_contiguous):
        raise ValueError("enc, r and share0 must have one size; share0 C-contiguous")
    delta = np.empty(np.shape(enc), dtype=np.uint64)
    df = delta.reshape(-1)

    def body(s, e, t):
        field._sub_kernel(ef[s:e], rf[s:e], df[s:e], t[0])
        field._add_kernel(sf[s:e], df[s:e], sf[s:e], t[0])

    field._for_chunks(ef.size, body, scratch=1)
    return delta
