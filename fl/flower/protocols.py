"""One adapter per secure-aggregation backend: the backend's real client and server
objects, cut into message stages that any transport can carry (``fl.flower`` carries them
over Flower's Message API; nothing here imports flwr).

An adapter has two halves.

Server half (:class:`ServerRound`, one per round, lives in the ServerApp process):
``stages`` lists ``(name, category)`` in order; for each stage the transport calls
:meth:`ServerRound.requests` (client id -> bytes to send; only clients still alive get
one) and then :meth:`ServerRound.receive` for each reply that came back in time. A
reply the backend rejects raises :class:`MalformedInput` and the transport drops that
client for the rest of the round. :meth:`ServerRound.finish` returns the backend's
``AggregationResult`` or raises ``ProtocolAbort`` exactly as the in-process simulation
does (the same server methods run, on the same bytes).

Client half (:func:`client_handle`, stateless between calls): ``handle(stage, state,
payload, update=...) -> (reply, new_state)``. ``state`` is the bytes the previous stage
returned (the SuperNode keeps them in ``context.state`` between stages; a fresh ClientApp
process may serve each message), ``None`` at the first stage; ``new_state`` ``None``
means "round over: wipe". States are explicit byte layouts parsed with length checks
(never pickle); a damaged state raises :class:`MalformedInput`.

The stage where the client's update is needed (``INPUT_STAGE``) is the only stage the
ClientApp trains in, so a client that fails before it never trains (simulation: "silent
after key set-up").

Porting note for the hardened masking API (feat/masking): everything masking-specific is
in ``_MaskingServerRound``, ``_dump_masking``/``_load_masking`` and ``_masking_handle``;
the stage list, the per-stage server calls and the client fields to persist are the only
things to update.
"""

from __future__ import annotations

import struct

import numpy as np

from privcrypt.exceptions import InvalidKey, MalformedInput, ProtocolAbort
from privcrypt.kex import KeyPair
from privcrypt.secagg import masking as _mk
from privcrypt.secagg import plain as _pl
from privcrypt.secagg.base import AggregationResult

__all__ = ["STAGES", "INPUT_STAGE", "ServerRound", "make_server_round", "client_handle",
           "dump_masking_state", "load_masking_state"]

#: backend -> ordered ``(stage, Flower message category)``
STAGES = {
    "plain": (("plain_input", "train"),),
    "masking": ((_mk.ADVERTISE, "query"), (_mk.SHARE, "query"), (_mk.MASKED, "train"), (_mk.UNMASK, "query")),
    "ckks": (("ckks_upload", "train"), ("ckks_result", "query")),
}
#: backend -> the stage whose request carries the global model and whose reply carries
#: the client's (trained, clipped, noised, compressed) update
INPUT_STAGE = {"plain": "plain_input", "masking": _mk.MASKED, "ckks": "ckks_upload"}
#: how many survivors decrypt the CKKS aggregate (their answers must agree bit for bit)
CKKS_DECRYPTORS = 2


def _reject(exc: Exception) -> MalformedInput:
    return MalformedInput(f"reply rejected by the backend: {exc}")


class ServerRound:
    """The server half of one round of one backend (see module docstring)."""

    stages: tuple = ()

    def requests(self, stage: str, alive: set[int]) -> dict[int, bytes]:
        """Bytes to send to each client still alive at ``stage``."""
        raise NotImplementedError

    def receive(self, stage: str, cid: int, reply: bytes) -> None:
        """Consume client ``cid``'s reply; raises ``MalformedInput`` if the backend rejects
        it (the caller drops the client) and ``ProtocolAbort`` if the round cannot go on."""
        raise NotImplementedError

    def finish(self) -> AggregationResult:
        """The survivors' weighted mean, or ``ProtocolAbort``."""
        raise NotImplementedError

    @property
    def updates(self) -> dict | None:
        """Individual updates when the backend reveals them by design (``plain``)."""
        return None


