"""Layer 2: DWT alpha blending with a secret carrier image (the FLEP paper's second layer).

Both the (scrambled) image ``x`` and a secret carrier ``s`` go through a level-1 2-D DWT
(pywavelets, ``mode="periodization"``, so an orthogonal wavelet gives an orthogonal
transform with exactly as many coefficients as pixels). Every sub-band ``b`` in
``(cA, cH, cV, cD)`` is blended, ``B_b = alpha_b X_b + (1 - alpha_b) S_b``, and the inverse
DWT gives the blended image. Decryption solves for ``X_b``.

One alpha for all four sub-bands (the default, 0.8: 80 % scrambled image) is **exactly
pixel blending**, ``alpha x + (1 - alpha) s``: the DWT is linear (and orthogonal), so it
commutes with the blend. The transform then adds nothing. Per-sub-band alphas are an
option; note that the noise added later, once the blend is inverted, is then scaled by a
different ``1/alpha_b`` per sub-band and is no longer white.

Odd sizes: the image is padded (edge replication) to even height and width before the
DWT; the blended image has the padded size and decryption crops.

The carrier is either derived from the key (uniform bytes from AES-CTR under the layer
key; the default) or supplied by the user (any image, resized to the padded shape).

What it protects and what it does not: with one alpha the layer adds a key-dependent image
scaled by ``1 - alpha``. It is undone by anyone who knows or can estimate the carrier;
with a user-supplied natural image as carrier, a known plaintext reveals it. The
scrambled image's histogram is only shrunk to 80 %, not flattened.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pywt

from imaging._stream import keystream

__all__ = ["DwtBlender", "SUBBANDS"]

SUBBANDS = ("cA", "cH", "cV", "cD")


def _alphas(alpha: float | Sequence[float]) -> tuple[float, float, float, float]:
    if np.ndim(alpha) == 0:
        vals = (float(alpha),) * 4
    else:
        vals = tuple(float(a) for a in alpha)
        if len(vals) != 4:
            raise ValueError("alpha must be one float or four (cA, cH, cV, cD)")
    for a in vals:
        if not (0.0 < a <= 1.0) or not np.isfinite(a):
            raise ValueError(f"every alpha must be in (0, 1], got {a}")
    return vals  # type: ignore[return-value]


def padded_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with height and width rounded up to even."""
    h, w = shape[:2]
    return (h + h % 2, w + w % 2) + tuple(shape[2:])


class DwtBlender:
    """Level-1 DWT alpha blending with a secret carrier image."""

    def __init__(
        self,
        layer_key: bytes,
        *,
        alpha: float | Sequence[float] = 0.8,
        wavelet: str = "haar",
        carrier: np.ndarray | None = None,
    ):
        self.alphas = _alphas(alpha)
        w = pywt.Wavelet(wavelet)
        if not w.orthogonal:
            raise ValueError(f"wavelet {wavelet!r} is not orthogonal")
        self.wavelet = wavelet
        self._key = bytes(layer_key)
        if carrier is not None:
            carrier = np.asarray(carrier)
            if carrier.ndim not in (2, 3) or carrier.size == 0:
                raise ValueError("carrier must be a non-empty 2-D or 3-D image")
        self._user_carrier = carrier
        self._cache: dict[tuple[int, ...], np.ndarray] = {}
        self._bands: dict[tuple, list[np.ndarray]] = {}

    @property
    def carrier_kind(self) -> str:
        return "key" if self._user_carrier is None else "user"

    @property
    def uniform(self) -> bool:
        """True when one alpha is used for all sub-bands (then: pixel blending)."""
        return len(set(self.alphas)) == 1

    def noise_gain(self) -> float:
        """RMS factor by which inverting the blend scales white noise: ``sqrt(mean 1/alpha_b^2)``."""
        return float(np.sqrt(np.mean([1.0 / a**2 for a in self.alphas])))

    def __repr__(self) -> str:
        return f"DwtBlender(alphas={self.alphas}, wavelet={self.wavelet!r}, carrier={self.carrier_kind})"

    def carrier(self, shape: tuple[int, ...]) -> np.ndarray:
        """The carrier image (float64, 0-255) for a padded ``shape``."""
        shape = tuple(int(s) for s in shape)
        if shape in self._cache:
            return self._cache[shape]
        if self._user_carrier is None:
            n = int(np.prod(shape))
            c = keystream(self._key, f"blend/carrier/{shape}", n).astype(np.float64).reshape(shape)
        else:
            from skimage.transform import resize

            u = self._user_carrier.astype(np.float64)
            if u.ndim == 3 and len(shape) == 2:
                u = u[..., :3].mean(axis=2)
            if u.ndim == 2 and len(shape) == 3:
                u = np.repeat(u[..., None], shape[2], axis=2)
            if u.ndim == 3 and u.shape[2] != shape[2]:
                u = np.resize(u.mean(axis=2, keepdims=True), u.shape[:2] + (shape[2],))
            c = resize(u, shape, order=1, mode="edge", preserve_range=True, anti_aliasing=False)
        c.setflags(write=False)
        self._cache[shape] = c
        return c

    def _carrier_bands(self, shape: tuple[int, ...]) -> list[np.ndarray]:
        """``(1 - alpha_b) * DWT(carrier)_b`` for a padded shape, computed once per shape."""
        key = ("bands",) + tuple(int(v) for v in shape)
        if key not in self._bands:
            self._bands[key] = [(1.0 - a) * S for a, S in zip(self.alphas, self._dwt(self.carrier(shape)))]
        return self._bands[key]

    def _dwt(self, x: np.ndarray):
        ca, (ch, cv, cd) = pywt.dwt2(x, self.wavelet, mode="periodization", axes=(0, 1))
        return [ca, ch, cv, cd]

    def _idwt(self, bands) -> np.ndarray:
        ca, ch, cv, cd = bands
        return pywt.idwt2((ca, (ch, cv, cd)), self.wavelet, mode="periodization", axes=(0, 1))

    def encrypt(self, x: np.ndarray) -> np.ndarray:
        """Blend ``x`` (float, ``(H, W[, C])``) with the carrier; returns the padded shape."""
        x = np.asarray(x, dtype=np.float64)
        pshape = padded_shape(x.shape)
        if pshape != x.shape:
            pad = [(0, pshape[0] - x.shape[0]), (0, pshape[1] - x.shape[1])] + [(0, 0)] * (x.ndim - 2)
            x = np.pad(x, pad, mode="edge")
        xb = self._dwt(x)
        return self._idwt([a * X + S for a, X, S in zip(self.alphas, xb, self._carrier_bands(pshape))])

    def decrypt(self, y: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Invert the blend of a padded array ``y``; crop to the original ``shape``."""
        y = np.asarray(y, dtype=np.float64)
        yb = self._dwt(y)
        x = self._idwt([(Y - S) / a for a, Y, S in zip(self.alphas, yb, self._carrier_bands(y.shape))])
        return x[: shape[0], : shape[1]]
