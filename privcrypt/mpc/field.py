"""Vectorized arithmetic in the prime field Z_p, p = 2^61 - 1 (a Mersenne prime).

Elements are ``uint64`` numpy arrays holding canonical residues in ``[0, p)``.

Why hand-written: numpy has no modular 64-bit multiply, and a 61-bit product needs 122
bits. ``mulmod`` splits each operand into a 30-bit and a 31-bit limb (``a = a1·2^31 + a0``),
forms the four partial products (each below 2^62) and reduces with ``2^61 ≡ 1 (mod p)``, so
``2^62 ≡ 2``: 11 numpy passes give a value below ``2^63 + 2^32`` congruent to the product,
and one fold (5 passes) makes it canonical. Kernels that add products reduce lazily (one
fold per sum, bounds stated at each). Work proceeds in cache-sized chunks with pre-allocated
scratch buffers, all in place. (A float64 quotient estimate is *not* used: for 61-bit
operands its error is about 2^10 multiples of p, far too large to correct in 64 bits.)

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
    "sum_rows",
    "dot_mod",
    "to_field",
]

P: int = (1 << 61) - 1
P_BITS = 61
_P = np.uint64(P)
_M32 = np.uint64(0xFFFFFFFF)
_M31_INT = (1 << 31) - 1
_M30, _M31 = np.uint64((1 << 30) - 1), np.uint64(_M31_INT)
_M21 = np.uint64((1 << 21) - 1)
_S1, _S21, _S30, _S31 = np.uint64(1), np.uint64(21), np.uint64(30), np.uint64(31)
_S32, _S42, _S61 = np.uint64(32), np.uint64(42), np.uint64(61)
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


def _for_chunks(n: int, body, scratch: int = 6) -> list:
    """``body(s, e, scratch)`` for every chunk ``[s, e)`` of ``range(n)`` with ``scratch``
    private scratch buffers of the chunk's length; contiguous groups of chunks run on worker
    threads when ``n`` is large. Returns the bodies' results in chunk order."""
    global _pool
    chunks = [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    groups = min(_threads, len(chunks) // 4)

    def run(group):
        bufs = [np.empty(min(n, CHUNK), dtype=np.uint64) for _ in range(scratch)]
        return [body(s, e, [x[: e - s] for x in bufs]) for s, e in group]

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


def random_elements(rng: RandomSource, shape, out: np.ndarray | None = None) -> np.ndarray:
    """Uniform elements of Z_p as uint64, exactly uniform.

    61 random bits are uniform on ``[0, 2^61) = [0, p]``; the single value ``p`` (chance
    2^-61 per element) is redrawn, which leaves the rest uniform on ``[0, p)``. ``out``: a
    C-contiguous uint64 array of that shape to fill (the masking pass writes into it, so
    filling part of a larger array costs no extra copy)."""
    words = rng.integers(2**64, shape, dtype=np.uint64)
    if out is None:
        out = words
    elif out.shape != words.shape or out.dtype != np.uint64 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous uint64 array of the requested shape")
    src, flat = words.reshape(-1), out.reshape(-1)

    def mask(s, e, t):  # chunk by chunk: the max runs on data still in cache
        np.bitwise_and(src[s:e], _P, out=flat[s:e])
        return flat[s:e].max() == _P  # p is the largest 61-bit value

    if flat.size and any(_for_chunks(flat.size, mask, scratch=0)):
        while True:
            bad = flat == _P
            if not bad.any():
                break
            flat[bad] = rng.integers(2**64, int(bad.sum()), dtype=np.uint64) & _P
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
    """Precomputed right operand ``(2·b1, b1, b0)`` with ``b = b1·2^31 + b0`` (``b0 < 2^31``,
    ``b1 < 2^30``) for canonical residues (array or int); reusable across many
    :func:`mulmod` calls with the same right operand (e.g. a MAC-key share)."""
    if isinstance(b, (int, np.integer)):
        b = int(b) % P
        return np.uint64(2 * (b >> 31)), np.uint64(b >> 31), np.uint64(b & _M31_INT)
    b = np.asarray(b, dtype=np.uint64)
    b1 = b >> _S31
    return b1 << _S1, b1, b & _M31


def _limbs(a, a1, a0):
    """``a1 = a >> 31`` (< 2^30) and ``a0 = a & (2^31 - 1)`` for canonical ``a``."""
    np.right_shift(a, _S31, out=a1)
    np.bitwise_and(a, _M31, out=a0)


def _mul_limbs(a1, a0, b, out, t1, t2):
    """``out`` = a value below ``2^63 + 2^32`` congruent to ``a·b`` mod p, from the limbs of
    ``a`` (:func:`_limbs`, left intact) and ``b`` as :func:`split` gives it.

    With ``a = a1·2^31 + a0`` and ``b = b1·2^31 + b0``::

        a·b = a1·b1·2^62 + (a1·b0 + a0·b1)·2^31 + a0·b0,   2^62 ≡ 2,  2^61 ≡ 1 (mod p)

    so ``a·b ≡ a1·(2·b1) + a0·b0 + (mid >> 30) + (mid & (2^30-1))·2^31`` with
    ``mid = a1·b0 + a0·b1 < 2^62``. The four terms are below 2^61, 2^62, 2^32 and 2^61:
    the sum is below ``2^63 + 2^32`` and nothing wraps in uint64. 11 numpy passes."""
    b1x2, b1, b0 = b
    np.multiply(a1, b1x2, out=out)  # < 2^61
    np.multiply(a1, b0, out=t1)
    np.multiply(a0, b1, out=t2)
    np.add(t1, t2, out=t1)  # mid < 2^62
    np.multiply(a0, b0, out=t2)  # < 2^62
    np.add(out, t2, out=out)
    np.right_shift(t1, _S30, out=t2)
    np.add(out, t2, out=out)
    np.bitwise_and(t1, _M30, out=t1)
    np.left_shift(t1, _S31, out=t1)
    np.add(out, t1, out=out)


def _mul_unreduced(a, b, t1, t2, t3, t4):
    """t3 = a value below ``2^63 + 2^32`` congruent to ``a·b`` (``b`` from :func:`split`,
    arrays of the chunk's length or scalars). Uses t1, t2, t4 as scratch."""
    _limbs(a, t1, t2)
    _mul_limbs(t1, t2, b, t3, t4, t1)  # t1 (a1) is read before it is overwritten


def _partial_fold(x, tmp):
    """In place: ``x`` < 2^64 to a congruent value ``<= p + 7``."""
    np.right_shift(x, _S61, out=tmp)
    np.bitwise_and(x, _P, out=x)
    np.add(x, tmp, out=x)


def _fold(x, out, tmp):
    """Canonical residue of x < 2^64 (out may alias x)."""
    np.right_shift(x, _S61, out=tmp)
    np.bitwise_and(x, _P, out=out)
    np.add(out, tmp, out=out)  # <= p - 1 + 7 < 2p
    np.subtract(out, _P, out=tmp)  # wraps to a huge value when out < p
    np.minimum(out, tmp, out=out)


def _mul_chunk(a, b, out, t1, t2, t3, t4):
    """out = a·b mod p for one chunk (``out`` may alias ``a``)."""
    _mul_unreduced(a, b, t1, t2, t3, t4)
    _fold(t3, out, t1)


def _split_into(x, parts) -> None:
    """:func:`split` of one chunk into pre-allocated ``parts = (2·x1, x1, x0)``."""
    np.right_shift(x, _S31, out=parts[1])
    np.left_shift(parts[1], _S1, out=parts[0])
    np.bitwise_and(x, _M31, out=parts[2])


def beaver_combine(groups, d: np.ndarray, e: np.ndarray, de_out: np.ndarray | None = None) -> None:
    """Beaver's local step for public canonical vectors ``d``, ``e`` (shape S): for every
    ``(c, b, a, out)`` in ``groups`` (arrays of shape ``(rows, *S)``, ``out`` C-contiguous and
    allowed to alias ``c``) ``out = c + d·b + e·a mod p`` row by row; with ``de_out`` (shape
    S) also ``d·e mod p``. ``d`` and ``e`` are split once per chunk for all rows.

    Lazy reduction: ``c + d·b`` (below ``2^61 + 2^63 + 2^32``) is folded once to at most
    ``p + 4``, the second unreduced product is added (still below 2^64) and the total folded
    once."""
    df, ef = _contig(d, dtype=np.uint64).reshape(-1), _contig(e, dtype=np.uint64).reshape(-1)
    n = df.size
    rows = []
    for c, b, a, out in groups:
        if not out.flags.c_contiguous:
            raise ValueError("out must be C-contiguous")
        rows.append(tuple(_contig(v, dtype=np.uint64).reshape(-1, n) for v in (c, b, a)) + (out.reshape(-1, n),))
    dof = None if de_out is None else de_out.reshape(-1)

    def body(s, e_, t):
        ds, es = t[5:8], t[8:11]
        _split_into(df[s:e_], ds)
        _split_into(ef[s:e_], es)
        for c2, b2, a2, o2 in rows:
            for row in range(c2.shape[0]):
                _mul_unreduced(b2[row, s:e_], ds, t[0], t[1], t[2], t[3])
                np.add(t[2], c2[row, s:e_], out=t[2])
                _partial_fold(t[2], t[0])
                _mul_unreduced(a2[row, s:e_], es, t[0], t[1], t[4], t[3])
                np.add(t[2], t[4], out=t[2])
                _fold(t[2], o2[row, s:e_], t[0])
        if dof is not None:
            _mul_limbs(ds[1], ds[2], es, t[2], t[3], t[4])  # d's limbs are (d1, d0) of its split
            _fold(t[2], dof[s:e_], t[3])

    _for_chunks(n, body, scratch=11)


def mul_sub_rows(x: np.ndarray, s_split, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``x·s - Σ_k rows[k] mod p`` for a scalar ``s`` (from :func:`split`) and canonical
    ``rows`` of shape ``(k, *x.shape)``, ``1 <= k <= 6``: the last additive share of ``α·x``
    given the others. Lazy: ``k·p - Σ rows`` lies in ``(0, k·p]``; for ``k <= 3`` it is added
    to the unreduced product (``< 2^63 + 2^32 + 3·2^61 < 2^64``), for larger ``k`` the product
    is first folded to at most ``p + 4`` (then ``(k + 2)·p < 2^64``); one final fold."""
    k = rows.shape[0]
    if not 1 <= k <= 6:
        raise ValueError("mul_sub_rows takes 1 to 6 rows")
    xf = _contig(x, dtype=np.uint64).reshape(-1)
    rf = _contig(rows, dtype=np.uint64).reshape(k, -1)
    if rf.shape[1] != xf.size:
        raise ValueError("rows must have x's shape")
    out = np.empty(np.shape(x), dtype=np.uint64) if out is None else out
    of = out.reshape(-1)
    kp = np.uint64(k * P)

    def body(s, e, t):
        _mul_unreduced(xf[s:e], s_split, t[0], t[1], t[2], t[3])
        if k > 3:
            _partial_fold(t[2], t[0])
        np.subtract(kp, rf[0, s:e], out=t[4])
        for j in range(1, k):
            np.subtract(t[4], rf[j, s:e], out=t[4])
        np.add(t[2], t[4], out=t[2])
        _fold(t[2], of[s:e], t[0])

    _for_chunks(xf.size, body)
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
    if np.ndim(b_split[0]) == 0:
        return mulmod_scalar(a, b_split, out)
    shape = np.shape(b_split[0])
    flat = [_contig(v).reshape(-1) for v in b_split]
    n = flat[0].size
    if a.size % max(n, 1) or a.shape[a.ndim - len(shape):] != shape:
        raise ValueError(f"cannot broadcast {shape} against {a.shape}")
    a2, o2 = a.reshape(-1, n), out.reshape(-1, n)

    def body(s, e, t):
        part = [v[s:e] for v in flat]
        for row in range(a2.shape[0]):
            _mul_chunk(a2[row, s:e], part, o2[row, s:e], *t[:4])

    _for_chunks(n, body)
    return out


def mulmod_scalar(a: np.ndarray, b_split, out: np.ndarray | None = None) -> np.ndarray:
    """``a·b mod p`` for a scalar b given by :func:`split`."""
    a = _contig(a, dtype=np.uint64)
    if out is None:
        out = np.empty_like(a)
    af, of = a.reshape(-1), out.reshape(-1)
    _for_chunks(af.size, lambda s, e, t: _mul_chunk(af[s:e], b_split, of[s:e], *t[:4]))
    return out


def sum_mod(a: np.ndarray, axis=None):
    """Sum of residues mod p along ``axis`` (all elements when None; then a Python int).

    Exact: low and high 32-bit halves are summed separately in uint64 (no wrap for fewer
    than 2^29 terms), then combined modulo p."""
    a = np.asarray(a, dtype=np.uint64)
    count = a.size if axis is None else a.shape[axis]
    if axis == 0 and 2 <= count <= 7 and a.ndim > 1 and a.flags.c_contiguous:
        return sum_rows(a)
    if axis is not None and count <= 7 and a.ndim > 1:  # 7·(p-1) < 2^64: add, then fold once
        s = a.sum(axis=axis, dtype=np.uint64)
        t = np.empty_like(s)
        _fold(s, s, t)
        return s
    if count >= 1 << 29:
        raise ValueError("sum_mod supports fewer than 2^29 terms per sum")
    lo = np.bitwise_and(a, _M32).sum(axis=axis, dtype=np.uint64)
    hi = np.right_shift(a, _S32).sum(axis=axis, dtype=np.uint64)  # < 2^29·2^29
    if axis is None:
        return ((int(hi) << 32) + int(lo)) % P
    hi %= _P
    return addmod(mulmod_scalar(hi, split(1 << 32)), lo % _P)


def sum_rows(a: np.ndarray, minus: np.ndarray | None = None, sub: np.ndarray | None = None):
    """``v = Σ_k a[k] mod p`` for 2 to 7 canonical rows (7·(p-1) < 2^64: add, then fold
    once), chunk by chunk so the running sum stays in cache. ``sub`` (rows shaped like
    ``a``): ``v = Σ_k a[k] - Σ_k sub[k]`` instead, without forming the differences. With
    ``minus`` (canonical, the shape of one row) returns ``(v, v - minus mod p)`` from the same
    pass: a partial opening and the value its MAC shares authenticate."""
    k = a.shape[0]
    if not 2 <= k <= 7 or (sub is not None and sub.shape != a.shape):
        raise ValueError("sum_rows takes 2 to 7 rows (and sub of the same shape)")
    rows = _contig(a).reshape(k, -1)
    neg = None if sub is None else _contig(sub).reshape(k, -1)
    out = np.empty(a.shape[1:], dtype=np.uint64)
    of = out.reshape(-1)
    diff = None if minus is None else np.empty(a.shape[1:], dtype=np.uint64)
    mf = None if minus is None else _contig(minus, dtype=np.uint64).reshape(-1)
    if mf is not None and mf.size != of.size:
        raise ValueError("minus must have the shape of one row")

    def add_rows(m, s, e, acc):
        np.add(m[0, s:e], m[1, s:e], out=acc)
        for j in range(2, k):
            np.add(acc, m[j, s:e], out=acc)

    def body(s, e, t):
        add_rows(rows, s, e, t[0])
        _fold(t[0], of[s:e], t[1])
        if neg is not None:
            add_rows(neg, s, e, t[0])
            _fold(t[0], t[0], t[1])
            _sub_kernel(of[s:e], t[0], of[s:e], t[1])
        if mf is not None:
            _sub_kernel(of[s:e], mf[s:e], diff.reshape(-1)[s:e], t[1])

    _for_chunks(of.size, body, scratch=2)
    return out if minus is None else (out, diff)


#: Terms per exact block sum in :func:`dot_mod`: each limb product is below 2^53, so 2^11
#: of them sum below 2^64 without wrapping.
DOT_BLOCK = 1 << 11


def dot_mod(r: np.ndarray, *arrays: np.ndarray) -> list[int]:
    """``Σ_j r_j·a[..., j] mod p`` for canonical ``r`` of length N and every row of every
    ``a`` in ``arrays`` (each of shape (N,) or (rows, N), or a pair ``(A, B)`` standing for
    ``A - B mod p``). Returns a list of Python ints, one per row, in order.

    Exact without per-element reduction: per cache-sized chunk, ``r`` is cut into three
    21-bit limbs (``r = r2·2^42 + r1·2^21 + r0``, ``r2 < 2^19``, shared by all rows) and each
    row into 32-bit halves (``a = a1·2^32 + a0``, ``a1 < 2^29``). The six limb products are
    below ``2^32·2^21 = 2^53``, so blocks of :data:`DOT_BLOCK` = 2^11 of them sum in uint64
    without wrapping (``np.add.reduceat``); the block sums are recombined with their weights
    ``2^(21k + 32h)`` in Python integers and reduced once."""
    r = np.asarray(r, dtype=np.uint64).reshape(-1)
    rows = []
    for a in arrays:
        if isinstance(a, tuple):  # (A, B): the rows of A - B mod p, formed chunk by chunk
            a2, b2 = (np.asarray(v, dtype=np.uint64).reshape(-1, r.size) for v in a)
            rows.extend(zip(a2, b2))
        else:
            rows.extend(np.asarray(a, dtype=np.uint64).reshape(-1, r.size))
    weights = [[1 << (21 * k + 32 * h) for k in range(3)] for h in (0, 1)]

    def body(s, e, t):
        starts = np.arange(0, e - s, DOT_BLOCK)
        rc, limbs = r[s:e], t[3:6]
        np.bitwise_and(rc, _M21, out=limbs[0])
        np.right_shift(rc, _S21, out=limbs[1])
        np.bitwise_and(limbs[1], _M21, out=limbs[1])
        np.right_shift(rc, _S42, out=limbs[2])
        totals = []
        for x in rows:
            if isinstance(x, tuple):
                _sub_kernel(x[0][s:e], x[1][s:e], t[6], t[2])
                x = t[6]
            else:
                x = x[s:e]
            np.bitwise_and(x, _M32, out=t[0])
            np.right_shift(x, _S32, out=t[1])
            total = 0
            for half in (0, 1):
                for w, limb in zip(weights[half], limbs):
                    np.multiply(t[half], limb, out=t[2])
                    total += w * sum(np.add.reduceat(t[2], starts).tolist())
            totals.append(total)
        return totals

    per_chunk = _for_chunks(r.size, body, scratch=7)
    return [sum(c[i] for c in per_chunk) % P for i in range(len(rows))]
