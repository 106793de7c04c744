"""Issue 14, library API: no exported name shadows a built-in."""

import builtins
import importlib

import pytest


@pytest.mark.parametrize("module", ["privcrypt.aead", "privcrypt.dp", "privcrypt.secagg", "privcrypt.mpc",
                                    "privcrypt.he", "imaging", "imaging.denoise", "privcrypt.cli"])
def test_all_does_not_shadow_builtins(module):
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:  # optional extra missing
        pytest.skip(str(exc))
    shadowing = [n for n in getattr(mod, "__all__", []) if hasattr(builtins, n)]
    assert not shadowing, f"{module}.__all__ exports {shadowing}, which shadow built-ins"


def test_aead_open_sealed_and_aliases():
    from privcrypt import aead
    from privcrypt.exceptions import InvalidTag
    from privcrypt.rng import DeterministicRandom

    key = bytes(range(32))
    sealed = aead.seal(key, b"msg", b"ad", rng=DeterministicRandom(1))
    assert aead.open_sealed(key, sealed, b"ad") == b"msg"
    assert aead.unseal is aead.open_sealed and aead.open is aead.open_sealed  # old callers keep working
    ns: dict = {}
    exec("from privcrypt.aead import *", ns)
    assert "open" not in ns and ns["open_sealed"] is aead.open_sealed
    with pytest.raises(InvalidTag):
        aead.open_sealed(key, sealed, b"other")
