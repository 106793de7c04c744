"""Byzantine clients: model-poisoning and data-poisoning attacks on federated averaging.

Threat model of the attacker (as in the papers): ``f`` of the ``n`` clients of a round are
controlled by one colluding adversary that is **omniscient** about the round: it sees the
honest clients' updates (``honest_updates``, shape ``(K_h, d)``) before it sends its own.
Model-poisoning attacks replace the attacker's update; ``labelflip`` is data poisoning: the
client trains on permuted labels and sends its update unchanged.

========  ==================================================  ===========================
name      sends                                               defeats (literature)
========  ==================================================  ===========================
signflip  ``-S·own``  (S default 10)                          mean; not median/Krum
scaling   ``+S·own``  (S default 10; model replacement)       mean; norm bound limits it
gaussian  random direction, norm ``S × mean honest norm``     mean; not median/Krum
          (S default 10; noise from ``privcrypt.rng``)
labelflip own update, trained on labels ``c -> n_classes-1-c``  slowly degrades mean
alie      ``μ - z·σ`` per coordinate (Baruch et al. 2019)     median, trimmed mean, Krum
ipm       ``-ε·μ`` (Xie, Koyejo, Gupta 2020; ε default 0.5)    mean; Krum/median with
                                                              small ε
========  ==================================================  ===========================

``μ`` and ``σ`` are the coordinate-wise mean and standard deviation of the honest updates.
With no honest updates to look at (``K_h = 0``) the attacker uses its own update as ``μ``
(``σ = 0``). ALIE's default ``z`` is the paper's ``z_max``: ``s = floor(n/2 + 1) - f``,
``z = Φ⁻¹((n - s)/n)`` with ``n = K_h + f`` (needs ``n_byzantine``; otherwise ``z = 1``).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from privcrypt.rng import RandomSource, resolve_rng

__all__ = ["ByzantineAttack", "make_attack", "ATTACKS", "alie_z"]

#: Names accepted by :func:`make_attack`.
ATTACKS = ("signflip", "scaling", "gaussian", "labelflip", "alie", "ipm")


def alie_z(n: int, f: int) -> float:
    """Baruch et al. 2019, z_max: the largest deviation (in honest standard deviations) that
    still leaves the attackers' value inside the majority: ``s = floor(n/2 + 1) - f``,
    ``z = Φ⁻¹((n - s)/n)``. ``ValueError`` unless ``0 < f < n``."""
    if not 0 < f < n:
        raise ValueError(f"alie_z needs 0 < f < n, got n={n}, f={f}")
    s = math.floor(n / 2 + 1) - f
    q = (n - s) / n
    q = min(max(q, 1e-9), 1 - 1e-9)
    return NormalDist().inv_cdf(q)


class ByzantineAttack:
    """One attack. ``corrupt(own_update, honest_updates)`` returns what the attacker sends
    (a new float64 array; inputs are not modified). ``poisons_data``: True for data
    poisoning (the FL client then calls :meth:`poison_labels` on its training labels and
    sends its update unchanged). ``scale``: the attack's strength (meaning per attack)."""

    name = "none"
    poisons_data = False
    default_scale = 1.0

    def __init__(self, scale: float | None = None, *, n_byzantine: int | None = None,
                 rng: RandomSource | None = None):
        if scale is not None and not (isinstance(scale, (int, float)) and math.isfinite(scale)):
            raise ValueError(f"scale must be a finite number, got {scale!r}")
        self.scale = float(self.default_scale if scale is None else scale)
        self._scale_given = scale is not None
        self.n_byzantine = None if n_byzantine is None else int(n_byzantine)
        self._rng = rng

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale:g})"

    @staticmethod
    def _inputs(own_update, honest_updates) -> tuple[np.ndarray, np.ndarray]:
        own = np.asarray(own_update, dtype=np.float64).reshape(-1)
        honest = np.asarray(honest_updates, dtype=np.float64)
        if honest.size == 0:
            honest = own[None, :]
        if honest.ndim != 2 or honest.shape[1] != own.shape[0]:
            raise ValueError(f"honest_updates must be (K_h, {own.shape[0]}), got {honest.shape}")
        return own, honest

    def corrupt(self, own_update, honest_updates) -> np.ndarray:
        """The update the Byzantine client sends instead of ``own_update``."""
        own, _ = self._inputs(own_update, honest_updates)
        return own.copy()

    def poison_labels(self, y, n_classes: int) -> np.ndarray:
        """Labels the client trains on (identity unless the attack poisons data)."""
        return np.asarray(y).copy()


