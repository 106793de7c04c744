"""The thin layer over SEAL (``tenseal.sealapi``): building contexts, and moving SEAL
objects to and from bytes.

TenSEAL's low-level SEAL binding saves and loads only through *file paths*. All of that is
kept behind :func:`seal_files`: a private ``tempfile.TemporaryDirectory`` (mode 0700,
memory-backed ``/dev/shm`` when the machine has it, so a secret key never reaches a disk),
one unique file name per object, each file removed as soon as it is read, the directory
removed when the ``with`` block ends. No shared or predictable path is ever used.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from typing import Iterator

try:
    import tenseal.sealapi as sealapi
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "privcrypt.he needs TenSEAL: pip install 'privcrypt[he]'"
    ) from exc

from privcrypt.exceptions import MalformedInput
from privcrypt.he.params import ParamSet

__all__ = ["sealapi", "seal_files", "SealFiles", "make_seal_context"]


def _parms(p: ParamSet) -> "sealapi.EncryptionParameters":
    parms = sealapi.EncryptionParameters(sealapi.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(p.poly_degree)
    parms.set_coeff_modulus(sealapi.CoeffModulus.Create(p.poly_degree, list(p.coeff_bits)))
    return parms


def make_seal_context(p: ParamSet, prng_seed: list[int] | None = None) -> "sealapi.SEALContext":
    """A SEAL context for ``p`` with SEAL's 128-bit check on.

    ``prng_seed`` (8 x uint64) makes every PRNG the context creates start from that seed:
    right for *key generation* (one draw), fatal for encryption (every ciphertext would reuse
    the same randomness), so only :func:`privcrypt.he.context.CkksContext.generate` passes it.
    """
    parms = _parms(p)
    if prng_seed is not None:
        parms.set_random_generator(sealapi.Blake2xbPRNGFactory(list(prng_seed)))
    ctx = sealapi.SEALContext(parms, True, sealapi.SEC_LEVEL_TYPE.TC128)
    if not ctx.parameters_set():
        raise ValueError(f"SEAL rejected {p.name}: {ctx.parameters_error_message()}")
    return ctx


class SealFiles:
    """Save/load SEAL objects through files in one private directory (see module doc)."""

    def __init__(self, directory: str):
        self._dir = directory
        self._names = itertools.count()

    def _path(self) -> str:
        return os.path.join(self._dir, f"o{next(self._names)}")

    def save(self, obj) -> bytes:
        """``obj.save(path)`` (a SEAL object or a ``Serializable``) -> its bytes."""
        path = self._path()
        try:
            obj.save(path)
            with open(path, "rb") as fh:
                return fh.read()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def load(self, obj, seal_context, data: bytes):
        """``obj.load(context, path)`` from ``data``; SEAL's own validity checks (header,
        sizes, parameters, coefficient ranges) run there. Any failure -> ``MalformedInput``."""
        path = self._path()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            obj.load(seal_context, path)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise MalformedInput(f"SEAL rejected the serialized {type(obj).__name__}: {exc}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return obj


@contextlib.contextmanager
def seal_files() -> Iterator[SealFiles]:
    """The one place where SEAL objects touch the file system: a private temporary
    directory, removed (with anything left in it) when the block ends."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="privcrypt-he-", dir=base) as d:
        os.chmod(d, 0o700)
        yield SealFiles(d)
