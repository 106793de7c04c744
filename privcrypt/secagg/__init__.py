"""Secure aggregation of model updates behind one interface.

>>> from privcrypt.secagg import make_aggregator
>>> agg = make_aggregator("plain")
>>> res = agg.aggregate({0: [1.0, 2.0], 1: [3.0, 4.0]})
>>> res.mean.tolist()
[2.0, 3.0]

Backends: ``plain`` (no protection; the baseline), ``masking`` (pairwise masks with
secret-shared seeds, dropout tolerant), ``spdz`` (authenticated additive shares held by
compute parties), ``ckks`` (CKKS homomorphic encryption). See docs/secagg.md for the
threat model of each.
"""

from privcrypt.secagg.base import (
    CORE_STATS,
    AggregationResult,
    SecureAggregator,
    available_backends,
    check_survivors,
    make_aggregator,
    register_backend,
    validate_round_inputs,
)

__all__ = [
    "CORE_STATS",
    "PlainAggregator",
    "MaskingAggregator",
    "SpdzAggregator",
    "CkksAggregator",
    "AggregationResult",
    "SecureAggregator",
    "available_backends",
    "check_survivors",
    "make_aggregator",
    "register_backend",
    "validate_round_inputs",
]

_CLASSES = {"PlainAggregator": "plain", "MaskingAggregator": "masking",
            "SpdzAggregator": "spdz", "CkksAggregator": "ckks"}


def __getattr__(name):  # backend classes, imported lazily (ckks needs TenSEAL)
    if name in _CLASSES:
        from privcrypt.secagg.base import _resolve

        return _resolve(_CLASSES[name])
    raise AttributeError(f"module 'privcrypt.secagg' has no attribute {name!r}")
