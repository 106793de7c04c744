"""The client half of a round: local training on the client's own data, then the client
side of the privacy pipeline (clip, local DP noise, compression) that produces the vector
handed to the secure-aggregation client.

The data never leaves this module's functions; only the returned update vector does (and
through a secure backend, only its aggregate reaches the server).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from privcrypt.dp import clip_update
from privcrypt.rng import RandomSource

__all__ = ["ClientUpdate", "LocalTrainer", "get_vector", "set_vector", "prepare_update", "loss_for_task"]


@dataclass
class ClientUpdate:
    """What local training returns: the model delta, the number of examples it used and
    training metrics (``loss``; ``recon_q99`` for the anomaly task)."""

    delta: np.ndarray
    n_examples: int
    metrics: dict = field(default_factory=dict)


def _state_items(model: nn.Module):
    """The floating-point state of a model (parameters and float buffers), in order."""
    return [(k, v) for k, v in model.state_dict().items() if torch.is_floating_point(v)]


def get_vector(model: nn.Module) -> np.ndarray:
    """The model's floating-point state as one float64 vector (parameters and buffers)."""
    return np.concatenate([v.detach().reshape(-1).double().cpu().numpy() for _, v in _state_items(model)])


def set_vector(model: nn.Module, vec: np.ndarray) -> None:
    """Load a vector produced by :func:`get_vector` (same architecture) into ``model``."""
    items = _state_items(model)
    total = sum(v.numel() for _, v in items)
    if len(vec) != total:
        raise ValueError(f"vector has {len(vec)} values, the model {total}")
    sd = model.state_dict()
    off = 0
    with torch.no_grad():
        for k, v in items:
            n = v.numel()
            sd[k].copy_(torch.from_numpy(np.asarray(vec[off:off + n])).reshape(v.shape).to(v.dtype))
            off += n


def loss_for_task(task: str):
    """Per-batch loss: cross-entropy (classification), MSE on targets (regression), MSE
    reconstruction of the input (anomaly; targets ignored)."""
    if task == "classification":
        return lambda out, x, y: nn.functional.cross_entropy(out, y)
    if task == "regression":
        return lambda out, x, y: nn.functional.mse_loss(out.reshape(-1), y.reshape(-1))
    if task == "anomaly":
        return lambda out, x, y: nn.functional.mse_loss(out, x)
    raise ValueError(f"unknown task {task!r}")


def _to_tensors(X: np.ndarray, y: np.ndarray, task: str):
    xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64 if task == "classification" else np.float32))
    return xt, yt


