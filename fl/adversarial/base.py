"""The one attack interface every evasion attack in :mod:`fl.adversarial` implements.

``x_adv = attack(model, x, y)``: ``x`` a float tensor of inputs (``(N, C, H, W)`` images or
``(N, features)`` vectors) inside the valid input range ``[lo, hi]`` given when the attack is
built, ``y`` the ``(N,)`` integer labels. The model is put in eval mode for the attack (every
submodule's own mode is restored afterwards, also when the attack raises), its parameters'
``.grad`` are never touched (input gradients come from :func:`torch.autograd.grad`), and the
returned tensor is detached, always inside ``[lo, hi]`` and inside the attack's budget
(``eps`` in the attack's norm). Inputs outside ``[lo, hi]`` are refused with ``ValueError``
rather than clipped silently: clipping would change the clean input being attacked.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
import torch.nn.functional as F

_RANGE_TOL = 1e-6


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` (and every submodule) in eval mode; restore each module's own mode after.

    Dropout and batch-norm statistics must not change while an attack queries the model;
    restoring per module (not ``model.train(old)``) keeps mixed modes, e.g. a frozen
    batch-norm inside a training model, exactly as they were."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def batch_norms(d: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example norm of a batch of perturbations ``d``: ``"linf"``, ``"l2"`` or ``"l0"``."""
    flat = d.reshape(d.shape[0], -1)
    if norm == "linf":
        return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(flat.shape[0])
    if norm == "l2":
        return flat.norm(p=2, dim=1)
    if norm == "l0":
        return (flat != 0).sum(dim=1).to(d.dtype)
    raise ValueError(f"unknown norm {norm!r}; expected 'linf', 'l2' or 'l0'")


