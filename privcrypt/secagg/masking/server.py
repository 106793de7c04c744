"""The masking server: relays, sums, and unmasks; it never sees an individual update.

Stage methods, in order (each ``receive_*`` takes one client's message bytes; the others
return ``{client id: message bytes}`` to send, or the config for one client):
``config_message`` / ``receive_keys`` -> ``neighbour_messages`` / ``receive_shares`` ->
``routed_messages`` / ``receive_masked`` -> [authenticated: ``consistency_messages`` /
``receive_consistency``] -> ``unmask_requests`` / ``receive_unmask`` -> ``finish``.
Every parser raises only :class:`~privcrypt.exceptions.PrivcryptError` on bad bytes
(fuzzed); a bad message leaves the server's state unchanged.
"""

from __future__ import annotations

import struct
from typing import Iterable, Mapping

import numpy as np

from privcrypt import shamir
from privcrypt.exceptions import InvalidKey, MalformedInput, ProtocolAbort
from privcrypt.kex import KeyPair, agree, is_low_order, load_public
from privcrypt.secagg.base import check_survivors
from privcrypt.secagg.masking.common import (ADVERTISE, CONSISTENCY, MASKED, SEALED_LEN, SHARE,
                                             SIG_LEN, UNMASK, MaskExpander, advert_transcript,
                                             components, consistency_transcript, pack_ids,
                                             pair_info, records)
from privcrypt.secagg.masking.params import RoundConfig, neighbour_graph
from privcrypt.wire import SERVER, Message, pack_array, unpack_array

__all__ = ["MaskingServer"]


