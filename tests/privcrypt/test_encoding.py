import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from privcrypt.encoding import FixedPoint, Quantizer
from privcrypt.rng import DeterministicRandom

MODULI = [2**61 - 1, 2**64, 2**31 - 1]


@pytest.mark.parametrize("modulus", MODULI)
@given(data=st.data(), frac=st.integers(0, 24))
def test_fixed_point_round_trip_error_bound(modulus, data, frac):
    fp = FixedPoint(frac_bits=frac, modulus=modulus, bound=min(1000.0, (modulus // 4) / 2**frac))
    x = data.draw(hnp.arrays(np.float64, st.integers(0, 40),
                             elements=st.floats(-fp.bound, fp.bound)))
    r = fp.encode(x)
    assert r.dtype == np.uint64
    if modulus != 2**64:
        assert np.all(r < np.uint64(modulus))
    # nearest rounding: |error| <= 2^-(f+1)
    assert np.all(np.abs(fp.decode(r) - x) <= 2.0 ** -(frac + 1) + 1e-12 * np.abs(x))
    rs = fp.encode(x, rounding="stochastic", rng=DeterministicRandom(1))
    assert np.all(np.abs(fp.decode(rs) - x) < 2.0**-frac + 1e-12 * np.abs(x))


def test_edge_values():
    fp = FixedPoint(frac_bits=16, modulus=2**61 - 1, bound=1000.0)
    x = np.array([0.0, fp.bound, -fp.bound, 2**-16, -(2**-16)])
    assert np.array_equal(fp.decode(fp.encode(x)), x)
    # p-1 is the encoding of -2^-16
    assert int(fp.encode(np.array([-(2.0**-16)]))[0]) == 2**61 - 2


def test_stochastic_rounding_is_unbiased():
    fp = FixedPoint(frac_bits=4, modulus=2**61 - 1, bound=10.0)
    x = np.full(200_000, 0.3)  # 0.3 * 16 = 4.8: rounds to 4 or 5
    mean = fp.decode(fp.encode(x, rounding="stochastic", rng=DeterministicRandom(7))).mean()
    assert abs(mean - 0.3) < 0.002


def test_out_of_range_and_non_finite_raise():
    fp = FixedPoint(frac_bits=16, bound=10.0)
    with pytest.raises(ValueError, match="outside"):
        fp.encode(np.array([10.5]))
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="NaN or Inf"):
            fp.encode(np.array([1.0, bad]))
    with pytest.raises(ValueError):
        fp.encode(np.array([1.0]), rounding="up")


def test_clipping_is_counted():
    fp = FixedPoint(frac_bits=8, bound=1.0)
    r, n = fp.encode_clipped(np.array([0.5, 2.0, -3.0]))
    assert n == 2
    assert fp.decode(r).tolist() == [0.5, 1.0, -1.0]


def test_declared_range_must_fit():
    with pytest.raises(ValueError):
        FixedPoint(frac_bits=16, modulus=2**31 - 1, bound=2.0**15)
    FixedPoint(frac_bits=16, modulus=2**31 - 1, bound=2.0**13)


def test_sums_within_max_terms_decode_exactly():
    fp = FixedPoint(frac_bits=16, modulus=2**31 - 1, bound=100.0)
    k = fp.max_terms()
    assert k >= 1
    x = np.full(1, -100.0)
    total = (int(fp.encode(x)[0]) * k) % fp.modulus
    assert fp.decode(np.array([total], dtype=np.uint64))[0] == -100.0 * k


@given(clip=st.floats(0.01, 100), bits=st.integers(2, 30), n=st.integers(1, 50))
def test_quantizer_sum_round_trip(clip, bits, n):
    q = Quantizer(clip=clip, bits=bits)
    rng = DeterministicRandom(n)
    xs = [(rng.uniform(16) * 2 - 1) * clip for _ in range(n)]
    qs = [q.quantize(x, rng=rng)[0] for x in xs]
    assert all(v.max() <= q.levels for v in qs)
    s = np.sum(qs, axis=0)
    assert np.all(np.abs(q.dequantize_sum(s, n) - np.sum(xs, axis=0)) <= n * q.step + 1e-9 * n * clip)


def test_quantizer_clip_and_guard():
    q = Quantizer(clip=1.0, bits=16)
    v, nclip = q.quantize(np.array([0.0, 5.0, -5.0]), rounding="nearest")
    assert nclip == 2 and v.tolist() == [32768, 65535, 0] or v.tolist() == [32767, 65535, 0]
    with pytest.raises(ValueError):
        q.quantize(np.array([2.0]), clip=False)
    q.check_sum_fits(2**16 + 1, 2**32)  # (2^16+1)(2^16-1) = 2^32-1 fits
    with pytest.raises(ValueError, match="wraps"):
        q.check_sum_fits(2**16 + 2, 2**32)  # (2^16+2)(2^16-1) >= 2^32


def test_zero_dimensional_inputs():
    fp = FixedPoint(frac_bits=16, bound=10.0)
    for v in (-1.5, 2.0, np.float64(-3.25)):
        r = fp.encode(v)
        assert r.shape == () and float(fp.decode(r)) == float(v)