class _PlainServerRound(ServerRound):
    """``plain``: one stage; the request is the 16-byte round id, the reply the update."""

    stages = STAGES["plain"]

    def __init__(self, backend, participants, weights, dim, rng):
        self.round_id = rng.bytes(16)
        self.server = _pl.PlainServer(self.round_id, {c: weights[c] for c in participants}, dim,
                                      backend.min_clients)
        self.dim, self._updates = int(dim), {}
        self.bytes_up = self.bytes_down = 0

    def requests(self, stage, alive):
        self.bytes_down += 16 * len(alive)
        return {c: self.round_id for c in sorted(alive)}

    def receive(self, stage, cid, reply):
        try:
            m = _pl.Message.decode(reply, round_id=self.round_id, stage=_pl.STAGE)
            if m.sender != cid:
                raise MalformedInput(f"reply from client {cid} names sender {m.sender}")
            self.server.receive(reply)
        except (MalformedInput, ValueError) as exc:
            raise _reject(exc) from None
        self.bytes_up += len(reply)
        self._updates[cid] = _pl.unpack_array(m.payload, dtype=np.float64, shape=(self.dim,))

    def finish(self):
        mean = self.server.finish()
        return AggregationResult(mean, self.bytes_up, self.bytes_down, frozenset(self.server.received), {})

    @property
    def updates(self):
        return dict(self._updates)


class _MaskingServerRound(ServerRound):
    """``masking`` on main's API: the calls ``privcrypt.secagg.masking.run_round`` makes,
    one stage at a time; ``finish`` is the tail of ``MaskingAggregator.aggregate``."""

    stages = STAGES["masking"]

    def __init__(self, backend, participants, weights, dim, rng):
        ids = sorted(participants)
        if ids[0] < 0 or ids[-1] > _mk._MAX_ID:
            raise ValueError(f"client ids must be in [0, {_mk._MAX_ID}]")
        backend.quantizer.check_sum_fits(len(ids), 2**backend.modulus_bits)  # overflow guard first
        self.k, self.t = backend.round_parameters(len(ids))
        self.backend = backend
        self.round_id = rng.bytes(16)
        self.server = _mk.MaskingServer(self.round_id, ids, dim, clip=backend.clip, bits=backend.bits,
                                        modulus_bits=backend.modulus_bits, degree=self.k, threshold=self.t,
                                        weights={c: weights[c] for c in ids}, min_clients=backend.min_clients)
        self.bytes_up = self.bytes_down = 0

    def requests(self, stage, alive):
        s = self.server
        if stage == _mk.ADVERTISE:
            out = {c: s.config_message(c) for c in s.ids}
        elif stage == _mk.SHARE:
            out = s.neighbour_messages()
        elif stage == _mk.MASKED:
            out = s.routed_messages()
        else:
            out = s.unmask_requests()
        out = {c: m for c, m in out.items() if c in alive}
        self.bytes_down += sum(len(m) for m in out.values())
        return out

    def receive(self, stage, cid, reply):
        s = self.server
        try:
            m = _mk.Message.decode(reply, round_id=self.round_id, stage=stage)
            if m.sender != cid:
                raise MalformedInput(f"reply from client {cid} names sender {m.sender}")
            {_mk.ADVERTISE: s.receive_keys, _mk.SHARE: s.receive_shares,
             _mk.MASKED: s.receive_masked, _mk.UNMASK: s.receive_unmask}[stage](reply)
        except (MalformedInput, ValueError) as exc:
            raise _reject(exc) from None
        self.bytes_up += len(reply)

    def finish(self):
        s, b = self.server, self.backend
        if s.stage != _mk.UNMASK:  # unmask_requests never ran: a stage before it failed
            raise ProtocolAbort("round did not reach unmasking", stage=str(s.stage))
        qsum = s.finish()
        n_surv, wsum = len(s.u3), s.survivors_weight()
        mean = b.quantizer.dequantize_sum(qsum, n_surv) / wsum
        stats = {"degree": self.k, "threshold": self.t, "round_id": self.round_id.hex(),
                 "atol": b.atol * n_surv / wsum}
        return AggregationResult(mean, self.bytes_up, self.bytes_down, frozenset(s.u3), stats)


