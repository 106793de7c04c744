"""Rényi DP of the Poisson-subsampled Gaussian mechanism and the RDP -> (eps, delta) step.

Definition (Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of the Sampled
Gaussian Mechanism", Sec. 3): with sample rate ``q`` and noise multiplier ``sigma``
(noise std / L2 sensitivity), mu0 = N(0, sigma^2) and mu = (1-q) mu0 + q N(1, sigma^2),
the RDP at order alpha > 1 is ``log(A_alpha) / (alpha - 1)`` with::

    A_alpha = E_{z ~ mu0}[ ((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha ].

How it is evaluated, and why this module is exact where dp-accounting runs high:

* Integer alpha: the binomial expansion has only positive terms. We sum
  ``A - 1 = sum_{i>=2} C(alpha,i) q^i (1-q)^(alpha-i) expm1((i^2-i)/(2 sigma^2))`` in
  log space, so ``A - 1`` keeps full relative precision even when it is 1e-10 (small q,
  large sigma), where summing ``A`` itself would lose 6 digits.
* Fractional alpha: the series MTZ give for this case alternates in sign past
  ``i > alpha + 1``; dp-accounting's implementation takes ``log|C(alpha, i)|`` and adds
  every term, so its fractional-order RDP is an upper bound that runs high (final eps up
  to ~0.4 % high at eps < 20 for q <= 0.1, ~1.6 % at q = 0.4; see docs/dp.md). We
  integrate the defining expectation directly: ``A - 1 = E[g(x)]`` with
  ``x = q (e^u - 1)``, ``u`` the Gaussian log-likelihood ratio ~ N(-1/(2 sigma^2),
  1/sigma^2), and ``g(x) = (1+x)^alpha - 1 - alpha x >= 0`` (the subtracted term has mean
  0). The integrand is non-negative and smooth, so composite 20-point Gauss–Legendre
  panels over its support give ~1e-13 relative accuracy (checked against mpmath and
  against the exact integer-order sum in the tests).

RDP -> (eps, delta): the conversion dp-accounting uses (Canonne, Kamath & Steinke 2020,
Prop. 12; Asoodeh et al. 2020): ``eps = rdp + log1p(-1/alpha) - log(delta alpha)/(alpha-1)``,
with the KL shortcut ``eps = 0`` when ``delta^2 + expm1(-rdp) > 0``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = [
    "DEFAULT_ORDERS",
    "rdp_poisson_subsampled_gaussian",
    "rdp_to_epsilon",
]

#: The default orders: exactly dp-accounting's ``DEFAULT_RDP_ORDERS`` (1.1, 1.2, ..., 10.9
#: in steps of 0.1; 11..63; 128, 256, 512, 1024), so that results are comparable and every
#: difference comes from the evaluation, not from the grid. Pass ``orders=`` for others.
DEFAULT_ORDERS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024]
)

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(20)
_SERIES_X = 0.05  # |x| below this: power series for g(x); above: direct formula
_SERIES_TERMS = 16  # 0.05**16 < 1e-20


@lru_cache(maxsize=8)
def _log_factorials(n: int) -> np.ndarray:
    return np.array([math.lgamma(k + 1.0) for k in range(n + 1)])


def _log_expm1(y: np.ndarray) -> np.ndarray:
    """log(e^y - 1) for y > 0 without overflow or cancellation."""
    y = np.asarray(y, dtype=np.float64)
    out = np.empty_like(y)
    big = y > 1.0
    out[big] = y[big] + np.log1p(-np.exp(-y[big]))
    out[~big] = np.log(np.expm1(y[~big]))
    return out


def _logsumexp(a: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def _log_a_minus_1_integer(q: float, sigma: float, orders: np.ndarray) -> np.ndarray:
    """log(A_alpha - 1) for integer alpha >= 2 (positive-term binomial sum).

    Orders up to 64 are done as one (orders x terms) matrix; larger ones row by row."""
    orders = orders.astype(np.int64)
    lf = _log_factorials(int(orders.max()))
    log_q, log_1mq = math.log(q), math.log1p(-q)
    i_all = np.arange(2, int(orders.max()) + 1)
    base = -lf[i_all] + i_all * log_q + _log_expm1((i_all * i_all - i_all) / (2.0 * sigma * sigma))
    out = np.empty(orders.size)
    small = orders <= 64
    if small.any():
        a = orders[small][:, None]
        i = i_all[None, : max(0, int(a.max()) - 1)]
        with np.errstate(invalid="ignore"):
            terms = lf[a] - lf[np.maximum(a - i, 0)] + (a - i) * log_1mq + base[None, : i.shape[1]]
        out[small] = _logsumexp(np.where(i <= a, terms, -np.inf), axis=1)
    for n in np.flatnonzero(~small):
        alpha = int(orders[n])
        i = i_all[: alpha - 1]
        out[n] = _logsumexp(lf[alpha] - lf[alpha - i] + (alpha - i) * log_1mq + base[: alpha - 1])
    return out


def _support_panels(eta: float, u0: float, alphas: np.ndarray) -> np.ndarray:
    """Panel edges in u covering where the fractional-order integrand lives.

    The integrand is bounded by a few Gaussians of width eta centred at
    m + j eta^2 (j = 0, 1, 2, alpha), m = -eta^2/2; it changes on scale 1 only near the
    transition u0 = log((1-q)/q). Panels are 2 eta wide, and at most 2 wide within 40
    of u0 (20 Gauss–Legendre nodes each: ~1e-14 relative, measured against 40x finer
    panels and the exact integer-order sums); windows of 12 eta + 1 around every centre
    are merged into intervals.
    """
    m = -0.5 * eta * eta
    centres = np.concatenate([m + np.array([0.0, 1.0, 2.0]) * eta * eta, m + alphas * eta * eta])
    half = 12.0 * eta + 1.0
    lo = np.sort(centres - half)
    hi = np.sort(centres + half)
    edges: list[np.ndarray] = []
    start, end = lo[0], hi[0]
    for a, b in zip(lo[1:], hi[1:]):
        if a > end:
            edges.append(_panel_edges(start, end, eta, u0))
            start = a
        end = max(end, b)
    edges.append(_panel_edges(start, end, eta, u0))
    return edges


def _panel_edges(start: float, end: float, eta: float, u0: float) -> np.ndarray:
    fine = 2.0 * min(eta, 1.0)
    coarse = max(2.0 * eta, fine)
    cuts = sorted({start, end, *(c for c in (u0 - 40.0, u0 + 40.0) if start < c < end)})
    pieces = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        width = fine if (b > u0 - 40.0 and a < u0 + 40.0) else coarse
        pieces.append(np.linspace(a, b, max(1, math.ceil((b - a) / width)) + 1)[:-1])
    pieces.append(np.array([end]))
    return np.concatenate(pieces)


def _log_g(u: np.ndarray, q: float, alphas: np.ndarray) -> np.ndarray:
    """log g_alpha(x) at x = q (e^u - 1), g(x) = (1+x)^alpha - 1 - alpha x.

    Shape (len(alphas), len(u)). Three regimes: |x| small (power series, no
    cancellation), x < 0 (direct), x large (log space, so e^u may overflow freely)."""
    a = alphas[:, None]
    out = np.empty((alphas.size, u.size))
    with np.errstate(over="ignore"):
        x = q * np.expm1(np.minimum(u, 700.0))
    small = np.abs(x) < _SERIES_X
    neg = (x < 0) & ~small
    pos = ~small & ~neg
    if small.any():
        xs = x[small]
        # sum_{k>=2} C(alpha,k) x^k = x^2 * sum_{k>=2} C(alpha,k) x^(k-2), Horner from the top.
        coef = np.ones((alphas.size, _SERIES_TERMS + 1))
        for k in range(1, _SERIES_TERMS + 1):
            coef[:, k] = coef[:, k - 1] * (alphas - (k - 1)) / k
        poly = np.broadcast_to(coef[:, _SERIES_TERMS][:, None], (alphas.size, xs.size)).copy()
        for k in range(_SERIES_TERMS - 1, 1, -1):
            poly *= xs
            poly += coef[:, k][:, None]
        with np.errstate(divide="ignore"):
            out[:, small] = 2.0 * np.log(np.abs(xs)) + np.log(poly)
    if neg.any():
        xn = x[neg]
        la = a * np.log1p(xn)
        # g = (1+x)^a - (1 + a x); log g = a log1p(x) + log1p(-(1 + a x) e^{-a log1p(x)})
        out[:, neg] = la + np.log1p(-(1.0 + a * xn) * np.exp(-la))
    if pos.any():
        up = u[pos]
        log_x = math.log(q) + np.where(up > 1.0, up + np.log1p(-np.exp(-np.maximum(up, 1.0))),
                                       np.log(np.expm1(np.minimum(up, 1.0))))
        la = a * np.logaddexp(0.0, log_x)  # alpha log(1 + x)
        log_lin = np.logaddexp(0.0, np.log(a) + log_x)  # log(1 + alpha x)
        out[:, pos] = la + np.log1p(-np.exp(log_lin - la))
    return out


def _log_a_minus_1_fractional(q: float, sigma: float, alphas: np.ndarray) -> np.ndarray:
    """log(A_alpha - 1) for real alpha > 1 by Gauss–Legendre quadrature over u."""
    eta = 1.0 / sigma
    u0 = math.log1p(-q) - math.log(q)
    m = -0.5 * eta * eta
    nodes, logw = [], []
    for edges in _support_panels(eta, u0, alphas):
        if edges.size < 2:
            continue
        left, width = edges[:-1, None], np.diff(edges)[:, None]
        nodes.append((left + 0.5 * width * (_GL_NODES + 1.0)).ravel())
        logw.append(np.log(0.5 * width * _GL_WEIGHTS).ravel())
    u = np.concatenate(nodes)
    log_density = np.concatenate(logw) - 0.5 * ((u - m) / eta) ** 2 - math.log(eta) - 0.5 * math.log(2 * math.pi)
    out = np.empty(alphas.size)
    chunk = max(1, 2_000_000 // u.size)  # bound memory for tiny sigma (many nodes)
    for start in range(0, alphas.size, chunk):
        part = alphas[start : start + chunk]
        out[start : start + chunk] = _logsumexp(_log_g(u, q, part) + log_density[None, :], axis=1)
    return out


def _softplus(v: np.ndarray) -> np.ndarray:
    """log(1 + e^v), stable for all v (log A from log(A - 1))."""
    return np.where(v > 0, v + np.log1p(np.exp(-np.abs(v))), np.log1p(np.exp(np.minimum(v, 0.0))))


def _validate_orders(orders) -> np.ndarray:
    arr = np.asarray(orders, dtype=np.float64).ravel()
    if arr.size == 0 or np.any(np.isnan(arr)) or np.any(arr <= 1.0):
        raise ValueError("RDP orders must be non-empty and all > 1")
    return arr


def rdp_poisson_subsampled_gaussian(
    sample_rate: float, noise_multiplier: float, orders=DEFAULT_ORDERS
) -> np.ndarray:
    """RDP of one step of the Poisson-subsampled Gaussian mechanism at each order.

    ``sample_rate`` in [0, 1]; ``noise_multiplier`` >= 0 (0 gives ``inf``: no privacy);
    orders must be > 1 (``inf`` allowed, giving ``inf``). Add/remove-one adjacency. Values
    are exact to ~1e-12 relative (see the module docstring); they may be ``inf`` only
    when the true value overflows float64. Raises ``ValueError`` on invalid input.
    """
    q, sigma = float(sample_rate), float(noise_multiplier)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"sample_rate must be in [0, 1], got {sample_rate}")
    if not sigma >= 0.0 or math.isinf(sigma):
        raise ValueError(f"noise_multiplier must be finite and >= 0, got {noise_multiplier}")
    alphas = _validate_orders(orders)
    if q == 0.0:
        return np.zeros_like(alphas)
    if sigma == 0.0:
        return np.full_like(alphas, np.inf)
    if q == 1.0:
        return alphas / (2.0 * sigma * sigma)
    out = np.full_like(alphas, np.inf)
    finite = np.isfinite(alphas)
    is_int = finite & (alphas == np.floor(alphas))
    is_frac = finite & ~is_int
    log_am1 = np.empty_like(alphas)
    if is_int.any():
        log_am1[is_int] = _log_a_minus_1_integer(q, sigma, alphas[is_int])
    if is_frac.any():
        log_am1[is_frac] = _log_a_minus_1_fractional(q, sigma, alphas[is_frac])
    out[finite] = _softplus(log_am1[finite]) / (alphas[finite] - 1.0)
    return out


def rdp_to_epsilon(orders, rdp, delta: float) -> tuple[float, float]:
    """(epsilon, optimal order) from RDP values, with dp-accounting's tighter conversion.

    Raises ``ValueError`` for mismatched inputs or ``delta`` outside (0, 1). Returns
    ``(inf, nan)`` only when every order's RDP is infinite (e.g. noise_multiplier = 0).
    """
    alphas = _validate_orders(orders)
    rdp = np.asarray(rdp, dtype=np.float64).ravel()
    if rdp.shape != alphas.shape:
        raise ValueError("orders and rdp must have the same length")
    delta = float(delta)
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if np.any(rdp < 0) or np.any(np.isnan(rdp)):
        raise ValueError("RDP values must be >= 0")
    with np.errstate(invalid="ignore", over="ignore"):
        eps = rdp + np.log1p(-1.0 / alphas) - math.log(delta) / (alphas - 1.0) - np.log(alphas) / (alphas - 1.0)
        eps = np.where(alphas > 1.01, eps, np.inf)
        eps = np.where(delta * delta + np.expm1(-rdp) > 0, 0.0, eps)
        eps = np.where(np.isinf(alphas) | np.isnan(eps), np.inf, eps)
    best = int(np.argmin(eps))
    if not np.isfinite(eps[best]):
        return math.inf, math.nan
    return max(0.0, float(eps[best])), float(alphas[best])
