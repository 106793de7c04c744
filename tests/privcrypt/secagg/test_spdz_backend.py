"""The ``spdz`` secure-aggregation backend on its own (conformance across backends lives
in the shared conformance test)."""

import numpy as np
import pytest

from privcrypt.exceptions import MacCheckFailed, MalformedInput, ProtocolAbort, UnsupportedParameters
from privcrypt.mpc import P
from privcrypt.rng import DeterministicRandom
from privcrypt.secagg import make_aggregator
from privcrypt.secagg.spdz import SpdzAggregator, SpdzClient, SpdzComputeParty, expand_mask
from privcrypt.wire import Message, unpack_array


def updates(n=8, dim=200, seed=0, scale=1.0):
    rng = DeterministicRandom(seed)
    return {k: rng.normal(scale, dim) for k in range(n)}


def weighted_mean(ups, w, keep):
    return sum(w[k] * ups[k] for k in keep) / sum(w[k] for k in keep)


@pytest.mark.parametrize("n_parties", [2, 3, 5])
def test_mean_matches_numpy_within_atol(n_parties):
    ups = updates()
    agg = make_aggregator("spdz", n_parties=n_parties, rng=DeterministicRandom(1))
    assert isinstance(agg, SpdzAggregator) and agg.atol == 2.0**-16
    res = agg.aggregate(ups)
    assert np.max(np.abs(res.mean - np.mean(list(ups.values()), axis=0))) <= agg.atol
    assert res.survivors == frozenset(ups)
    # real bytes: every client sends one message (header + 8-byte residues) to each party
    dim = 200
    assert res.stats["bytes_up_max_client"] >= n_parties * 8 * dim
    assert res.bytes_up == sum(res.stats["bytes_up_max_client"] for _ in ups)
    assert res.bytes_down > 32 * len(ups)  # the set-up seeds count as down


def test_non_integer_weights_and_dropped_clients():
    ups = updates(n=10)
    w = {k: 0.1 + 0.37 * k for k in ups}
    agg = make_aggregator("spdz", rng=DeterministicRandom(2))
    res = agg.aggregate(ups, w, dropped=frozenset({1, 4, 7}))
    keep = [k for k in ups if k not in (1, 4, 7)]
    assert res.survivors == frozenset(keep)
    assert np.max(np.abs(res.mean - weighted_mean(ups, w, keep))) <= agg.atol
    full = agg.aggregate(ups, w)
    assert full.bytes_up > res.bytes_up and full.bytes_down == res.bytes_down  # dropped got set-up


def test_abort_below_min_clients():
    ups = updates(n=5)
    agg = make_aggregator("spdz", min_clients=3, rng=DeterministicRandom(3))
    agg.aggregate(ups, dropped=frozenset({0, 1}))  # 3 survive: fine
    with pytest.raises(ProtocolAbort) as err:
        agg.aggregate(ups, dropped=frozenset({0, 1, 2}))
    assert err.value.stage == "input"


def test_norm_bound_rejects_oversized_updates_without_opening_them():
    ups = updates(n=6, dim=100, seed=4, scale=0.1)
    ups[2] = ups[2] * 50  # norm ≈ 50
    ups[5] = ups[5] * 30
    agg = make_aggregator("spdz", norm_bound=5.0, rng=DeterministicRandom(5), record_view=True)
    res = agg.aggregate(ups)
    assert sorted(res.stats["rejected_norm"]) == [2, 5]
    keep = [0, 1, 3, 4]
    assert res.survivors == frozenset(keep)
    assert np.max(np.abs(res.mean - np.mean([ups[k] for k in keep], axis=0))) <= agg.atol
    # what party 0 received is masked: no individual update (nor its range-proof bits)
    for msg in res.stats["server_view"]:
        delta = unpack_array(Message.decode(msg).payload, dtype=np.uint64)
        assert delta.size == 100 * (1 + res.stats["range_bits"])
        assert np.mean(delta[100:] <= 1) < 0.01
        for k in ups:
            enc = np.mod(np.rint(np.clip(ups[k], -8, 8) * 2**16).astype(np.int64), P).astype(np.uint64)
            assert np.mean(delta[:100] == enc) < 0.01
    strict = make_aggregator("spdz", norm_bound=5.0, min_clients=5, rng=DeterministicRandom(6))
    with pytest.raises(ProtocolAbort) as err:
        strict.aggregate(ups)
    assert err.value.stage == "norm_check"


