"""Differential privacy in the FL layer: who adds the noise, and how it is accounted.

Two privacy units (what one "record" is) and, for the client unit, three modes (who adds
the noise and so who must be trusted). Every noise sample comes from ``privcrypt.rng``.

``example`` unit — DP-SGD inside every client (Abadi et al. 2016). Each local step draws
a Poisson sample of the client's examples at rate ``q_i = B / n_i`` (from the CSPRNG, so
the sample is secret), clips every per-example gradient to ``dp_example_clip`` and adds
Gaussian noise of std ``z_i * dp_example_clip`` to their sum. Protects each training
record against *everyone* who sees updates or models, the server included, whatever the
aggregation backend. Accounting: one accountant per client over its own steps
(``q_i``, ``local_epochs * ceil(n_i / B)`` steps per round it takes part in); the run
reports the largest epsilon over clients. Client sampling is not used for amplification
(the server knows who took part).

``client`` unit — DP-FedAvg (McMahan et al. 2018): each client's update is clipped to L2
norm ``C`` (``clip_norm``) and one Gaussian noise draw of std ``z C`` protects the sum.
  * ``central``: the server adds the noise to the decrypted sum. Trusts the server with
    the un-noised sum (with secure aggregation, the server still sees no individual
    update, but it sees the exact sum). Sampling rate ``q = m / N`` (fixed count ``m``,
    the customary approximation of McMahan et al.; exact with ``sample_rate``, Poisson).
    The estimate divides the noised sum by the *expected* number of clients ``q N``
    (fixed denominator, so the count does not leak).
  * ``local``: each client adds noise of std ``z * 2C`` to its own clipped update before
    it leaves (sensitivity ``2C``: replacing the client's data moves its update by at
    most ``2C``; the server sees that the client took part, so there is no amplification
    by sampling). Trusts no one; costs accuracy (n times the noise in the sum).
  * ``distributed``: see :mod:`privcrypt.dp` (discrete Gaussian shares summed under
    secure aggregation); refused here until that mode is available.

Budget: with ``dp_epsilon`` alone the noise multiplier is calibrated so that the planned
rounds end at epsilon <= ``dp_epsilon``; with an explicit ``dp_noise_multiplier`` the
guard refuses (``PrivacyBudgetExceeded``) the first round that would overspend, before
it runs. A round that aborts releases nothing and is not charged.
"""

from __future__ import annotations

import math

import numpy as np

from privcrypt.dp import PrivacyBudget, noise_multiplier_for
from privcrypt.dp.calibrate import make_accountant
from privcrypt.exceptions import PrivacyBudgetExceeded, UnsupportedParameters
from privcrypt.rng import RandomSource

__all__ = ["ExampleLevelDP", "ClientLevelDP", "make_privacy", "local_steps"]


def local_steps(n_examples: int, batch_size: int, local_epochs: int) -> int:
    """Optimizer steps a client takes in one round: ``local_epochs * ceil(n / B)``."""
    return int(local_epochs) * max(1, math.ceil(int(n_examples) / int(batch_size)))


class ExampleLevelDP:
    """Per-client DP-SGD parameters and accountants (see module docstring).

    ``sizes``: client id -> number of training examples. Calibrates each client's noise
    multiplier so that taking part in every one of ``cfg.rounds`` rounds ends at epsilon
    <= ``cfg.dp_epsilon`` (or uses ``cfg.dp_noise_multiplier`` for all)."""

    unit = "example"

    def __init__(self, cfg, sizes: dict[int, int]):
        self.cfg = cfg
        self.delta = cfg.dp_delta
        self.rate: dict[int, float] = {}
        self.steps: dict[int, int] = {}
        self.noise: dict[int, float] = {}
        self.budget: dict[int, PrivacyBudget] = {}
        for cid, n in sizes.items():
            q = min(1.0, cfg.batch_size / n)
            s = local_steps(n, cfg.batch_size, cfg.local_epochs)
            z = cfg.dp_noise_multiplier
            if z is None:
                z = noise_multiplier_for(cfg.dp_epsilon, cfg.dp_delta, q, s * cfg.rounds,
                                         accountant=cfg.dp_accountant)
            self.rate[cid], self.steps[cid], self.noise[cid] = q, s, z
            self.budget[cid] = PrivacyBudget(cfg.dp_epsilon, cfg.dp_delta,
                                             make_accountant(cfg.dp_accountant))

    def check_round(self, participants, round_no: int) -> None:
        """Raise ``PrivacyBudgetExceeded`` before a round that would overspend any
        participant's budget."""
        for cid in participants:
            if not self.budget[cid].can_spend(noise_multiplier=self.noise[cid],
                                              sample_rate=self.rate[cid], steps=self.steps[cid]):
                raise PrivacyBudgetExceeded(
                    f"round {round_no} would take client {cid} past epsilon {self.cfg.dp_epsilon:g} "
                    f"(delta {self.delta:g}); stopping before it runs")

    def record(self, participants) -> None:
        """Charge the participants of a round that released an aggregate."""
        for cid in participants:
            self.budget[cid].spend(noise_multiplier=self.noise[cid], sample_rate=self.rate[cid],
                                   steps=self.steps[cid])

    def sgd_params(self, cid: int) -> dict:
        """What the client's DP-SGD needs: noise multiplier, clip, Poisson rate."""
        return {"noise_multiplier": self.noise[cid], "clip": self.cfg.dp_example_clip,
                "sample_rate": self.rate[cid]}

    @property
    def epsilon(self) -> float:
        """Largest epsilon spent by any client so far."""
        return max((b.spent for b in self.budget.values()), default=0.0)

    def summary(self) -> dict:
        zs = list(self.noise.values())
        return {"dp_unit": "example", "noise_multiplier_min": min(zs), "noise_multiplier_max": max(zs)}


