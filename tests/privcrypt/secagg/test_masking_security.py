"""Security properties of the masking backend, each against the semi-honest server whose
view (every message it received) is recorded."""

import random
import struct

import numpy as np
import pytest

from privcrypt import shamir
from privcrypt.encoding import Quantizer
from privcrypt.exceptions import InvalidTag, MalformedInput, ProtocolAbort
from privcrypt.rng import DeterministicRandom
from privcrypt.secagg import make_aggregator
from privcrypt.secagg.masking import (MASKED, SHARE, UNMASK, MaskingClient, MaskingServer,
                                     run_round)
from privcrypt.wire import Message, unpack_array


def data(n, dim, seed=0):
    rng = DeterministicRandom(seed)  # reproducible test data only
    return {i: rng.uniform(dim) * 2 - 1 for i in range(n)}


def masked_vectors(view):
    out = {}
    for raw in view:
        m = Message.decode(raw)
        if m.stage == MASKED:
            out[m.sender] = unpack_array(m.payload)
    return out


def make_round(ups, *, round_id=b"R" * 16, degree=None, threshold=None, seed=0, record=True):
    ids = sorted(ups)
    n = len(ids)
    degree = n - 1 if degree is None else degree
    threshold = threshold or max(2, (degree + 2) // 2)
    server = MaskingServer(round_id, ids, len(ups[ids[0]]), clip=1.0, bits=16, modulus_bits=32,
                           degree=degree, threshold=threshold, weights={i: 1.0 for i in ids},
                           record=record)
    root = DeterministicRandom(seed)
    clients = {i: MaskingClient(i, ups[i], rng=root.spawn(i)) for i in ids}
    return server, clients


def chi_square_uniform(words: np.ndarray, bins: int = 256) -> float:
    counts = np.bincount((words >> np.uint32(24)).astype(np.int64), minlength=bins)
    expected = words.size / bins
    return float(((counts - expected) ** 2 / expected).sum())


def test_masked_vector_is_uniform_mod_r():
    # constant inputs are the worst case: the quantized value is the same everywhere
    ups = {i: np.full(100_000, 0.25) for i in range(6)}
    agg = make_aggregator("masking", clip=1.0, record_view=True)
    res = agg.aggregate(ups)
    ys = masked_vectors(res.stats["server_view"])
    assert len(ys) == 6
    # chi-square, 255 degrees of freedom: mean 255, sd ~22.6; 400 is p < 1e-8
    for y in ys.values():
        assert y.dtype == np.uint32
        assert chi_square_uniform(y) < 400
        assert chi_square_uniform(y << np.uint32(24)) < 400  # low byte too
    # and the unmasked sum is still right
    np.testing.assert_allclose(res.mean, 0.25, atol=agg.atol)


def test_server_view_never_contains_an_individual_update():
    ups = data(8, 20_000, seed=3)
    agg = make_aggregator("masking", clip=1.0, rounding="nearest", record_view=True)
    res = agg.aggregate(ups, dropped=frozenset({2}))
    view = res.stats["server_view"]
    blob = b"".join(view)
    q = Quantizer(1.0, 16)
    for i, x in ups.items():
        qi, _ = q.quantize(x, rounding="nearest")
        for dt in (np.uint32, np.uint64, np.uint16):
            chunk = qi.astype(dt).tobytes()
            for off in (0, 4000, 36_000):
                assert chunk[off:off + 32] not in blob
        assert x.tobytes()[:64] not in blob and x.astype(np.float32).tobytes()[:64] not in blob
    ys = masked_vectors(view)
    assert set(ys) == set(range(8)) - {2}
    for v, y in ys.items():
        yf = y.astype(np.float64)
        for i, x in ups.items():
            # d = 20 000: |corr| of independent vectors has sd 0.007; 0.05 is 7 sd
            assert abs(np.corrcoef(yf, x)[0, 1]) < 0.05
            qi, _ = q.quantize(x, rounding="nearest")
            assert np.count_nonzero(y == qi.astype(np.uint32)) < 5
    # the only thing the server learns is the survivors' mean
    survivors = [i for i in ups if i != 2]
    np.testing.assert_allclose(res.mean, np.mean([ups[i] for i in survivors], axis=0),
                               atol=agg.atol)


def test_tampered_relayed_share_raises_invalid_tag():
    ups = data(5, 16)
    server, clients = make_round(ups)

    def tamper(stage, direction, cid, msg):
        if stage == MASKED and direction == "down" and cid == 3:
            m = Message.decode(msg)
            payload = bytearray(m.payload)
            payload[4 + 4 + 20] ^= 0x40  # inside the first sealed share's ciphertext
            return Message(m.round_id, m.stage, m.sender, m.recipient, bytes(payload)).encode()
        return msg

    with pytest.raises(InvalidTag):
        run_round(server, clients, intercept=tamper)


def test_share_relayed_to_the_wrong_recipient_raises_invalid_tag():
    ups = data(4, 8)
    server, clients = make_round(ups)

    def swap_sender(stage, direction, cid, msg):
        if stage == MASKED and direction == "down" and cid == 0:
            m = Message.decode(msg)
            p = bytearray(m.payload)
            # swap the sender labels of the first two relayed shares (each record: sender
            # uint32 + 102-byte sealed share); the AEAD binds sender and recipient
            a, b = p[4:8], p[4 + 106:4 + 110]
            p[4:8], p[4 + 106:4 + 110] = b, a
            return Message(m.round_id, m.stage, m.sender, m.recipient, bytes(p)).encode()
        return msg

    with pytest.raises(InvalidTag):
        run_round(server, clients, intercept=swap_sender)


def _capture_round(round_id, ups, seed):
    server, clients = make_round(ups, round_id=round_id, seed=seed)
    seen = []
    run_round(server, clients, intercept=lambda s, d, c, m: seen.append((s, d, c, m)) or m)
    server.finish()
    return seen


def test_message_replayed_from_another_round_is_rejected():
    ups = data(4, 8)
    old = _capture_round(b"A" * 16, ups, seed=1)
    old_share_up = next(m for s, d, c, m in old if s == SHARE and d == "up" and c == 0)
    old_routed = next(m for s, d, c, m in old if s == MASKED and d == "down" and c == 1)

    # 1. as sent: the framing carries the old round id
    def replay_up(stage, direction, cid, msg):
        return old_share_up if (stage == SHARE and direction == "up" and cid == 0) else msg

    server, clients = make_round(ups, round_id=b"B" * 16, seed=2)
    with pytest.raises(MalformedInput, match="another round"):
        run_round(server, clients, intercept=replay_up)

    # 2. re-framed with the new round id: the sealed shares are bound to round A
    def replay_down(stage, direction, cid, msg):
        if stage == MASKED and direction == "down" and cid == 1:
            m, new = Message.decode(old_routed), Message.decode(msg)
            return Message(new.round_id, m.stage, m.sender, m.recipient, m.payload).encode()
        return msg

    server, clients = make_round(ups, round_id=b"B" * 16, seed=2)
    with pytest.raises(InvalidTag):
        run_round(server, clients, intercept=replay_down)


def test_message_for_another_stage_or_repeated_is_rejected():
    ups = data(3, 4)
    server, clients = make_round(ups)
    cfg = server.config_message(0)
    up = clients[0].advertise_keys(cfg)
    server.receive_keys(up)
    with pytest.raises(MalformedInput):
        server.receive_keys(up)  # repeated
    with pytest.raises(ProtocolAbort):
        clients[0].advertise_keys(cfg)  # a client runs each stage once
    with pytest.raises(ProtocolAbort):
        server.receive_masked(up)  # wrong stage for the server


def test_client_refuses_to_reveal_both_shares_of_one_peer():
    ups = data(4, 4)
    server, clients = make_round(ups)

    def lie(stage, direction, cid, msg):
        if stage == UNMASK and direction == "down" and cid == 0:
            m = Message.decode(msg)
            # claim client 1 both survived and dropped
            payload = struct.pack("<3I", 2, 0, 1) + struct.pack("<2I", 1, 1)
            return Message(m.round_id, m.stage, m.sender, m.recipient, payload).encode()
        return msg

    with pytest.raises(ProtocolAbort) as exc:
        run_round(server, clients, intercept=lie)
    assert exc.value.stage == UNMASK


def test_no_secret_from_non_cryptographic_generators(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("non-cryptographic generator used")

    class NoRandomState(np.random.RandomState):
        def __init__(self, *a, **k):
            raise AssertionError("non-cryptographic generator used")

    monkeypatch.setattr(np.random, "RandomState", NoRandomState)
    for name in ("default_rng", "rand", "randn", "randint",
                 "random", "bytes", "seed", "choice", "permutation", "shuffle", "uniform",
                 "normal", "integers"):
        if hasattr(np.random, name):
            monkeypatch.setattr(np.random, name, boom)
    for name in ("random", "randint", "randrange", "getrandbits", "randbytes", "choice",
                 "shuffle", "sample", "seed", "uniform", "gauss"):
        monkeypatch.setattr(random, name, boom)
    monkeypatch.setattr(random.Random, "random", boom)
    monkeypatch.setattr(random.Random, "getrandbits", boom)
    ups = {i: np.linspace(-1, 1, 50) * (i + 1) / 10 for i in range(10)}
    res = make_aggregator("masking").aggregate(ups, dropped=frozenset({4, 7}))
    np.testing.assert_allclose(res.mean, np.mean([ups[i] for i in ups if i not in (4, 7)], axis=0),
                               atol=1e-3)


def test_all_randomness_flows_through_privcrypt_rng():
    """With a DeterministicRandom, the server's entire view (keys, sealed shares with their
    nonces, masked inputs) is reproduced byte for byte; another seed changes all of it.
    So no secret comes from anywhere but the RandomSource given."""
    ups = data(6, 32)

    def view(seed):
        agg = make_aggregator("masking", record_view=True, rng=DeterministicRandom(seed))
        return agg.aggregate(ups, dropped=frozenset({1})).stats["server_view"]

    a, b, c = view(7), view(7), view(8)
    assert a == b
    assert not set(a) & set(c)


def test_secrets_not_in_reprs():
    c = MaskingClient(0, np.zeros(3))
    assert "redacted" in repr(c)


@pytest.mark.parametrize("cut", [1, 4])
def test_malformed_masked_input_is_rejected(cut):
    ups = data(4, 16)
    server, clients = make_round(ups)

    def truncate(stage, direction, cid, msg):
        if stage == MASKED and direction == "up" and cid == 1:
            m = Message.decode(msg)
            return Message(m.round_id, m.stage, m.sender, m.recipient, m.payload[:-cut]).encode()
        return msg

    with pytest.raises(MalformedInput):
        run_round(server, clients, intercept=truncate)


def test_a_wrong_share_from_one_holder_aborts_instead_of_corrupting_the_mean():
    """Review finding: a reconstructed self-mask seed has no public check, so one holder's
    wrong share used to give a wrong mean silently. With more than t shares the server now
    compares two reconstructions and aborts."""
    ups = data(10, 64)
    server, clients = make_round(ups)
    run_round(server, clients)
    holder = sorted(server.unmask_resp)[0]
    owner = next(o for o, (kind, _) in server.unmask_resp[holder].items() if kind == 0)
    kind, y = server.unmask_resp[holder][owner]
    server.unmask_resp[holder][owner] = (kind, (y + 1) % shamir.PRIME)
    with pytest.raises(ProtocolAbort) as exc:
        server.finish()
    assert exc.value.stage == "unmasking" and "inconsistent" in str(exc.value)

