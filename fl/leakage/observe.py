"""What the server observes of one FedSGD round, per configuration, through the real
privcrypt backends.

A round: every client computes the mean cross-entropy gradient of the current model on
its batch (FedSGD; ``update_kind="delta"`` sends ``-lr * gradient``, one local step), then
applies the client side of the privacy pipeline, in this order:

1. example-level DP (``dp="example"``): per-example gradients clipped to L2 ``clip_norm``,
   summed, Gaussian noise ``N(0, (z * clip_norm)^2)`` added by the client itself (local
   DP-SGD step, so the server never sees an un-noised sum), divided by the batch size;
2. client-level DP (``dp="client"``): the client's whole update clipped to ``clip_norm``;
   noise ``z * clip_norm`` per client with ``backend="plain"`` (local DP: the server sees
   each update) or ``z * clip_norm / sqrt(K)`` per client with a secure backend
   (distributed DP: the sum carries ``z * clip_norm``; continuous Gaussian shares, not the
   discrete noise a production deployment would use);
3. compression: ``"topk"`` (keep the ``topk_frac`` largest magnitudes) or ``"int8"``
   (symmetric per-vector 8-bit quantization, nearest rounding) — local stand-ins for the
   lead's ``fl/compression.py``;
4. aggregation: ``plain`` — the server sees client 0's update itself (the attack target);
   ``masking`` / ``spdz`` / ``ckks`` — the server sees only ``res.mean`` of all K clients,
   computed by ``privcrypt.secagg.make_aggregator(name, ...).aggregate``.

The noise multiplier ``z`` for a target ``(epsilon, delta)``: one release
(``dp_steps == 1`` and ``dp_sample_rate == 1``) uses the tight analytic Gaussian
(``privcrypt.dp.gaussian_sigma``); a training run uses ``privcrypt.dp.noise_multiplier_for``
with the given sampling rate and steps. All DP noise comes from ``privcrypt.rng``.
Adjacency: add/remove one example (example-level) or one client (client-level).

Declared ranges: a secure backend clips each coordinate to ``±clip``; ``secagg_clip=None``
picks the smallest power of two covering every client's largest coordinate, and any
clipped value reported in ``res.stats["clipped"]`` raises ``ValueError`` (never a silent
distortion of what the attacker sees).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fl.leakage.inversion import model_gradient

__all__ = ["ObserveConfig", "Observation", "observe", "observe_detailed", "topk_sparsify",
           "quantize_int8", "per_example_gradients"]

_BACKENDS = ("plain", "masking", "spdz", "ckks")


@dataclass
class ObserveConfig:
    """One configuration of the round the attacker observes (see the module doc).

    ``backend``: ``plain|masking|spdz|ckks``; ``dp``: ``None|"example"|"client"`` with
    ``epsilon``, ``delta``, ``clip_norm``, ``dp_sample_rate``, ``dp_steps``;
    ``compression``: ``None|"topk"|"int8"`` with ``topk_frac``; ``update_kind``:
    ``"gradient"|"delta"`` with ``lr``; ``secagg_clip``: the backend's declared range
    (None: automatic power of two); ``secagg_params``: extra keyword arguments for
    ``make_aggregator`` (defaults: masking ``bits=24``, spdz ``frac_bits=24``);
    ``rng``: a ``privcrypt.rng`` source for DP noise and the backend's secrets."""

    backend: str = "plain"
    dp: str | None = None
    epsilon: float | None = None
    delta: float = 1e-5
    clip_norm: float = 1.0
    dp_sample_rate: float = 1.0
    dp_steps: int = 1
    compression: str | None = None
    topk_frac: float = 0.1
    update_kind: str = "gradient"
    lr: float = 0.1
    secagg_clip: float | None = None
    secagg_params: dict = field(default_factory=dict)
    rng: object = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid knob."""
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {self.backend!r}")
        if self.dp not in (None, "example", "client"):
            raise ValueError("dp must be None, 'example' or 'client'")
        if self.dp is not None and not (self.epsilon is not None and self.epsilon > 0):
            raise ValueError("dp needs a positive epsilon")
        if not (0 < self.delta < 1):
            raise ValueError("delta must be in (0, 1)")
        if not (self.clip_norm > 0 and math.isfinite(self.clip_norm)):
            raise ValueError("clip_norm must be positive and finite")
        if not (0 < self.dp_sample_rate <= 1) or int(self.dp_steps) < 1:
            raise ValueError("dp_sample_rate must be in (0, 1] and dp_steps >= 1")
        if self.compression not in (None, "topk", "int8"):
            raise ValueError("compression must be None, 'topk' or 'int8'")
        if not (0 < self.topk_frac <= 1):
            raise ValueError("topk_frac must be in (0, 1]")
        if self.update_kind not in ("gradient", "delta") or not self.lr > 0:
            raise ValueError("update_kind must be 'gradient' or 'delta', lr positive")
        if self.secagg_clip is not None and not (self.secagg_clip > 0 and math.isfinite(self.secagg_clip)):
            raise ValueError("secagg_clip must be positive and finite")

    def noise_multiplier(self) -> float:
        """``z`` such that noise ``z * clip_norm`` gives ``(epsilon, delta)`` (0 without DP)."""
        if self.dp is None:
            return 0.0
        from privcrypt.dp import gaussian_sigma, noise_multiplier_for

        if int(self.dp_steps) == 1 and self.dp_sample_rate == 1.0:
            return float(gaussian_sigma(self.epsilon, self.delta, 1.0))
        return float(noise_multiplier_for(self.epsilon, self.delta, self.dp_sample_rate,
                                          int(self.dp_steps)))


@dataclass
class Observation:
    """``update``: the flat float64 vector the server sees; ``info``: backend, clients,
    noise multiplier, clipped count, bytes, the clip used."""

    update: np.ndarray
    info: dict


def per_example_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """``(B, P)`` float64 array of each example's cross-entropy gradient (torch.func)."""
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, xi, yi):
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    g = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    flat = torch.cat([g[k].reshape(x.shape[0], -1) for k, _ in model.named_parameters()], dim=1)
    return flat.detach().double().numpy()


