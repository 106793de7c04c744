"""privcrypt: cryptography-first privacy primitives for industrial federated learning.

Subpackages and modules (no torch, no network in this package):

* ``privcrypt.rng`` — the CSPRNG every secret comes from.
* ``privcrypt.encoding`` — fixed-point encoding and clip-bounded quantization.
* ``privcrypt.exceptions`` — the flat error hierarchy.
* ``privcrypt.mpc`` — SPDZ-style authenticated secret sharing.
* ``privcrypt.he`` — CKKS aggregation (TenSEAL/SEAL).
* ``privcrypt.dp`` — Gaussian mechanism and privacy accounting.
* ``privcrypt.secagg`` — one SecureAggregator interface over all backends.
"""

__version__ = "0.1.0"