class _CkksServerRound(ServerRound):
    """``ckks``: stage 1 each client uploads ``Enc(w_u x_u)`` (request: round id || its
    normalized weight as float64); the server adds the ciphertexts (``CkksServer``); stage 2
    sends the encrypted sum to ``CKKS_DECRYPTORS`` survivors (they hold the provisioned
    secret key, as in simulation where one survivor decrypts) and accepts their
    float64 mean only if every answer is identical (CKKS decryption here is deterministic
    and rounded), so one lying or failing decryptor cannot pass a wrong mean unnoticed.
    ``server_context``: the provisioned public context (no secret key)."""

    stages = STAGES["ckks"]

    def __init__(self, backend, participants, weights, dim, rng, server_context=None):
        from privcrypt.secagg import ckks as _ck
        if server_context is None:
            raise ValueError("ckks needs the provisioned public context (server_context)")
        ids = sorted(participants)
        if backend.mode == "compact":
            backend.quantizer.check_sum_fits(len(ids), 2**backend.params.lane_bits)
        wmax = max(weights[c] for c in ids)
        self.wn = {c: weights[c] / wmax for c in ids}
        self.round_id = rng.bytes(16)
        self.server = _ck.CkksServer(self.round_id, server_context, self.wn, dim, mode=backend.mode,
                                     min_clients=backend.min_clients)
        self.dim, self.answers = int(dim), {}
        self.bytes_up = self.bytes_down = 0

    def requests(self, stage, alive):
        if stage == "ckks_upload":
            out = {c: self.round_id + struct.pack("<d", self.wn[c]) for c in sorted(alive) if c in self.wn}
        else:
            self.result = self.server.finish()  # ProtocolAbort below min_clients
            dec = sorted(self.server.received & set(alive))[:CKKS_DECRYPTORS]
            out = {c: self.result for c in dec}
        self.bytes_down += sum(len(m) for m in out.values())
        return out

    def receive(self, stage, cid, reply):
        try:
            if stage == "ckks_upload":
                m = _pl.Message.decode(reply, round_id=self.round_id, stage="ckks_upload")
                if m.sender != cid:
                    raise MalformedInput(f"reply from client {cid} names sender {m.sender}")
                self.server.receive(reply)
            else:
                if len(reply) < 8:
                    raise MalformedInput("decryption reply truncated")
                (bound,) = struct.unpack_from("<d", reply, 0)
                mean = _pl.unpack_array(reply[8:], dtype=np.float64, shape=(self.dim,))
                if not (np.all(np.isfinite(mean)) and np.isfinite(bound) and bound >= 0):
                    raise MalformedInput("decrypted mean or its error bound is not finite")
                self.answers[cid] = (bound, mean)
        except (MalformedInput, ValueError) as exc:
            raise _reject(exc) from None
        self.bytes_up += len(reply)

    def finish(self):
        if not self.answers:
            raise ProtocolAbort("no survivor decrypted the aggregate", stage="ckks_result")
        (bound, mean), *rest = self.answers.values()
        if any(b != bound or not np.array_equal(m, mean) for b, m in rest):
            raise ProtocolAbort("decrypting clients disagree on the aggregate", stage="ckks_result")
        return AggregationResult(mean, self.bytes_up, self.bytes_down, frozenset(self.server.received),
                                 {"atol": bound, "decryptors": sorted(self.answers)})


def make_server_round(backend, participants, weights, dim: int, *, rng, server_context: bytes | None = None
                      ) -> ServerRound:
    """The server half of one round for ``backend`` (an aggregator from
    :func:`fl.server.make_backend`); ``server_context``: ckks's provisioned public
    context. Raises ``ValueError`` for a backend without an adapter (spdz)."""
    cls = {"plain": _PlainServerRound, "masking": _MaskingServerRound, "ckks": _CkksServerRound}.get(backend.name)
    if cls is None:
        raise ValueError(f"backend {backend.name!r} has no Flower adapter yet (plain, masking, ckks)")
    if backend.name == "ckks":
        return cls(backend, participants, weights, dim, rng, server_context)
    return cls(backend, participants, weights, dim, rng)


# -- client half ---------------------------------------------------------------------------

_MAGIC = b"PCFS1"  # privcrypt flower state, version 1


class _Reader:
    """Bounds-checked reads from a state buffer; anything off raises MalformedInput."""

    def __init__(self, buf: bytes):
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

    def blob(self) -> bytes:
        return self.take(self.u32())

    def done(self) -> None:
        if self.off != len(self.mv):
            raise MalformedInput("trailing bytes in client state")


