"""Stateful privacy accountants: a validated history of steps over the pure functions.

Each accountant records ``(noise_multiplier, sample_rate, steps)`` entries (consecutive
identical steps are merged, so ``step()`` in a training loop costs a comparison) and
computes epsilon on demand:

* :class:`RDPAccountant` — Rényi DP (exact per-order values, dp-accounting's conversion).
  Fast and simple; a slightly loose upper bound (typically 5–15 % above PLD).
* :class:`PLDAccountant` — privacy loss distributions (connect-the-dots, FFT
  composition): the tight bound, about 0.1–0.5 s per distinct (sigma, q) at 1e-4 spacing.

Both state add/remove-one adjacency with Poisson sampling at ``sample_rate``; the unit
(record or client) is whatever one "row" of the sampled data is; see docs/dp.md.

State round-trips through JSON (:meth:`to_json` / :meth:`from_json`, or :func:`load_accountant`).
Loading validates everything and raises :class:`~privcrypt.exceptions.MalformedInput`
for any malformed or out-of-range state; nothing is ever unpickled.
"""

from __future__ import annotations

import json
import math

import numpy as np

from privcrypt.dp.pld import DEFAULT_INTERVAL, pld_epsilon
from privcrypt.dp.rdp import DEFAULT_ORDERS, rdp_poisson_subsampled_gaussian, rdp_to_epsilon
from privcrypt.exceptions import MalformedInput

__all__ = ["RDPAccountant", "PLDAccountant", "load_accountant", "validate_step", "SIGMA_NO_PRIVACY",
           "SIGMA_ACCOUNTED_MAX"]

_FORMAT = "privcrypt.dp.accountant"
_VERSION = 1
_MAX_HISTORY = 100_000
_MAX_JSON = 16 * 1024 * 1024


#: Largest step count an accountant accepts (step counts stay exact as floats).
MAX_STEPS = 2**53

#: Noise multipliers below this are accounted as no noise (epsilon ``inf``): the bound at
#: such a sigma is astronomically large (about 5e12 at 1e-6 for 10 steps) and the
#: numerics (1/sigma^2) stop being meaningful.
SIGMA_NO_PRIVACY = 1e-6
#: Noise multipliers above this are accounted at this value. Epsilon never grows with
#: more noise (post-processing), so the result is still a valid upper bound (at 1e3,
#: q = 0.01, 10 steps, delta 1e-5: 0.0035 by RDP, 8e-5 by PLD); past it the RDP quadrature's cost
#: grows linearly with sigma and sigma^2 eventually overflows.
SIGMA_ACCOUNTED_MAX = 1e3


def _accounted(entries):
    """The entries with each sigma mapped into the range the accountants compute in:
    below :data:`SIGMA_NO_PRIVACY` -> 0 (epsilon inf), above
    :data:`SIGMA_ACCOUNTED_MAX` -> that value (a valid upper bound)."""
    out = []
    for sigma, q, steps in entries:
        if sigma < SIGMA_NO_PRIVACY:
            sigma = 0.0
        elif sigma > SIGMA_ACCOUNTED_MAX:
            sigma = SIGMA_ACCOUNTED_MAX
        out.append([sigma, q, steps])
    return out


