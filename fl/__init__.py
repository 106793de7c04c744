"""Federated learning that composes privcrypt's primitives.

>>> from fl import FLConfig, run            # doctest: +SKIP
>>> hist = run(model_fn, clients, test, FLConfig(rounds=5, backend="masking"))  # doctest: +SKIP

``run(model_fn, clients, test, cfg, task=...)`` trains ``model_fn()`` across ``clients``
(a list of ``(X, y)`` numpy arrays, one per client) with secure aggregation, optional
differential privacy, compression and robust aggregation, and returns a
:class:`History`. See docs/fl.md. Names are imported lazily so that ``import fl`` (and
``privcrypt --help``) does not load torch.
"""

from __future__ import annotations

import importlib

__all__ = ["FLConfig", "run", "History"]

_LAZY = {"FLConfig": "fl.config", "run": "fl.server", "History": "fl.history"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fl' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
