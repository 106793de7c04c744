"""DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016), L2 version."""

from __future__ import annotations

import torch

from .base import Attack, _check_int, _check_number, project_l2


class DeepFool(Attack):
    """DeepFool L2 ("DeepFool: a simple and accurate method to fool deep neural networks").

    Threat model: white-box (gradients of every class logit), untargeted, minimal-L2: it
    linearises the classifier around the current point, steps to the nearest linearised
    decision boundary, and repeats (at most ``steps`` times) until the label changes; the
    returned point is ``x + (1 + overshoot) * r_total`` clipped to ``[lo, hi]``
    (``overshoot = 0.02`` as in the paper). The attacked label is the true label ``y``: an
    example the model already misclassifies is returned unchanged. ``candidates`` limits the
    classes considered to the top-k logits at ``x`` (the paper's speed-up; ``None``: all).
    ``eps`` (default ``None``) bounds the final L2 perturbation by projection."""

    name = "deepfool"
    norm = "l2"

    def __init__(self, *, steps: int = 50, overshoot: float = 0.02, candidates: int | None = None,
                 eps: float | None = None, lo: float = 0.0, hi: float = 1.0):
        super().__init__(eps=eps, lo=lo, hi=hi)
        _check_int("steps", steps)
        _check_number("overshoot", overshoot)
        if candidates is not None:
            _check_int("candidates", candidates, minimum=2)
        self.steps, self.overshoot, self.candidates = steps, float(overshoot), candidates

    def _perturb(self, model, x, y):
        n = x.shape[0]
        r_tot = torch.zeros_like(x)
        rows = torch.arange(n, device=x.device)
        with torch.no_grad():
            logits0 = model(x)
        k = logits0.shape[1]
        if self.candidates is not None and self.candidates < k:
            cand = logits0.topk(self.candidates, dim=1).indices
            cand = torch.where((cand == y[:, None]).any(dim=1, keepdim=True), cand,
                               torch.cat([y[:, None], cand[:, :-1]], dim=1))
        else:
            cand = torch.arange(k, device=x.device).expand(n, k)
        active = torch.ones(n, dtype=torch.bool, device=x.device)
        x_adv = x.clone()
        for _ in range(self.steps):
            xa = x_adv.detach().requires_grad_(True)
            logits = model(xa)
            active = active & (logits.argmax(dim=1) == y)
            if not active.any():
                break
            grads = []
            for j in range(cand.shape[1]):
                sel = logits.gather(1, cand[:, j:j + 1]).sum()
                (g,) = torch.autograd.grad(sel, xa, retain_graph=j < cand.shape[1] - 1)
                grads.append(g.reshape(n, -1))
            G = torch.stack(grads, dim=1)                     # (n, c, F)
            Z = logits.detach().gather(1, cand)               # (n, c)
            is_y = cand == y[:, None]
            gy = (G * is_y[:, :, None]).sum(dim=1, keepdim=True)
            zy = (Z * is_y).sum(dim=1, keepdim=True)
            w = G - gy
            f = Z - zy
            wn = w.norm(dim=2).clamp_min(1e-12)
            dist = f.abs() / wn
            dist = dist.masked_fill(is_y, float("inf"))
            l = dist.argmin(dim=1)
            wl, fl, wnl = w[rows, l], f[rows, l], wn[rows, l]
            r = ((fl.abs() + 1e-4) / wnl.pow(2))[:, None] * wl
            r_tot = r_tot + (r * active[:, None]).reshape(x.shape)
            x_adv = self._clip(x + (1 + self.overshoot) * r_tot)
        if self.eps is not None:
            x_adv = self._clip(x + project_l2(x_adv - x, self.eps))
        return x_adv
