"""SpdzEngine: reconstruction, Beaver products, fixed-point error, overflow, privacy of shares."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from privcrypt.exceptions import ProtocolAbort
from privcrypt.mpc import P, SpdzEngine, TrustedDealer
from privcrypt.mpc.engine import decode
from privcrypt.rng import DeterministicRandom

F = 16
ULP = 2.0**-F
BOUND = 64.0


def engine(seed=0, n=3, **kw):
    return SpdzEngine(n_parties=n, frac_bits=F, rng=DeterministicRandom(seed), **kw)


values = st.floats(min_value=-BOUND, max_value=BOUND, allow_nan=False)
vectors = st.lists(values, min_size=1, max_size=12)


@given(vectors, st.integers(2, 5), st.integers(0, 2**32))
def test_share_open_roundtrip_with_edges(xs, n, seed):
    eng = engine(seed, n)
    x = np.array(xs + [0.0, BOUND, -BOUND, ULP, -ULP])
    sx = eng.share(x)
    assert sx.shares.shape == sx.macs.shape == (n, x.size)
    assert sx.shares.dtype == np.uint64 and int(sx.shares.max()) < P
    got = eng.open(sx)
    assert np.max(np.abs(got - x)) <= ULP / 2  # nearest rounding: error <= 2^-(f+1)
    assert got[-5:].tolist() == [0.0, BOUND, -BOUND, ULP, -ULP]  # representable: exact


def test_field_edge_residues_reconstruct():
    eng = engine(1)
    vals = np.array([0, 1, P - 1, P - 2, P // 2, P // 2 + 1], dtype=np.uint64)
    s = eng.dealer.authenticate(vals)
    assert eng.open_residues(s).tolist() == vals.tolist()
    assert decode(np.array([P - 1], dtype=np.uint64), 0).tolist() == [-1.0]


def test_linear_operations():
    eng = engine(2)
    x, y = np.array([1.5, -2.0, 3.0]), np.array([0.25, 4.0, -7.5])
    sx, sy = eng.share(x), eng.share(y)
    assert eng.open(eng.add(sx, sy)).tolist() == (x + y).tolist()
    assert eng.open(eng.sub(sx, sy)).tolist() == (x - y).tolist()
    assert eng.open(eng.add_public(sx, 2.5)).tolist() == (x + 2.5).tolist()
    assert eng.open(eng.mul_public(sx, -3)).tolist() == (-3 * x).tolist()
    assert eng.open(eng.mul_public(sx, 0.5)).tolist() == (0.5 * x).tolist()  # exact halves
    assert float(eng.open(eng.sum(sx))) == x.sum()
    m = eng.share(np.arange(6.0).reshape(2, 3))
    assert eng.open(eng.sum(m, axis=0)).tolist() == [3.0, 5.0, 7.0]
    assert eng.open(eng.sum(m, axis=1)).tolist() == [3.0, 12.0]


@given(vectors, vectors, st.integers(0, 2**32))
def test_beaver_product_is_exact_before_truncation(xs, ys, seed):
    eng = engine(seed, bound=BOUND)
    k = min(len(xs), len(ys))
    x, y = np.array(xs[:k]) / 8, np.array(ys[:k]) / 8
    sx, sy = eng.share(x, bound=8.0), eng.share(y, bound=8.0)
    xi = np.rint(x * 2**F).astype(np.int64)  # what was encoded
    yi = np.rint(y * 2**F).astype(np.int64)
    exact = eng.open(eng.mul(sx, sy, truncate=False))  # scale 2f
    assert exact.tolist() == ((xi * yi).astype(np.float64) / 2.0 ** (2 * F)).tolist()
    trunc = eng.open(eng.mul(sx, sy))  # truncated back to f bits
    assert np.all(np.abs(trunc - exact) < ULP)
    assert float(eng.open(eng.dot(sx, sy))) == float(np.sum(xi * yi)) / 2.0 ** (2 * F)


def test_norm2_exact_and_truncated():
    eng = engine(3, bound=4.0)
    x = DeterministicRandom(9).uniform(1000) * 8 - 4
    sx = eng.share(x)
    xi = np.rint(x * 2**F)
    want = float(np.sum(xi * xi)) / 2.0 ** (2 * F)
    assert float(eng.open(eng.norm2(sx))) == pytest.approx(want, abs=2.0 ** (-2 * F))
    assert abs(float(eng.open(eng.norm2(sx, truncate=True))) - want) < ULP


def test_truncation_error_bound_and_near_unbiased():
    """Truncation error is < 1 ulp always; rounding up happens with probability equal to the
    dropped fraction, so the mean error is close to 0."""
    eng = engine(4, bound=8.0)
    n = 20_000
    p_int = 5 * 2**F + 19661  # the 2f-bit product below, in units of 2^-2f
    frac = 19661 / 2**F  # dropped fraction of the last kept unit (~0.3)
    sx = eng.share(np.full(n, p_int * ULP))  # exactly representable
    tiny = eng.share(np.full(n, ULP))  # 2^-f
    got = eng.open(eng.mul(sx, tiny))  # product = p_int·2^-2f, truncated to f bits
    units = got * 2**F
    assert set(np.unique(units).tolist()) <= {5.0, 6.0}
    assert abs(np.mean(units == 6.0) - frac) < 0.02


def test_mul_after_mul_chains_truncated_values():
    eng = engine(5, bound=2.0)
    x = np.array([1.25, -0.5, 1.9])
    sx = eng.share(x)
    cube = eng.mul(eng.mul(sx, sx), sx)
    assert np.all(np.abs(eng.open(cube) - x**3) < 10 * ULP)


def test_overflow_beyond_declared_range_raises():
    eng = engine(6, bound=8.0)
    with pytest.raises(ValueError, match="outside declared range"):
        eng.share(np.array([8.5]))
    with pytest.raises(ValueError):
        eng.share(np.array([np.nan]))
    big = eng.share(np.array([1.0]), bound=2.0**20)
    with pytest.raises(ValueError, match="overflow"):
        eng.mul(big, big)  # 2^40 · 2^32 > 2^59
    with pytest.raises(ValueError, match="overflow"):
        SpdzEngine(bound=2.0**44, rng=DeterministicRandom(0))
    v = eng.share(np.zeros(10), bound=2.0**40)
    with pytest.raises(ValueError, match="overflow"):
        eng.sum(eng.mul_public(v, 2**5))  # bounds propagate


def test_triples_are_single_use():
    eng = engine(7)
    sx = eng.share(np.array([1.0, 2.0]))
    batch = eng.dealer.triples(2)
    eng.mul(sx, sx, triples=batch)
    with pytest.raises(ProtocolAbort, match="single-use"):
        eng.mul(sx, sx, triples=batch)
    masks, _ = eng.dealer.input_masks(2)
    masks.consume()
    with pytest.raises(ProtocolAbort):
        masks.consume()


def test_open_to_one_party_reveals_only_a_masked_value():
    eng = engine(8)
    x = np.array([3.5, -1.25])
    assert eng.open_to(eng.share(x), 2).tolist() == x.tolist()
    with pytest.raises(ValueError):
        eng.open_to(eng.share(x), 3)


def test_any_n_minus_1_shares_are_independent_of_the_secret():
    """Shares of 0 and of the largest value, held by any n-1 parties, have the same
    (uniform) distribution: chi-square on 64 bins of the top bits, and a two-sample KS test
    between the two secrets, for shares and MAC shares."""
    n, m = 3, 40_000
    for seed, coalition in enumerate([(0, 1), (0, 2), (1, 2)]):
        views = {}
        for secret in (0.0, BOUND):
            eng = engine(100 + seed, n)
            s = eng.share(np.full(m, secret))
            views[secret] = (s.shares[list(coalition)], s.macs[list(coalition)])
        for kind in (0, 1):
            a, b = views[0.0][kind], views[BOUND][kind]
            for row in range(n - 1):
                bins = (a[row] >> np.uint64(55)).astype(np.int64)  # top 6 of 61 bits
                counts = np.bincount(bins, minlength=64)
                assert stats.chisquare(counts).pvalue > 1e-4
                ks = stats.ks_2samp(a[row].astype(np.float64), b[row].astype(np.float64))
                assert ks.pvalue > 1e-4
            # the coalition's summed view is uniform too (it is x minus the honest share)
            tot = (a.astype(object).sum(axis=0) % P).astype(np.float64)
            totb = (b.astype(object).sum(axis=0) % P).astype(np.float64)
            assert stats.ks_2samp(tot, totb).pvalue > 1e-4


def test_secrets_are_redacted_and_rng_is_checked():
    eng = engine(9)
    s = eng.share(np.array([1.0]))
    assert "redacted" in repr(s) and str(int(s.shares[0, 0])) not in repr(s)
    assert "redacted" in repr(eng) and "redacted" in repr(eng.dealer)
    with pytest.raises(TypeError):
        SpdzEngine(rng=np.random.default_rng(0))
    with pytest.raises(ValueError):
        TrustedDealer(1)


def test_truncation_retries_at_the_edge_of_the_range_stay_exact():
    """Declared bounds 2^13 · 2^13 at 2f = 32 bits put the product at 2^58: L = 59, so about
    half of the openings c fall below 2^60 and are redone; results stay within one ulp."""
    eng = engine(10, bound=2.0**13)
    x = np.array([8191.5, -8191.75, 0.0, 1.0, -3.25, 4096.0] * 50)
    y = np.array([-8191.25, -8190.0, 5.5, -1.0, 2.0, 4095.5] * 50)
    got = eng.open(eng.mul(eng.share(x), eng.share(y)))
    assert eng.stats["truncation_retries"] > 0
    assert np.all(np.abs(got - x * y) < ULP)


def test_scalars_and_matrices_keep_their_shapes():
    eng = engine(11)
    a, b = eng.share(2.5), eng.share(-1.5)
    assert a.shares.shape == (3,)
    for out in (eng.mul(a, b), eng.mul(a, b, truncate=False), eng.add_public(a, 1.0),
                eng.mul_public(a, 0.25), eng.norm2(a)):
        assert out.shape == ()
    assert float(eng.open(eng.mul(a, b))) == -3.75
    assert float(eng.open_to(a, 0)) == 2.5
    m = eng.share(np.arange(6.0).reshape(2, 3))
    assert eng.mul(m, m).shape == (2, 3)
    assert eng.open(eng.mul(m, m)).tolist() == (np.arange(6.0) ** 2).reshape(2, 3).tolist()
    assert eng.open(m[1]).tolist() == [3.0, 4.0, 5.0] and eng.open(m[:, 0]).tolist() == [0.0, 3.0]
    assert float(eng.open(eng.dot(m, m))) == 55.0
