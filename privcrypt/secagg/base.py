"""The SecureAggregator interface shared by every backend, and the backend registry.

A backend computes the weighted mean of the surviving clients' update vectors. Its
:meth:`SecureAggregator.aggregate` is the in-process *simulation* entry point: it drives the
backend's per-party client and server objects through every protocol stage, exchanging
real serialized byte messages, and reports how many bytes crossed the wire.

Dropout semantics (the same for every backend): a client in ``dropped`` completes key
set-up, then goes silent before sending its (masked / encrypted / shared) input. The
result is the weighted mean over the survivors. When a backend cannot recover from the
dropouts, it raises :class:`~privcrypt.exceptions.ProtocolAbort` naming the stage; it
never returns a partial result.
"""

from __future__ import annotations

import importlib
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from privcrypt.exceptions import AccuracyWarning, ClippingWarning, ProtocolAbort

__all__ = [
    "AggregationResult",
    "SecureAggregator",
    "register_backend",
    "make_aggregator",
    "available_backends",
    "validate_round_inputs",
    "check_survivors",
    "check_declared_range",
    "finish_round",
    "CORE_STATS",
]

#: Keys every backend's ``stats`` holds: values clipped to the declared range (count), the
#: round's error bound, how many survived and who did not (requested dropouts, rejected or
#: excluded clients), CPU seconds and the largest per-client byte counts.
CORE_STATS = ("clipped", "atol", "n_survivors", "dropped", "client_cpu_s_mean",
              "client_cpu_s_max", "server_cpu_s", "bytes_up_max_client", "bytes_down_max_client")


@dataclass
class AggregationResult:
    """What one aggregation round produced.

    ``mean``: float64 weighted mean of the survivors' updates.
    ``bytes_up`` / ``bytes_down``: serialized bytes sent by clients / received by clients in
    the round, summed over all clients, set-up messages included. ``bytes_down`` counts the
    protocol's own messages (keys, relayed shares, a ciphertext a client must decrypt) but
    not a broadcast of the plaintext mean, which the FL layer sends as the next model.
    ``survivors``: the client ids whose inputs are in the mean.
    ``stats``: backend-specific extras (e.g. clipped-value counts, rejected clients).
    """

    mean: np.ndarray
    bytes_up: int
    bytes_down: int
    survivors: frozenset[int] = frozenset()
    stats: dict = field(default_factory=dict)


class SecureAggregator(ABC):
    """A secure-aggregation backend. Subclasses set ``name`` and document their threat
    model (who may collude, how many may drop out) in the class docstring."""

    name: str = "abstract"
    #: Fewest surviving clients a round may aggregate. Below it the round aborts with
    #: ``ProtocolAbort``: a mean over very few clients reveals their individual updates.
    min_clients: int = 1

    @property
    def atol(self) -> float:
        """Declared absolute error of each coordinate of the mean, for inputs inside the
        backend's declared range (its ``clip``, where it has one). 0 for exact backends."""
        return 0.0

    @abstractmethod
    def aggregate(
        self,
        updates: Mapping[int, np.ndarray],
        weights: Mapping[int, float] | None = None,
        dropped: frozenset[int] = frozenset(),
    ) -> AggregationResult:
        """Run one round over ``updates`` (client id -> 1-D float vector of equal length)
        with optional positive ``weights`` (default 1 each). Clients in ``dropped`` go
        silent after key set-up. Returns the survivors' weighted mean.

        Raises ``ValueError`` on inconsistent inputs and ``ProtocolAbort`` when the
        dropouts cannot be tolerated."""


