"""``masking``: dropout-tolerant secure aggregation by pairwise masks with secret-shared seeds.

The protocol of Bonawitz et al. (CCS 2017, "Practical Secure Aggregation for
Privacy-Preserving Machine Learning"), run on a sparse neighbour graph as in SecAgg+
(Bell et al., CCS 2020). Four stages, each a round trip of ``privcrypt.wire.Message`` bytes
carrying the 16-byte round id and the stage name:

1. ``advertise_keys`` — the server sends each client the public round configuration; each
   client answers with two fresh X25519 public keys: ``c`` (to encrypt shares) and ``s``
   (to agree pairwise mask seeds). The server picks a neighbour graph of degree k and sends
   each client its neighbours' public keys.
2. ``share_keys`` — each client u draws a 256-bit self-mask seed ``b_u`` and Shamir-shares
   ``b_u`` and its ``s`` secret key t-of-(k+1) among its neighbours and itself
   (:mod:`privcrypt.shamir`). Each neighbour's shares are sealed with AES-256-GCM under
   ``HKDF(X25519(c_u, c_v), salt=round id)`` with the round id, stage, sender and recipient
   as associated data; the server only relays the ciphertexts.
3. ``masked_input`` — each client quantizes its (weight-scaled) update to ``bits``-bit
   integers q_u and sends ``y_u = q_u + PRG(b_u) + sum_{v in N(u), u<v} PRG(s_uv)
   - sum_{v in N(u), v<u} PRG(s_uv) mod R`` with ``s_uv = HKDF(X25519(s_u, s_v))`` and PRG =
   AES-256-CTR keyed by the 256-bit seed. Dropped clients go silent here.
4. ``unmasking`` — if the survivors' neighbour graph is disconnected the server aborts
   (unmasking would reveal each component's partial sum). Otherwise it tells each survivor
   which of its neighbours survived and which dropped; the survivor returns its share of
   ``b`` for each survivor and of ``s`` for each dropped neighbour (never both for one
   client). The server reconstructs, removes the
   self masks of survivors and the pairwise masks that survivors shared with dropped
   clients, and obtains ``sum q_u mod R`` over the survivors, which the overflow guard
   ``n (2^bits - 1) < R`` (checked before the round) makes exact.

Threat model: semi-honest (honest-but-curious) server colluding with fewer than ``t``
clients learns nothing about an individual update beyond the survivors' sum. Each masked
vector is uniform mod R on its own. A *malicious* server is NOT protected against: it can
lie about who dropped (telling some holders that u dropped and others that u survived) to
gather both ``b_u`` and ``s_u``, and, since client public keys are not authenticated (no
PKI, no signatures), it can hand a client invented neighbours, decrypt its shares and
remove every mask itself, for any threshold. That needs signed key advertisements and
Bonawitz's consistency-check round, which are not implemented. Client-to-server messages are not authenticated
(run it over TLS); relayed shares are.

Dropout: a round completes when at least ``max(min_clients, t)`` clients send their masked
input, the survivors' neighbour graph is connected, and, for every client whose secret
must be reconstructed, at least t of its k+1 share holders answer the unmasking stage;
otherwise ``ProtocolAbort`` names the stage and nothing is returned.

Weights (public, e.g. sample counts): client u scales its update by ``f_u = w_u / w_max``
(``w_max``: the largest weight in the round, announced by the server) *before*
quantization, so ``|f_u x_u| <= clip`` still holds; the server divides the recovered sum by
``sum f_u`` over the survivors. With equal weights the error of each coordinate of the
mean is below one quantization step (``atol``); with unequal weights it is below
``atol * n_survivors / sum f_u`` (reported per round as ``stats["atol"]``).
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Iterable, Mapping

import numpy as np

import os

from privcrypt import aead, shamir
from privcrypt.encoding import Quantizer
from privcrypt.exceptions import MalformedInput, ProtocolAbort
from privcrypt.keystream import BACKEND as KEYSTREAM_BACKEND
from privcrypt.keystream import aes_ctr_keystream
from privcrypt.kex import KeyPair, agree, load_public
from privcrypt.rng import RandomSource, resolve_rng
from privcrypt.secagg.base import (AggregationResult, SecureAggregator, check_survivors,
                                   validate_round_inputs)
from privcrypt.secagg.sim import RoundLog
from privcrypt.wire import SERVER, Message, pack_array, unpack_array

PRG_BACKEND = KEYSTREAM_BACKEND  # which AES-CTR implementation expands masks

__all__ = [
    "MaskExpander",
    "PRG_BACKEND",
    "MaskingAggregator",
    "MaskingClient",
    "MaskingServer",
    "RoundConfig",
    "neighbour_graph",
    "default_degree",
    "default_threshold",
    "expand_mask",
    "STAGES",
    "run_round",
]

ADVERTISE, SHARE, MASKED, UNMASK = "advertise_keys", "share_keys", "masked_input", "unmasking"
STAGES = (ADVERTISE, SHARE, MASKED, UNMASK)
_MAX_ID = 0xFFFFFFFD  # wire ids 0xFFFFFFFE/0xFFFFFFFF are BROADCAST/SERVER
_PT = struct.Struct("<II")  # plaintext of a sealed share starts with (sender, recipient)
_SEALED_LEN = aead.OVERHEAD + _PT.size + 2 * shamir.SHARE_BYTES


# -- parameters -------------------------------------------------------------------------

def default_degree(n: int) -> int:
    """Neighbours per client: the complete graph up to 32 clients, else ``2 ceil(log2 n)``
    (SecAgg+'s O(log n) regime; 14 for 100 clients, 20 for 1000)."""
    if n <= 32:
        return max(0, n - 1)
    return min(n - 1, 2 * math.ceil(math.log2(n)))


def default_threshold(holders: int) -> int:
    """Shamir threshold for ``holders = degree + 1`` share holders: ``ceil(holders / 3)``
    (at least 2 when possible). It tolerates about two thirds of a neighbourhood dropping
    and resists fewer than t colluding clients in the semi-honest model. With the default
    degree, a round in which 30 % of the clients drop at random aborts (some neighbourhood
    below t, or the survivors' graph split) with probability about 1.5 % at 100 clients,
    3 % at 50 or 200 and 4 % at 1000 (simulated over random graphs and dropout sets).
    Raise it above ``holders / 2`` to stop a malicious server from collecting both kinds of
    share for one client."""
    return min(holders, max(2, math.ceil(holders / 3)))


def neighbour_graph(ids: Iterable[int], degree: int, round_id: bytes) -> dict[int, frozenset[int]]:
    """A k-regular ring-lattice (Harary) graph on a public pseudo-random ordering of the
    clients: order by SHA-256(round id || id) and join each client to the ``degree/2``
    nearest on either side. ``degree >= n-1`` gives the complete graph; odd degrees below
    n-1 are rounded up to even. The graph is public (no secret randomness)."""
    ids = sorted(int(i) for i in ids)
    n = len(ids)
    if degree >= n - 1:
        return {i: frozenset(j for j in ids if j != i) for i in ids}
    half = (int(degree) + 1) // 2
    order = sorted(ids, key=lambda i: hashlib.sha256(b"privcrypt/secagg/graph" + round_id
                                                     + i.to_bytes(4, "little")).digest())
    nbrs: dict[int, set[int]] = {i: set() for i in ids}
    for pos, i in enumerate(order):
        for j in range(1, half + 1):
            a, b = order[(pos + j) % n], order[(pos - j) % n]
            nbrs[i].update((a, b))
            nbrs[a].add(i)
            nbrs[b].add(i)
    return {i: frozenset(s - {i}) for i, s in nbrs.items()}


class RoundConfig:
    """Public parameters of one round, sent by the server to each client."""

    _FMT = struct.Struct("<IIBBdId")

    def __init__(self, dim: int, n_clients: int, bits: int, modulus_bits: int, clip: float,
                 threshold: int, weight_factor: float):
        self.dim, self.n_clients, self.bits = int(dim), int(n_clients), int(bits)
        self.modulus_bits, self.clip = int(modulus_bits), float(clip)
        self.threshold, self.weight_factor = int(threshold), float(weight_factor)

    @property
    def dtype(self):
        return np.dtype(np.uint32 if self.modulus_bits == 32 else np.uint64)

    def encode(self) -> bytes:
        return self._FMT.pack(self.dim, self.n_clients, self.bits, self.modulus_bits, self.clip,
                              self.threshold, self.weight_factor)

    @classmethod
    def decode(cls, buf: bytes) -> "RoundConfig":
        if len(buf) != cls._FMT.size:
            raise MalformedInput("bad round configuration length")
        cfg = cls(*cls._FMT.unpack(buf))
        if (cfg.modulus_bits not in (32, 64) or not 1 <= cfg.bits < cfg.modulus_bits
                or not (math.isfinite(cfg.clip) and cfg.clip > 0) or cfg.threshold < 1
                or not (0 < cfg.weight_factor <= 1) or cfg.dim < 1):
            raise MalformedInput("round configuration out of range")
        Quantizer(cfg.clip, cfg.bits).check_sum_fits(cfg.n_clients, 2**cfg.modulus_bits)
        return cfg


# -- primitives ---------------------------------------------------------------------------

class MaskExpander:
    """Expands 256-bit seeds into masks of ``dim`` words mod 2^32 (or 2^64): the AES-256-CTR
    keystream under key ``seed`` (:func:`privcrypt.keystream.aes_ctr_keystream`, zero nonce,
    block counter from 0), read little-endian. Each seed keys exactly one stream."""

    def __init__(self, dim: int, dtype=np.uint32, *, backend: str | None = None):
        self.dtype = np.dtype(dtype)
        self.dim = int(dim)
        self.backend = backend or PRG_BACKEND
        self._nbytes = self.dim * self.dtype.itemsize

    def expand(self, seed: bytes) -> np.ndarray:
        if len(seed) != 32:
            raise ValueError("mask seeds are 32 bytes")
        return aes_ctr_keystream(seed, self._nbytes, backend=self.backend).view(self.dtype)


def expand_mask(seed: bytes, dim: int, dtype=np.uint32) -> np.ndarray:
    """A fresh copy of the mask :class:`MaskExpander` derives from ``seed``."""
    return MaskExpander(dim, dtype).expand(seed).copy()


def _pair_info(label: bytes, u: int, v: int) -> bytes:
    return b"privcrypt/secagg/" + label + _PT.pack(min(u, v), max(u, v))


def _share_ad(round_id: bytes, u: int, v: int) -> bytes:
    return round_id + SHARE.encode() + _PT.pack(u, v)


def _pack_ids(ids: Iterable[int]) -> bytes:
    ids = sorted(ids)
    return struct.pack(f"<I{len(ids)}I", len(ids), *ids)


def _unpack_ids(buf: memoryview, off: int) -> tuple[list[int], int]:
    if len(buf) < off + 4:
        raise MalformedInput("id list truncated")
    (cnt,) = struct.unpack_from("<I", buf, off)
    off += 4
    if len(buf) < off + 4 * cnt:
        raise MalformedInput("id list truncated")
    ids = list(struct.unpack_from(f"<{cnt}I", buf, off))
    if len(set(ids)) != cnt:
        raise MalformedInput("repeated id")
    return ids, off + 4 * cnt


def _records(buf: bytes, rec_size: int) -> list[memoryview]:
    """``count (uint32) || count * record`` with fixed-size records."""
    mv = memoryview(buf)
    if len(mv) < 4:
        raise MalformedInput("record list truncated")
    (cnt,) = struct.unpack_from("<I", mv, 0)
    if len(mv) != 4 + cnt * rec_size:
        raise MalformedInput("record list length mismatch")
    return [mv[4 + i * rec_size: 4 + (i + 1) * rec_size] for i in range(cnt)]


def _connected(nodes: frozenset[int], graph: Mapping[int, frozenset[int]]) -> bool:
    if not nodes:
        return True
    start = next(iter(nodes))
    seen, todo = {start}, [start]
    while todo:
        for v in graph[todo.pop()] & nodes:
            if v not in seen:
                seen.add(v)
                todo.append(v)
    return len(seen) == len(nodes)


# -- client ---------------------------------------------------------------------------------

class MaskingClient:
    """One client. Call its stage methods in order with the server's message bytes; each
    returns the bytes to send to the server. Out-of-order calls raise ``ProtocolAbort``."""

    def __init__(self, cid: int, update, *, rng: RandomSource | None = None,
                 rounding: str = "stochastic"):
        self.cid = int(cid)
        self._x = np.asarray(update, dtype=np.float64)
        self._rng = resolve_rng(rng)
        self._rounding = rounding
        self._stage = 0
        self.n_clipped = 0

    def __repr__(self) -> str:
        return f"MaskingClient(id={self.cid}, stage={self._stage}, secrets=<redacted>)"

    def _enter(self, expected: int, name: str) -> None:
        if self._stage != expected:
            raise ProtocolAbort(f"client {self.cid}: stage out of order", stage=name)
        self._stage = expected + 1

    def _decode(self, msg: bytes, stage: str) -> Message:
        m = Message.decode(msg, round_id=getattr(self, "round_id", None), stage=stage)
        if m.sender != SERVER or m.recipient != self.cid:
            raise MalformedInput("message not from the server to this client")
        return m

    def _send(self, stage: str, payload: bytes) -> bytes:
        return Message(self.round_id, stage, self.cid, SERVER, payload).encode()

    # stage 1
    def advertise_keys(self, config_msg: bytes) -> bytes:
        self._enter(0, ADVERTISE)
        m = self._decode(config_msg, ADVERTISE)
        self.round_id = m.round_id
        self.cfg = RoundConfig.decode(m.payload)
        if self._x.shape != (self.cfg.dim,):
            raise ValueError(f"update of client {self.cid} does not have length {self.cfg.dim}")
        self._c = KeyPair.generate(rng=self._rng)
        self._s = KeyPair.generate(rng=self._rng)
        return self._send(ADVERTISE, self._c.public + self._s.public)

    # stage 2
    def share_keys(self, neighbours_msg: bytes) -> bytes:
        self._enter(1, SHARE)
        m = self._decode(neighbours_msg, ADVERTISE)
        recs = _records(m.payload, 4 + 64)
        t = self.cfg.threshold
        self.c_pk, self.s_pk = {}, {}
        for r in recs:
            (vid,) = struct.unpack_from("<I", r, 0)
            if vid == self.cid or vid in self.c_pk:
                raise MalformedInput("neighbour list names this client or repeats one")
            self.c_pk[vid], self.s_pk[vid] = bytes(r[4:36]), bytes(r[36:68])
        if len(self.c_pk) + 1 < t:
            raise ProtocolAbort(f"client {self.cid}: {len(self.c_pk) + 1} share holders, "
                                f"threshold {t}", stage=ADVERTISE)
        if len({*self.c_pk.values(), *self.s_pk.values()}) != 2 * len(self.c_pk):
            raise ProtocolAbort("neighbours' public keys are not distinct", stage=ADVERTISE)
        self._b = self._rng.bytes(32)
        holders = [self.cid, *sorted(self.c_pk)]
        xs = [h + 1 for h in holders]
        s_sh = shamir.split(self._s.private_bytes(), t, xs, rng=self._rng)
        b_sh = shamir.split(self._b, t, xs, rng=self._rng)
        # shares this client holds: owner -> (s_share, b_share) at x = own id + 1
        self.held = {self.cid: (s_sh[self.cid + 1], b_sh[self.cid + 1])}
        out = [struct.pack("<I", len(holders) - 1)]
        for v in holders[1:]:
            key = agree(self._c, self.c_pk[v], salt=self.round_id, info=_pair_info(b"share-key", self.cid, v))
            pt = (_PT.pack(self.cid, v) + s_sh[v + 1].to_bytes(shamir.SHARE_BYTES, "big")
                  + b_sh[v + 1].to_bytes(shamir.SHARE_BYTES, "big"))
            out.append(struct.pack("<I", v) + aead.seal(key, pt, _share_ad(self.round_id, self.cid, v),
                                                         rng=self._rng))
        return self._send(SHARE, b"".join(out))

    # stage 3
    def masked_input(self, routed_msg: bytes) -> bytes:
        self._enter(2, MASKED)
        m = self._decode(routed_msg, SHARE)
        recs = _records(m.payload, 4 + _SEALED_LEN)
        t, cfg = self.cfg.threshold, self.cfg
        for r in recs:
            (u,) = struct.unpack_from("<I", r, 0)
            if u not in self.c_pk or u in self.held:
                raise ProtocolAbort(f"share from non-neighbour or repeated sender {u}", stage=SHARE)
            key = agree(self._c, self.c_pk[u], salt=self.round_id, info=_pair_info(b"share-key", u, self.cid))
            pt = aead.open(key, bytes(r[4:]), _share_ad(self.round_id, u, self.cid))  # InvalidTag
            if _PT.unpack_from(pt, 0) != (u, self.cid):
                raise ProtocolAbort("sealed share names other parties", stage=SHARE)
            o = _PT.size
            self.held[u] = (int.from_bytes(pt[o:o + 33], "big"), int.from_bytes(pt[o + 33:o + 66], "big"))
        if len(self.held) < t:
            raise ProtocolAbort(f"client {self.cid}: shares from {len(self.held)} holders, "
                                f"threshold {t}", stage=SHARE)
        self.u2 = frozenset(self.held) - {self.cid}  # neighbours that completed key sharing
        q, self.n_clipped = Quantizer(cfg.clip, cfg.bits).quantize(
            cfg.weight_factor * self._x, rounding=self._rounding, rng=self._rng)
        y = q.astype(cfg.dtype)
        prg = MaskExpander(cfg.dim, cfg.dtype)
        y += prg.expand(self._b)
        for v in sorted(self.u2):
            seed = agree(self._s, self.s_pk[v], salt=self.round_id, info=_pair_info(b"mask", self.cid, v))
            mask = prg.expand(seed)
            if self.cid < v:
                y += mask
            else:
                y -= mask
        return self._send(MASKED, pack_array(y))

    # stage 4
    def unmask(self, request_msg: bytes) -> bytes:
        self._enter(3, UNMASK)
        m = self._decode(request_msg, MASKED)
        mv = memoryview(m.payload)
        survivors, off = _unpack_ids(mv, 0)
        dropped, off = _unpack_ids(mv, off)
        if off != len(mv):
            raise MalformedInput("trailing bytes in unmasking request")
        surv, drop = set(survivors), set(dropped)
        if surv & drop:
            raise ProtocolAbort("a client is named both survivor and dropped", stage=UNMASK)
        if self.cid not in surv or not (surv | drop) <= set(self.held):
            raise ProtocolAbort("unmasking request names clients this one holds no shares of",
                                stage=UNMASK)
        if len(surv) < self.cfg.threshold:
            raise ProtocolAbort(f"{len(surv)} surviving neighbours, threshold {self.cfg.threshold}",
                                stage=UNMASK)
        out = [struct.pack("<I", len(surv) + len(drop))]
        for u in sorted(surv):
            out.append(struct.pack("<IB", u, 0) + self.held[u][1].to_bytes(33, "big"))
        for u in sorted(drop):
            out.append(struct.pack("<IB", u, 1) + self.held[u][0].to_bytes(33, "big"))
        self._b = self._s = self._x = None  # this round is over for the client
        return self._send(UNMASK, b"".join(out))


# -- server ---------------------------------------------------------------------------------

class MaskingServer:
    """The aggregation server of one round. It relays and sums; it never sees an update."""

    def __init__(self, round_id: bytes, client_ids: Iterable[int], dim: int, *, clip: float,
                 bits: int, modulus_bits: int, degree: int, threshold: int,
                 weights: Mapping[int, float], min_clients: int = 1, record: bool = False):
        self.round_id, self.dim = round_id, int(dim)
        self.ids = sorted(int(i) for i in client_ids)
        self.clip, self.bits, self.modulus_bits = float(clip), int(bits), int(modulus_bits)
        self.degree, self.t, self.min_clients = int(degree), int(threshold), int(min_clients)
        self.dtype = np.dtype(np.uint32 if modulus_bits == 32 else np.uint64)
        w_max = max(weights[i] for i in self.ids)
        self.factor = {i: float(weights[i]) / w_max for i in self.ids}
        self.record = record
        self.view: list[bytes] = []  # every message received (when record)
        self.keys: dict[int, tuple[bytes, bytes]] = {}
        self.shares_out: dict[int, dict[int, bytes]] = {}
        self.masked: dict[int, np.ndarray] = {}
        self.acc = np.zeros(self.dim, dtype=self.dtype)
        self.unmask_resp: dict[int, dict] = {}
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

    # stage 1
    def config_message(self, cid: int) -> bytes:
        cfg = RoundConfig(self.dim, len(self.ids), self.bits, self.modulus_bits, self.clip,
                          self.t, self.factor[cid])
        return self._to(cid, ADVERTISE, cfg.encode())

    def receive_keys(self, msg: bytes) -> None:
        m = self._receive(msg, ADVERTISE)
        if m.sender in self.keys or len(m.payload) != 64:
            raise MalformedInput("repeated or malformed key advertisement")
        self.keys[m.sender] = (m.payload[:32], m.payload[32:])

    def neighbour_messages(self) -> dict[int, bytes]:
        check_survivors(len(self.keys), max(self.min_clients, self.t), ADVERTISE)
        self.u1 = sorted(self.keys)
        self.graph = neighbour_graph(self.u1, self.degree, self.round_id)
        self.stage = SHARE
        out = {}
        for i in self.u1:
            recs = [struct.pack("<I", v) + self.keys[v][0] + self.keys[v][1] for v in sorted(self.graph[i])]
            out[i] = self._to(i, ADVERTISE, struct.pack("<I", len(recs)) + b"".join(recs))
        return out

    # stage 2
    def receive_shares(self, msg: bytes) -> None:
        m = self._receive(msg, SHARE)
        if m.sender in self.shares_out:
            raise MalformedInput("repeated share message")
        routed = {}
        for r in _records(m.payload, 4 + _SEALED_LEN):
            (v,) = struct.unpack_from("<I", r, 0)
            if v not in self.graph.get(m.sender, ()) or v in routed:
                raise MalformedInput("share addressed to a non-neighbour")
            routed[v] = bytes(r[4:])
        self.shares_out[m.sender] = routed

    def routed_messages(self) -> dict[int, bytes]:
        self.u2 = frozenset(self.shares_out)
        check_survivors(len(self.u2), max(self.min_clients, self.t), SHARE)
        self.stage = MASKED
        inbox: dict[int, list[bytes]] = {v: [] for v in self.u2}
        for u in sorted(self.u2):
            for v, sealed in self.shares_out[u].items():
                if v in inbox:
                    inbox[v].append(struct.pack("<I", u) + sealed)
        self.shares_out = {}
        return {v: self._to(v, SHARE, struct.pack("<I", len(r)) + b"".join(r)) for v, r in inbox.items()}

    # stage 3
    def receive_masked(self, msg: bytes) -> None:
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

    def unmask_requests(self) -> dict[int, bytes]:
        self.u3 = frozenset(self.masked)
        check_survivors(len(self.u3), max(self.min_clients, self.t), MASKED)
        if not _connected(self.u3, self.graph):
            # masks only cancel within a connected component: unmasking would hand the
            # server the partial sum of each component, so stop before any share is sent
            raise ProtocolAbort("the survivors' neighbour graph is disconnected; unmasking "
                                "would reveal partial sums", stage=MASKED)
        self.stage = UNMASK
        out = {}
        for v in sorted(self.u3):
            nb = self.graph[v] & self.u2
            payload = _pack_ids((nb & self.u3) | {v}) + _pack_ids(nb - self.u3)
            out[v] = self._to(v, MASKED, payload)
        return out

    # stage 4
    def receive_unmask(self, msg: bytes) -> None:
        m = self._receive(msg, UNMASK)
        if m.sender not in self.u3 or m.sender in self.unmask_resp:
            raise MalformedInput("unmasking response from outside the survivors or repeated")
        resp = {}
        for r in _records(m.payload, 4 + 1 + 33):
            owner, kind = struct.unpack_from("<IB", r, 0)
            if kind not in (0, 1) or owner in resp:
                raise MalformedInput("bad unmasking record")
            if (kind == 0) != (owner in self.u3) or owner not in (self.graph[m.sender] | {m.sender}):
                raise MalformedInput("unmasking share of the wrong kind or owner")
            resp[owner] = (kind, int.from_bytes(r[5:], "big"))
        self.unmask_resp[m.sender] = resp

    def _secret(self, owner: int, kind: int) -> bytes:
        pts = {h + 1: resp[owner][1] for h, resp in self.unmask_resp.items()
               if owner in resp and resp[owner][0] == kind}
        if len(pts) < self.t:
            what = "self-mask seed" if kind == 0 else "mask key"
            raise ProtocolAbort(f"{len(pts)} shares of client {owner}'s {what}, threshold {self.t}",
                                stage=UNMASK)
        # Integrity: with more than t shares, two different t-subsets must agree. One wrong
        # share (a faulty or malicious holder) changes the two reconstructions by different
        # Lagrange multiples, so it is caught; with exactly t shares it cannot be.
        xs = sorted(pts)
        secret = shamir.combine({x: pts[x] for x in xs[:self.t]}, self.t)
        if len(xs) > self.t and shamir.combine({x: pts[x] for x in xs[-self.t:]}, self.t) != secret:
            what = "self-mask seed" if kind == 0 else "mask key"
            raise ProtocolAbort(f"inconsistent shares of client {owner}'s {what} (a holder sent a "
                                "wrong share)", stage=UNMASK)
        return secret

    def finish(self) -> np.ndarray:
        """Remove all masks; return ``sum q_u mod R`` over the survivors (exact)."""
        total = self.acc  # the round is over: unmask in place
        prg = MaskExpander(self.dim, self.dtype)
        recovered_b = {u: self._secret(u, 0) for u in sorted(self.u3)}
        dropped = sorted(u for u in self.u2 - self.u3 if self.graph[u] & self.u3)
        recovered_s = {u: self._secret(u, 1) for u in dropped}
        for u, b in recovered_b.items():
            total -= prg.expand(b)
        pk_cache: dict = {}
        for u, sk in recovered_s.items():
            kp = KeyPair.from_private_bytes(sk)
            if kp.public != self.keys[u][1]:
                raise ProtocolAbort(f"reconstructed mask key of client {u} does not match its "
                                    "public key (corrupt shares)", stage=UNMASK)
            for v in sorted(self.graph[u] & self.u3):
                if v not in pk_cache:
                    pk_cache[v] = load_public(self.keys[v][1])
                seed = agree(kp, pk_cache[v], salt=self.round_id,
                             info=_pair_info(b"mask", u, v))
                mask = prg.expand(seed)
                if v < u:  # v added +mask
                    total -= mask
                else:
                    total += mask
        self.stage = "done"
        return total

    def survivors_weight(self) -> float:
        return sum(self.factor[u] for u in self.u3)


# -- driving a round ----------------------------------------------------------------------

def run_round(server: MaskingServer, clients: Mapping[int, MaskingClient],
              dropped: Iterable[int] = (), log: RoundLog | None = None, *,
              intercept=None) -> RoundLog:
    """Drive ``server`` and ``clients`` through the four stages in process, passing only
    bytes. ``dropped`` clients go silent after receiving their shares (before the masked
    input). ``intercept(stage, direction, cid, msg) -> msg``, when given, sees (and may
    replace) every message; direction is ``"down"`` (server to client) or ``"up"``. Call
    ``server.finish()`` afterwards for the unmasked sum."""
    log = log or RoundLog()
    dropped = frozenset(dropped)
    hook = intercept or (lambda stage, direction, cid, msg: msg)

    def exchange(stage, cid, down_msg, step):
        down_msg = log.down(cid, hook(stage, "down", cid, down_msg))
        with log.client_cpu(cid):
            up = step(down_msg)
        return log.up(cid, hook(stage, "up", cid, up))

    for c in sorted(clients):  # stage 1: advertise keys
        with log.server_cpu():
            msg = server.config_message(c)
        up = exchange(ADVERTISE, c, msg, clients[c].advertise_keys)
        with log.server_cpu():
            server.receive_keys(up)
    with log.server_cpu():
        nmsgs = server.neighbour_messages()
    for c, msg in nmsgs.items():  # stage 2: share keys
        up = exchange(SHARE, c, msg, clients[c].share_keys)
        with log.server_cpu():
            server.receive_shares(up)
    with log.server_cpu():
        routed = server.routed_messages()
    for c, msg in routed.items():  # stage 3: masked input; the dropped go silent here
        if c in dropped:
            log.down(c, hook(MASKED, "down", c, msg))
            continue
        up = exchange(MASKED, c, msg, clients[c].masked_input)
        with log.server_cpu():
            server.receive_masked(up)
    with log.server_cpu():
        requests = server.unmask_requests()
    for c, msg in requests.items():  # stage 4: unmasking
        up = exchange(UNMASK, c, msg, clients[c].unmask)
        with log.server_cpu():
            server.receive_unmask(up)
    return log


# -- aggregator -----------------------------------------------------------------------------

class MaskingAggregator(SecureAggregator):
    """Pairwise-masking secure aggregation (Bonawitz et al. 2017 / SecAgg+); see the module
    docstring for the protocol, the threat model and how weights work.

    ``clip``: declared bound, values outside ±clip are clipped and counted
    (``stats["clipped"]``). ``bits``: quantization bits per value. ``modulus_bits``: R = 2^32
    (default; 4 bytes per value on the wire) or 2^64. ``degree``: neighbours per client
    (default :func:`default_degree`). ``threshold``: Shamir threshold t, an int, or a
    fraction of the k+1 holders (default :func:`default_threshold`). ``min_clients``:
    fewest survivors for a round. ``rounding``: ``"stochastic"`` (unbiased) or
    ``"nearest"``. ``record_view``: keep every message the server received in
    ``stats["server_view"]`` (for audits and tests). ``rng``: randomness for keys, seeds,
    shares, nonces and rounding (default: OS CSPRNG; a DeterministicRandom is spawned per
    client).
    """

    name = "masking"

    def __init__(self, clip: float = 1.0, bits: int = 16, modulus_bits: int = 32, *,
                 degree: int | None = None, threshold: int | float | None = None,
                 min_clients: int = 1, rounding: str = "stochastic", record_view: bool = False,
                 rng: RandomSource | None = None):
        self.quantizer = Quantizer(float(clip), int(bits))
        if int(modulus_bits) not in (32, 64):
            raise ValueError("modulus_bits must be 32 or 64")
        if int(bits) >= int(modulus_bits):
            raise ValueError("bits must be below modulus_bits")
        if rounding not in ("stochastic", "nearest"):
            raise ValueError("rounding must be 'stochastic' or 'nearest'")
        if degree is not None and int(degree) < 1:
            raise ValueError("degree must be >= 1")
        if threshold is not None and not (0 < threshold):
            raise ValueError("threshold must be positive")
        if int(min_clients) < 1:
            raise ValueError("min_clients must be >= 1")
        self.clip, self.bits, self.modulus_bits = float(clip), int(bits), int(modulus_bits)
        self.degree, self.threshold, self.min_clients = degree, threshold, int(min_clients)
        self.rounding, self.record_view = rounding, bool(record_view)
        self._rng = resolve_rng(rng)

    @property
    def atol(self) -> float:
        """Error bound per coordinate of the mean, for equal weights and inputs within ±clip:
        one quantization step (stochastic rounding) or half a step (nearest)."""
        step = self.quantizer.step
        return step if self.rounding == "stochastic" else step / 2

    def round_parameters(self, n: int) -> tuple[int, int]:
        """``(degree, threshold)`` used for a round of ``n`` clients."""
        k = default_degree(n) if self.degree is None else min(int(self.degree), n - 1)
        if k < n - 1 and k % 2:
            k += 1
        holders = k + 1
        if self.threshold is None:
            t = default_threshold(holders)
        elif isinstance(self.threshold, float) and self.threshold < 1:
            t = max(1, math.ceil(self.threshold * holders))
        else:
            t = int(self.threshold)
        if not 1 <= t <= holders:
            raise ValueError(f"threshold {t} must be in [1, degree + 1 = {holders}]")
        return k, t

    def _party_rng(self, label):
        spawn = getattr(self._rng, "spawn", None)
        return spawn(label) if spawn else self._rng

    def aggregate(self, updates, weights=None, dropped=frozenset()) -> AggregationResult:
        upd, w, dropped = validate_round_inputs(updates, weights, dropped)
        ids = sorted(upd)
        if ids[0] < 0 or ids[-1] > _MAX_ID:
            raise ValueError(f"client ids must be in [0, {_MAX_ID}]")
        n, dim = len(ids), upd[ids[0]].shape[0]
        # overflow guard, before anything is sent: n * (2^bits - 1) < R
        self.quantizer.check_sum_fits(n, 2**self.modulus_bits)
        k, t = self.round_parameters(n)
        log = RoundLog(record=self.record_view)
        round_id = self._rng.bytes(16)
        server = MaskingServer(round_id, ids, dim, clip=self.clip, bits=self.bits,
                               modulus_bits=self.modulus_bits, degree=k, threshold=t,
                               weights=w, min_clients=self.min_clients, record=self.record_view)
        clients = {c: MaskingClient(c, upd[c], rng=self._party_rng(f"client-{c}"),
                                    rounding=self.rounding) for c in ids}
        run_round(server, clients, dropped, log)
        with log.server_cpu():
            qsum = server.finish()
            n_surv = len(server.u3)
            wsum = server.survivors_weight()
            mean = self.quantizer.dequantize_sum(qsum, n_surv) / wsum
        stats = log.stats()
        stats.update(
            degree=k, threshold=t, round_id=round_id.hex(), atol=self.atol * n_surv / wsum,
            clipped=sum(clients[c].n_clipped for c in server.u3),
        )
        return AggregationResult(mean, log.bytes_up, log.bytes_down, frozenset(server.u3), stats)