def _blob(b: bytes) -> bytes:
    return struct.pack("<I", len(b)) + b


def dump_masking_state(c: _mk.MaskingClient) -> bytes:
    """Serialize a :class:`privcrypt.secagg.masking.MaskingClient` between stages: the
    fields each stage method reads (round id, round configuration, the two X25519 secret
    keys, the self-mask seed, neighbours' public keys, the Shamir shares it holds, the set
    of neighbours that shared). The update itself is never stored (it is set right before
    ``masked_input``). SECRET: handle like the keys it contains."""
    stage = c._stage
    out = [_MAGIC, struct.pack("<IBBI", c.cid, stage, 0 if c._rounding == "stochastic" else 1, c.n_clipped)]
    out.append(c.round_id)
    out.append(_blob(c.cfg.encode()))
    out.append(c._c.private_bytes() + c._s.private_bytes())
    if stage >= 2:
        out.append(c._b)
        out.append(struct.pack("<I", len(c.c_pk)))
        for v in sorted(c.c_pk):
            out.append(struct.pack("<I", v) + c.c_pk[v] + c.s_pk[v])
        out.append(struct.pack("<I", len(c.held)))
        for o in sorted(c.held):
            s_sh, b_sh = c.held[o]
            out.append(struct.pack("<I", o) + s_sh.to_bytes(33, "big") + b_sh.to_bytes(33, "big"))
    if stage >= 3:
        u2 = sorted(c.u2)
        out.append(struct.pack(f"<I{len(u2)}I", len(u2), *u2))
    return b"".join(out)


def load_masking_state(buf: bytes, *, dim: int, rng) -> _mk.MaskingClient:
    """Inverse of :func:`dump_masking_state`. Raises ``MalformedInput`` for anything off
    (truncation, trailing bytes, bad keys, a stage it does not know)."""
    r = _Reader(buf)
    if r.take(len(_MAGIC)) != _MAGIC:
        raise MalformedInput("not a masking client state")
    cid, stage, rounding, n_clipped = struct.unpack("<IBBI", r.take(10))
    if not 1 <= stage <= 3 or rounding > 1:
        raise MalformedInput("bad stage or rounding in client state")
    c = _mk.MaskingClient(cid, np.zeros(dim), rng=rng, rounding=("stochastic", "nearest")[rounding])
    c._stage, c.n_clipped = stage, n_clipped
    c.round_id = r.take(16)
    try:
        c.cfg = _mk.RoundConfig.decode(r.blob())
    except ValueError as exc:  # main's RoundConfig.decode lets the overflow guard's ValueError out
        raise MalformedInput(f"bad round configuration in client state: {exc}") from None
    if c.cfg.dim != dim:
        raise MalformedInput("client state is for a model of another size")
    try:
        c._c = KeyPair.from_private_bytes(r.take(32))
        c._s = KeyPair.from_private_bytes(r.take(32))
    except (InvalidKey, ValueError, TypeError):
        raise MalformedInput("bad key in client state") from None
    if stage >= 2:
        c._b = r.take(32)
        c.c_pk, c.s_pk = {}, {}
        for _ in range(r.u32()):
            (v,) = struct.unpack("<I", r.take(4))
            if v in c.c_pk:
                raise MalformedInput("repeated neighbour in client state")
            c.c_pk[v], c.s_pk[v] = r.take(32), r.take(32)
        c.held = {}
        for _ in range(r.u32()):
            (o,) = struct.unpack("<I", r.take(4))
            if o in c.held:
                raise MalformedInput("repeated share owner in client state")
            c.held[o] = (int.from_bytes(r.take(33), "big"), int.from_bytes(r.take(33), "big"))
    if stage >= 3:
        n = r.u32()
        c.u2 = frozenset(struct.unpack(f"<{n}I", r.take(4 * n)))
    r.done()
    return c


