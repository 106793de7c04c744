"""``FlepPipeline``: the FLEP layers composed, and ``FlepCipher``, what it produces.

Encryption: scramble -> DWT blend -> AWGN -> (optional) diffusion.
Decryption (default, ``decode_order="fixed"``): undo diffusion -> remove the noise mean ->
invert the blend -> descramble -> denoise at the effective sigma ``sigma / alpha`` (the
noise is still white Gaussian there: a permutation of white noise is white noise) ->
round to uint8. ``decode_order="paper"`` denoises first, on the scrambled and blended image,
as the paper's Fig. 2 does; a denoiser cannot use spatial structure that the scrambler has
destroyed, so this order is worse (the benchmark measures it).

Without noise (``sigma=0``) decryption is bit-exact for every uint8 image, gray or
multi-channel, of any size.

Every layer key is derived from one :class:`~imaging.key.FlepKey` with HKDF; the cipher
carries the public parameters and an 8-byte key check value, so a wrong key is reported as
:class:`~privcrypt.exceptions.InvalidKey` (``verify_key=False`` decrypts anyway, to show
what a wrong key gives).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from imaging.blend import DwtBlender, padded_shape
from imaging.denoiser_select import denoise_image, denoiser_name, select_denoiser
from imaging.diffusion import Diffuser
from imaging.key import FlepKey
from imaging.noise import GaussianNoise
from imaging.scramble import ChaoticScrambler
from privcrypt.exceptions import InvalidKey, MalformedInput
from privcrypt.rng import RandomSource

__all__ = ["FlepPipeline", "FlepCipher", "paper_pipeline"]

_MAGIC = b"FLEPCIPH"
_VERSION = 1
_MAX_HEADER = 1 << 16
_MAX_PIXELS = 1 << 28
_PARAM_TYPES: dict[str, tuple] = {
    "shape": (list,),
    "scramble": (bool,),
    "block": (int,),
    "full_permutation": (bool,),
    "blend": (bool,),
    "alpha": (list,),
    "wavelet": (str,),
    "carrier": (str,),
    "sigma": (float, int),
    "noise_mean": (float, int),
    "diffusion": (bool,),
    "diffusion_rounds": (int,),
    "frac_bits": (int,),
    "kcv": (str,),
}
# parameters that must match between a cipher and the pipeline that decrypts it
_STRUCTURAL = tuple(k for k in _PARAM_TYPES if k not in ("shape", "kcv"))


class FlepCipher:
    """An encrypted image: ``data`` (float32 cipher, or uint32 words when diffused) and the
    public ``params`` needed to decrypt it with the key. No secret is stored."""

    __slots__ = ("data", "params")

    def __init__(self, data: np.ndarray, params: dict[str, Any]):
        self.data = data
        self.params = dict(params)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the plaintext image (the cipher may be padded to even sides)."""
        return tuple(self.params["shape"])

    def to_uint8(self) -> np.ndarray:
        """The 8-bit rendering metrics are computed on: the rounded, clipped float cipher, or
        the low byte of the diffused words."""
        if self.data.dtype == np.uint32:
            return (self.data & np.uint32(0xFF)).astype(np.uint8)
        return np.clip(np.rint(self.data), 0, 255).astype(np.uint8)

    def __repr__(self) -> str:
        return f"FlepCipher(shape={self.shape}, data={self.data.dtype}{self.data.shape})"

    # -- serialization: magic, version, header length, JSON header, raw little-endian data --
    def to_bytes(self) -> bytes:
        header = {"dtype": self.data.dtype.name, "data_shape": list(self.data.shape), "params": self.params}
        hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
        data = np.ascontiguousarray(self.data, dtype=self.data.dtype.newbyteorder("<"))
        return _MAGIC + struct.pack("<BI", _VERSION, len(hb)) + hb + data.tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "FlepCipher":
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError("cipher data must be bytes")
        blob = bytes(blob)
        fixed = len(_MAGIC) + 5
        if len(blob) < fixed or blob[: len(_MAGIC)] != _MAGIC:
            raise MalformedInput("not a FLEP cipher (bad magic or truncated)")
        version, hlen = struct.unpack("<BI", blob[len(_MAGIC) : fixed])
        if version != _VERSION:
            raise MalformedInput(f"unsupported FLEP cipher version {version}")
        if hlen > _MAX_HEADER or len(blob) < fixed + hlen:
            raise MalformedInput("truncated or oversized cipher header")
        try:
            header = json.loads(blob[fixed : fixed + hlen].decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedInput(f"cipher header is not valid JSON: {exc}") from None
        if not isinstance(header, dict) or set(header) != {"dtype", "data_shape", "params"}:
            raise MalformedInput("cipher header has wrong fields")
        dtype = {"float32": np.float32, "uint32": np.uint32}.get(header["dtype"])
        if dtype is None:
            raise MalformedInput(f"unsupported cipher dtype {header['dtype']!r}")
        dshape = _validate_shape(header["data_shape"], "data_shape")
        params = _validate_params(header["params"])
        if dshape != padded_shape(tuple(params["shape"])):
            raise MalformedInput("data shape does not match the image shape")
        if (dtype == np.uint32) != params["diffusion"]:
            raise MalformedInput("cipher dtype does not match the diffusion flag")
        n = math.prod(dshape) * 4
        body = blob[fixed + hlen :]
        if len(body) != n:
            raise MalformedInput(f"cipher data must be {n} bytes, got {len(body)} (truncated?)")
        data = np.frombuffer(body, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(dshape)
        if dtype == np.float32 and not np.all(np.isfinite(data)):
            raise MalformedInput("cipher holds non-finite values")
        return cls(data, params)

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> "FlepCipher":
        return cls.from_bytes(Path(path).read_bytes())


def _validate_shape(shape: Any, what: str) -> tuple[int, ...]:
    if (
        not isinstance(shape, list)
        or len(shape) not in (2, 3)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
        or (len(shape) == 3 and shape[2] > 4)
        or math.prod(shape) > _MAX_PIXELS
    ):
        raise MalformedInput(f"invalid {what} {shape!r}")
    return tuple(shape)


def _orthogonal_wavelets() -> set[str]:
    import pywt

    return {w for w in pywt.wavelist(kind="discrete") if pywt.Wavelet(w).orthogonal}


def _validate_params(p: Any) -> dict[str, Any]:
    if not isinstance(p, dict) or set(p) != set(_PARAM_TYPES):
        raise MalformedInput("cipher parameters have wrong fields")
    for k, types in _PARAM_TYPES.items():
        if not isinstance(p[k], types) or (bool not in types and isinstance(p[k], bool)):
            raise MalformedInput(f"cipher parameter {k!r} has the wrong type")
    _validate_shape(p["shape"], "shape")
    if not (1 <= p["block"] <= 64 and 1 <= p["diffusion_rounds"] <= 16 and 8 <= p["frac_bits"] <= 20):
        raise MalformedInput("cipher parameter out of range")
    a = p["alpha"]
    if len(a) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1 for v in a):
        raise MalformedInput("invalid alpha")
    if not (math.isfinite(p["sigma"]) and p["sigma"] >= 0 and math.isfinite(p["noise_mean"])):
        raise MalformedInput("invalid noise parameters")
    if p["wavelet"] not in _orthogonal_wavelets():
        raise MalformedInput(f"unsupported wavelet {p['wavelet'][:32]!r}")
    if p["carrier"] not in ("key", "user") or len(p["kcv"]) != 16:
        raise MalformedInput("invalid carrier or key check value")
    try:
        bytes.fromhex(p["kcv"])
    except ValueError:
        raise MalformedInput("invalid key check value") from None
    return p


class FlepPipeline:
    """The FLEP pipeline with every layer switchable.

    ``sigma=0`` switches the noise off (then decryption is lossless); ``diffusion=True``
    adds the keyed diffusion layer after the noise; ``scramble=False`` / ``blend=False``
    switch those layers off. ``alpha`` is one float (pixel blending, see
    :mod:`imaging.blend`) or four per-sub-band values. ``denoiser=None`` picks the DnCNN if
    available, else the scikit-image stand-in (:mod:`imaging.denoiser_select`); pass any
    object with ``.denoise(img2d) -> float32`` or ``denoise=False`` for none.
    """

    def __init__(
        self,
        key: FlepKey,
        *,
        sigma: float = 25.0,
        noise_mean: float = 0.0,
        diffusion: bool = False,
        diffusion_rounds: int = 2,
        frac_bits: int = 16,
        scramble: bool = True,
        block: int = 2,
        full_permutation: bool = False,
        blend: bool = True,
        alpha: float | Sequence[float] = 0.8,
        wavelet: str = "haar",
        carrier: np.ndarray | None = None,
        denoise: bool = True,
        denoiser: Any = None,
        decode_order: str = "fixed",
    ):
        if not isinstance(key, FlepKey):
            raise TypeError("key must be a FlepKey")
        if decode_order not in ("fixed", "paper"):
            raise ValueError("decode_order must be 'fixed' or 'paper'")
        self._key = key
        self._kcv = key.check_value().hex()
        self.scrambler = ChaoticScrambler(key.layer_key("flep/scramble"), block=block, full_permutation=full_permutation) if scramble else None
        self.blender = DwtBlender(key.layer_key("flep/blend"), alpha=alpha, wavelet=wavelet, carrier=carrier) if blend else None
        self.noise = GaussianNoise(sigma, noise_mean)
        self.diffuser = Diffuser(key.layer_key("flep/diffusion"), rounds=diffusion_rounds, frac_bits=frac_bits) if diffusion else None
        self._block, self._full, self._alpha, self._wavelet = int(block), bool(full_permutation), alpha, wavelet
        self._rounds, self._frac = int(diffusion_rounds), int(frac_bits)
        self.denoise_enabled = bool(denoise)
        self._denoiser = denoiser
        self.decode_order = decode_order

    def __repr__(self) -> str:
        p = self.params()
        p.pop("kcv")
        return f"FlepPipeline(key=<redacted>, {', '.join(f'{k}={v}' for k, v in p.items() if k != 'shape')})"

    # -- parameters -------------------------------------------------------------------------
    def params(self, shape: tuple[int, ...] = (1, 1)) -> dict[str, Any]:
        alphas = list(self.blender.alphas) if self.blender else [1.0] * 4
        return {
            "shape": [int(s) for s in shape],
            "scramble": self.scrambler is not None,
            "block": self._block,
            "full_permutation": self._full,
            "blend": self.blender is not None,
            "alpha": alphas,
            "wavelet": self._wavelet,
            "carrier": self.blender.carrier_kind if self.blender else "key",
            "sigma": self.noise.sigma,
            "noise_mean": self.noise.mean,
            "diffusion": self.diffuser is not None,
            "diffusion_rounds": self._rounds,
            "frac_bits": self._frac,
            "kcv": self._kcv,
        }

    @classmethod
    def from_cipher(cls, key: FlepKey, cipher: FlepCipher, **overrides) -> "FlepPipeline":
        """A pipeline with the cipher's public parameters (a user carrier must be passed)."""
        p = cipher.params
        if p["carrier"] == "user" and overrides.get("carrier") is None:
            raise ValueError("this cipher was blended with a user-supplied carrier: pass carrier=")
        kw = dict(
            sigma=p["sigma"], noise_mean=p["noise_mean"], diffusion=p["diffusion"],
            diffusion_rounds=p["diffusion_rounds"], frac_bits=p["frac_bits"], scramble=p["scramble"],
            block=p["block"], full_permutation=p["full_permutation"], blend=p["blend"],
            alpha=p["alpha"], wavelet=p["wavelet"],
        )
        kw.update(overrides)
        return cls(key, **kw)

    @property
    def effective_sigma(self) -> float:
        """Noise standard deviation where the default decoder denoises: ``sigma / alpha``
        (31.25 at the defaults). With per-sub-band alphas this is the RMS value and the
        noise is no longer white."""
        gain = self.blender.noise_gain() if self.blender else 1.0
        return self.noise.sigma * gain

    def denoiser(self, sigma: float | None = None):
        """The denoiser decryption uses (created on first use)."""
        if self._denoiser is None:
            self._denoiser = select_denoiser(self.effective_sigma if sigma is None else sigma)
        return self._denoiser

    @property
    def denoiser_name(self) -> str:
        if not self.denoise_enabled or self.noise.sigma == 0:
            return "none"
        return denoiser_name(self.denoiser(self._decode_sigma()))

    def _decode_sigma(self) -> float:
        return self.noise.sigma if self.decode_order == "paper" else self.effective_sigma

    # -- encryption / decryption ------------------------------------------------------------
    def encrypt(self, img: np.ndarray, *, rng: RandomSource | None = None) -> FlepCipher:
        """Encrypt a uint8 image ``(H, W)`` or ``(H, W, C)``; ``rng`` draws the noise."""
        img = np.asarray(img)
        if img.dtype != np.uint8:
            raise TypeError(f"image must be uint8, got {img.dtype}")
        if img.ndim not in (2, 3) or img.size == 0 or (img.ndim == 3 and not 1 <= img.shape[2] <= 4):
            raise ValueError(f"image must be (H, W) or (H, W, C<=4), got shape {img.shape}")
        x = img
        if self.scrambler is not None:
            x = self.scrambler.encrypt(x)
        y = x.astype(np.float64)
        if self.blender is not None:
            y = self.blender.encrypt(y)
        else:
            pshape = padded_shape(y.shape)
            if pshape != y.shape:  # keep one cipher shape rule for every configuration
                pad = [(0, pshape[0] - y.shape[0]), (0, pshape[1] - y.shape[1])] + [(0, 0)] * (y.ndim - 2)
                y = np.pad(y, pad, mode="edge")
        y = self.noise.encrypt(y, rng=rng)
        if not np.all(np.isfinite(y)) or (self.diffuser is None and np.max(np.abs(y)) >= np.finfo(np.float32).max):
            raise ValueError(
                f"the cipher is not finite in float32 (sigma={self.noise.sigma:g}, mean={self.noise.mean:g} "
                "are far too large); nothing was encrypted")
        if self.diffuser is not None:
            data = self.diffuser.encrypt(y)
        else:
            data = y.astype(np.float32)
        return FlepCipher(data, self.params(img.shape))

    def _check(self, cipher: FlepCipher, verify_key: bool) -> None:
        if not isinstance(cipher, FlepCipher):
            raise TypeError("decrypt takes a FlepCipher")
        mine = self.params(cipher.shape)
        for k in _STRUCTURAL:
            a, b = cipher.params[k], mine[k]
            if (list(map(float, a)) != list(map(float, b))) if k == "alpha" else (a != b):
                raise ValueError(f"cipher parameter {k}={a!r} differs from this pipeline's {b!r}; use FlepPipeline.from_cipher")
        if verify_key and cipher.params["kcv"] != mine["kcv"]:
            raise InvalidKey("the cipher was made under a different FLEP key (key check value mismatch)")

    def decrypt(self, cipher: FlepCipher, *, verify_key: bool = True) -> np.ndarray:
        """Decrypt to a uint8 image of the plaintext's shape."""
        self._check(cipher, verify_key)
        shape = cipher.shape
        if self.diffuser is not None:
            y = self.diffuser.decrypt(cipher.data)
        else:
            y = cipher.data.astype(np.float64)
        y = self.noise.decrypt(y)
        noisy = self.noise.sigma > 0 and self.denoise_enabled
        if noisy and self.decode_order == "paper":
            y = denoise_image(self.denoiser(self.noise.sigma), y)
        if self.blender is not None:
            y = self.blender.decrypt(y, shape)
        else:
            y = y[: shape[0], : shape[1]]
        if self.scrambler is not None:
            y = self.scrambler.decrypt(y)
        if noisy and self.decode_order == "fixed":
            y = denoise_image(self.denoiser(self.effective_sigma), y)
        return np.clip(np.rint(y), 0, 255).astype(np.uint8).reshape(shape)


def paper_pipeline(key: FlepKey, **kw) -> FlepPipeline:
    """The configuration of the FLEP paper: block 2, alpha 0.8, sigma 25, no diffusion,
    decoded in the paper's order (denoise first)."""
    base = dict(sigma=25.0, block=2, alpha=0.8, diffusion=False, decode_order="paper")
    base.update(kw)
    return FlepPipeline(key, **base)