class MaskingServer:
    """The aggregation server of one round (see the module docstring for the stages).

    ``enrolment`` (``{client id: Ed25519 public key}``) switches on the authenticated mode:
    the server drops clients whose key advertisement is not validly signed and runs the
    consistency check. In both modes it drops clients that advertise a small-order or
    repeated X25519 key (listed in :attr:`rejected`), instead of letting one bad key abort
    the round.
    """

    def __init__(self, round_id: bytes, client_ids: Iterable[int], dim: int, *, clip: float,
                 bits: int, modulus_bits: int, degree: int, threshold: int,
                 weights: Mapping[int, float], min_clients: int = 2, record: bool = False,
                 enrolment: Mapping[int, bytes] | None = None):
        self.round_id, self.dim = round_id, int(dim)
        self.ids = sorted(int(i) for i in client_ids)
        self.clip, self.bits, self.modulus_bits = float(clip), int(bits), int(modulus_bits)
        self.degree, self.t, self.min_clients = int(degree), int(threshold), int(min_clients)
        self.dtype = np.dtype(np.uint32 if modulus_bits == 32 else np.uint64)
        w_max = max(weights[i] for i in self.ids)
        self.factor = {i: float(weights[i]) / w_max for i in self.ids}
        self.record = record
        self.enrolment = None if enrolment is None else {int(k): bytes(v) for k, v in enrolment.items()}
        self.authenticated = enrolment is not None
        self.view: list[bytes] = []  # every message received (when record)
        self.keys: dict[int, tuple[bytes, bytes]] = {}
        self._sigs: dict[int, bytes] = {}
        self.rejected: dict[int, str] = {}  # client id -> why its keys were refused
        self.shares_out: dict[int, dict[int, bytes]] = {}
        self.masked: dict[int, bool] = {}
        self.acc = np.zeros(self.dim, dtype=self.dtype)
        self.consistency: dict[int, bytes] = {}
        self.unmask_resp: dict[int, dict] = {}
        self._lagrange: dict[tuple, list[int]] = {}
        self.stage = ADVERTISE
        self._array_head = pack_array(np.zeros(self.dim, dtype=self.dtype))[:-self.dim * self.dtype.itemsize]

    def _receive(self, msg: bytes, stage: str) -> Message:
        if self.record:
            self.view.append(bytes(msg))
        if self.stage != stage:
            raise ProtocolAbort(f"message for stage {stage} while in {self.stage}", stage=self.stage)
        m = Message.decode(msg, round_id=self.round_id, stage=stage)
        if m.recipient != SERVER or m.sender not in self.factor:
            raise MalformedInput("message not from a client of this round to the server")
        return m

    def _to(self, cid: int, stage: str, payload: bytes) -> bytes:
        return Message(self.round_id, stage, SERVER, cid, payload).encode()

    # stage 1 ------------------------------------------------------------------------
    def config_message(self, cid: int) -> bytes:
        """The public round configuration for client ``cid``."""
        cfg = RoundConfig(self.dim, len(self.ids), self.bits, self.modulus_bits, self.clip,
                          self.t, self.factor[cid], self.degree, self.authenticated)
        return self._to(cid, ADVERTISE, cfg.encode())

    def receive_keys(self, msg: bytes) -> None:
        """A client's public keys. Small-order, repeated or (authenticated) badly signed
        keys put the client in :attr:`rejected` (it takes no further part)."""
        m = self._receive(msg, ADVERTISE)
        size = 64 + (SIG_LEN if self.authenticated else 0)
        if m.sender in self.keys or m.sender in self.rejected or len(m.payload) != size:
            raise MalformedInput("repeated or malformed key advertisement")
        c_pk, s_pk = m.payload[:32], m.payload[32:64]
        used = {pk for pair in self.keys.values() for pk in pair}
        if is_low_order(c_pk) or is_low_order(s_pk):
            self.rejected[m.sender] = "small-order X25519 key"
        elif c_pk == s_pk or c_pk in used or s_pk in used:
            self.rejected[m.sender] = "X25519 key repeated"
        elif self.authenticated:
            from privcrypt.identity import verify
            pk = self.enrolment.get(m.sender)
            if pk is None or not verify(pk, m.payload[64:], advert_transcript(
                    self.round_id, m.sender, c_pk, s_pk)):
                self.rejected[m.sender] = "key advertisement not signed by the enrolled identity"
        if m.sender not in self.rejected:
            self.keys[m.sender] = (c_pk, s_pk)
            if self.authenticated:
                self._sigs[m.sender] = m.payload[64:]

    def neighbour_messages(self) -> dict[int, bytes]:
        """Build the neighbour graph over the clients with valid keys (U1) and send each
        its neighbours' keys (authenticated: signed, with the member list)."""
        check_survivors(len(self.keys), max(self.min_clients, self.t + 1), ADVERTISE)
        self.u1 = sorted(self.keys)
        self.graph = neighbour_graph(self.u1, self.degree, self.round_id)
        self.stage = SHARE
        head = pack_ids(self.u1) if self.authenticated else b""
        out = {}
        for i in self.u1:
            recs = [struct.pack("<I", v) + self.keys[v][0] + self.keys[v][1] + self._sigs.get(v, b"")
                    for v in sorted(self.graph[i])]
            out[i] = self._to(i, ADVERTISE, head + struct.pack("<I", len(recs)) + b"".join(recs))
        return out

    # stage 2 ------------------------------------------------------------------------
    def receive_shares(self, msg: bytes) -> None:
        """A client's sealed shares, one per neighbour it accepted."""
        m = self._receive(msg, SHARE)
        if m.sender not in self.graph:
            raise MalformedInput(f"shares from client {m.sender}, which has no keys in this round")
        if m.sender in self.shares_out:
            raise MalformedInput("repeated share message")
        routed = {}
        for r in records(m.payload, 4 + SEALED_LEN):
            (v,) = struct.unpack_from("<I", r, 0)
            if v not in self.graph[m.sender] or v in routed:
                raise MalformedInput("share addressed to a non-neighbour")
            routed[v] = bytes(r[4:])
        self.shares_out[m.sender] = routed

    def routed_messages(self) -> dict[int, bytes]:
        """Relay the shares along the active edges (both ends sent each other shares); those
        form the graph whose masks cancel."""
        self.u2 = frozenset(self.shares_out)
        check_survivors(len(self.u2), max(self.min_clients, self.t + 1), SHARE)
        self.active = {u: frozenset(v for v in self.shares_out[u]
                                    if v in self.shares_out and u in self.shares_out[v])
                       for u in self.u2}
        self.stage = MASKED
        inbox: dict[int, list[bytes]] = {v: [] for v in self.u2}
        for u in sorted(self.u2):
            for v in sorted(self.active[u]):
                inbox[v].append(struct.pack("<I", u) + self.shares_out[u][v])
        self.shares_out = {}
        return {v: self._to(v, SHARE, struct.pack("<I", len(r)) + b"".join(r)) for v, r in inbox.items()}

    # stage 3 ------------------------------------------------------------------------
    def receive_masked(self, msg: bytes) -> None:
        """Add a client's masked vector (mod R) to the running sum."""
        m = self._receive(msg, MASKED)
        if m.sender not in self.u2 or m.sender in self.masked:
            raise MalformedInput("masked input from a client outside the round or repeated")
        head = self._array_head
        if len(m.payload) != len(head) + self.dim * self.dtype.itemsize or not m.payload.startswith(head):
            unpack_array(m.payload, dtype=self.dtype, shape=(self.dim,))  # raises the precise error
            raise MalformedInput("masked input is not a vector of the round's shape")
        # validated header: add straight from the message buffer (no copy); wraps mod R
        self.acc += np.frombuffer(m.payload, dtype=self.dtype, offset=len(head))
        self.masked[m.sender] = True

    def _check_survivor_graph(self) -> None:
        """Abort before any share is revealed unless every survivor keeps at least t
        surviving other neighbours (else its own check refuses) and the survivors' graph
        is connected (masks cancel only within a component: unmasking a split graph would
        reveal each component's sum)."""
        for u in sorted(self.u3):
            left = len(self.active[u] & self.u3)
            if left < self.t:
                raise ProtocolAbort(f"client {u} has {left} surviving neighbours, threshold "
                                    f"{self.t}; unmasking could isolate it", stage=MASKED)
        if len(components(self.u3, self.active)) > 1:
            raise ProtocolAbort("the survivors' neighbour graph is disconnected; unmasking "
                                "would reveal partial sums", stage=MASKED)

    def _close_masked(self) -> None:
        self.u3 = frozenset(self.masked)
        check_survivors(len(self.u3), max(self.min_clients, self.t + 1), MASKED)
        self._check_survivor_graph()

    # stage 3b (authenticated) ---------------------------------------------------------
    def consistency_messages(self) -> dict[int, bytes]:
        """Authenticated mode: send every survivor the survivor set U3 to sign."""
        if not self.authenticated:
            raise ProtocolAbort("no consistency check in an unauthenticated round", stage=CONSISTENCY)
        self._close_masked()
        self.stage = CONSISTENCY
        body = pack_ids(self.u3)
        return {v: self._to(v, MASKED, body) for v in sorted(self.u3)}

    def receive_consistency(self, msg: bytes) -> None:
        """A survivor's signature on U3 (checked against its enrolled key)."""
        m = self._receive(msg, CONSISTENCY)
        if m.sender not in self.u3 or m.sender in self.consistency or len(m.payload) != SIG_LEN:
            raise MalformedInput("consistency signature from outside the survivors, repeated or "
                                 "malformed")
        from privcrypt.identity import verify
        if not verify(self.enrolment[m.sender], m.payload,
                      consistency_transcript(self.round_id, self.u3)):
            raise MalformedInput(f"invalid consistency signature from client {m.sender}")
        self.consistency[m.sender] = bytes(m.payload)

    # stage 4 ------------------------------------------------------------------------
    def unmask_requests(self) -> dict[int, bytes]:
        """Ask each survivor (authenticated: each that signed U3) for its shares."""
        if self.authenticated:
            if self.stage != CONSISTENCY:
                raise ProtocolAbort("unmasking before the consistency check", stage=CONSISTENCY)
            self.u4 = frozenset(self.consistency)
            check_survivors(len(self.u4), max(self.min_clients, self.t), CONSISTENCY)
            self.stage = UNMASK
            u3 = pack_ids(self.u3)
            recs = {s: struct.pack("<I", s) + self.consistency[s] for s in self.u4}
            every = struct.pack("<I", len(recs)) + b"".join(recs[s] for s in sorted(recs))
            complete = self.degree >= len(self.u1) - 1
            out = {}
            for v in sorted(self.u4):
                if complete:  # every signer is within two hops
                    body = every
                else:  # signers among the holders of v's neighbours
                    near = set().union(*(self.graph[u] | {u} for u in self.active[v] | {v}))
                    sig = [recs[s] for s in sorted(near & self.u4)]
                    body = struct.pack("<I", len(sig)) + b"".join(sig)
                out[v] = self._to(v, CONSISTENCY, u3 + body)
            return out
        self._close_masked()
        self.u4 = self.u3
        self.stage = UNMASK
        out = {}
        for v in sorted(self.u3):
            nb = self.active[v]
            out[v] = self._to(v, MASKED, pack_ids((nb & self.u3) | {v}) + pack_ids(nb - self.u3))
        return out

    def receive_unmask(self, msg: bytes) -> None:
        """A survivor's shares: of ``b`` for surviving owners, of the mask key for dropped."""
        m = self._receive(msg, UNMASK)
        if m.sender not in self.u4 or m.sender in self.unmask_resp:
            raise MalformedInput("unmasking response from outside the survivors or repeated")
        resp = {}
        for r in records(m.payload, 4 + 1 + 33):
            owner, kind = struct.unpack_from("<IB", r, 0)
            if kind not in (0, 1) or owner in resp:
                raise MalformedInput("bad unmasking record")
            if (kind == 0) != (owner in self.u3) or owner not in (self.active[m.sender] | {m.sender}):
                raise MalformedInput("unmasking share of the wrong kind or owner")
            resp[owner] = (kind, int.from_bytes(r[5:], "big"))
        self.unmask_resp[m.sender] = resp

    def _secret(self, owner: int, kind: int) -> bytes:
        pts = {h + 1: resp[owner][1] for h, resp in self.unmask_resp.items()
               if owner in resp and resp[owner][0] == kind}
        what = "self-mask seed" if kind == 0 else "mask key"
        if len(pts) < self.t:
            raise ProtocolAbort(f"{len(pts)} shares of client {owner}'s {what}, threshold {self.t}",
                                stage=UNMASK)
        # Integrity: with more than t shares, two different t-subsets must agree. One wrong
        # share (a faulty or malicious holder) changes the two reconstructions by different
        # Lagrange multiples, so it is caught; with exactly t shares it cannot be.
        xs = sorted(pts)
        try:
            secret = self._combine(xs[:self.t], pts)
            other = self._combine(xs[-self.t:], pts) if len(xs) > self.t else secret
        except ValueError:  # not a 32-byte value: some holder sent a crafted share
            other, secret = None, b""
        if other != secret:
            raise ProtocolAbort(f"inconsistent shares of client {owner}'s {what} (a holder sent a "
                                "wrong share)", stage=UNMASK)
        return secret

    def _combine(self, xs: list[int], pts: dict[int, int]) -> bytes:
        """Lagrange interpolation at 0 (as :func:`privcrypt.shamir.combine`), with the
        coefficients of each x-set cached: most owners are answered by the same holders,
        so each further secret costs t multiplications instead of O(t^2)."""
        key = tuple(xs)
        lam = self._lagrange.get(key)
        if lam is None:
            p = shamir.PRIME
            lam = []
            for i, xi in enumerate(xs):
                num, den = 1, 1
                for j, xj in enumerate(xs):
                    if i != j:
                        num = num * xj % p
                        den = den * (xj - xi) % p
                lam.append(num * pow(den, -1, p) % p)
            self._lagrange[key] = lam
        value = sum(l * (pts[x] % shamir.PRIME) for l, x in zip(lam, xs)) % shamir.PRIME
        return shamir.int_to_secret(value)

    def finish(self) -> np.ndarray:
        """Remove all masks; return ``sum q_u mod R`` over the survivors U3 (exact).
        ``ProtocolAbort`` (stage ``unmasking``) when shares are missing or inconsistent."""
        if self.stage != UNMASK:
            raise ProtocolAbort("finish before the unmasking stage", stage=self.stage)
        total = self.acc  # the round is over: unmask in place
        prg = MaskExpander(self.dim, self.dtype)
        recovered_b = {u: self._secret(u, 0) for u in sorted(self.u3)}
        dropped = sorted(u for u in self.u2 - self.u3 if self.active[u] & self.u3)
        recovered_s = {u: self._secret(u, 1) for u in dropped}
        for u, b in recovered_b.items():
            total -= prg.expand(b)
        pk_cache: dict = {}
        for u, sk in recovered_s.items():
            try:
                kp = KeyPair.from_private_bytes(sk)
            except InvalidKey:
                kp = None
            if kp is None or kp.public != self.keys[u][1]:
                raise ProtocolAbort(f"reconstructed mask key of client {u} does not match its "
                                    "public key (corrupt shares)", stage=UNMASK)
            for v in sorted(self.active[u] & self.u3):
                if v not in pk_cache:
                    pk_cache[v] = load_public(self.keys[v][1])
                seed = agree(kp, pk_cache[v], salt=self.round_id, info=pair_info(b"mask", u, v))
                mask = prg.expand(seed)
                if v < u:  # v added +mask
                    total -= mask
                else:
                    total += mask
        self.stage = "done"
        return total

    def survivors_weight(self) -> float:
        """``sum f_u`` over the survivors U3."""
        return sum(self.factor[u] for u in self.u3)
