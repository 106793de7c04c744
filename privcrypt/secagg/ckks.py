"""``ckks``: secure aggregation with CKKS homomorphic encryption (``privcrypt.he``).

Parties and messages (only ``bytes`` cross between them, framed by ``privcrypt.wire``):

* :class:`CkksKeyDealer` — provisioning, once, before any round, out of band (FLARE's
  provisioning step): generates the secret key from ``privcrypt.rng`` and hands the *secret*
  context to every client and the *public* context (parameter set + key id, no key) to the
  server. Its bytes are reported as ``stats["provisioning_bytes"]``, not per round.
* :class:`CkksClient` — encrypts ``w_i x_i`` (weights normalized by the largest weight, so
  ``w_i <= 1``) and sends one ``ckks_upload`` message; receives the ``ckks_result`` broadcast
  and decrypts it (rounded before it leaves the client, see docs/he.md).
* :class:`CkksServer` — validates and adds the uploads, streaming; sets the scale of the sum
  to divide by the survivors' total weight; broadcasts the aggregate.

Threat model (semi-honest): the server sees only ciphertexts, public weights and sizes.
Every client holds the secret key (as in NVIDIA FLARE), so **the server colluding with any
single client reads every individual update**; clients that see only the broadcast learn
only the mean. SEAL has no threshold CKKS, so the key cannot be split among clients here.
A malicious server could drop or replay contributions (it sees who sent what) — out of scope.

Dropout: a dropped client simply sends nothing; the sum and the total weight are over the
survivors, so any number may drop. The round aborts with ``ProtocolAbort`` (stage
``ckks_aggregate``) when fewer than ``min_clients`` survive. No partial result is returned.

Modes: ``"default"`` (≈8 bytes/value up; error bound ``atol`` ≈ 2e-7 for equal weights,
with unequal weights ``stats["atol"]``) and ``"compact"`` (16-bit stochastic quantization
under ``clip``, ≈4 bytes/value up, at most 16 clients: the lane overflow guard
``n (2^16 - 1) < 2^20`` of :meth:`Quantizer.check_sum_fits` is checked up front).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from privcrypt.encoding import Quantizer
from privcrypt.exceptions import MalformedInput, UnsupportedParameters
from privcrypt.he import Accumulator, CkksContext, blob, decrypt, encrypt, get_params, noise_bound
from privcrypt.he.client import FLOAT_REL_ERROR, _rounding_step
from privcrypt.rng import RandomSource, resolve_rng
from privcrypt.secagg.base import (AggregationResult, SecureAggregator, check_declared_range,
                                   check_survivors, finish_round, validate_round_inputs)
from privcrypt.secagg.sim import RoundLog
from privcrypt.wire import BROADCAST, SERVER, Message

__all__ = ["CkksAggregator", "CkksKeyDealer", "CkksClient", "CkksServer"]

UPLOAD = "ckks_upload"
RESULT = "ckks_result"
AGGREGATE_STAGE = "ckks_aggregate"


class CkksKeyDealer:
    """Generates the key once and provisions it (see module doc)."""

    def __init__(self, params: str = "n4096-q60", *, max_clients: int = 256,
                 rng: RandomSource | None = None):
        self._ctx = CkksContext.generate(params, rng=rng, max_clients=max_clients)

    def client_context(self) -> bytes:
        """The secret context for a client (send over an authenticated, encrypted channel)."""
        return self._ctx.to_bytes(include_secret=True)

    def server_context(self) -> bytes:
        """The public context for the server: no key material."""
        return self._ctx.to_bytes()


class CkksClient:
    def __init__(self, cid: int, context: bytes, *, mode: str = "default", clip: float | None = None,
                 bits: int = 16, rng: RandomSource | None = None):
        self.cid = int(cid)
        self.ctx = CkksContext.from_bytes(context)
        self.mode, self.clip, self.bits = mode, clip, bits
        self._rng = rng

    def upload(self, round_id: bytes, x: np.ndarray, weight: float) -> bytes:
        payload = encrypt(self.ctx, x, weight=weight, mode=self.mode, clip=self.clip, bits=self.bits,
                          rng=self._rng)
        return Message(round_id, UPLOAD, self.cid, SERVER, payload).encode()

    def receive_result(self, round_id: bytes, msg: bytes) -> tuple[np.ndarray, dict]:
        m = Message.decode(msg, round_id=round_id, stage=RESULT)
        if m.sender != SERVER:
            raise MalformedInput("result not from the server")
        return decrypt(self.ctx, m.payload, dtype=np.float64, with_info=True)


class CkksServer:
    def __init__(self, round_id: bytes, context: bytes, weights: Mapping[int, float], dim: int, *,
                 mode: str = "default", min_clients: int = 1):
        self.round_id = round_id
        ctx = CkksContext.from_bytes(context)
        if ctx.has_secret:  # the server must never be handed a key
            raise ValueError("the server context must not contain a secret key")
        self.weights = dict(weights)
        self.min_clients = int(min_clients)
        self.acc = Accumulator(ctx, dim, mode)
        self.received: set[int] = set()

    def receive(self, msg: bytes) -> None:
        m = Message.decode(msg, round_id=self.round_id, stage=UPLOAD)
        if m.sender not in self.weights or m.sender in self.received:
            raise MalformedInput(f"unexpected or repeated upload from client {m.sender}")
        hdr, _ = blob.parse(m.payload, self.acc.ctx, kind=blob.UPDATE)
        if hdr.weight != self.weights[m.sender]:
            raise MalformedInput(f"client {m.sender} used weight {hdr.weight}, announced {self.weights[m.sender]}")
        self.acc.add(m.payload)
        self.received.add(m.sender)

    def finish(self) -> bytes:
        check_survivors(len(self.received), self.min_clients, AGGREGATE_STAGE)
        return Message(self.round_id, RESULT, SERVER, BROADCAST, self.acc.finish()).encode()


class CkksAggregator(SecureAggregator):
    """CKKS backend (threat model in the module doc).

    ``mode``: ``"default"`` or ``"compact"``. ``clip``: compact mode's declared range of
    each value (default 1.0). ``bits``: compact quantization bits (16). ``params``: named
    parameter set (``"n4096-q60"``). ``min_clients``: fewest survivors (default 2; below 2
    is refused). ``strict``: compact mode raises ``ValueError`` before the round instead of
    clipping (otherwise ``ClippingWarning``); default mode never clips (out of range raises).
    ``max_weight_ratio``: the declared spread of weights that ``atol`` covers (see
    :attr:`atol`). ``rng``: key generation, round ids and compact stochastic rounding.
    """

    name = "ckks"

    def __init__(self, mode: str = "default", *, clip: float = 1.0, bits: int = 16, params: str = "n4096-q60",
                 min_clients: int = 2, max_clients: int = 256, max_weight_ratio: float = 1.0,
                 strict: bool = False, record_view: bool = False, rng: RandomSource | None = None):
        if mode not in ("default", "compact"):
            raise ValueError("mode must be 'default' or 'compact'")
        if int(min_clients) < 2:
            raise ValueError("min_clients must be >= 2: a secure aggregate of one client is "
                             "that client's update")
        self.strict = bool(strict)
        if not max_weight_ratio >= 1.0:
            raise ValueError("max_weight_ratio must be >= 1")
        self.mode = mode
        self.params = get_params(params)
        self.quantizer = Quantizer(float(clip), int(bits)) if mode == "compact" else None
        self.min_clients = int(min_clients)
        self.max_clients = int(max_clients)
        self.max_weight_ratio = float(max_weight_ratio)
        self.record_view = bool(record_view)
        self._rng = resolve_rng(rng)
        self._dealer: CkksKeyDealer | None = None
        self._clients: dict[int, CkksClient] = {}
        self.provisioning_bytes = 0
        self.server_view: list[bytes] = []

    @property
    def atol(self) -> float:
        """Per-coordinate error bound of the mean for inputs in the declared range (default
        mode: ``|x| <= value bound``, 1024 for 256 clients; compact: ``|x| <= clip``) when
        the weights are within ``max_weight_ratio`` of each other (1: equal weights). Default
        mode: noise bound plus half the Li–Micciancio rounding step; compact: one
        quantization step (stochastic rounding). Each round's own bound: ``stats["atol"]``."""
        return self._bound(1.0 * self.max_weight_ratio)

    def _bound(self, count_over_weight: float) -> float:
        if self.mode == "compact":
            return count_over_weight * self.quantizer.step
        e = noise_bound(self.params, 1, 1.0 / count_over_weight)
        value_bound = self.params.max_sum / self.max_clients
        return e + _rounding_step(e) / 2 + FLOAT_REL_ERROR * value_bound

    # -- provisioning (once) ----------------------------------------------------------
    def _client(self, cid: int) -> CkksClient:
        if self._dealer is None:
            self._dealer = CkksKeyDealer(self.params.name, max_clients=self.max_clients, rng=self._rng)
            self._server_ctx = self._dealer.server_context()
            self.provisioning_bytes += len(self._server_ctx)
        if cid not in self._clients:
            secret = self._dealer.client_context()
            self.provisioning_bytes += len(secret)
            q = self.quantizer
            self._clients[cid] = CkksClient(cid, secret, mode=self.mode, clip=q.clip if q else None,
                                            bits=q.bits if q else 16, rng=self._rng)
        return self._clients[cid]

    def aggregate(self, updates, weights=None, dropped=frozenset()) -> AggregationResult:
        upd, w, dropped = validate_round_inputs(updates, weights, dropped)
        dim = next(iter(upd.values())).shape[0]
        if self.mode == "compact":
            try:
                self.quantizer.check_sum_fits(len(upd), 2**self.params.lane_bits)
            except ValueError as exc:
                raise UnsupportedParameters(f"compact CKKS lanes: {exc}") from None
        if len(upd) > self.max_clients:
            raise UnsupportedParameters(f"{len(upd)} clients > max_clients={self.max_clients}")
        wmax = max(w.values())
        wn = {cid: wt / wmax for cid, wt in w.items()}  # public, normalized to (0, 1]
        over = (check_declared_range({c: upd[c] * wn[c] for c in upd}, self.quantizer.clip, self.strict)
                if self.mode == "compact" else {})
        clients = {cid: self._client(cid) for cid in upd}  # provisioning happens before the round
        round_id = self._rng.bytes(16)
        server = CkksServer(round_id, self._server_ctx, wn, dim, mode=self.mode, min_clients=self.min_clients)
        log = RoundLog(record=self.record_view)
        for cid, x in upd.items():
            if cid in dropped:
                continue  # a dropped client simply sends nothing
            with log.client_cpu(cid):
                msg = clients[cid].upload(round_id, x, wn[cid])
            log.up(cid, msg)
            with log.server_cpu():
                server.receive(msg)
        with log.server_cpu():
            result = server.finish()  # ProtocolAbort below min_clients
        survivors = frozenset(server.received)
        for cid in sorted(survivors):  # the encrypted mean goes to every survivor
            log.down(cid, result)
        # Every survivor would decrypt the same bytes to the same rounded mean; one does here.
        with log.client_cpu(min(survivors)):
            mean, info = clients[min(survivors)].receive_result(round_id, result)
        self.server_view = log.server_view
        clipped = {c: k for c, k in over.items() if c in survivors}
        stats = {"mode": self.mode, "atol": info["error_bound"], "rounding_step": info["rounding_step"],
                 "provisioning_bytes": self.provisioning_bytes, "params": self.params.name,
                 "clipped": sum(clipped.values()), "clipped_clients": sorted(clipped),
                 **log.stats()}
        return finish_round(self, AggregationResult(mean, log.bytes_up, log.bytes_down, survivors, stats),
                            upd)
