"""DnCNN denoisers trained by the project, shipped with their weights.

>>> from imaging.denoise import load_denoiser
>>> den = load_denoiser(25)              # the sigma-25 DnCNN-17
>>> clean = den.denoise(noisy)           # 2-D array on 0-255 in, float32 on 0-255 out

Which model :func:`load_denoiser` picks for ``sigma`` (0-255 scale):

1. a sigma-specific model whose training sigma is within 10 % of ``sigma`` (the closest
   one if several); shipped: 15, 25, 31.25 (the FLEP decoder's effective sigma 25 / 0.8)
   and 50;
2. otherwise the blind model, trained over sigma 5-80, when ``sigma`` is inside that range;
3. otherwise the sigma-specific model with the closest sigma.

``load_denoiser(sigma, blind=True)`` always returns the blind model. ``load_denoiser(PATH)``
(a ``str`` or ``Path``) loads a model you trained yourself with ``privcrypt image
train-denoiser`` (a ``torch.save`` state_dict, read with ``weights_only=True``) or a
``.safetensors`` file; depth and width are read from the weights. The weights live in
``weights/`` (safetensors, float16 storage, float32 compute) and are checked against the
sha256 in ``weights/manifest.json`` when loaded. Inference runs on the CPU by default and
on the GPU when one is available (``device=`` overrides); images larger than ``tile``
pixels a side are processed in overlapping tiles whose margins cover the receptive field,
so the result equals whole-image inference. Any size (odd ones too) and uint8 or float
input are accepted. ``ensemble=True`` averages the 8 flipped/rotated passes
(geometric self-ensemble: 8x the time, a little more PSNR). This package does not need pywavelets or privcrypt.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
SPECIFIC_TOLERANCE = 0.10

__all__ = ["Denoiser", "load_denoiser", "load_denoiser_file", "available_models", "manifest", "WEIGHTS_DIR",
           "sha256_file"]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest() -> dict:
    """The parsed ``weights/manifest.json``."""
    if not MANIFEST.exists():
        raise FileNotFoundError(f"no denoiser weights shipped ({MANIFEST} is missing)")
    return json.loads(MANIFEST.read_text())


def available_models() -> list[dict]:
    """The shipped models' manifest entries (name, file, sha256, depth, sigma or sigma_range)."""
    return list(manifest()["models"])


def choose_model(sigma: float, models: list[dict], blind: bool = False) -> dict:
    """The rule documented in the module docstring."""
    blinds = [m for m in models if m.get("sigma_range")]
    specific = [m for m in models if m.get("sigma") is not None]
    if blind:
        if not blinds:
            raise LookupError("no blind model shipped")
        return blinds[0]
    if specific:
        best = min(specific, key=lambda m: abs(m["sigma"] - sigma))
        if abs(best["sigma"] - sigma) <= SPECIFIC_TOLERANCE * best["sigma"]:
            return best
    for m in blinds:
        lo, hi = m["sigma_range"]
        if lo <= sigma <= hi:
            return m
    if specific:
        return min(specific, key=lambda m: abs(m["sigma"] - sigma))
    if blinds:
        return blinds[0]
    raise LookupError("no denoiser models shipped")


def _progress(items, desc: str):
    """privcrypt's progress bar on stderr when available (this package does not need it)."""
    try:
        from privcrypt.progress import progress
    except ImportError:  # pragma: no cover
        return items
    return progress(items, desc=desc)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=16)
def _load_module(name: str, device: str):
    import torch

    from .model import DnCNN, FoldedDnCNN

    entry = next(m for m in available_models() if m["name"] == name)
    path = WEIGHTS_DIR / entry["file"]
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ValueError(f"{path.name}: sha256 {digest} does not match the manifest ({entry['sha256']})")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    sd = {k: v.float() for k, v in sd.items()}
    model = DnCNN(entry.get("depth", 17), entry.get("features", 64))
    model.load_state_dict(sd)
    model.eval()
    folded = FoldedDnCNN(model).to(device).eval()
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded


def _read_state_dict(path: Path) -> dict:
    """A DnCNN state_dict from ``path`` (safetensors, or torch.save read with
    ``weights_only=True``: never pickle code)."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for foreign bytes
        raise ValueError(f"{path}: not a readable model file ({type(exc).__name__}: {exc})") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path}: not a state_dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in sd.items()}


@lru_cache(maxsize=8)
def _load_file_module(path: str, stamp: tuple[int, int], device: str):
    """The folded DnCNN of a user weights file (cached per path, mtime and size)."""
    from .model import DnCNN, FoldedDnCNN

    sd = _read_state_dict(Path(path))
    convs = [k for k, v in sd.items() if k.startswith("body.") and k.endswith(".weight") and v.ndim == 4]
    if not convs:
        raise ValueError(f"{path}: no DnCNN convolution weights (expected keys body.N.weight)")
    first = sd[convs[0]]
    depth, features, channels = len(convs), int(first.shape[0]), int(first.shape[1])
    if channels != 1:
        raise ValueError(f"{path}: a {channels}-channel model; the FLEP decoder denoises one channel at a time")
    model = DnCNN(depth, features)
    try:
        model.load_state_dict({k: v.float() for k, v in sd.items()})
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit a DnCNN-{depth} with {features} features: "
                         f"{' '.join(str(exc).split())[:300]}") from None
    model.eval()
    folded = FoldedDnCNN(model).to(device).eval()
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded


@dataclass
class Denoiser:
    """One loaded model. :meth:`denoise` takes a 2-D array on 0-255 (uint8 or float) and
    returns float32 on 0-255 (not clipped, so unbiased estimates survive)."""

    name: str
    sigma: float | None
    sigma_range: tuple[float, float] | None
    device: str
    tile: int = 512
    ensemble: bool = False
    info: dict = field(default_factory=dict, repr=False)

    @property
    def module(self):
        path = self.info.get("path")
        if path is not None:
            st = os.stat(path)
            return _load_file_module(path, (st.st_mtime_ns, st.st_size), self.device)
        return _load_module(self.name, self.device)

    @property
    def margin(self) -> int:
        return int(self.info.get("depth", 17)) + 3

    def denoise(self, img) -> np.ndarray:
        import torch

        a = np.asarray(img)
        if a.ndim != 2:
            raise ValueError(f"expected a 2-D grayscale image, got shape {a.shape}")
        if a.size == 0:
            return a.astype(np.float32)
        x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32) / 255.0)
        net = self.module
        with torch.inference_mode():
            if self.ensemble:  # geometric self-ensemble: mean over the 8 flips/rotations
                out = torch.zeros_like(x)
                for k in range(8):
                    t = torch.rot90(x.flip(-1) if k >= 4 else x, k % 4, dims=(0, 1))
                    y = torch.rot90(self._tiled(net, t.contiguous()), -(k % 4), dims=(0, 1))
                    out += y.flip(-1) if k >= 4 else y
                out /= 8
            else:
                out = self._tiled(net, x)
        return (out.numpy() * 255.0).astype(np.float32, copy=False)

    __call__ = denoise

    def _run(self, net, x):
        import torch

        y = net(x[None, None].to(self.device))[0, 0]
        if self.device != "cpu":
            y = y.float().cpu()
        return y if isinstance(y, torch.Tensor) else torch.as_tensor(y)

    def _tiled(self, net, x):
        import torch

        h, w = x.shape
        t, m = self.tile, self.margin
        if h <= t + 2 * m and w <= t + 2 * m:
            return self._run(net, x)
        out = torch.empty_like(x)
        starts = [(y0, x0) for y0 in range(0, h, t) for x0 in range(0, w, t)]
        for y0, x0 in _progress(starts, desc=f"denoise {h}x{w}"):
            y1, x1 = min(h, y0 + t), min(w, x0 + t)
            ya, xa = max(0, y0 - m), max(0, x0 - m)
            yb, xb = min(h, y1 + m), min(w, x1 + m)
            res = self._run(net, x[ya:yb, xa:xb])
            out[y0:y1, x0:x1] = res[y0 - ya:y0 - ya + (y1 - y0), x0 - xa:x0 - xa + (x1 - x0)]
        return out


def load_denoiser_file(
    path: str | os.PathLike, *, device: str | None = None, tile: int = 512, ensemble: bool = False
) -> Denoiser:
    """A DnCNN from a weights file: the ``--out`` of ``privcrypt image train-denoiser``
    (``torch.save`` state_dict, loaded with ``weights_only=True``) or ``.safetensors``.
    Raises ``FileNotFoundError`` / ``ValueError`` naming the file when it is missing or
    does not hold DnCNN weights."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"denoiser weights {p}: no such file")
    dev = device or _default_device()
    resolved = str(p.resolve())
    st = os.stat(resolved)
    module = _load_file_module(resolved, (st.st_mtime_ns, st.st_size), dev)  # load and verify now
    depth = sum(1 for m in module.modules() if type(m).__name__ == "Conv2d")
    d = Denoiser(name=f"DnCNN-{depth} ({p.name})", sigma=None, sigma_range=None, device=dev, tile=tile,
                 ensemble=bool(ensemble), info={"path": resolved, "depth": depth, "file": p.name})
    return d


def load_denoiser(
    sigma: float | str | os.PathLike, *, blind: bool = False, device: str | None = None, tile: int = 512,
    ensemble: bool = False,
) -> Denoiser:
    """The shipped DnCNN for noise ``sigma`` (0-255 scale); see the module docstring for
    the rule. ``device``: ``"cpu"``, ``"cuda"``...; default the GPU when available.
    ``ensemble=True``: geometric self-ensemble (average of the 8 flipped/rotated passes;
    8x the time, about +0.07 dB at sigma 25 on the benchmark images). A path (``str`` or
    ``Path``) instead of a number loads that weights file (:func:`load_denoiser_file`)."""
    if isinstance(sigma, (str, os.PathLike)):
        if blind:
            raise ValueError("blind=True selects a shipped model; it does not apply to a weights file")
        return load_denoiser_file(sigma, device=device, tile=tile, ensemble=ensemble)
    sigma = float(sigma)
    if not sigma > 0:
        raise ValueError("sigma must be positive")
    entry = choose_model(sigma, available_models(), blind=blind)
    dev = device or _default_device()
    d = Denoiser(
        name=entry["name"], sigma=entry.get("sigma"),
        sigma_range=tuple(entry["sigma_range"]) if entry.get("sigma_range") else None,
        device=dev, tile=tile, ensemble=bool(ensemble), info=entry,
    )
    _ = d.module  # load and verify now
    return d
