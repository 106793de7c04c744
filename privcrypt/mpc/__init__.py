"""SPDZ-style secure multi-party computation on authenticated additive shares.

>>> import numpy as np
>>> from privcrypt.mpc import SpdzEngine
>>> from privcrypt.rng import DeterministicRandom
>>> eng = SpdzEngine(n_parties=3, frac_bits=16, rng=DeterministicRandom(0))
>>> x, y = eng.share(np.array([1.5, -2.0])), eng.share(np.array([0.25, 3.0]))
>>> eng.open(eng.add(x, y)).tolist()
[1.75, 1.0]
>>> float(eng.open(eng.norm2(x)))
6.25

Field Z_p with p = 2^61 - 1; MACs under a global key never opened; a semi-honest trusted
dealer for Beaver triples; parties malicious-with-abort on openings. See docs/mpc.md.
"""

from privcrypt.exceptions import MacCheckFailed
from privcrypt.mpc.dealer import OneShot, TrustedDealer
from privcrypt.mpc.engine import SpdzEngine, decode
from privcrypt.mpc.field import P
from privcrypt.mpc.shares import Shared

__all__ = ["SpdzEngine", "Shared", "TrustedDealer", "OneShot", "MacCheckFailed", "P", "decode"]
