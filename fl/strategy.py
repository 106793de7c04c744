"""Server strategies: which clients take part in a round, and how the aggregated update
moves the global model.

``Strategy`` is the ABC (as in Flower: selection and the server update are the strategy's;
how the update is aggregated — securely, robustly — is not). The aggregation itself is
done by a secure-aggregation backend or a pure rule in :mod:`fl.aggregation`; the
strategy only sees the aggregate ``delta`` (the mean client update):

* ``FedAvg`` (McMahan et al. 2017): ``w <- w + eta * delta``.
* ``FedAvgM`` (Hsu et al. 2019): server momentum ``v <- beta v + delta; w <- w + eta v``.
* ``FedAdam`` (Reddi et al. 2021, "Adaptive Federated Optimization"): Adam on the
  pseudo-gradient ``-delta`` with ``tau`` as the adaptivity constant.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

__all__ = ["Strategy", "FedAvg", "FedAvgM", "FedAdam", "make_strategy", "sample_clients"]


def sample_clients(client_ids, *, count: int | None = None, rate: float | None = None,
                   uniform) -> list[int]:
    """Pick a round's clients: a fixed ``count`` without replacement, Poisson sampling at
    ``rate`` (each independently), or everyone. ``uniform(n)`` returns n floats in [0, 1)
    (the caller decides whether they come from a seeded generator or the CSPRNG)."""
    ids = sorted(client_ids)
    if rate is not None:
        u = uniform(len(ids))
        return [c for c, x in zip(ids, u) if x < rate]
    if count is None or count >= len(ids):
        return ids
    order = np.argsort(uniform(len(ids)), kind="stable")
    return sorted(ids[i] for i in order[:count])


class Strategy(ABC):
    """A server strategy: ``configure_round`` chooses the participants; ``update`` applies
    the aggregated client update to the global model vector and returns the new one."""

    def __init__(self, *, count: int | None = None, rate: float | None = None):
        self.count, self.rate = count, rate

    def configure_round(self, round_no: int, client_ids, uniform) -> list[int]:
        """The clients sampled for ``round_no`` (see :func:`sample_clients`)."""
        return sample_clients(client_ids, count=self.count, rate=self.rate, uniform=uniform)

    @abstractmethod
    def update(self, weights: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """New global weights from the old ones and the aggregated update."""


class FedAvg(Strategy):
    """``w + server_lr * delta``; with ``server_lr=1`` this is FedAvg."""

    def __init__(self, server_lr: float = 1.0, **kw):
        super().__init__(**kw)
        self.lr = float(server_lr)

    def update(self, weights, delta):
        return weights + self.lr * delta


class FedAvgM(Strategy):
    """FedAvg with server momentum ``beta``."""

    def __init__(self, server_lr: float = 1.0, momentum: float = 0.9, **kw):
        super().__init__(**kw)
        self.lr, self.beta = float(server_lr), float(momentum)
        self.v: np.ndarray | None = None

    def update(self, weights, delta):
        self.v = delta if self.v is None else self.beta * self.v + delta
        return weights + self.lr * self.v


class FedAdam(Strategy):
    """Server-side Adam on the aggregated update (Reddi et al. 2021, Algorithm 2)."""

    def __init__(self, server_lr: float = 0.01, beta1: float = 0.9, beta2: float = 0.99,
                 tau: float = 1e-3, **kw):
        super().__init__(**kw)
        self.lr, self.b1, self.b2, self.tau = float(server_lr), float(beta1), float(beta2), float(tau)
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None

    def update(self, weights, delta):
        if self.m is None:
            self.m = np.zeros_like(delta)
            self.v = np.full_like(delta, self.tau**2)
        self.m = self.b1 * self.m + (1 - self.b1) * delta
        self.v = self.b2 * self.v + (1 - self.b2) * delta**2
        return weights + self.lr * self.m / (np.sqrt(self.v) + self.tau)


def make_strategy(cfg) -> Strategy:
    """The strategy named by ``cfg.strategy`` with the config's sampling and server
    optimizer parameters."""
    kw = {"count": cfg.clients_per_round, "rate": cfg.sample_rate}
    if cfg.strategy == "fedavg":
        return FedAvg(cfg.server_lr, **kw)
    if cfg.strategy == "fedavgm":
        return FedAvgM(cfg.server_lr, cfg.server_momentum, **kw)
    return FedAdam(cfg.server_lr, cfg.adam_beta1, cfg.adam_beta2, cfg.adam_tau, **kw)
