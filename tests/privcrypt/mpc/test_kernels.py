"""The lazy-reduction kernels of privcrypt.mpc.field and the engine's fast encode/decode,
against Python's exact integers (and FixedPoint, bit for bit), edge values included."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from privcrypt.encoding import FixedPoint
from privcrypt.mpc import SpdzEngine, field
from privcrypt.mpc.engine import decode
from privcrypt.mpc.field import P
from privcrypt.rng import DeterministicRandom

residues = st.integers(min_value=0, max_value=P - 1)
# p - 1 = 2^61 - 2 is the largest canonical input; limb boundaries at 2^30, 2^31, 2^32, 2^42
EDGES = [0, 1, 2, P - 1, P - 2, 2**30 - 1, 2**30, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**42 - 1,
         2**42, 2**60, (P - 1) // 2, (P + 1) // 2]
edge_or_any = st.one_of(st.sampled_from(EDGES), residues)


def arr(values):
    return np.array(values, dtype=np.uint64)


@given(st.lists(edge_or_any, min_size=1, max_size=30), edge_or_any)
def test_split_and_unreduced_product_bound(xs, b):
    """The unreduced product is congruent to x·b and below 2^63 + 2^32 (the bound every lazy
    kernel relies on), for scalar and vector right operands."""
    xs = xs + EDGES
    a = arr(xs)
    t = [np.empty(a.size, dtype=np.uint64) for _ in range(4)]
    for sp in (field.split(b), field.split(arr([b] * a.size))):
        field._mul_unreduced(a, sp, *t)
        for x, got in zip(xs, t[2].tolist()):
            assert got % P == x * b % P and got < 2**63 + 2**32
    assert field.mulmod(a, b).tolist() == [x * b % P for x in xs]


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=30))
def test_fold_any_uint64(xs):
    xs = xs + [0, 1, P - 1, P, P + 1, 2 * P, 2**63, 2**64 - 2, 2**64 - 1]
    a = arr(xs)
    out, tmp = np.empty_like(a), np.empty_like(a)
    field._fold(a, out, tmp)
    assert out.tolist() == [x % P for x in xs]


@given(edge_or_any, st.integers(1, 6), st.integers(1, 30))
def test_mul_sub_rows(s, k, n):
    rng = DeterministicRandom(s ^ k)
    x, rows = field.random_elements(rng, n), field.random_elements(rng, (k, n))
    x[0], rows[:, 0] = P - 1, P - 1
    if n > 1:
        rows[:, 1] = 0
    got = field.mul_sub_rows(x, field.split(s), rows)
    assert got.tolist() == [(int(x[j]) * s - sum(int(v) for v in rows[:, j])) % P for j in range(n)]
    with pytest.raises(ValueError):
        field.mul_sub_rows(x, field.split(s), field.random_elements(rng, (7, n)))


def test_dot_mod_blocks_and_extremes():
    """All-maximal limbs across several exact-sum blocks and chunk boundaries."""
    n = field.CHUNK + 3 * field.DOT_BLOCK + 5
    r = np.full(n, P - 1, dtype=np.uint64)
    a = np.stack([np.full(n, P - 1, dtype=np.uint64), np.full(n, 2**32 - 1, dtype=np.uint64)])
    a[1, ::7] = 2**60
    want = [sum(int(x) * (P - 1) for x in row.tolist()) % P for row in a]
    assert field.dot_mod(r, a) == want
    assert field.dot_mod(r, a[1], a) == want[1:] + want  # several arrays, one pass


@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=30))
def test_decode_is_centered_lift(vals):
    vals = vals + [0, 1, -1]
    res = arr([v % P for v in vals] + [(P - 1) // 2, (P + 1) // 2, P - 1])
    want = [float(v) / 2**16 for v in vals] + [((P - 1) // 2) / 2**16, -((P - 1) // 2) / 2**16, -1 / 2**16]
    assert decode(res, 16).tolist() == want
    assert decode(np.uint64(P - 1), 0).shape == ()


@given(st.lists(st.floats(-3.0, 3.0, allow_nan=False), min_size=0, max_size=30), st.integers(0, 28))
def test_fast_encode_matches_fixedpoint(xs, f):
    eng = SpdzEngine(2, 16, DeterministicRandom(0), bound=3.0)
    x = np.array(xs + [0.0, -0.0, 3.0, -3.0, 0.5 / 2**f, -0.5 / 2**f, 1.5 / 2**f], dtype=np.float64)
    want = FixedPoint(frac_bits=f, modulus=P, bound=3.0).encode(x)
    assert np.array_equal(eng._encode(x, f, 3.0), want)
    assert eng._encode(np.float64(-1.0), f, 3.0).shape == ()
    for bad in ([np.nan], [1.0, np.inf], [3.5]):
        with pytest.raises(ValueError):
            eng._encode(np.array(bad), f, 3.0)


@given(st.integers(2, 7), st.integers(1, 40))
def test_sum_of_rows(k, n):
    a = field.random_elements(DeterministicRandom(k * 100 + n), (k, n))
    a[:, 0] = P - 1
    assert field.sum_mod(a, axis=0).tolist() == [sum(int(v) for v in a[:, j]) % P for j in range(n)]
    assert field.sum_mod(a.reshape(k, n, 1), axis=0).shape == (n, 1)


class _ForcedP:
    """A stub source whose first draw is all ones (masked to p, the one rejected value)."""

    def __init__(self):
        self.inner, self.calls = DeterministicRandom("forced"), 0

    def integers(self, bound, size, dtype):
        self.calls += 1
        words = self.inner.integers(bound, size, dtype=dtype)
        if self.calls == 1:
            words.reshape(-1)[::3] = np.uint64(2**64 - 1)
        return words


def test_random_elements_redraws_p():
    src = _ForcedP()
    x = field.random_elements(src, (2, field.CHUNK * 5 + 7))
    assert src.calls == 2 and int(x.max()) < P


def test_codec_kernels_on_long_arrays():
    """Chunked (and threaded) paths of the codec kernels against the plain formulations."""
    from privcrypt.mpc import codec

    rng = DeterministicRandom("codec")
    n = field.CHUNK * 5 + 11
    x = (rng.uniform(n) - 0.5) * 6.0
    x[:4] = [3.0, -3.0, 0.0, -0.0]
    enc, lo, hi = codec.encode_nearest(x, 2.0**16)
    assert (lo, hi) == (x.min(), x.max())
    eng = SpdzEngine(2, 16, DeterministicRandom(1), bound=3.0)
    for bad in (np.nan, np.inf, -1e300, 3.5):
        y = x.copy()
        y[n // 2] = bad
        with pytest.raises(ValueError):
            eng._encode(y, 16, 3.0)
    assert np.array_equal(enc, FixedPoint(frac_bits=16, modulus=P, bound=3.0).encode(x))
    assert np.array_equal(codec.decode_centered(enc, 16), np.rint(x * 2.0**16) / 2.0**16)
    r, share0 = field.random_elements(rng, n), field.random_elements(rng, n)
    before = share0.copy()
    delta = codec.mask_input(enc, r, share0)
    assert np.array_equal(delta, field.submod(enc, r))
    assert np.array_equal(share0, field.addmod(before, delta))
    rows, off = field.random_elements(rng, (3, n)), field.random_elements(rng, n)
    v, w = field.sum_rows(rows, minus=off)
    idx = np.arange(0, n, 1013)
    assert v[idx].tolist() == [sum(int(a) for a in rows[:, j]) % P for j in idx]
    assert w[idx].tolist() == [(int(v[j]) - int(off[j])) % P for j in idx]


def test_random_elements_into_part_of_an_array():
    out = np.zeros((3, field.CHUNK + 9), dtype=np.uint64)
    field.random_elements(DeterministicRandom(8), (2, field.CHUNK + 9), out=out[:2])
    assert int(out[:2].max()) < P and (out[:2] != 0).mean() > 0.99 and not out[2].any()
    src, small = _ForcedP(), np.zeros((3, 50), dtype=np.uint64)
    field.random_elements(src, (2, 50), out=small[1:])
    assert src.calls == 2 and int(small.max()) < P and not small[0].any()
    with pytest.raises(ValueError):
        field.random_elements(DeterministicRandom(8), (2, 4), out=out[:2, :4])  # not contiguous


def test_differences_without_materializing():
    rng = DeterministicRandom("diff")
    n = field.CHUNK * 3 + 5
    a, b, off = field.random_elements(rng, (3, n)), field.random_elements(rng, (3, n)), field.random_elements(rng, n)
    r = field.random_elements(rng, n)
    v, w = field.sum_rows(a, minus=off, sub=b)
    assert np.array_equal(v, field.sum_mod(field.submod(a, b), axis=0))
    assert np.array_equal(w, field.submod(v, off))
    assert field.dot_mod(r, v, (a, b)) == field.dot_mod(r, v, field.submod(a, b))


def test_beaver_combine_long_and_threaded():
    rng = DeterministicRandom("beaver")
    n = field.CHUNK * 9 + 5  # enough chunks for the worker threads
    c, b, a = (field.random_elements(rng, (3, n)) for _ in range(3))
    d, e = field.random_elements(rng, n), field.random_elements(rng, n)
    want = field.addmod(field.addmod(c, field.mulmod(b, d)), field.mulmod(a, e))
    out, de = np.empty_like(c), np.empty(n, dtype=np.uint64)
    field.beaver_combine([(c, b, a, out)], d, e, de_out=de)
    assert np.array_equal(out, want) and np.array_equal(de, field.mulmod(d, e))
