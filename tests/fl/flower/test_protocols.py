"""The backend adapters without any process or network: the server half and the client
half exchange only bytes, and the client's state goes through its byte serialization
between every stage (as when a fresh ClientApp process serves each message)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fl.flower.protocols import (INPUT_STAGE, STAGES, client_handle, dump_masking_state, load_masking_state,
                                 make_server_round)
from privcrypt.exceptions import MalformedInput, PrivcryptError, ProtocolAbort
from privcrypt.rng import DeterministicRandom
from privcrypt.secagg import make_aggregator


def _drive(backend, updates, weights, *, drop_at_input=(), rng_seed=1, tamper=None):
    """Run one round through the adapter; returns the AggregationResult. ``tamper(stage,
    cid, reply) -> reply`` may corrupt replies."""
    dim = len(next(iter(updates.values())))
    sr = make_server_round(backend, sorted(updates), weights, dim, rng=DeterministicRandom(rng_seed))
    alive = set(updates)
    states: dict[int, bytes | None] = {c: None for c in updates}
    for stage, _cat in sr.stages:
        reqs = sr.requests(stage, alive)
        if stage == INPUT_STAGE[backend.name]:
            alive -= set(drop_at_input)
        for c, payload in reqs.items():
            if c not in alive:
                continue
            reply, states[c] = client_handle(backend.name, stage, states[c], payload, cid=c, dim=dim,
                                             update=updates[c] if stage == INPUT_STAGE[backend.name] else None,
                                             rounding="nearest", rng=DeterministicRandom(1000 + c))
            if tamper is not None:
                reply = tamper(stage, c, reply)
            try:
                sr.receive(stage, c, reply)
            except MalformedInput:
                alive.discard(c)
    return sr.finish(), states


def _updates(n, dim, seed=0):
    rs = np.random.default_rng(seed)
    return {c: rs.uniform(-1, 1, dim) for c in range(n)}


def test_masking_adapter_equals_in_process_aggregate_with_a_dropout():
    backend = make_aggregator("masking", clip=1.0, bits=16, rounding="nearest", min_clients=2,
                              rng=DeterministicRandom(7))
    ups = _updates(4, 50)
    w = {0: 10.0, 1: 20.0, 2: 30.0, 3: 15.0}
    res, states = _drive(backend, ups, w, drop_at_input=[3])
    sim = backend.aggregate(ups, w, dropped=frozenset({3}))
    assert res.survivors == sim.survivors == frozenset({0, 1, 2})
    assert np.array_equal(res.mean, sim.mean)  # nearest rounding: deterministic
    exact = sum(w[c] * ups[c] for c in (0, 1, 2)) / 60.0
    assert np.max(np.abs(res.mean - exact)) <= res.stats["atol"]
    # the survivors' secrets are wiped after unmasking; the dropped client's state remains
    # (its SuperNode never hears of the round again until the next advertise_keys)
    assert states[0] is None and states[1] is None and states[2] is None and states[3] is not None


def test_plain_adapter_is_the_weighted_mean_and_reveals_updates():
    backend = make_aggregator("plain")
    ups = _updates(3, 20, seed=2)
    w = {0: 1.0, 1: 2.0, 2: 3.0}
    sr = make_server_round(backend, [0, 1, 2], w, 20, rng=DeterministicRandom(0))
    reqs = sr.requests("plain_input", {0, 1, 2})
    for c, p in reqs.items():
        reply, state = client_handle("plain", "plain_input", None, p, cid=c, dim=20, update=ups[c])
        assert state is None
        sr.receive("plain_input", c, reply)
    res = sr.finish()
    np.testing.assert_allclose(res.mean, sum(w[c] * ups[c] for c in w) / 6.0, rtol=0, atol=1e-12)
    assert set(sr.updates) == {0, 1, 2}


def test_masking_aborts_like_simulation_when_too_many_drop():
    backend = make_aggregator("masking", clip=1.0, rounding="nearest", min_clients=2, rng=DeterministicRandom(3))
    ups = _updates(3, 10)
    w = {c: 1.0 for c in ups}
    with pytest.raises(ProtocolAbort):
        _drive(backend, ups, w, drop_at_input=[1, 2])
    with pytest.raises(ProtocolAbort):
        backend.aggregate(ups, w, dropped=frozenset({1, 2}))


def test_a_reply_from_the_wrong_sender_or_stage_is_rejected_and_the_client_dropped():
    backend = make_aggregator("masking", clip=1.0, rounding="nearest", min_clients=2, rng=DeterministicRandom(4))
    ups = _updates(4, 10)
    w = {c: 1.0 for c in ups}
    replies = {}

    def tamper(stage, cid, reply):
        replies[(stage, cid)] = reply
        if stage == "masked_input" and cid == 2:
            return replies[("masked_input", 1)]  # replay client 1's masked input as client 2's
        return reply

    res, _ = _drive(backend, ups, w, tamper=tamper)
    assert res.survivors == frozenset({0, 1, 3})
    sim = backend.aggregate(ups, w, dropped=frozenset({2}))
    assert np.array_equal(res.mean, sim.mean)


def test_masking_state_round_trip_keeps_every_field():
    backend = make_aggregator("masking", clip=1.0, rounding="nearest", rng=DeterministicRandom(5))
    sr = make_server_round(backend, [0, 1, 2], {0: 1.0, 1: 1.0, 2: 1.0}, 8, rng=DeterministicRandom(6))
    states = {}
    for stage in ("advertise_keys", "share_keys"):
        for c, p in sr.requests(stage, {0, 1, 2}).items():
            reply, states[c] = client_handle("masking", stage, states.get(c), p, cid=c, dim=8,
                                             rng=DeterministicRandom(c))
            sr.receive(stage, c, reply)
    c = load_masking_state(states[0], dim=8, rng=DeterministicRandom(0))
    assert dump_masking_state(c) == states[0]
    assert c._stage == 2 and set(c.c_pk) == {1, 2} and set(c.held) == {0}
    with pytest.raises(MalformedInput):
        load_masking_state(states[0], dim=9, rng=DeterministicRandom(0))
    with pytest.raises(MalformedInput):
        load_masking_state(states[0] + b"\x00", dim=8, rng=DeterministicRandom(0))


def test_a_stage_without_state_aborts_for_that_client():
    with pytest.raises(ProtocolAbort):
        client_handle("masking", "share_keys", None, b"", cid=0, dim=4)


def test_stage_lists_match_the_backends():
    assert [s for s, _ in STAGES["masking"]] == ["advertise_keys", "share_keys", "masked_input", "unmasking"]
    assert dict(STAGES["masking"])["masked_input"] == "train"
    with pytest.raises(ValueError):
        make_server_round(make_aggregator("spdz"), [0, 1], {0: 1.0, 1: 1.0}, 4, rng=DeterministicRandom(0))


_VALID_STATE = None


def _valid_state() -> bytes:
    global _VALID_STATE
    if _VALID_STATE is None:
        backend = make_aggregator("masking", clip=1.0, rounding="nearest", rng=DeterministicRandom(8))
        sr = make_server_round(backend, [0, 1, 2], {0: 1.0, 1: 1.0, 2: 1.0}, 6, rng=DeterministicRandom(9))
        states = {}
        for stage in ("advertise_keys", "share_keys", "masked_input"):
            for c, p in sr.requests(stage, {0, 1, 2}).items():
                reply, states[c] = client_handle("masking", stage, states.get(c), p, cid=c, dim=6,
                                                 update=np.zeros(6) if stage == "masked_input" else None,
                                                 rng=DeterministicRandom(c))
                sr.receive(stage, c, reply)
        _VALID_STATE = states[1]
    return _VALID_STATE


@given(st.binary(max_size=600))
def test_fuzz_state_parser_random_bytes(buf):
    try:
        load_masking_state(buf, dim=6, rng=DeterministicRandom(0))
    except PrivcryptError:
        pass


@given(st.data())
def test_fuzz_state_parser_mutated_valid_state(data):
    buf = bytearray(_valid_state())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    try:
        load_masking_state(bytes(buf[:cut]) if data.draw(st.booleans()) else bytes(buf), dim=6,
                           rng=DeterministicRandom(0))
    except PrivcryptError:
        pass


def _ckks_round(ups, w, *, drop=(), lie=None, fail=()):
    pytest.importorskip("tenseal")
    from privcrypt.secagg.ckks import CkksKeyDealer

    dealer = CkksKeyDealer("n4096-q60", rng=DeterministicRandom(11))
    secret, public = dealer.client_context(), dealer.server_context()
    backend = make_aggregator("ckks", rng=DeterministicRandom(12))
    dim = len(ups[0])
    sr = make_server_round(backend, sorted(ups), w, dim, rng=DeterministicRandom(13), server_context=public)
    alive = set(ups) - set(drop)
    for stage, _ in sr.stages:
        for c, p in sr.requests(stage, alive).items():
            if stage == "ckks_result" and c in fail:
                continue
            reply, state = client_handle("ckks", stage, None, p, cid=c, dim=dim, update=ups[c],
                                         rng=DeterministicRandom(c), secret_context=secret,
                                         params={"mode": "default"})
            assert state is None
            if stage == "ckks_result" and c == lie:
                reply = reply[:-8] + (np.frombuffer(reply[-8:], "<f8") + 1.0).tobytes()
            sr.receive(stage, c, reply)
    return sr.finish(), backend


def test_ckks_adapter_mean_within_atol_with_a_dropout():
    ups = _updates(4, 30, seed=3)
    w = {0: 1.0, 1: 2.0, 2: 1.0, 3: 4.0}
    res, backend = _ckks_round(ups, w, drop=[3])
    exact = sum(w[c] * ups[c] for c in (0, 1, 2)) / 4.0
    assert res.survivors == frozenset({0, 1, 2})
    assert np.max(np.abs(res.mean - exact)) <= res.stats["atol"]
    assert res.stats["decryptors"] == [0, 1]
    sim = backend.aggregate(ups, w, dropped=frozenset({3}))  # its own keys: same bound
    assert np.max(np.abs(sim.mean - exact)) <= sim.stats["atol"]


def test_ckks_adapter_refuses_disagreeing_decryptors_and_survives_one_failing():
    ups = _updates(3, 8, seed=4)
    w = {c: 1.0 for c in ups}
    with pytest.raises(ProtocolAbort):
        _ckks_round(ups, w, lie=1)
    res, _ = _ckks_round(ups, w, fail=[0])
    assert res.stats["decryptors"] == [1]
