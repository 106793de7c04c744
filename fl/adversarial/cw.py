"""Carlini-Wagner L2 attack (Carlini & Wagner, IEEE S&P 2017)."""

from __future__ import annotations

import torch

from .base import Attack, _check_int, _check_number


class CWL2(Attack):
    """Carlini-Wagner L2 attack ("Towards Evaluating the Robustness of Neural Networks").

    Threat model: white-box (gradients of the logits), untargeted by default (targeted with
    ``target=``), minimal-L2: it searches the smallest perturbation that changes the decision.
    Optimises ``||x' - x||_2^2 + c * f(x')`` over ``w`` with ``x' = lo + (hi - lo) * (tanh(w) + 1) / 2``
    (so ``x'`` is always in range) with Adam (``lr``, ``steps`` per constant), where
    ``f = max(Z_y - max_{j != y} Z_j + kappa, 0)`` (targeted: ``max(max_{j != t} Z_j - Z_t + kappa, 0)``),
    and binary-searches ``c`` per example over ``binary_search_steps`` rounds starting at
    ``c``. Returns, per example, the adversarial point with the smallest L2 found; an example
    for which none was found is returned unchanged (the attack failed on it).

    ``eps`` (default ``None``: unbounded) turns it into a budgeted L2 attack: only adversarial
    points with ``||x' - x||_2 <= eps`` are kept. Defaults are small (4 x 40 Adam steps) so
    that adversarial training with it stays affordable; raise ``steps`` and
    ``binary_search_steps`` for a stronger evaluation."""

    name = "cw2"
    norm = "l2"
    supports_target = True

    def __init__(self, c: float = 1.0, *, kappa: float = 0.0, steps: int = 40, lr: float = 0.1,
                 binary_search_steps: int = 4, eps: float | None = None, lo: float = 0.0, hi: float = 1.0):
        super().__init__(eps=eps, lo=lo, hi=hi)
        _check_number("c", c, positive=True)
        _check_number("kappa", kappa)
        _check_number("lr", lr, positive=True)
        _check_int("steps", steps)
        _check_int("binary_search_steps", binary_search_steps)
        self.c, self.kappa, self.lr = float(c), float(kappa), float(lr)
        self.steps, self.binary_search_steps = steps, binary_search_steps

    def _perturb(self, model, x, y, target=None):
        targeted = target is not None
        labels = target if targeted else y
        n = x.shape[0]
        scale = self.hi - self.lo
        z = ((x - self.lo) / scale * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6)
        w0 = torch.atanh(z)
        lower = torch.zeros(n, dtype=x.dtype, device=x.device)
        upper = torch.full((n,), float("inf"), dtype=x.dtype, device=x.device)
        const = torch.full((n,), self.c, dtype=x.dtype, device=x.device)
        best_l2 = torch.full((n,), float("inf"), dtype=x.dtype, device=x.device)
        best = x.clone()
        rows = torch.arange(n, device=x.device)
        limit = None if self.eps is None else self.eps ** 2
        for _ in range(self.binary_search_steps):
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=self.lr)
            found = torch.zeros(n, dtype=torch.bool, device=x.device)
            for _ in range(self.steps):
                xa = self.lo + scale * (torch.tanh(w) + 1) / 2
                logits = model(xa)
                l2 = (xa - x).flatten(1).pow(2).sum(dim=1)
                real = logits[rows, labels]
                other = logits.masked_fill(torch.nn.functional.one_hot(labels, logits.shape[1]).bool(),
                                           float("-inf")).amax(dim=1)
                f = (other - real + self.kappa) if targeted else (real - other + self.kappa)
                loss = (l2 + const * f.clamp_min(0)).sum()
                (g,) = torch.autograd.grad(loss, w)
                with torch.no_grad():
                    pred = logits.argmax(dim=1)
                    adv = (pred == labels) if targeted else (pred != labels)
                    if limit is not None:
                        ok = adv & (l2 <= limit)
                    else:
                        ok = adv
                    found |= ok
                    better = ok & (l2 < best_l2)
                    best_l2 = torch.where(better, l2, best_l2)
                    best[better] = xa.detach()[better]
                opt.zero_grad(set_to_none=True)
                w.grad = g
                opt.step()
            # binary search on c: success -> smaller c, failure -> larger c
            upper = torch.where(found, torch.minimum(upper, const), upper)
            lower = torch.where(found, lower, torch.maximum(lower, const))
            const = torch.where(torch.isfinite(upper), (lower + upper) / 2, const * 10)
        return best
