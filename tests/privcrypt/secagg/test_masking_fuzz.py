"""Fuzz every stage's parser of the masking protocol on both sides, in both modes: each
captured honest message is mutated (bit flips, truncation, extension, random bytes, with
the framing kept valid so the payload parser runs) and handed to a party freshly brought
to that stage. Only PrivcryptError may escape."""

import pytest

from privcrypt.exceptions import PrivcryptError
from privcrypt.identity import IdentityKey
from privcrypt.rng import DeterministicRandom
from privcrypt.secagg.masking import (ADVERTISE, CONSISTENCY, MASKED, SHARE, UNMASK,
                                     MaskingClient, MaskingServer, run_round)
from privcrypt.wire import Message

N, DIM = 5, 4
RID = b"F" * 16


def build(auth):
    root = DeterministicRandom(f"fuzz-{auth}")
    ups = {i: root.uniform(DIM) * 2 - 1 for i in range(N)}
    enrol = ids = None
    if auth:
        ids = {i: IdentityKey.generate(rng=DeterministicRandom(f"id{i}")) for i in range(N)}
        enrol = {i: k.public for i, k in ids.items()}
    server = MaskingServer(RID, list(range(N)), DIM, clip=1.0, bits=16, modulus_bits=32,
                           degree=N - 1, threshold=3, weights={i: 1.0 for i in range(N)},
                           enrolment=enrol)
    clients = {i: MaskingClient(i, ups[i], rng=DeterministicRandom(f"c{i}"),
                                identity=ids[i] if auth else None, enrolment=enrol)
               for i in range(N)}
    return server, clients


def capture(auth):
    server, clients = build(auth)
    seen = []
    run_round(server, clients, dropped={4},
              intercept=lambda st, d, c, m: seen.append((st, d, c, m)) or m)
    return seen


def mutations(msg, rng, count):
    m = Message.decode(msg)
    p = m.payload
    out = [msg[:-1], msg + b"\x00", b"", msg[:21]]
    for _ in range(count):
        kind = int(rng.integers(6))
        if kind == 0 and p:  # flip a payload bit, framing valid
            b = bytearray(p)
            i = int(rng.integers(len(b)))
            b[i] ^= 1 << int(rng.integers(8))
            q = bytes(b)
        elif kind == 1:  # truncate the payload
            q = p[:int(rng.integers(len(p) + 1))]
        elif kind == 2:  # extend it
            q = p + rng.bytes(1 + int(rng.integers(79)))
        elif kind == 3:  # random payload of a nearby length
            q = rng.bytes(max(0, len(p) + int(rng.integers(9)) - 4))
        elif kind == 4 and len(p) >= 4:  # overwrite a 32-bit word (counts, ids)
            b = bytearray(p)
            i = int(rng.integers(len(b) - 3))
            b[i:i + 4] = rng.bytes(4) if rng.integers(2) else b"\xff\xff\xff\x7f"
            q = bytes(b)
        else:  # raw bytes flip anywhere (framing too)
            b = bytearray(msg)
            b[int(rng.integers(len(b)))] ^= 0xFF
            out.append(bytes(b))
            continue
        out.append(Message(m.round_id, m.stage, m.sender, m.recipient, q).encode())
    return out


def client_at(auth, cid, stage, seen):
    """A fresh client brought to ``stage`` by replaying the captured down messages."""
    _, clients = build(auth)
    c = clients[cid]
    steps = [(ADVERTISE, c.advertise_keys), (SHARE, c.share_keys), (MASKED, c.masked_input)]
    if auth:
        steps.append((CONSISTENCY, c.consistency_check))
    steps.append((UNMASK, c.unmask))
    for st, fn in steps:
        if st == stage:
            return fn
        fn(next(m for s, d, i, m in seen if s == st and d == "down" and i == cid))
    raise AssertionError(stage)


def server_at(auth, stage, seen):
    """A fresh server brought to the point where it receives ``stage`` messages."""
    server, _ = build(auth)
    order = [(ADVERTISE, server.receive_keys, server.neighbour_messages),
             (SHARE, server.receive_shares, server.routed_messages),
             (MASKED, server.receive_masked,
              server.consistency_messages if auth else server.unmask_requests)]
    if auth:
        order.append((CONSISTENCY, server.receive_consistency, server.unmask_requests))
    order.append((UNMASK, server.receive_unmask, None))
    for st, recv, close in order:
        if st == stage:
            return server, recv
        for s, d, i, m in seen:
            if s == st and d == "up":
                recv(m)
        close()
    raise AssertionError(stage)


def run_fuzz(auth, per_message):
    seen = capture(auth)
    rng = DeterministicRandom(f"mutations-{auth}")  # test inputs only
    stages = [ADVERTISE, SHARE, MASKED] + ([CONSISTENCY] if auth else []) + [UNMASK]
    tried = 0
    for stage in stages:
        downs = [(i, m) for s, d, i, m in seen if s == stage and d == "down" and i in (0, 2)]
        for cid, msg in downs:
            for bad in mutations(msg, rng, per_message):
                fn = client_at(auth, cid, stage, seen)
                try:
                    fn(bad)
                except PrivcryptError:
                    pass
                tried += 1
        ups = [m for s, d, i, m in seen if s == stage and d == "up"][:2]
        for msg in ups:
            for bad in mutations(msg, rng, per_message):
                server, recv = server_at(auth, stage, seen)
                try:
                    recv(bad)
                    if stage == UNMASK:  # the parsed shares feed finish(): it must stay clean
                        for s, d, i, m in seen:
                            if s == UNMASK and d == "up" and m != msg:
                                recv(m)
                        server.finish()
                except PrivcryptError:
                    pass
                tried += 1
    return tried


@pytest.mark.parametrize("auth", [False, True])
def test_fuzz_every_stage_parser(auth):
    assert run_fuzz(auth, per_message=90) >= 1500
