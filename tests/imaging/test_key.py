import pickle

import pytest

from imaging.key import FlepKey
from privcrypt.exceptions import MalformedInput
from privcrypt.rng import DeterministicRandom


def test_generate_uses_rng_and_round_trips():
    k1 = FlepKey.generate(rng=DeterministicRandom(1))
    k2 = FlepKey.generate(rng=DeterministicRandom(1))
    assert k1 == k2
    assert FlepKey.generate() != FlepKey.generate()
    blob = k1.to_bytes()
    assert len(blob) == 35 and blob[:3] == b"FK\x01"
    assert FlepKey.from_bytes(blob) == k1


@pytest.mark.parametrize("blob", [b"", b"FK\x01" + b"\x00" * 31, b"FK\x01" + b"\x00" * 33,
                                  b"XX\x01" + b"\x00" * 32, b"FK\x02" + b"\x00" * 32])
def test_from_bytes_rejects_malformed(blob):
    with pytest.raises(MalformedInput):
        FlepKey.from_bytes(blob)


def test_repr_is_redacted_and_no_pickle():
    k = FlepKey(bytes(range(32)))
    r = repr(k) + str(k)
    assert "redacted" in r and bytes(range(32)).hex()[:8] not in r
    with pytest.raises(TypeError):
        pickle.dumps(k)


def test_layer_keys_are_distinct_and_depend_on_every_bit():
    k = FlepKey.generate()
    names = ["flep/scramble", "flep/blend", "flep/diffusion", "flep/kcv"]
    keys = {k.layer_key(n) for n in names}
    assert len(keys) == len(names) and all(len(x) == 32 for x in keys)
    for bit in (0, 7, 128, 255):
        other = k.with_bit_flipped(bit)
        assert other != k and other.layer_key("flep/scramble") != k.layer_key("flep/scramble")
        assert other.with_bit_flipped(bit) == k
    with pytest.raises(ValueError):
        k.with_bit_flipped(256)
