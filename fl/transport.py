"""How a round's messages travel: the only thing that differs between simulation and
deployment.

:class:`Transport` runs the client half of one round (local training and the client side
of the privacy pipeline, :class:`fl.client.ClientPipeline`) and the secure-aggregation
protocol, and returns the backend's result. :class:`InProcess` does it in this process,
driving the backend's real client and server objects through their serialized messages
(``SecureAggregator.aggregate``); ``fl.flower`` carries the same messages over Flower.
Everything else (sampling, DP accounting and central noise, robust rules, the strategy,
evaluation) stays in :mod:`fl.server`, identical for both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from privcrypt.secagg.base import AggregationResult

__all__ = ["Transport", "InProcess", "RoundOutput"]


@dataclass
class RoundOutput:
    """One round's outcome: the backend's ``result``; ``updates``, the individual vectors
    when the backend reveals them to the server by design (``plain``), else ``None``;
    per-client ``metrics`` from the clients that trained."""

    result: AggregationResult
    updates: dict | None = None
    metrics: dict = field(default_factory=dict)


class Transport(ABC):
    """Runs one round over some transport. Raises ``ProtocolAbort`` when the backend
    cannot finish the round (nothing is returned then)."""

    @abstractmethod
    def run_round(self, round_no: int, participants: list[int], dropped: set[int],
                  weights: dict[int, float], global_vec: np.ndarray) -> RoundOutput:
        """Clients in ``participants`` train from ``global_vec``; those in ``dropped`` go
        silent after key set-up (simulation; a real transport also drops clients that fail
        or time out)."""


class InProcess(Transport):
    """Simulation: every client's pipeline and the backend's parties run in this process.

    ``clients``: list of ``(X, y)``; ``pipeline``: :class:`fl.client.ClientPipeline`;
    ``backend``: a ``privcrypt.secagg`` aggregator; ``attackers``: optional Byzantine
    clients (simulation only); ``rng``: the clients' randomness (DP-SGD batches, noise)."""

    def __init__(self, clients, pipeline, backend, *, rng, attackers=None, adv_examples=None):
        self.clients, self.pipeline, self.backend = clients, pipeline, backend
        self.adv_examples = adv_examples
        self.rng, self.attackers = rng, attackers

    def run_round(self, round_no, participants, dropped, weights, global_vec) -> RoundOutput:
        updates, metrics = {}, {}
        for c in participants:
            if c in dropped:  # silent after key set-up: never trains, never sends
                updates[c] = np.zeros(self.pipeline.output_dim(global_vec.size))
                continue
            X, y = self.clients[c]
            if self.attackers is not None:
                y = self.attackers.poison(c, y)
            xa = None if self.adv_examples is None else self.adv_examples[c]
            updates[c], metrics[c] = self.pipeline.run(c, X, y, global_vec, round_no, rng=self.rng, x_adv=xa)
        if self.attackers is not None:
            updates = self.attackers.corrupt(updates)
        res = self.backend.aggregate(updates, weights, dropped=frozenset(dropped))
        return RoundOutput(res, updates if self.backend.name == "plain" else None, metrics)
