"""Randomness for everything secret: shares, masks, keys, nonces and DP noise.

Two implementations of one :class:`RandomSource` protocol:

* :class:`SystemRandom` (the default everywhere): 32 bytes of OS entropy
  (``os.urandom``) key an AES-256-CTR keystream (pycryptodome, AES-NI when the CPU has it).
  It is a *fast-key-erasure* generator: every request first draws a fresh 256-bit key
  from the keystream and only then the caller's bytes, so a later memory compromise does
  not reveal earlier outputs. It is fork-safe: a child process that inherits the object
  reseeds from the OS before its first draw, so parent and child never share a stream.
* :class:`DeterministicRandom` (tests and reproducible benchmarks **only**): the same
  construction keyed by SHA-256 of a caller-supplied seed. Anyone who knows the seed knows
  every output; never use it for real keys, shares, masks or noise.

The keystream comes from :func:`privcrypt.keystream.aes_ctr_keystream` (OpenSSL through
the optional ``cryptography`` package when installed, pycryptodome otherwise; identical
output).

Why not ``numpy.random`` / ``random`` / ``torch`` generators: they are not
cryptographically secure (their state can be recovered from outputs), and a 32-bit seed
is brute-forceable. Why hand-written sampling on top of a library keystream: numpy offers
no CSPRNG-backed ``Generator`` with unbiased bounded integers for 64-bit bounds, so the
bounded-integer, float and Gaussian samplers below are small vectorized routines over the
AES-CTR bytes.

Functions elsewhere in privcrypt that need randomness take a keyword-only ``rng=``
argument and call :func:`resolve_rng` on it; there are no module-level generators.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from typing import Protocol, Union, runtime_checkable

import numpy as np

from privcrypt.keystream import aes_ctr_keystream

__all__ = [
    "RandomSource",
    "SystemRandom",
    "DeterministicRandom",
    "resolve_rng",
    "child_rng",
]

Shape = Union[int, tuple[int, ...], None]

_KEY_BYTES = 32
_TWO_POW_M53 = 2.0**-53


@runtime_checkable
class RandomSource(Protocol):
    """What every privcrypt randomness source provides.

    Implementations must draw every output from a cryptographically secure keystream.
    """

    def bytes(self, n: int) -> bytes:
        """``n`` uniformly random bytes."""

    def integers(self, bound: int, size: Shape = None, *, dtype=np.int64) -> np.ndarray:
        """Uniform integers in ``[0, bound)``, without modulo bias."""

    def field_elements(self, p: int, size: Shape = None) -> np.ndarray:
        """Uniform elements of Z_p, i.e. integers in ``[0, p)``."""

    def uniform(self, size: Shape = None) -> np.ndarray:
        """Uniform float64 in ``[0, 1)`` with 53 random bits each."""

    def normal(self, std: float = 1.0, shape: Shape = None) -> np.ndarray:
        """Gaussian samples N(0, std^2) as float64."""

    def permutation(self, n: int) -> np.ndarray:
        """A uniformly random permutation of ``range(n)``."""


def _count(size: Shape) -> tuple[int, tuple[int, ...]]:
    if size is None:
        return 1, ()
    if isinstance(size, (int, np.integer)):
        size = (int(size),)
    shape = tuple(int(s) for s in size)
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimension in size {size!r}")
    return math.prod(shape), shape


class _FastKeyErasureAesCtr:
    """AES-256-CTR keystream with fast key erasure (Bernstein, 2017).

    Each request runs AES-CTR under the current key from counter 0: the first 32 bytes of
    the stream become the next key, the rest go to the caller. A key therefore encrypts
    exactly one counter range and is overwritten before any output is returned.
    """

    __slots__ = ("_key", "_lock")

    def __init__(self, key: bytes):
        if len(key) != _KEY_BYTES:
            raise ValueError("AES-256 key must be 32 bytes")
        self._key = key
        self._lock = threading.Lock()

    def fill(self, n: int) -> np.ndarray:
        """Return ``n`` random bytes as a fresh writable uint8 array."""
        with self._lock:
            buf = aes_ctr_keystream(self._key, n + _KEY_BYTES)
            self._key = buf[:_KEY_BYTES].tobytes()
            buf[:_KEY_BYTES] = 0  # the next key must not stay in the returned array's buffer
        return buf[_KEY_BYTES:]


class _AesCtrSource:
    """Sampling routines shared by both sources; subclasses supply the keystream."""

    _stream: _FastKeyErasureAesCtr

    def _raw(self, n: int) -> np.ndarray:
        return self._stream.fill(n)

    # -- bytes and words ------------------------------------------------------------
    def bytes(self, n: int) -> bytes:  # noqa: A003 - protocol name
        n = int(n)
        if n < 0:
            raise ValueError("n must be non-negative")
        return self._raw(n).tobytes()

    def _u64(self, n: int) -> np.ndarray:
        return self._raw(8 * n).view(np.uint64)

    # -- integers ---------------------------------------------------------------------
    def integers(self, bound: int, size: Shape = None, *, dtype=np.int64) -> np.ndarray:
        """Uniform integers in ``[0, bound)`` for ``1 <= bound <= 2**64``.

        Rejection sampling: draw 64-bit words, keep the low ``bit_length(bound-1)`` bits,
        reject values ``>= bound``. At least half of the candidates are accepted, and the
        loop over-draws by the expected rejection rate, so it is vectorized and usually
        runs once. There is no modulo bias for any bound, e.g. ``3 * 2**61``.

        ``dtype`` is ``np.int64`` (bound at most 2**63) or ``np.uint64``. With
        ``size=None`` a 0-d array is returned.
        """
        bound = int(bound)
        dtype = np.dtype(dtype)
        if bound < 1 or bound > 2**64:
            raise ValueError(f"bound must be in [1, 2**64], got {bound}")
        if dtype == np.int64 and bound > 2**63:
            raise ValueError("bound > 2**63 needs dtype=np.uint64")
        if dtype not in (np.dtype(np.int64), np.dtype(np.uint64)):
            raise TypeError("dtype must be np.int64 or np.uint64")
        n, shape = _count(size)
        if bound == 2**64:
            out = self._u64(n)
        elif bound == 1:
            out = np.zeros(n, dtype=np.uint64)
        else:
            bits = (bound - 1).bit_length()
            mask = np.uint64((1 << bits) - 1)
            accept = bound / float(1 << bits)
            ubound = np.uint64(bound)
            out = np.empty(n, dtype=np.uint64)
            filled = 0
            while filled < n:
                need = n - filled
                draw = int(need / accept * 1.02) + 64
                cand = self._u64(draw)
                cand &= mask
                ok = cand[cand < ubound]
                take = min(ok.size, need)
                out[filled : filled + take] = ok[:take]
                filled += take
        return out.view(dtype).reshape(shape)

    def field_elements(self, p: int, size: Shape = None) -> np.ndarray:
        """Uniform elements of Z_p (``p <= 2**63``), as int64 in ``[0, p)``."""
        return self.integers(p, size, dtype=np.int64)

    # -- floats -----------------------------------------------------------------------
    def uniform(self, size: Shape = None) -> np.ndarray:
        """Uniform float64 in ``[0, 1)``: the top 53 bits of a 64-bit word times 2^-53."""
        n, shape = _count(size)
        return ((self._u64(n) >> np.uint64(11)).astype(np.float64) * _TWO_POW_M53).reshape(shape)

    def normal(self, std: float = 1.0, shape: Shape = None) -> np.ndarray:
        """Gaussian samples N(0, std^2) by the Box–Muller transform on CSPRNG uniforms.

        Each pair uses ``u1 in (0, 1]`` and ``u2 in [0, 1)`` of 53 bits each:
        ``r = sqrt(-2 ln u1)``, ``z = (r cos 2πu2, r sin 2πu2)``. Precision is that of
        float64 ``log``/``cos``/``sin`` (about 1 ulp); the tails are truncated at
        ``sqrt(-2 ln 2^-53) ≈ 8.57`` standard deviations (probability < 2^-53 per sample
        of being affected).

        Caveat (documented in docs/rng.md): like every floating-point Gaussian sampler,
        the low-order bits of the output are not exactly Gaussian; a DP guarantee that must
        survive floating-point attacks needs a discrete Gaussian on integers.
        """
        std = float(std)
        if not math.isfinite(std) or std < 0:
            raise ValueError(f"std must be finite and >= 0, got {std}")
        n, out_shape = _count(shape)
        pairs = (n + 1) // 2
        u = self._u64(2 * pairs) >> np.uint64(11)
        u1 = (u[:pairs].astype(np.float64) + 1.0) * _TWO_POW_M53  # (0, 1]
        u2 = u[pairs:].astype(np.float64) * (_TWO_POW_M53 * 2.0 * math.pi)
        r = np.sqrt(-2.0 * np.log(u1))
        z = np.empty(2 * pairs, dtype=np.float64)
        np.multiply(r, np.cos(u2), out=z[:pairs])
        np.multiply(r, np.sin(u2), out=z[pairs:])
        z = z[:n]
        if std != 1.0:
            z *= std
        return z.reshape(out_shape)

    def permutation(self, n: int) -> np.ndarray:
        """A uniformly random permutation of ``range(n)`` (int64).

        Sorts ``n`` random 64-bit keys (stable sort); ties occur with probability below
        ``n^2 / 2^65`` and only make the permutation very slightly non-uniform.
        """
        n = int(n)
        if n < 0:
            raise ValueError("n must be non-negative")
        return np.argsort(self._u64(n), kind="stable").astype(np.int64)


class SystemRandom(_AesCtrSource):
    """The default source: OS entropy expanded with fast-key-erasure AES-256-CTR.

    Threat model: outputs are computationally indistinguishable from uniform to anyone who
    does not see this process's memory. Fork-safe (reseeds in a child process) and
    thread-safe (a lock serializes key updates).
    """

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._stream = _FastKeyErasureAesCtr(os.urandom(_KEY_BYTES))

    def _raw(self, n: int) -> np.ndarray:
        pid = os.getpid()
        if pid != self._pid:  # forked: never continue the parent's stream
            self._stream = _FastKeyErasureAesCtr(os.urandom(_KEY_BYTES))
            self._pid = pid
        return self._stream.fill(n)

    def __repr__(self) -> str:
        return "SystemRandom(<os-seeded AES-256-CTR>)"


class DeterministicRandom(_AesCtrSource):
    """A reproducible AES-256-CTR stream keyed by ``SHA-256(seed)``.

    .. danger::
       For tests and reproducible benchmarks only. Everyone who knows the seed can
       recompute every output: never use it for real keys, shares, masks or DP noise.
       It is not fork-aware: a forked child continues the same stream as its parent.

    ``seed`` is a non-negative int, ``bytes`` or ``str``. :meth:`spawn` derives an
    independent child stream from a label, e.g. one per simulated party.
    """

    def __init__(self, seed: int | bytes | str):
        self._seed_key = self._derive(seed)
        self._stream = _FastKeyErasureAesCtr(self._seed_key)

    @staticmethod
    def _derive(seed: int | bytes | str) -> bytes:
        if isinstance(seed, bool) or not isinstance(seed, (int, bytes, str, np.integer)):
            raise TypeError("seed must be a non-negative int, bytes or str")
        if isinstance(seed, (int, np.integer)):
            seed = int(seed)
            if seed < 0:
                raise ValueError("seed must be non-negative")
            material = b"i" + seed.to_bytes((seed.bit_length() + 7) // 8 or 1, "big")
        elif isinstance(seed, str):
            material = b"s" + seed.encode("utf-8")
        else:
            material = b"b" + bytes(seed)
        return hashlib.sha256(b"privcrypt.DeterministicRandom/v1\x00" + material).digest()

    def spawn(self, label: int | bytes | str) -> "DeterministicRandom":
        """An independent deterministic stream for ``label`` (e.g. a party index), keyed by
        32 bytes drawn from this stream *now* and the label. Spawning advances the parent,
        so a second ``spawn(label)`` gives a different child (no stream, and no key derived
        from it, repeats across rounds); a fresh parent with the same seed reproduces the
        same sequence of children."""
        child = DeterministicRandom.__new__(DeterministicRandom)
        child._seed_key = hashlib.sha256(
            b"privcrypt.DeterministicRandom/spawn/v2\x00" + self.bytes(32) + self._derive(label)
        ).digest()
        child._stream = _FastKeyErasureAesCtr(child._seed_key)
        return child

    def __repr__(self) -> str:
        return "DeterministicRandom(<seeded; NOT for secrets>)"


class _ChildRandom(_AesCtrSource):
    """A fast-key-erasure AES-256-CTR stream keyed by fresh bytes of a parent source."""

    def __init__(self, key: bytes):
        self._stream = _FastKeyErasureAesCtr(key)

    def __repr__(self) -> str:
        return "ChildRandom(<keyed from a parent source>)"


def child_rng(rng: RandomSource, label: int | bytes | str) -> RandomSource:
    """An independent stream for one party, keyed by SHA-256 of 32 bytes drawn from ``rng``
    now and ``label``. Deterministic sources stay reproducible (call order matters); each
    call draws fresh bytes, so key material never repeats across calls whatever ``rng``
    is, as long as it does not repeat its own output. As secure as ``rng``."""
    rng = resolve_rng(rng)
    if isinstance(rng, DeterministicRandom):
        return rng.spawn(label)
    material = label.encode("utf-8") if isinstance(label, str) else (
        bytes(label) if isinstance(label, (bytes, bytearray)) else str(int(label)).encode())
    return _ChildRandom(hashlib.sha256(b"privcrypt.child_rng/v1\x00" + rng.bytes(32)
                                       + material).digest())


def resolve_rng(rng: RandomSource | None) -> RandomSource:
    """Return ``rng``, or a fresh :class:`SystemRandom` when ``rng`` is None.

    Raises ``TypeError`` for anything that is not a :class:`RandomSource`, in particular
    a ``numpy.random.Generator`` or an int seed, so that non-cryptographic generators
    cannot slip in where secret material is drawn.
    """
    if rng is None:
        return SystemRandom()
    if isinstance(rng, (np.random.Generator, np.random.RandomState)) or not isinstance(
        rng, RandomSource
    ):
        raise TypeError(
            "rng must be a privcrypt.rng.RandomSource (SystemRandom or DeterministicRandom), "
            f"not {type(rng).__name__}"
        )
    return rng
