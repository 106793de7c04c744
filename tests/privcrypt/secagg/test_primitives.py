"""AES-GCM sealing, X25519/HKDF key agreement, prime-field Shamir sharing, mask expansion."""

import numpy as np
import pytest
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from Crypto.Util.number import isPrime
from hypothesis import given
from hypothesis import strategies as st

from privcrypt import aead, kex, shamir
from privcrypt.exceptions import InvalidKey, InvalidTag
from privcrypt.rng import DeterministicRandom
from privcrypt.secagg import masking

KEY = bytes(range(32))


# -- aead ---------------------------------------------------------------------------------

def test_aead_round_trip_and_fresh_nonces():
    a = aead.seal(KEY, b"hello", b"ad")
    b = aead.seal(KEY, b"hello", b"ad")
    assert a != b and a[:12] != b[:12]  # random nonce per message
    assert len(a) == 5 + aead.OVERHEAD
    assert aead.open(KEY, a, b"ad") == b"hello" == aead.unseal(KEY, b, b"ad")


def test_aead_nonce_comes_from_privcrypt_rng():
    a = aead.seal(KEY, b"x", rng=DeterministicRandom(5))
    b = aead.seal(KEY, b"x", rng=DeterministicRandom(5))
    assert a == b


@pytest.mark.parametrize("pos", [0, 11, 12, 16, -16, -1])
def test_aead_any_flipped_byte_raises_invalid_tag(pos):
    sealed = bytearray(aead.seal(KEY, b"sixteen byte msg", b"ad"))
    sealed[pos] ^= 0x01
    with pytest.raises(InvalidTag):
        aead.open(KEY, bytes(sealed), b"ad")


def test_aead_wrong_ad_key_or_truncation():
    sealed = aead.seal(KEY, b"msg", b"round-1")
    with pytest.raises(InvalidTag):
        aead.open(KEY, sealed, b"round-2")
    with pytest.raises(InvalidTag):
        aead.open(bytes(32), sealed, b"round-1")
    with pytest.raises(InvalidTag):
        aead.open(KEY, sealed[:20], b"round-1")
    with pytest.raises(InvalidKey):
        aead.seal(b"short", b"msg")


# -- kex ----------------------------------------------------------------------------------

def test_x25519_rfc7748_vector():
    # RFC 7748, section 6.1
    a = kex.KeyPair.from_private_bytes(bytes.fromhex(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
    b = kex.KeyPair.from_private_bytes(bytes.fromhex(
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
    assert a.public.hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert b.public.hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert a._raw_agree(b.public).hex() == shared == b._raw_agree(a.public).hex()
    pure = kex.KeyPair.from_private_bytes(a.private_bytes(), backend="pycryptodome")
    assert pure.public == a.public and pure._raw_agree(b.public).hex() == shared


def test_hkdf_rfc5869_vector_and_pycryptodome():
    # RFC 5869, appendix A.1 (SHA-256)
    ikm, salt, info = b"\x0b" * 22, bytes(range(13)), bytes(range(0xF0, 0xFA))
    okm = kex.hkdf(ikm, 42, salt=salt, info=info)
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                         "34007208d5b887185865")
    for length in (1, 32, 33, 100):
        assert kex.hkdf(b"k" * 32, length, salt=b"s", info=b"i") == HKDF(
            b"k" * 32, length, b"s", SHA256, context=b"i")
    assert kex.hkdf(b"k" * 32, 32, info=b"i") == HKDF(b"k" * 32, 32, b"", SHA256, context=b"i")


def test_agree_is_symmetric_and_bound_to_info():
    a, b = kex.KeyPair.generate(), kex.KeyPair.generate()
    k1 = kex.agree(a, b.public, info=b"x", salt=b"round")
    assert k1 == kex.agree(b, a.public, info=b"x", salt=b"round")
    assert k1 != kex.agree(a, b.public, info=b"y", salt=b"round")
    assert k1 != kex.agree(a, b.public, info=b"x", salt=b"other")
    assert "redacted" in repr(a) and a.private_bytes().hex() not in repr(a)


@pytest.mark.parametrize("backend", ["pycryptodome", "cryptography"])
@pytest.mark.parametrize("bad", [bytes(32), b"\x01" + bytes(31), b"short"])
def test_agree_rejects_low_order_or_malformed_keys(backend, bad):
    if backend == "cryptography" and kex.BACKEND != "cryptography":
        pytest.skip("cryptography not installed")
    with pytest.raises(InvalidKey):
        kex.agree(kex.KeyPair.generate(backend=backend), bad, info=b"")


def test_keypair_from_rng_is_reproducible():
    a = kex.KeyPair.generate(rng=DeterministicRandom(1))
    assert a.public == kex.KeyPair.generate(rng=DeterministicRandom(1)).public


# -- shamir -------------------------------------------------------------------------------

def test_field_is_prime():
    assert isPrime(shamir.PRIME) and shamir.PRIME > 2**256


@given(secret=st.binary(min_size=32, max_size=32), n=st.integers(1, 12), data=st.data())
def test_shamir_any_t_shares_reconstruct(secret, n, data):
    t = data.draw(st.integers(1, n))
    xs = data.draw(st.lists(st.integers(1, 2**32), min_size=n, max_size=n, unique=True))
    shares = shamir.split(secret, t, xs, rng=DeterministicRandom(n))
    subset = data.draw(st.lists(st.sampled_from(xs), min_size=t, max_size=n, unique=True))
    assert shamir.combine({x: shares[x] for x in subset}, t) == secret


def test_shamir_fewer_than_t_shares():
    shares = shamir.split(b"\x07" * 32, 3, [1, 2, 3, 4])
    with pytest.raises(ValueError):
        shamir.combine({1: shares[1], 2: shares[2]}, 3)
    # t-1 shares of two different secrets can coincide: a fixed pair says nothing
    with pytest.raises(ValueError):
        shamir.split(b"\x00" * 32, 5, [1, 2, 3])
    with pytest.raises(ValueError):
        shamir.split(b"\x00" * 32, 2, [1, 1])


def test_shamir_coefficients_come_from_rng():
    s1 = shamir.split(b"\x01" * 32, 3, [1, 2, 3], rng=DeterministicRandom(9))
    s2 = shamir.split(b"\x01" * 32, 3, [1, 2, 3], rng=DeterministicRandom(9))
    s3 = shamir.split(b"\x01" * 32, 3, [1, 2, 3], rng=DeterministicRandom(10))
    assert s1 == s2 != s3


# -- masks --------------------------------------------------------------------------------

def test_mask_expansion_backends_agree_and_depend_on_seed():
    seed = bytes(range(32))
    pure = masking.MaskExpander(1001, np.uint32, backend="pycryptodome").expand(seed).copy()
    assert pure.dtype == np.uint32 and pure.shape == (1001,)
    if masking.PRG_BACKEND == "cryptography":
        fast = masking.MaskExpander(1001, np.uint32, backend="cryptography").expand(seed)
        assert np.array_equal(pure, fast)
    assert not np.array_equal(pure, masking.expand_mask(b"\x01" + seed[1:], 1001))
    wide = masking.expand_mask(seed, 500, np.uint64)
    assert wide.tobytes() == pure[:1000].tobytes()  # one keystream, read as 64-bit words
