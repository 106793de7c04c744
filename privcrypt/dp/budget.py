"""A privacy budget that refuses a step *before* it would overspend.

``PrivacyBudget(epsilon, delta, accountant="rdp")`` wraps an accountant. ``spend(...)``
computes the epsilon the accountant *would* report after the step; if that exceeds the
budget it raises :class:`~privcrypt.exceptions.PrivacyBudgetExceeded` and records
nothing, otherwise it records the step. So the released data never depends on a step
that the budget did not allow. ``spend`` is atomic: a lock makes the check and the record
one step, so concurrent callers (threads) can never jointly overspend. Threat model: the budget protects against the
*analyst's own* overspending; it is not a defence against a dishonest accountant host.
"""

from __future__ import annotations

import math
import threading

from privcrypt.dp.accountants import PLDAccountant, RDPAccountant
from privcrypt.dp.calibrate import make_accountant
from privcrypt.exceptions import PrivacyBudgetExceeded

__all__ = ["PrivacyBudget"]


class PrivacyBudget:
    """A total (epsilon, delta) budget over Poisson-subsampled Gaussian steps.

    ``accountant`` is ``"rdp"``, ``"pld"`` or an existing accountant (whose history
    counts as already spent). Raises ``ValueError`` for epsilon <= 0 or delta outside
    (0, 1).
    """

    def __init__(self, epsilon: float, delta: float, accountant="rdp") -> None:
        epsilon, delta = float(epsilon), float(delta)
        if not (epsilon > 0 and math.isfinite(epsilon)):
            raise ValueError(f"epsilon must be finite and > 0, got {epsilon}")
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        self.epsilon, self.delta = epsilon, delta
        if isinstance(accountant, str):
            accountant = make_accountant(accountant)
        if not isinstance(accountant, (RDPAccountant, PLDAccountant)):
            raise TypeError("accountant must be 'rdp', 'pld' or an RDP/PLD accountant")
        self.accountant = accountant
        self._lock = threading.Lock()

    @property
    def spent(self) -> float:
        """Epsilon spent so far at the budget's delta."""
        with self._lock:
            return self.accountant.get_epsilon(self.delta)

    @property
    def remaining(self) -> float:
        """Epsilon left (never negative)."""
        return max(0.0, self.epsilon - self.spent)

    def can_spend(self, *, noise_multiplier: float, sample_rate: float, steps: int = 1) -> bool:
        """Whether the step fits in the budget (records nothing)."""
        after = self.accountant.epsilon_after(
            self.delta, noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps)
        return after <= self.epsilon

    def spend(self, *, noise_multiplier: float, sample_rate: float, steps: int = 1) -> float:
        """Record the step if it fits and return the epsilon spent after it.

        Raises ``PrivacyBudgetExceeded`` (recording nothing) if it would overspend.
        """
        with self._lock:  # check and record are one atomic step
            after = self.accountant.epsilon_after(
                self.delta, noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps)
            if not after <= self.epsilon:
                raise PrivacyBudgetExceeded(
                    f"step would spend epsilon {after:.6g} > budget {self.epsilon:.6g} at delta {self.delta:g}")
            self.accountant.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps)
            return after

    def __repr__(self) -> str:
        return f"PrivacyBudget(epsilon={self.epsilon}, delta={self.delta}, accountant={self.accountant!r})"