def project_l2(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Scale each example's perturbation down onto the L2 ball of radius ``eps`` (no-op inside)."""
    n = batch_norms(delta, "l2").clamp_min(1e-12)
    factor = torch.clamp(eps / n, max=1.0)
    return delta * factor.view(-1, *([1] * (delta.dim() - 1)))


def _check_number(name: str, v, *, allow_none: bool = False, positive: bool = False) -> None:
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if v < 0 or (positive and v == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {v!r}")


def _check_int(name: str, v, minimum: int = 1) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")


def _make_generator(generator) -> torch.Generator | None:
    """``None`` (torch's default generator), an int seed, or a ``torch.Generator``.

    Random starts, SimBA's directions and JSMA's random targets are not secret material
    (they are part of the attacker's search), so a torch generator is allowed here."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        g = torch.Generator()
        g.manual_seed(generator)
        return g
    raise TypeError(f"generator must be None, an int seed or a torch.Generator, got {type(generator).__name__}")


class Attack:
    """Base class of every evasion attack: a callable ``attack(model, x, y) -> x_adv``.

    Subclasses set ``name``, ``norm`` (``"linf"``, ``"l2"`` or ``"l0"``), ``targeted``
    (whether the attack aims at a chosen class), ``black_box`` (query-only) and implement
    :meth:`_perturb`. ``eps`` is the budget in ``norm`` (``None`` for the minimal-norm attacks
    CW-L2 and DeepFool when left unbounded). After ``_perturb`` the base class enforces the
    input range and the budget once more, so a subclass bug cannot leak an out-of-budget or
    out-of-range example; the amount it had to correct is kept in ``last_correction`` (0.0
    when the attack respected both itself) so that tests can see such bugs.
    """

    name = "attack"
    norm = "linf"
    targeted = False
    black_box = False
    supports_target = False

    def __init__(self, *, eps: float | None, lo: float = 0.0, hi: float = 1.0):
        _check_number("eps", eps, allow_none=True)
        for nm, v in (("lo", lo), ("hi", hi)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{nm} must be a finite number, got {v!r}")
        if not lo < hi:
            raise ValueError(f"need lo < hi for the input range, got lo={lo}, hi={hi}")
        self.eps = None if eps is None else float(eps)
        self.lo = float(lo)
        self.hi = float(hi)
        self.last_correction = 0.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps}, lo={self.lo}, hi={self.hi})"

    # -- the interface ---------------------------------------------------------------------
    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                 target: torch.Tensor | None = None) -> torch.Tensor:
        """Return adversarial examples for ``(x, y)`` against ``model`` (detached, same shape).

        ``target`` (only for attacks with ``supports_target``) names the class each example
        should be pushed to; otherwise the attack is untargeted w.r.t. the true labels ``y``."""
        x, y = self._validate(x, y)
        if target is not None:
            if not self.supports_target:
                raise ValueError(f"{self.name} does not take a target")
            target = torch.as_tensor(target, device=x.device).long().reshape(-1)
            if target.shape[0] != x.shape[0]:
                raise ValueError(f"target has {target.shape[0]} entries for {x.shape[0]} inputs")
        if x.shape[0] == 0:
            return x.clone()
        with eval_mode(model):
            kwargs = {"target": target} if self.supports_target else {}
            x_adv = self._perturb(model, x, y, **kwargs).detach()
        return self._enforce(x, x_adv)

    def _perturb(self, model, x, y, **kwargs) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------
    def _validate(self, x, y):
        if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
            raise TypeError("x must be a floating-point torch.Tensor")
        y = torch.as_tensor(y, device=x.device)
        if y.dim() != 1 or y.shape[0] != x.shape[0] or torch.is_floating_point(y):
            raise ValueError(f"y must be (N,) integer labels for N={x.shape[0]} inputs, got shape {tuple(y.shape)}")
        if x.dim() < 2:
            raise ValueError(f"x must be a batch (N, ...), got shape {tuple(x.shape)}")
        if x.numel() and not torch.isfinite(x).all():
            raise ValueError("x holds NaN or inf")
        if x.numel() and (x.min() < self.lo - _RANGE_TOL or x.max() > self.hi + _RANGE_TOL):
            raise ValueError(f"x lies outside the declared input range [{self.lo}, {self.hi}] "
                             f"(min {float(x.min()):.4g}, max {float(x.max()):.4g}); scale the data "
                             "or build the attack with the right lo/hi")
        return x.detach().clamp(self.lo, self.hi), y.long()

    def _clip(self, x_adv: torch.Tensor) -> torch.Tensor:
        return x_adv.clamp(self.lo, self.hi)

    def _enforce(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Project onto the budget, then onto the range (the box holds ``x``, so the second
        projection never leaves the ball); record how much had to be corrected."""
        if x_adv.shape != x.shape:
            raise RuntimeError(f"{self.name} returned shape {tuple(x_adv.shape)} for {tuple(x.shape)}")
        out = torch.nan_to_num(x_adv, nan=0.0).to(x.dtype)
        delta = out - x
        if self.eps is not None and self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        elif self.eps is not None and self.norm == "l2":
            delta = project_l2(delta, self.eps)
        out = self._clip(x + delta)
        self.last_correction = float((out - x_adv).abs().max()) if out.numel() else 0.0
        return out.detach()


def loss_grad(model, x_adv: torch.Tensor, y: torch.Tensor, *, targeted: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the summed cross-entropy w.r.t. the input (negated when ``targeted``, so
    that ascending it moves towards ``y``); returns ``(grad, per-example loss)``."""
    x_adv = x_adv.detach().requires_grad_(True)
    logits = model(x_adv)
    loss = F.cross_entropy(logits, y, reduction="none")
    obj = -loss.sum() if targeted else loss.sum()
    (g,) = torch.autograd.grad(obj, x_adv)
    return g.detach(), loss.detach()


def pick_targets(logits: torch.Tensor, y: torch.Tensor, mode: str, generator=None) -> torch.Tensor:
    """Target classes for a targeted attack used untargeted: ``"next"`` ((y+1) mod K),
    ``"random"`` (uniform over the K-1 wrong classes) or ``"least_likely"`` (lowest logit)."""
    k = logits.shape[1]
    if k < 2:
        raise ValueError("need at least two classes to pick a target")
    if mode == "next":
        return (y + 1) % k
    if mode == "random":
        off = torch.randint(1, k, y.shape, generator=generator, device="cpu").to(y.device)
        return (y + off) % k
    if mode == "least_likely":
        masked = logits.detach().clone()
        masked[torch.arange(y.shape[0], device=y.device), y] = float("inf")
        return masked.argmin(dim=1)
    raise ValueError(f"unknown target mode {mode!r}; expected 'next', 'random' or 'least_likely'")
