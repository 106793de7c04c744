"""Distributed discrete Gaussian (Kairouz, Liu & Steinke, ICML 2021): rotation, encode /
modular sum / decode round trips, noise variance, the wrap check, dropout accounting."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privcrypt.dp import RDPAccountant, load_accountant, sample_discrete_gaussian
from privcrypt.dp.distributed import (
    DDGaussConfig,
    calibrate_ddgauss,
    ddgauss_rdp,
    ddgauss_tau,
    rounded_l2_bound,
    subsampled_rdp_zhu_wang,
)
from privcrypt.dp.hadamard import fwht, padded_dim, random_signs, rotate, unrotate
from privcrypt.dp.rdp import DEFAULT_ORDERS, rdp_poisson_subsampled_gaussian, rdp_to_epsilon
from privcrypt.exceptions import MalformedInput, UnsupportedParameters
from privcrypt.rng import DeterministicRandom

SEED = bytes(range(32))


# -- rotation ---------------------------------------------------------------------------

def test_fwht_matches_the_hadamard_matrix():
    from scipy.linalg import hadamard  # Sylvester construction, the same ordering

    x = np.arange(16.0) - 3.5
    assert np.allclose(fwht(x), hadamard(16) @ x)
    with pytest.raises(ValueError):
        fwht(np.ones(6))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=300),
       st.binary(min_size=32, max_size=32))
def test_rotation_round_trip_and_norm(values, seed):
    x = np.array(values)
    y = rotate(x, seed)
    assert y.size == padded_dim(x.size)
    scale = max(1.0, float(np.abs(x).max()))
    assert np.allclose(unrotate(y, seed, x.size), x, atol=1e-9 * scale)
    assert math.isclose(np.linalg.norm(y), np.linalg.norm(x), rel_tol=1e-9, abs_tol=1e-9 * scale)


def test_signs_are_keyed_by_the_public_seed():
    a, b = random_signs(SEED, 4096), random_signs(bytes(32), 4096)
    assert set(np.unique(a)) == {-1.0, 1.0} and np.array_equal(a, random_signs(SEED, 4096))
    assert not np.array_equal(a, b) and abs(a.mean()) < 0.1
    with pytest.raises(ValueError):
        random_signs(b"short", 8)


# -- parameters and the wrap check -------------------------------------------------------

def small_plan(**kw):
    args = dict(dim=1000, clip=1.0, noise_multiplier=1.0, n_min=8, n_max=10, bits=32)
    args.update(kw)
    return DDGaussConfig(**args).plan()


def test_plan_fits_and_states_its_wrap_probability():
    plan = small_plan()
    assert plan.pad_dim == 1024
    assert plan.wrap_probability(10) <= 1e-9
    assert plan.range_bound(10) <= 2**30 - 1  # one guard bit
    assert plan.local_sigma <= 2**15 + 1e-6
    assert 1.0 <= plan.rounding_inflation < 1.01
    # the total noise of n_min shares is noise_multiplier * delta2 (integer units)
    assert math.isclose(math.sqrt(8) * plan.local_sigma, plan.delta2, rel_tol=1e-12)
    assert plan.norm2_threshold <= plan.delta2**2
    info = plan.summary()
    assert plan.modulus == 2**32 and info["wrap_probability_bound"] <= 1e-9 and info["bits"] == 32


def test_a_configuration_that_could_wrap_is_refused():
    with pytest.raises(UnsupportedParameters):  # 300 clients' rounding alone exceeds 2^7
        DDGaussConfig(dim=100, clip=1.0, noise_multiplier=1.0, n_min=200, n_max=300, bits=8).plan()
    with pytest.raises(UnsupportedParameters):  # a forced scale that does not fit
        small_plan(gamma=1e9)
    plan = small_plan()
    with pytest.raises(UnsupportedParameters):
        plan.check_round(11)
    with pytest.raises(UnsupportedParameters):
        plan.check_round(7)
    plan.check_round(9)


def test_decode_counts_wraps():
    cfg = DDGaussConfig(dim=64, clip=1.0, noise_multiplier=0.0, n_min=4, n_max=4, bits=16)
    plan = cfg.plan()
    rng = DeterministicRandom("wrap")
    # Updates chosen *after* seeing the seed can put their whole norm on one rotated
    # coordinate (the documented caveat): 4 such clients overflow the range, and the
    # decode reports it instead of returning a silently wrong sum.
    adapted = unrotate(np.eye(64)[0], SEED, 64)
    enc = [plan.encode(adapted, SEED, rng=rng) for _ in range(4)]
    assert plan.decode(sum(e.residues for e in enc), SEED, 4).suspected_wraps >= 1
    edge = np.zeros(64, dtype=np.uint64)
    edge[[3, 7]] = [2**14 + 5, 2**16 - 2**14 - 5]  # beyond the planned +-2^14
    assert plan.decode(edge, SEED, 4).suspected_wraps == 2
    # the same clients with updates independent of the seed: no wrap, exact sum
    x = np.random.default_rng(3).normal(size=64)  # data only
    x /= np.linalg.norm(x)
    enc = [plan.encode(x, SEED, rng=rng) for _ in range(4)]
    out = plan.decode(sum(e.residues for e in enc), SEED, 4)
    assert out.suspected_wraps == 0 and np.allclose(out.total, 4 * x, atol=0.01)


# -- round trips ---------------------------------------------------------------------------

def run_round(plan, xs, seed, rng, modulus=2**64):
    enc = [plan.encode(x, seed, rng=rng.spawn(i)) for i, x in enumerate(xs)]
    total = np.zeros(plan.pad_dim, dtype=np.uint64)
    for e in enc:
        assert e.residues.dtype == np.uint64 and int(e.residues.max()) < 2**plan.config.bits
        total += e.residues  # wraps mod 2^64: a multiple of 2^bits
    if modulus != 2**64:
        total &= np.uint64(modulus - 1)
    return enc, plan.decode(total, seed, len(xs))


@pytest.mark.parametrize("bits,modulus", [(32, 2**32), (20, 2**32), (64, 2**64)])
def test_round_trip_without_noise_is_within_the_rounding_error(bits, modulus):
    n, dim = 6, 1000
    plan = DDGaussConfig(dim=dim, clip=2.0, noise_multiplier=0.0, n_min=n, n_max=n, bits=bits).plan()
    gen = np.random.default_rng(1)  # data only
    xs = [gen.normal(size=dim) * 0.03 for _ in range(n)]
    xs[0] = xs[0] * 100  # clipped
    enc, out = run_round(plan, xs, SEED, DeterministicRandom("rt"), modulus)
    clipped = [x * min(1.0, 2.0 / np.linalg.norm(x)) for x in xs]
    assert [e.clipped for e in enc] == [True] + [False] * (n - 1)
    # each client's rounding moves each rotated coordinate by < 1 integer unit
    err = np.linalg.norm(out.total - sum(clipped))
    assert err <= n * math.sqrt(plan.pad_dim) / plan.gamma
    assert out.suspected_wraps == 0


def test_round_trip_with_noise_has_the_planned_variance():
    n, dim = 5, 4096
    plan = DDGaussConfig(dim=dim, clip=1.0, noise_multiplier=0.8, n_min=4, n_max=n, bits=32).plan()
    gen = np.random.default_rng(2)
    xs = [gen.normal(size=dim) * 0.01 for _ in range(n)]
    _, out = run_round(plan, xs, SEED, DeterministicRandom("noisy"))
    resid = out.total - sum(xs)
    expected = plan.noise_std(n)
    assert abs(resid.std() / expected - 1) < 0.08  # 4096 coordinates: sd of the ratio ~1.1 %
    assert abs(resid.mean()) < 4 * expected / math.sqrt(dim)


def test_sum_of_client_noise_has_the_variance_the_accountant_assumes():
    sigma, n, m = 37.5, 10, 20_000
    shares = sample_discrete_gaussian(sigma, (n, m), rng=DeterministicRandom("shares"))
    total = shares.sum(axis=0)
    # accountant: n shares of N_Z(0, sigma^2) ~ N_Z(0, n sigma^2), tau ~ 0 at this sigma
    assert ddgauss_tau(sigma, n) == 0.0
    assert abs(total.var() / (n * sigma**2) - 1) < 0.04  # sd of the estimate ~1 %


def test_encode_rejects_bad_input():
    plan = small_plan()
    with pytest.raises(ValueError):
        plan.encode(np.ones(999), SEED, rng=DeterministicRandom(0))
    with pytest.raises(ValueError):
        plan.encode(np.full(1000, np.nan), SEED, rng=DeterministicRandom(0))
    with pytest.raises(ValueError):
        plan.decode(np.zeros(1000, dtype=np.uint64), SEED, 8)


def test_encode_uses_only_privcrypt_rng(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("numpy.random used")

    for name in ("default_rng", "normal", "randint", "random", "rand", "uniform"):
        monkeypatch.setattr(np.random, name, boom)
    plan = small_plan()
    a = plan.encode(np.full(1000, 0.01), SEED, rng=DeterministicRandom(5)).residues
    b = plan.encode(np.full(1000, 0.01), SEED, rng=DeterministicRandom(5)).residues
    assert np.array_equal(a, b)


# -- accounting --------------------------------------------------------------------------

def test_unsampled_rdp_is_the_gaussian_rdp_when_tau_vanishes():
    orders = [2.0, 3.5, 10.0, 64.0]
    rdp = ddgauss_rdp(orders, l2_sensitivity=1000.0, local_sigma=500.0, n_shares=16, dim=1024)
    z = 500.0 * 4 / 1000.0
    assert np.allclose(rdp, np.ceil(orders) / (2 * z * z))
    # small local sigma: tau > 0 makes it strictly worse
    worse = ddgauss_rdp(orders, l2_sensitivity=2.0, local_sigma=1.0, n_shares=4, dim=10**6)
    assert ddgauss_tau(1.0, 4) > 0
    assert np.all(worse > np.ceil(orders) / 2 * (2.0 / (2 * 1.0)) ** 2)


def test_zhu_wang_known_answers():
    z, q = 2.0, 0.05

    def eps(a):
        return np.asarray(a, dtype=float) / (2 * z * z)

    # order 2 has no l >= 3 terms: equals the exact subsampled Gaussian (MTZ 2019)
    assert math.isclose(subsampled_rdp_zhu_wang(2, q, eps),
                        rdp_poisson_subsampled_gaussian(q, z, [2.0])[0], rel_tol=1e-9)
    # order 3, by hand from Zhu & Wang (2019) Thm. 5
    hand = math.log((1 - q) ** 2 * (3 * q - q + 1) + 3 * q * q * (1 - q) * math.exp(eps(2))
                    + 3 * q**3 * math.exp(2 * eps(3))) / 2
    assert math.isclose(subsampled_rdp_zhu_wang(3, q, eps), hand, rel_tol=1e-12)
    for a in (4, 16, 100):
        assert subsampled_rdp_zhu_wang(a, q, eps) >= rdp_poisson_subsampled_gaussian(q, z, [float(a)])[0]


def test_dropouts_are_accounted_with_the_smaller_noise():
    plan = small_plan(n_min=6, n_max=10)
    q, delta = 0.2, 1e-5
    full = plan.epsilon(50, q, delta, n_survivors=10)
    dropped = plan.epsilon(50, q, delta, n_survivors=6)
    assert dropped > full
    acc_full, acc_drop = RDPAccountant(), RDPAccountant()
    for _ in range(50):
        acc_full.step_rdp(plan.round_rdp(10, q, acc_full.orders))
        acc_drop.step_rdp(plan.round_rdp(9, q, acc_drop.orders))
    acc_drop.step_rdp(plan.round_rdp(6, q, acc_drop.orders), steps=0)
    assert acc_drop.get_epsilon(delta) > acc_full.get_epsilon(delta)
    assert math.isclose(acc_full.get_epsilon(delta), full, rel_tol=1e-9)
    with pytest.raises(ValueError):
        plan.round_rdp(0)


def test_step_rdp_composes_with_gaussian_steps_and_survives_json():
    plan = small_plan()
    acc = RDPAccountant()
    acc.step(noise_multiplier=1.1, sample_rate=0.01, steps=10)
    acc.step_rdp(plan.round_rdp(9, 0.1, acc.orders), steps=5)
    eps = acc.get_epsilon(1e-5)
    assert eps > RDPAccountant().get_epsilon(1e-5)
    assert math.isclose(acc.epsilon_after_rdp(1e-5, plan.round_rdp(9, 0.1, acc.orders), 0), eps)
    back = load_accountant(acc.to_json())
    assert back.get_epsilon(1e-5) == eps and back.custom_steps == 5
    text = acc.to_json().replace('"custom_steps": 5', '"custom_steps": -1')
    with pytest.raises(MalformedInput):
        load_accountant(text)
    with pytest.raises(ValueError):
        acc.step_rdp([1.0, 2.0])
    with pytest.raises(ValueError):
        acc.step_rdp(-np.ones(len(acc.orders)))


def test_calibration_meets_the_target_and_is_tight():
    kw = dict(dim=1000, clip=1.0, n_min=40, n_max=50, sample_rate=1.0, rounds=20)
    plan = calibrate_ddgauss(4.0, 1e-5, **kw)
    assert plan.epsilon(20, 1.0, 1e-5) <= 4.0
    smaller = DDGaussConfig(dim=1000, clip=1.0, noise_multiplier=plan.config.noise_multiplier * 0.995,
                            n_min=40, n_max=50).plan()
    assert smaller.epsilon(20, 1.0, 1e-5) > 4.0
    # q = 1, tau = 0: the same noise multiplier as the central Gaussian (up to rounding)
    central = rdp_to_epsilon(DEFAULT_ORDERS, 20 * np.asarray(DEFAULT_ORDERS) / (2 * plan.config.noise_multiplier**2), 1e-5)[0]
    assert central <= 4.0 + 1e-6


def test_rounded_norm_bound_known_answers():
    # KLS (ICML 2021) Thm. 1 / Prop. 22: min(c + sqrt(d), sqrt(c^2 + d/4 + sqrt(2 ln 1/beta)(c + sqrt(d)/2)))
    c, d, beta = 1000.0, 1024, math.exp(-0.5)
    assert rounded_l2_bound(c, 0.0, d) == c + 32.0
    assert math.isclose(rounded_l2_bound(c, beta, d), math.sqrt(c * c + 256 + 1.0 * (c + 16)), rel_tol=1e-15)
    assert math.isclose(rounded_l2_bound(0.1, beta, d), math.sqrt(0.01 + 256 + 16.1), rel_tol=1e-14)
    with pytest.raises(ValueError):
        rounded_l2_bound(1.0, 1.0, 4)
