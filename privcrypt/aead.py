"""AES-256-GCM authenticated encryption with the nonce chosen for the caller.

:func:`seal` returns ``nonce (12 bytes) || ciphertext || tag (16 bytes)``; :func:`open_sealed`
(also importable as ``unseal``, and as ``aead.open`` for older callers, which is not exported
because it would shadow the built-in ``open`` under ``from privcrypt.aead import *``)
verifies the tag against the key and the associated data before returning anything and
raises :class:`~privcrypt.exceptions.InvalidTag` on any mismatch (tampered, truncated,
wrong key, wrong associated data). pycryptodome's ``ValueError("MAC check failed")`` never
escapes. The nonce is 96 random bits from ``privcrypt.rng`` (``rng=``, default a fresh
:class:`~privcrypt.rng.SystemRandom`); with random nonces a key should seal at most 2**32
messages (NIST SP 800-38D, section 8.3). privcrypt derives a fresh key per peer and per
protocol round, so it seals a handful of messages per key.

Bind everything the message depends on (round id, protocol stage, sender, recipient) into
``associated_data``: then a ciphertext replayed into another round, stage or direction
fails to open.
"""

from __future__ import annotations

import builtins

from Crypto.Cipher import AES

from privcrypt.exceptions import InvalidKey, InvalidTag
from privcrypt.rng import RandomSource, resolve_rng

__all__ = ["seal", "open_sealed", "unseal", "KEY_BYTES", "NONCE_BYTES", "TAG_BYTES", "OVERHEAD"]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
#: Bytes a sealed message adds to its plaintext.
OVERHEAD = NONCE_BYTES + TAG_BYTES


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        raise InvalidKey(f"AES-256-GCM key must be {KEY_BYTES} bytes")
    return builtins.bytes(key)


def seal(key: bytes, plaintext: bytes, associated_data: bytes = b"", *,
         rng: RandomSource | None = None) -> bytes:
    """Encrypt and authenticate ``plaintext`` (and authenticate ``associated_data``)."""
    key = _check_key(key)
    nonce = resolve_rng(rng).bytes(NONCE_BYTES)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES)
    cipher.update(associated_data)
    ct, tag = cipher.encrypt_and_digest(plaintext)
    return nonce + ct + tag


def open_sealed(key: bytes, sealed: bytes, associated_data: bytes = b"") -> bytes:
    """Verify and decrypt :func:`seal` output. Raises ``InvalidTag`` unless the key, the
    associated data and every byte of ``sealed`` are exactly as sealed."""
    key = _check_key(key)
    if len(sealed) < OVERHEAD:
        raise InvalidTag("sealed message is truncated")
    nonce, ct, tag = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:-TAG_BYTES], sealed[-TAG_BYTES:]
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES)
    cipher.update(associated_data)
    try:
        # decrypt_and_verify compares tags in constant time and releases nothing on failure
        return cipher.decrypt_and_verify(ct, tag)
    except ValueError:
        raise InvalidTag("AES-GCM tag check failed") from None


#: Aliases of :func:`open_sealed`. ``open`` is kept for existing callers
#: (``aead.open(...)``) but is not in ``__all__``: a star import must not shadow the
#: built-in ``open``.
unseal = open_sealed
open = open_sealed  # noqa: A001