def topk_sparsify(update, frac: float) -> np.ndarray:
    """Keep the ``ceil(frac * n)`` largest-magnitude coordinates, zero the rest."""
    u = np.asarray(update, dtype=np.float64).reshape(-1)
    if not (0 < frac <= 1):
        raise ValueError("frac must be in (0, 1]")
    k = max(1, math.ceil(frac * u.size))
    out = np.zeros_like(u)
    idx = np.argpartition(np.abs(u), -k)[-k:]
    out[idx] = u[idx]
    return out


def quantize_int8(update) -> np.ndarray:
    """Symmetric 8-bit quantization with one scale per vector (``max|u| / 127``), nearest
    rounding; returns the dequantized float64 vector the server would decode."""
    u = np.asarray(update, dtype=np.float64).reshape(-1)
    scale = float(np.max(np.abs(u))) / 127.0
    if scale == 0.0:
        return u.copy()
    return np.clip(np.rint(u / scale), -127, 127) * scale


def _client_update(cfg: ObserveConfig, model, x, y, z: float, n_clients: int, rng) -> np.ndarray:
    from privcrypt.dp import add_gaussian_noise, clip_update

    if cfg.dp == "example":
        per = per_example_gradients(model, x, y)
        clipped = np.stack([clip_update(g, cfg.clip_norm)[0] for g in per])
        g = add_gaussian_noise(clipped.sum(axis=0), cfg.clip_norm, z, rng=rng) / x.shape[0]
    else:
        g = model_gradient(model, x, y)
    u = -cfg.lr * g if cfg.update_kind == "delta" else g
    if cfg.dp == "client":
        u, _ = clip_update(u, cfg.clip_norm)
        zc = z if cfg.backend == "plain" else z / math.sqrt(n_clients)
        u = add_gaussian_noise(u, cfg.clip_norm, zc, rng=rng)
    if cfg.compression == "topk":
        u = topk_sparsify(u, cfg.topk_frac)
    elif cfg.compression == "int8":
        u = quantize_int8(u)
    return u


def observe_detailed(config: ObserveConfig, client_batches, model: nn.Module) -> Observation:
    """Run one round of ``config`` on ``client_batches`` (a list of ``(x, y)`` tensors, one
    per client; client 0 is the attack target) and return what the server observes plus
    bookkeeping. Raises ``ValueError`` for a bad configuration or a backend that clipped."""
    from privcrypt.rng import resolve_rng

    config.validate()
    if not client_batches:
        raise ValueError("need at least one client batch")
    rng = resolve_rng(config.rng)
    k = len(client_batches)
    z = config.noise_multiplier()
    updates = {i: _client_update(config, model, torch.as_tensor(x), torch.as_tensor(y), z, k, rng)
               for i, (x, y) in enumerate(client_batches)}
    info = {"backend": config.backend, "n_clients": k, "noise_multiplier": z, "dp": config.dp,
            "epsilon": config.epsilon if config.dp else None, "compression": config.compression}
    if config.backend == "plain":
        return Observation(updates[0], {**info, "clipped": 0, "secagg_clip": None})
    from privcrypt.secagg import make_aggregator

    top = max(float(np.max(np.abs(u))) for u in updates.values())
    clip = config.secagg_clip or float(2.0 ** math.ceil(math.log2(max(top, 1e-30))))
    params = dict(config.secagg_params)
    if config.backend == "masking":
        params.setdefault("bits", 24)
        params["clip"] = clip
    elif config.backend == "spdz":
        params.setdefault("frac_bits", 24)
        params["clip"] = clip
    agg = make_aggregator(config.backend, rng=rng, **params)
    res = agg.aggregate(updates)
    clipped = int(res.stats.get("clipped", 0) or 0)
    if clipped:
        raise ValueError(f"the {config.backend} backend clipped {clipped} values at ±{clip}; "
                         "raise secagg_clip (the observation would be silently distorted)")
    info.update(clipped=clipped, secagg_clip=clip if config.backend != "ckks" else None,
                bytes_up=res.bytes_up, survivors=len(res.survivors))
    return Observation(np.asarray(res.mean, dtype=np.float64), info)


def observe(config: ObserveConfig, client_batches, model: nn.Module) -> np.ndarray:
    """The flat update the server observes in ``config`` (see :func:`observe_detailed`)."""
    return observe_detailed(config, client_batches, model).update
