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

Everything masking-specific (the hardened ``privcrypt.secagg.masking`` package, its
authenticated mode and the client state layout) is in :mod:`fl.flower.masking_adapter`.
The authenticated masking round has one more stage (``query.consistency_check``, see
``MASKING_AUTH_STAGES``); a server round's own ``stages`` attribute is authoritative.
"""

from __future__ import annotations

import struct

import numpy as np

from fl.flower.masking_adapter import (MASKING_AUTH_STAGES, MASKING_STAGES, MaskingServerRound,
                                       dump_masking_state, load_masking_state, masking_handle)
from privcrypt.exceptions import MalformedInput, ProtocolAbort
from privcrypt.secagg import masking as _mk
from privcrypt.secagg import plain as _pl
from privcrypt.secagg.base import AggregationResult

__all__ = ["STAGES", "INPUT_STAGE", "MASKING_AUTH_STAGES", "ServerRound", "make_server_round", "client_handle",
           "dump_masking_state", "load_masking_state"]

#: backend -> ordered ``(stage, Flower message category)``
STAGES = {
    "plain": (("plain_input", "train"),),
    "masking": MASKING_STAGES,  # authenticated: MASKING_AUTH_STAGES
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


def make_server_round(backend, participants, weights, dim: int, *, rng, server_context: bytes | None = None,
                      enrolment: dict | None = None) -> ServerRound:
    """The server half of one round for ``backend`` (an aggregator from
    :func:`fl.server.make_backend`); ``server_context``: ckks's provisioned public
    context; ``enrolment``: ``{client id: Ed25519 public key}`` for authenticated masking
    (required there). Raises ``ValueError`` for a backend without an adapter (spdz)."""
    cls = {"plain": _PlainServerRound, "masking": MaskingServerRound, "ckks": _CkksServerRound}.get(backend.name)
    if cls is None:
        raise ValueError(f"backend {backend.name!r} has no Flower adapter yet (plain, masking, ckks)")
    if backend.name == "ckks":
        return cls(backend, participants, weights, dim, rng, server_context)
    if backend.name == "masking":
        return cls(backend, participants, weights, dim, rng, enrolment)
    return cls(backend, participants, weights, dim, rng)


# -- client half ---------------------------------------------------------------------------

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
                  secret_context: bytes | None = None, params: dict | None = None, identity=None,
                  enrolment: dict | None = None, strict: bool = False):
    """The client half: run ``stage`` of ``backend`` for client ``cid`` on the server's
    ``payload`` bytes, restoring the protocol state from ``state``. Returns ``(reply_bytes,
    new_state)``; ``new_state`` is ``None`` when the round is over for this client (wipe
    it). ``update`` is needed at ``INPUT_STAGE[backend]`` only. ckks: ``secret_context``
    (this node's provisioned key) and ``params`` (``mode``, ``clip``, ``bits``). masking:
    ``identity`` (this node's :class:`privcrypt.identity.IdentityKey`) and ``enrolment``
    switch on the authenticated mode (the client then refuses unauthenticated rounds);
    ``strict`` refuses to clip (``ValueError``). Errors:
    ``PrivcryptError`` for anything wrong in the bytes (the ClientApp turns it into an
    error reply)."""
    if backend == "ckks":
        return _ckks_handle(stage, state, payload, cid=cid, dim=dim, update=update, rounding=rounding, rng=rng,
                            secret_context=secret_context, params=params)
    if backend == "masking":
        return masking_handle(stage, state, payload, cid=cid, dim=dim, update=update, rounding=rounding, rng=rng,
                              identity=identity, enrolment=enrolment, strict=strict)
    h = {"plain": _plain_handle}.get(backend)
    if h is None:
        raise ValueError(f"backend {backend!r} has no Flower adapter yet (plain, masking, ckks)")
    return h(stage, state, payload, cid=cid, dim=dim, update=update, rounding=rounding, rng=rng)
