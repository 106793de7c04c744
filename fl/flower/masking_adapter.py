"""The ``masking`` backend (:mod:`privcrypt.secagg.masking`) cut into Flower message stages:
the server half (:class:`MaskingServerRound`), the client half (:func:`masking_handle`) and
the client's per-round state as explicit bytes (:func:`dump_masking_state` /
:func:`load_masking_state`; never pickle).

Stage order and the server calls per stage are exactly those of
:func:`privcrypt.secagg.masking.run_round`: ``advertise_keys`` (``config_message`` /
``receive_keys``), ``share_keys`` (``neighbour_messages`` / ``receive_shares``),
``masked_input`` (``routed_messages`` / ``receive_masked``), in the authenticated mode
``consistency_check`` (``consistency_messages`` / ``receive_consistency``), then
``unmasking`` (``unmask_requests`` / ``receive_unmask``) and ``finish``. The client-side
checks of the hardened :class:`~privcrypt.secagg.masking.MaskingClient` (it refuses to send
its masked input, sign U3 or unmask unless at least t of its other neighbours remain;
threshold minimum; small-order keys; signatures) run unchanged in the ClientApp: a refusal
is a ``ProtocolAbort`` there, which becomes an error reply and the server drops the client.
"""

from __future__ import annotations

import struct

import numpy as np

from privcrypt import shamir
from privcrypt.exceptions import InvalidKey, MalformedInput, ProtocolAbort
from privcrypt.kex import KeyPair
from privcrypt.secagg import masking as _mk
from privcrypt.secagg.base import AggregationResult
from privcrypt.secagg.masking.common import MAX_ID, consistency_transcript, pack_ids, unpack_ids
from privcrypt.secagg.masking.params import neighbour_graph
from privcrypt.wire import Message

__all__ = ["MASKING_STAGES", "MASKING_AUTH_STAGES", "MaskingServerRound", "masking_handle",
           "dump_masking_state", "load_masking_state"]

#: ``(stage, Flower message category)`` of the semi-honest protocol
MASKING_STAGES = ((_mk.ADVERTISE, "query"), (_mk.SHARE, "query"), (_mk.MASKED, "train"), (_mk.UNMASK, "query"))
#: ... and of the authenticated one (``backend_params.authenticated = true``)
MASKING_AUTH_STAGES = (MASKING_STAGES[:3] + ((_mk.CONSISTENCY, "query"),) + MASKING_STAGES[3:])


