"""Regression tests for the review findings of issue 13 (each fails on the code before the
fix): isolation attack, small-order keys, crashes instead of clear errors, key reuse across
rounds, and the client's own minimum threshold."""

import struct

import numpy as np
import pytest

from privcrypt import shamir
from privcrypt.encoding import Quantizer
from privcrypt.exceptions import MalformedInput, ProtocolAbort
from privcrypt.kex import is_low_order
from privcrypt.rng import DeterministicRandom
from privcrypt.secagg import make_aggregator
from privcrypt.secagg.masking import (ADVERTISE, MASKED, SHARE, UNMASK, MaskingClient,
                                     MaskingServer, RoundConfig, neighbour_graph, run_round)
from privcrypt.wire import Message


def data(n, dim, seed=0):
    rng = DeterministicRandom(seed)  # reproducible test data only
    return {i: rng.uniform(dim) * 2 - 1 for i in range(n)}


class CollusiveServer(MaskingServer):
    """A semi-honest server that skips its own survivor-graph courtesy check, so that only
    the clients' checks stand between it and the isolation attack."""

    def _check_survivor_graph(self):
        pass


def test_isolation_attack_no_longer_recovers_the_target():
    """Finding 1: the server colludes with t-1 of the target's neighbours and makes the
    target's other neighbours drop after key sharing. Before the fix the target answered
    unmasking and the server rebuilt its exact quantized update (scripted below); now the
    target refuses and its self-mask seed cannot be rebuilt."""
    n, k, t, rid = 40, 6, 3, b"I" * 16
    ups = data(n, 16, seed=9)
    graph = neighbour_graph(range(n), k, rid)
    target = 0
    nb = sorted(graph[target])
    colluders, dropped = nb[:t - 1], nb[t - 1:]
    server = CollusiveServer(rid, list(range(n)), 16, clip=1.0, bits=16, modulus_bits=32, degree=k,
                             threshold=t, weights={i: 1.0 for i in range(n)}, record=True)
    clients = {i: MaskingClient(i, ups[i], rng=DeterministicRandom(i), rounding="nearest")
               for i in range(n)}
    secret_s = {}
    orig = MaskingClient.masked_input

    def spy(self, msg):  # the colluders hand their mask secret keys to the server
        if self.cid in colluders:
            secret_s[self.cid] = self._s
        return orig(self, msg)

    clients_spy = {i: c for i, c in clients.items()}
    for c in colluders:
        clients_spy[c].masked_input = spy.__get__(clients_spy[c])
    aborted = None
    try:
        run_round(server, clients_spy, dropped)
    except ProtocolAbort as exc:
        aborted = exc
    assert aborted is not None and aborted.stage == UNMASK and f"client {target}" in str(aborted)
    # the server holds at most t-1 shares of the target's self-mask seed: not recoverable
    b_shares = [r for r in server.unmask_resp.values() if target in r and r[target][0] == 0]
    assert len(b_shares) < t
    with pytest.raises(ProtocolAbort):
        server._secret(target, 0)


def test_isolation_target_refuses_to_send_masked_input_with_too_few_neighbours():
    """Finding 1, first check: if fewer than t *other* neighbours complete key sharing the
    client does not send its masked input at all."""
    n, k, t, rid = 12, 4, 3, b"J" * 16
    ups = data(n, 8)
    graph = neighbour_graph(range(n), k, rid)
    target = 5
    silent = set(sorted(graph[target])[:2])  # only 2 neighbours share keys with it
    server = MaskingServer(rid, list(range(n)), 8, clip=1.0, bits=16, modulus_bits=32, degree=k,
                           threshold=t, weights={i: 1.0 for i in range(n)})
    c = {i: MaskingClient(i, ups[i], rng=DeterministicRandom(i)) for i in range(n)}
    for i in range(n):
        server.receive_keys(c[i].advertise_keys(server.config_message(i)))
    nmsgs = server.neighbour_messages()
    for i in range(n):
        if i not in silent:
            server.receive_shares(c[i].share_keys(nmsgs[i]))
    routed = server.routed_messages()
    with pytest.raises(ProtocolAbort) as exc:
        c[target].masked_input(routed[target])
    assert exc.value.stage == MASKED


P = 2**255 - 19


