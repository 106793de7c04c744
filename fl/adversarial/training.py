"""Adversarial training with the FDA³ loss and the per-client attack schedule (seed 003).

FDA³ (Song et al., "FDA³: Federated Defense Against Adversarial Attacks for Cloud-Based
IIoT Applications", Eq. 1): ``L = (1 - alpha) * L_nat(x, y) + alpha * L_adv(x_adv, y)``.
(The paper's Algorithm 1, line 15, writes ``alpha * L_nat + (1 - alpha) * L_adv``: the
weights are swapped there; the two agree only at the paper's ``alpha = 0.5``. We follow
Eq. 1: a larger ``alpha`` weighs the adversarial loss more.)
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from .base import Attack, eval_mode

FDA3_ATTACKS = ("fgsm", "bim", "jsma", "cw2", "deepfool")
"""The five attack schemes the FDA³ paper assigns to devices (two devices each of ten)."""


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) \
            or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    return float(alpha)


def adversarial_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack | None,
                     alpha: float = 0.5, loss_fn: Callable = F.cross_entropy, *,
                     x_adv: torch.Tensor | None = None, return_parts: bool = False):
    """The FDA³ loss ``(1 - alpha) * loss_fn(model(x), y) + alpha * loss_fn(model(x_adv), y)``.

    ``x_adv`` defaults to ``attack(model, x, y)``, crafted against the current weights (the
    attack runs in eval mode and restores the model's modes; the two loss forwards run in
    whatever mode the model is in, normally train). Pass ``x_adv`` instead to train on
    precomputed (transfer) adversarial examples, as FDA³'s devices do with examples crafted
    on the initial model. ``alpha = 0`` skips the attack (plain training); ``alpha = 1``
    trains on adversarial examples only (Madry et al.). The gradient flows through both
    forwards, not through the crafting of ``x_adv``. Returns the scalar loss, or
    ``(loss, loss_nat, loss_adv)`` (the last two detached) with ``return_parts``."""
    alpha = _check_alpha(alpha)
    if x_adv is None and attack is None and alpha > 0:
        raise ValueError("adversarial_loss needs an attack or precomputed x_adv when alpha > 0")
    loss_nat = loss_fn(model(x), y)
    if alpha == 0.0:
        loss_adv = torch.zeros((), dtype=loss_nat.dtype, device=loss_nat.device)
        loss = loss_nat
    else:
        if x_adv is None:
            x_adv = attack(model, x, y)
        elif x_adv.shape != x.shape:
            raise ValueError(f"x_adv has shape {tuple(x_adv.shape)}, x has {tuple(x.shape)}")
        loss_adv = loss_fn(model(x_adv.detach()), y)
        loss = (1.0 - alpha) * loss_nat + alpha * loss_adv
    if return_parts:
        return loss, loss_nat.detach(), loss_adv.detach()
    return loss


def _as_tensor(a, dtype=None) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
    return t.to(dtype) if dtype is not None else t


def _batches(data, batch_size: int, shuffle: bool, generator) -> Iterable:
    """``(X, y)`` / ``(X, y, X_adv)`` arrays -> mini-batches; anything else is iterated as is."""
    if isinstance(data, (tuple, list)) and len(data) in (2, 3) and all(
            isinstance(a, (np.ndarray, torch.Tensor)) for a in data):
        xs = _as_tensor(data[0], torch.float32)
        ys = _as_tensor(data[1]).long()
        xa = _as_tensor(data[2], torch.float32) if len(data) == 3 else None
        n = xs.shape[0]
        if ys.shape[0] != n or (xa is not None and xa.shape != xs.shape):
            raise ValueError("X, y (and X_adv) must have the same number of examples (and X_adv X's shape)")
        if isinstance(generator, int) and not isinstance(generator, bool):
            generator = torch.Generator().manual_seed(generator)
        idx = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for i in range(0, n, batch_size):
            j = idx[i:i + batch_size]
            yield (xs[j], ys[j]) if xa is None else (xs[j], ys[j], xa[j])
        return
    yield from data


@contextlib.contextmanager
def _train_mode(model):
    modes = [(m, m.training) for m in model.modules()]
    model.train()
    try:
        yield
    finally:
        for m, t in modes:
            m.training = t


def adversarial_train_epoch(model: torch.nn.Module, data, optimizer: torch.optim.Optimizer,
                            attack: Attack | None, alpha: float = 0.5, *, batch_size: int = 32,
                            loss_fn: Callable = F.cross_entropy, shuffle: bool = True, generator=None,
                            device: torch.device | str | None = None) -> dict:
    """One epoch of FDA³ adversarial training; returns mean losses and counts.

    ``data``: ``(X, y)`` arrays/tensors (mini-batches of ``batch_size``, shuffled with the
    torch ``generator`` -- an int seed or ``torch.Generator``; data order is not secret),
    ``(X, y, X_adv)`` to train on precomputed (transfer) adversarial examples, or any
    iterable of ``(x, y)`` / ``(x, y, x_adv)`` batches such as a ``DataLoader``. Each batch:
    ``adversarial_loss`` (attack crafted against the current weights unless ``x_adv`` is
    given), backward, ``optimizer.step()``. The model is in train mode during the epoch and
    every module's mode is restored afterwards. Returns ``{"loss", "loss_nat", "loss_adv"}``
    (example-weighted means), ``"adv_accuracy"`` (accuracy on each adversarial batch right
    after its step, eval-mode forward; ``None`` when ``alpha = 0``), ``"examples"`` and ``"batches"``."""
    alpha = _check_alpha(alpha)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    sums = {"loss": 0.0, "loss_nat": 0.0, "loss_adv": 0.0, "adv_correct": 0}
    n_ex = n_b = 0
    with _train_mode(model):
        for batch in _batches(data, batch_size, shuffle, generator):
            if len(batch) not in (2, 3):
                raise ValueError("each batch must be (x, y) or (x, y, x_adv)")
            x, y = batch[0], batch[1]
            xa = batch[2] if len(batch) == 3 else None
            if device is not None:
                x, y = x.to(device), y.to(device)
                xa = xa.to(device) if xa is not None else None
            if alpha > 0 and xa is None:
                xa = attack(model, x, y) if attack is not None else None
                if xa is None:
                    raise ValueError("alpha > 0 needs an attack or (X, y, X_adv) data")
            optimizer.zero_grad(set_to_none=True)
            loss, ln, la = adversarial_loss(model, x, y, attack, alpha, loss_fn, x_adv=xa, return_parts=True)
            loss.backward()
            optimizer.step()
            b = int(y.shape[0])
            sums["loss"] += float(loss.detach()) * b
            sums["loss_nat"] += float(ln) * b
            sums["loss_adv"] += float(la) * b
            if xa is not None:
                with torch.no_grad(), eval_mode(model):
                    sums["adv_correct"] += int((model(xa).argmax(1) == y).sum())
            n_ex += b
            n_b += 1
    if n_ex == 0:
        raise ValueError("adversarial_train_epoch got no data")
    return {"loss": sums["loss"] / n_ex, "loss_nat": sums["loss_nat"] / n_ex,
            "loss_adv": sums["loss_adv"] / n_ex,
            "adv_accuracy": (sums["adv_correct"] / n_ex) if alpha > 0 else None,
            "examples": n_ex, "batches": n_b}


def client_attack_schedule(n_clients: int, attacks: tuple[str, ...] = FDA3_ATTACKS,
                           per_attack: int = 2) -> dict[int, str]:
    """Which attack each FL client (device) faces: ``{client_index: attack_name}``.

    Clients are assigned in contiguous blocks of ``per_attack``, cycling through ``attacks``:
    client ``i`` gets ``attacks[(i // per_attack) % len(attacks)]``. The defaults reproduce
    FDA³'s first experiment (10 devices; FGSM, BIM, JSMA, CW2, DeepFool on two devices
    each: clients 0-1 FGSM, 2-3 BIM, 4-5 JSMA, 6-7 CW2, 8-9 DeepFool). With more clients the
    cycle repeats, so each attack covers about ``1/len(attacks)`` of them (the paper's
    scaling experiment); with fewer than ``len(attacks) * per_attack`` clients the later
    attacks are not covered. Names are checked against :func:`make_attack`'s registry."""
    from .registry import ATTACKS

    if isinstance(n_clients, bool) or not isinstance(n_clients, int) or n_clients < 1:
        raise ValueError(f"n_clients must be an int >= 1, got {n_clients!r}")
    if isinstance(per_attack, bool) or not isinstance(per_attack, int) or per_attack < 1:
        raise ValueError(f"per_attack must be an int >= 1, got {per_attack!r}")
    attacks = tuple(attacks)
    if not attacks:
        raise ValueError("attacks must name at least one attack")
    for a in attacks:
        if not isinstance(a, str) or a.strip().lower().replace("-", "_") not in ATTACKS:
            raise ValueError(f"unknown attack {a!r} in the schedule")
    return {i: attacks[(i // per_attack) % len(attacks)] for i in range(n_clients)}
