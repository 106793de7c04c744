"""Commitments, joint coin tossing and the batched SPDZ MAC check.

Batched check (SPDZ, Damgård et al. 2012/2013, "MACCheck"): every *partially opened* value
``v_j`` (the sum of the parties' shares, broadcast without checking) is folded, right after
it is opened, into a running random linear combination with fresh public coefficients
``r_j``::

    a   += Σ_j r_j·v_j            (public)
    γ_i += Σ_j r_j·m_ij           (party i, from its MAC shares)

The coefficients come from a joint coin toss made *after* the values are fixed, so an error
``e_j ≠ 0`` in any opened value survives the combination except with chance ``1/p``.
At :meth:`MacCheck.verify` each party computes ``σ_i = γ_i - α_i·a``, **commits** to it
(SHA-256 of a domain tag, the check id, the party id, ``σ_i`` and a 256-bit nonce),
broadcasts the commitment, and only once all commitments are in does it open ``σ_i`` and the
nonce. Everyone recomputes each commitment (compared with ``hmac.compare_digest``) and
checks ``Σ_i σ_i = 0``. Commit-then-open stops a cheating party from choosing its ``σ``
after seeing the honest ones. If anything fails: ``MacCheckFailed``, and nothing opened since
the last successful check may be used. A cheater escapes with chance at most ``2/p < 2^-59``
per check (``1/p`` for guessing ``α``, ``1/p`` for the linear combination).

Only ``σ_i`` (one field element per party per check) is revealed; ``α`` and ``α_i`` never are.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np

from privcrypt.exceptions import MacCheckFailed, ProtocolAbort
from privcrypt.mpc import field
from privcrypt.rng import DeterministicRandom, RandomSource

__all__ = ["commit", "verify_opening", "coin_toss", "MacCheck"]

_COMMIT_TAG = b"privcrypt.mpc.commit/v1\x00"


def commit(data: bytes, *, rng: RandomSource) -> tuple[bytes, bytes]:
    """SHA-256 commitment to ``data`` with a 256-bit random nonce: returns
    ``(commitment, nonce)``. Hiding (the nonce) and binding (collision resistance)."""
    nonce = rng.bytes(32)
    return hashlib.sha256(_COMMIT_TAG + nonce + data).digest(), nonce


def verify_opening(commitment: bytes, data: bytes, nonce: bytes) -> bool:
    """Constant-time check that ``(data, nonce)`` opens ``commitment``."""
    if len(nonce) != 32:
        return False
    return hmac.compare_digest(commitment, hashlib.sha256(_COMMIT_TAG + nonce + data).digest())


def coin_toss(n_parties: int, label: bytes, *, rng: RandomSource) -> bytes:
    """Joint random 256-bit seed: each party commits to 32 random bytes, then all open; the
    seed is SHA-256 of the label and all contributions. Unpredictable to any coalition that
    lacks one honest party. Raises ``MacCheckFailed`` if an opening does not match."""
    contributions = [rng.bytes(32) for _ in range(n_parties)]
    commitments = [commit(label + c, rng=rng) for c in contributions]  # round 1: broadcast
    for (cm, nonce), c in zip(commitments, contributions):  # round 2: open and verify
        if not verify_opening(cm, label + c, nonce):
            raise MacCheckFailed("coin-toss commitment does not open")
    return hashlib.sha256(b"privcrypt.mpc.coins/v1\x00" + label + b"".join(contributions)).digest()


class MacCheck:
    """Running batched MAC check of everything partially opened since the last verify.

    ``alpha_shares``: the n parties' MAC-key shares (each row used only by its party)."""

    def __init__(self, alpha_shares: np.ndarray, *, rng: RandomSource):
        self._alpha = [int(a) for a in alpha_shares]
        self._rng = rng
        self._n = len(self._alpha)
        self._checks = 0
        self._folds = 0
        #: Set by the first failed check. SPDZ's abort is final: a value computed from a
        #: tampered opening (e.g. a Beaver product after a tampered ``d``) is consistently
        #: authenticated to the wrong value, and the only evidence was in the discarded
        #: batch, so nothing may be opened after a failure.
        self.aborted = False
        self._reset()

    def _ensure_live(self) -> None:
        if self.aborted:
            raise ProtocolAbort("an earlier MAC check failed; every value of this engine is "
                                "untrusted: start a new one", stage="mac_check")

    def _fail(self, message: str):
        self.aborted = True
        raise MacCheckFailed(message)

    def _reset(self) -> None:
        self._a = 0
        self._gamma = [0] * self._n
        self.pending = 0  # opened elements not yet verified

    def fold(self, values: np.ndarray, macs: np.ndarray) -> None:
        """Add partially opened ``values`` (shape S) with the parties' MAC shares
        (shape (n, *S), or a pair ``(M, M')`` standing for ``M - M'``, the MAC shares of a
        difference) to the running combination, with fresh jointly tossed coefficients."""
        self._ensure_live()
        values = np.asarray(values, dtype=np.uint64).reshape(-1)
        if values.size == 0:
            return
        self._folds += 1
        label = b"fold" + self._checks.to_bytes(8, "little") + self._folds.to_bytes(8, "little")
        # The 256-bit seed is jointly random (coin_toss), so expanding it with the AES-CTR
        # stream of DeterministicRandom is a proper PRG use; these coins are public.
        coins = DeterministicRandom(coin_toss(self._n, label, rng=self._rng))
        r = field.random_elements(coins, values.size)
        if isinstance(macs, tuple):
            macs = tuple(m.reshape(self._n, -1) for m in macs)
        else:
            macs = macs.reshape(self._n, -1)
        a, *gammas = field.dot_mod(r, values, macs)
        self._a = (self._a + a) % field.P
        for i, g in enumerate(gammas):
            self._gamma[i] = (self._gamma[i] + g) % field.P
        self.pending += values.size

    def sigmas(self) -> list[int]:
        """Each party's ``σ_i = γ_i - α_i·a`` (what it commits to)."""
        return [(g - al * self._a) % field.P for g, al in zip(self._gamma, self._alpha)]

    def verify(self, *, tamper_sigma=None) -> None:
        """Commit-then-open ``σ_i`` and check ``Σ σ_i = 0``; resets the batch either way.

        ``tamper_sigma`` (tests only) maps a party to the σ it *opens* after committing,
        to exercise the commitment check. Raises ``MacCheckFailed``."""
        self._ensure_live()
        self._checks += 1
        sig = self.sigmas()
        self._reset()
        tag = b"sigma" + self._checks.to_bytes(8, "little")
        enc = [tag + i.to_bytes(4, "little") + s.to_bytes(8, "little") for i, s in enumerate(sig)]
        commitments = [commit(e, rng=self._rng) for e in enc]  # round 1: all commitments
        if tamper_sigma:
            for i, s in tamper_sigma.items():
                sig[i] = int(s) % field.P
                enc[i] = tag + i.to_bytes(4, "little") + sig[i].to_bytes(8, "little")
        for (cm, nonce), e in zip(commitments, enc):  # round 2: open, everyone verifies
            if not verify_opening(cm, e, nonce):
                self._fail("a party opened a MAC-check value it had not committed to")
        if sum(sig) % field.P != 0:
            self._fail("MAC check failed: a share or MAC share of an opened value "
                       "was altered; discard everything opened since the last check")
