"""Tampering with any share or MAC share of an opened value is caught: zero misses."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from privcrypt.exceptions import MacCheckFailed
from privcrypt.mpc import P, Shared, SpdzEngine
from privcrypt.mpc.maccheck import MacCheck, commit, verify_opening
from privcrypt.rng import DeterministicRandom


def engine(seed=0, n=3):
    return SpdzEngine(n_parties=n, rng=DeterministicRandom(seed), bound=8.0)


def tampered(s: Shared, party: int, index: int, delta: int, mac: bool) -> Shared:
    shares, macs = s.shares.copy(), s.macs.copy()
    target = macs if mac else shares
    flat = target.reshape(s.n_parties, -1)
    flat[party, index] = np.uint64((int(flat[party, index]) + delta) % P)
    return Shared(shares, macs, s.frac_bits, s.bound, s.offset)


def revive(eng: SpdzEngine) -> None:
    """Test only: after an expected MacCheckFailed the engine refuses all further work
    (abort is final, see test_abort_is_final.py). The trials here are independent
    tamperings of one honest sharing, so each starts from a revived engine."""
    eng._mac_check.aborted = False


def test_thousands_of_random_tamperings_all_detected():
    eng = engine(1)
    x = eng.share(np.linspace(-8, 8, 8))
    pick = DeterministicRandom("tamper")
    trials = 3000
    party = pick.integers(eng.n_parties, trials)
    index = pick.integers(8, trials)
    delta = pick.integers(P - 1, trials) + 1  # any nonzero amount
    on_mac = pick.integers(2, trials)
    misses = 0
    for t in range(trials):
        bad = tampered(x, int(party[t]), int(index[t]), int(delta[t]), bool(on_mac[t]))
        try:
            eng.open(bad)
            misses += 1
        except MacCheckFailed:
            revive(eng)
    assert misses == 0
    assert np.allclose(eng.open(tampered(x, 0, 0, 0, False)), np.linspace(-8, 8, 8), atol=2.0**-17)  # a copy opens
    assert np.allclose(eng.open(x), np.linspace(-8, 8, 8), atol=2.0**-17)  # honest open passes


@given(st.sampled_from([1, 2, P - 1, 2**60, 2**32, (P - 1) // 2]), st.integers(0, 2),
       st.booleans(), st.integers(2, 5))
def test_edge_deltas_detected_for_any_party_count(delta, party, on_mac, n):
    eng = engine(delta % 1000, n)
    x = eng.share(np.array([1.0, -2.0, 0.0]))
    with pytest.raises(MacCheckFailed):
        eng.open(tampered(x, party % n, 1, delta, on_mac))


def test_consistent_share_and_mac_shift_without_the_key_is_detected():
    """Adding δ to a share and δ·g to its MAC share passes only if g = α (prob. 1/p)."""
    eng = engine(2)
    x = eng.share(np.array([3.0]))
    pick = DeterministicRandom("guess")
    for guess in pick.integers(P, 200).tolist():
        bad = tampered(x, 0, 0, 5, mac=False)
        bad = tampered(bad, 0, 0, 5 * guess % P, mac=True)
        with pytest.raises(MacCheckFailed):
            eng.open(bad)
        revive(eng)


def test_tampering_inside_multiplication_and_truncation_is_detected():
    eng = engine(3)
    x, y = eng.share(np.array([1.5, 2.0])), eng.share(np.array([-1.0, 0.5]))
    for who in range(3):
        z = eng.mul(tampered(x, who, 0, 1, mac=False), y)  # opened d is wrong
        with pytest.raises(MacCheckFailed):
            eng.open(z)
        revive(eng)
    z = eng.mul(x, y, truncate=False)
    t = eng.truncate(tampered(z, 1, 1, 7, mac=True))  # opened c of truncation is wrong
    with pytest.raises(MacCheckFailed):
        eng.open(t)
    revive(eng)
    # a tampered value that is only partially opened is still caught at the next open
    eng.mul(tampered(x, 2, 1, 3, mac=False), y)
    with pytest.raises(MacCheckFailed):
        eng.open(x)
    revive(eng)
    assert eng.open(eng.mul(x, y)).tolist() == [-1.5, 1.0]


def test_changing_sigma_after_commitment_is_detected():
    eng = engine(4)
    x = eng.share(np.array([1.0]))
    eng._partial_open(x)
    check: MacCheck = eng._mac_check
    sig = check.sigmas()
    with pytest.raises(MacCheckFailed, match="committed"):
        check.verify(tamper_sigma={1: sig[1] + 1})


def test_commitments():
    rng = DeterministicRandom(5)
    c, nonce = commit(b"sigma", rng=rng)
    assert verify_opening(c, b"sigma", nonce)
    assert not verify_opening(c, b"sigmb", nonce)
    assert not verify_opening(c, b"sigma", bytes(32))
    assert not verify_opening(c, b"sigma", nonce[:16])
    c2, nonce2 = commit(b"sigma", rng=rng)
    assert c2 != c and nonce2 != nonce  # hiding: fresh nonce each time


def test_tampering_after_public_offsets_is_detected():
    """Results that carry a public MAC offset (inputs, public additions, Beaver products,
    truncations, sums) open correctly and still catch every tampering."""
    eng = engine(7)
    x, y = eng.share(np.array([1.5, -2.0, 0.25])), eng.share(np.array([0.5, 3.0, -1.0]))
    results = {
        "input": (x, [1.5, -2.0, 0.25]),
        "add_public": (eng.add_public(x, [1.0, 2.0, -3.0]), [2.5, 0.0, -2.75]),
        "mul": (eng.mul(x, y, truncate=False), [0.75, -6.0, -0.25]),
        "mul+truncate": (eng.mul(x, y), [0.75, -6.0, -0.25]),
        "mul_public": (eng.mul_public(x, 3), [4.5, -6.0, 0.75]),
        "sum": (eng.sum(eng.add_public(x, 1.0)), 2.75),
    }
    pick = DeterministicRandom("offsets")
    for name, (s, want) in results.items():
        assert s.offset is not None, name
        assert np.allclose(eng.open(s), want, atol=2.0**-15), name
        for t in range(40):
            party, index = int(pick.integers(3)), int(pick.integers(max(s.size, 1)))
            bad = tampered(s, party, index, int(pick.integers(P - 1)) + 1, bool(t % 2))
            with pytest.raises(MacCheckFailed):
                eng.open(bad)
            revive(eng)
