"""Round parameters of the masking protocol: the SecAgg+ choice of degree and threshold,
the public neighbour graph, and the round configuration a server announces.

Parameter derivation (after Bell et al., CCS 2020, "Secure Single-Server Aggregation with
(Poly)Logarithmic Overhead", section 3; stated for this implementation). Inputs: ``n``
clients, a corruption rate ``gamma`` (the fraction of clients that may collude with the
server), a dropout rate ``delta`` (each client independently drops with this probability),
a statistical security level ``sigma`` and a correctness level ``eta`` (bits). Each
client's k neighbours lie on a ring lattice over a uniformly random ordering, so the number
of corrupt (dropped) neighbours of a client is hypergeometric, whose tails are bounded by
the binomial tails Bin(k, gamma) (Bin(k, delta)) used below (Hoeffding, 1963).

* Security: an honest client's secrets (self-mask seed and mask key) stay hidden unless at
  least ``t`` of its share holders collude. With the client-side check of
  :mod:`.client` (a client sends its masked input and answers unmasking only while at
  least t of its *other* neighbours are still in the round), fewer than t corrupt
  neighbours also leave every honest survivor at least one honest surviving neighbour, so
  the server cannot isolate it. Requirement: ``n * P[Bin(k, gamma) >= t] <= 2^-sigma``.
  In the authenticated mode a server that shows two views of the survivor set must find
  t signers of each among a client's k+1 holders; honest holders sign once, so this is
  impossible when ``2t > k + 1 + c`` with c corrupt holders. Requirement there:
  ``n * P[Bin(k, gamma) >= min(t, 2t - k - 1)] <= 2^-sigma``.
* Correctness: the round completes when every client has at least t surviving other
  neighbours. Requirement: ``n * P[Bin(k, 1 - delta) < t] <= 2^-eta``.

:func:`secagg_plus_parameters` takes the smallest even k below n-1 for which some t meets
both (then t in the middle of the feasible interval, rounded up, so that the round
tolerates some dropout beyond delta and some corruption beyond gamma); if none does, the
complete graph (k = n-1), where the counts are deterministic: at most ``floor(gamma n)``
corrupt clients and ``floor(delta n)`` dropped ones, so t must exceed the corrupt count and
``t <= n - 1 - floor(delta n)``. Both failure terms are union bounds over the n clients.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import numpy as np

from privcrypt.encoding import Quantizer
from privcrypt.exceptions import MalformedInput, UnsupportedParameters
from privcrypt.secagg.masking.common import MAX_DIM

#: Defaults of the SecAgg+ parameter choice (see the module docstring).
CORRUPTION, DROPOUT, SIGMA, ETA = 0.05, 0.3, 40, 20


@dataclass(frozen=True)
class SecAggPlusParameters:
    """``degree`` k, ``threshold`` t, and the union bounds ``p_security`` (some honest
    client's secrets reconstructible, or isolatable, by the corrupt clients) and
    ``p_failure`` (the round aborts because some neighbourhood lost too many clients)
    under the stated corruption and dropout rates; 0.0 for the complete graph, where the
    stated rates are worst-case counts."""

    degree: int
    threshold: int
    p_security: float
    p_failure: float
    corruption: float
    dropout: float


@lru_cache(maxsize=4096)
def _pmf(k: int, p: float) -> tuple[float, ...]:
    if p <= 0.0:
        return (1.0,) + (0.0,) * k
    if p >= 1.0:
        return (0.0,) * k + (1.0,)
    lp, lq = math.log(p), math.log1p(-p)
    return tuple(math.exp(math.lgamma(k + 1) - math.lgamma(i + 1) - math.lgamma(k - i + 1)
                          + i * lp + (k - i) * lq) for i in range(k + 1))


@lru_cache(maxsize=4096)
def _suffix(k: int, p: float) -> tuple[float, ...]:
    pmf, acc, out = _pmf(k, p), 0.0, [0.0] * (k + 2)
    for i in range(k, -1, -1):
        acc += pmf[i]
        out[i] = acc
    return tuple(out)


def _tail_ge(k: int, p: float, t: int) -> float:
    """P[Bin(k, p) >= t]."""
    if t <= 0:
        return 1.0
    return min(1.0, _suffix(k, p)[min(t, k + 1)])


def _interval(k: int, n: int, gamma: float, delta: float, sigma: int, eta: int,
              authenticated: bool) -> tuple[int, int, list[float], list[float]] | None:
    ps, pf, ok = [], [], []
    for t in range(1, k + 2):
        c_need = min(t, 2 * t - k - 1) if authenticated else t
        p_s = 1.0 if c_need < 1 else n * _tail_ge(k, gamma, c_need)
        p_f = n * (1.0 - _tail_ge(k, 1.0 - delta, t))
        ps.append(p_s)
        pf.append(max(0.0, p_f))
        if p_s <= 2.0**-sigma and p_f <= 2.0**-eta and t >= 2:
            ok.append(t)
    if not ok:
        return None
    return ok[0], ok[-1], ps, pf


@lru_cache(maxsize=1024)
def secagg_plus_parameters(n: int, *, corruption: float = CORRUPTION, dropout: float = DROPOUT,
                           sigma: int = SIGMA, eta: int = ETA,
                           authenticated: bool = False) -> SecAggPlusParameters:
    """Degree and threshold for ``n`` clients (see the module docstring for the
    derivation). Raises ``UnsupportedParameters`` when not even the complete graph meets
    the stated rates (e.g. ``corruption + dropout`` too large for n), ``ValueError`` for
    rates outside [0, 1)."""
    n = int(n)
    if n < 1:
        raise ValueError("n must be >= 1")
    if not (0 <= corruption < 1 and 0 <= dropout < 1):
        raise ValueError("corruption and dropout rates must be in [0, 1)")
    if n <= 2:
        return SecAggPlusParameters(max(0, n - 1), 1, 0.0, 0.0, corruption, dropout)
    for k in range(4, n - 1, 2):
        found = _interval(k, n, corruption, dropout, sigma, eta, authenticated)
        if found:
            lo, hi, ps, pf = found
            t = (lo + hi + 1) // 2
            return SecAggPlusParameters(k, t, ps[t - 1], pf[t - 1], corruption, dropout)
    k = n - 1
    c, d = math.floor(corruption * n), math.floor(dropout * n)
    lo = max(2, c + 1, (k + 1 + c) // 2 + 1 if authenticated else 0)
    hi = n - 1 - d
    if lo > hi:
        raise UnsupportedParameters(
            f"{n} clients: no threshold tolerates {d} dropped and {c} corrupt clients"
            + (" in the authenticated mode (needs 2t > n + corrupt)" if authenticated else ""))
    return SecAggPlusParameters(k, (lo + hi + 1) // 2, 0.0, 0.0, corruption, dropout)


def default_degree(n: int, **rates) -> int:
    """Neighbours per client for ``n`` clients: :func:`secagg_plus_parameters` ``.degree``
    (the complete graph, n-1, when no sparser graph meets the stated rates; 66 at 100
    clients and 72 at 1000 with the defaults)."""
    return secagg_plus_parameters(n, **rates).degree


def default_threshold(holders: int, n: int | None = None, **rates) -> int:
    """Shamir threshold t for ``holders = degree + 1`` share holders among ``n`` clients
    (default: the complete graph, ``n = holders``), from :func:`secagg_plus_parameters`.

    Raising t trades dropout tolerance for collusion resistance; it does NOT protect
    against a malicious server by itself (an unauthenticated server can substitute public
    keys whatever t is). Against an active server use ``authenticated=True``, whose
    threshold also satisfies ``2t > holders + corrupt holders``; clients enforce their own
    minimum threshold (``MaskingClient(min_threshold=...)``)."""
    n = holders if n is None else int(n)
    p = secagg_plus_parameters(n, **rates)
    if p.degree + 1 == holders:
        return p.threshold
    return min(holders, max(2, math.ceil(p.threshold * holders / (p.degree + 1))))


def neighbour_graph(ids: Iterable[int], degree: int, round_id: bytes) -> dict[int, frozenset[int]]:
    """A k-regular ring-lattice (Harary) graph on a public pseudo-random ordering of the
    clients: order by SHA-256(round id || id) and join each client to the ``degree/2``
    nearest on either side. ``degree >= n-1`` gives the complete graph; odd degrees below
    n-1 are rounded up to even. The graph is public (no secret randomness); the ordering is
    as random as the round id (drawn by the server)."""
    ids = sorted(int(i) for i in ids)
    n = len(ids)
    if degree >= n - 1:
        return {i: frozenset(j for j in ids if j != i) for i in ids}
    half = (int(degree) + 1) // 2
    order = sorted(ids, key=lambda i: hashlib.sha256(b"privcrypt/secagg/graph" + round_id
                                                     + i.to_bytes(4, "little")).digest())
    nbrs: dict[int, set[int]] = {i: set() for i in ids}
    for pos, i in enumerate(order):
        for j in range(1, half + 1):
            a, b = order[(pos + j) % n], order[(pos - j) % n]
            nbrs[i].update((a, b))
            nbrs[a].add(i)
            nbrs[b].add(i)
    return {i: frozenset(s - {i}) for i, s in nbrs.items()}


class RoundConfig:
    """Public parameters of one round, sent by the server to each client: vector length,
    number of clients, quantization bits, modulus bits, clip, threshold t, degree k, the
    client's weight factor, and whether the round is authenticated. :meth:`decode` checks
    every field and raises ``MalformedInput`` (never another error) on anything out of
    range."""

    _FMT = struct.Struct("<IIBBdIdIB")

    def __init__(self, dim: int, n_clients: int, bits: int, modulus_bits: int, clip: float,
                 threshold: int, weight_factor: float, degree: int = 0,
                 authenticated: bool = False):
        self.dim, self.n_clients, self.bits = int(dim), int(n_clients), int(bits)
        self.modulus_bits, self.clip = int(modulus_bits), float(clip)
        self.threshold, self.weight_factor = int(threshold), float(weight_factor)
        self.degree, self.authenticated = int(degree), bool(authenticated)

    @property
    def dtype(self):
        """Word type of masked vectors (uint32 or uint64)."""
        return np.dtype(np.uint32 if self.modulus_bits == 32 else np.uint64)

    def encode(self) -> bytes:
        """Fixed-size little-endian encoding."""
        return self._FMT.pack(self.dim, self.n_clients, self.bits, self.modulus_bits, self.clip,
                              self.threshold, self.weight_factor, self.degree,
                              int(self.authenticated))

    @classmethod
    def decode(cls, buf: bytes) -> "RoundConfig":
        """Parse and validate; ``MalformedInput`` on any length or range error."""
        if len(buf) != cls._FMT.size:
            raise MalformedInput("bad round configuration length")
        f = cls._FMT.unpack(buf)
        if f[8] not in (0, 1):
            raise MalformedInput("round configuration: bad authenticated flag")
        cfg = cls(*f)
        if (cfg.modulus_bits not in (32, 64) or not 1 <= cfg.bits < min(49, cfg.modulus_bits)
                or not (math.isfinite(cfg.clip) and 0 < cfg.clip < 1e300)
                or not 1 <= cfg.n_clients <= 1 << 24 or not 1 <= cfg.degree < cfg.n_clients + 1
                or not 1 <= cfg.threshold <= cfg.degree + 1
                or not (0 < cfg.weight_factor <= 1) or not 1 <= cfg.dim <= MAX_DIM):
            raise MalformedInput("round configuration out of range")
        try:
            Quantizer(cfg.clip, cfg.bits).check_sum_fits(cfg.n_clients, 2**cfg.modulus_bits)
        except ValueError as exc:
            raise MalformedInput(f"round configuration: {exc}") from None
        return cfg
