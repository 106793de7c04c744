"""Run privcrypt FL rounds across machines on Flower's deployment engine (flwr >= 1.42).

The round loop is :func:`fl.server.serve`, the same as in simulation; only the transport
differs (:class:`fl.flower.transport.FlowerTransport`). Each secure-aggregation stage of
the backend (:mod:`fl.flower.protocols`) is one Flower message stage; the ClientApp
(:mod:`fl.flower.client_app`) runs one stage per message and keeps the round's protocol
state in ``context.state``. :func:`run_flower` starts a loopback federation and runs a
job on it; docs/deploy.md covers several machines with TLS and node authentication.

Only this package imports flwr; importing ``fl.flower`` itself does not.
"""

from __future__ import annotations

import importlib

__all__ = ["run_flower", "LocalFederation", "FlowerTransport"]

_LAZY = {"run_flower": "fl.flower.launch", "LocalFederation": "fl.flower.launch",
         "FlowerTransport": "fl.flower.transport"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fl.flower' has no attribute {name!r}")
