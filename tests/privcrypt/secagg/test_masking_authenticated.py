"""Authenticated masking (Bonawitz et al. 2017, section 6): a malicious server that
substitutes a key, shows clients different survivor sets, or forges the survivor set is
detected; honest clients refuse with ProtocolAbort naming the stage."""

import struct

import numpy as np
import pytest

from privcrypt.exceptions import ProtocolAbort
from privcrypt.identity import IdentityKey, load_enrolment, save_enrolment, verify
from privcrypt.kex import KeyPair
from privcrypt.rng import DeterministicRandom
from privcrypt.secagg import make_aggregator
from privcrypt.secagg.masking import (ADVERTISE, CONSISTENCY, UNMASK, MaskingClient,
                                     MaskingServer, run_round, secagg_plus_parameters)
from privcrypt.secagg.masking.common import pack_ids, unpack_ids
from privcrypt.wire import Message

N = 10


def data(n, dim, seed=0):
    rng = DeterministicRandom(seed)  # reproducible test data only
    return {i: rng.uniform(dim) * 2 - 1 for i in range(n)}


def setup(n=N, seed=0, rid=b"A" * 16):
    root = DeterministicRandom(seed)
    ids = {i: IdentityKey.generate(rng=root.spawn(f"id{i}")) for i in range(n)}
    enrol = {i: k.public for i, k in ids.items()}
    p = secagg_plus_parameters(n, authenticated=True)
    ups = data(n, 8, seed)
    server = MaskingServer(rid, list(range(n)), 8, clip=1.0, bits=16, modulus_bits=32,
                           degree=p.degree, threshold=p.threshold, weights={i: 1.0 for i in range(n)},
                           enrolment=enrol)
    clients = {i: MaskingClient(i, ups[i], rng=root.spawn(i), identity=ids[i], enrolment=enrol,
                                rounding="nearest") for i in range(n)}
    return server, clients, ups


def reframe(msg, payload):
    m = Message.decode(msg)
    return Message(m.round_id, m.stage, m.sender, m.recipient, payload).encode()


def test_honest_authenticated_round_with_30_percent_dropout():
    ups = data(20, 50, seed=1)
    agg = make_aggregator("masking", authenticated=True, rng=DeterministicRandom(3))
    dropped = frozenset({0, 3, 7, 11, 15, 19})
    res = agg.aggregate(ups, dropped=dropped)
    assert res.survivors == frozenset(range(20)) - dropped and res.stats["authenticated"]
    np.testing.assert_allclose(res.mean, np.mean([ups[i] for i in res.survivors], axis=0),
                               atol=res.stats["atol"])
    assert set(agg.enrolment) == set(range(20))


def test_late_dropout_after_masked_input_still_completes():
    server, clients, ups = setup()
    run_round(server, clients, dropped={1}, dropped_late={2})
    server.finish()
    assert server.u3 == frozenset(range(N)) - {1} and 2 not in server.u4


def test_a_substituted_public_key_is_detected():
    """(a) The server replaces client 3's advertised keys with its own in the neighbour
    list it sends client 0."""
    server, clients, _ = setup()
    fake = KeyPair.generate(rng=DeterministicRandom("mallory")).public

    def swap(stage, direction, cid, msg):
        if stage == SHARE_DOWN and direction == "down" and cid == 0:
            m = Message.decode(msg)
            members, off = unpack_ids(m.payload, 0)
            p = bytearray(m.payload)
            (cnt,) = struct.unpack_from("<I", p, off)
            for i in range(cnt):
                r = off + 4 + i * (68 + 64)
                if struct.unpack_from("<I", p, r)[0] == 3:
                    p[r + 4:r + 36] = fake
            return reframe(msg, bytes(p))
        return msg

    with pytest.raises(ProtocolAbort) as exc:
        run_round(server, clients, intercept=swap)
    assert exc.value.stage == ADVERTISE and "client 3" in str(exc.value)


SHARE_DOWN = "share_keys"  # run_round's label for the stage that carries neighbour keys


def test_inconsistent_survivor_views_are_detected():
    """(b) The server tells half of the clients that client 5 dropped and the other half
    that it survived (at the consistency check)."""
    server, clients, _ = setup()

    def collect(msg):  # a malicious server keeps whatever signature it gets
        m = Message.decode(msg)
        server.consistency[m.sender] = m.payload

    server.receive_consistency = collect

    def split(stage, direction, cid, msg):
        if stage == CONSISTENCY and direction == "down" and cid % 2:
            u3, _ = unpack_ids(Message.decode(msg).payload, 0)
            return reframe(msg, pack_ids(set(u3) - {5}))
        return msg

    with pytest.raises(ProtocolAbort) as exc:
        run_round(server, clients, intercept=split)
    assert exc.value.stage in (CONSISTENCY, UNMASK)


