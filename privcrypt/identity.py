"""Long-term Ed25519 identity keys and enrolment lists (for authenticated protocols).

An enrolment is the map ``client id -> 32-byte Ed25519 public key`` that every party
receives out of band (a file written by :func:`save_enrolment`, or the deployment's node
authentication). The authenticated masking mode (:mod:`privcrypt.secagg.masking`) signs key
advertisements and the survivor set with these keys, so a server cannot substitute a
client's public key or show clients different survivor sets.

Ed25519 (RFC 8032) comes from the ``cryptography`` package (OpenSSL), the optional ``fast``
extra: ``pip install 'privcrypt[fast]'``. Without it, :class:`IdentityKey` and
:func:`verify` raise ``ImportError`` naming the extra. The 32-byte private seed is drawn
from ``privcrypt.rng`` (keyword ``rng=``), never from another generator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from privcrypt.exceptions import InvalidKey, MalformedInput
from privcrypt.rng import RandomSource, resolve_rng

try:
    from cryptography.exceptions import InvalidSignature as _InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                                   Ed25519PublicKey)
    from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption,
                                                              PrivateFormat, PublicFormat)
except ImportError:  # pragma: no cover - depends on the install
    Ed25519PrivateKey = None

__all__ = ["IdentityKey", "verify", "load_enrolment", "save_enrolment", "PUBLIC_BYTES",
           "SIGNATURE_BYTES"]

PUBLIC_BYTES = 32
SIGNATURE_BYTES = 64


def _need_backend() -> None:
    if Ed25519PrivateKey is None:
        raise ImportError("Ed25519 identity keys need the 'cryptography' package: "
                          "pip install 'privcrypt[fast]'")


class IdentityKey:
    """A long-term Ed25519 signing key. ``repr`` never shows the secret."""

    __slots__ = ("_key", "public")

    def __init__(self, seed: bytes):
        _need_backend()
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
            raise InvalidKey("Ed25519 private key must be 32 bytes")
        self._key = Ed25519PrivateKey.from_private_bytes(bytes(seed))
        #: 32-byte raw public key (safe to publish in an enrolment).
        self.public: bytes = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls, *, rng: RandomSource | None = None) -> "IdentityKey":
        """A fresh key whose 32-byte seed comes from ``rng`` (default: OS CSPRNG)."""
        return cls(resolve_rng(rng).bytes(32))

    def private_bytes(self) -> bytes:
        """The raw 32-byte seed (secret: store it encrypted, never send it)."""
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, message: bytes) -> bytes:
        """64-byte Ed25519 signature of ``message``."""
        return self._key.sign(bytes(message))

    def __repr__(self) -> str:
        return f"IdentityKey(public={self.public.hex()[:16]}..., private=<redacted>)"


def verify(public: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` under ``public``.
    Returns False (never raises) for malformed keys or signatures."""
    _need_backend()
    if len(public) != PUBLIC_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public)).verify(bytes(signature), bytes(message))
    except (_InvalidSignature, ValueError):
        return False
    return True


def save_enrolment(path, enrolment: Mapping[int, bytes]) -> None:
    """Write ``{client id: public key}`` as JSON (hex keys) to ``path``."""
    data = {str(int(c)): bytes(pk).hex() for c, pk in sorted(enrolment.items())}
    Path(path).write_text(json.dumps({"ed25519_enrolment": data}, indent=1))


def load_enrolment(path) -> dict[int, bytes]:
    """Read an enrolment file written by :func:`save_enrolment`; ``MalformedInput`` if
    it is not one (bad JSON, ids, or key lengths)."""
    try:
        raw = json.loads(Path(path).read_text())["ed25519_enrolment"]
        out = {int(c): bytes.fromhex(pk) for c, pk in raw.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MalformedInput(f"not an enrolment file: {exc}") from None
    if any(len(pk) != PUBLIC_BYTES or c < 0 for c, pk in out.items()):
        raise MalformedInput("enrolment holds a bad client id or key length")
    return out
