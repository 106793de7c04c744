"""Authenticated masking (Ed25519 identities, signed key advertisements, consistency check)
through the Flower adapter, without processes: server half and client half exchange only
bytes and the client's state goes through its byte layout between every stage."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("cryptography")

from fl.flower.protocols import (INPUT_STAGE, MASKING_AUTH_STAGES, client_handle, dump_masking_state,  # noqa: E402
                                 load_masking_state, make_server_round)
from privcrypt.exceptions import MalformedInput, ProtocolAbort  # noqa: E402
from privcrypt.identity import IdentityKey  # noqa: E402
from privcrypt.rng import DeterministicRandom  # noqa: E402
from privcrypt.secagg import make_aggregator  # noqa: E402
from privcrypt.wire import Message  # noqa: E402


def _ids(n, seed=50):
    keys = {c: IdentityKey.generate(rng=DeterministicRandom(seed + c)) for c in range(n)}
    return keys, {c: k.public for c, k in keys.items()}


def _drive(backend, updates, weights, keys, enrol, *, drop_at_input=(), down=None, client_keys=None):
    """One round through the adapter. ``down(stage, cid, msg) -> msg`` may alter requests
    (a malicious server); ``client_keys`` overrides the clients' identities."""
    dim = len(next(iter(updates.values())))
    sr = make_server_round(backend, sorted(updates), weights, dim, rng=DeterministicRandom(2), enrolment=enrol)
    alive, states = set(updates), {c: None for c in updates}
    ck = keys if client_keys is None else client_keys
    for stage, _cat in sr.stages:
        reqs = sr.requests(stage, alive)
        if stage == INPUT_STAGE["masking"]:
            alive -= set(drop_at_input)
        for c, payload in reqs.items():
            if c not in alive:
                continue
            if down is not None:
                payload = down(stage, c, payload)
            reply, states[c] = client_handle("masking", stage, states[c], payload, cid=c, dim=dim,
                                             update=updates[c] if stage == "masked_input" else None,
                                             rounding="nearest", rng=DeterministicRandom(1000 + c),
                                             identity=ck.get(c), enrolment=enrol if ck.get(c) else None)
            try:
                sr.receive(stage, c, reply)
            except MalformedInput:
                alive.discard(c)
    return sr, sr.finish(), states


def _updates(n, dim, seed=0):
    rs = np.random.default_rng(seed)
    return {c: rs.uniform(-1, 1, dim) for c in range(n)}


def test_authenticated_adapter_equals_in_process_aggregate_with_a_dropout():
    keys, enrol = _ids(5)
    backend = make_aggregator("masking", clip=1.0, rounding="nearest", authenticated=True,
                              identities=keys, rng=DeterministicRandom(7))
    ups, w = _updates(5, 12), {c: 1.0 for c in range(5)}
    sr, res, states = _drive(backend, ups, w, keys, enrol, drop_at_input=[4])
    assert [s for s, _ in sr.stages] == [s for s, _ in MASKING_AUTH_STAGES]
    assert "consistency_check" in [s for s, _ in sr.stages] and res.stats["authenticated"] is True
    sim = backend.aggregate(ups, w, dropped=frozenset({4}))
    assert res.survivors == sim.survivors == frozenset({0, 1, 2, 3})
    assert np.array_equal(res.mean, sim.mean)
    assert all(states[c] is None for c in range(4)) and states[4] is not None


def test_key_substitution_by_the_server_is_detected():
    keys, enrol = _ids(3)
    backend = make_aggregator("masking", clip=1.0, rounding="nearest", authenticated=True, rng=DeterministicRandom(3))

    def swap(stage, cid, msg):  # replace neighbour 1's mask key in client 0's neighbour list
        if stage != "share_keys" or cid != 0:
            return msg
        m = Message.decode(msg)
        p = bytearray(m.payload)
        off = 4 + 4 * struct.unpack_from("<I", p, 0)[0]  # past the member list
        first = off + 4  # first record (neighbour 1): id, c_pk, s_pk, sig
        p[first + 36:first + 68] = bytes(range(32))
        return Message(m.round_id, m.stage, m.sender, m.recipient, bytes(p)).encode()

    with pytest.raises(ProtocolAbort) as exc:
        _drive(backend, _updates(3, 4), {c: 1.0 for c in range(3)}, keys, enrol, down=swap)
    assert exc.value.stage == "advertise_keys"


def test_modes_must_match_and_the_server_needs_the_enrolment():
    keys, enrol = _ids(3)
    auth = make_aggregator("masking", clip=1.0, authenticated=True, rng=DeterministicRandom(1))
    plain = make_aggregator("masking", clip=1.0, rng=DeterministicRandom(1))
    ups, w = _updates(3, 4), {c: 1.0 for c in range(3)}
    with pytest.raises(ProtocolAbort):  # clients without identity refuse an authenticated round
        _drive(auth, ups, w, keys, enrol, client_keys={})
    with pytest.raises(ProtocolAbort):  # clients with identity refuse an unauthenticated round
        _drive(plain, ups, w, keys, enrol)
    with pytest.raises(ValueError):
        make_server_round(auth, [0, 1, 2], w, 4, rng=DeterministicRandom(0))


_STATE = {}


def _auth_state() -> tuple[bytes, dict, dict]:
    """Client 1's state after the consistency check (stage 4) of a 3-client round."""
    if not _STATE:
        keys, enrol = _ids(3)
        backend = make_aggregator("masking", clip=1.0, rounding="nearest", authenticated=True,
                                  rng=DeterministicRandom(8))
        sr = make_server_round(backend, [0, 1, 2], {c: 1.0 for c in range(3)}, 6, rng=DeterministicRandom(9),
                               enrolment=enrol)
        states = {}
        for stage in ("advertise_keys", "share_keys", "masked_input", "consistency_check"):
            for c, p in sr.requests(stage, {0, 1, 2}).items():
                reply, states[c] = client_handle("masking", stage, states.get(c), p, cid=c, dim=6,
                                                 update=np.zeros(6) if stage == "masked_input" else None,
                                                 rng=DeterministicRandom(c), identity=keys[c], enrolment=enrol)
                sr.receive(stage, c, reply)
        _STATE.update(state=states[1], key=keys[1], enrol=enrol)
    return _STATE["state"], _STATE["key"], _STATE["enrol"]


def test_authenticated_state_round_trip_keeps_every_field():
    state, key, enrol = _auth_state()
    c = load_masking_state(state, dim=6, rng=DeterministicRandom(0), identity=key, enrolment=enrol)
    assert dump_masking_state(c) == state
    assert c._stage == 4 and c.u3 == frozenset({0, 1, 2}) and c.members == frozenset({0, 1, 2})
    assert c.graph[1] == frozenset({0, 2}) and c._u3_transcript
    with pytest.raises(MalformedInput):  # an authenticated state needs this node's identity
        load_masking_state(state, dim=6, rng=DeterministicRandom(0))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fuzz_authenticated_state_raises_only_malformed_input(data):
    state, key, enrol = _auth_state()
    buf = bytearray(state)
    for _ in range(data.draw(st.integers(1, 4))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    try:
        load_masking_state(bytes(buf[:cut]) if data.draw(st.booleans()) else bytes(buf), dim=6,
                           rng=DeterministicRandom(0), identity=key, enrolment=enrol)
    except MalformedInput:
        pass
