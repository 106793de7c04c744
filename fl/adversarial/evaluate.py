"""Robustness evaluation: clean accuracy ("Nature"), accuracy under each attack, attack
success rate on the originally correct points, perturbation sizes, SimBA's queries."""

from __future__ import annotations

import numpy as np
import torch

from .base import Attack, batch_norms, eval_mode


def _tensor(x, dtype=None):
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(dtype) if dtype is not None else t


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")


@torch.no_grad()
def predict(model: torch.nn.Module, x, batch_size: int = 256) -> torch.Tensor:
    """Predicted classes of ``model`` on ``x`` (eval mode, restored after), in batches."""
    _check_batch_size(batch_size)
    x = _tensor(x, torch.float32)
    with eval_mode(model):
        outs = [model(x[i:i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(outs) if outs else torch.zeros(0, dtype=torch.long)


def generate_adversarial(model: torch.nn.Module, x, y, attack: Attack, batch_size: int = 256) -> torch.Tensor:
    """``attack`` applied to ``(x, y)`` in batches of ``batch_size``; returns all ``x_adv``.

    For attacks that count queries (SimBA), ``attack.last_queries`` is set afterwards to the
    per-example counts over the whole set (not just the last batch)."""
    _check_batch_size(batch_size)
    x = _tensor(x, torch.float32)
    y = _tensor(y).long()
    outs, queries = [], []
    for i in range(0, x.shape[0], batch_size):
        outs.append(attack(model, x[i:i + batch_size], y[i:i + batch_size]))
        if getattr(attack, "last_queries", None) is not None:
            queries.append(attack.last_queries)
    if queries:
        attack.last_queries = torch.cat(queries)
    return torch.cat(outs) if outs else x.clone()


def evaluate_robustness(model: torch.nn.Module, x, y, attacks: dict[str, Attack], batch_size: int = 256, *,
                        craft_on: torch.nn.Module | None = None,
                        precomputed: dict[str, torch.Tensor] | None = None) -> dict:
    """Evaluate ``model`` on clean data and under each attack.

    ``attacks`` maps a display name to an :class:`Attack`; each crafts its examples against
    ``model`` itself (white-box / adaptive, or queries for SimBA) unless ``craft_on`` names
    another model (transfer attack: crafted on ``craft_on``, evaluated on ``model``).
    ``precomputed`` maps more names to ready adversarial sets (same shape as ``x``), e.g.
    one transfer set reused for several models.

    Returns ``{"n", "accuracy": {"Nature": clean_acc, name: acc_under_attack, ...},
    "success_rate": {name: rate}, "perturbation": {name: {"l2_mean", "linf_max", "l0_mean"}},
    "queries": {name: {"mean", "median", "max", "total", "mean_successful"}}}``.
    Accuracy under attack counts every point (an originally misclassified point stays wrong
    unless the perturbation happens to fix it). The success rate is measured on the points
    the model classified correctly before the attack: the fraction of them misclassified
    after it (``None`` when there are none). ``queries`` appears only for query-counting
    (black-box) attacks; ``mean_successful`` averages over the successful points."""
    _check_batch_size(batch_size)
    x = _tensor(x, torch.float32)
    y = _tensor(y).long()
    if x.shape[0] != y.shape[0] or y.dim() != 1:
        raise ValueError("x and y must hold the same number of examples; y must be 1-D")
    names = list(attacks) + list(precomputed or {})
    if "Nature" in names or len(set(names)) != len(names):
        raise ValueError("attack names must be unique and may not be 'Nature'")
    n = int(y.shape[0])
    clean = predict(model, x, batch_size)
    correct = clean == y
    out = {"n": n, "accuracy": {"Nature": float(correct.float().mean()) if n else None},
           "success_rate": {}, "perturbation": {}, "queries": {}}
    sets = []
    for name, atk in attacks.items():
        sets.append((name, generate_adversarial(craft_on if craft_on is not None else model, x, y, atk, batch_size), atk))
    for name, xa in (precomputed or {}).items():
        xa = _tensor(xa, torch.float32)
        if xa.shape != x.shape:
            raise ValueError(f"precomputed set {name!r} has shape {tuple(xa.shape)}, x has {tuple(x.shape)}")
        sets.append((name, xa, None))
    for name, xa, atk in sets:
        pred = predict(model, xa, batch_size)
        ok = pred == y
        out["accuracy"][name] = float(ok.float().mean()) if n else None
        k = int(correct.sum())
        success = correct & ~ok
        out["success_rate"][name] = float(success.sum()) / k if k else None
        d = xa - x
        out["perturbation"][name] = {
            "l2_mean": float(batch_norms(d, "l2").mean()) if n else 0.0,
            "linf_max": float(batch_norms(d, "linf").max()) if n else 0.0,
            "l0_mean": float(batch_norms(d, "l0").mean()) if n else 0.0,
        }
        q = getattr(atk, "last_queries", None) if atk is not None else None
        if q is not None and q.numel() == n:
            qf = q.double()
            out["queries"][name] = {
                "mean": float(qf.mean()), "median": float(qf.median()), "max": int(q.max()),
                "total": int(q.sum()),
                "mean_successful": float(qf[success.cpu()].mean()) if bool(success.any()) else None,
            }
    return out
