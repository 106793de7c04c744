"""Vectorized arithmetic in the prime field Z_p, p = 2^61 - 1 (a Mersenne prime).

Elements are ``uint64`` numpy arrays holding canonical residues in ``[0, p)``.

Why hand-written: numpy has no modular 64-bit multiply, and a 61-bit product needs 122
bits. ``mulmod`` splits each operand into 32-bit halves (``a = a1·2^32 + a0``, with
``a1 < 2^29``), forms the four partial products (each fits in 64 bits) and reduces with
``2^61 ≡ 1 (mod p)``, so ``2^64 ≡ 8``. Every intermediate stays below ``2^63``, so the
whole reduction is exact in ``uint64``. Work proceeds in cache-sized chunks with
pre-allocated scratch buffers (about 20 numpy passes per chunk, all in place).

Why this prime: MAC soundness is ``1/p ≈ 2^-61`` per check (the issue asks for at least
2^-40), products of two 30-bit fixed-point values fit without wrap, and Mersenne reduction
needs only shifts and adds. (Plain Z_2^64 MACs are not sound: adding 2^63 to a share and to
its MAC passes with probability 1/2.)
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from privcrypt.rng import RandomSource

__all__ = [
    "P",
    "P_BITS",
    "random_elements",
    "addmod",
    "submod",
    "negmod",
    "mulmod",
    "mulmod_scalar",
    "split",
    "sum_mod",
    "dot_mod",
    "to_field",
]

P: int = (1 << 61) - 1
P_BITS = 61
_P = np.uint64(P)
_M32 = np.uint64(0xFFFFFFFF)
_M29 = np.uint64((1 << 29) - 1)
_S3, _S29, _S32, _S61 = np.uint64(3), np.uint64(29), np.uint64(32), np.uint64(61)
CHUNK = 1 << 15  # elements per chunk: the scratch arrays of 256 KiB each stay in L2
_threads = max(1, int(os.environ.get("PRIVCRYPT_MPC_THREADS", os.cpu_count() or 1)))
_pool: ThreadPoolExecutor | None = None


def set_threads(n: int) -> None:
    """Worker threads for long vectors (default: ``PRIVCRYPT_MPC_THREADS`` or the CPU count).
    numpy releases the GIL inside each pass, so chunks run in parallel."""
    global _threads, _pool
    _threads = max(1, int(n))
    if _pool is not None:
        _pool.shutdown(wait=False)
        _pool = None


def _for_chunks(n: int, body) -> list:
    """``body(s, e, scratch)`` for every chunk ``[s, e)`` of ``range(n)`` with 5 private
    scratch buffers; contiguous groups of chunks run on worker threads when ``n`` is large.
    Returns the bodies' results in chunk order."""
    global _pool
    chunks = [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    groups = min(_threads, len(chunks) // 4)

    def run(group):
        scratch = [np.empty(min(n, CHUNK), dtype=np.uint64) for _ in range(5)]
        return [body(s, e, [x[: e - s] for x in scratch]) for s, e in group]

    if groups <= 1:
        return run(chunks)
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_threads, thread_name_prefix="privcrypt-mpc")
    step = -(-len(chunks) // groups)
    parts = _pool.map(run, [chunks[i : i + step] for i in range(0, len(chunks), step)])
    return [r for part in parts for r in part]


def _contig(x, dtype=None) -> np.ndarray:
    """C-contiguous array view or copy; unlike ``np.ascontiguousarray`` keeps 0-d arrays 0-d."""
    x = np.asarray(x, dtype=dtype)
    return x if x.flags.c_contiguous else x.copy()


def random_elements(rng: RandomSource, shape) -> np.ndarray:
    """Uniform elements of Z_p as uint64, exactly uniform.

    61 random bits are uniform on ``[0, 2^61) = [0, p]``; the single value ``p`` (chance
    2^-61 per element) is redrawn, which leaves the rest uniform on ``[0, p)``."""
    out = rng.integers(2**64, shape, dtype=np.uint64)
    np.bitwise_and(out, _P, out=out)
    while out.size and out.max() == _P:  # p is the largest 61-bit value: one cheap pass
        bad = out == _P
        out[bad] = rng.integers(2**64, int(bad.sum()), dtype=np.uint64) & _P
    return out


def to_field(values) -> np.ndarray:
    """Integers of any sign (int64, uint64 or Python ints) to canonical uint64 residues."""
    arr = np.asarray(values)
    if arr.dtype == np.uint64:
        return arr % _P
    if arr.dtype == object:
        flat = [int(v) % P for v in arr.reshape(-1)]
        return np.array(flat, dtype=np.uint64).reshape(arr.shape)
    return np.mod(arr.astype(np.int64), np.int64(P)).astype(np.uint64)


def _out(a, b, out):
    if out is None:
        out = np.empty(np.broadcast_shapes(np.shape(a), np.shape(b)), dtype=np.uint64)
    return out


def _chunked(a, b, out, kernel):
    """Run ``kernel(a, b, out, tmp)`` chunk by chunk when a, b, out are equal-shaped
    contiguous arrays (cache-friendly, one scratch buffer), else on the whole arrays."""
    out = _out(a, b, out)
    a_ = np.asarray(a)
    b_ = np.asarray(b)
    if (a_.size == b_.size == out.size and out.size > CHUNK and a_.flags.c_contiguous
            and b_.flags.c_contiguous and out.flags.c_contiguous):
        af, bf, of = a_.reshape(-1), b_.reshape(-1), out.reshape(-1)
        _for_chunks(of.size, lambda s, e, t: kernel(af[s:e], bf[s:e], of[s:e], t[0]))
        return out
    kernel(a, b, out, None)
    return out


def _add_kernel(a, b, out, tmp):
    np.add(a, b, out=out)  # < 2^62, no wrap
    t = np.subtract(out, _P, out=tmp)  # wraps to a huge value when the sum is < p
    np.minimum(out, t, out=out)


def _sub_kernel(a, b, out, tmp):
    np.subtract(a, b, out=out)  # wraps when a < b
    t = np.add(out, _P, out=tmp)  # if a < b this wraps back to a - b + p
    np.minimum(out, t, out=out)


def addmod(a: np.ndarray, b, out: np.ndarray | None = None) -> np.ndarray:
    """(a + b) mod p for canonical inputs (broadcasting). ``out`` may alias ``a``."""
    return _chunked(a, b, out, _add_kernel)


def submod(a: np.ndarray, b, out: np.ndarray | None = None) -> np.ndarray:
    """(a - b) mod p for canonical inputs (broadcasting). ``out`` may alias ``a``."""
    return _chunked(a, b, out, _sub_kernel)


def negmod(a: np.ndarray) -> np.ndarray:
    """(-a) mod p."""
    return submod(np.zeros_like(a), a)


def split(b) -> tuple:
    """32-bit halves ``(b >> 32, b & (2^32-1))`` of canonical residues (array or int),
    reusable across many :func:`mulmod` calls with the same right operand."""
    if isinstance(b, (int, np.integer)):
        b = int(b) % P
        return np.uint64(b >> 32), np.uint64(b & 0xFFFFFFFF)
    b = np.asarray(b, dtype=np.uint64)
    return b >> _S32, b & _M32


def _mul_unreduced(a, bh, bl, t1, t2, t3, t4):
    """t3 = a·b mod p up to the final folding: a value < 2^63 congruent to a·b (b given as
    32-bit halves, arrays of the chunk's length or scalars). Uses t1, t2, t4 as scratch."""
    ah, al, hh, m = t1, t2, t3, t4
    np.right_shift(a, _S32, out=ah)
    np.bitwise_and(a, _M32, out=al)
    np.multiply(ah, bh, out=hh)  # < 2^58
    np.multiply(ah, bl, out=m)
    np.multiply(al, bh, out=ah)
    np.add(m, ah, out=m)  # mid < 2^62
    np.multiply(al, bl, out=al)  # lo < 2^64
    np.left_shift(hh, _S3, out=hh)  # a1·b1·2^64 ≡ a1·b1·8, < 2^61
    np.right_shift(m, _S29, out=ah)  # mid·2^32 = (mid>>29)·2^61 + (mid & M29)·2^32
    np.add(hh, ah, out=hh)
    np.bitwise_and(m, _M29, out=m)
    np.left_shift(m, _S32, out=m)
    np.add(hh, m, out=hh)
    np.right_shift(al, _S61, out=ah)  # lo = (lo>>61)·2^61 + (lo & p)
    np.add(hh, ah, out=hh)
    np.bitwise_and(al, _P, out=al)
    np.add(hh, al, out=hh)  # total < 3·2^61 + 2^34 < 2^63


def _fold(x, out, tmp):
    """Canonical residue of x < 2^64 (out may alias x)."""
    np.right_shift(x, _S61, out=tmp)
    np.bitwise_and(x, _P, out=out)
    np.add(out, tmp, out=out)  # <= p - 1 + 7
    np.subtract(out, _P, out=tmp)
    np.minimum(out, tmp, out=out)


def _mul_chunk(a, bh, bl, out, t1, t2, t3, t4):
    """out = a·b mod p for one chunk (``out`` may alias ``a``)."""
    _mul_unreduced(a, bh, bl, t1, t2, t3, t4)
    _fold(t3, out, t1)


def muladd2(c: np.ndarray, x1: np.ndarray, s1, x2: np.ndarray, s2, out: np.ndarray | None = None) -> np.ndarray:
    """``c + x1·b1 + x2·b2 mod p`` with ``b1``, ``b2`` public vectors given as halves (from
    :func:`split`) of the trailing shape of ``x1``/``x2``, broadcast over leading rows.

    Fused with lazy reduction: each unreduced product is below 3·2^61 + 2^34, so their sum
    plus c stays below 7·2^61 + 2^35 < 2^64 and is folded once. Used for Beaver's
    ``z = c + d·b + e·a``. ``out`` may alias ``c``."""
    c = _contig(c, dtype=np.uint64)
    out = np.empty_like(c) if out is None else out
    n = np.size(s1[0])
    c2, a2, b2, o2 = (_contig(v).reshape(-1, n) for v in (c, x1, x2, out))
    h1, l1, h2, l2 = (_contig(v).reshape(-1) for v in (*s1, *s2))

    def body(s, e, t):
        acc = t[4]
        for row in range(c2.shape[0]):
            _mul_unreduced(a2[row, s:e], h1[s:e], l1[s:e], *t[:4])
            np.add(c2[row, s:e], t[2], out=acc)
            _mul_unreduced(b2[row, s:e], h2[s:e], l2[s:e], *t[:4])
            np.add(acc, t[2], out=acc)
            _fold(acc, o2[row, s:e], t[0])

    _for_chunks(n, body)
    return out


def muladd_scalar(c: np.ndarray, x: np.ndarray, s_split, out: np.ndarray | None = None) -> np.ndarray:
    """``c + x·s mod p`` for a scalar ``s`` given as halves (from :func:`split`); ``c`` and
    ``x`` of equal shape. One fold for the product and the sum (lazy reduction)."""
    cf = _contig(c, dtype=np.uint64).reshape(-1)
    xf = _contig(x, dtype=np.uint64).reshape(-1)
    if cf.size != xf.size:
        raise ValueError("c and x must have the same size")
    out = np.empty(np.shape(c), dtype=np.uint64) if out is None else out
    of = out.reshape(-1)
    sh, sl = s_split

    def body(s, e, t):
        _mul_unreduced(xf[s:e], sh, sl, *t[:4])
        np.add(cf[s:e], t[2], out=t[4])
        _fold(t[4], of[s:e], t[0])

    _for_chunks(of.size, body)
    return out


def mulmod(a: np.ndarray, b, out: np.ndarray | None = None, *, b_split=None) -> np.ndarray:
    """Elementwise ``a·b mod p``. ``a`` is any-shaped uint64; ``b`` has the same shape, the
    shape of ``a``'s trailing axes (broadcast over leading axes, e.g. a public vector times
    every party's share row), or is a scalar. ``b_split`` (from :func:`split`) skips
    re-splitting ``b``. ``out`` may be ``a`` (in place)."""
    a = _contig(a, dtype=np.uint64)
    if out is None:
        out = np.empty_like(a)
    if b_split is None:
        b_split = split(b if np.ndim(b) else int(b))
    bh, bl = b_split
    if np.ndim(bh) == 0:
        return mulmod_scalar(a, (bh, bl), out)
    bh = _contig(bh).reshape(-1)
    bl = _contig(bl).reshape(-1)
    n = bh.size
    if a.size % max(n, 1) or a.shape[a.ndim - np.ndim(b_split[0]):] != np.shape(b_split[0]):
        raise ValueError(f"cannot broadcast {np.shape(b_split[0])} against {a.shape}")
    a2, o2 = a.reshape(-1, n), out.reshape(-1, n)

    def body(s, e, t):
        for row in range(a2.shape[0]):
            _mul_chunk(a2[row, s:e], bh[s:e], bl[s:e], o2[row, s:e], *t[:4])

    _for_chunks(n, body)
    return out


def mulmod_scalar(a: np.ndarray, b_split, out: np.ndarray | None = None) -> np.ndarray:
    """``a·b mod p`` for a scalar b given as halves (from :func:`split`)."""
    a = _contig(a, dtype=np.uint64)
    if out is None:
        out = np.empty_like(a)
    bh, bl = b_split
    af, of = a.reshape(-1), out.reshape(-1)
    _for_chunks(af.size, lambda s, e, t: _mul_chunk(af[s:e], bh, bl, of[s:e], *t[:4]))
    return out


def sum_mod(a: np.ndarray, axis=None):
    """Sum of residues mod p along ``axis`` (all elements when None; then a Python int).

    Exact: low and high 32-bit halves are summed separately in uint64 (no wrap for fewer
    than 2^29 terms), then combined modulo p."""
    a = np.asarray(a, dtype=np.uint64)
    count = a.size if axis is None else a.shape[axis]
    if axis is not None and count <= 7 and a.ndim > 1:  # 7·(p-1) < 2^64: add, then fold once
        s = a.sum(axis=axis, dtype=np.uint64)
        t = np.right_shift(s, _S61)
        np.bitwise_and(s, _P, out=s)
        np.add(s, t, out=s)  # <= p - 1 + 7
        return np.minimum(s, s - _P, out=s)
    if count >= 1 << 29:
        raise ValueError("sum_mod supports fewer than 2^29 terms per sum")
    lo = np.bitwise_and(a, _M32).sum(axis=axis, dtype=np.uint64)
    hi = np.right_shift(a, _S32).sum(axis=axis, dtype=np.uint64)  # < 2^29·2^29
    if axis is None:
        return ((int(hi) << 32) + int(lo)) % P
    hi %= _P
    return addmod(mulmod_scalar(hi, split(1 << 32)), lo % _P)


def dot_mod(r: np.ndarray, a: np.ndarray) -> list[int]:
    """``Σ_j r_j·a[..., j] mod p`` for a public coefficient vector ``r`` of length N and
    ``a`` of shape (N,) or (rows, N). Returns a list of Python ints (one per row)."""
    r = np.asarray(r, dtype=np.uint64).reshape(-1)
    a2 = np.asarray(a, dtype=np.uint64).reshape(-1, r.size)
    rs = split(r)

    def body(s, e, t):
        return [_dot_chunk(a2[row, s:e], rs[0][s:e], rs[1][s:e], *t[:4]) for row in range(a2.shape[0])]

    per_chunk = _for_chunks(r.size, body)
    return [sum(c[row] for c in per_chunk) % P for row in range(a2.shape[0])]


def _dot_chunk(a, bh, bl, ah, al, hh, m) -> int:
    """``Σ a·b`` over one chunk (at most 2^31 terms), exact, as a Python int (not reduced).

    Lazy reduction: the partial products ``a1·b1`` (< 2^58), ``a1·b0 + a0·b1`` (< 2^62) and
    ``a0·b0`` (< 2^64) are summed as 32-bit halves (no wrap in uint64), and only the six
    totals are recombined, with ``2^64 ≡ 8``, in Python integers."""
    np.right_shift(a, _S32, out=ah)
    np.bitwise_and(a, _M32, out=al)
    np.multiply(ah, bh, out=hh)
    np.multiply(ah, bl, out=m)
    np.multiply(al, bh, out=ah)
    np.add(m, ah, out=m)
    np.multiply(al, bl, out=al)
    total = 0
    for part, weight in ((hh, 8), (m, 1 << 32), (al, 1)):
        np.right_shift(part, _S32, out=ah)
        high = int(ah.sum(dtype=np.uint64))
        np.bitwise_and(part, _M32, out=part)
        low = int(part.sum(dtype=np.uint64))
        total += weight * ((high << 32) + low)
    return total
