import os

import numpy as np
import pytest

from privcrypt.exceptions import InvalidKey, MalformedInput
from privcrypt.he import Accumulator, CkksContext, decrypt, encrypt
from privcrypt.he._seal import seal_files
from privcrypt.rng import DeterministicRandom


def test_public_context_bytes_contain_no_secret_key(key):
    pub = key.to_bytes()
    sk = key._sk_bytes
    assert len(sk) > 30_000 and len(pub) < 64
    # No 32-byte window of the serialized secret key occurs in the public bytes.
    assert not any(sk[i:i + 32] in pub for i in range(0, len(sk) - 32, 16))
    ctx = CkksContext.from_bytes(pub)
    assert not ctx.has_secret and ctx.key_id == key.key_id
    assert CkksContext.from_bytes(key.public().to_bytes()).to_bytes() == pub


def test_public_context_cannot_decrypt_or_encrypt(key):
    pub = CkksContext.from_bytes(key.to_bytes())
    with pytest.raises(InvalidKey):
        encrypt(pub, [1.0])
    acc = Accumulator(pub, 1)
    acc.add(encrypt(key, [1.0]))
    with pytest.raises(InvalidKey):
        decrypt(pub, acc.finish())


def test_secret_roundtrip_and_redacted_repr(key):
    data = key.to_bytes(include_secret=True)
    again = CkksContext.from_bytes(data)
    assert again.has_secret and again.key_id == key.key_id
    assert decrypt(again, encrypt(key, [0.5, -0.25])).tolist() == [0.5, -0.25]
    r = repr(again)
    assert "redacted" in r and key._sk_bytes.hex()[:16] not in r


def test_keygen_is_seeded_from_privcrypt_rng():
    a = CkksContext.generate(rng=DeterministicRandom(7))
    b = CkksContext.generate(rng=DeterministicRandom(7))
    c = CkksContext.generate(rng=DeterministicRandom(8))
    assert a.key_id == b.key_id != c.key_id
    assert a._sk_bytes == b._sk_bytes
    assert CkksContext.generate().key_id != CkksContext.generate().key_id


def test_malformed_context_bytes(key):
    good = key.to_bytes(include_secret=True)
    for bad in (b"", good[:10], b"XXXX" + good[4:], good + b"\0", good[:-1],
                good[:4] + b"\x09" + good[5:],  # unknown version
                good[:5] + b"\x7f" + good[6:]):  # unknown parameter set
        with pytest.raises(MalformedInput):
            CkksContext.from_bytes(bad)


def test_secret_key_not_matching_its_key_id(key, other_key):
    good = key.to_bytes(include_secret=True)
    forged = good[:7] + other_key.key_id + good[23:]  # other key id, this secret key
    with pytest.raises(InvalidKey):
        CkksContext.from_bytes(forged)


def test_seal_files_are_private_and_removed():
    with seal_files() as f:
        d = f._dir
        assert os.stat(d).st_mode & 0o777 == 0o700
        key = CkksContext.generate(rng=DeterministicRandom(1))
        assert os.listdir(d) == []  # every file is removed as soon as it is read
    assert not os.path.exists(d)
    assert np.isfinite(key.value_bound)
