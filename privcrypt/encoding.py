"""Fixed-point encoding of float arrays into Z_M, and clip-bounded quantization.

Two encoders, each with a declared range, so that nothing ever wraps silently:

* :class:`FixedPoint` — signed fixed point with ``frac_bits`` fractional bits in a ring or
  prime field Z_M (``M <= 2**64``), negative values as ``M - |v|``. Used by the SPDZ engine.
  Encoding ``|x| > bound`` raises ``ValueError`` (or, with :meth:`FixedPoint.encode_clipped`,
  clips and counts). :meth:`FixedPoint.max_terms` says how many encoded values can be summed
  before the sum could leave the decodable range.
* :class:`Quantizer` — unsigned ``bits``-bit quantization of ``[-clip, clip]``, used by
  masking secure aggregation and compact CKKS: each client sends integers in
  ``[0, 2**bits)``, the server sums them modulo ``R``; :meth:`Quantizer.check_sum_fits`
  is the overflow guard ``n * (2**bits - 1) < R``.

Rounding: ``"nearest"`` (round half to even, deterministic, error <= 2^-(f+1) per value)
or ``"stochastic"`` (round up with probability equal to the fractional part, drawn from
``privcrypt.rng``; unbiased, error < 2^-f per value). NaN and ±Inf always raise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from privcrypt.rng import RandomSource, resolve_rng

__all__ = ["FixedPoint", "Quantizer"]

_ROUNDINGS = ("nearest", "stochastic")


def _as_finite_float(x, name: str = "x") -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf")
    return arr


def _round(scaled: np.ndarray, rounding: str, rng: RandomSource | None) -> np.ndarray:
    if rounding == "nearest":
        return np.rint(scaled)
    if rounding == "stochastic":
        floor = np.floor(scaled)
        u = resolve_rng(rng).uniform(scaled.shape)
        return floor + (u < (scaled - floor))
    raise ValueError(f"rounding must be one of {_ROUNDINGS}, got {rounding!r}")


@dataclass(frozen=True)
class FixedPoint:
    """Signed fixed point in Z_modulus.

    ``frac_bits``: fractional bits f; a real x is stored as round(x * 2^f) mod M.
    ``modulus``: M, 2 <= M <= 2**64 (a prime such as 2**61-1, or 2**64 for a ring).
    ``bound``: the declared range |x| <= bound. Must satisfy bound * 2^f < M/2 so that the
    centered lift decodes it; defaults to the largest such power of two divided by
    2**16 (headroom for sums of up to 65536 values).
    """

    frac_bits: int = 16
    modulus: int = 2**61 - 1
    bound: float | None = None

    def __post_init__(self):
        if not (0 <= self.frac_bits <= 52):
            raise ValueError("frac_bits must be in [0, 52]")
        if not (2 <= int(self.modulus) <= 2**64):
            raise ValueError("modulus must be in [2, 2**64]")
        half = self.modulus // 2
        if self.bound is None:
            b = float(2 ** (half.bit_length() - 1 - 16)) / 2**self.frac_bits
            object.__setattr__(self, "bound", max(b, 2.0**-self.frac_bits))
        b = float(self.bound)
        if not (b > 0 and math.isfinite(b)):
            raise ValueError("bound must be positive and finite")
        if math.ceil(b * 2**self.frac_bits) >= half or b * 2**self.frac_bits >= 2**62:
            raise ValueError(
                f"bound {b} with {self.frac_bits} fractional bits does not fit in Z_{self.modulus}"
            )

    @property
    def scale(self) -> float:
        return float(2**self.frac_bits)

    def max_terms(self, bound: float | None = None) -> int:
        """How many values of magnitude <= ``bound`` (default: the declared bound) can be
        added in Z_M and still decode correctly."""
        b = self.bound if bound is None else float(bound)
        per = math.ceil(b * self.scale) + 1
        return max(0, (self.modulus // 2 - 1) // per)

    # -- encode / decode --------------------------------------------------------------
    def _check_range(self, arr: np.ndarray) -> None:
        if arr.size and float(np.max(np.abs(arr))) > self.bound:
            raise ValueError(
                f"value {float(np.max(np.abs(arr)))!r} outside declared range ±{self.bound}"
            )

    def _to_residues(self, ints: np.ndarray) -> np.ndarray:
        v = np.asarray(ints).astype(np.int64)  # asarray: 0-d inputs stay arrays
        out = v.astype(np.uint64)  # two's complement: exact mod 2**64
        if self.modulus != 2**64:
            neg = v < 0
            out[neg] = np.uint64(self.modulus) - (-v[neg]).astype(np.uint64)
        return out

    def encode(self, x, *, rounding: str = "nearest", rng: RandomSource | None = None) -> np.ndarray:
        """Encode floats to residues (uint64 in [0, M)). Raises ``ValueError`` if any
        ``|x| > bound`` or any value is NaN/Inf."""
        arr = _as_finite_float(x)
        self._check_range(arr)
        return self._to_residues(_round(arr * self.scale, rounding, rng))

    def encode_clipped(
        self, x, *, rounding: str = "nearest", rng: RandomSource | None = None
    ) -> tuple[np.ndarray, int]:
        """Like :meth:`encode`, but values outside ±bound are clipped to it; returns
        ``(residues, number_clipped)`` so the caller can report the clipping."""
        arr = _as_finite_float(x)
        clipped = int(np.count_nonzero(np.abs(arr) > self.bound))
        arr = np.clip(arr, -self.bound, self.bound)
        return self._to_residues(_round(arr * self.scale, rounding, rng)), clipped

    def lift(self, residues) -> np.ndarray:
        """Centered lift of residues in [0, M) to signed int64 in (-M/2, M/2]."""
        r = np.asarray(np.asarray(residues).astype(np.uint64))
        if self.modulus != 2**64 and r.size and int(r.max()) >= self.modulus:
            raise ValueError("residue outside [0, modulus)")
        half = np.uint64(self.modulus // 2)
        neg = r > half
        out = np.asarray(r.astype(np.int64))
        if self.modulus == 2**64:
            return out  # two's complement view is the centered lift
        out[neg] = -(np.uint64(self.modulus) - r[neg]).astype(np.int64)
        return out

    def decode(self, residues, *, frac_bits: int | None = None) -> np.ndarray:
        """Decode residues to float64. ``frac_bits`` overrides the scale, e.g. ``2f`` for an
        untruncated product."""
        f = self.frac_bits if frac_bits is None else int(frac_bits)
        return self.lift(residues).astype(np.float64) / float(2**f)


@dataclass(frozen=True)
class Quantizer:
    """Unsigned ``bits``-bit quantization of values clipped to ``[-clip, clip]``.

    A value x maps to ``q = round((x + clip) / step)`` with ``step = 2 clip / (2^bits - 1)``,
    so ``q in [0, 2^bits - 1]``. Summing n quantized vectors gives
    ``sum_x ≈ sum_q * step - n * clip``. Per-value error: <= step/2 (nearest) or < step
    (stochastic, unbiased).
    """

    clip: float
    bits: int = 16

    def __post_init__(self):
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ValueError("clip must be positive and finite")
        if not (1 <= self.bits <= 48):
            raise ValueError("bits must be in [1, 48]")

    @property
    def levels(self) -> int:
        return 2**self.bits - 1

    @property
    def step(self) -> float:
        return 2.0 * self.clip / self.levels

    def check_sum_fits(self, n_terms: int, modulus: int, *, max_weight: int = 1) -> None:
        """Overflow guard: raise ``ValueError`` unless ``n * max_weight * (2^bits - 1) < modulus``,
        i.e. a sum of ``n_terms`` quantized values (each scaled by an integer weight of at
        most ``max_weight``) cannot wrap modulo ``modulus``."""
        need = int(n_terms) * int(max_weight) * self.levels
        if need >= int(modulus):
            raise ValueError(
                f"{n_terms} terms of {self.bits}-bit values (weight <= {max_weight}) can reach "
                f"{need}, which wraps modulo {modulus}; use fewer bits or a larger modulus"
            )

    def quantize(
        self,
        x,
        *,
        rounding: str = "stochastic",
        rng: RandomSource | None = None,
        clip: bool = True,
    ) -> tuple[np.ndarray, int]:
        """Return ``(q, n_clipped)`` with q uint64 in [0, 2^bits-1]. With ``clip=False``,
        values outside ±clip raise ``ValueError`` instead of being counted and clipped."""
        arr = _as_finite_float(x)
        over = np.abs(arr) > self.clip
        n_clipped = int(np.count_nonzero(over))
        if n_clipped and not clip:
            raise ValueError(f"{n_clipped} values outside ±{self.clip}")
        arr = np.clip(arr, -self.clip, self.clip)
        q = _round((arr + self.clip) / self.step, rounding, rng)
        return np.clip(q, 0, self.levels).astype(np.uint64), n_clipped

    def dequantize_sum(self, q_sum, n_terms: float) -> np.ndarray:
        """Decode a sum of ``n_terms`` quantized vectors (or a weighted sum whose weights add
        to ``n_terms``) back to the sum of the original values."""
        return np.asarray(q_sum, dtype=np.float64) * self.step - float(n_terms) * self.clip

    def dequantize(self, q) -> np.ndarray:
        """Decode one quantized vector."""
        return self.dequantize_sum(q, 1)
