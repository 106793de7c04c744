"""Jacobian-based Saliency Map Attack (Papernot et al., EuroS&P 2016)."""

from __future__ import annotations

import math

import torch

from .base import Attack, _check_number, _make_generator, pick_targets

# the pairwise saliency map holds chunk * F * F floats; keep it near 32 MB
_PAIR_BUDGET = 8000000


class JSMA(Attack):
    """Jacobian-based Saliency Map Attack (Papernot, McDaniel, Jha, Fredrikson, Celik and
    Swami, "The Limitations of Deep Learning in Adversarial Settings", 2016), pairwise
    saliency map on the logits as in the reference implementation (cleverhans).

    Threat model: white-box (needs the Jacobian of the logits w.r.t. the input), **targeted**,
    L0 budget: at most ``floor(gamma * F / 2)`` iterations, each changing two features, so at
    most ``gamma`` (fraction) of the ``F`` input features change; ``eps`` is ``gamma``.
    Each iteration picks the feature pair (p, q) still in the search domain that maximises
    ``-alpha * beta`` subject to ``alpha > 0, beta < 0`` (``theta > 0``; signs flipped for
    ``theta < 0``), where ``alpha`` is the pair's gradient of the target logit and ``beta``
    the summed gradient of the other logits; both features move by ``theta * (hi - lo)``
    (``theta = 1`` saturates them) and leave the search domain. When no pair meets both sign
    conditions the pair maximising ``sign(theta) * (alpha - beta)`` is used instead (the
    strict rule otherwise stalls). An example stops once the model predicts its target.

    With ``target=`` the given classes are the targets. Without it (untargeted use, e.g.
    for adversarial training) each example gets a target that is not its label:
    ``target_mode="random"`` (default; uniform over the wrong classes, drawn from the torch
    ``generator``: not secret material), ``"next"`` ((y + 1) mod K) or ``"least_likely"``.
    Success of the untargeted use is then "predicted class != y", which the random target
    understates compared with trying every target."""

    name = "jsma"
    norm = "l0"
    targeted = True
    supports_target = True

    def __init__(self, theta: float = 1.0, gamma: float = 0.1, *, target_mode: str = "random",
                 lo: float = 0.0, hi: float = 1.0, generator=None):
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not math.isfinite(theta) or theta == 0:
            raise ValueError(f"theta must be a finite non-zero number, got {theta!r}")
        _check_number("gamma", gamma, positive=True)
        if gamma > 1:
            raise ValueError(f"gamma is a fraction of the features, in (0, 1]; got {gamma}")
        if target_mode not in ("random", "next", "least_likely"):
            raise ValueError(f"target_mode must be 'random', 'next' or 'least_likely', got {target_mode!r}")
        super().__init__(eps=gamma, lo=lo, hi=hi)
        self.theta = float(theta)
        self.gamma = float(gamma)
        self.target_mode = target_mode
        self.generator = _make_generator(generator)
        self.last_targets: torch.Tensor | None = None

    def max_changed(self, n_features: int) -> int:
        """The most features one example may have changed: ``2 * floor(gamma * F / 2)``."""
        return 2 * int(math.floor(self.gamma * n_features / 2))

    def _perturb(self, model, x, y, target=None):
        if target is None:
            with torch.no_grad():
                logits = model(x)
            target = pick_targets(logits, y, self.target_mode, self.generator)
        self.last_targets = target.detach().clone()
        n_feat = x[0].numel()
        chunk = max(1, _PAIR_BUDGET // max(1, n_feat * n_feat))
        outs = [self._run(model, x[i:i + chunk], target[i:i + chunk]) for i in range(0, x.shape[0], chunk)]
        return torch.cat(outs, dim=0)

    def _run(self, model, x, target):
        n, shape = x.shape[0], x.shape
        flat = x.reshape(n, -1).clone()
        f = flat.shape[1]
        s = 1.0 if self.theta > 0 else -1.0
        step = self.theta * (self.hi - self.lo)
        # features that can still move in the attack's direction
        domain = flat < self.hi if s > 0 else flat > self.lo
        for _ in range(self.max_changed(f) // 2):
            xa = flat.detach().reshape(shape).requires_grad_(True)
            logits = model(xa)
            active = (logits.argmax(dim=1) != target) & (domain.sum(dim=1) >= 2)
            if not active.any():
                break
            onehot = torch.nn.functional.one_hot(target, logits.shape[1]).to(logits.dtype)
            g_t, = torch.autograd.grad((logits * onehot).sum(), xa, retain_graph=True)
            g_all, = torch.autograd.grad(logits.sum(), xa)
            g_t = g_t.reshape(n, -1)
            g_o = g_all.reshape(n, -1) - g_t
            # out-of-domain features get a huge wrong-signed gradient, so that every pair
            # holding one fails the strict sign test (the cleverhans trick, fewer temporaries)
            big = 1e4 * (float(g_t.abs().max()) + float(g_o.abs().max()) + 1.0)
            a = torch.where(domain, s * g_t, torch.full_like(g_t, -big))
            b = torch.where(domain, s * g_o, torch.full_like(g_o, big))
            alpha = a[:, :, None] + a[:, None, :]
            beta = b[:, :, None] + b[:, None, :]
            strict = (alpha > 0) & (beta < 0)
            strict.diagonal(dim1=1, dim2=2).fill_(False)
            score = alpha.mul_(beta).neg_()           # -alpha * beta (sign of theta cancels)
            score.masked_fill_(~strict, float("-inf"))
            best = score.flatten(1).argmax(dim=1)
            no_strict = ~strict.flatten(1).any(dim=1) & active
            del score, strict, beta
            if no_strict.any():  # fallback: maximise s * (alpha - beta) over in-domain pairs
                r = no_strict.nonzero().flatten()
                ar = torch.where(domain[r], s * g_t[r], torch.full_like(g_t[r], float("-inf")))
                br = torch.where(domain[r], s * g_o[r], torch.zeros_like(g_o[r]))
                rel = (ar[:, :, None] + ar[:, None, :]) - (br[:, :, None] + br[:, None, :])
                rel.diagonal(dim1=1, dim2=2).fill_(float("-inf"))
                best[r] = rel.flatten(1).argmax(dim=1)
                del rel
            del alpha
            p, q = best // f, best % f
            act = active.nonzero().flatten()
            for idx in (p, q):
                flat[act, idx[act]] = (flat[act, idx[act]] + step).clamp(self.lo, self.hi)
                domain[act, idx[act]] = False
        return flat.reshape(shape)
