import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from privcrypt.rng import DeterministicRandom, RandomSource, SystemRandom, resolve_rng


def test_both_sources_satisfy_protocol():
    assert isinstance(SystemRandom(), RandomSource)
    assert isinstance(DeterministicRandom(1), RandomSource)


def test_byte_frequencies_chi_square():
    data = np.frombuffer(SystemRandom().bytes(1 << 20), dtype=np.uint8)
    counts = np.bincount(data, minlength=256)
    # 255 degrees of freedom; a p-value below 1e-4 would be a real bias, not bad luck.
    assert stats.chisquare(counts).pvalue > 1e-4


def test_normals_pass_ks():
    z = SystemRandom().normal(1.0, 100_000)
    assert stats.kstest(z, "norm").pvalue > 1e-4
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02


def test_normal_std_and_shape():
    z = DeterministicRandom(3).normal(2.5, (400, 250))
    assert z.shape == (400, 250)
    assert abs(z.std() - 2.5) < 0.03
    assert DeterministicRandom(3).normal(0.0, 5).tolist() == [0.0] * 5
    with pytest.raises(ValueError):
        SystemRandom().normal(-1.0, 3)


@pytest.mark.parametrize("bound", [3 * 2**61, 2**63 + 1, 2**61 - 1, 8 * 1000003])
def test_integers_unbiased_for_awkward_bounds(bound):
    dtype = np.uint64 if bound > 2**63 else np.int64
    x = SystemRandom().integers(bound, 200_000, dtype=dtype).astype(object)
    assert min(x) >= 0 and max(x) < bound
    # Split [0, bound) into 8 equal-probability bins; a modulo-biased sampler (taking a
    # 64-bit word mod 3*2^61) would put 2/3 too much mass in the lower third of the range.
    bins = np.array([int(v) * 8 // bound for v in x])
    counts = np.bincount(bins, minlength=8)
    assert stats.chisquare(counts).pvalue > 1e-4


def test_integers_small_bound_exact_frequencies():
    x = SystemRandom().integers(3, 300_000)
    assert stats.chisquare(np.bincount(x, minlength=3)).pvalue > 1e-4


def test_integers_argument_errors():
    r = SystemRandom()
    with pytest.raises(ValueError):
        r.integers(0, 3)
    with pytest.raises(ValueError):
        r.integers(2**64 + 1, 3, dtype=np.uint64)
    with pytest.raises(ValueError):
        r.integers(2**63 + 1, 3)  # needs uint64
    assert r.integers(1, 4).tolist() == [0, 0, 0, 0]
    assert r.integers(2**64, 4, dtype=np.uint64).dtype == np.uint64


def test_uniform_range():
    u = SystemRandom().uniform(100_000)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-4


def test_permutation_is_permutation():
    p = SystemRandom().permutation(1000)
    assert sorted(p.tolist()) == list(range(1000))


@given(seed=st.one_of(st.integers(0, 2**80), st.binary(max_size=40), st.text(max_size=20)),
       n=st.integers(0, 300))
def test_deterministic_reproducible(seed, n):
    a, b = DeterministicRandom(seed), DeterministicRandom(seed)
    assert a.bytes(n) == b.bytes(n)
    assert np.array_equal(a.integers(12345, 7), b.integers(12345, 7))


def test_deterministic_seeds_and_spawn_differ():
    assert DeterministicRandom(1).bytes(32) != DeterministicRandom(2).bytes(32)
    assert DeterministicRandom(1).bytes(32) != DeterministicRandom(b"\x01").bytes(32)
    root = DeterministicRandom("root")
    assert root.spawn(0).bytes(32) != root.spawn(1).bytes(32)
    assert DeterministicRandom("root").spawn(0).bytes(32) == DeterministicRandom("root").spawn(0).bytes(32)


def test_spawn_derives_from_the_current_state():
    """Issue 13 finding 4: children used to come from the original seed, so an aggregator
    seeded once reused every client's keys in every round. Now each spawn draws from the
    parent's stream: the same label gives a different child the second time, while a fresh
    parent with the same seed reproduces the same sequence of children."""
    root = DeterministicRandom("root")
    first, second = root.spawn("client-0").bytes(32), root.spawn("client-0").bytes(32)
    assert first != second
    again = DeterministicRandom("root")
    assert again.spawn("client-0").bytes(32) == first and again.spawn("client-0").bytes(32) == second


def test_child_rng_never_repeats_whatever_the_parent():
    from privcrypt.rng import SystemRandom, child_rng

    for parent in (SystemRandom(), DeterministicRandom(5)):
        outs = {child_rng(parent, "c").bytes(32) for _ in range(20)}
        assert len(outs) == 20


def test_consecutive_outputs_differ():
    r = SystemRandom()
    assert r.bytes(32) != r.bytes(32)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_system_random_differs_across_fork():
    r = SystemRandom()
    r.bytes(16)  # the parent has used it
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: write 32 bytes from the inherited object and leave
        os.write(wfd, r.bytes(32))
        os._exit(0)
    os.close(wfd)
    child = os.read(rfd, 32)
    os.waitpid(pid, 0)
    parent = r.bytes(32)
    assert len(child) == 32 and child != parent


def test_repr_is_redacted():
    assert "NOT for secrets" in repr(DeterministicRandom(5))
    assert "5" not in repr(DeterministicRandom(5))


def test_resolve_rng_rejects_non_cryptographic_generators():
    assert isinstance(resolve_rng(None), SystemRandom)
    d = DeterministicRandom(0)
    assert resolve_rng(d) is d
    with pytest.raises(TypeError):
        resolve_rng(np.random.default_rng(0))
    with pytest.raises(TypeError):
        resolve_rng(42)


def test_next_key_is_erased_from_returned_buffer():
    r = DeterministicRandom(9)
    out = r._raw(64)
    base = out.base if out.base is not None else out
    assert not base[:32].any()  # the 32 bytes that became the next key were zeroed
