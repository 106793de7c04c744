"""Distributed discrete Gaussian (DDGauss): client-side integer noise summed under secure
aggregation (Kairouz, Liu & Steinke, ICML 2021, "The Distributed Discrete Gaussian
Mechanism for Federated Learning with Secure Aggregation"; KLS below).

Client (:meth:`DDGaussPlan.encode`): clip to L2 norm ``clip``; rotate with the
randomized Walsh–Hadamard transform of a public 32-byte round seed
(:mod:`privcrypt.dp.hadamard`, zero padding to ``D``, a power of two); scale by
``gamma``; round each coordinate stochastically to an integer and *retry until the
rounded vector's L2 norm is at most* ``delta2`` (KLS conditional randomized rounding;
the check is exact integer arithmetic); add exact discrete Gaussian noise
N_Z(0, local_sigma^2) per coordinate (:func:`privcrypt.dp.discrete.sample_discrete_gaussian`);
reduce mod ``2^bits``. Server (:meth:`DDGaussPlan.decode`): the secure aggregate
``sum mod 2^bits`` (any modulus that is a multiple of 2^bits works, e.g. masking's 2^32),
lifted to signed integers, unscaled, unrotated, truncated to ``dim``.

Parameters (:class:`DDGaussConfig` -> :meth:`DDGaussConfig.plan`): ``local_sigma`` is set
so that ``n_min - colluding`` surviving noise shares give total noise
``noise_multiplier * delta2`` (in integer units). ``gamma`` is the largest scale for which
the modular sum of ``n_max`` clients cannot wrap except with probability ``wrap_prob``
(see :meth:`DDGaussPlan.wrap_probability`), with ``clip * gamma <= 2^48`` (float64 stays
exact) and capped so that ``local_sigma <= max_local_sigma``
(the sampler's fast path; the rounding inflation ``delta2 / (clip gamma)`` is then tiny,
reported as ``rounding_inflation``). Infeasible settings raise ``UnsupportedParameters``
before any round.

Privacy (:func:`ddgauss_rdp`; per round :meth:`DDGaussPlan.round_rdp`): KLS Theorem 1 /
Prop. 14, the bound ``RDP(alpha) = alpha/2 (delta2 / (sqrt(n) local_sigma) + tau sqrt(D))^2``
with ``tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 local_sigma^2 k / (k+1))``, n = noise shares that
survived and are unknown to the server. Client sampling: the general Poisson-subsampled
RDP bound of Zhu & Wang (ICML 2019, Thm. 5) at integer orders (fractional orders take the
value at ``ceil(alpha)``; RDP is non-decreasing in alpha), capped by the unsampled value;
this is the route KLS's own accounting takes. It is looser than the exact subsampled
*continuous* Gaussian of :mod:`privcrypt.dp.rdp` (measured in docs/dp.md).

Adjacency: **zero-out** (one client's update replaced by zero while its noise share
stays), the notion under which client-side noise composes; the central and local modes in
:mod:`privcrypt.dp` state add/remove. Threat model: an honest-but-curious server that
sees only the modular sum and colludes with at most ``colluding`` clients (their noise
shares are not counted). Clients are trusted to add their noise; a client that skips it
weakens everyone's guarantee, which calibrating to ``n_min - colluding`` shares does not
cover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from privcrypt.dp.discrete import FAST_PATH_MAX_SIGMA, sample_discrete_gaussian
from privcrypt.dp.hadamard import padded_dim, rotate, unrotate
from privcrypt.dp.rdp import DEFAULT_ORDERS, rdp_poisson_subsampled_gaussian, rdp_to_epsilon
from privcrypt.exceptions import ProtocolAbort, UnsupportedParameters
from privcrypt.rng import RandomSource, resolve_rng

__all__ = [
    "DDGaussConfig",
    "DDGaussPlan",
    "ClientEncoding",
    "ServerDecoding",
    "rounded_l2_bound",
    "ddgauss_tau",
    "ddgauss_rdp",
    "subsampled_rdp_zhu_wang",
    "calibrate_ddgauss",
]

_MAX_TRIES = 1000
#: Largest clip * gamma: scaled coordinates stay below 2^52, where float64 rounds exactly.
_MAX_SCALED_NORM = 2.0**48


def rounded_l2_bound(l2: float, beta: float, dim: int) -> float:
    """KLS Thm. 1: the L2 norm bound after conditional randomized rounding of a vector of
    norm <= ``l2`` in ``dim`` coordinates, ``min(l2 + sqrt(d), sqrt(l2^2 + d/4 +
    sqrt(2 ln(1/beta)) (l2 + sqrt(d)/2)))``; each rounding attempt meets it with
    probability >= 1 - beta. ``beta = 0``: the deterministic bound ``l2 + sqrt(d)``."""
    if not 0.0 <= beta < 1.0:
        raise ValueError("beta must be in [0, 1)")
    b1 = l2 + math.sqrt(dim)
    if beta == 0.0:
        return b1
    sq = l2 * l2 + 0.25 * dim + math.sqrt(2.0 * math.log(1.0 / beta)) * (l2 + 0.5 * math.sqrt(dim))
    return min(b1, math.sqrt(sq))


def ddgauss_tau(local_sigma: float, n_shares: int) -> float:
    """KLS's tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 sigma^2 k / (k + 1)): how far the sum of
    n discrete Gaussians N_Z(0, sigma^2) is from N_Z(0, n sigma^2). 0 for one share."""
    k = np.arange(1, int(n_shares), dtype=np.float64)
    return float(10.0 * np.sum(np.exp(-2.0 * math.pi**2 * float(local_sigma) ** 2 * k / (k + 1.0))))


def _log_binom(n: int) -> np.ndarray:
    k = np.arange(n + 1, dtype=np.float64)
    lg = np.array([math.lgamma(i + 1.0) for i in range(n + 1)])
    return lg[n] - lg[k.astype(int)] - lg[(n - k).astype(int)]


def subsampled_rdp_zhu_wang(alpha: int, q: float, eps) -> float:
    """Zhu & Wang (ICML 2019) Thm. 5: RDP at integer ``alpha >= 2`` of a mechanism with RDP
    curve ``eps`` (a function of an int array of orders) under Poisson sampling at rate
    ``q``, capped by ``eps(alpha)`` itself."""
    alpha = int(alpha)
    if alpha < 2:
        raise ValueError("alpha must be an integer >= 2")
    if q == 0.0:
        return 0.0
    base = float(eps(np.array([alpha]))[0])
    if q == 1.0:
        return base
    lq, l1q = math.log(q), math.log1p(-q)
    ls = np.arange(2, alpha + 1)
    e = np.asarray(eps(ls), dtype=np.float64)
    lb = _log_binom(alpha)[2:]
    terms = lb + ls * lq + (alpha - ls) * l1q + (ls - 1) * e
    terms[1:] += math.log(3.0)  # l >= 3 carry the factor 3
    first = (alpha - 1) * l1q + math.log(alpha * q - q + 1.0)
    allt = np.concatenate([[first], terms])
    m = float(np.max(allt))
    out = (m + math.log(float(np.sum(np.exp(allt - m))))) / (alpha - 1)
    return min(out, base)


def ddgauss_rdp(orders=DEFAULT_ORDERS, *, l2_sensitivity: float, local_sigma: float,
                n_shares: int, dim: int, sample_rate: float = 1.0,
                subsampling: str = "zhu-wang") -> np.ndarray:
    """RDP per round of the (Poisson-subsampled) distributed discrete Gaussian, per order.

    ``l2_sensitivity``: the integer-domain L2 bound after rounding (``delta2``);
    ``local_sigma``: each share's sigma; ``n_shares``: shares in the sum that the adversary
    does not know (1 = the central discrete Gaussian, tau = 0, CKS 2020); ``dim``: number of
    noised coordinates. Bound: KLS Thm. 1, ``alpha/2 (delta2/(sqrt(n) sigma) + tau sqrt(dim))^2``;
    fractional orders take the value at ``ceil(alpha)`` (RDP is non-decreasing in alpha).

    ``subsampling``: ``"zhu-wang"`` (default; Zhu & Wang 2019 Thm. 5, proven for any
    mechanism with this RDP curve, both neighbouring directions; loose for small q: about
    3x the RDP at middle orders) or ``"gaussian-equivalent"``: the exact Poisson-subsampled
    Gaussian RDP (Mironov, Talwar & Zhang 2019, integer orders) at the equivalent noise
    multiplier ``1 / (delta2/(sqrt(n) sigma) + tau sqrt(dim))``. The latter bounds the
    divergence of the sampled mixture from the base distribution (the binomial expansion
    holds for any mechanism, and for an exact discrete Gaussian with an integer shift the
    moments E[e^{kL}] equal the continuous Gaussian's), but the reverse direction is
    proven only for the continuous Gaussian: it is the heuristic route, state it when used.
    Raises ``ValueError`` on invalid arguments.
    """
    alphas = np.asarray(orders, dtype=np.float64).ravel()
    if alphas.size == 0 or np.any(~(alphas > 1.0)):
        raise ValueError("orders must be > 1")
    n = int(n_shares)
    q = float(sample_rate)
    if n < 1 or not (l2_sensitivity >= 0) or not (local_sigma >= 0) or int(dim) < 1 or not 0 <= q <= 1:
        raise ValueError("need n_shares >= 1, dim >= 1, sensitivities/sigma >= 0, sample_rate in [0, 1]")
    if q == 0.0 or l2_sensitivity == 0.0:
        return np.zeros_like(alphas)
    if local_sigma == 0.0:
        return np.full_like(alphas, np.inf)
    scale = l2_sensitivity / (math.sqrt(n) * local_sigma) + ddgauss_tau(local_sigma, n) * math.sqrt(dim)

    if subsampling not in ("zhu-wang", "gaussian-equivalent"):
        raise ValueError("subsampling must be 'zhu-wang' or 'gaussian-equivalent'")
    ints = np.where(np.isfinite(alphas), np.maximum(2.0, np.ceil(alphas)), np.inf)
    if subsampling == "gaussian-equivalent":
        return rdp_poisson_subsampled_gaussian(q, 1.0 / scale, ints)

    def eps(a):
        return np.asarray(a, dtype=np.float64) / 2.0 * scale * scale

    out = np.empty_like(alphas)
    cache: dict[int, float] = {}
    for i, a in enumerate(alphas):
        if not math.isfinite(a):
            out[i] = np.inf
            continue
        ai = max(2, math.ceil(a))
        if ai not in cache:
            cache[ai] = subsampled_rdp_zhu_wang(ai, q, eps)
        out[i] = cache[ai]
    return out


@dataclass(frozen=True)
class ClientEncoding:
    """What a client sends (``residues``, uint64 in [0, 2^bits)) and what it may report:
    whether its update was clipped and how many rounding attempts it took."""

    residues: np.ndarray
    clipped: bool
    rounding_tries: int


@dataclass(frozen=True)
class ServerDecoding:
    """The decoded noisy sum of clipped updates (float64, length ``dim``, model units) and
    ``suspected_wraps``: coordinates whose signed value lies beyond the plan's
    high-probability bound (0 unless a wrap happened or an event of probability <=
    ``wrap_prob`` occurred; a nonzero count means the sum may be wrong)."""

    total: np.ndarray
    suspected_wraps: int
    n_survivors: int


@dataclass(frozen=True)
class DDGaussConfig:
    """The public parameters of distributed discrete Gaussian rounds.

    ``dim``: model size. ``clip``: L2 clip of each client update. ``noise_multiplier``:
    total noise over the sensitivity when ``n_min - colluding`` shares survive (0 = no
    noise, for tests). ``n_min``: fewest survivors a round accepts (the server aborts
    below it). ``n_max``: most clients in a round (sizes the modulus check). ``bits``:
    the integer encoding is mod 2^bits (<= the secure-aggregation modulus, e.g. 32 for
    masking's 2^32). ``beta``: conditional-rounding parameter (KLS default exp(-0.5)).
    ``wrap_prob``: allowed probability that a round's sum wraps. ``colluding``: clients
    whose noise the server may know. ``gamma``: force the scale (checked).
    ``max_local_sigma``: cap on each share's sigma (sampler fast path). ``guard_bits``:
    the planned range is ``2^(bits-1-guard_bits)``, so that a wrap whose true value is
    below ``2^bits - range`` in magnitude (3x the range for one guard bit) lands outside
    the range and is counted by :meth:`DDGaussPlan.decode`.
    """

    dim: int
    clip: float
    noise_multiplier: float
    n_min: int
    n_max: int
    bits: int = 32
    beta: float = math.exp(-0.5)
    wrap_prob: float = 1e-9
    colluding: int = 0
    gamma: float | None = None
    max_local_sigma: float = 2.0**15
    guard_bits: int = 1

    def __post_init__(self):
        if not 0 <= int(self.guard_bits) <= 8:
            raise ValueError("guard_bits must be in [0, 8]")
        if int(self.dim) < 1:
            raise ValueError("dim must be >= 1")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ValueError("clip must be positive and finite")
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier >= 0):
            raise ValueError("noise_multiplier must be finite and >= 0")
        if not 0 <= int(self.colluding) < int(self.n_min) <= int(self.n_max):
            raise ValueError("need 0 <= colluding < n_min <= n_max")
        if not 8 <= int(self.bits) <= 64:
            raise ValueError("bits must be in [8, 64]")
        if not 0.0 <= self.beta < 1.0:
            raise ValueError("beta must be in [0, 1)")
        if not 0.0 < self.wrap_prob < 1.0:
            raise ValueError("wrap_prob must be in (0, 1)")
        if not 0 < self.max_local_sigma <= FAST_PATH_MAX_SIGMA * 4:
            raise ValueError("max_local_sigma must be in (0, 152000]")

    # -- the analysis -------------------------------------------------------------------
    def _derived(self, gamma: float) -> tuple[float, float]:
        """(delta2, local_sigma) at scale gamma."""
        d = padded_dim(self.dim)
        delta2 = rounded_l2_bound(self.clip * gamma, self.beta, d)
        shares = self.n_min - self.colluding
        return delta2, self.noise_multiplier * delta2 / math.sqrt(shares)

    def _fits(self, gamma: float) -> bool:
        if self.clip * gamma > _MAX_SCALED_NORM:
            return False
        _, sig = self._derived(gamma)
        return _range_needed(self, gamma, sig, self.n_max, self.wrap_prob) <= 2 ** (self.bits - 1 - self.guard_bits) - 1

    def plan(self) -> "DDGaussPlan":
        """Choose gamma (largest that fits, see the class docs) and derive everything a
        round needs. Raises ``UnsupportedParameters`` if no scale lets ``n_max`` clients'
        sum fit in 2^bits with the stated probability (or a forced ``gamma`` does not)."""
        if self.gamma is not None:
            gamma = float(self.gamma)
            if not (gamma > 0 and math.isfinite(gamma)):
                raise ValueError("gamma must be positive and finite")
            if not self._fits(gamma):
                raise UnsupportedParameters(
                    f"gamma={gamma}: the sum of {self.n_max} clients could wrap mod 2^{self.bits} "
                    f"with probability > {self.wrap_prob}")
        else:
            lo = 1e-6 / self.clip
            if not self._fits(lo):
                raise UnsupportedParameters(
                    f"{self.n_max} clients do not fit in {self.bits} bits at any scale (their "
                    f"rounding error and noise shares alone overflow 2^{self.bits - 1 - self.guard_bits}); "
                    f"use more bits, fewer clients or less noise")
            hi = lo
            while self._fits(hi * 2) and self._derived(hi * 2)[1] <= self.max_local_sigma and hi < 1e30:
                hi *= 2
            lo, hi = hi, hi * 2
            for _ in range(60):
                mid = math.sqrt(lo * hi)
                if self._fits(mid) and self._derived(mid)[1] <= self.max_local_sigma:
                    lo = mid
                else:
                    hi = mid
            gamma = lo
        delta2, sigma = self._derived(gamma)
        threshold = math.floor(Fraction(delta2) ** 2)  # exact integer test of ||x||^2
        return DDGaussPlan(config=self, gamma=gamma, pad_dim=padded_dim(self.dim),
                           delta2=delta2, norm2_threshold=threshold, local_sigma=sigma)


def _range_needed(cfg: DDGaussConfig, gamma: float, local_sigma: float, n: int, p: float) -> float:
    """A bound B with P(some coordinate of the n-client sum has |value| > B) <= p.

    Per coordinate j: (U sum_i x_i)_j is a Rademacher sum with variance proxy
    ||sum_i x_i||^2 / D <= (n clip)^2 / D (Hoeffding; the rotation's signs are independent
    of the updates), the noise sum of n discrete Gaussians is sqrt(n) sigma-subgaussian
    (CKS 2020, Cor. 23), and rounding moves each client's coordinate by < 1. Union bound over
    the D coordinates: B = sqrt(2 ln(2D/p) (gamma^2 n^2 clip^2 / D + n sigma^2)) + n."""
    d = padded_dim(cfg.dim)
    var = (gamma * n * cfg.clip) ** 2 / d + n * local_sigma**2
    return math.sqrt(2.0 * math.log(2.0 * d / p) * var) + n


@dataclass(frozen=True)
class DDGaussPlan:
    """Everything a distributed-DP round needs, derived by :meth:`DDGaussConfig.plan`.

    ``gamma``: scale (integer units per model unit); ``pad_dim``: D; ``delta2``: L2
    sensitivity in integer units after rounding; ``norm2_threshold``: floor(delta2^2),
    the exact test of conditional rounding; ``local_sigma``: each client's discrete
    Gaussian sigma (integer units).
    """

    config: DDGaussConfig
    gamma: float
    pad_dim: int
    delta2: float
    norm2_threshold: int
    local_sigma: float
    _mask: int = field(init=False, repr=False, default=0)

    def __post_init__(self):
        object.__setattr__(self, "_mask", (1 << self.config.bits) - 1)

    # -- derived numbers -----------------------------------------------------------------
    @property
    def modulus(self) -> int:
        """2^bits: the encoding's modulus (the secure aggregation modulus must be a multiple)."""
        return 1 << self.config.bits

    def summary(self, n_clients: int | None = None) -> dict:
        """The plan's public numbers as a JSON-ready dict (for run reports)."""
        n = self.config.n_max if n_clients is None else int(n_clients)
        return {"bits": self.config.bits, "gamma": self.gamma, "pad_dim": self.pad_dim,
                "delta2": self.delta2, "local_sigma": self.local_sigma,
                "noise_multiplier": self.config.noise_multiplier, "n_min": self.config.n_min,
                "n_max": self.config.n_max, "colluding": self.config.colluding,
                "rounding_inflation": self.rounding_inflation,
                "wrap_probability_bound": self.wrap_probability(n)}

    @property
    def rounding_inflation(self) -> float:
        """delta2 / (clip gamma): how much rounding inflates the sensitivity (and noise)."""
        return self.delta2 / (self.config.clip * self.gamma)

    def range_bound(self, n_clients: int) -> float:
        """The high-probability bound on |coordinate| of an n-client sum (integer units)."""
        return _range_needed(self.config, self.gamma, self.local_sigma, int(n_clients), self.config.wrap_prob)

    def wrap_probability(self, n_clients: int) -> float:
        """An upper bound on P(the n-client modular sum wraps in some coordinate)."""
        cfg, d, n = self.config, self.pad_dim, int(n_clients)
        var = (self.gamma * n * cfg.clip) ** 2 / d + n * self.local_sigma**2
        room = 2 ** (cfg.bits - 1) - 1 - n
        if room <= 0:
            return 1.0
        return min(1.0, 2.0 * d * math.exp(-room * room / (2.0 * var)))

    def noise_std(self, n_survivors: int) -> float:
        """Std of the total noise per coordinate of the decoded sum, in model units."""
        return math.sqrt(int(n_survivors)) * self.local_sigma / self.gamma

    def check_round(self, n_clients: int) -> None:
        """Before a round: raise ``UnsupportedParameters`` unless n_min <= n_clients <= n_max
        (more clients than planned could wrap; fewer than n_min would leave too little noise)."""
        n = int(n_clients)
        if not self.config.n_min <= n <= self.config.n_max:
            raise UnsupportedParameters(
                f"{n} clients outside the planned range [{self.config.n_min}, {self.config.n_max}]")

    def round_rdp(self, n_survivors: int, sample_rate: float = 1.0, orders=DEFAULT_ORDERS, *,
                  subsampling: str = "zhu-wang") -> np.ndarray:
        """RDP of one round in which ``n_survivors`` noise shares reached the sum (the noise
        that actually survived; shares of ``colluding`` clients are not counted). Record it
        with ``RDPAccountant.step_rdp(plan.round_rdp(n, q, acc.orders))``. ``subsampling``:
        see :func:`ddgauss_rdp`."""
        shares = int(n_survivors) - self.config.colluding
        if shares < 1:
            raise ValueError("no noise share unknown to the server survived")
        return ddgauss_rdp(orders, l2_sensitivity=self.delta2, local_sigma=self.local_sigma,
                           n_shares=shares, dim=self.pad_dim, sample_rate=sample_rate,
                           subsampling=subsampling)

    def epsilon(self, rounds: int, sample_rate: float, delta: float, *, n_survivors: int | None = None,
                orders=DEFAULT_ORDERS, subsampling: str = "zhu-wang") -> float:
        """Epsilon after ``rounds`` identical rounds (``n_survivors`` default: n_min)."""
        n = self.config.n_min if n_survivors is None else int(n_survivors)
        rdp = int(rounds) * self.round_rdp(n, sample_rate, orders, subsampling=subsampling)
        return rdp_to_epsilon(orders, rdp, delta)[0]

    # -- client ----------------------------------------------------------------------------
    def encode(self, update, seed: bytes, *, rng: RandomSource | None = None) -> ClientEncoding:
        """Client side: clip, rotate (public ``seed``), scale, conditionally round, add
        N_Z(0, local_sigma^2), reduce mod 2^bits. ``rng`` (privcrypt.rng) draws the rounding
        and the noise. Raises ``ValueError`` for a wrong shape or NaN/Inf, ``ProtocolAbort``
        if rounding fails 1000 times (probability <= beta^1000)."""
        rng = resolve_rng(rng)
        cfg = self.config
        x = np.asarray(update, dtype=np.float64).ravel()
        if x.size != cfg.dim:
            raise ValueError(f"update has {x.size} values, the plan expects {cfg.dim}")
        if not np.all(np.isfinite(x)):
            raise ValueError("update contains NaN or Inf")
        norm = float(np.linalg.norm(x))
        clipped = norm > cfg.clip
        if clipped:
            x = x * (cfg.clip / norm)
        v = rotate(x, seed) * self.gamma
        fl = np.floor(v)
        frac = v - fl
        for tries in range(1, _MAX_TRIES + 1):
            r = (fl + (rng.uniform(v.shape) < frac)).astype(np.int64)
            if _norm2(r) <= self.norm2_threshold:
                break
        else:
            raise ProtocolAbort("conditional rounding failed 1000 times", stage="ddgauss-encode")
        if self.local_sigma > 0:
            r = r + sample_discrete_gaussian(self.local_sigma, r.shape, rng=rng)
        res = r.view(np.uint64) & np.uint64(self._mask)
        return ClientEncoding(res, bool(clipped), tries)

    # -- server ----------------------------------------------------------------------------
    def decode(self, modular_sum, seed: bytes, n_survivors: int) -> ServerDecoding:
        """Server side: ``modular_sum`` (the secure aggregate of the survivors' residues,
        mod 2^bits or any multiple of it) -> the noisy sum of clipped updates in model units.
        Coordinates beyond :meth:`range_bound` are counted in ``suspected_wraps``."""
        s = np.asarray(modular_sum)
        if s.shape != (self.pad_dim,) or s.dtype.kind not in "iu":
            raise ValueError(f"modular_sum must be an integer vector of length {self.pad_dim}")
        bits = self.config.bits
        shift = 64 - bits  # sign-extend the low ``bits`` bits
        signed = (s.astype(np.uint64) << np.uint64(shift)).view(np.int64) >> np.int64(shift)
        bound = self.range_bound(n_survivors)
        wraps = int(np.count_nonzero(np.abs(signed.astype(np.float64)) > bound))
        total = unrotate(signed.astype(np.float64) / self.gamma, seed, self.config.dim)
        return ServerDecoding(total, wraps, int(n_survivors))


def _norm2(r: np.ndarray) -> int:
    """Exact squared L2 norm of an int64 vector."""
    m = int(np.max(np.abs(r), initial=0))
    if m < 2**31 and r.size * m * m < 2**63:
        return int(np.dot(r, r))
    return sum(int(v) * int(v) for v in r.tolist())


def calibrate_ddgauss(epsilon: float, delta: float, *, dim: int, clip: float, n_min: int, n_max: int,
                      sample_rate: float, rounds: int, orders=DEFAULT_ORDERS,
                      subsampling: str = "zhu-wang", **config) -> DDGaussPlan:
    """The plan with the smallest noise multiplier (to 1e-4 relative) whose epsilon after
    ``rounds`` rounds, each with only ``n_min`` survivors, is <= ``epsilon`` at ``delta``.
    Extra keywords go to :class:`DDGaussConfig`. Raises ``ValueError`` if no noise
    multiplier up to 1e4 meets the target; ``UnsupportedParameters`` as :meth:`DDGaussConfig.plan`."""
    epsilon, delta = float(epsilon), float(delta)
    if not (epsilon > 0 and math.isfinite(epsilon)) or not 0 < delta < 1:
        raise ValueError("need epsilon > 0 and 0 < delta < 1")

    def plan_for(z: float) -> DDGaussPlan:
        return DDGaussConfig(dim=dim, clip=clip, noise_multiplier=z, n_min=n_min, n_max=n_max, **config).plan()

    def ok(z: float) -> tuple[bool, DDGaussPlan]:
        p = plan_for(z)
        return p.epsilon(rounds, sample_rate, delta, orders=orders, subsampling=subsampling) <= epsilon, p

    lo, hi = 1e-3, 1.0
    good, plan = ok(hi)
    while not good:
        lo, hi = hi, hi * 4
        if hi > 1e4:
            raise ValueError("no noise multiplier up to 1e4 meets the target epsilon")
        good, plan = ok(hi)
    while hi / lo > 1 + 1e-4:
        mid = math.sqrt(lo * hi)
        g, p = ok(mid)
        if g:
            hi, plan = mid, p
        else:
            lo = mid
    return plan
