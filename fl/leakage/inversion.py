"""Gradient inversion: reconstruct training images from what the server observes.

Threat model: an honest-but-curious server that knows the model architecture and the
current weights (it sent them), the input shape, and the number of images behind the
observed update, and sees one flat update vector: a client's gradient (FedSGD) or model
delta after ONE local step (``delta = -lr * gradient``), or whatever the aggregation
backend reveals (only the mean of K clients for masking / SPDZ / CKKS). It cannot see
the clients' data or individual updates under secure aggregation.

Attacks (all optimise dummy images so that their gradient matches the observed one):

* ``"dlg"`` — Zhu, Liu, Han 2019, "Deep Leakage from Gradients": L-BFGS on the squared
  L2 distance between gradients, over dummy images *and* dummy soft labels.
* ``"idlg"`` — Zhao, Mopuri, Bilen 2020, "iDLG": the label is read off the sign of the
  last linear layer's gradient (for cross-entropy and non-negative features, the true
  class's row is the only negative one), then DLG with that label fixed. For a batch,
  :func:`recover_labels` applies the same sign rule to pick the classes present (a
  heuristic, exact only for batch size 1).
* ``"geiping"`` — Geiping, Bauermeister, Dröge, Moeller 2020, "Inverting Gradients — How
  easy is it to break privacy in federated learning?": Adam on ``1 - cos(g', g)`` plus a
  total-variation prior, optionally with signed gradients, images boxed to the data range,
  labels from :func:`recover_labels` unless given.

Initialisation of the dummy images uses a seeded torch generator: it is attack
randomness, not secret material or DP noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "InversionResult",
    "invert",
    "recover_labels",
    "model_gradient",
    "match_and_score",
    "psnr_ssim",
]


@dataclass
class InversionResult:
    """What an inversion produced.

    ``images``: float32 array ``(n, C, H, W)`` clamped to ``data_range``; ``labels``: the
    int labels used or recovered (``(n,)``); ``loss_history``: the matching loss after each
    outer step; ``method``: the attack name."""

    images: np.ndarray
    labels: np.ndarray
    loss_history: list = field(default_factory=list)
    method: str = ""


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters()]


def model_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Flat float64 gradient of the mean cross-entropy of ``model`` on ``(x, y)`` (in
    ``model.parameters()`` order): what a FedSGD client sends for one batch."""
    params = _params(model)
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params)
    return torch.cat([g.reshape(-1) for g in grads]).detach().double().numpy()


def _split(model: nn.Module, flat: np.ndarray) -> list[torch.Tensor]:
    params = _params(model)
    total = sum(p.numel() for p in params)
    flat = np.asarray(flat, dtype=np.float64).reshape(-1)
    if flat.shape[0] != total:
        raise ValueError(f"observed update has {flat.shape[0]} values, the model has {total} parameters")
    if not np.all(np.isfinite(flat)):
        raise ValueError("observed update contains non-finite values")
    out, i = [], 0
    for p in params:
        out.append(torch.as_tensor(flat[i:i + p.numel()], dtype=p.dtype).reshape(p.shape))
        i += p.numel()
    return out


def _last_linear_grad(model: nn.Module, grads: list[torch.Tensor]) -> torch.Tensor:
    params = _params(model)
    for p, g in zip(reversed(params), reversed(grads)):
        if p.dim() == 2:
            return g
    raise ValueError("the model has no 2-D (linear) weight to recover labels from")


def recover_labels(model: nn.Module, observed_gradient, n_images: int) -> np.ndarray:
    """Labels from the last linear layer's gradient (iDLG, Zhao et al. 2020).

    Batch size 1: the class whose weight-gradient row sums to the most negative value (exact
    for cross-entropy and non-negative penultimate features, e.g. after a sigmoid/ReLU).
    Batch size n > 1 (heuristic): every class with a negative row sum is assumed present;
    counts are split in proportion to the row sums' magnitudes (at least one each), so
    repeated labels are possible. ``observed_gradient`` must be a gradient (use
    ``-delta / lr`` for a model delta)."""
    n_images = int(n_images)
    if n_images < 1:
        raise ValueError("n_images must be >= 1")
    g = _last_linear_grad(model, _split(model, observed_gradient)).double().sum(dim=1).numpy()
    order = np.argsort(g)  # most negative first
    if n_images == 1:
        return order[:1].astype(np.int64)
    neg = [c for c in order if g[c] < 0] or [order[0]]
    neg = neg[:n_images]
    mass = -g[neg] if all(g[c] < 0 for c in neg) else np.ones(len(neg))
    counts = np.ones(len(neg), dtype=int)
    extra = n_images - len(neg)
    if extra > 0:
        share = mass / mass.sum() * extra
        counts += np.floor(share).astype(int)
        rest = n_images - counts.sum()
        for i in np.argsort(-(share - np.floor(share)))[:rest]:
            counts[i] += 1
    return np.repeat(np.asarray(neg, dtype=np.int64), counts)


