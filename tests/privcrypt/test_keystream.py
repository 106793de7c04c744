import numpy as np
import pytest
from Crypto.Cipher import AES

from privcrypt import keystream
from privcrypt.keystream import aes_ctr_keystream

def test_counter_layout_matches_fips197_block_cipher():
    # Block i of the keystream is AES-256_k(nonce || i as 64-bit big-endian). The block
    # cipher itself is checked on FIPS-197 Appendix C.3 (AES-256 known answer).
    key = bytes(range(32))
    ecb = AES.new(key, AES.MODE_ECB)
    assert ecb.encrypt(bytes.fromhex("00112233445566778899aabbccddeeff")).hex() == \
        "8ea2b7ca516745bfeafc49904b496089"
    nonce = bytes.fromhex("0011223344556677")
    ks = aes_ctr_keystream(key, 48, nonce=nonce).tobytes()
    for i in range(3):
        assert ks[16 * i:16 * (i + 1)] == ecb.encrypt(nonce + i.to_bytes(8, "big"))


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, (1 << 20) - 1, (1 << 20) + 5, 3 * (1 << 20)])
def test_backends_bit_identical(n):
    key, nonce = bytes(range(32)), b"\x07" * 8
    pure = aes_ctr_keystream(key, n, nonce=nonce, backend="pycryptodome")
    ref = AES.new(key, AES.MODE_CTR, nonce=nonce, initial_value=0).encrypt(bytes(n))
    assert pure.tobytes() == ref
    if keystream.BACKEND == "cryptography":
        assert aes_ctr_keystream(key, n, nonce=nonce).tobytes() == ref


def test_arguments():
    with pytest.raises(ValueError):
        aes_ctr_keystream(b"short", 4)
    with pytest.raises(ValueError):
        aes_ctr_keystream(bytes(32), 4, nonce=b"x")
    with pytest.raises(ValueError):
        aes_ctr_keystream(bytes(32), -1)
    out = aes_ctr_keystream(bytes(32), 8)
    out[0] ^= 1  # writable