def test_tampering_compute_party_is_caught(monkeypatch):
    """A compute party that adds to its share of the sum (or of a client's input) is
    detected at the MAC check; no mean is returned."""
    ups = updates(n=4, dim=50)
    honest = SpdzComputeParty.weighted_sum

    def cheat(self, engine, acc, x, weight):
        out = honest(self, engine, acc, x, weight)
        out.shares[1, 7] = (out.shares[1, 7] + np.uint64(1)) % np.uint64(P)  # party 1's row
        return out

    monkeypatch.setattr(SpdzComputeParty, "weighted_sum", cheat)
    with pytest.raises(MacCheckFailed):
        make_aggregator("spdz", rng=DeterministicRandom(7)).aggregate(ups)
    with pytest.raises(MacCheckFailed):  # also during the norm check
        make_aggregator("spdz", norm_bound=100.0, rng=DeterministicRandom(8)).aggregate(ups)


def test_client_sending_different_values_to_parties_is_excluded(monkeypatch):
    ups = updates(n=4, dim=30)
    honest = SpdzClient.input_messages

    def equivocate(self, n_parties):
        msgs = honest(self, n_parties)
        if self.cid == 3:
            m = Message.decode(msgs[1])
            body = bytearray(m.payload)
            body[-1] ^= 1
            msgs[1] = Message(m.round_id, m.stage, m.sender, m.recipient, bytes(body)).encode()
        return msgs

    monkeypatch.setattr(SpdzClient, "input_messages", equivocate)
    res = make_aggregator("spdz", rng=DeterministicRandom(9)).aggregate(ups)
    assert res.stats["inconsistent_clients"] == [3] and 3 not in res.survivors


def test_messages_bind_round_and_stage():
    party = SpdzComputeParty(0, b"r" * 16, 4)
    good = Message(b"r" * 16, "input", 1, 0xFFFFFF10, b"").encode()
    other_round = Message(b"s" * 16, "input", 1, 0xFFFFFF10, b"").encode()
    with pytest.raises(MalformedInput):
        party.receive_input(other_round)
    with pytest.raises(MalformedInput):
        party.receive_input(good)  # empty payload: not a 4-vector
    assert expand_mask(b"k" * 32, 5).tolist() == expand_mask(b"k" * 32, 5).tolist()
    assert int(expand_mask(b"k" * 32, 10_000).max()) < P


def test_clipping_and_parameter_checks():
    agg = make_aggregator("spdz", clip=1.0, rng=DeterministicRandom(10))
    res = agg.aggregate({0: np.array([3.0, 0.5]), 1: np.array([-0.5, 0.5])})
    assert res.stats["clipped"] == 1 and res.mean.tolist() == [0.25, 0.5]
    with pytest.raises(UnsupportedParameters):
        make_aggregator("spdz", clip=8.0, norm_bound=1.0).aggregate({0: np.zeros(2**21)})
    with pytest.raises(ValueError):
        SpdzAggregator(n_parties=1)


def test_input_from_a_client_not_set_up_is_rejected():
    from privcrypt.wire import pack_array

    party = SpdzComputeParty(0, b"r" * 16, 4, clients=frozenset({1, 2}))
    payload = pack_array(np.zeros(4, dtype=np.uint64))
    party.receive_input(Message(b"r" * 16, "input", 1, 0xFFFFFF10, payload).encode())
    with pytest.raises(MalformedInput, match="not set up"):
        party.receive_input(Message(b"r" * 16, "input", 7, 0xFFFFFF10, payload).encode())
