"""Membership inference against a trained model, and the bound DP puts on it.

Threat model: the attacker queries the final (global) model as a black box for softmax
outputs and losses on candidate records with their labels, knows the training
recipe, and (shadow attack) holds data from the same distribution, disjoint from the
target's. Secure aggregation does not change this model: it hides individual updates
during training, not what the aggregate model memorises.

* :func:`loss_threshold_attack` — Yeom, Giacomelli, Fredrikson, Jha 2018, "Privacy Risk
  in Machine Learning: Analyzing the Connection to Overfitting": predict "member" when the
  loss is below the average training loss.
* :func:`shadow_model_attack` — Shokri, Stronati, Song, Shmatikov 2017, "Membership
  Inference Attacks Against Machine Learning Models": shadow models trained like the
  target on disjoint data; one logistic-regression attack model on the sorted softmax
  vectors (the class-agnostic variant).
* :func:`dp_advantage_bound` — for an (epsilon, delta)-DP training algorithm, every
  membership test has TPR - FPR <= (e^eps - 1 + 2 delta) / (e^eps + 1) (Kairouz, Oh,
  Viswanath 2015, "The Composition Theorem for Differential Privacy", hypothesis-testing
  region; as used for membership by Humphries et al. 2023, "Investigating Membership
  Inference Attacks under Data Dependencies", Thm. 1).
* :func:`train_classifier` — a plain or DP-SGD trainer (Abadi et al. 2016; Poisson
  sampling, per-example clipping, Gaussian noise from ``privcrypt.rng``, accounted with
  ``privcrypt.dp.noise_multiplier_for``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["membership_metrics", "loss_threshold_attack", "shadow_model_attack",
           "dp_advantage_bound", "train_classifier", "per_example_loss", "softmax_outputs"]


def dp_advantage_bound(epsilon: float, delta: float) -> float:
    """Largest TPR - FPR of any membership test against an (epsilon, delta)-DP algorithm:
    ``(e^eps - 1 + 2 delta) / (e^eps + 1)`` (Kairouz et al. 2015; Humphries et al. 2023)."""
    if not (epsilon >= 0 and math.isfinite(epsilon)) or not (0 <= delta < 1):
        raise ValueError("epsilon must be finite and >= 0, delta in [0, 1)")
    e = math.exp(epsilon)
    return min(1.0, (e - 1 + 2 * delta) / (e + 1))


def membership_metrics(scores, is_member, predictions=None) -> dict:
    """AUC, advantage and balanced accuracy of a membership score (higher = "member").

    ``advantage``: max over thresholds of TPR - FPR (from the ROC curve, so it is an
    optimistic, in-sample estimate); ``best_balanced_accuracy`` = (1 + advantage) / 2;
    ``balanced_accuracy``: of the attack's own decisions ``predictions`` (when given)."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score, roc_curve

    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    m = np.asarray(is_member).astype(int).reshape(-1)
    if s.shape != m.shape or m.min() == m.max():
        raise ValueError("need one score per record and both members and non-members")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    fpr, tpr, _ = roc_curve(m, s)
    adv = float(np.max(tpr - fpr))
    out = {"auc": float(roc_auc_score(m, s)), "advantage": adv,
           "best_balanced_accuracy": (1 + adv) / 2, "n_members": int(m.sum()),
           "n_nonmembers": int((1 - m).sum())}
    if predictions is not None:
        out["balanced_accuracy"] = float(balanced_accuracy_score(m, np.asarray(predictions).astype(int)))
    return out


@torch.no_grad()
def per_example_loss(model: nn.Module, X, y) -> np.ndarray:
    """Cross-entropy of each record (float64 array)."""
    model.eval()
    out = model(torch.as_tensor(X))
    return F.cross_entropy(out, torch.as_tensor(y), reduction="none").double().numpy()


@torch.no_grad()
def softmax_outputs(model: nn.Module, X) -> np.ndarray:
    """Softmax vectors of the model on ``X`` (float64 ``(n, classes)``)."""
    model.eval()
    return F.softmax(model(torch.as_tensor(X)), dim=-1).double().numpy()


def loss_threshold_attack(model: nn.Module, members, nonmembers, threshold: float | None = None) -> dict:
    """Yeom et al. 2018: score = -loss; decide "member" when loss < ``threshold`` (default:
    the mean loss on ``members``, the training loss the attacker is assumed to know).
    ``members`` / ``nonmembers``: ``(X, y)`` pairs. Returns :func:`membership_metrics`
    plus the threshold."""
    lm = per_example_loss(model, *members)
    ln = per_example_loss(model, *nonmembers)
    thr = float(np.mean(lm)) if threshold is None else float(threshold)
    losses = np.concatenate([lm, ln])
    is_member = np.r_[np.ones(len(lm)), np.zeros(len(ln))]
    out = membership_metrics(-losses, is_member, predictions=losses < thr)
    out["threshold"] = thr
    return out