def validate_step(noise_multiplier: float, sample_rate: float, steps: int) -> tuple[float, float, int]:
    """Check one step's parameters; returns them as (float, float, int).

    Raises ``TypeError`` for a non-integer ``steps`` and ``ValueError`` for
    noise_multiplier < 0 or non-finite, sample_rate outside [0, 1], or steps outside
    [0, 2**53] (beyond that, step counts are no longer exact floats).
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"steps must be an int, got {type(steps).__name__}")
    for name, value in (("noise_multiplier", noise_multiplier), ("sample_rate", sample_rate)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    sigma, q, steps = float(noise_multiplier), float(sample_rate), int(steps)
    if not (sigma >= 0.0 and math.isfinite(sigma)):
        raise ValueError(f"noise_multiplier must be finite and >= 0, got {noise_multiplier}")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"sample_rate must be in [0, 1], got {sample_rate}")
    if not 0 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be in [0, 2**53], got {steps}")
    return sigma, q, steps


class _Accountant:
    kind = ""

    def __init__(self) -> None:
        self._history: list[list] = []  # [sigma, q, steps]; adjacent entries differ

    # -- recording ------------------------------------------------------------------
    def step(self, *, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        """Record ``steps`` steps of the Poisson-subsampled Gaussian mechanism.

        Raises ``ValueError``/``TypeError`` on invalid parameters (nothing recorded)."""
        hist = self._history
        if hist and type(steps) is int and steps == 1 and hist[-1][0] == noise_multiplier and hist[-1][1] == sample_rate:
            hist[-1][2] += 1  # fast path: the last entry was validated already
            return
        sigma, q, steps = validate_step(noise_multiplier, sample_rate, steps)
        if steps == 0:
            return
        if hist and hist[-1][0] == sigma and hist[-1][1] == q:
            hist[-1][2] += steps
        else:
            hist.append([sigma, q, steps])

    @property
    def history(self) -> tuple[tuple[float, float, int], ...]:
        """The recorded ``(noise_multiplier, sample_rate, steps)`` entries."""
        return tuple((s, q, t) for s, q, t in self._history)

    @property
    def steps(self) -> int:
        """Total number of steps recorded."""
        return sum(t for _, _, t in self._history)

    # -- epsilon --------------------------------------------------------------------
    def _epsilon_of(self, entries, delta: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_epsilon(self, delta: float) -> float:
        """Epsilon spent so far at ``delta`` (an upper bound; ``inf`` only if some step
        had noise_multiplier below :data:`SIGMA_NO_PRIVACY`, e.g. 0). Raises
        ``ValueError`` unless 0 < delta < 1."""
        return self._epsilon_of(self._history, delta)

    def epsilon_after(self, delta: float, *, noise_multiplier: float, sample_rate: float, steps: int = 1) -> float:
        """Epsilon that would be spent after a further step, without recording it."""
        sigma, q, steps = validate_step(noise_multiplier, sample_rate, steps)
        return self._epsilon_of([*self._history, [sigma, q, steps]], delta)

    # -- state ----------------------------------------------------------------------
    def _params(self) -> dict:
        return {}

    def to_json(self) -> str:
        """The accountant's full state as a JSON string (no secrets are involved)."""
        return json.dumps({"format": _FORMAT, "version": _VERSION, "kind": self.kind,
                           **self._params(), "history": self._history})

    @classmethod
    def _from_params(cls, state: dict):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_json(cls, text: str | bytes):
        """Rebuild an accountant saved by :meth:`to_json`; raises ``MalformedInput`` on
        anything malformed, of the wrong kind or out of range."""
        state = _parse_state(text)
        if state["kind"] != cls.kind:
            raise MalformedInput(f"state is for a {state['kind']!r} accountant, not {cls.kind!r}")
        acc = cls._from_params(state)
        acc._history = _parse_history(state["history"])
        return acc

    def save(self, path) -> None:
        """Write :meth:`to_json` to ``path``."""
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())

    @classmethod
    def load(cls, path):
        """Read a state written by :meth:`save` (validated, see :meth:`from_json`)."""
        with open(path, "rb") as fh:
            return cls.from_json(fh.read(_MAX_JSON + 1))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(steps={self.steps}, entries={len(self._history)})"


class RDPAccountant(_Accountant):
    """Rényi-DP accountant over ``orders`` (default: dp-accounting's order list).

    Per-order RDP of each distinct (sigma, q) is computed once per accountant and cached.
    """

    kind = "rdp"

    def __init__(self, orders=DEFAULT_ORDERS) -> None:
        super().__init__()
        arr = np.asarray(orders, dtype=np.float64).ravel()
        if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 1.0):
            raise ValueError("orders must be finite and > 1")
        self.orders = tuple(float(a) for a in arr)
        self._orders = arr
        self._cache: dict[tuple[float, float], np.ndarray] = {}
        self._custom = np.zeros_like(arr)  # sum of step_rdp() curves (e.g. distributed DP)
        self._custom_steps = 0

    # -- custom RDP curves (additive; e.g. privcrypt.dp.distributed) -------------------
    def _check_curve(self, rdp, steps) -> tuple[np.ndarray, int]:
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
            raise TypeError("steps must be an int")
        steps = int(steps)
        if not 0 <= steps <= MAX_STEPS:
            raise ValueError("steps must be in [0, 2**53]")
        curve = np.asarray(rdp, dtype=np.float64).ravel()
        if curve.shape != self._orders.shape:
            raise ValueError(f"rdp must have one value per order ({self._orders.size})")
        if np.any(np.isnan(curve)) or np.any(curve < 0):
            raise ValueError("RDP values must be >= 0 (inf allowed)")
        return curve, steps

    def step_rdp(self, rdp, steps: int = 1) -> None:
        """Record ``steps`` steps of any mechanism whose per-step RDP at :attr:`orders` is
        ``rdp`` (e.g. ``DDGaussPlan.round_rdp``: distributed discrete Gaussian rounds with
        client sampling). Composes additively with :meth:`step`; saved in the JSON state.
        Raises ``ValueError``/``TypeError`` (recording nothing) on a wrong length, negative
        or NaN values, or a bad ``steps``."""
        curve, steps = self._check_curve(rdp, steps)
        if steps:
            self._custom = self._custom + steps * curve
            self._custom_steps += steps

    def epsilon_after_rdp(self, delta: float, rdp, steps: int = 1) -> float:
        """Epsilon that would be spent after :meth:`step_rdp` (records nothing)."""
        curve, steps = self._check_curve(rdp, steps)
        total = self._total_rdp(self._history) + steps * curve if steps else self._total_rdp(self._history)
        return rdp_to_epsilon(self._orders, total, delta)[0]

    @property
    def custom_steps(self) -> int:
        """Number of steps recorded with :meth:`step_rdp` (not counted in :attr:`steps`)."""
        return self._custom_steps

    def _rdp(self, sigma: float, q: float) -> np.ndarray:
        key = (sigma, q)
        if key not in self._cache:
            self._cache[key] = rdp_poisson_subsampled_gaussian(q, sigma, self._orders)
        return self._cache[key]

    def get_rdp(self) -> np.ndarray:
        """Total RDP at each order in :attr:`orders`."""
        return self._total_rdp(self._history)

    def _total_rdp(self, entries) -> np.ndarray:
        total = self._custom.copy()
        for sigma, q, steps in _accounted(entries):
            if steps and q > 0.0:
                total = total + steps * self._rdp(sigma, q)
        return total

    def get_epsilon_and_order(self, delta: float) -> tuple[float, float]:
        """(epsilon, the order that attains it)."""
        return rdp_to_epsilon(self._orders, self._total_rdp(self._history), delta)

    def _epsilon_of(self, entries, delta: float) -> float:
        return rdp_to_epsilon(self._orders, self._total_rdp(entries), delta)[0]

    def _params(self) -> dict:
        out = {"orders": list(self.orders)}
        if self._custom_steps:  # inf is written as null (JSON has no infinity)
            out["custom_rdp"] = [None if math.isinf(v) else float(v) for v in self._custom]
            out["custom_steps"] = self._custom_steps
        return out

    @classmethod
    def _from_params(cls, state: dict):
        orders = state.get("orders")
        if not isinstance(orders, list) or not 0 < len(orders) <= 10_000 or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) and a > 1
            for a in orders
        ):
            raise MalformedInput("orders must be a non-empty list of finite numbers > 1")
        acc = cls(orders)
        if "custom_rdp" in state or "custom_steps" in state:
            curve, steps = state.get("custom_rdp"), state.get("custom_steps")
            if (not isinstance(curve, list) or len(curve) != len(orders) or isinstance(steps, bool)
                    or not isinstance(steps, int) or not 0 < steps <= MAX_STEPS or not all(
                        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                      and math.isfinite(v) and v >= 0) for v in curve)):
                raise MalformedInput("custom_rdp must be one value >= 0 (or null) per order, with custom_steps > 0")
            acc._custom = np.array([math.inf if v is None else float(v) for v in curve])
            acc._custom_steps = steps
        return acc