class MaskingServerRound:
    """The server half of one masking round: the calls ``run_round`` makes, one stage at a
    time; :meth:`finish` is the tail of ``MaskingAggregator.aggregate``. ``enrolment``
    (``{client id: Ed25519 public key}``) is required when ``backend.authenticated``."""

    def __init__(self, backend, participants, weights, dim, rng, enrolment=None):
        ids = sorted(participants)
        if ids[0] < 0 or ids[-1] > MAX_ID:
            raise ValueError(f"client ids must be in [0, {MAX_ID}]")
        backend.quantizer.check_sum_fits(len(ids), 2**backend.modulus_bits)  # overflow guard first
        self.authenticated = bool(backend.authenticated)
        enrol = None
        if self.authenticated:
            if enrolment is None:
                raise ValueError("authenticated masking needs the enrolment ({client id: Ed25519 public key})")
            enrol = {c: bytes(enrolment[c]) for c in ids if c in enrolment}
        self.stages = MASKING_AUTH_STAGES if self.authenticated else MASKING_STAGES
        self.k, self.t = backend.round_parameters(len(ids))
        self.backend = backend
        self.round_id = rng.bytes(16)
        self.server = _mk.MaskingServer(self.round_id, ids, dim, clip=backend.clip, bits=backend.bits,
                                        modulus_bits=backend.modulus_bits, degree=self.k, threshold=self.t,
                                        weights={c: weights[c] for c in ids}, min_clients=backend.min_clients,
                                        enrolment=enrol)
        self.bytes_up = self.bytes_down = 0
        self._recv = {_mk.ADVERTISE: self.server.receive_keys, _mk.SHARE: self.server.receive_shares,
                      _mk.MASKED: self.server.receive_masked, _mk.CONSISTENCY: self.server.receive_consistency,
                      _mk.UNMASK: self.server.receive_unmask}

    def requests(self, stage, alive):
        """Messages for the clients still alive (``ProtocolAbort`` when too few remain)."""
        s = self.server
        if stage == _mk.ADVERTISE:
            out = {c: s.config_message(c) for c in s.ids}
        elif stage == _mk.SHARE:
            out = s.neighbour_messages()
        elif stage == _mk.MASKED:
            out = s.routed_messages()
        elif stage == _mk.CONSISTENCY:
            out = s.consistency_messages()
        elif stage == _mk.UNMASK:
            out = s.unmask_requests()
        else:
            raise ValueError(f"unknown masking stage {stage!r}")
        out = {c: m for c, m in out.items() if c in alive}
        self.bytes_down += sum(len(m) for m in out.values())
        return out

    def receive(self, stage, cid, reply):
        """One client's reply; ``MalformedInput`` when the backend rejects it."""
        try:
            m = Message.decode(reply, round_id=self.round_id, stage=stage)
            if m.sender != cid:
                raise MalformedInput(f"reply from client {cid} names sender {m.sender}")
            if stage not in dict(self.stages):
                raise MalformedInput(f"no stage {stage!r} in this round")
            self._recv[stage](reply)
        except (MalformedInput, InvalidKey, ValueError) as exc:
            raise MalformedInput(f"reply rejected by the backend: {exc}") from None
        if cid in self.server.rejected and stage == _mk.ADVERTISE:
            raise MalformedInput(f"keys rejected: {self.server.rejected[cid]}")
        self.bytes_up += len(reply)

    def finish(self):
        """Unmask and return the survivors' weighted mean, or ``ProtocolAbort``."""
        s, b = self.server, self.backend
        if s.stage != _mk.UNMASK:  # unmask_requests never ran: a stage before it failed
            raise ProtocolAbort("round did not reach unmasking", stage=str(s.stage))
        qsum = s.finish()
        n_surv, wsum = len(s.u3), s.survivors_weight()
        mean = b.quantizer.dequantize_sum(qsum, n_surv) / wsum
        step_bound = b.atol / b.max_weight_ratio
        stats = {"degree": self.k, "threshold": self.t, "round_id": self.round_id.hex(),
                 "atol": step_bound * n_surv / wsum, "rejected": dict(s.rejected),
                 "authenticated": self.authenticated}
        return AggregationResult(mean, self.bytes_up, self.bytes_down, frozenset(s.u3), stats)

    @property
    def updates(self):
        """Never revealed."""
        return None


# -- client state ---------------------------------------------------------------------------

_MAGIC = b"PCFS2"  # privcrypt flower masking state, version 2 (hardened MaskingClient)
_HEAD = struct.Struct("<IBBBII")  # cid, stage, rounding, flags, min_threshold (+1; 0: default), n_clipped
_AUTH, _STRICT = 1, 2


class _Reader:
    """Bounds-checked reads from a state buffer; anything off raises MalformedInput."""

    def __init__(self, buf):
        if not isinstance(buf, (bytes, bytearray, memoryview)):
            raise MalformedInput("state is not bytes")
        self.mv, self.off = memoryview(bytes(buf)), 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.off + n > len(self.mv):
            raise MalformedInput("client state truncated")
        out = bytes(self.mv[self.off:self.off + n])
        self.off += n
        return out

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def ids(self) -> frozenset:
        ids, self.off = unpack_ids(self.mv, self.off)  # MalformedInput on truncation/repeats
        return frozenset(ids)

    def done(self) -> None:
        if self.off != len(self.mv):
            raise MalformedInput("trailing bytes in client state")


