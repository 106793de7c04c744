import pytest

pytest.importorskip("tenseal")

from privcrypt.he import CkksContext  # noqa: E402
from privcrypt.rng import DeterministicRandom  # noqa: E402


@pytest.fixture(scope="session")
def key():
    """One secret context for the whole session (key generation is cheap, but loading the
    same key everywhere keeps the tests fast)."""
    return CkksContext.generate(rng=DeterministicRandom("he-tests"))


@pytest.fixture(scope="session")
def other_key():
    return CkksContext.generate(rng=DeterministicRandom("he-tests-other"))
