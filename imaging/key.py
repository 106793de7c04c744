"""``FlepKey``: one 256-bit master key for the whole FLEP pipeline.

Every layer gets its own key, derived from the master key with HKDF-SHA256 (RFC 5869,
pycryptodome) with the layer name as ``info`` (``context``). Layers never see the master
key, and knowing one layer key reveals nothing about the others or about the master key.

Serialized form (``to_bytes``): ``b"FK"`` magic, one version byte (``0x01``), then the
32 key bytes: 35 bytes in all. ``from_bytes`` validates magic, version and length and
raises :class:`~privcrypt.exceptions.MalformedInput` otherwise.

The key check value (``check_value()``, 8 bytes, HKDF with info ``"flep/kcv"``) is
stored in every cipher so that decrypting under the wrong key is a clear
:class:`~privcrypt.exceptions.InvalidKey` error instead of a silently wrong image. It is a
PRF output under the master key: it reveals nothing about the key beyond letting a guess be
checked, which the cipher itself already allows.
"""

from __future__ import annotations

import hmac

from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

from privcrypt.exceptions import MalformedInput
from privcrypt.rng import RandomSource, resolve_rng

__all__ = ["FlepKey", "KEY_BYTES"]

KEY_BYTES = 32
_MAGIC = b"FK"
_VERSION = 1
_SALT = b"privcrypt.imaging.flep/v1"


class FlepKey:
    """A 256-bit FLEP master key. Create with :meth:`generate` or :meth:`from_bytes`."""

    __slots__ = ("_master",)

    def __init__(self, master: bytes):
        if not isinstance(master, (bytes, bytearray)):
            raise TypeError("master key must be bytes")
        if len(master) != KEY_BYTES:
            raise ValueError(f"master key must be {KEY_BYTES} bytes, got {len(master)}")
        self._master = bytes(master)

    # -- creation and serialization ------------------------------------------------------
    @classmethod
    def generate(cls, *, rng: RandomSource | None = None) -> "FlepKey":
        """A fresh key: 32 bytes from ``privcrypt.rng`` (the OS-seeded CSPRNG by default)."""
        return cls(resolve_rng(rng).bytes(KEY_BYTES))

    def to_bytes(self) -> bytes:
        """``b"FK" || version || key`` (35 bytes). This is secret material: store it as such."""
        return _MAGIC + bytes([_VERSION]) + self._master

    @classmethod
    def from_bytes(cls, data: bytes) -> "FlepKey":
        """Parse :meth:`to_bytes` output; raises ``MalformedInput`` on any deviation."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("key data must be bytes")
        data = bytes(data)
        expected = len(_MAGIC) + 1 + KEY_BYTES
        if len(data) != expected:
            raise MalformedInput(f"FLEP key must be {expected} bytes, got {len(data)}")
        if data[:2] != _MAGIC:
            raise MalformedInput("not a FLEP key (bad magic)")
        if data[2] != _VERSION:
            raise MalformedInput(f"unsupported FLEP key version {data[2]}")
        return cls(data[3:])

    # -- derivation ----------------------------------------------------------------------
    def layer_key(self, name: str, length: int = KEY_BYTES) -> bytes:
        """HKDF-SHA256(master, salt=<fixed>, info=name) -> ``length`` bytes."""
        if not isinstance(name, str) or not name:
            raise ValueError("layer name must be a non-empty str")
        return HKDF(self._master, length, _SALT, SHA256, context=name.encode("utf-8"))

    def check_value(self) -> bytes:
        """8-byte key check value stored in ciphers (detects a wrong key at decryption)."""
        return self.layer_key("flep/kcv", 8)

    def with_bit_flipped(self, bit: int) -> "FlepKey":
        """A copy with master-key bit ``bit`` (0..255) flipped: for key-sensitivity tests."""
        bit = int(bit)
        if not 0 <= bit < 8 * KEY_BYTES:
            raise ValueError("bit must be in [0, 256)")
        b = bytearray(self._master)
        b[bit // 8] ^= 1 << (bit % 8)
        return FlepKey(bytes(b))

    # -- comparisons and display -----------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FlepKey):
            return NotImplemented
        return hmac.compare_digest(self._master, other._master)

    def __hash__(self) -> int:  # hash of a PRF output, never of the raw key
        return hash(self.layer_key("flep/hash", 8))

    def __repr__(self) -> str:
        return "FlepKey(<redacted 256-bit key>)"

    __str__ = __repr__

    def __reduce__(self):  # no pickling of secret keys
        raise TypeError("FlepKey cannot be pickled; use to_bytes() and store it as a secret")