def dump_masking_state(c: _mk.MaskingClient) -> bytes:
    """Serialize a :class:`~privcrypt.secagg.masking.MaskingClient` between stages: every
    field its later stage methods read. Header (id, stage, rounding, authenticated/strict
    flags, minimum threshold, clipped count), round id, round configuration, the two X25519
    secret keys, the neighbours excluded for unusable keys; from ``share_keys`` on the
    self-mask seed, neighbours' public keys, the Shamir shares held and (authenticated) the
    member list U1; from ``masked_input`` on the neighbours that completed key sharing U2;
    authenticated, from ``consistency_check`` on the signed survivor set U3. Derived public
    values (the neighbour graph, the U3 transcript) are recomputed on load. Not stored: the
    update (set right before ``masked_input``), the identity key and the enrolment (node
    configuration). SECRET: handle like the keys it contains."""
    stage = c._stage
    flags = (_AUTH if c.authenticated else 0) | (_STRICT if c.strict else 0)
    out = [_MAGIC, _HEAD.pack(c.cid, stage, 0 if c._rounding == "stochastic" else 1, flags,
                              0 if c._min_t is None else c._min_t + 1, c.n_clipped),
           c.round_id, struct.pack("<I", len(raw := c.cfg.encode())), raw,
           c._c.private_bytes(), c._s.private_bytes(), pack_ids(c.excluded)]
    if stage >= 2:
        out.append(c._b)
        out.append(struct.pack("<I", len(c.c_pk)))
        out.extend(struct.pack("<I", v) + c.c_pk[v] + c.s_pk[v] for v in sorted(c.c_pk))
        out.append(struct.pack("<I", len(c.held)))
        for o in sorted(c.held):
            s_sh, b_sh = c.held[o]
            out.append(struct.pack("<I", o) + s_sh.to_bytes(33, "big") + b_sh.to_bytes(33, "big"))
        if c.authenticated:
            out.append(pack_ids(c.members))
    if stage >= 3:
        out.append(pack_ids(c.u2))
    if stage >= 4:
        out.append(pack_ids(c.u3))
    return b"".join(out)


def _share(r: _Reader) -> int:
    v = int.from_bytes(r.take(33), "big")
    if v >= shamir.PRIME:
        raise MalformedInput("Shamir share out of range in client state")
    return v