@pytest.mark.parametrize("bad", [bytes(32), (1).to_bytes(32, "little"), (P - 1).to_bytes(32, "little"),
                                 P.to_bytes(32, "little"), (2**255).to_bytes(32, "little")])
def test_one_small_order_key_does_not_abort_the_round(bad):
    """Finding 2: a client advertising a small-order X25519 key used to make every honest
    neighbour raise InvalidKey. The server now drops it; the round completes without it."""
    assert is_low_order(bad)
    ups = data(8, 16, seed=3)
    agg = make_aggregator("masking", rounding="nearest", record_view=True, rng=DeterministicRandom(2))
    orig = MaskingClient.advertise_keys

    def evil(self, msg):
        out = orig(self, msg)
        if self.cid != 4:
            return out
        m = Message.decode(out)
        return Message(m.round_id, m.stage, m.sender, m.recipient, bad + m.payload[32:]).encode()

    MaskingClient.advertise_keys = evil
    try:
        res = agg.aggregate(ups)
    finally:
        MaskingClient.advertise_keys = orig
    assert 4 not in res.survivors and len(res.survivors) == 7
    assert res.stats["rejected"] == {4: "small-order X25519 key"}
    np.testing.assert_allclose(res.mean, np.mean([ups[i] for i in res.survivors], axis=0),
                               atol=res.stats["atol"])


def test_client_excludes_an_unusable_neighbour_key_instead_of_dying():
    """Finding 2, client side: a server that forwards a small-order key anyway does not kill
    the honest clients; they leave that neighbour out."""
    n = 6
    ups = data(n, 8)

    class Lax(MaskingServer):  # forgets to validate keys
        def receive_keys(self, msg):
            m = Message.decode(msg)
            self.keys[m.sender] = (m.payload[:32], m.payload[32:64])

    server = Lax(b"K" * 16, list(range(n)), 8, clip=1.0, bits=16, modulus_bits=32, degree=n - 1,
                 threshold=2, weights={i: 1.0 for i in range(n)})
    clients = {i: MaskingClient(i, ups[i], rng=DeterministicRandom(i), rounding="nearest")
               for i in range(n)}
    orig = clients[2].advertise_keys
    clients[2].advertise_keys = lambda msg: (lambda m: Message(
        m.round_id, m.stage, m.sender, m.recipient, bytes(32) + m.payload[32:]).encode())(
        Message.decode(orig(msg)))
    # the others exclude client 2 (no shares, no mask); it gets no shares back and stays
    # silent; the round completes over the other five
    run_round(server, clients, dropped={2})
    assert all(2 in clients[i].excluded for i in range(n) if i != 2)
    q = Quantizer(1.0, 16)
    expect = sum(q.quantize(ups[i], rounding="nearest")[0] for i in range(n) if i != 2)
    assert np.array_equal(server.finish(), (expect % 2**32).astype(np.uint32))


def test_shares_from_a_member_without_keys_is_malformed_not_keyerror():
    """Finding 3: the server raised KeyError on shares from a round member that never
    advertised keys."""
    ups = data(4, 4)
    server = MaskingServer(b"L" * 16, [0, 1, 2, 3], 4, clip=1.0, bits=16, modulus_bits=32,
                           degree=3, threshold=2, weights={i: 1.0 for i in range(4)})
    c = {i: MaskingClient(i, ups[i], rng=DeterministicRandom(i)) for i in range(4)}
    for i in range(3):
        server.receive_keys(c[i].advertise_keys(server.config_message(i)))
    server.neighbour_messages()
    msg = Message(b"L" * 16, SHARE, 3, 0xFFFFFFFF, struct.pack("<I", 0)).encode()
    with pytest.raises(MalformedInput):
        server.receive_shares(msg)


def test_crafted_share_in_finish_is_protocol_abort_not_value_error():
    """Finding 3: a holder's crafted share made shamir.combine raise a bare ValueError
    (reconstruction not a 32-byte value)."""
    ups = data(6, 8)
    ids = list(range(6))
    server = MaskingServer(b"M" * 16, ids, 8, clip=1.0, bits=16, modulus_bits=32, degree=5,
                           threshold=3, weights={i: 1.0 for i in ids})
    clients = {i: MaskingClient(i, ups[i], rng=DeterministicRandom(i)) for i in ids}
    run_round(server, clients)
    # make every reconstruction of client 0's seed land on 2^256 + 1 (not a 32-byte value)
    for h, resp in server.unmask_resp.items():
        kind, _ = resp[0]
        resp[0] = (kind, 2**256 + 1)
    with pytest.raises(ProtocolAbort) as exc:
        server.finish()
    assert exc.value.stage == UNMASK