class LocalTrainer:
    """Local training of one client. Reuses one worker model for every client (loaded
    from the global vector each time), so a round never holds K model copies.

    ``dp`` (optional): ``{"noise_multiplier", "clip", "sample_rate"}`` turns on DP-SGD:
    Poisson-sampled batches (sampling from ``rng``, secret), per-example gradients
    (``torch.func.vmap``; a per-example loop for layers vmap cannot batch), each clipped to
    ``clip`` in L2, summed, plus N(0, (noise_multiplier * clip)^2) from ``rng``, divided by
    the expected batch size."""

    def __init__(self, model_fn, task: str, cfg):
        self.model = model_fn()
        self.task, self.cfg = task, cfg
        self.loss = loss_for_task(task)
        self._vmap_ok: bool | None = None

    def _optimizer(self):
        c = self.cfg
        if c.optimizer == "adam":
            return torch.optim.Adam(self.model.parameters(), lr=c.lr)
        return torch.optim.SGD(self.model.parameters(), lr=c.lr, momentum=c.momentum)

    def train(self, global_vec: np.ndarray, X: np.ndarray, y: np.ndarray, *, seed: int,
              dp: dict | None = None, rng: RandomSource | None = None, attack=None,
              x_adv: np.ndarray | None = None) -> ClientUpdate:
        """Train from ``global_vec`` on ``(X, y)`` and return the delta. ``seed`` fixes the
        batch order (not secret); with ``dp`` the batches come from ``rng`` instead.
        ``attack`` (an ``fl.adversarial`` attack) turns on adversarial training with the
        FDA³ loss ``(1 - a) L_nat + a L_adv``, ``a = cfg.adv_alpha``; ``x_adv`` gives
        precomputed adversarial examples aligned with ``X`` instead (FDA³'s devices train on
        examples crafted once on the initial model)."""
        set_vector(self.model, global_vec)
        self.model.train()
        xt, yt = _to_tensors(X, y, self.task)
        xa = None if x_adv is None else torch.as_tensor(np.asarray(x_adv, dtype=np.float32))
        if self.task == "anomaly":
            normal = yt == 0
            if bool(normal.any()):  # train the autoencoder on the windows known normal
                xt, yt = xt[normal], yt[normal]
        opt = self._optimizer()
        n = xt.shape[0]
        B = self.cfg.batch_size
        losses = []
        gen = torch.Generator().manual_seed(int(seed))
        for _ in range(self.cfg.local_epochs):
            if dp is None:
                order = torch.randperm(n, generator=gen)
                batches = [order[i:i + B] for i in range(0, n, B)]
            else:
                batches = [None] * max(1, math.ceil(n / B))
            for idx in batches:
                opt.zero_grad(set_to_none=True)
                if dp is None and (attack is not None or xa is not None):
                    from fl.adversarial import adversarial_loss

                    loss = adversarial_loss(self.model, xt[idx], yt[idx], attack, self.cfg.adv_alpha,
                                            x_adv=None if xa is None else xa[idx])
                    loss.backward()
                    losses.append(float(loss.detach()))
                elif dp is None:
                    out = self.model(xt[idx])
                    loss = self.loss(out, xt[idx], yt[idx])
                    loss.backward()
                    losses.append(float(loss.detach()))
                else:
                    sel = torch.from_numpy(np.flatnonzero(rng.uniform(n) < dp["sample_rate"]))
                    losses.append(self._dp_step(xt[sel], yt[sel], dp, n, rng, attack,
                                                None if xa is None else xa[sel]))
                opt.step()
        delta = get_vector(self.model) - global_vec
        metrics = {"loss": float(np.mean(losses)) if losses else float("nan")}
        if self.task == "anomaly":
            metrics["recon_q99"] = self._recon_quantile(xt)
        return ClientUpdate(delta, int(n), metrics)

    # -- DP-SGD ----------------------------------------------------------------------------
    def _per_example_grads(self, xb, yb, xa=None) -> list[torch.Tensor]:
        """Per-example gradients of the loss (of the FDA³ loss when adversarial examples
        ``xa`` are given, crafted beforehand on the whole batch)."""
        params = {k: v.detach() for k, v in self.model.named_parameters()}
        buffers = {k: v.detach() for k, v in self.model.named_buffers()}
        loss, a = self.loss, (self.cfg.adv_alpha if xa is not None else 0.0)
        xa = xb if xa is None else xa

        def one(p, b, x, x_adv, y):
            out = torch.func.functional_call(self.model, (p, b), (x.unsqueeze(0),))
            val = loss(out, x.unsqueeze(0), y.unsqueeze(0))
            if a:
                out_a = torch.func.functional_call(self.model, (p, b), (x_adv.unsqueeze(0),))
                val = (1 - a) * val + a * loss(out_a, x_adv.unsqueeze(0), y.unsqueeze(0))
            return val

        if self._vmap_ok is not False:
            try:
                g = torch.func.vmap(torch.func.grad(one), in_dims=(None, None, 0, 0, 0))(params, buffers, xb, xa, yb)
                self._vmap_ok = True
                return [g[k] for k in params]
            except (RuntimeError, NotImplementedError):
                if self._vmap_ok:  # it worked before: a real error
                    raise
                self._vmap_ok = False
        rows = [torch.func.grad(one)(params, buffers, xb[i], xa[i], yb[i]) for i in range(xb.shape[0])]
        return [torch.stack([r[k] for r in rows]) for k in params]

    def _dp_step(self, xb, yb, dp, n, rng, attack=None, xa=None) -> float:
        clip, z = dp["clip"], dp["noise_multiplier"]
        if xb.shape[0] > 0:
            if xa is None and attack is not None:
                xa = attack(self.model, xb, yb).detach()
            grads = self._per_example_grads(xb, yb, xa)
            norms = torch.sqrt(sum((g.reshape(g.shape[0], -1).double() ** 2).sum(1) for g in grads))
            factor = torch.clamp(clip / (norms + 1e-12), max=1.0)
            summed = [(g * factor.reshape(-1, *[1] * (g.dim() - 1)).to(g.dtype)).sum(0) for g in grads]
            with torch.no_grad():
                loss = float(self.loss(self.model(xb), xb, yb))
        else:  # an empty Poisson batch still takes a (pure-noise) step
            summed = [torch.zeros_like(p) for p in self.model.parameters()]
            loss = float("nan")
        expected = dp["sample_rate"] * n
        for (name, p), s in zip(self.model.named_parameters(), summed):
            noise = torch.from_numpy(rng.normal(z * clip, tuple(p.shape))).to(p.dtype)
            p.grad = (s + noise) / expected
        return loss

    def _recon_quantile(self, xt) -> float:
        self.model.eval()
        with torch.no_grad():
            err = ((self.model(xt) - xt) ** 2).reshape(xt.shape[0], -1).mean(1)
        return float(torch.quantile(err, 0.99)) if err.numel() else float("nan")