def _sorted_softmax(model, X) -> np.ndarray:
    return -np.sort(-softmax_outputs(model, X), axis=1)


def shadow_model_attack(train_fn, target_model: nn.Module, shadow_sets, members, nonmembers,
                        *, seed: int = 0) -> dict:
    """Shokri et al. 2017 with one class-agnostic attack model.

    ``train_fn(X, y) -> nn.Module`` trains a model the way the target was trained;
    ``shadow_sets``: list of ``(X_in, y_in, X_out, y_out)``, disjoint from the target's
    data; each shadow model is trained on its ``in`` half. The attack model (scikit-learn
    ``LogisticRegression``) learns in/out from the shadows' sorted softmax vectors and is
    applied to the target's ``members`` / ``nonmembers``. Returns
    :func:`membership_metrics` (its ``balanced_accuracy`` uses the 0.5 decision)."""
    from sklearn.linear_model import LogisticRegression

    if not shadow_sets:
        raise ValueError("need at least one shadow set")
    feats, labels = [], []
    for X_in, y_in, X_out, y_out in shadow_sets:
        shadow = train_fn(X_in, y_in)
        feats += [_sorted_softmax(shadow, X_in), _sorted_softmax(shadow, X_out)]
        labels += [np.ones(len(X_in)), np.zeros(len(X_out))]
    clf = LogisticRegression(max_iter=1000, random_state=seed)
    clf.fit(np.log(np.concatenate(feats) + 1e-12), np.concatenate(labels))
    q = np.log(np.concatenate([_sorted_softmax(target_model, members[0]),
                               _sorted_softmax(target_model, nonmembers[0])]) + 1e-12)
    is_member = np.r_[np.ones(len(members[0])), np.zeros(len(nonmembers[0]))]
    return membership_metrics(clf.predict_proba(q)[:, 1], is_member, predictions=clf.predict(q))


def train_classifier(model: nn.Module, X, y, *, epochs: int = 100, lr: float = 1e-3,
                     batch_size: int = 32, dp_epsilon: float | None = None, dp_delta: float = 1e-5,
                     clip_norm: float = 1.0, dp_lr: float = 0.5, seed: int = 0, rng=None) -> dict:
    """Train ``model`` in place on ``(X, y)``; returns ``{"epsilon", "noise_multiplier",
    "steps", "sample_rate"}`` (``epsilon`` None without DP).

    Without DP: Adam, shuffled mini-batches (torch generator seeded by ``seed``). With
    ``dp_epsilon``: DP-SGD with Poisson sampling at rate ``batch_size / n`` (sampling and
    noise from ``rng``, a ``privcrypt.rng`` source), per-example clipping to ``clip_norm``,
    Gaussian noise calibrated by ``noise_multiplier_for(dp_epsilon, dp_delta, q, steps)``,
    plain SGD at ``dp_lr``; add/remove-one-record adjacency."""
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    n = len(Xt)
    if n < 2:
        raise ValueError("need at least two training records")
    model.train()
    if dp_epsilon is None:
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        steps = 0
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, batch_size):
                idx = perm[i:i + batch_size]
                opt.zero_grad()
                F.cross_entropy(model(Xt[idx]), yt[idx]).backward()
                opt.step()
                steps += 1
        model.eval()
        return {"epsilon": None, "noise_multiplier": 0.0, "steps": steps, "sample_rate": None}
    from torch.func import functional_call, grad, vmap

    from privcrypt.dp import noise_multiplier_for
    from privcrypt.rng import resolve_rng

    source = resolve_rng(rng)
    q = min(1.0, batch_size / n)
    steps = max(1, int(round(epochs / q)))
    z = float(noise_multiplier_for(dp_epsilon, dp_delta, q, steps))
    names = [k for k, _ in model.named_parameters()]

    def loss_one(p, xi, yi):
        return F.cross_entropy(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_grad = vmap(grad(loss_one), in_dims=(None, 0, 0))
    for _ in range(steps):
        mask = torch.as_tensor(source.uniform(n) < q)
        params = {k: v.detach() for k, v in model.named_parameters()}
        total = {k: torch.zeros_like(v) for k, v in params.items()}
        if mask.any():
            g = per_grad(params, Xt[mask], yt[mask])
            norms = torch.sqrt(sum(g[k].reshape(g[k].shape[0], -1).pow(2).sum(1) for k in names))
            scale = torch.clamp(clip_norm / (norms + 1e-12), max=1.0)
            total = {k: (g[k] * scale.view(-1, *[1] * (g[k].dim() - 1))).sum(0) for k in names}
        with torch.no_grad():
            for k, p in model.named_parameters():
                noise = torch.as_tensor(source.normal(z * clip_norm, tuple(p.shape)), dtype=p.dtype)
                p -= dp_lr * (total[k] + noise) / (q * n)
    model.eval()
    return {"epsilon": float(dp_epsilon), "noise_multiplier": z, "steps": steps, "sample_rate": q}