def _tv(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation (mean absolute neighbour difference), Geiping et al."""
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean()
    return dx + dy


def invert(model: nn.Module, observed_update, input_shape, n_images: int = 1, *,
           method: str = "idlg", steps: int | None = None, labels=None,
           update_kind: str = "gradient", lr: float = 1.0, n_classes: int | None = None,
           tv_weight: float = 1e-4, signed: bool = True, attack_lr: float | None = None,
           data_range: tuple[float, float] = (0.0, 1.0), seed: int = 0) -> InversionResult:
    """Reconstruct ``n_images`` inputs of shape ``input_shape`` (C, H, W) from one flat
    observed update of ``model`` (the server's current weights; not modified).

    ``method``: ``"dlg"`` | ``"idlg"`` | ``"geiping"`` (see module doc). ``steps``: outer
    L-BFGS steps (DLG/iDLG, 20 inner iterations each; default 30) or Adam steps (Geiping;
    default 600). ``labels``: known labels (skips label recovery; the stronger attacker).
    ``update_kind``: ``"gradient"`` or ``"delta"`` (a one-step model delta ``-lr * g``;
    converted back with ``lr``). ``signed``: Geiping's signed-gradient Adam. Returns
    :class:`InversionResult`; a diverged optimisation (non-finite loss) stops early and
    keeps the last finite images. Raises ``ValueError`` for a malformed update or bad
    arguments."""
    if method not in ("dlg", "idlg", "geiping"):
        raise ValueError(f"method must be 'dlg', 'idlg' or 'geiping', got {method!r}")
    if update_kind not in ("gradient", "delta"):
        raise ValueError("update_kind must be 'gradient' or 'delta'")
    if not lr > 0:
        raise ValueError("lr must be positive")
    n_images = int(n_images)
    if n_images < 1:
        raise ValueError("n_images must be >= 1")
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3:
        raise ValueError("input_shape must be (C, H, W)")
    flat = np.asarray(observed_update, dtype=np.float64).reshape(-1)
    if update_kind == "delta":
        flat = -flat / lr
    target = _split(model, flat)
    model = model.eval()
    params = _params(model)
    for p in params:
        p.requires_grad_(True)
    if n_classes is None:
        n_classes = _last_linear_grad(model, target).shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    lo, hi = data_range

    if labels is not None:
        lab = torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))
        if lab.numel() != n_images:
            raise ValueError(f"{lab.numel()} labels given for {n_images} images")
    elif method in ("idlg", "geiping"):
        lab = torch.as_tensor(recover_labels(model, flat, n_images))
    else:
        lab = None

    history: list[float] = []
    if method in ("dlg", "idlg"):
        x = torch.rand((n_images, *shape), generator=gen).mul_(hi - lo).add_(lo).requires_grad_(True)
        variables = [x]
        if lab is None:
            y_logits = torch.randn((n_images, n_classes), generator=gen).requires_grad_(True)
            variables.append(y_logits)
        opt = torch.optim.LBFGS(variables, lr=attack_lr or 1.0, max_iter=20,
                                history_size=100, line_search_fn="strong_wolfe")
        best = x.detach().clone()

        def closure():
            opt.zero_grad()
            out = model(x)
            if lab is None:
                loss = torch.mean(torch.sum(-F.softmax(y_logits, -1) * F.log_softmax(out, -1), -1))
            else:
                loss = F.cross_entropy(out, lab)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            d = sum(((g - t) ** 2).sum() for g, t in zip(grads, target))
            d.backward()
            return d

        for _ in range(steps or 30):
            d = float(opt.step(closure).detach())
            if not np.isfinite(d):
                break
            best = x.detach().clone()
            history.append(d)
            if d < 1e-12:
                break
        if lab is None:
            lab = y_logits.detach().argmax(-1)
        images = best
    else:
        x = torch.rand((n_images, *shape), generator=gen).mul_(hi - lo).add_(lo).requires_grad_(True)
        n_steps = steps or 600
        opt = torch.optim.Adam([x], lr=attack_lr or 0.03)
        sched = torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=[int(n_steps * f) for f in (3 / 8, 5 / 8, 7 / 8)], gamma=0.1)
        tnorm = torch.sqrt(sum((t ** 2).sum() for t in target))
        for _ in range(n_steps):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), lab)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            dot = sum((g * t).sum() for g, t in zip(grads, target))
            gnorm = torch.sqrt(sum((g ** 2).sum() for g in grads))
            rec = 1 - dot / (gnorm * tnorm + 1e-12)
            total = rec + tv_weight * _tv(x)
            total.backward()
            if not torch.isfinite(total):
                break
            if signed:
                x.grad.sign_()
            opt.step()
            sched.step()
            with torch.no_grad():
                x.clamp_(lo, hi)
            history.append(float(rec.detach()))
        images = x.detach()
    for p in params:
        p.grad = None
    images = images.clamp(lo, hi).numpy().astype(np.float32)
    return InversionResult(images, lab.numpy().astype(np.int64), history, method)


def psnr_ssim(rec: np.ndarray, orig: np.ndarray, data_range: float = 1.0) -> tuple[float, float]:
    """PSNR (dB) and SSIM of one ``(C, H, W)`` reconstruction against its original, with
    scikit-image (SSIM window shrunk to fit small images; channels averaged)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rec = np.asarray(rec, dtype=np.float64)
    orig = np.asarray(orig, dtype=np.float64)
    if rec.shape != orig.shape:
        raise ValueError(f"shape mismatch {rec.shape} vs {orig.shape}")
    mse = float(np.mean((rec - orig) ** 2))
    psnr = 100.0 if mse == 0 else float(peak_signal_noise_ratio(orig, rec, data_range=data_range))
    side = min(orig.shape[-2:])
    win = min(7, side if side % 2 else side - 1)
    ssim = float(np.mean([structural_similarity(orig[c], rec[c], data_range=data_range, win_size=win)
                          for c in range(orig.shape[0])]))
    return min(psnr, 100.0), ssim


def match_and_score(reconstructions, originals, data_range: float = 1.0) -> dict:
    """Score reconstructions against originals under the best one-to-one matching.

    ``reconstructions``: ``(m, C, H, W)``; ``originals``: ``(n, C, H, W)``. Each original is
    matched to a distinct reconstruction (when ``m >= n``; otherwise each reconstruction to a
    distinct original) maximising the total PSNR (Hungarian algorithm, scipy). Returns
    ``{"psnr": mean, "ssim": mean, "psnr_max", "psnr_each", "ssim_each", "pairs"}`` where
    ``pairs`` lists ``(reconstruction index, original index)``."""
    from scipy.optimize import linear_sum_assignment

    rec = np.asarray(reconstructions, dtype=np.float64)
    org = np.asarray(originals, dtype=np.float64)
    if rec.ndim != 4 or org.ndim != 4 or rec.shape[1:] != org.shape[1:]:
        raise ValueError(f"expected (n, C, H, W) arrays of one image shape, got {rec.shape} and {org.shape}")
    scores = [[psnr_ssim(r, o, data_range) for o in org] for r in rec]
    psnr = np.array([[s[0] for s in row] for row in scores])
    rows, cols = linear_sum_assignment(-psnr)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols)]
    pe = [float(psnr[r, c]) for r, c in pairs]
    se = [float(scores[r][c][1]) for r, c in pairs]
    return {"psnr": float(np.mean(pe)), "ssim": float(np.mean(se)), "psnr_max": float(max(pe)),
            "psnr_each": pe, "ssim_each": se, "pairs": pairs}