def load_masking_state(buf: bytes, *, dim: int, rng, identity=None, enrolment=None) -> _mk.MaskingClient:
    """Inverse of :func:`dump_masking_state`. ``identity``/``enrolment``: this node's
    Ed25519 key and the enrolment (required iff the state is of an authenticated round).
    Raises only ``MalformedInput`` for anything off: truncation, trailing bytes, bad
    magic/stage/flags, a configuration for another model size or mode, bad keys or shares,
    repeated or inconsistent id sets."""
    r = _Reader(buf)
    if r.take(len(_MAGIC)) != _MAGIC:
        raise MalformedInput("not a masking client state")
    cid, stage, rounding, flags, min_t, n_clipped = _HEAD.unpack(r.take(_HEAD.size))
    auth = bool(flags & _AUTH)
    if cid > MAX_ID or not 1 <= stage <= (4 if auth else 3) or rounding > 1 or flags > 3:
        raise MalformedInput("bad id, stage, rounding or flags in client state")
    if auth != (identity is not None) or auth != (enrolment is not None):
        raise MalformedInput("client state and this node disagree on the authenticated mode")
    try:
        c = _mk.MaskingClient(cid, np.zeros(dim), rng=rng, rounding=("stochastic", "nearest")[rounding],
                              min_threshold=None if min_t == 0 else min_t - 1, identity=identity,
                              enrolment=enrolment, strict=bool(flags & _STRICT))
    except (ValueError, TypeError) as exc:
        raise MalformedInput(f"client state: {exc}") from None
    c._stage, c.n_clipped = stage, n_clipped
    c.round_id = r.take(16)
    c.cfg = _mk.RoundConfig.decode(r.take(r.u32()))  # MalformedInput only
    if c.cfg.dim != dim or c.cfg.authenticated != auth:
        raise MalformedInput("client state is for another model size or mode")
    try:
        c._c = KeyPair.from_private_bytes(r.take(32))
        c._s = KeyPair.from_private_bytes(r.take(32))
    except (InvalidKey, ValueError, TypeError):
        raise MalformedInput("bad key in client state") from None
    c.excluded = set(r.ids())
    c._share_keys = None  # derived from the keys; masked_input recomputes them
    if stage >= 2:
        c._b = r.take(32)
        c.c_pk, c.s_pk = {}, {}
        for _ in range(r.u32()):
            v = r.u32()
            if v == cid or v in c.c_pk or v in c.excluded:
                raise MalformedInput("repeated or self neighbour in client state")
            c.c_pk[v], c.s_pk[v] = r.take(32), r.take(32)
        c.held = {}
        for _ in range(r.u32()):
            o = r.u32()
            if o in c.held or (o != cid and o not in c.c_pk):
                raise MalformedInput("repeated share owner or share of a non-neighbour in client state")
            c.held[o] = (_share(r), _share(r))
        if cid not in c.held or len(c.c_pk) < c.cfg.threshold:
            raise MalformedInput("client state lacks its own shares or enough neighbours")
        if auth:
            c.members = r.ids()
            if cid not in c.members or len(c.members) > c.cfg.n_clients:
                raise MalformedInput("member list in client state omits this client or is too long")
            c.graph = neighbour_graph(c.members, c.cfg.degree, c.round_id)
            if set(c.c_pk) | c.excluded != set(c.graph[cid]):
                raise MalformedInput("neighbours in client state differ from the public graph")
    elif c.excluded:
        raise MalformedInput("excluded neighbours before key sharing in client state")
    if stage >= 3:
        c.u2 = r.ids()
        if c.u2 != frozenset(c.held) - {cid}:
            raise MalformedInput("U2 in client state differs from the shares it holds")
    if stage >= 4:
        c.u3 = r.ids()
        if cid not in c.u3 or not c.u3 <= c.members:
            raise MalformedInput("survivor set in client state omits this client or names non-members")
        c._u3_transcript = consistency_transcript(c.round_id, c.u3)
    r.done()
    return c


def masking_handle(stage, state, payload, *, cid, dim, update, rounding, rng, identity=None, enrolment=None,
                   strict=False):
    """The client half of one masking stage (see :func:`fl.flower.protocols.client_handle`).
    ``identity`` (:class:`privcrypt.identity.IdentityKey`) and ``enrolment`` switch on the
    authenticated mode; the client then refuses unauthenticated rounds."""
    if stage == _mk.ADVERTISE:  # a new round: any state left from an aborted round is dropped
        c = _mk.MaskingClient(cid, np.zeros(dim), rng=rng, rounding=rounding, identity=identity,
                              enrolment=enrolment, strict=strict)
        reply = c.advertise_keys(payload)
    else:
        if stage not in (_mk.SHARE, _mk.MASKED, _mk.CONSISTENCY, _mk.UNMASK):
            raise MalformedInput(f"unknown masking stage {stage!r}")
        if state is None:
            raise ProtocolAbort(f"client {cid}: no state for stage {stage}", stage=stage)
        c = load_masking_state(state, dim=dim, rng=rng, identity=identity, enrolment=enrolment)
        if c.cid != cid:
            raise MalformedInput("client state belongs to another client")
        if stage == _mk.SHARE:
            reply = c.share_keys(payload)
        elif stage == _mk.MASKED:
            if update is None or np.shape(update) != (dim,):
                raise ValueError("the masked_input stage needs the client's update of the model's size")
            c._x = np.asarray(update, dtype=np.float64)  # MaskingClient reads it in masked_input
            reply = c.masked_input(payload)
        elif stage == _mk.CONSISTENCY:
            reply = c.consistency_check(payload)
        else:
            return c.unmask(payload), None  # round over: the caller wipes the state
    return reply, dump_masking_state(c)