def prepare_update(delta: np.ndarray, clip_norm: float, *, privacy=None, compressor=None,
                   cid: int = 0, bound: float | None = None, rng: RandomSource | None = None) -> tuple[np.ndarray, dict]:
    """The client side of the privacy pipeline, in order: clip to L2 ``clip_norm`` ->
    local DP noise (client-level ``local`` mode) -> compression. Returns the vector for the
    secure-aggregation client and ``{"norm", "clipped", "compress_clipped"}``."""
    clipped, norm = clip_update(delta, clip_norm)
    info = {"norm": norm, "clipped": bool(norm > clip_norm)}
    if privacy is not None and getattr(privacy, "unit", None) == "client":
        clipped = privacy.add_client_noise(clipped, rng)
    info["compress_clipped"] = 0
    if compressor is not None:
        clipped, info["compress_clipped"] = compressor.apply(cid, clipped, bound or clip_norm)
    return clipped, info


class ClientPipeline:
    """Everything a client does in a round, as one call: local training (DP-SGD with the
    example unit) then :func:`prepare_update`. The in-process simulation and the Flower
    ClientApp both call :meth:`run`, so the client code path is the same on both
    transports.

    ``dp_sgd``: client id -> DP-SGD parameters (example unit) or ``None``; ``privacy``:
    the client-level DP object (local noise) or ``None``; ``bound``: the backend's
    declared per-coordinate range (used by quantizing compression)."""

    def __init__(self, trainer: LocalTrainer, cfg, *, privacy=None, compressor=None, bound: float | None = None):
        self.trainer, self.cfg = trainer, cfg
        self.privacy, self.compressor = privacy, compressor
        self.bound = cfg.clip_norm if bound is None else bound
        self._attacks: dict[str, object] = {}

    def output_dim(self, model_dim: int) -> int:
        """Length of the vector a client submits (distributed DP pads to a power of two)."""
        p = self.privacy
        return p.out_dim if p is not None and getattr(p, "mode", None) == "distributed" else model_dim

    def attack_for(self, cid: int):
        """The adversarial-training attack client ``cid`` trains against (``None`` without
        ``adv_train``): the configured one, or FDA³'s per-client schedule for ``"fda3"``."""
        name = self.cfg.adv_train
        if name is None:
            return None
        from fl.adversarial import client_attack_schedule, make_attack

        if name == "fda3":
            name = client_attack_schedule(cid + 1)[cid]
        if name not in self._attacks:
            kw = {} if self.cfg.adv_eps is None else {"eps": self.cfg.adv_eps}
            self._attacks[name] = make_attack(name, **kw)
        return self._attacks[name]

    def run(self, cid: int, X, y, global_vec: np.ndarray, round_no: int, *,
            rng: RandomSource, x_adv: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
        """Train client ``cid`` on ``(X, y)`` from ``global_vec`` and return the vector for
        the secure-aggregation client plus metrics (``loss``, ``norm``, ``clipped``, ...)."""
        p = self.privacy
        dp = p.sgd_params(cid) if p is not None and p.unit == "example" else None
        seed = self.cfg.seed * 1_000_003 + round_no * 1009 + cid
        up = self.trainer.train(global_vec, X, y, seed=seed, dp=dp, rng=rng, attack=self.attack_for(cid),
                                x_adv=x_adv)
        if p is not None and getattr(p, "mode", None) == "distributed":  # integers with noise shares
            vec, info = p.encode(up.delta, rng)
            return vec, {**up.metrics, **info, "n_examples": up.n_examples}
        vec, info = prepare_update(up.delta, self.cfg.clip_norm, privacy=p, compressor=self.compressor,
                                   cid=cid, bound=self.bound, rng=rng)
        return vec, {**up.metrics, **info, "n_examples": up.n_examples}
