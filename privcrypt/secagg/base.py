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
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from privcrypt.exceptions import ProtocolAbort

__all__ = [
    "AggregationResult",
    "SecureAggregator",
    "register_backend",
    "make_aggregator",
    "available_backends",
    "validate_round_inputs",
    "check_survivors",
]


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

    Returns ``(updates as float64 1-D arrays, weights, dropped)``. Raises ``ValueError``
    for: no clients, non-integer ids, vectors of differing length or non-1-D, NaN/Inf,
    missing/non-positive/non-finite weights, or ``dropped`` naming unknown clients.
    """
    if not updates:
        raise ValueError("no client updates")
    clean: dict[int, np.ndarray] = {}
    dim = None
    for cid, vec in updates.items():
        if isinstance(cid, bool) or not isinstance(cid, (int, np.integer)):
            raise ValueError(f"client ids must be ints, got {cid!r}")
        arr = np.asarray(vec, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(f"update of client {cid} must be 1-D, got shape {arr.shape}")
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
        missing = set(clean) - set(weights)
        if missing:
            raise ValueError(f"no weight for clients {sorted(missing)}")
        w = {}
        for cid in clean:
            wt = float(weights[cid])
            if not (np.isfinite(wt) and wt > 0):
                raise ValueError(f"weight of client {cid} must be positive and finite")
            w[cid] = wt
    dropped = frozenset(int(c) for c in dropped)
    unknown = dropped - set(clean)
    if unknown:
        raise ValueError(f"dropped names unknown clients {sorted(unknown)}")
    return clean, w, dropped


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
    """Build backend ``name`` ("plain" | "masking" | "spdz" | "ckks") with its parameters.

    Raises ``ValueError`` for an unknown name and ``ImportError`` (with the extra to
    install) when the backend's optional dependency is missing."""
    return _resolve(name)(**params)
