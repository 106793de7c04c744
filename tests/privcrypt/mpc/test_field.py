"""Field arithmetic mod p = 2^61 - 1 against Python's exact integers."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from privcrypt.mpc import field
from privcrypt.mpc.field import P
from privcrypt.rng import DeterministicRandom

residues = st.integers(min_value=0, max_value=P - 1)
EDGES = [0, 1, 2, P - 1, P - 2, 2**32 - 1, 2**32, 2**60, 2**61 - 2, (P - 1) // 2]


def arr(values):
    return np.array(values, dtype=np.uint64)


@given(st.lists(residues, min_size=1, max_size=40), st.lists(residues, min_size=1, max_size=40))
def test_ops_match_python_ints(xs, ys):
    n = min(len(xs), len(ys))
    xs, ys = xs[:n] + EDGES, ys[:n] + EDGES[::-1]
    a, b = arr(xs), arr(ys)
    assert field.mulmod(a, b).tolist() == [x * y % P for x, y in zip(xs, ys)]
    assert field.addmod(a, b).tolist() == [(x + y) % P for x, y in zip(xs, ys)]
    assert field.submod(a, b).tolist() == [(x - y) % P for x, y in zip(xs, ys)]
    assert field.negmod(a).tolist() == [(-x) % P for x in xs]
    assert field.sum_mod(a) == sum(xs) % P
    assert field.dot_mod(a, b) == [sum(x * y for x, y in zip(xs, ys)) % P]


@given(residues)
def test_scalar_and_broadcast_mulmod(c):
    rng = DeterministicRandom(c)
    m = field.random_elements(rng, (3, 50))
    v = field.random_elements(rng, 50)
    want_scalar = [[x * c % P for x in row] for row in m.tolist()]
    assert field.mulmod(m, c).tolist() == want_scalar
    assert field.mulmod_scalar(m, field.split(c)).tolist() == want_scalar
    assert field.mulmod(m, v).tolist() == [[x * y % P for x, y in zip(row, v.tolist())] for row in m.tolist()]


def test_chunked_paths_and_sums_on_long_vectors():
    rng = DeterministicRandom("long")
    n = field.CHUNK * 2 + 17  # crosses chunk boundaries
    a, b = field.random_elements(rng, (2, n)), field.random_elements(rng, n)
    got = field.mulmod(a, b)
    idx = np.arange(0, n, 997)
    for i in range(2):
        assert got[i, idx].tolist() == [int(a[i, j]) * int(b[j]) % P for j in idx]
    assert field.sum_mod(a, axis=1).tolist() == [sum(row) % P for row in a.tolist()]
    assert field.sum_mod(a, axis=0)[idx].tolist() == [(int(a[0, j]) + int(a[1, j])) % P for j in idx]
    assert field.dot_mod(b, a) == [sum(x * y for x, y in zip(b.tolist(), row)) % P for row in a.tolist()]


def test_random_elements_are_canonical_and_spread():
    x = field.random_elements(DeterministicRandom(3), 200_000)
    assert int(x.max()) < P
    # top bit of 61 is set about half the time (uniform on [0, p))
    frac = np.mean(x >= np.uint64(2**60))
    assert abs(frac - 0.5) < 0.01


def test_to_field_signed():
    assert field.to_field(np.array([-1, 0, 5], dtype=np.int64)).tolist() == [P - 1, 0, 5]
    assert field.to_field(np.array([P + 3, -(2**70)], dtype=object)).tolist() == [3, (-(2**70)) % P]


def test_threaded_kernels_agree_with_single_thread():
    rng = DeterministicRandom("threads")
    n = field.CHUNK * 10 + 5  # enough chunks for the worker pool
    a, b = field.random_elements(rng, (3, n)), field.random_elements(rng, n)
    before = field._threads
    try:
        field.set_threads(1)
        single = (field.mulmod(a, b), field.addmod(a[0], a[1]), field.dot_mod(b, a))
        field.set_threads(2)
        multi = (field.mulmod(a, b), field.addmod(a[0], a[1]), field.dot_mod(b, a))
    finally:
        field.set_threads(before)
    assert np.array_equal(single[0], multi[0]) and np.array_equal(single[1], multi[1])
    assert single[2] == multi[2]
    j = n - 1
    assert int(multi[0][2, j]) == int(a[2, j]) * int(b[j]) % P


@given(residues, residues)
def test_fused_beaver_combine(u, v):
    rng = DeterministicRandom(u ^ v)
    n = 40
    c, x1, x2 = (field.random_elements(rng, (3, n)) for _ in range(3))
    m = field.random_elements(rng, (2, n))
    b1, b2 = field.random_elements(rng, n), field.random_elements(rng, n)
    b1[0], b2[0] = u, v
    c[:, 1], x1[:, 1], x2[:, 1] = P - 1, P - 1, P - 1  # extremes
    b1[1] = b2[1] = P - 1
    want = [[(int(c[i, j]) + int(x1[i, j]) * int(b1[j]) + int(x2[i, j]) * int(b2[j])) % P
             for j in range(n)] for i in range(3)]
    want_m = [[(int(m[i, j]) + int(x1[i, j]) * int(b1[j]) + int(x2[i, j]) * int(b2[j])) % P
               for j in range(n)] for i in range(2)]
    de = np.empty(n, dtype=np.uint64)
    out = np.empty_like(m)
    field.beaver_combine([(c, x1, x2, c), (m, x1[:2], x2[:2], out)], b1, b2, de_out=de)
    assert c.tolist() == want and out.tolist() == want_m
    assert de.tolist() == [int(x) * int(y) % P for x, y in zip(b1, b2)]
