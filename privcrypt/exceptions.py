"""The one flat exception hierarchy of privcrypt.

Every error that privcrypt raises for a *cryptographic or protocol* reason derives from
:class:`PrivcryptError`, so a caller can catch them all in one place. Bad arguments
(wrong types, negative sizes, out-of-range parameters supplied by the programmer) stay
ordinary :class:`ValueError` / :class:`TypeError`, as in the standard library.
"""

from __future__ import annotations

__all__ = [
    "PrivcryptError",
    "InvalidTag",
    "MacCheckFailed",
    "ProtocolAbort",
    "InvalidKey",
    "MalformedInput",
    "PrivacyBudgetExceeded",
    "UnsupportedParameters",
    "PrecisionWarning",
    "ClippingWarning",
    "AccuracyWarning",
]


class PrivcryptError(Exception):
    """Base class of every privcrypt-specific error."""


class InvalidTag(PrivcryptError):
    """An authenticated ciphertext (AES-GCM) failed verification: it was tampered with,
    truncated, or sealed under another key or associated data. Nothing is decrypted."""


class MacCheckFailed(PrivcryptError):
    """An SPDZ opening failed its MAC check: some party's share or MAC share was altered.
    The opened value must be discarded; the protocol aborts."""


class ProtocolAbort(PrivcryptError):
    """A multi-party protocol cannot finish safely (too many dropouts, a replayed or
    out-of-order message, inconsistent views). The message names the stage. No partial
    result is ever returned alongside this error."""

    def __init__(self, message: str, *, stage: str | None = None):
        self.stage = stage
        super().__init__(f"[{stage}] {message}" if stage else message)


class InvalidKey(PrivcryptError):
    """A key is malformed, of the wrong type or parameter set, or does not match the
    ciphertext it is used on."""


class MalformedInput(PrivcryptError):
    """Deserialized bytes failed validation (length, dtype, shape, version or parameter
    set). Raised instead of ever interpreting untrusted bytes loosely."""


class PrivacyBudgetExceeded(PrivcryptError):
    """A differential-privacy step would spend more (epsilon, delta) than the budget
    allows. Raised *before* the step is taken."""


class UnsupportedParameters(PrivcryptError):
    """A parameter set is recognised but not supported (e.g. below 128-bit security,
    or an encoding range that cannot hold the requested sum)."""


class PrecisionWarning(UserWarning):
    """A result is less exact than the declared bound promises (base of the warnings
    below). Turn into errors with ``warnings.simplefilter("error", PrecisionWarning)``."""


class ClippingWarning(PrecisionWarning):
    """Some inputs lay outside a backend's declared range and were clipped to it: the
    result is the aggregate of the clipped values, not of the inputs. The round's
    ``stats["clipped"]`` counts them; ``strict=True`` raises instead."""


class AccuracyWarning(PrecisionWarning):
    """A round's error bound (``stats["atol"]``) exceeds the aggregator's declared ``atol``,
    e.g. because the weights spread wider than the declared ``max_weight_ratio``."""
