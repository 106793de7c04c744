"""L2 (review of spdz-krum): a client cannot impersonate another one. The authenticated
channel's identity (``channel_sender``) must match the sender id in the message header;
both the ``spdz`` and the ``spdz-krum`` drivers pass it."""

import numpy as np
import pytest

import privcrypt.secagg.spdz as S
from privcrypt.exceptions import MalformedInput
from privcrypt.rng import DeterministicRandom
from privcrypt.secagg import make_aggregator
from privcrypt.wire import Message, pack_array


def test_receive_input_checks_the_channel_sender():
    rid = bytes(16)
    msg = Message(rid, "input", 7, S.party_id(0), pack_array(np.zeros(4, dtype=np.uint64))).encode()
    p = S.SpdzComputeParty(0, rid, 4, clients=frozenset({3, 7}))
    with pytest.raises(MalformedInput, match="claims"):
        p.receive_input(msg, channel_sender=3)
    assert p.inputs == {}
    p.receive_input(msg, channel_sender=7)
    assert list(p.inputs) == [7]
    q = S.SpdzComputeParty(0, rid, 4)
    q.receive_input(msg)  # without channel_sender: the header is trusted (as before)
    assert list(q.inputs) == [7]


@pytest.mark.parametrize("backend,kw", [("spdz", {}), ("spdz-krum", {"f": 1, "m": 3})])
@pytest.mark.parametrize("victim", [0, 4])  # sends before / after the impersonator
def test_impersonator_is_excluded_not_its_victim(monkeypatch, backend, kw, victim):
    ups = {i: np.full(4, 0.01 * (i + 1)) for i in range(6)}
    evil_id = 2
    honest = S.SpdzClient.input_messages

    def forge(self, n):
        msgs = honest(self, n)
        if self.cid != evil_id:
            return msgs
        # its own well-formed payload, under the victim's id (a forged header)
        return [Message(self.round_id, "input", victim, S.party_id(j), Message.decode(m).payload).encode()
                for j, m in enumerate(msgs)]
    monkeypatch.setattr(S.SpdzClient, "input_messages", forge)
    res = make_aggregator(backend, clip=1.0, rng=DeterministicRandom(1), **kw).aggregate(ups)
    assert res.stats["malformed_clients"] == [evil_id]
    assert victim in (res.stats["distance_clients"] if backend == "spdz-krum" else res.survivors)
    if backend == "spdz":
        ref = np.mean([ups[i] for i in ups if i != evil_id], axis=0)
        assert np.max(np.abs(res.mean - ref)) <= res.stats.get("atol", 2.0**-16) + 1e-12
