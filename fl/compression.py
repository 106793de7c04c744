"""Compression of client updates: stochastic quantization and top-k with error feedback.

Where it sits: after clipping and DP noise, before secure aggregation. What it saves
depends on the backend, and the run reports the backends' real bytes, never an estimate:

* ``q8`` / ``q16`` quantize each coordinate to 2^b levels over the declared range
  ``[-bound, bound]`` with unbiased stochastic rounding. With ``masking`` the backend then
  runs with ``bits=b`` (its own quantizer *is* this compression: 8-bit values sum in
  32-bit words, so the upload does not shrink below 4 bytes per value unless the
  modulus is reduced, which the sum of n clients forbids). With the other backends the
  quantized values are sent in the backend's own encoding.
* ``topk`` keeps the ``k`` largest-magnitude coordinates and carries the rest into the
  next round (error feedback, Stich et al. 2018; Karimireddy et al. 2019). Secure
  aggregation sums dense vectors, so top-k saves no bytes on a secure backend: it changes
  what is sent, not its size. It is offered for the ``plain`` baseline and for studies.

Values outside the declared range are clipped and *counted* (``n_clipped``), never
silently wrapped.
"""

from __future__ import annotations

import numpy as np

from privcrypt.rng import RandomSource, resolve_rng

__all__ = ["stochastic_quantize", "TopKCompressor", "Compressor", "make_compressor"]


def stochastic_quantize(x: np.ndarray, bits: int, bound: float, *,
                        rng: RandomSource | None = None) -> tuple[np.ndarray, int]:
    """Quantize ``x`` to ``2**bits`` evenly spaced levels over ``[-bound, bound]`` with
    unbiased stochastic rounding and return ``(dequantized float64 values, n_clipped)``.

    ``E[result] = clip(x, -bound, bound)``; the error of each coordinate is below one step
    ``2 bound / (2**bits - 1)``. Values outside the range are clipped and counted.
    Raises ``ValueError`` for bits outside [1, 24] or a non-positive bound."""
    if not 1 <= int(bits) <= 24:
        raise ValueError(f"bits must be in [1, 24], got {bits}")
    if not (np.isfinite(bound) and bound > 0):
        raise ValueError(f"bound must be positive and finite, got {bound}")
    x = np.asarray(x, dtype=np.float64)
    n_clipped = int(np.count_nonzero(np.abs(x) > bound))
    levels = 2 ** int(bits) - 1
    step = 2.0 * bound / levels
    scaled = (np.clip(x, -bound, bound) + bound) / step
    low = np.floor(scaled)
    up = resolve_rng(rng).uniform(x.shape) < (scaled - low)
    q = np.minimum(low + up, levels)
    return q * step - bound, n_clipped


class TopKCompressor:
    """Top-k sparsification with error feedback, one residual per client.

    ``compress(cid, x)`` adds the client's residual to ``x``, keeps the ``fraction`` of
    coordinates with the largest magnitude (at least one), stores the rest as the new
    residual and returns the sparse vector (dense, zeros elsewhere)."""

    def __init__(self, fraction: float):
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.fraction = float(fraction)
        self._residual: dict[int, np.ndarray] = {}

    def compress(self, cid: int, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        acc = x + self._residual.get(cid, 0.0)
        k = max(1, int(round(self.fraction * acc.size)))
        keep = np.argpartition(np.abs(acc), acc.size - k)[acc.size - k:]
        out = np.zeros_like(acc)
        out[keep] = acc[keep]
        self._residual[cid] = acc - out
        return out


class Compressor:
    """The FL layer's compression stage: ``apply(cid, x, bound) -> (x', n_clipped)``."""

    def __init__(self, kind: str = "none", *, topk_fraction: float = 0.1,
                 rng: RandomSource | None = None):
        if kind not in ("none", "q8", "q16", "topk"):
            raise ValueError(f"unknown compression {kind!r}; choose none, q8, q16 or topk")
        self.kind = kind
        self.bits = {"q8": 8, "q16": 16}.get(kind)
        self._topk = TopKCompressor(topk_fraction) if kind == "topk" else None
        self._rng = resolve_rng(rng)

    def apply(self, cid: int, x: np.ndarray, bound: float) -> tuple[np.ndarray, int]:
        if self.kind == "none":
            return x, 0
        if self._topk is not None:
            return self._topk.compress(cid, x), 0
        return stochastic_quantize(x, self.bits, bound, rng=self._rng)


def make_compressor(kind: str, *, topk_fraction: float = 0.1, rng: RandomSource | None = None) -> Compressor:
    """Build the compression stage by name (``none``, ``q8``, ``q16``, ``topk``)."""
    return Compressor(kind, topk_fraction=topk_fraction, rng=rng)
