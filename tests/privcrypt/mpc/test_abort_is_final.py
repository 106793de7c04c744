"""After a failed MAC check the engine refuses to open anything (review finding F2).

A tampered Beaver opening ``d`` makes the product consistently authenticated to a wrong
value; if a later, unrelated opening failed and the engine went on, that wrong product
would open without error."""

import numpy as np
import pytest

from privcrypt.exceptions import MacCheckFailed, ProtocolAbort
from privcrypt.mpc import SpdzEngine
from privcrypt.rng import DeterministicRandom


def test_no_opening_after_a_failed_check():
    eng = SpdzEngine(n_parties=3, rng=DeterministicRandom(4))
    x, y = eng.share(np.array([2.0])), eng.share(np.array([3.0]))
    x.shares[1, 0] = (int(x.shares[1, 0]) + 5 * 2**16) % (2**61 - 1)  # party 1 cheats
    z = eng.mul(x, y)  # the product now hides the cheat
    w = eng.share(np.array([1.0]))
    with pytest.raises(MacCheckFailed):
        eng.open(w)
    with pytest.raises(ProtocolAbort) as exc:
        eng.open(z)
    assert exc.value.stage == "mac_check"
    with pytest.raises(ProtocolAbort):
        eng.mul(w, w)


def test_honest_engine_keeps_working():
    eng = SpdzEngine(n_parties=3, rng=DeterministicRandom(5))
    a = eng.share(np.array([1.5]))
    assert np.allclose(eng.open(a), 1.5)
    assert np.allclose(eng.open(eng.mul(a, a)), 2.25, atol=1e-3)