class PLDAccountant(_Accountant):
    """Privacy-loss-distribution accountant (tight; pessimistic discretization at
    ``interval``, exact when every step has sample_rate 1)."""

    kind = "pld"

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__()
        interval = float(interval)
        if not (0.0 < interval <= 0.1 and math.isfinite(interval)):
            raise ValueError("interval must be in (0, 0.1]")
        self.interval = interval

    def _epsilon_of(self, entries, delta: float) -> float:
        return pld_epsilon(_accounted(entries), delta, self.interval)

    def _params(self) -> dict:
        return {"interval": self.interval}

    @classmethod
    def _from_params(cls, state: dict):
        interval = state.get("interval")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not (
            math.isfinite(interval) and 0 < interval <= 0.1
        ):
            raise MalformedInput("interval must be a number in (0, 0.1]")
        return cls(interval)


def _parse_state(text) -> dict:
    if isinstance(text, (bytes, bytearray)):
        if len(text) > _MAX_JSON:
            raise MalformedInput("accountant state too large")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedInput("accountant state is not UTF-8") from exc
    if not isinstance(text, str) or len(text) > _MAX_JSON:
        raise MalformedInput("accountant state must be a JSON string of bounded size")
    try:
        state = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedInput(f"accountant state is not valid JSON: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise MalformedInput("not a privcrypt accountant state")
    if state.get("version") != _VERSION:
        raise MalformedInput(f"unsupported accountant state version {state.get('version')!r}")
    if state.get("kind") not in ("rdp", "pld"):
        raise MalformedInput(f"unknown accountant kind {state.get('kind')!r}")
    if not isinstance(state.get("history"), list):
        raise MalformedInput("history must be a list")
    return state


def _reject_constant(name: str):
    raise MalformedInput(f"non-finite number {name} in accountant state")


def _parse_history(raw: list) -> list[list]:
    if len(raw) > _MAX_HISTORY:
        raise MalformedInput("history too long")
    out: list[list] = []
    for entry in raw:
        if not (isinstance(entry, list) and len(entry) == 3):
            raise MalformedInput("each history entry must be [noise_multiplier, sample_rate, steps]")
        sigma, q, steps = entry
        if any(isinstance(v, bool) for v in entry) or not isinstance(sigma, (int, float)) or not isinstance(
            q, (int, float)) or not isinstance(steps, int):
            raise MalformedInput("history entry has the wrong types")
        try:
            sigma, q, steps = validate_step(sigma, q, steps)
        except (TypeError, ValueError) as exc:
            raise MalformedInput(f"invalid history entry: {exc}") from exc
        if steps == 0:
            raise MalformedInput("history entries must have steps > 0")
        out.append([sigma, q, steps])
    return out


def load_accountant(text: str | bytes):
    """An :class:`RDPAccountant` or :class:`PLDAccountant` from its JSON state (by kind)."""
    state = _parse_state(text)
    cls = RDPAccountant if state["kind"] == "rdp" else PLDAccountant
    return cls.from_json(text)