def _masking_handle(stage, state, payload, *, cid, dim, update, rounding, rng):
    if stage == _mk.ADVERTISE:  # a new round: any state left from an aborted round is dropped
        c = _mk.MaskingClient(cid, np.zeros(dim), rng=rng, rounding=rounding)
        reply = c.advertise_keys(payload)
    else:
        if state is None:
            raise ProtocolAbort(f"client {cid}: no state for stage {stage}", stage=stage)
        c = load_masking_state(state, dim=dim, rng=rng)
        if stage == _mk.SHARE:
            reply = c.share_keys(payload)
        elif stage == _mk.MASKED:
            if update is None or np.shape(update) != (dim,):
                raise ValueError("the masked_input stage needs the client's update of the model's size")
            c._x = np.asarray(update, dtype=np.float64)  # main's MaskingClient keeps it here
            reply = c.masked_input(payload)
            c._x = None
        elif stage == _mk.UNMASK:
            return c.unmask(payload), None  # round over: the caller wipes the state
        else:
            raise MalformedInput(f"unknown masking stage {stage!r}")
    return reply, dump_masking_state(c)


def _plain_handle(stage, state, payload, *, cid, dim, update, rounding, rng):
    if stage != "plain_input":
        raise MalformedInput(f"unknown plain stage {stage!r}")
    if len(payload) != 16:
        raise MalformedInput("plain request must be the 16-byte round id")
    if update is None or np.shape(update) != (dim,):
        raise ValueError("the plain_input stage needs the client's update of the model's size")
    return _pl.PlainClient(cid, update).send_input(bytes(payload)), None


def _ckks_handle(stage, state, payload, *, cid, dim, update, rounding, rng, secret_context=None, params=None):
    from privcrypt.secagg import ckks as _ck
    if secret_context is None:
        raise ValueError("ckks needs this node's provisioned secret context")
    p = dict(params or {})
    client = _ck.CkksClient(cid, secret_context, mode=p.get("mode", "default"), clip=p.get("clip"),
                            bits=int(p.get("bits", 16)), rng=rng)
    if stage == "ckks_upload":
        if len(payload) != 24:
            raise MalformedInput("ckks upload request must be round id || float64 weight")
        (w,) = struct.unpack_from("<d", payload, 16)
        if not (np.isfinite(w) and 0 < w <= 1):
            raise MalformedInput("ckks weight must be in (0, 1]")
        if update is None or np.shape(update) != (dim,):
            raise ValueError("the ckks_upload stage needs the client's update of the model's size")
        return client.upload(bytes(payload[:16]), update, w), None
    if stage == "ckks_result":
        rid = _pl.Message.decode(payload).round_id
        mean, info = client.receive_result(rid, payload)
        mean = np.asarray(mean, dtype=np.float64)
        if mean.shape != (dim,):
            raise MalformedInput("decrypted aggregate has the wrong size")
        return struct.pack("<d", float(info["error_bound"])) + _pl.pack_array(mean), None
    raise MalformedInput(f"unknown ckks stage {stage!r}")


def client_handle(backend: str, stage: str, state: bytes | None, payload: bytes, *, cid: int, dim: int,
                  update: np.ndarray | None = None, rounding: str = "stochastic", rng=None,
                  secret_context: bytes | None = None, params: dict | None = None):
    """The client half: run ``stage`` of ``backend`` for client ``cid`` on the server's
    ``payload`` bytes, restoring the protocol state from ``state``. Returns ``(reply_bytes,
    new_state)``; ``new_state`` is ``None`` when the round is over for this client (wipe
    it). ``update`` is needed at ``INPUT_STAGE[backend]`` only. ckks: ``secret_context``
    (this node's provisioned key) and ``params`` (``mode``, ``clip``, ``bits``). Errors:
    ``PrivcryptError`` for anything wrong in the bytes (the ClientApp turns it into an
    error reply)."""
    if backend == "ckks":
        return _ckks_handle(stage, state, payload, cid=cid, dim=dim, update=update, rounding=rounding, rng=rng,
                            secret_context=secret_context, params=params)
    h = {"plain": _plain_handle, "masking": _masking_handle}.get(backend)
    if h is None:
        raise ValueError(f"backend {backend!r} has no Flower adapter yet (plain, masking, ckks)")
    return h(stage, state, payload, cid=cid, dim=dim, update=update, rounding=rounding, rng=rng)
