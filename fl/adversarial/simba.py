"""SimBA: Simple Black-box Attack (Guo, Gardner, You, Wilson & Weinberger, ICML 2019)."""

from __future__ import annotations

import math

import torch

from .base import Attack, _check_int, _check_number, _make_generator, batch_norms


def dct_matrix(n: int, dtype=torch.float32) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D`` (n x n): row ``k`` is the k-th cosine basis vector."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype)


class SimBA(Attack):
    """SimBA ("Simple Black-box Adversarial Attacks"), pixel (SimBA) or DCT (SimBA-DCT) basis.

    Threat model: **black-box, query-only**: the attacker sees only the model's output
    probabilities (score-based) for inputs it submits; no gradients, no weights. Untargeted
    by default (lower the probability of the true class until the prediction changes);
    targeted with ``target=`` (raise the target's probability until it is predicted). Each
    iteration takes the next direction ``q`` of an orthonormal basis (without repetition:
    pixels in random order, or DCT frequencies from low to high, random order within each
    frequency level ``max(u, v)``), queries ``x - step * q`` and, only if that did not help,
    ``x + step * q``; the first that lowers the true class's probability is kept. So each
    kept step has L2 norm ``step`` (before clipping to ``[lo, hi]``) and, in the pixel basis,
    each feature moves at most once by at most ``step`` (L-inf <= ``step``).

    Budget: ``eps`` (default ``None``) is an optional hard L2 bound: candidates farther than
    ``eps`` from ``x`` are never queried. Without it the L2 norm is at most
    ``step * sqrt(max_iters)`` in the pixel basis.

    Queries: one per example for the initial probabilities plus one per candidate actually
    submitted (a candidate equal to the current point after clipping is not submitted).
    ``last_queries`` holds the per-example count of the last call (an ``(N,)`` long tensor);
    ``total_queries`` accumulates over calls. Examples that are already misclassified stop
    after their first query. ``max_iters`` defaults to the number of input features.
    The direction order is drawn from the torch ``generator`` (not secret material)."""

    name = "simba"
    norm = "l2"
    black_box = True
    supports_target = True

    def __init__(self, step: float = 0.2, *, max_iters: int | None = None, basis: str = "pixel",
                 eps: float | None = None, lo: float = 0.0, hi: float = 1.0, generator=None):
        super().__init__(eps=eps, lo=lo, hi=hi)
        _check_number("step", step, positive=True)
        if max_iters is not None:
            _check_int("max_iters", max_iters)
        if basis not in ("pixel", "dct"):
            raise ValueError(f"basis must be 'pixel' or 'dct', got {basis!r}")
        self.step = float(step)
        self.max_iters = max_iters
        self.basis = basis
        self.generator = _make_generator(generator)
        self.last_queries: torch.Tensor | None = None
        self.total_queries = 0

    # -- directions ------------------------------------------------------------------------
    def _order(self, shape) -> torch.Tensor:
        numel = int(torch.Size(shape).numel())
        if self.basis == "pixel":
            return torch.randperm(numel, generator=self.generator)
        c, h, w = shape
        u = torch.arange(h)[:, None].expand(h, w)
        v = torch.arange(w)[None, :].expand(h, w)
        level = torch.maximum(u, v).reshape(-1).repeat(c)          # (c*h*w,) in (c, u, v) order
        noise = torch.rand(numel, generator=self.generator)
        return torch.argsort(level.double() + noise.double())       # low frequencies first

    def _direction(self, idx: int, shape, dcts, dtype, device) -> torch.Tensor:
        q = torch.zeros(int(torch.Size(shape).numel()), dtype=dtype, device=device)
        if self.basis == "pixel":
            q[idx] = 1.0
            return q.reshape(shape)
        c, h, w = shape
        ch, rem = divmod(idx, h * w)
        u, v = divmod(rem, w)
        q = q.reshape(shape)
        q[ch] = torch.outer(dcts[0][u], dcts[1][v]).to(dtype=dtype, device=device)
        return q

    # -- the attack ------------------------------------------------------------------------
    def _perturb(self, model, x, y, target=None):
        if self.basis == "dct" and x.dim() != 4:
            raise ValueError("SimBA-DCT needs (N, C, H, W) images; use basis='pixel' for vectors")
        targeted = target is not None
        labels = target if targeted else y
        n, shape = x.shape[0], x.shape[1:]
        rows = torch.arange(n, device=x.device)
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        dcts = (dct_matrix(shape[1]), dct_matrix(shape[2])) if self.basis == "dct" else None

        def query(inp, idx):
            with torch.no_grad():
                probs = torch.softmax(model(inp), dim=1)
            queries[idx] += 1
            return probs

        probs = query(x, rows)
        p = probs[rows, labels]
        done = (probs.argmax(1) == labels) if targeted else (probs.argmax(1) != labels)
        x_cur = x.clone()
        order = self._order(shape)
        iters = min(self.max_iters or order.numel(), order.numel())
        sign = 1.0 if targeted else -1.0        # the change of p we look for
        for i in range(iters):
            act = (~done).nonzero().flatten()
            if act.numel() == 0:
                break
            q = self._direction(int(order[i]), shape, dcts, x.dtype, x.device)
            pending = act
            for s in (-1.0, 1.0):
                if pending.numel() == 0:
                    break
                cand = self._clip(x_cur[pending] + s * self.step * q)
                moved = (cand != x_cur[pending]).flatten(1).any(dim=1)
                if self.eps is not None:
                    moved &= batch_norms(cand - x[pending], "l2") <= self.eps
                sub = pending[moved]
                if sub.numel() == 0:
                    continue
                cand = cand[moved]
                pr = query(cand, sub)
                p_new = pr[rows[: sub.numel()], labels[sub]]
                better = (p_new - p[sub]) * sign > 0
                won = sub[better]
                x_cur[won] = cand[better]
                p[won] = p_new[better]
                pred = pr.argmax(1)[better]
                done[won] = (pred == labels[won]) if targeted else (pred != labels[won])
                pending = pending[~torch.isin(pending, won)]
        self.last_queries = queries.cpu()
        self.total_queries += int(queries.sum())
        return x_cur
