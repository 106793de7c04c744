"""Byzantine-robust aggregation rules: pure numpy functions on a (K, d) array of updates.

Every function takes ``updates``, a float array of shape ``(K, d)`` (one client update per
row, K >= 1, finite) and returns float64. ``n`` below is ``K`` and ``f`` the number of
Byzantine (arbitrarily malicious, possibly colluding and omniscient) clients a rule is asked
to tolerate.

Breakdown points and assumptions (what each rule guarantees when at most ``f`` of the ``n``
rows are Byzantine, and where it stops):

=================  ===========================  ========================================
rule               needs                        guarantee / breakdown
=================  ===========================  ========================================
weighted mean      nothing                      breakdown 0: one client moves it anywhere
coordinate median  f < n/2                      each coordinate within the honest values'
                                                [min, max] of that coordinate
trimmed mean (β)   f <= floor(β·n), β < 1/2     same per-coordinate guarantee
Krum               n >= 2f + 3                  selects a row whose score (sum of squared
                                                distances to its n-f-2 nearest rows) is at
                                                most an honest row's; against far outliers
                                                it selects an honest row (Blanchard et al.
                                                2017)
Multi-Krum (m)     n >= 2f + 3, 1 <= m <= n-f   mean of the m best-scored rows
Bulyan             n >= 4f + 3                  Krum-selects θ = n - 2f rows, then per
                                                coordinate averages the β = θ - 2f values
                                                closest to the median (El Mhamdi et al.
                                                2018)
centered clipping  a center close to the        each row moves the result by at most
                   honest mean, τ               τ/n per iteration (Karimireddy et al. 2021)
norm bound         f < n/2 (median norm)        each row is scaled to at most
                                                multiple × median norm; bounds a scaling
                                                attack, not a direction attack
=================  ===========================  ========================================

Known limits (the literature's own attacks): "a little is enough" (Baruch et al. 2019) and
inner-product manipulation (Xie et al. 2020) stay inside the honest spread and defeat
median, trimmed mean and Krum with few attackers; see docs/robust.md. Ties in Krum scores
are broken towards the lower row index (stable sort), so results are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "weighted_mean",
    "coordinate_median",
    "trimmed_mean",
    "krum_scores",
    "krum_scores_from_distances",
    "krum_select",
    "krum",
    "bulyan",
    "centered_clipping",
    "norm_bound",
    "robust_aggregate",
    "RobustResult",
    "AGGREGATORS",
    "secure_backend_for",
]

#: Names accepted by :func:`robust_aggregate`.
AGGREGATORS = ("fedavg", "median", "trimmed", "krum", "multikrum", "bulyan", "centered_clip", "normbound")


def _check_updates(updates) -> np.ndarray:
    arr = np.asarray(updates, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"updates must be a (K, d) array, got shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError("updates must hold at least one row")
    if not np.all(np.isfinite(arr)):
        raise ValueError("updates contain NaN or Inf")
    return arr


def _check_weights(weights, k: int) -> np.ndarray:
    if weights is None:
        return np.ones(k)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (k,):
        raise ValueError(f"weights must have length {k}, got {w.shape[0]}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("weights must be positive and finite")
    return w


def _check_f(f, n: int, rule: str, per_f: int = 0, plus: int = 0) -> int:
    """Validate ``f`` and require ``n >= per_f·f + plus`` (a rule's breakdown condition)."""
    if isinstance(f, bool) or not isinstance(f, (int, np.integer, float)) or int(f) != f or f < 0:
        raise ValueError(f"f must be a non-negative integer, got {f!r}")
    f = int(f)
    need = per_f * f + plus
    if n < need:
        raise ValueError(f"{rule} with f={f} needs n >= {need} updates, got n={n}")
    return f


def weighted_mean(updates, weights=None) -> np.ndarray:
    """``Σ w_k x_k / Σ w_k`` (default weights 1). Breakdown point 0: no robustness."""
    arr = _check_updates(updates)
    w = _check_weights(weights, arr.shape[0])
    return (w @ arr) / w.sum()


def coordinate_median(updates) -> np.ndarray:
    """Coordinate-wise median (Yin et al. 2018). With ``f < n/2`` Byzantine rows, every
    coordinate lies within the honest rows' [min, max] for that coordinate. Even ``n``:
    the mean of the two middle values."""
    return np.median(_check_updates(updates), axis=0)


def _trim_count(beta: float, n: int) -> int:
    if not (0.0 <= float(beta) < 0.5):
        raise ValueError(f"beta must be in [0, 0.5), got {beta!r}")
    k = int(np.floor(float(beta) * n + 1e-9))
    if n - 2 * k < 1:
        raise ValueError(f"trimming {k} of {n} rows on each side leaves nothing")
    return k


def trimmed_mean(updates, beta: float) -> np.ndarray:
    """Coordinate-wise β-trimmed mean (Yin et al. 2018): per coordinate, drop the
    ``k = floor(β·n)`` largest and ``k`` smallest values and average the rest. With at most
    ``k`` Byzantine rows each coordinate stays within the honest rows' [min, max]."""
    arr = _check_updates(updates)
    n = arr.shape[0]
    k = _trim_count(beta, n)
    if k == 0:
        return arr.mean(axis=0)
    return np.sort(arr, axis=0)[k: n - k].mean(axis=0)


def _sq_distances(arr: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances, via the Gram matrix, clamped at 0."""
    sq = np.einsum("ij,ij->i", arr, arr)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (arr @ arr.T)
    np.fill_diagonal(d2, 0.0)
    return np.maximum(d2, 0.0)


def krum_scores_from_distances(dist, f: int) -> np.ndarray:
    """Krum scores from a symmetric (n, n) matrix of squared distances: for each row, the
    sum of its ``n - f - 2`` smallest distances to the *other* rows. Needs n >= 2f + 3."""
    d = np.asarray(dist, dtype=np.float64)
    n = d.shape[0]
    if d.shape != (n, n):
        raise ValueError("distance matrix must be square")
    f = _check_f(f, n, "Krum", 2, 3)
    k = n - f - 2
    off = d + np.diag(np.full(n, np.inf))  # never count a row as its own neighbour
    return np.sort(off, axis=1)[:, :k].sum(axis=1)


def krum_scores(updates, f: int) -> np.ndarray:
    """Krum score of every row (Blanchard et al. 2017): the sum of squared distances to its
    ``n - f - 2`` nearest other rows. ``ValueError`` unless ``n >= 2f + 3``."""
    arr = _check_updates(updates)
    return krum_scores_from_distances(_sq_distances(arr), f)


def krum_select(dist, f: int, m: int = 1) -> np.ndarray:
    """Indices (sorted) of the ``m`` rows with the lowest Krum scores on a squared-distance
    matrix; ties go to the lower index (stable sort). Needs ``1 <= m <= n - f``."""
    scores = krum_scores_from_distances(dist, f)
    n = scores.shape[0]
    if isinstance(m, bool) or int(m) != m or not 1 <= int(m) <= n - int(f):
        raise ValueError(f"m must be an integer in [1, n - f] = [1, {n - int(f)}], got {m!r}")
    return np.sort(np.argsort(scores, kind="stable")[: int(m)])


def krum(updates, f: int, m: int = 1, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Krum (``m = 1``) or Multi-Krum (``m > 1``, Blanchard et al. 2017 / El Mhamdi et al.
    2018): score every row by :func:`krum_scores`, select the ``m`` best and return
    ``(weighted mean of the selected rows, sorted selected indices)``. With ``m = 1`` the
    aggregate is the selected row itself. ``ValueError`` unless ``n >= 2f + 3`` and
    ``1 <= m <= n - f``."""
    arr = _check_updates(updates)
    w = _check_weights(weights, arr.shape[0])
    sel = krum_select(_sq_distances(arr), f, m)
    return (w[sel] @ arr[sel]) / w[sel].sum(), sel


def bulyan(updates, f: int, *, return_selected: bool = False):
    """Bulyan (El Mhamdi, Guerraoui, Rouault 2018) on top of Krum. Needs ``n >= 4f + 3``.

    1. Selection: θ = n - 2f times, pick the Krum winner among the remaining rows and
       remove it (scores use ``max(1, n' - f - 2)`` neighbours among the ``n'`` remaining:
       the last picks have fewer rows than Krum's own condition, as in the paper's
       recursive definition).
    2. Aggregation: per coordinate, average the β = θ - 2f selected values closest to the
       selected values' median.

    Returns the aggregate, or ``(aggregate, sorted selected indices)`` with
    ``return_selected``."""
    arr = _check_updates(updates)
    n = arr.shape[0]
    f = _check_f(f, n, "Bulyan", 4, 3)
    theta = n - 2 * f
    dist = _sq_distances(arr)
    remaining = list(range(n))
    selected = []
    for _ in range(theta):
        r = len(remaining)
        if r == 1:
            pick = 0
        else:
            sub = dist[np.ix_(remaining, remaining)] + np.diag(np.full(r, np.inf))
            k = max(1, r - f - 2)
            scores = np.sort(sub, axis=1)[:, :k].sum(axis=1)
            pick = int(np.argsort(scores, kind="stable")[0])
        selected.append(remaining.pop(pick))
    sel = np.sort(np.array(selected))
    beta = theta - 2 * f
    vals = arr[sel]
    med = np.median(vals, axis=0)
    order = np.argsort(np.abs(vals - med), axis=0, kind="stable")[:beta]
    agg = np.take_along_axis(vals, order, axis=0).mean(axis=0)
    return (agg, sel) if return_selected else agg


def centered_clipping(updates, center, tau: float, iters: int = 1, weights=None) -> np.ndarray:
    """Centered clipping (Karimireddy, He, Jaggi, ICML 2021): starting from ``center``
    (in the paper the previous round's aggregate / momentum), repeat ``iters`` times
    ``v <- v + Σ w_k (x_k - v)·min(1, τ/‖x_k - v‖) / Σ w_k``. Each row moves ``v`` by at
    most ``τ·w_k/Σw`` per iteration, so ``f`` Byzantine rows move it by at most
    ``f·τ/n`` (equal weights) whatever they send. Its quality depends on the center:
    a center far from the honest mean needs more iterations or a larger ``τ``."""
    arr = _check_updates(updates)
    w = _check_weights(weights, arr.shape[0])
    v = np.asarray(center, dtype=np.float64).reshape(-1)
    if v.shape != (arr.shape[1],) or not np.all(np.isfinite(v)):
        raise ValueError(f"center must be a finite vector of length {arr.shape[1]}")
    if not (np.isfinite(tau) and tau > 0):
        raise ValueError("tau must be positive and finite")
    if isinstance(iters, bool) or int(iters) != iters or iters < 1:
        raise ValueError("iters must be a positive integer")
    for _ in range(int(iters)):
        diff = arr - v
        norms = np.linalg.norm(diff, axis=1)
        scale = np.minimum(1.0, tau / np.maximum(norms, np.finfo(float).tiny))
        v = v + (w * scale) @ diff / w.sum()
    return v


def norm_bound(updates, multiple: float = 1.0) -> tuple[np.ndarray, int]:
    """Scale each row down to at most ``multiple × median row norm`` (rows already within
    are unchanged). Returns ``(clipped rows, number of rows scaled)``. With fewer than half
    Byzantine rows, the median norm is bracketed by honest norms, so a scaling / model-
    replacement attacker is reduced to a bounded contribution; a direction attack
    (sign flip, ALIE, IPM) of honest size passes unchanged."""
    arr = _check_updates(updates)
    if not (np.isfinite(multiple) and multiple > 0):
        raise ValueError("multiple must be positive and finite")
    norms = np.linalg.norm(arr, axis=1)
    limit = float(multiple) * float(np.median(norms))
    over = norms > limit
    out = arr.copy()
    if limit == 0.0:
        out[over] = 0.0
    else:
        out[over] *= (limit / norms[over])[:, None]
    return out, int(over.sum())


@dataclass
class RobustResult:
    """What :func:`robust_aggregate` returns: the aggregate ``mean`` (shape ``(d,)``),
    ``selected`` (sorted indices of the rows that contributed; all rows for rules that use
    every row) and ``info`` (rule-specific: scores, counts of clipped rows, parameters)."""

    mean: np.ndarray
    selected: np.ndarray
    info: dict = field(default_factory=dict)


def robust_aggregate(name: str, updates, weights=None, *, f: int = 0, **params) -> RobustResult:
    """Dispatch to one rule by ``name`` (one of :data:`AGGREGATORS`).

    Parameters per rule (``params``): ``trimmed``: ``beta`` (default ``f/n``, i.e. trim
    exactly ``f`` per side); ``krum``: ``m`` is 1; ``multikrum``: ``m`` (default ``n - f``);
    ``centered_clip``: ``center`` (default the coordinate median), ``tau`` (default the
    median distance of the rows to the center), ``iters`` (default 3); ``normbound``:
    ``multiple`` (default 1.0). ``median`` and ``bulyan`` and ``trimmed`` ignore
    ``weights`` (``info["weights_ignored"]``). Raises ``ValueError`` for an unknown name,
    an unknown parameter, or an impossible ``(n, f)`` (e.g. Krum with ``n < 2f + 3``)."""
    if name not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {name!r}; known: {', '.join(AGGREGATORS)}")
    arr = _check_updates(updates)
    n = arr.shape[0]
    w = _check_weights(weights, n)
    f = _check_f(f, n, name)
    allowed = {"fedavg": set(), "median": set(), "trimmed": {"beta"}, "krum": set(),
               "multikrum": {"m"}, "bulyan": set(), "centered_clip": {"center", "tau", "iters"},
               "normbound": {"multiple"}}[name]
    extra = set(params) - allowed
    if extra:
        raise ValueError(f"aggregator {name!r} takes no parameter(s) {sorted(extra)}")
    everyone = np.arange(n)
    info = {"rule": name, "f": f, "n": n}
    if name in ("median", "trimmed", "bulyan") and weights is not None:
        info["weights_ignored"] = True
    if name in ("median", "trimmed") and 2 * f >= n:
        raise ValueError(f"{name} tolerates f < n/2 Byzantine updates; got f={f}, n={n}")
    if name == "fedavg":
        return RobustResult(weighted_mean(arr, w), everyone, info)
    if name == "median":
        return RobustResult(coordinate_median(arr), everyone, info)
    if name == "trimmed":
        beta = params.get("beta", f / n)
        info["trimmed_per_side"] = _trim_count(beta, n)
        if info["trimmed_per_side"] < f:
            raise ValueError(f"beta={beta} trims {info['trimmed_per_side']} per side, fewer than f={f}")
        return RobustResult(trimmed_mean(arr, beta), everyone, info)
    if name in ("krum", "multikrum"):
        m = 1 if name == "krum" else params.get("m", n - f)
        _check_f(f, n, "Krum", 2, 3)
        scores = krum_scores(arr, f)
        mean, sel = krum(arr, f, m, w)
        info.update(m=int(m), scores=scores)
        return RobustResult(mean, sel, info)
    if name == "bulyan":
        mean, sel = bulyan(arr, f, return_selected=True)
        return RobustResult(mean, sel, info)
    if name == "centered_clip":
        center = params.get("center")
        center = coordinate_median(arr) if center is None else np.asarray(center, dtype=np.float64)
        tau = params.get("tau")
        if tau is None:
            tau = float(np.median(np.linalg.norm(arr - center, axis=1)))
            if tau == 0.0:  # every row at the center: nothing to clip
                tau = 1.0
        iters = params.get("iters", 3)
        info.update(tau=float(tau), iters=int(iters))
        return RobustResult(centered_clipping(arr, center, tau, iters, w), everyone, info)
    # normbound
    clipped, count = norm_bound(arr, params.get("multiple", 1.0))
    info.update(clipped=count, multiple=float(params.get("multiple", 1.0)))
    return RobustResult(weighted_mean(clipped, w), everyone, info)


#: Rules that need every individual update in the clear.
_NEEDS_INDIVIDUAL = ("median", "trimmed", "bulyan", "centered_clip")


def secure_backend_for(backend: str, aggregator: str) -> str:
    """The secure-aggregation backend that runs ``aggregator`` under ``backend``, or a
    ``ValueError`` that names the secure alternatives (DESIGN.md, honest composition).

    * ``plain``: every rule (the server sees each update) -> ``"plain"``.
    * ``fedavg`` with any backend -> that backend.
    * ``masking`` / ``ckks`` hide individual updates: any robust rule is an error.
    * ``spdz``: ``krum`` / ``multikrum`` -> ``"spdz-krum"`` (distances on shares, only the
      distance matrix opened); ``normbound`` -> ``"spdz"`` with its range-proved absolute
      ``norm_bound`` (the caller chooses the bound; the median norm is not known on shares);
      median, trimmed mean, Bulyan and centered clipping -> error (they need the updates)."""
    if aggregator not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {aggregator!r}; known: {', '.join(AGGREGATORS)}")
    if backend == "plain" or aggregator == "fedavg":
        return backend
    alternatives = ("secure alternatives: --backend spdz with --aggregator krum or multikrum "
                    "(Krum on SPDZ shares, only the pairwise distances are opened), or --backend "
                    "spdz with a norm bound (range-proved in MPC, only each squared norm is opened)")
    if backend in ("masking", "ckks"):
        raise ValueError(f"aggregator {aggregator!r} needs individual updates, which the {backend!r} "
                         f"backend never reveals; {alternatives}")
    if backend == "spdz":
        if aggregator in ("krum", "multikrum"):
            return "spdz-krum"
        if aggregator == "normbound":
            return "spdz"
        raise ValueError(f"aggregator {aggregator!r} cannot run on SPDZ shares (it needs secure "
                         f"comparisons of every coordinate); {alternatives}")
    raise ValueError(f"unknown backend {backend!r}")
