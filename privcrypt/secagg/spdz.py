"""``spdz``: clients secret-share their update to ``n_parties`` compute parties (privcrypt.mpc).

Round, stage by stage (every client <-> party message is a ``privcrypt.wire.Message`` with
the round id and stage bound in; ``bytes_up`` / ``bytes_down`` are their real lengths):

1. ``setup`` (dealer -> client, counted down): a fresh 256-bit seed; the client's mask
   ``r = AES-256-CTR(seed)`` in Z_p^d. The dealer gives the compute parties authenticated
   shares ``[r]`` (in this simulation dealt just in time from the stored seed; dealer ->
   party traffic is not client traffic and is not counted in ``bytes_down``).
2. ``input`` (client -> each party, counted up): ``δ = encode(clip(x)) - r mod p``, uniform
   to anyone without ``r``. The parties compare SHA-256 digests of the ``δ`` they received
   (echo broadcast); a client that sent different ``δ`` to different parties is excluded.
   Each party sets ``[x] = [r] + δ`` (SPDZ's input protocol: the client never needs the MAC
   key). Clients in ``dropped`` receive their setup message and then send nothing. With input
   validation (``norm_bound`` or ``verify_range``) the vector also carries the ``L`` bits of
   ``encode(x) + B`` per coordinate, masked alike; a malformed message excludes its sender.
3. ``range_check`` (with ``norm_bound`` or ``verify_range``): in-MPC range proof
   (:mod:`privcrypt.mpc.rangeproof`) that every encoded coordinate lies in ``[-B, B]``,
   ``B = ceil(clip·2^f)``; failing clients are listed in ``stats["rejected_range"]``.
4. ``norm_check`` (only with ``norm_bound``): the parties compute ``[‖x‖²]`` with Beaver
   triples and open *that scalar only* (MAC-checked); a client with ``‖x‖ > norm_bound`` is
   left out of the sum and listed in ``stats["rejected_norm"]``.
5. ``aggregate``: each party locally forms its share of ``Σ w_k·x_k`` (public integer
   weights) and the parties open the sum after the MAC check; the mean is sum / Σ w_k.

Threat model: the trusted dealer is semi-honest and does not collude. Any coalition of at
most ``n_parties - 1`` compute parties learns nothing about an individual update except,
with ``norm_bound`` set, each client's squared norm (which the check opens). A compute party
that alters a share, a MAC share or an opened value is detected at the MAC check:
``MacCheckFailed``, the round aborts and no result is released. A malicious client chooses
its masked input freely, so its shared value can be any element of Z_p: with ``norm_bound``
or ``verify_range`` the range proof and norm check limit it to ``|x_i| <= clip`` and
``‖x‖ <= norm_bound`` (cheating passes with probability ``<= 2/p``); **without them a
malicious client can submit any field element and corrupt the sum**. There is **no tolerance for a compute party dropping out**: additive
sharing needs every party's share; use the ``masking`` backend (Shamir-shared seeds) when
share holders may drop. Client dropouts are fine: survivors below ``min_clients`` ->
``ProtocolAbort`` naming the stage, never a partial result. Channels between dealer, clients
and parties are assumed private and authenticated (TLS in deployment); this simulation
serializes every client message but does not encrypt it.

Error: each coordinate is clipped to ``±clip`` (counted in ``stats["clipped"]``) and encoded
with round-to-nearest at ``frac_bits`` bits (error <= 2^-(f+1)); the weighted mean of such
values has the same error bound. Non-integer weights are rounded to integers with as many
bits as the field allows, which adds at most another 2^-(f+1): ``atol = 2^-f``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from typing import Mapping

import numpy as np
from Crypto.Cipher import AES

from privcrypt.encoding import FixedPoint
from privcrypt.exceptions import MalformedInput, UnsupportedParameters
from privcrypt.mpc import SpdzEngine, field
from privcrypt.mpc.dealer import OneShot
from privcrypt.mpc.rangeproof import decompose, range_weights, verify_range
from privcrypt.mpc.shares import MAX_ABS_BITS, Shared
from privcrypt.rng import RandomSource, resolve_rng
from privcrypt.secagg.base import (AggregationResult, SecureAggregator, check_declared_range,
                                   check_survivors, finish_round, validate_round_inputs)
from privcrypt.wire import Message, pack_array, unpack_array

__all__ = ["SpdzAggregator", "SpdzClient", "SpdzComputeParty", "expand_mask", "DEALER", "party_id"]

DEALER = 0xFFFFFF00  # wire id of the dealer
_PARTY0 = 0xFFFFFF10  # wire id of compute party j is _PARTY0 + j


def party_id(j: int) -> int:
    """Wire id of compute party ``j``."""
    return _PARTY0 + int(j)


def expand_mask(seed: bytes, dim: int) -> np.ndarray:
    """The client mask: ``dim`` uniform elements of Z_p from AES-256-CTR keyed by ``seed``
    (61-bit words; the value p, chance 2^-61, is skipped). Dealer and client both call it."""
    if len(seed) != 32:
        raise MalformedInput("mask seed must be 32 bytes")
    extra = 8
    while True:
        stream = AES.new(seed, AES.MODE_CTR, nonce=b"", initial_value=bytes(16))
        words = np.frombuffer(stream.encrypt(bytes(8 * (dim + extra))), dtype="<u8") & np.uint64(field.P)
        words = words[words != np.uint64(field.P)]
        if words.size >= dim:
            return words[:dim].astype(np.uint64)
        extra *= 2  # pragma: no cover - needs 9 hits of probability 2^-61


class SpdzClient:
    """One client: receives its mask seed at set-up, then sends ``δ = encode(x) - r`` to every
    compute party. Holds no MAC key and no other client's data."""

    def __init__(self, cid: int, update: np.ndarray, fp: FixedPoint, round_id: bytes,
                 *, range_bound: int | None = None):
        self.cid, self.round_id, self._fp = int(cid), round_id, fp
        self._range_bound = range_bound  # B: also send the bits of encode(x) + B (range proof)
        self._update = np.asarray(update, dtype=np.float64)
        self._seed: bytes | None = None
        self.clipped = 0

    def receive_setup(self, msg: bytes) -> None:
        m = Message.decode(msg, round_id=self.round_id, stage="setup")
        if m.sender != DEALER or m.recipient != self.cid:
            raise MalformedInput("set-up message not from the dealer to this client")
        if len(m.payload) != 32:
            raise MalformedInput("set-up payload must be a 32-byte seed")
        self._seed = m.payload

    def input_messages(self, n_parties: int) -> list[bytes]:
        """The ``input`` stage: the same masked vector to each compute party. With a range
        proof, the vector is ``encode(x)`` followed by the bits of ``encode(x) + B``
        (:func:`privcrypt.mpc.rangeproof.decompose`), all masked with one expanded mask."""
        if self._seed is None:
            raise MalformedInput("no set-up received")
        enc, self.clipped = self._fp.encode_clipped(self._update)
        if self._range_bound is not None:
            signed = np.where(enc > np.uint64(field.P // 2), enc.astype(np.int64) - np.int64(field.P),
                              enc.astype(np.int64))
            bits = decompose(signed, self._range_bound)
            enc = np.concatenate([enc, bits.reshape(-1)])
        delta = field.submod(enc, expand_mask(self._seed, enc.size))
        self._seed = None  # single use
        payload = pack_array(delta)
        return [Message(self.round_id, "input", self.cid, party_id(j), payload).encode()
                for j in range(n_parties)]


class SpdzComputeParty:
    """Compute party ``j``: parses the clients' ``input`` messages addressed to it and keeps
    its digest of each for the echo-broadcast consistency check. Its share rows of every
    :class:`~privcrypt.mpc.shares.Shared` live in the engine, which simulates the
    inter-party protocol (openings, MAC checks) on the parties' rows. ``range_bits``: the
    ``L`` bits per coordinate each client appends for the range proof (0: none).
    ``clients``: the ids set up for this round (None: accept any); input from any other
    sender raises ``MalformedInput``."""

    def __init__(self, j: int, round_id: bytes, dim: int, range_bits: int = 0,
                 clients: frozenset[int] | None = None):
        self.j, self.round_id, self.dim = int(j), round_id, int(dim)
        self.range_bits = int(range_bits)
        self.clients = None if clients is None else frozenset(clients)
        self.inputs: dict[int, np.ndarray] = {}
        self.bit_inputs: dict[int, np.ndarray] = {}
        self.digests: dict[int, bytes] = {}
        self.view: list[bytes] = []  # every message this party received (record_view)

    def receive_input(self, msg: bytes, *, record: bool = False, channel_sender: int | None = None) -> None:
        """Parse one client's ``input`` message (``MalformedInput`` if it is not a well-formed
        message of this round to this party). ``channel_sender``: the client id the
        authenticated channel delivered it from (TLS in deployment; the in-process driver
        knows who sent what); when given, a header claiming another sender is malformed, so a
        client cannot impersonate (and so exclude) another one. None: trust the header."""
        m = Message.decode(msg, round_id=self.round_id, stage="input")
        if channel_sender is not None and m.sender != channel_sender:
            raise MalformedInput(f"input from client {channel_sender} claims to come from client {m.sender}")
        if m.recipient != party_id(self.j):
            raise MalformedInput("input message addressed to another party")
        if self.clients is not None and m.sender not in self.clients:
            raise MalformedInput(f"input from client {m.sender}, which was not set up for this round")
        if m.sender in self.inputs:
            raise MalformedInput(f"repeated input from client {m.sender}")
        delta = unpack_array(m.payload, dtype=np.uint64, shape=(self.dim * (1 + self.range_bits),))
        if delta.size and int(delta.max()) >= field.P:
            raise MalformedInput("masked input is not a vector of residues mod p")
        self.inputs[m.sender] = delta[: self.dim]
        self.bit_inputs[m.sender] = delta[self.dim:]
        self.digests[m.sender] = hashlib.sha256(m.payload).digest()
        if record:
            self.view.append(bytes(msg))

    def weighted_sum(self, engine: SpdzEngine, acc: Shared | None, x: Shared, weight: int) -> Shared:
        """Add ``weight·x`` to the running sum (local: no communication)."""
        term = x if weight == 1 else engine.mul_public(x, weight, truncate=False)
        return term if acc is None else engine.add(acc, term)


def cpu_timer(cpu: dict):
    """``timed(bucket, fn, *args, key=None, **kwargs)``: run ``fn`` and add its process CPU
    time to ``cpu[bucket]`` (or ``cpu[bucket][key]``, per client). Shared by the SPDZ
    drivers so that every party's cost is booked the same way."""

    def timed(bucket, fn, *args, key=None, **kwargs):
        t0 = time.process_time()
        out = fn(*args, **kwargs)
        dt = time.process_time() - t0
        if key is None:
            cpu[bucket] += dt
        else:
            cpu[bucket][key] = cpu[bucket].get(key, 0.0) + dt
        return out

    return timed


class SpdzAggregator(SecureAggregator):
    """SPDZ secure aggregation: clients secret-share their updates to ``n_parties`` compute
    parties, which open only the (weighted) sum. Stages are in the module docstring.

    Threat model:

    * Privacy: any coalition of at most ``n_parties - 1`` compute parties learns nothing
      about an individual update (it sees uniformly masked inputs and uniform shares). With
      ``norm_bound`` set, the parties also learn **each client's squared norm** (the check
      opens that scalar) and nothing else about the update.
    * Integrity: a compute party that alters a share, a MAC share or an opened value is
      detected at the MAC check: ``MacCheckFailed``, the round aborts, no mean is released.
    * Malicious clients: a client chooses its masked input, so its shared value can be any
      element of Z_p regardless of ``clip``. With ``norm_bound`` set (or
      ``verify_range=True``) an in-MPC range proof runs before the norm check and the sum:
      the client also inputs the bits of ``encode(x) + B`` (``B = ceil(clip·2^f)``) and the
      parties check, with jointly tossed random linear combinations (MAC-checked), that they
      are bits and recombine to the input; soundness error ``<= 2/p`` per client. A client
      then submits at most an in-range update (``|x_i| <= clip``) with
      ``‖x‖ <= norm_bound``; one that fails is listed in ``stats["rejected_range"]`` and the
      round goes on. Because accepted coordinates are in ``[-B, B]``, ``‖v‖² <= dim·B²``;
      ``dim·B² >= 2^59`` raises ``UnsupportedParameters`` up front, so the opened norm is
      exact (no wrap mod p). **Without** ``norm_bound``/``verify_range`` a malicious client
      can submit any field element and corrupt the sum arbitrarily (it wraps silently).
      Cost: ``L = bitlen(2B)`` extra inputs and Beaver triples per coordinate (docs/mpc.md).
    * Trust: the dealer is semi-honest and does not collude with the parties; channels are
      private and authenticated (TLS in deployment).
    * Dropout: clients in ``dropped`` (silent after set-up) are left out; fewer than
      ``min_clients`` accepted clients -> ``ProtocolAbort`` naming the stage. There is **no
      tolerance for a compute party dropping out**: additive sharing needs every party's
      share. Use the ``masking`` backend (Shamir-shared seeds) for share-holder dropouts.

    Parameters: ``n_parties`` (>= 2); ``frac_bits`` (fixed-point bits); ``clip`` (each
    coordinate is clipped to ``±clip``, counted in ``stats["clipped"]``); ``norm_bound``
    (reject clients with ``‖x‖₂ > norm_bound``, listed in ``stats["rejected_norm"]``; turns
    on the range proof); ``min_clients`` (default 2; below 2 is refused: the mean of one
    client is its update); ``strict`` (raise ``ValueError`` before the round instead of
    clipping; otherwise clipping warns with ``ClippingWarning``); ``verify_range`` (the range proof without a norm
    bound); ``rng`` (``privcrypt.rng`` source); ``record_view`` (keep every message
    compute party 0 received in ``stats["server_view"]``). ``atol = 2^-frac_bits``.
    """

    name = "spdz"

    def __init__(self, n_parties: int = 3, frac_bits: int = 16, clip: float = 8.0,
                 norm_bound: float | None = None, min_clients: int = 2, *,
                 verify_range: bool = False, strict: bool = False, rng: RandomSource | None = None,
                 record_view: bool = False):
        if int(n_parties) < 2:
            raise ValueError("n_parties must be >= 2")
        if not (math.isfinite(clip) and clip > 0):
            raise ValueError("clip must be positive and finite")
        if norm_bound is not None and not (math.isfinite(norm_bound) and norm_bound > 0):
            raise ValueError("norm_bound must be positive and finite")
        if int(min_clients) < 2:
            raise ValueError("min_clients must be >= 2: a secure aggregate of one client is "
                             "that client's update")
        self.strict = bool(strict)
        self.n_parties, self.frac_bits, self.clip = int(n_parties), int(frac_bits), float(clip)
        self.norm_bound = None if norm_bound is None else float(norm_bound)
        self.min_clients = int(min_clients)
        self.record_view = bool(record_view)
        self._rng = resolve_rng(rng)
        self._fp = FixedPoint(frac_bits=self.frac_bits, modulus=field.P, bound=self.clip)
        #: B: every honest encoded coordinate is an integer in [-B, B] (round-to-nearest of
        #: a value clipped to ±clip·2^f); the range proof shows exactly this bound.
        self.range_bound = math.ceil(self.clip * 2.0**self.frac_bits)
        self.verify_range = bool(verify_range) or self.norm_bound is not None
        self.range_bits = len(range_weights(self.range_bound)) if self.verify_range else 0

    @property
    def atol(self) -> float:
        return 2.0**-self.frac_bits

    # -- parameter checks ------------------------------------------------------------------
    def _integer_weights(self, w: Mapping[int, float]) -> tuple[dict[int, int], int]:
        """Public integer weights: exact when all weights are integers, else rounded with
        ``wb`` bits so that the weight error stays below 2^-(f+1). Returns (weights, wb)."""
        f, n = self.frac_bits, len(w)
        if all(float(v).is_integer() for v in w.values()):
            out = {k: int(v) for k, v in w.items()}
            wb = 0
        else:
            head = int(math.ceil(n * self.clip)).bit_length()
            wb = min(40, MAX_ABS_BITS - 1 - f - head)
            wmax = max(w.values())
            rel = sorted(v / wmax for v in w.values())
            worst = sum(rel[: min(self.min_clients, n)])  # at least this much weight survives
            if wb < 1 or self.clip * n * 2.0**-wb / worst > 2.0 ** -(f + 1):
                raise UnsupportedParameters(
                    f"non-integer weights for {n} clients with clip {self.clip} cannot be "
                    f"represented within atol at {f} fractional bits; use integer weights")
            out = {k: max(1, round(v / wmax * 2**wb)) for k, v in w.items()}
        if self.range_bound * sum(out.values()) >= 2**MAX_ABS_BITS:
            raise UnsupportedParameters("weighted sum could overflow Z_p: lower clip, weights or frac_bits")
        return out, wb

    def _check_norm_fits(self, dim: int) -> None:
        """With the range proof every accepted coordinate is an integer in [-B, B], so
        ``‖v‖² <= dim·B²`` over the integers; requiring ``dim·B² < 2^59 < p/4`` makes the
        opened norm exact (no wrap mod p). Raises ``UnsupportedParameters`` otherwise."""
        if self.norm_bound is not None and dim * self.range_bound**2 >= 2**MAX_ABS_BITS:
            raise UnsupportedParameters(
                f"squared norm of {dim} values clipped to ±{self.clip} could overflow Z_p at "
                f"2·{self.frac_bits} fractional bits; lower clip or frac_bits")

    def _range_ok(self, engine: SpdzEngine, xk: Shared, bit_mask: np.ndarray, bit_delta: np.ndarray,
                  cid: int, timed) -> bool:
        """The ``range_check`` stage for one client: its bits enter through the input
        protocol (dealer masks, scale 0, MACs), then :func:`verify_range` (MAC-checked;
        ``MacCheckFailed`` if a compute party cheats, False if the client does)."""
        L, dim = self.range_bits, xk.size
        masks = timed("dealer", lambda: OneShot("input-mask", (engine.dealer.authenticate(bit_mask),)))
        bits = timed("parties", lambda: engine.from_masked_input(masks, bit_delta, frac_bits=0, bound=1.0))
        triples = timed("dealer", engine.dealer.triples, (dim, L))
        return timed("parties", lambda: verify_range(engine, xk, bits.reshape(dim, L), self.range_bound,
                                                     label=str(cid).encode(), triples=triples))

    def _client_share(self, engine: SpdzEngine, party0: "SpdzComputeParty", seed: bytes, cid: int, dim: int,
                      timed) -> Shared | None:
        """One consistent client's input as an authenticated share (the dealer's masks from
        the client's seed, the client's masked input), range-proved when the range proof is
        on. Returns ``None`` if the client fails the range proof. Shared by every SPDZ
        driver (mean and Multi-Krum)."""
        L = self.range_bits
        mask = expand_mask(seed, dim * (1 + L))
        masks = timed("dealer", lambda: OneShot("input-mask", (engine.dealer.authenticate(mask[:dim]),)))
        xk = timed("parties", lambda: engine.from_masked_input(
            masks, party0.inputs[cid], frac_bits=self.frac_bits, bound=self.clip))
        if L and not self._range_ok(engine, xk, mask[dim:], party0.bit_inputs[cid], cid, timed):
            return None
        return xk

    # -- one round -------------------------------------------------------------------------
    def aggregate(self, updates, weights=None, dropped=frozenset()) -> AggregationResult:
        upd, w, dropped = validate_round_inputs(updates, weights, dropped)
        dim = next(iter(upd.values())).shape[0]
        check_declared_range(upd, self.clip, self.strict)
        wint, wb = self._integer_weights(w)
        self._check_norm_fits(dim)
        n = self.n_parties
        cpu = {"client": {}, "parties": 0.0, "dealer": 0.0}
        up: dict[int, int] = {}
        malformed: set[int] = set()
        down: dict[int, int] = {}

        timed = cpu_timer(cpu)

        round_id = self._rng.bytes(16)
        # stage "setup": fresh MAC key (engine/dealer per round), one mask seed per client
        engine = timed("dealer", lambda: SpdzEngine(n, self.frac_bits, self._rng, bound=self.clip))
        L, B = self.range_bits, self.range_bound
        parties = [SpdzComputeParty(j, round_id, dim, L, clients=frozenset(upd)) for j in range(n)]
        clients, seeds = {}, {}
        for cid, x in upd.items():
            seeds[cid] = self._rng.bytes(32)
            msg = Message(round_id, "setup", DEALER, cid, seeds[cid]).encode()
            down[cid] = len(msg)
            clients[cid] = SpdzClient(cid, x, self._fp, round_id, range_bound=B if L else None)
            timed("client", clients[cid].receive_setup, msg, key=cid)

        # stage "input": survivors send δ to every party; dropped clients stay silent
        for cid, client in clients.items():
            if cid in dropped:
                continue
            msgs = timed("client", client.input_messages, n, key=cid)
            up[cid] = sum(len(m) for m in msgs)
            for party, m in zip(parties, msgs):
                try:
                    timed("parties", party.receive_input, m, record=self.record_view and party.j == 0,
                          channel_sender=cid)
                except MalformedInput:
                    malformed.add(cid)  # a client's bad message excludes it, not the round
        received = sorted(parties[0].inputs)
        consistent = [c for c in received if c not in malformed and
                      all(hmac.compare_digest(p.digests.get(c, b""), parties[0].digests[c]) for p in parties)]
        inconsistent = sorted(set(received) - set(consistent) - malformed)
        check_survivors(len(consistent), self.min_clients, "input")

        # stages "range_check", "norm_check" and "aggregate", client by client (memory O(n·dim·L))
        acc, accepted, rejected, rejected_range = None, [], [], []
        for cid in consistent:
            xk = self._client_share(engine, parties[0], seeds[cid], cid, dim, timed)
            if xk is None:
                rejected_range.append(cid)
                continue
            if self.norm_bound is not None:
                triples = timed("dealer", engine.dealer.triples, (dim,))
                nsq = timed("parties", lambda: float(engine.open(engine.norm2(xk, triples=triples))))
                if nsq > self.norm_bound**2:
                    rejected.append(cid)
                    continue
            acc = timed("parties", parties[0].weighted_sum, engine, acc, xk, wint[cid])
            accepted.append(cid)
        check_survivors(len(accepted), self.min_clients, "norm_check")
        total = timed("parties", lambda: engine.open(acc))
        mean = total / float(sum(wint[c] for c in accepted))

        stats = {
            "client_cpu_s_mean": sum(cpu["client"].values()) / max(1, len(cpu["client"])),
            "client_cpu_s_max": max(cpu["client"].values(), default=0.0),
            "server_cpu_s": cpu["parties"],
            "dealer_cpu_s": cpu["dealer"],
            "bytes_up_max_client": max(up.values(), default=0),
            "bytes_down_max_client": max(down.values(), default=0),
            "clipped": sum(clients[c].clipped for c in accepted),
            "clipped_clients": sorted(c for c in accepted if clients[c].clipped),
            "atol": self.atol,
            "rejected_norm": rejected,
            "rejected_range": rejected_range,
            "range_bits": L,
            "inconsistent_clients": inconsistent,
            "malformed_clients": sorted(malformed),
            "mac_checks": engine.stats["mac_checks"],
            "triples": engine.stats["triples"],
            # each partially opened element: every party sends 8 bytes to every other party
            "inter_party_bytes": engine.stats["opened_elements"] * 8 * n * (n - 1),
            "weight_bits": wb,
            "n_parties": n,
        }
        if self.record_view:
            stats["server_view"] = parties[0].view
        res = AggregationResult(mean, sum(up.values()), sum(down.values()), frozenset(accepted), stats)
        return finish_round(self, res, upd)