class SignFlip(ByzantineAttack):
    """Sends ``-S`` times its honest update (S default 10)."""

    name, default_scale = "signflip", 10.0

    def corrupt(self, own_update, honest_updates):
        own, _ = self._inputs(own_update, honest_updates)
        return -self.scale * own


class Scaling(ByzantineAttack):
    """Sends ``+S`` times its honest update (model replacement / boosting; S default 10)."""

    name, default_scale = "scaling", 10.0

    def corrupt(self, own_update, honest_updates):
        own, _ = self._inputs(own_update, honest_updates)
        return self.scale * own


class Gaussian(ByzantineAttack):
    """Sends a uniformly random direction with norm ``S ×`` the mean honest norm (S default
    10). The direction is Gaussian noise from ``privcrypt.rng`` (``rng=`` at construction;
    default the OS CSPRNG)."""

    name, default_scale = "gaussian", 10.0

    def corrupt(self, own_update, honest_updates):
        own, honest = self._inputs(own_update, honest_updates)
        rng = resolve_rng(self._rng)
        if self._rng is None:
            self._rng = rng  # keep one stream across rounds
        z = rng.normal(1.0, own.shape[0])
        norm = float(np.linalg.norm(honest, axis=1).mean())
        zn = float(np.linalg.norm(z))
        return z * (self.scale * norm / zn) if zn > 0 else z


class LabelFlip(ByzantineAttack):
    """Data poisoning: trains on labels ``c -> n_classes - 1 - c`` (a fixed permutation);
    the update it sends is its honest update on that data. ``scale`` is unused."""

    name, poisons_data = "labelflip", True

    def poison_labels(self, y, n_classes: int) -> np.ndarray:
        y = np.asarray(y)
        if int(n_classes) < 2:
            raise ValueError("n_classes must be >= 2")
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"labels must lie in [0, {n_classes})")
        return (int(n_classes) - 1 - y).astype(y.dtype)


class Alie(ByzantineAttack):
    """"A little is enough" (Baruch, Baruch, Goldberg, NeurIPS 2019): every attacker sends
    ``μ - z·σ`` (coordinate-wise honest mean and std). Small ``z`` keeps it inside the
    honest spread, so median, trimmed mean and Krum accept it while the shift accumulates
    over rounds. ``scale`` = z; default :func:`alie_z` (needs ``n_byzantine``), else 1."""

    name = "alie"

    def corrupt(self, own_update, honest_updates):
        _, honest = self._inputs(own_update, honest_updates)
        if self._scale_given or not self.n_byzantine:
            z = self.scale
        else:
            z = alie_z(honest.shape[0] + self.n_byzantine, self.n_byzantine)
        return honest.mean(axis=0) - z * honest.std(axis=0)


class Ipm(ByzantineAttack):
    """Inner-product manipulation (Xie, Koyejo, Gupta, UAI 2020): every attacker sends
    ``-ε·μ`` (``scale`` = ε, default 0.5), which makes the inner product of the aggregate
    with the true mean negative once the attackers' weight is large enough; with small ε
    the update is near the others, so distance-based rules (Krum) may select it."""

    name, default_scale = "ipm", 0.5

    def corrupt(self, own_update, honest_updates):
        _, honest = self._inputs(own_update, honest_updates)
        return -self.scale * honest.mean(axis=0)


_CLASSES = {c.name: c for c in (SignFlip, Scaling, Gaussian, LabelFlip, Alie, Ipm)}


def make_attack(name: str, scale: float | None = None, *, n_byzantine: int | None = None,
                rng: RandomSource | None = None) -> ByzantineAttack:
    """Build attack ``name`` (one of :data:`ATTACKS`) with strength ``scale`` (None: the
    attack's default). ``n_byzantine``: how many attackers collude (ALIE's default z);
    ``rng``: a ``privcrypt.rng`` source for the ``gaussian`` attack. ``ValueError`` for an
    unknown name."""
    try:
        cls = _CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}") from None
    return cls(scale, n_byzantine=n_byzantine, rng=rng)
