"""Gradient-sign and projected-gradient attacks: FGSM, BIM, PGD (L-inf and L2)."""

from __future__ import annotations

import torch

from .base import Attack, _check_int, _check_number, _make_generator, batch_norms, loss_grad, project_l2


class FGSM(Attack):
    """Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy, ICLR 2015).

    Threat model: white-box (needs the loss gradient w.r.t. the input), untargeted (or
    targeted with ``target=``: steps down the loss of the target class), L-inf budget ``eps``.
    One step: ``x + eps * sign(grad_x CE(f(x), y))``, clipped to ``[lo, hi]``."""

    name = "fgsm"
    norm = "linf"
    supports_target = True

    def __init__(self, eps: float = 0.1, *, lo: float = 0.0, hi: float = 1.0):
        super().__init__(eps=eps, lo=lo, hi=hi)

    def _perturb(self, model, x, y, target=None):
        targeted = target is not None
        g, _ = loss_grad(model, x, target if targeted else y, targeted=targeted)
        return self._clip(x + self.eps * g.sign())


class PGD(Attack):
    """Projected Gradient Descent (Madry et al., ICLR 2018), L-inf or L2.

    Threat model: white-box, untargeted (or targeted with ``target=``), budget ``eps`` in
    ``norm`` (``"linf"`` or ``"l2"``). ``steps`` ascent steps of size ``step_size`` (default
    ``2.5 * eps / steps``), each followed by projection onto the ``eps``-ball around ``x`` and
    onto ``[lo, hi]``. L-inf steps follow the gradient sign, L2 steps the normalised gradient.
    ``random_start`` draws the start uniformly from the ball (torch generator ``generator``:
    the start is part of the attacker's search, not secret material). With ``restarts > 1``
    the example with the highest loss over the restarts is kept per input."""

    name = "pgd"
    supports_target = True

    def __init__(self, eps: float = 0.1, *, norm: str = "linf", steps: int = 10,
                 step_size: float | None = None, random_start: bool = True, restarts: int = 1,
                 lo: float = 0.0, hi: float = 1.0, generator=None):
        if norm not in ("linf", "l2"):
            raise ValueError(f"PGD norm must be 'linf' or 'l2', got {norm!r}")
        super().__init__(eps=eps, lo=lo, hi=hi)
        _check_int("steps", steps)
        _check_int("restarts", restarts)
        _check_number("step_size", step_size, allow_none=True)
        self.norm = norm
        self.name = "pgd" if norm == "linf" else "pgd_l2"
        self.steps = steps
        self.step_size = 2.5 * self.eps / steps if step_size is None else float(step_size)
        self.random_start = bool(random_start)
        self.restarts = restarts
        self.generator = _make_generator(generator)

    def _random_delta(self, x):
        g = self.generator
        if self.norm == "linf":
            u = torch.rand(x.shape, generator=g, dtype=x.dtype).to(x.device)
            return (2 * u - 1) * self.eps
        # uniform in the L2 ball: Gaussian direction, radius eps * U^(1/d)
        d = x[0].numel()
        z = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
        z = z / batch_norms(z, "l2").clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
        r = torch.rand(x.shape[0], generator=g, dtype=x.dtype).to(x.device) ** (1.0 / d)
        return z * (self.eps * r).view(-1, *([1] * (x.dim() - 1)))

    def _project(self, x, x_adv):
        delta = x_adv - x
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            delta = project_l2(delta, self.eps)
        return self._clip(x + delta)

    def _step(self, g):
        if self.norm == "linf":
            return self.step_size * g.sign()
        n = batch_norms(g, "l2").clamp_min(1e-12).view(-1, *([1] * (g.dim() - 1)))
        return self.step_size * g / n

    def _one_run(self, model, x, labels, targeted):
        x_adv = self._project(x, x + self._random_delta(x)) if self.random_start else x.clone()
        for _ in range(self.steps):
            g, _ = loss_grad(model, x_adv, labels, targeted=targeted)
            x_adv = self._project(x, x_adv + self._step(g))
        _, loss = loss_grad(model, x_adv, labels, targeted=targeted)
        return x_adv, (-loss if targeted else loss)

    def _perturb(self, model, x, y, target=None):
        targeted = target is not None
        labels = target if targeted else y
        best, best_obj = self._one_run(model, x, labels, targeted)
        for _ in range(self.restarts - 1):
            cand, obj = self._one_run(model, x, labels, targeted)
            better = obj > best_obj
            best[better] = cand[better]
            best_obj = torch.where(better, obj, best_obj)
        return best


class BIM(PGD):
    """Basic Iterative Method (Kurakin, Goodfellow & Bengio, 2017): iterated FGSM.

    Threat model: white-box, untargeted (or targeted with ``target=``), L-inf budget ``eps``.
    ``steps`` sign steps of ``step_size`` (default ``eps / steps * 1.25``, so the ball's edge
    is reachable) from ``x`` itself (no random start), clipped to the ``eps``-ball and
    ``[lo, hi]`` after every step."""

    name = "bim"

    def __init__(self, eps: float = 0.1, *, steps: int = 10, step_size: float | None = None,
                 lo: float = 0.0, hi: float = 1.0):
        _check_int("steps", steps)
        _check_number("eps", eps)
        super().__init__(eps, norm="linf", steps=steps,
                         step_size=(1.25 * eps / steps if step_size is None else step_size),
                         random_start=False, restarts=1, lo=lo, hi=hi)
        self.name = "bim"