class ClientLevelDP:
    """DP-FedAvg with central or local noise (see module docstring).

    ``n_clients``: total clients; ``q``: the rate at which the server samples them."""

    unit = "client"

    def __init__(self, cfg, n_clients: int, q: float):
        if cfg.dp_mode == "distributed":
            raise UnsupportedParameters(
                "dp_mode='distributed' (discrete Gaussian shares under secure aggregation) is not "
                "available in this build; use 'central' (trust the server with the sum) or 'local'")
        self.cfg, self.mode, self.delta = cfg, cfg.dp_mode, cfg.dp_delta
        self.clip = cfg.clip_norm
        self.n_clients = n_clients
        # central: amplification by the server's secret sampling; local: none (q = 1).
        self.q = q if self.mode == "central" else 1.0
        z = cfg.dp_noise_multiplier
        if z is None:
            z = noise_multiplier_for(cfg.dp_epsilon, cfg.dp_delta, self.q, cfg.rounds,
                                     accountant=cfg.dp_accountant)
        self.noise_multiplier = z
        self.expected_clients = max(1.0, q * n_clients)
        if self.mode == "central":
            self.budget = PrivacyBudget(cfg.dp_epsilon, cfg.dp_delta, make_accountant(cfg.dp_accountant))
        else:
            self.budgets: dict[int, PrivacyBudget] = {}

    # -- accounting ---------------------------------------------------------------------
    def _client_budget(self, cid: int) -> PrivacyBudget:
        if cid not in self.budgets:
            self.budgets[cid] = PrivacyBudget(self.cfg.dp_epsilon, self.delta,
                                              make_accountant(self.cfg.dp_accountant))
        return self.budgets[cid]

    def check_round(self, participants, round_no: int) -> None:
        """Raise ``PrivacyBudgetExceeded`` before a round that would overspend."""
        z = self.noise_multiplier
        if self.mode == "central":
            if not self.budget.can_spend(noise_multiplier=z, sample_rate=self.q):
                raise PrivacyBudgetExceeded(
                    f"round {round_no} would spend past epsilon {self.cfg.dp_epsilon:g} "
                    f"(delta {self.delta:g}); stopping before it runs")
            return
        for cid in participants:
            if not self._client_budget(cid).can_spend(noise_multiplier=z, sample_rate=1.0):
                raise PrivacyBudgetExceeded(
                    f"round {round_no} would take client {cid} past epsilon {self.cfg.dp_epsilon:g}")

    def record(self, participants) -> None:
        z = self.noise_multiplier
        if self.mode == "central":
            self.budget.spend(noise_multiplier=z, sample_rate=self.q)
        else:
            for cid in participants:
                self._client_budget(cid).spend(noise_multiplier=z, sample_rate=1.0)

    @property
    def epsilon(self) -> float:
        if self.mode == "central":
            return self.budget.spent
        return max((b.spent for b in self.budgets.values()), default=0.0)

    # -- noise --------------------------------------------------------------------------
    @property
    def client_noise_std(self) -> float:
        """Std of the noise each client adds to its own update (local mode), else 0."""
        return self.noise_multiplier * 2.0 * self.clip if self.mode == "local" else 0.0

    def add_client_noise(self, update: np.ndarray, rng: RandomSource) -> np.ndarray:
        """Local mode: the client's own noise on its clipped update. Other modes: as is."""
        std = self.client_noise_std
        if std == 0.0:
            return update
        return update + rng.normal(std, update.shape)

    def finish_sum(self, total: np.ndarray, rng: RandomSource) -> np.ndarray:
        """Turn the aggregated (clipped, equally weighted) sum into the model update:
        central mode adds N(0, (zC)^2) to the sum; both divide by the expected count."""
        if self.mode == "central":
            total = total + rng.normal(self.noise_multiplier * self.clip, total.shape)
        return total / self.expected_clients

    def summary(self) -> dict:
        return {"dp_unit": "client", "dp_mode": self.mode, "noise_multiplier": self.noise_multiplier,
                "sample_rate_accounted": self.q}


def make_privacy(cfg, sizes: dict[int, int], q: float):
    """The run's DP object (``None`` without DP)."""
    if not cfg.dp:
        return None
    if cfg.dp_unit == "example":
        return ExampleLevelDP(cfg, sizes)
    return ClientLevelDP(cfg, len(sizes), q)
