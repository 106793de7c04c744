"""Privacy loss distributions (PLD) of the Poisson-subsampled Gaussian: tight accounting.

Model (add/remove-one adjacency, sensitivity 1, noise multiplier sigma, sample rate q):
P = (1-q) N(0, sigma^2) + q N(1, sigma^2) and Q = N(0, sigma^2). The mechanism is
(eps, delta)-DP for delta(eps) = max(H_e^eps(P||Q), H_e^eps(Q||P)), hockey-stick
divergences; composition adds independent privacy losses, so each *direction* ("remove":
P||Q, "add": Q||P) is composed by convolving its loss distribution, and the final delta
is the larger of the two (as in dp-accounting and Zhu, Dong & Wang 2022).

Discretization (pessimistic): "connect the dots" (Doroshenko, Ghazi, Kamath, Kumar &
Manurangsi 2022). Losses live on the grid l_k = k * interval. The true loss mass in each
bucket (l_i, l_{i+1}] is split between its two end points so that both the P-mass and the
Q-mass of the bucket are preserved; the resulting discrete pair dominates the true pair
(its delta(eps) curve is the chord interpolation of the true, convex one), so every
epsilon computed from it, after composition too, is an upper bound. The upper tail beyond
the grid (P-mass <= 1e-20 per step) becomes mass at +infinity; the lower tail is moved up
to the lowest grid point. Both only raise delta.

Composition: one FFT per distinct (sigma, q), raised to the power T, on a cyclic domain
whose size comes from Chernoff bounds on the composed loss; the mass outside it
(<= 1e-15) is added to the +infinity mass, so truncation and wrap-around stay
pessimistic. q = 1 steps compose to one Gaussian with 1/sigma_eff^2 = sum T_i/sigma_i^2
exactly, and when every step has q = 1 epsilon comes from the closed form
(:func:`privcrypt.dp.mechanisms.gaussian_epsilon`) with no discretization at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from privcrypt.dp._normal import interval_masses, norm_sf
from privcrypt.dp.mechanisms import gaussian_epsilon

__all__ = ["DEFAULT_INTERVAL", "DiscretePLD", "subsampled_gaussian_pld", "pld_epsilon"]

#: Loss grid spacing, the same as dp-accounting's PLDAccountant default.
DEFAULT_INTERVAL = 1e-4
_STEP_TAIL = 1e-20  # P-mass per step left beyond the grid (goes to +infinity)
_COMPOSE_TAIL = 1e-15  # mass a composition may drop (goes to +infinity)
_Z_TAIL = 9.3  # norm_sf(9.3) < 1e-20
#: Largest loss grid (points) built or composed; beyond it the interval is coarsened.
MAX_GRID = 1 << 23


class _GridTooLarge(Exception):
    def __init__(self, points: int):
        super().__init__(points)
        self.points = points


@dataclass
class DiscretePLD:
    """A pessimistic privacy loss distribution on the grid ``(offset + k) * interval``.

    ``probs[k]`` is the P-mass at loss ``(offset + k) * interval``; ``infinity_mass`` is
    the P-mass at loss +infinity (it counts fully towards delta).
    """

    offset: int
    probs: np.ndarray
    infinity_mass: float
    interval: float

    def delta(self, epsilon: float) -> float:
        """delta(epsilon) = inf_mass + sum_k p_k (1 - e^(epsilon - l_k))_+ ."""
        losses = (self.offset + np.arange(self.probs.size)) * self.interval
        above = losses > epsilon
        return self.infinity_mass + float(
            np.sum(self.probs[above] * -np.expm1(epsilon - losses[above]))
        )

    def epsilon(self, delta: float) -> float:
        """Smallest epsilon >= 0 with delta(epsilon) <= ``delta`` (``inf`` if none)."""
        if self.infinity_mass >= delta:
            return math.inf
        losses = (self.offset + np.arange(self.probs.size)) * self.interval
        keep = losses > 0.0
        p, l = self.probs[keep], losses[keep]
        if p.size == 0:
            return 0.0
        # Suffix sums from the top: S_P(k) = sum_{j>=k} p_j and, in log space so that
        # huge losses neither overflow nor underflow, log S_Q(k) = log sum_{j>=k} p_j e^-l_j.
        s_p = np.cumsum(p[::-1])[::-1]
        with np.errstate(divide="ignore"):
            log_sq = np.logaddexp.accumulate((np.log(p) - l)[::-1])[::-1]
        # delta at grid point l_{k-1} (l_{-1} = 0) uses the masses strictly above it: S(k).
        prev = np.concatenate(([0.0], l[:-1]))
        d_at_prev = self.infinity_mass + s_p - np.exp(prev + log_sq)
        if d_at_prev[0] <= delta:  # delta(0) small enough
            return 0.0
        k = int(np.flatnonzero(d_at_prev > delta)[-1])  # epsilon lies in (l_{k-1}, l_k]
        num = self.infinity_mass + s_p[k] - delta
        return float(min(l[k], max(math.log(num) - log_sq[k], prev[k])))


def _next_fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (sizes numpy's pocketfft handles fastest)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _log_expm1_plus(v: np.ndarray, q: float) -> np.ndarray:
    """log(e^v - 1 + q) elementwise, -inf/NaN where e^v - 1 + q <= 0, no overflow."""
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        small = np.log(np.expm1(np.minimum(v, 1.0)) + q)
        large = v + np.log1p((q - 1.0) * np.exp(-np.maximum(v, 1.0)))
    return np.where(v > 1.0, large, small)


def subsampled_gaussian_pld(
    noise_multiplier: float, sample_rate: float, direction: str, interval: float = DEFAULT_INTERVAL
) -> DiscretePLD:
    """Connect-the-dots PLD of one Poisson-subsampled Gaussian step in one direction.

    ``direction="remove"``: the pair (P, Q); ``"add"``: (Q, P). Raises ``ValueError`` for
    sigma <= 0, q outside (0, 1] or an unknown direction.
    """
    sigma, q = float(noise_multiplier), float(sample_rate)
    if not (sigma > 0 and math.isfinite(sigma)) or not 0.0 < q <= 1.0:
        raise ValueError("need noise_multiplier > 0 and sample_rate in (0, 1]")
    s2 = sigma * sigma
    log_q = math.log(q)
    # Work in a coordinate x where the loss is increasing; the first measure is a
    # mixture sum_j w_j N(mean_j, sigma^2), the second is N(0, sigma^2) (remove) or the
    # reverse (add, with x mirrored so that the loss still increases).
    if direction == "remove":
        first = [(1.0 - q, 0.0), (q, 1.0)]
        second = [(1.0, 0.0)]

        def x_of(loss):
            return s2 * (_log_expm1_plus(loss, q) - log_q) + 0.5

        def loss_of(x):
            y = (2.0 * x - 1.0) / (2.0 * s2)
            return math.log1p(q * math.expm1(y)) if y < 700 else log_q + y + math.log1p((1 - q) * math.exp(-y) / q)

        lo_loss = math.log1p(-q) if q < 1.0 else loss_of(1.0 - _Z_TAIL * sigma)
        hi_loss = loss_of(1.0 + _Z_TAIL * sigma)
    elif direction == "add":
        first = [(1.0, 0.0)]
        second = [(1.0 - q, 0.0), (q, -1.0)]

        def x_of(loss):
            return -s2 * (_log_expm1_plus(-loss, q) - log_q) - 0.5

        def loss_of(x):
            y = (-2.0 * x - 1.0) / (2.0 * s2)
            return -math.log1p(q * math.expm1(y)) if y < 700 else -(log_q + y + math.log1p((1 - q) * math.exp(-y) / q))

        lo_loss = loss_of(-_Z_TAIL * sigma)
        hi_loss = -math.log1p(-q) if q < 1.0 else loss_of(_Z_TAIL * sigma)
    else:
        raise ValueError(f"direction must be 'remove' or 'add', got {direction!r}")

    i_lo = math.floor(lo_loss / interval)
    i_hi = max(math.ceil(hi_loss / interval), i_lo + 1)
    if i_hi - i_lo + 1 > MAX_GRID:
        raise _GridTooLarge(i_hi - i_lo + 1)
    grid = np.arange(i_lo, i_hi + 1) * interval
    x = x_of(grid)
    # The lower tail (exactly empty for remove with q < 1) folds into the first bucket,
    # i.e. it is moved up to the lowest grid point: pessimistic. For add with q < 1 the
    # loss is bounded above, so the last grid point closes the whole upper tail.
    # Rounding can put a grid point just outside the loss range, where the inverse is
    # NaN: such points can only be end points, and they close the range there.
    bad = np.isnan(x)
    x[bad & (np.arange(x.size) < x.size // 2)] = -np.inf
    x[bad & (np.arange(x.size) >= x.size // 2)] = np.inf
    x[0] = -np.inf
    if direction == "add" and q < 1.0:
        x[-1] = np.inf
    a_mass = sum(w * interval_masses((x - m) / sigma) for w, m in first)
    b_mass = sum(w * interval_masses((x - m) / sigma) for w, m in second)
    inf_mass = 0.0 if not np.isfinite(x[-1]) else float(
        sum(w * norm_sf((x[-1] - m) / sigma) for w, m in first))
    # Split each bucket's A-mass between its end points preserving A- and B-mass:
    # right = r (A - e^{l_i} B) / (r - 1), r = e^interval.
    # In ratio form, e^{l_i} B / A in [e^-interval, 1], computed in log space: a B-mass
    # that underflows to 0 sends all of A to the right (higher-loss) point: pessimistic.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.exp(grid[:-1] + np.log(b_mass) - np.log(a_mass))
        right = a_mass * (1.0 - ratio) / -math.expm1(-interval)
    right = np.where(a_mass > 0, np.clip(np.nan_to_num(right, nan=0.0), 0.0, a_mass), 0.0)
    probs = np.zeros(grid.size)
    probs[:-1] += a_mass - right
    probs[1:] += right
    return DiscretePLD(offset=i_lo, probs=probs, infinity_mass=inf_mass, interval=interval)


def _log_mgf(pld: DiscretePLD, lam: float) -> float:
    losses = (pld.offset + np.arange(pld.probs.size)) * pld.interval
    nz = pld.probs > 0
    v = np.log(pld.probs[nz]) + lam * losses[nz]
    m = v.max()
    return float(m + math.log(np.sum(np.exp(v - m))))


def _self_compose(pld: DiscretePLD, times: int, tail: float = _COMPOSE_TAIL) -> DiscretePLD:
    """``pld`` composed with itself ``times`` times by one FFT power (pessimistic)."""
    if times == 1:
        return pld
    p, n, dx = pld.probs, pld.probs.size, pld.interval
    total = float(p.sum())
    losses = (pld.offset + np.arange(n)) * dx
    mean = float(np.dot(p, losses)) / total
    sd = math.sqrt(max(float(np.dot(p, (losses - mean) ** 2)) / total, (dx * dx)))
    lo_idx, hi_idx = pld.offset * times, (pld.offset + n - 1) * times
    log_tail = math.log(2.0 / tail)
    scale = math.sqrt(times) * sd
    for c in (0.5, 1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64):
        lam = c / scale
        up = (times * _log_mgf(pld, lam) + log_tail) / lam
        down = (times * _log_mgf(pld, -lam) + log_tail) / -lam
        if math.isfinite(up):
            hi_idx = min(hi_idx, math.ceil(up / dx))
        if math.isfinite(down):
            lo_idx = max(lo_idx, math.floor(down / dx))
    hi_idx = max(hi_idx, lo_idx)
    if hi_idx - lo_idx + 1 > MAX_GRID:
        raise _GridTooLarge(hi_idx - lo_idx + 1)
    size = _next_fast_len(max(hi_idx - lo_idx + 1, n))
    spectrum = np.fft.rfft(p, size)
    out = np.fft.irfft(spectrum**times, size)
    # True index t sits at cyclic position (t - times*offset) mod size.
    start = (lo_idx - times * pld.offset) % size
    out = np.roll(out, -start)[: hi_idx - lo_idx + 1]
    inf_mass = 1.0 - (1.0 - pld.infinity_mass) ** times + tail
    return DiscretePLD(lo_idx, np.clip(out, 0.0, None), min(inf_mass, 1.0), dx)


def _compose(a: DiscretePLD, b: DiscretePLD, tail: float = _COMPOSE_TAIL) -> DiscretePLD:
    """Convolution of two PLDs on the same grid; tails of total mass <= ``tail`` are
    dropped to +infinity."""
    size = _next_fast_len(a.probs.size + b.probs.size - 1)
    out = np.fft.irfft(np.fft.rfft(a.probs, size) * np.fft.rfft(b.probs, size), size)
    out = np.clip(out[: a.probs.size + b.probs.size - 1], 0.0, None)
    cum = np.cumsum(out)
    first = int(np.searchsorted(cum, tail / 2.0, side="right"))
    rcum = np.cumsum(out[::-1])
    last = out.size - int(np.searchsorted(rcum, tail / 2.0, side="right"))
    first = min(first, max(last - 1, 0))
    dropped = float(cum[first - 1] if first else 0.0) + float(rcum[out.size - last - 1] if last < out.size else 0.0)
    inf_mass = 1.0 - (1.0 - a.infinity_mass) * (1.0 - b.infinity_mass) + dropped
    return DiscretePLD(a.offset + b.offset + first, out[first:last], min(inf_mass, 1.0), a.interval)


def pld_epsilon(entries, delta: float, interval: float = DEFAULT_INTERVAL) -> float:
    """Epsilon of the composition of ``entries`` = [(noise_multiplier, sample_rate, steps)].

    Never below the true epsilon (pessimistic discretization). Exact (closed form) when
    every entry has sample_rate 1. Returns ``inf`` when some step has noise 0 and positive
    sample rate, 0 when nothing was spent. Raises ``ValueError`` on invalid arguments.

    Huge epsilon (tiny noise, many steps): when a loss grid would exceed ``MAX_GRID``
    points, ``interval`` is doubled until it fits. The result is still an upper bound,
    only looser (by at most about ``interval`` per distinct (sigma, q) plus the
    connect-the-dots error), and the call stays bounded in time and memory.
    """
    delta = float(delta)
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if not (interval > 0 and math.isfinite(interval)):
        raise ValueError("interval must be > 0")
    merged: dict[tuple[float, float], int] = {}
    gauss_precision = 0.0  # sum of T / sigma^2 over q = 1 entries
    for sigma, q, steps in entries:
        sigma, q, steps = float(sigma), float(q), int(steps)
        if steps == 0 or q == 0.0:
            continue
        if sigma == 0.0:
            return math.inf
        if q == 1.0:
            gauss_precision += steps / (sigma * sigma)
        else:
            merged[(sigma, q)] = merged.get((sigma, q), 0) + steps
    if not merged:
        if gauss_precision == 0.0:
            return 0.0
        return gaussian_epsilon(1.0 / math.sqrt(gauss_precision), delta)
    while True:
        try:
            return _composed_epsilon(merged, gauss_precision, delta, interval)
        except _GridTooLarge as exc:
            interval *= 2.0 ** max(1, math.ceil(math.log2(exc.points / MAX_GRID)))
            # The Chernoff window never shrinks below ~sqrt(steps) grid points, so for
            # astronomically many steps no coarsening makes it fit: stop with a clear error
            # instead of looping (the RDP accountant still answers there).
            if not math.isfinite(interval) or interval > MAX_INTERVAL:
                raise ValueError(
                    f"the PLD grid cannot hold this composition ({sum(merged.values())} steps); "
                    "use accountant='rdp', whose bound stays valid at any step count") from None


#: Coarsest loss-grid spacing (nats) the PLD accountant tries before giving up; tiny noise
#: (sigma ~ 1e-3) legitimately needs spacings of hundreds of nats.
MAX_INTERVAL = 1e12


def _composed_epsilon(merged: dict, gauss_precision: float, delta: float, interval: float) -> float:
    worst = 0.0
    for direction in ("remove", "add"):
        total = None
        if gauss_precision > 0.0:
            total = subsampled_gaussian_pld(1.0 / math.sqrt(gauss_precision), 1.0, direction, interval)
        for (sigma, q), steps in merged.items():
            part = _self_compose(subsampled_gaussian_pld(sigma, q, direction, interval), steps)
            total = part if total is None else _compose(total, part)
        worst = max(worst, total.epsilon(delta))
    return worst
