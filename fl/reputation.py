"""Client reputation across rounds: down-weight, then exclude, clients whose updates keep
disagreeing with the robust aggregate.

The rule (all parameters are constructor arguments):

1. **Evidence** ``g_k ∈ [0, 1]`` for each client ``k`` that sent an update this round:

   * ``metric="cosine"`` (default): ``g = clip(cos_k / median_j cos_j, 0, 1) ·
     min(1, norm_tolerance / (‖u_k‖ / median_j ‖u_j‖))`` with ``cos_k`` the cosine between
     ``u_k`` and the round's robust aggregate. Relative to the round's median cosine, so that
     honest but non-IID clients (whose cosines are all low) keep ``g ≈ 1``; the norm factor
     catches scaling attacks, whose direction is honest.
   * ``metric="distance"``: ``g = min(1, distance_tolerance · median_j δ_j / δ_k)`` with
     ``δ_k = ‖u_k - aggregate‖``.
   * :meth:`update_from_distances`: the same from a matrix of pairwise squared distances and
     the selected clients only (what the ``spdz-krum`` backend opens; no individual update
     is needed): ``δ_k`` = mean squared distance to the selected clients (itself excluded).
   * optional ``validation(update) -> loss`` (a callable the server passes, e.g. the loss of
     ``model + update`` on a server-held validation set; losses must be >= 0): with
     ``limit = (1 + validation_tolerance) · median_j loss_j``, the evidence is multiplied by
     1 when ``loss_k <= limit`` and by ``limit / loss_k`` otherwise. Relative to the round's
     median client, not to the aggregate (a single honest update is noisier than the
     aggregate of many).

2. **Score**: ``s_k <- decay · s_k + (1 - decay) · g_k``, starting at ``initial``.
3. **Weight**: excluded -> 0; ``s_k >= down_weight_below`` -> 1; otherwise
   ``s_k / down_weight_below`` (down-weighted).
4. **Exclusion**: after at least ``min_rounds`` observations of client ``k``,
   ``s_k < exclude_below`` excludes it (sticky unless ``sticky=False``).

A round whose evidence is undefined (aggregate of norm 0, median cosine <= 0, median
distance 0) changes no score and is counted in ``skipped_rounds``: loud, never silent.

Failure modes (read before relying on it):

* It trusts the aggregate. If the robust rule is captured (attackers in majority, or
  ALIE / IPM accepted by Krum or the median), the attackers look normal and honest clients
  that disagree are the ones down-weighted.
* Attacks that stay inside the honest spread (ALIE with small z, IPM with small ε) give
  near-honest evidence and are not excluded; reputation is for gross, persistent attackers
  (sign flip, scaling, noise).
* Honest outliers (very non-IID data, a faulty sensor) that disagree every round are
  excluded too: false positives grow with heterogeneity. ``min_rounds`` and the
  median-relative evidence limit this, they do not remove it.
* Sticky exclusion never forgives; ``sticky=False`` lets a client back in but lets an
  on-off attacker rebuild its score by behaving between attacks.
* Identities: a new client id starts at ``initial``; a Sybil attacker that rejoins under new
  ids is not remembered (lower ``initial`` to make newcomers earn trust).
* Secure aggregation: with ``masking`` / ``ckks`` the server never sees individual updates,
  so only :meth:`update_from_distances` with ``spdz-krum``'s opened distances applies.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

__all__ = ["Reputation"]


class Reputation:
    """Per-client reputation scores updated every round (rule and failure modes in the
    module docstring). ``excluded``: the set of excluded client ids. ``scores``: id -> score.
    ``history``: one dict per round (``round``, ``evidence``, ``scores``, ``excluded``)."""

    def __init__(self, *, metric: str = "cosine", decay: float = 0.6, initial: float = 1.0,
                 down_weight_below: float = 0.6, exclude_below: float = 0.3, min_rounds: int = 3,
                 norm_tolerance: float = 2.0, distance_tolerance: float = 2.0,
                 validation: Callable[[np.ndarray], float] | None = None,
                 validation_tolerance: float = 0.5, sticky: bool = True):
        if metric not in ("cosine", "distance"):
            raise ValueError(f"metric must be 'cosine' or 'distance', got {metric!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError("decay must be in [0, 1)")
        if not 0.0 <= exclude_below <= down_weight_below <= 1.0:
            raise ValueError("need 0 <= exclude_below <= down_weight_below <= 1")
        if not 0.0 < initial <= 1.0:
            raise ValueError("initial must be in (0, 1]")
        for nm, v in (("norm_tolerance", norm_tolerance), ("distance_tolerance", distance_tolerance),
                      ("validation_tolerance", validation_tolerance)):
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{nm} must be positive and finite")
        if int(min_rounds) < 1:
            raise ValueError("min_rounds must be >= 1")
        if validation is not None and not callable(validation):
            raise TypeError("validation must be a callable update -> loss")
        self.metric, self.decay, self.initial = metric, float(decay), float(initial)
        self.down_weight_below, self.exclude_below = float(down_weight_below), float(exclude_below)
        self.min_rounds, self.sticky = int(min_rounds), bool(sticky)
        self.norm_tolerance, self.distance_tolerance = float(norm_tolerance), float(distance_tolerance)
        self.validation, self.validation_tolerance = validation, float(validation_tolerance)
        self.scores: dict[int, float] = {}
        self.observations: dict[int, int] = {}
        self.excluded: set[int] = set()
        self.skipped_rounds = 0
        self.history: list[dict] = []
        self._last_round: int | None = None

    # -- reading ------------------------------------------------------------------------
    def score(self, cid: int) -> float:
        """Current score of ``cid`` (``initial`` if never seen)."""
        return self.scores.get(int(cid), self.initial)

    def weights(self, client_ids: Iterable[int]) -> dict[int, float]:
        """Multiplicative weight in [0, 1] for each id: 0 if excluded, 1 at or above
        ``down_weight_below``, ``score / down_weight_below`` in between. The server multiplies
        its aggregation weights by these and drops the zeros."""
        out = {}
        for cid in client_ids:
            cid = int(cid)
            s = self.score(cid)
            if cid in self.excluded:
                out[cid] = 0.0
            elif s >= self.down_weight_below or self.down_weight_below == 0.0:
                out[cid] = 1.0
            else:
                out[cid] = s / self.down_weight_below
        return out

    # -- updating -----------------------------------------------------------------------
    def update(self, round: int, client_ids, updates, aggregate) -> dict[int, float]:
        """Fold round ``round``'s evidence in: ``updates`` (K, d) in the order of
        ``client_ids``, ``aggregate`` (d,) the robust aggregate of the round. Returns the
        evidence ``{id: g}`` (empty for a skipped round). ``ValueError`` on shape mismatch,
        repeated ids, or a round number not after the previous one."""
        ids, u = self._ids_and_rows(client_ids, updates)
        a = np.asarray(aggregate, dtype=np.float64).reshape(-1)
        if a.shape != (u.shape[1],) or not np.all(np.isfinite(a)):
            raise ValueError(f"aggregate must be a finite vector of length {u.shape[1]}")
        norms = np.linalg.norm(u, axis=1)
        an = float(np.linalg.norm(a))
        if self.metric == "cosine":
            if an == 0.0:
                return self._skip(round, "aggregate has norm 0")
            cos = (u @ a) / (np.maximum(norms, np.finfo(float).tiny) * an)
            med = float(np.median(cos))
            if med <= 0.0:
                return self._skip(round, "median cosine <= 0")
            g = np.clip(cos / med, 0.0, 1.0)
            mn = float(np.median(norms))
            if mn > 0:
                g = g * np.minimum(1.0, self.norm_tolerance / np.maximum(norms / mn, np.finfo(float).tiny))
        else:
            dist = np.linalg.norm(u - a, axis=1)
            g = self._from_distance(dist)
            if g is None:
                return self._skip(round, "median distance is 0")
        if self.validation is not None:
            g = g * self._validation_factor(u)
        return self._fold(round, ids, g)

    def update_from_distances(self, round: int, client_ids, distances, selected) -> dict[int, float]:
        """Evidence from a (K, K) matrix of *squared* pairwise distances between the clients
        ``client_ids`` and the ids ``selected`` by Krum (e.g. ``spdz-krum``'s
        ``stats["distance_clients"]``, ``stats["distances"]``, ``stats["selected"]``): for
        each client, ``δ_k`` = mean squared distance to the selected clients other than
        itself, then the ``distance`` rule. No individual update is needed."""
        ids = [int(c) for c in client_ids]
        d = np.asarray(distances, dtype=np.float64)
        if d.shape != (len(ids), len(ids)) or not np.all(np.isfinite(d)):
            raise ValueError("distances must be a finite (K, K) matrix matching client_ids")
        pos = {c: i for i, c in enumerate(ids)}
        sel = [pos[int(c)] for c in selected if int(c) in pos]
        if not sel:
            raise ValueError("selected names none of client_ids")
        delta = np.empty(len(ids))
        for i in range(len(ids)):
            others = [j for j in sel if j != i]
            delta[i] = d[i, others].mean() if others else 0.0
        g = self._from_distance(np.sqrt(np.maximum(delta, 0.0)))
        if g is None:
            return self._skip(round, "median distance is 0")
        return self._fold(round, ids, g)

    # -- internals ----------------------------------------------------------------------
    def _ids_and_rows(self, client_ids, updates):
        ids = [int(c) for c in client_ids]
        if len(set(ids)) != len(ids):
            raise ValueError("client_ids must be distinct")
        u = np.asarray(updates, dtype=np.float64)
        if u.ndim != 2 or u.shape[0] != len(ids):
            raise ValueError(f"updates must be ({len(ids)}, d), got {u.shape}")
        if not np.all(np.isfinite(u)):
            raise ValueError("updates contain NaN or Inf")
        return ids, u

    def _from_distance(self, dist: np.ndarray):
        med = float(np.median(dist))
        if med == 0.0:
            return None
        limit = self.distance_tolerance * med
        g = np.ones_like(dist)
        far = dist > limit
        g[far] = limit / dist[far]
        return g

    def _validation_factor(self, u: np.ndarray) -> np.ndarray:
        losses = np.array([float(self.validation(row)) for row in u])
        if not np.all(np.isfinite(losses)) or np.any(losses < 0):
            raise ValueError("validation must return finite, non-negative losses")
        limit = (1.0 + self.validation_tolerance) * float(np.median(losses))
        g = np.ones_like(losses)
        bad = losses > limit
        g[bad] = limit / losses[bad]
        return g

    def _check_round(self, round) -> int:
        r = int(round)
        if self._last_round is not None and r <= self._last_round:
            raise ValueError(f"round {r} is not after round {self._last_round}")
        self._last_round = r
        return r

    def _skip(self, round, why: str) -> dict:
        r = self._check_round(round)
        self.skipped_rounds += 1
        self.history.append({"round": r, "skipped": why, "evidence": {}, "scores": dict(self.scores),
                             "excluded": sorted(self.excluded)})
        return {}

    def _fold(self, round, ids, g) -> dict[int, float]:
        r = self._check_round(round)
        evidence = {c: float(v) for c, v in zip(ids, g)}
        for c, v in evidence.items():
            s = self.decay * self.scores.get(c, self.initial) + (1.0 - self.decay) * v
            self.scores[c] = s
            self.observations[c] = self.observations.get(c, 0) + 1
            if self.observations[c] >= self.min_rounds and s < self.exclude_below:
                self.excluded.add(c)
            elif not self.sticky and s >= self.exclude_below:
                self.excluded.discard(c)
        self.history.append({"round": r, "evidence": evidence, "scores": dict(self.scores),
                             "excluded": sorted(self.excluded)})
        return evidence
