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
  * ``distributed`` (Kairouz, Liu, Steinke 2021): each client clips, rotates (randomized
    Walsh–Hadamard with a fresh public seed per round), scales, rounds conditionally and
    adds *discrete* Gaussian noise with its share of the variance, then submits integers
    mod 2^bits to the secure backend (``masking`` or ``spdz``); the server only ever sees the
    sum, which already carries the full noise, and decodes it. Trusts no one with an
    un-noised sum, provided the backend hides individual inputs. Calibrated so that the
    target epsilon holds when only ``n_min`` (``dp_min_survivors``) clients survive; rounds
    with fewer abort; each round is accounted with the noise that actually survived.
    Adjacency: a client's update replaced by zero (its noise share stays).

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
from privcrypt.exceptions import PrivacyBudgetExceeded, ProtocolAbort, UnsupportedParameters
from privcrypt.rng import RandomSource

__all__ = ["ExampleLevelDP", "ClientLevelDP", "DistributedDP", "make_privacy", "local_steps"]


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

    def begin_round(self, round_no: int, rng: RandomSource) -> None:
        """Nothing to set up per round."""

    def record(self, participants, n_survivors: int | None = None) -> None:
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


class DistributedDP:
    """Client-level DP with distributed discrete Gaussian noise (see module docstring).

    ``dim``: model size; ``n_max``: clients per round; ``q``: sampling rate. Uses
    :func:`privcrypt.dp.calibrate_ddgauss` (RDP accounting only)."""

    unit, mode = "client", "distributed"

    def __init__(self, cfg, dim: int, n_clients: int, n_max: int, q: float):
        from privcrypt.dp import RDPAccountant, DDGaussConfig, calibrate_ddgauss

        if cfg.dp_accountant != "rdp":
            raise UnsupportedParameters("distributed DP is accounted with RDP only (dp_accountant='rdp')")
        self.cfg, self.delta, self.q, self.n_clients = cfg, cfg.dp_delta, q, n_clients
        n_min = cfg.dp_min_survivors or max(2, math.ceil(0.7 * n_max))
        if n_min > n_max:
            raise ValueError(f"dp_min_survivors={n_min} exceeds the {n_max} clients per round")
        self.n_min, self.n_max = n_min, n_max
        bits = min(cfg.dp_bits, 32 - max(1, math.ceil(math.log2(n_max + 1))))  # n (2^b - 1) < 2^32
        kw = dict(dim=dim, clip=cfg.clip_norm, n_min=n_min, n_max=n_max, bits=bits)
        if cfg.dp_noise_multiplier is not None:
            self.plan = DDGaussConfig(noise_multiplier=cfg.dp_noise_multiplier, **kw).plan()
        else:
            self.plan = calibrate_ddgauss(cfg.dp_epsilon, cfg.dp_delta, sample_rate=q, rounds=cfg.rounds, **kw)
        self.noise_multiplier = self.plan.config.noise_multiplier
        self.accountant = RDPAccountant()
        self.seed = b""
        self.wraps = 0
        self.survived_noise: list[float] = []

    @property
    def client_noise_std(self) -> float:
        return 0.0  # no float noise: the integer encoding carries it

    @property
    def out_dim(self) -> int:
        """Length of what a client submits (the rotation pads to a power of two)."""
        return self.plan.pad_dim

    def backend_params(self, backend: str) -> dict:
        """The secure backend's parameters under which integers mod 2^bits pass exactly:
        masking quantizes ``[-c, c]`` with ``c = (2^b - 1)/2`` to ``2^b`` levels of step 1
        (nearest rounding of grid points is the identity); SPDZ with 0 fractional bits."""
        b = self.plan.config.bits
        if backend == "masking":
            return {"clip": (2**b - 1) / 2, "bits": b, "rounding": "nearest", "min_clients": self.n_min}
        if backend == "spdz":
            return {"clip": float(2**b), "frac_bits": 0, "min_clients": self.n_min}
        raise ValueError("dp_mode='distributed' needs --backend masking or spdz")

    def _offset(self) -> float:
        return (2**self.plan.config.bits - 1) / 2 if self.cfg.backend == "masking" else 0.0

    def begin_round(self, round_no: int, rng: RandomSource) -> None:
        """A fresh public rotation seed for the round (sent to the clients with the model)."""
        self.seed = rng.bytes(32)

    def encode(self, delta: np.ndarray, rng: RandomSource) -> tuple[np.ndarray, dict]:
        """Client side: the vector for the secure backend and ``{"norm", "clipped"}``."""
        enc = self.plan.encode(delta, self.seed, rng=rng)
        vec = enc.residues.astype(np.float64) - self._offset()
        return vec, {"norm": float(np.linalg.norm(delta)), "clipped": enc.clipped,
                     "rounding_tries": enc.rounding_tries}

    def decode(self, mean: np.ndarray, n_survivors: int) -> np.ndarray:
        """Server side: the backend's mean over ``n_survivors`` equal weights -> the exact
        integer sum mod 2^bits -> the noisy sum of clipped updates -> divided by the expected
        number of clients. Counts suspected wraps (``self.wraps``)."""
        total = np.rint(np.asarray(mean, dtype=np.float64) * n_survivors + n_survivors * self._offset())
        modular = total.astype(np.int64).astype(np.uint64) & np.uint64(self.plan.modulus - 1)
        dec = self.plan.decode(modular, self.seed, n_survivors)
        self.wraps += dec.suspected_wraps
        if dec.suspected_wraps:
            raise ProtocolAbort(f"{dec.suspected_wraps} coordinates of the integer sum may have wrapped",
                                stage="ddgauss-decode")
        return dec.total / max(1.0, self.q * self.n_clients)

    def check_round(self, participants, round_no: int) -> None:
        from privcrypt.exceptions import PrivacyBudgetExceeded as _PBE

        self.plan.check_round(len(participants))
        rdp = self.plan.round_rdp(self.n_min, self.q, self.accountant.orders)
        if self.accountant.epsilon_after_rdp(self.delta, rdp) > self.cfg.dp_epsilon:
            raise _PBE(f"round {round_no} would spend past epsilon {self.cfg.dp_epsilon:g} even with "
                       f"the planned {self.n_min} survivors; stopping before it runs")

    def record(self, participants, n_survivors: int | None = None) -> None:
        """Charge the round with the noise that actually survived (``n_survivors`` shares)."""
        n = self.n_min if n_survivors is None else n_survivors
        self.accountant.step_rdp(self.plan.round_rdp(n, self.q, self.accountant.orders))
        self.survived_noise.append(self.plan.noise_std(n))

    @property
    def epsilon(self) -> float:
        return self.accountant.get_epsilon(self.delta) if self.accountant.custom_steps else 0.0

    def summary(self) -> dict:
        return {"dp_unit": "client", "dp_mode": "distributed", "noise_multiplier": self.noise_multiplier,
                "sample_rate_accounted": self.q, "suspected_wraps": self.wraps,
                "server_sees_noise_free_sum": False, **{f"ddg_{k}": v for k, v in self.plan.summary().items()}}


class ClientLevelDP:
    """DP-FedAvg with central or local noise (see module docstring).

    ``n_clients``: total clients; ``q``: the rate at which the server samples them."""

    unit = "client"

    def __init__(self, cfg, n_clients: int, q: float):
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

    def begin_round(self, round_no: int, rng: RandomSource) -> None:
        """Nothing to set up per round (see :class:`DistributedDP`)."""

    def record(self, participants, n_survivors: int | None = None) -> None:
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
                "sample_rate_accounted": self.q, "server_sees_noise_free_sum": self.mode == "central"}


def make_privacy(cfg, sizes: dict[int, int], q: float, *, dim: int | None = None):
    """The run's DP object (``None`` without DP). ``dim``: the model size (distributed
    mode's encoding depends on it)."""
    if not cfg.dp:
        return None
    if cfg.dp_unit == "example":
        return ExampleLevelDP(cfg, sizes)
    if cfg.dp_mode == "distributed":
        if dim is None:
            raise ValueError("distributed DP needs the model size")
        n_max = max(1, round(q * len(sizes))) if cfg.sample_rate is None else len(sizes)
        return DistributedDP(cfg, dim, len(sizes), n_max, q)
    return ClientLevelDP(cfg, len(sizes), q)