@pytest.mark.parametrize("field,value", [("bits", 60), ("bits", 0), ("n_clients", 0),
                                         ("dim", 0), ("dim", 2**31), ("clip", float("nan")),
                                         ("threshold", 0), ("degree", 0), ("n_clients", 2**20)])
def test_out_of_range_round_config_is_malformed_input(field, value):
    """Finding 3: the client raised ValueError on an out-of-range RoundConfig."""
    cfg = RoundConfig(8, 4, 16, 32, 1.0, 2, 1.0, 3)
    setattr(cfg, field, value)
    try:
        raw = cfg.encode()
    except Exception:  # not encodable at all: nothing to send
        return
    client = MaskingClient(0, np.zeros(8))
    with pytest.raises(MalformedInput):
        client.advertise_keys(Message(b"N" * 16, ADVERTISE, 0xFFFFFFFF, 0, raw).encode())


def test_aggregator_never_reuses_key_material_across_rounds():
    """Finding 4: with a DeterministicRandom, every round used the same client keys and
    self-mask seeds (children spawned from the seed); a client dropped in one round and
    surviving in the next leaked its update."""
    ups = data(5, 8)
    agg = make_aggregator("masking", record_view=True, rng=DeterministicRandom(11))
    keys = []
    for dropped in (frozenset({1}), frozenset()):
        view = agg.aggregate(ups, dropped=dropped).stats["server_view"]
        keys.append({Message.decode(m).payload[:64] for m in view
                     if Message.decode(m).stage == ADVERTISE})
    assert len(keys[0]) == 5 and not keys[0] & keys[1]


def test_client_enforces_its_own_minimum_threshold():
    """Finding 5: clients accepted any t the server announced (t = 1: any single holder
    reconstructs every secret)."""
    ups = data(5, 4)
    ids = list(range(5))
    server = MaskingServer(b"O" * 16, ids, 4, clip=1.0, bits=16, modulus_bits=32, degree=4,
                           threshold=1, weights={i: 1.0 for i in ids})
    client = MaskingClient(0, ups[0])
    with pytest.raises(ProtocolAbort) as exc:
        client.advertise_keys(server.config_message(0))
    assert exc.value.stage == ADVERTISE
    server.t = 3
    strict_client = MaskingClient(0, ups[0], min_threshold=4)
    with pytest.raises(ProtocolAbort):
        strict_client.advertise_keys(server.config_message(0))
    MaskingClient(1, ups[1], min_threshold=3).advertise_keys(server.config_message(1))


def test_cached_lagrange_matches_shamir_combine():
    """The server's cached interpolation equals privcrypt.shamir.combine."""
    rng = DeterministicRandom("lagrange")
    server = MaskingServer(b"P" * 16, [0, 1], 1, clip=1.0, bits=8, modulus_bits=32, degree=1,
                           threshold=1, weights={0: 1.0, 1: 1.0})
    for t in (1, 3, 7):
        secret = rng.bytes(32)
        sh = shamir.split(secret, t, range(1, 12), rng=rng)
        for xs in (sorted(sh)[:t], sorted(sh)[-t:]):
            assert server._combine(xs, sh) == shamir.combine({x: sh[x] for x in xs}, t) == secret


def test_low_order_list_matches_x25519_behaviour():
    """Each listed u-coordinate gives the all-zero shared secret (so the agreement fails)
    with a random key; random public keys are never flagged."""
    from privcrypt.exceptions import InvalidKey
    from privcrypt.kex import _LOW_ORDER_U, KeyPair

    rng = DeterministicRandom("low-order")
    kp = KeyPair.generate(rng=rng)
    for u in _LOW_ORDER_U:
        for enc in (u, u + 2**255 if u + 2**255 < 2**256 else u):  # top bit is ignored
            raw = enc.to_bytes(32, "little")
            assert is_low_order(raw)
            with pytest.raises(InvalidKey):
                kp._raw_agree(raw)
    assert not any(is_low_order(KeyPair.generate(rng=rng).public) for _ in range(50))
