"""The in-MPC range proof of the ``spdz`` backend (privcrypt.mpc.rangeproof) against
malicious clients that choose their masked inputs freely."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from privcrypt.exceptions import MacCheckFailed
from privcrypt.mpc import P, SpdzEngine, field
from privcrypt.mpc.rangeproof import decompose, range_weights, verify_range
from privcrypt.rng import DeterministicRandom
from privcrypt.secagg import spdz as S

CLIP, F = 8.0, 16
B = int(CLIP * 2**F)  # 2^19
EVIL = 3


def honest_updates(n=5, dim=6):
    return {k: np.full(dim, 0.1 * (k + 1)) for k in range(n)}


def forge(monkeypatch, make_payload):
    """Client EVIL sends ``make_payload(self)`` = (encoded residues, bits) instead of its
    honest input, masked exactly like an honest client would."""
    honest = S.SpdzClient.input_messages

    def evil(self, n_parties):
        if self.cid != EVIL:
            return honest(self, n_parties)
        enc, bits = make_payload(self)
        plain = np.concatenate([enc, np.asarray(bits, dtype=np.uint64).reshape(-1)])
        delta = field.submod(field.to_field(plain), S.expand_mask(self._seed, plain.size))
        payload = S.pack_array(delta)
        return [S.Message(self.round_id, "input", self.cid, S.party_id(j), payload).encode()
                for j in range(n_parties)]

    monkeypatch.setattr(S.SpdzClient, "input_messages", evil)


def honest_parts(client):
    enc, _ = client._fp.encode_clipped(client._update)
    signed = np.where(enc > P // 2, enc.astype(np.int64) - P, enc.astype(np.int64))
    return enc, decompose(signed, B), signed


def assert_honest_mean(res, ups):
    keep = [k for k in ups if k != EVIL]
    assert res.survivors == frozenset(keep)
    assert np.max(np.abs(res.mean - np.mean([ups[k] for k in keep], axis=0))) <= 2.0**-F


@pytest.mark.parametrize("params", [dict(norm_bound=2.0), dict(verify_range=True)])
def test_reviewer_wrapping_attack_is_rejected(monkeypatch, params):
    """The reviewer's attack: coordinate 2^31 (32768.0, far beyond clip 8), whose square
    2^62 = 2 mod p made the opened norm ≈ 5e-10. The client cannot produce bits for it: we try
    the bits of the clipped value and the bits of 2^31 - p (what a wrap would need)."""
    ups = honest_updates()
    for attempt in ("clipped", "zero"):
        def payload(client):
            enc, bits, _ = honest_parts(client)
            enc = enc.copy()
            enc[0] = np.uint64(1 << 31)
            if attempt == "zero":
                bits = decompose(np.zeros(enc.size, dtype=np.int64), B)
            return enc, bits

        forge(monkeypatch, payload)
        res = S.SpdzAggregator(n_parties=3, frac_bits=F, clip=CLIP, rng=DeterministicRandom(1), **params).aggregate(ups)
        assert res.stats["rejected_range"] == [EVIL] and res.stats["rejected_norm"] == []
        assert_honest_mean(res, ups)


def test_non_bits_are_rejected_even_when_they_recombine(monkeypatch):
    """u = 2 has bits (0, 1, 0, ...); the client sends (2, 0, 0, ...) instead: the linear
    relation holds, only the b(b-1) = 0 check can catch it."""
    ups = honest_updates()
    ups[EVIL] = np.full(6, (2 - B) / 2**F)  # encodes exactly to v = 2 - B, u = 2

    def payload(client):
        enc, bits, signed = honest_parts(client)
        assert signed[0] == 2 - B and bits[0, :2].tolist() == [0, 1]
        bits = bits.copy()
        bits[0, :2] = [2, 0]
        return enc, bits

    forge(monkeypatch, payload)
    res = S.SpdzAggregator(clip=CLIP, frac_bits=F, verify_range=True, rng=DeterministicRandom(2)).aggregate(ups)
    assert res.stats["rejected_range"] == [EVIL]
    assert_honest_mean(res, ups)


def test_bits_that_do_not_recombine_are_rejected(monkeypatch):
    ups = honest_updates()

    def payload(client):
        enc, bits, _ = honest_parts(client)
        bits = bits.copy()
        bits[2, 5] ^= 1  # still bits, but of another value
        return enc, bits

    forge(monkeypatch, payload)
    res = S.SpdzAggregator(clip=CLIP, frac_bits=F, norm_bound=10.0, rng=DeterministicRandom(3)).aggregate(ups)
    assert res.stats["rejected_range"] == [EVIL]
    assert_honest_mean(res, ups)


def test_honest_clients_pass_and_the_mean_is_unchanged():
    ups = {k: DeterministicRandom(k).normal(3.0, 8) for k in range(4)}
    ups[1][0] = 100.0  # clipped to 8: still in range
    plain = S.SpdzAggregator(clip=CLIP, rng=DeterministicRandom(4)).aggregate(ups)
    proved = S.SpdzAggregator(clip=CLIP, verify_range=True, rng=DeterministicRandom(4)).aggregate(ups)
    assert proved.stats["rejected_range"] == [] and proved.survivors == frozenset(ups)
    assert proved.stats["range_bits"] == 21 and plain.stats["range_bits"] == 0
    assert np.max(np.abs(proved.mean - plain.mean)) <= 2.0**-F
    assert proved.stats["triples"] == 4 * 8 * 21
    assert proved.stats["bytes_up_max_client"] >= 3 * 8 * 8 * 22  # L + 1 = 22 residues per value


def test_tampered_share_in_the_proof_raises_mac_check_failed(monkeypatch):
    honest = S.verify_range

    def cheat(engine, x, bits, bound, **kw):
        bits.shares[1, 0, 0] = (bits.shares[1, 0, 0] + np.uint64(1)) % np.uint64(P)  # party 1
        return honest(engine, x, bits, bound, **kw)

    monkeypatch.setattr(S, "verify_range", cheat)
    with pytest.raises(MacCheckFailed):
        S.SpdzAggregator(clip=CLIP, verify_range=True, rng=DeterministicRandom(5)).aggregate(honest_updates())


def test_malformed_client_input_excludes_only_that_client(monkeypatch):
    """The reviewer's original PoC sends a value-only payload: with the proof enabled the
    parties expect value + bits, so the client is excluded and the round goes on."""
    ups = honest_updates()

    def short(self, n_parties):
        payload = S.pack_array(np.zeros(6, dtype=np.uint64))
        return [S.Message(self.round_id, "input", self.cid, S.party_id(j), payload).encode()
                for j in range(n_parties)]

    honest = S.SpdzClient.input_messages
    monkeypatch.setattr(S.SpdzClient, "input_messages",
                        lambda self, n: short(self, n) if self.cid == EVIL else honest(self, n))
    res = S.SpdzAggregator(clip=CLIP, norm_bound=10.0, rng=DeterministicRandom(6)).aggregate(ups)
    assert res.stats["malformed_clients"] == [EVIL]
    assert_honest_mean(res, ups)


@pytest.mark.parametrize("bound", [1, 2, 3, 5, 8, 13, 64, 100])
def test_weights_cover_exactly_zero_to_2b(bound):
    w = range_weights(bound)
    sums = {sum(a * b for a, b in zip(w, pat)) for pat in itertools.product((0, 1), repeat=len(w))}
    assert sums == set(range(2 * bound + 1))  # tight: every pattern is in range, none beyond


@given(st.integers(1, 2**40), st.data())
def test_decompose_recombines(bound, data):
    w = range_weights(bound)
    assert sum(w) == 2 * bound and len(w) == (2 * bound).bit_length()
    v = np.array(data.draw(st.lists(st.integers(-bound, bound), min_size=1, max_size=5)), dtype=np.int64)
    bits = decompose(v, bound)
    assert set(np.unique(bits).tolist()) <= {0, 1}
    assert [sum(int(b) * wj for b, wj in zip(row, w)) - bound for row in bits] == v.tolist()
    with pytest.raises(ValueError):
        decompose(np.array([bound + 1]), bound)


def test_engine_level_proof_rejects_out_of_range_even_with_consistent_field_bits():
    """v = B + 1 cannot be written with weights summing to 2B: any bit vector fails."""
    eng = SpdzEngine(2, F, DeterministicRandom(7), bound=CLIP)
    x_enc = field.to_field(np.array([B + 1, 0], dtype=np.int64))
    batch, r = eng.dealer.input_masks(2)
    x = eng.from_masked_input(batch, field.submod(x_enc, r), frac_bits=F, bound=CLIP)
    bits = decompose(np.array([B, 0]), B)  # the closest honest bits
    batch, r = eng.dealer.input_masks(bits.shape)
    bs = eng.from_masked_input(batch, field.submod(bits, r), frac_bits=0, bound=1.0)
    assert verify_range(eng, x, bs, B, label=b"t") is False