def test_inconsistent_views_with_forged_signature_sets_are_refused_at_unmasking():
    """(b) continued: even if the server hands each group the signatures it collected on
    its own view, no group reaches t signatures from client 5's holders on one set."""
    server, clients, _ = setup()
    # run to the consistency stage by hand
    for c in range(N):
        server.receive_keys(clients[c].advertise_keys(server.config_message(c)))
    for c, m in server.neighbour_messages().items():
        server.receive_shares(clients[c].share_keys(m))
    for c, m in server.routed_messages().items():
        server.receive_masked(clients[c].masked_input(m))
    cmsgs = server.consistency_messages()
    full = server.u3
    view_b = frozenset(full - {5})
    sigs = {}
    for c, m in cmsgs.items():
        if c in (5,):
            continue
        view = view_b if c % 2 else full
        up = clients[c].consistency_check(reframe(m, pack_ids(view)))
        sigs[c] = (view, Message.decode(up).payload)
    for c in sorted(sigs):
        view = sigs[c][0]
        same = [(s, sig) for s, (v, sig) in sorted(sigs.items()) if v == view]
        payload = pack_ids(view) + struct.pack("<I", len(same)) + b"".join(
            struct.pack("<I", s) + sig for s, sig in same)
        req = Message(server.round_id, CONSISTENCY, 0xFFFFFFFF, c, payload).encode()
        with pytest.raises(ProtocolAbort) as exc:
            clients[c].unmask(req)
        assert exc.value.stage == UNMASK and "signed" in str(exc.value)


def test_forged_survivor_set_is_detected():
    """(c) The server sends an unmasking request whose survivor set differs from the one
    the clients signed (client 4 claimed dropped), with the genuine signatures."""
    server, clients, _ = setup()

    def forge(stage, direction, cid, msg):
        if stage == UNMASK and direction == "down":
            m = Message.decode(msg)
            u3, off = unpack_ids(m.payload, 0)
            return reframe(msg, pack_ids(set(u3) - {4}) + m.payload[off:])
        return msg

    with pytest.raises(ProtocolAbort) as exc:
        run_round(server, clients, intercept=forge)
    assert exc.value.stage == UNMASK and "differs" in str(exc.value)


def test_forged_signature_is_detected():
    server, clients, _ = setup()

    def corrupt(stage, direction, cid, msg):
        if stage == UNMASK and direction == "down":
            p = bytearray(Message.decode(msg).payload)
            p[-1] ^= 1
            return reframe(msg, bytes(p))
        return msg

    with pytest.raises(ProtocolAbort) as exc:
        run_round(server, clients, intercept=corrupt)
    assert exc.value.stage == UNMASK


def test_no_downgrade_and_majority_threshold():
    server, clients, _ = setup()
    plain_client = MaskingClient(0, np.zeros(8))
    with pytest.raises(ProtocolAbort):
        plain_client.advertise_keys(server.config_message(0))
    server.t = 4  # 2t <= k + 1 = 10: a server could split the holders into two views
    with pytest.raises(ProtocolAbort) as exc:
        clients[1].advertise_keys(server.config_message(1))
    assert exc.value.stage == ADVERTISE


def test_badly_signed_advertisement_is_dropped_by_the_server():
    server, clients, _ = setup()

    def bad_sig(stage, direction, cid, msg):
        if stage == ADVERTISE and direction == "up" and cid == 6:
            p = bytearray(Message.decode(msg).payload)
            p[70] ^= 1
            return reframe(msg, bytes(p))
        return msg

    run_round(server, {i: c for i, c in clients.items()}, dropped={6}, intercept=bad_sig)
    server.finish()
    assert 6 in server.rejected and 6 not in server.u3


def test_identity_keys_and_enrolment_file(tmp_path):
    k = IdentityKey.generate(rng=DeterministicRandom(1))
    sig = k.sign(b"m")
    assert verify(k.public, sig, b"m") and not verify(k.public, sig, b"n")
    assert not verify(b"x" * 32, sig, b"m") and not verify(k.public, b"short", b"m")
    assert "redacted" in repr(k)
    save_enrolment(tmp_path / "e.json", {3: k.public})
    assert load_enrolment(tmp_path / "e.json") == {3: k.public}
    (tmp_path / "bad.json").write_text("{}")
    from privcrypt.exceptions import MalformedInput
    with pytest.raises(MalformedInput):
        load_enrolment(tmp_path / "bad.json")


def test_authenticated_round_on_a_sparse_graph():
    """Sparse graph: each client checks signatures from the holders of its neighbours."""
    ups = data(40, 16, seed=5)
    agg = make_aggregator("masking", authenticated=True, degree=20, threshold=13,
                          rng=DeterministicRandom(6))
    dropped = frozenset({1, 9, 17, 25})
    res = agg.aggregate(ups, dropped=dropped)
    assert res.stats["degree"] == 20 and res.survivors == frozenset(range(40)) - dropped
    np.testing.assert_allclose(res.mean, np.mean([ups[i] for i in res.survivors], axis=0),
                               atol=res.stats["atol"])


def test_authenticated_mode_without_cryptography_names_the_extra(monkeypatch):
    import privcrypt.identity as identity

    monkeypatch.setattr(identity, "Ed25519PrivateKey", None)
    with pytest.raises(ImportError, match=r"privcrypt\[fast\]"):
        make_aggregator("masking", authenticated=True)
    with pytest.raises(ImportError, match="cryptography"):
        IdentityKey.generate()