def validate_round_inputs(
    updates: Mapping[int, np.ndarray],
    weights: Mapping[int, float] | None,
    dropped: frozenset[int] | set[int],
) -> tuple[dict[int, np.ndarray], dict[int, float], frozenset[int]]:
    """Check and normalize the arguments of :meth:`SecureAggregator.aggregate`.

    Returns ``(updates as float64 1-D arrays, weights, dropped)``. Raises ``TypeError``
    when ``updates``/``weights`` are not mappings (e.g. a list) or an update is not a real
    numeric array (complex, strings, objects), naming the client; ``ValueError`` for: no
    clients, non-integer ids, empty, non-1-D or differing-length vectors, NaN/Inf,
    missing/non-positive/non-finite weights, weights for unknown clients, or ``dropped``
    naming unknown clients.
    """
    if not isinstance(updates, Mapping):
        raise TypeError(f"updates must be a dict {{client id: vector}}, got {type(updates).__name__}")
    if not updates:
        raise ValueError("no client updates")
    clean: dict[int, np.ndarray] = {}
    dim = None
    for cid, vec in updates.items():
        if isinstance(cid, bool) or not isinstance(cid, (int, np.integer)):
            raise ValueError(f"client ids must be ints, got {cid!r}")
        raw = np.asarray(vec)
        if raw.dtype.kind not in "iuf":
            raise TypeError(f"update of client {cid} must be a real numeric array, got dtype "
                            f"{raw.dtype}")
        arr = raw.astype(np.float64)
        if arr.ndim != 1:
            raise ValueError(f"update of client {cid} must be 1-D, got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError(f"update of client {cid} is empty")
        if dim is None:
            dim = arr.shape[0]
        elif arr.shape[0] != dim:
            raise ValueError(f"update of client {cid} has length {arr.shape[0]}, expected {dim}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"update of client {cid} contains NaN or Inf")
        clean[int(cid)] = arr
    if weights is None:
        w = {cid: 1.0 for cid in clean}
    else:
        if not isinstance(weights, Mapping):
            raise TypeError(f"weights must be a dict {{client id: weight}}, got {type(weights).__name__}")
        missing = set(clean) - set(weights)
        if missing:
            raise ValueError(f"no weight for clients {sorted(missing)}")
        extra = set(weights) - set(clean)
        if extra:
            raise ValueError(f"weights given for unknown clients {sorted(extra, key=repr)}")
        w = {}
        for cid in clean:
            try:
                wt = float(weights[cid])
            except (TypeError, ValueError):
                raise TypeError(f"weight of client {cid} must be a real number, got "
                                f"{weights[cid]!r}") from None
            if not (np.isfinite(wt) and wt > 0):
                raise ValueError(f"weight of client {cid} must be positive and finite")
            w[cid] = wt
    dropped = frozenset(int(c) for c in dropped)
    unknown = dropped - set(clean)
    if unknown:
        raise ValueError(f"dropped names unknown clients {sorted(unknown)}")
    return clean, w, dropped


def check_declared_range(updates: Mapping[int, np.ndarray], clip: float, strict: bool) -> dict[int, int]:
    """Count, per client, the values outside ``±clip`` (what the backend will clip). With
    ``strict`` raise ``ValueError`` naming the clients before the round starts."""
    over = {cid: int(np.count_nonzero(np.abs(x) > clip)) for cid, x in updates.items()}
    over = {cid: k for cid, k in over.items() if k}
    if over and strict:
        raise ValueError(f"strict=True: clients {sorted(over)} have values outside the declared "
                         f"range ±{clip} ({sum(over.values())} values); raise clip or rescale")
    return over


def finish_round(agg: "SecureAggregator", res: AggregationResult, ids) -> AggregationResult:
    """Fill the :data:`CORE_STATS` keys of ``res.stats`` that a backend left out and warn:
    :class:`~privcrypt.exceptions.ClippingWarning` when values were clipped,
    :class:`~privcrypt.exceptions.AccuracyWarning` when the round's ``atol`` exceeds the
    aggregator's declared one."""
    st = res.stats
    st.setdefault("clipped", 0)
    st.setdefault("atol", float(agg.atol))
    st["n_survivors"] = len(res.survivors)
    st["dropped"] = sorted(set(ids) - set(res.survivors))
    for key in ("client_cpu_s_mean", "client_cpu_s_max", "server_cpu_s"):
        st.setdefault(key, 0.0)
    st.setdefault("bytes_up_max_client", 0)
    st.setdefault("bytes_down_max_client", 0)
    if st["clipped"]:
        who = st.get("clipped_clients")
        warnings.warn(ClippingWarning(
            f"{agg.name}: {st['clipped']} values outside the declared range were clipped"
            + (f" (clients {who})" if who else "") + "; the mean is of the clipped values "
            "(strict=True raises instead)"), stacklevel=3)
    if st["atol"] > agg.atol * (1 + 1e-9) + 1e-300:
        warnings.warn(AccuracyWarning(
            f"{agg.name}: this round's error bound {st['atol']:.3g} exceeds the declared atol "
            f"{agg.atol:.3g} (weights spread wider than max_weight_ratio?)"), stacklevel=3)
    return res


def check_survivors(n_survivors: int, threshold: int, stage: str) -> None:
    """Raise ``ProtocolAbort`` naming ``stage`` unless ``n_survivors >= threshold``."""
    if n_survivors < threshold:
        raise ProtocolAbort(
            f"{n_survivors} surviving clients, at least {threshold} needed", stage=stage
        )


# -- registry -------------------------------------------------------------------------
# name -> "module:ClassName"; modules are imported lazily so that importing
# privcrypt.secagg never pulls in TenSEAL.
_BACKENDS: dict[str, str] = {
    "plain": "privcrypt.secagg.plain:PlainAggregator",
    "masking": "privcrypt.secagg.masking:MaskingAggregator",
    "spdz": "privcrypt.secagg.spdz:SpdzAggregator",
    "spdz-krum": "privcrypt.secagg.spdz_robust:SpdzKrumAggregator",
    "ckks": "privcrypt.secagg.ckks:CkksAggregator",
}


def register_backend(name: str, target: str) -> None:
    """Register (or replace) backend ``name`` as ``"module:ClassName"``."""
    if ":" not in target:
        raise ValueError("target must look like 'package.module:ClassName'")
    _BACKENDS[name] = target


def _resolve(name: str) -> type[SecureAggregator]:
    try:
        target = _BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; known: {sorted(_BACKENDS)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def available_backends() -> list[str]:
    """Names of backends whose module is present and imports (optional dependencies such
    as TenSEAL installed)."""
    names = []
    for name in _BACKENDS:
        try:
            _resolve(name)
        except ImportError:
            continue
        names.append(name)
    return names


def make_aggregator(name: str, **params) -> SecureAggregator:
    """Build backend ``name`` with its parameters (all keyword; defaults in brackets).

    * ``"plain"`` (no protection, the baseline): ``min_clients`` [1], ``clip`` [None: no
      range; when set, clipped like the secure backends], ``strict`` [False],
      ``record_view``, ``rng``.
    * ``"masking"`` (pairwise masks, dropout tolerant): ``clip`` [1.0], ``bits`` [16],
      ``modulus_bits`` [32], ``degree``/``threshold`` [SecAgg+ choice from ``corruption``
      0.05, ``dropout`` 0.3, ``sigma`` 40, ``eta`` 20], ``min_clients`` [2],
      ``max_weight_ratio`` [1.0], ``rounding`` ["stochastic"], ``strict`` [False],
      ``authenticated`` [False], ``identities``, ``record_view``, ``rng``.
    * ``"spdz"`` (additive shares at compute parties): ``n_parties`` [3], ``frac_bits``
      [16], ``clip`` [8.0], ``norm_bound`` [None], ``min_clients`` [2], ``verify_range``
      [False], ``strict`` [False], ``record_view``, ``rng``.
    * ``"ckks"`` (homomorphic encryption): ``mode`` ["default"], ``clip`` [1.0, compact
      mode], ``bits`` [16], ``params`` ["n4096-q60"], ``min_clients`` [2], ``max_clients``
      [256], ``max_weight_ratio`` [1.0], ``strict`` [False], ``record_view``, ``rng``.

    Declared ranges and defaults side by side: docs/secagg.md. Every backend's ``stats``
    holds :data:`CORE_STATS`; a round that clips warns (``ClippingWarning``) or, with
    ``strict=True``, raises ``ValueError`` before it starts. Secure backends refuse
    ``min_clients < 2``. Raises ``ValueError`` for an unknown name or bad parameters and
    ``ImportError`` (with the extra to install) when the backend's optional dependency is
    missing."""
    return _resolve(name)(**params)
