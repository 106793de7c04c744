"""X25519 key agreement (pycryptodome; OpenSSL when available) and HKDF-SHA256.

>>> from privcrypt.kex import KeyPair, agree
>>> a, b = KeyPair.generate(), KeyPair.generate()
>>> agree(a, b.public, info=b"demo") == agree(b, a.public, info=b"demo")
True

* :class:`KeyPair` — an X25519 private key drawn from ``privcrypt.rng`` (32 bytes, clamped
  by RFC 7748) and its 32-byte public key. Its ``repr`` never shows the secret; the raw
  secret is available as :meth:`KeyPair.private_bytes` for secret sharing.
* Speed: when the optional ``cryptography`` package (OpenSSL) is importable, the X25519
  scalar multiplication runs there (about 30 µs instead of about 700 µs with pycryptodome's
  key import and validation); results are bit-identical (RFC 7748), the tests check both
  paths against each other. ``BACKEND`` names the one in use; set the environment variable
  ``PRIVCRYPT_PURE_PYCRYPTODOME=1`` to force pycryptodome.
* :func:`agree` — X25519 Diffie–Hellman followed by HKDF-SHA256 (:func:`hkdf`) with caller-supplied
  ``salt`` and ``info``, so every derived key is bound to its purpose (e.g. round id,
  protocol label and both party ids). A low-order or malformed peer key raises
  :class:`~privcrypt.exceptions.InvalidKey` (pycryptodome rejects all-zero shared secrets).
"""

from __future__ import annotations

import hmac as _hmac
import os

from Crypto.Protocol.DH import import_x25519_private_key, import_x25519_public_key, key_agreement

from privcrypt.exceptions import InvalidKey

try:  # optional OpenSSL acceleration, identical results
    if os.environ.get("PRIVCRYPT_PURE_PYCRYPTODOME"):
        raise ImportError
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as _OsslPriv
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey as _OsslPub
    from cryptography.hazmat.primitives.serialization import Encoding as _Enc
    from cryptography.hazmat.primitives.serialization import PublicFormat as _PubFmt
except ImportError:  # pragma: no cover - depends on the install
    _OsslPriv = None
BACKEND = "pycryptodome" if _OsslPriv is None else "cryptography"
from privcrypt.rng import RandomSource, resolve_rng

__all__ = ["KeyPair", "agree", "hkdf", "load_public", "is_low_order", "PUBLIC_BYTES",
           "PRIVATE_BYTES", "BACKEND"]

PUBLIC_BYTES = 32
PRIVATE_BYTES = 32


def hkdf(secret: bytes, length: int = 32, *, salt: bytes = b"", info: bytes = b"") -> bytes:
    """HKDF-SHA256 (RFC 5869), on the standard library's OpenSSL-backed HMAC: about 15x
    faster than ``Crypto.Protocol.KDF.HKDF`` (pure Python), with identical output (the tests
    compare the two)."""
    if not 0 < length <= 255 * 32:
        raise ValueError("HKDF-SHA256 length must be in [1, 8160]")
    prk = _hmac.digest(salt or bytes(32), secret, "sha256")
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = _hmac.digest(prk, block + info + bytes([i]), "sha256")
        out += block
        i += 1
    return out[:length]


_P25519 = 2**255 - 19
# u-coordinates of the points of small order on Curve25519 and its quadratic twist
# (X25519 does not check curve membership): 0 and 1 and p-1 (orders 2 and 4) and the two
# of order 8. Same list as libsodium's ``has_small_order``; the tests check that each one
# yields the all-zero shared secret and that random keys are not flagged.
_LOW_ORDER_U = frozenset({
    0, 1, _P25519 - 1,
    int.from_bytes(bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"), "little"),
    int.from_bytes(bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"), "little"),
})


def is_low_order(raw: bytes) -> bool:
    """Whether a 32-byte X25519 public key is a point of small order (on the curve or its
    twist), in any encoding (the top bit is ignored and values >= p reduce mod p, as in
    RFC 7748). Agreement with such a key gives a shared secret independent of the private
    key (all zeros), so protocols must reject it. Raises ``InvalidKey`` for a wrong
    length."""
    raw = _check_raw(raw, "public")
    u = (int.from_bytes(raw, "little") & ((1 << 255) - 1)) % _P25519
    return u in _LOW_ORDER_U


def _check_raw(raw, what: str) -> bytes:
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != 32:
        raise InvalidKey(f"X25519 {what} key must be 32 bytes")
    return bytes(raw)


def load_public(raw: bytes, *, backend: str | None = None):
    """Parse a 32-byte X25519 public key (``InvalidKey`` if malformed) into the backend's
    key object; parse once and agree many times."""
    raw = _check_raw(raw, "public")
    if (backend or BACKEND) == "cryptography":
        return _OsslPub.from_public_bytes(raw)
    try:
        return import_x25519_public_key(raw)
    except ValueError as exc:
        raise InvalidKey(f"invalid X25519 public key: {exc}") from None


class KeyPair:
    """An X25519 key pair. Build with :meth:`generate` or :meth:`from_private_bytes`."""

    __slots__ = ("_raw", "_key", "_backend", "public")

    def __init__(self, raw: bytes, backend: str | None = None):
        self._raw = _check_raw(raw, "private")
        self._backend = backend or BACKEND
        if self._backend == "cryptography":
            self._key = _OsslPriv.from_private_bytes(self._raw)
            pub = self._key.public_key().public_bytes(_Enc.Raw, _PubFmt.Raw)
        else:
            try:
                self._key = import_x25519_private_key(self._raw)
            except ValueError as exc:
                raise InvalidKey(f"invalid X25519 private key: {exc}") from None
            pub = self._key.public_key().export_key(format="raw")
        #: 32-byte raw public key (safe to send).
        self.public: bytes = pub

    @classmethod
    def generate(cls, *, rng: RandomSource | None = None, backend: str | None = None) -> "KeyPair":
        """A fresh key pair whose secret is 32 bytes from ``rng`` (default: OS CSPRNG)."""
        return cls(resolve_rng(rng).bytes(PRIVATE_BYTES), backend)

    @classmethod
    def from_private_bytes(cls, raw: bytes, *, backend: str | None = None) -> "KeyPair":
        return cls(raw, backend)

    def private_bytes(self) -> bytes:
        """The raw 32-byte secret. Handle as secret material (it is what gets Shamir-shared
        in secure aggregation)."""
        return self._raw

    def _raw_agree(self, peer_public) -> bytes:
        if isinstance(peer_public, (bytes, bytearray)):
            peer_public = load_public(peer_public, backend=self._backend)
        try:
            if self._backend == "cryptography":
                return self._key.exchange(peer_public)  # raises on an all-zero result
            return key_agreement(static_priv=self._key, static_pub=peer_public, kdf=lambda z: z)
        except ValueError as exc:
            raise InvalidKey(f"X25519 key agreement failed: {exc}") from None

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public.hex()[:16]}..., private=<redacted>)"


def agree(own: KeyPair, peer_public, *, info: bytes, salt: bytes = b"", length: int = 32) -> bytes:
    """X25519(own, peer) then HKDF-SHA256(salt, info) to ``length`` bytes. ``peer_public``
    is 32 raw bytes or a key from :func:`load_public` (parse once, agree many times)."""
    return hkdf(own._raw_agree(peer_public), length, salt=salt, info=info)
