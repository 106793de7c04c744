import struct

import numpy as np
import pytest

from privcrypt.exceptions import InvalidKey, MalformedInput
from privcrypt.he import Accumulator, CkksContext, decrypt, encrypt
from privcrypt.he.blob import _HEAD
from privcrypt.rng import DeterministicRandom

N = 5000  # two chunks


@pytest.fixture(scope="module")
def update(key):
    return encrypt(key, np.ones(N))


def _add(key, data, n=N, mode="default"):
    Accumulator(key.public(), n, mode).add(data)


def _with_field(data, fmt_index, value):
    fields = list(_HEAD.unpack_from(data, 0))
    fields[fmt_index] = value
    return _HEAD.pack(*fields) + data[_HEAD.size:]


def test_truncated_and_trailing(key, update):
    for cut in (0, 3, _HEAD.size - 1, _HEAD.size + 2, _HEAD.size + 100, len(update) // 2, len(update) - 1):
        with pytest.raises(MalformedInput):
            _add(key, update[:cut])
    with pytest.raises(MalformedInput):
        _add(key, update + b"\0")


def test_header_fields(key, update):
    cases = [
        (0, b"XXXX"),  # magic
        (1, 2),  # version
        (2, 2),  # an aggregate where an update is expected
        (3, 2),  # another parameter set
        (4, 1),  # compact where default is expected
        (6, N + 1),  # length
        (7, 3),  # chunk count
        (8, 2),  # an update claiming two contributions
        (9, -1.0),  # weight
        (9, float("nan")),
    ]
    for idx, val in cases:
        with pytest.raises(MalformedInput):
            _add(key, _with_field(update, idx, val))


def test_chunk_length_and_payload_corruption(key, update):
    bad_len = bytearray(update)
    struct.pack_into("<I", bad_len, _HEAD.size, 10**8)
    with pytest.raises(MalformedInput):
        _add(key, bytes(bad_len))
    # SEAL header: magic, header size, compression mode, reserved, size. (A flipped bit in the
    # compressed body may decode to another valid ciphertext: CKKS has no integrity, the
    # transport must authenticate; see docs/he.md.)
    for off in (0, 1, 2, 5, 6, 7, 8, 12):
        pos = _HEAD.size + 4 + off
        flipped = bytearray(update)
        flipped[pos] ^= 0x40
        with pytest.raises(MalformedInput):
            _add(key, bytes(flipped))


def test_wrong_parameter_ciphertext(key):
    big = CkksContext.generate("n8192-q60", rng=DeterministicRandom(2))
    other = encrypt(big, np.ones(N))
    with pytest.raises(MalformedInput, match="parameter set"):
        _add(key, other)
    # The same SEAL bytes under a header that claims our parameter set and key: SEAL's
    # load (or our level/size check) refuses them.
    chunk = other[_HEAD.size:]
    (ln,) = struct.unpack_from("<I", chunk, 0)
    hdr = _with_field(encrypt(key, np.ones(10))[:_HEAD.size], 6, 10)
    with pytest.raises(MalformedInput):
        _add(key, hdr + chunk[:4 + ln], n=10)


def test_wrong_key_fails_clearly(key, other_key, update):
    foreign = encrypt(other_key, np.ones(N))
    with pytest.raises(InvalidKey, match="another key"):
        _add(key, foreign)
    acc = Accumulator(key.public(), N)
    acc.add(update)
    with pytest.raises(InvalidKey):
        decrypt(other_key, acc.finish())


def test_rejected_message_leaves_the_sum_untouched(key):
    acc = Accumulator(key.public(), 10)
    acc.add(encrypt(key, np.full(10, 1.0)))
    good = encrypt(key, np.full(10, 3.0))
    with pytest.raises(MalformedInput):
        acc.add(good[:-5])
    acc.add(good)
    assert acc.count == 2
    np.testing.assert_allclose(decrypt(key, acc.finish()), 2.0, atol=1e-6)


def test_compact_settings_must_agree(key):
    acc = Accumulator(key.public(), 10, "compact")
    acc.add(encrypt(key, np.zeros(10), mode="compact", clip=1.0))
    with pytest.raises(MalformedInput, match="clip"):
        acc.add(encrypt(key, np.zeros(10), mode="compact", clip=2.0))
