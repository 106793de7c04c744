"""``plain``: every client sends its float64 update in the clear; the server averages.

Threat model: none. The server (and anyone on the wire) sees every individual update. It
exists as the baseline that every secure backend's bytes and CPU are compared with, and it
exchanges the same kind of real serialized messages (``privcrypt.wire``) so that the byte
counts are comparable. Dropout: any number of clients may drop; the round aborts only when
fewer than ``min_clients`` survive.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from privcrypt.rng import RandomSource, resolve_rng
from privcrypt.secagg.base import (AggregationResult, SecureAggregator, check_declared_range,
                                   check_survivors, finish_round, validate_round_inputs)
from privcrypt.secagg.sim import RoundLog
from privcrypt.wire import SERVER, Message, pack_array, unpack_array

__all__ = ["PlainAggregator", "PlainClient", "PlainServer"]

STAGE = "plain_input"


class PlainClient:
    def __init__(self, cid: int, update: np.ndarray):
        self.cid = int(cid)
        self.update = np.asarray(update, dtype=np.float64)

    def send_input(self, round_id: bytes) -> bytes:
        return Message(round_id, STAGE, self.cid, SERVER, pack_array(self.update)).encode()


class PlainServer:
    def __init__(self, round_id: bytes, weights: Mapping[int, float], dim: int, min_clients: int):
        self.round_id = round_id
        self.weights = dict(weights)
        self.dim = int(dim)
        self.min_clients = int(min_clients)
        self.acc = np.zeros(self.dim)
        self.received: set[int] = set()

    def receive(self, msg: bytes) -> None:
        m = Message.decode(msg, round_id=self.round_id, stage=STAGE)
        if m.sender not in self.weights or m.sender in self.received:
            raise ValueError(f"unexpected or repeated input from client {m.sender}")
        x = unpack_array(m.payload, dtype=np.float64, shape=(self.dim,))
        self.acc += self.weights[m.sender] * x
        self.received.add(m.sender)

    def finish(self) -> np.ndarray:
        check_survivors(len(self.received), self.min_clients, STAGE)
        return self.acc / sum(self.weights[c] for c in self.received)


class PlainAggregator(SecureAggregator):
    """No protection: the baseline (see module docstring). ``min_clients``: fewest survivors
    (default 1: plain protects nothing, so one client is allowed). Exact (``atol`` 0).
    ``clip`` (default None: no declared range): when set, each client clips its values to
    ``±clip`` like the secure backends do, so switching backend with the same ``clip``
    gives the same answer; clipping is counted and warned about (``ClippingWarning``), or
    raises ``ValueError`` with ``strict=True``."""

    name = "plain"

    def __init__(self, min_clients: int = 1, *, clip: float | None = None, strict: bool = False,
                 record_view: bool = False, rng: RandomSource | None = None):
        if int(min_clients) < 1:
            raise ValueError("min_clients must be >= 1")
        if clip is not None and not (np.isfinite(clip) and clip > 0):
            raise ValueError("clip must be positive and finite (or None)")
        self.clip = None if clip is None else float(clip)
        self.min_clients = int(min_clients)
        self.strict = bool(strict)
        self.record_view = bool(record_view)
        self._rng = resolve_rng(rng)

    @property
    def atol(self) -> float:
        return 0.0

    def aggregate(self, updates, weights=None, dropped=frozenset()) -> AggregationResult:
        upd, w, dropped = validate_round_inputs(updates, weights, dropped)
        dim = next(iter(upd.values())).shape[0]
        over = {} if self.clip is None else check_declared_range(upd, self.clip, self.strict)
        if self.clip is not None:
            upd = {c: np.clip(x, -self.clip, self.clip) for c, x in upd.items()}
        log = RoundLog(record=self.record_view)
        round_id = self._rng.bytes(16)
        server = PlainServer(round_id, w, dim, self.min_clients)
        for cid, x in upd.items():
            if cid in dropped:
                continue
            with log.client_cpu(cid):
                msg = PlainClient(cid, x).send_input(round_id)
            log.up(cid, msg)
            with log.server_cpu():
                server.receive(msg)
        with log.server_cpu():
            mean = server.finish()
        clipped = {c: k for c, k in over.items() if c in server.received}
        stats = {**log.stats(), "clipped": sum(clipped.values()), "clipped_clients": sorted(clipped),
                 "atol": 0.0}
        return finish_round(self, AggregationResult(mean, log.bytes_up, log.bytes_down,
                                                    frozenset(server.received), stats), upd)
