"""Client partitioners: IID, Dirichlet label skew, and by natural unit (engine, machine).

Every partitioner returns a list of ``n_clients`` sorted int64 index arrays that are
non-empty, pairwise disjoint and together cover ``range(n)`` exactly once. Shuffling uses
``numpy.random.default_rng(seed)``: data shuffling, not secret material.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Dataset

__all__ = ["partition_iid", "partition_dirichlet", "partition_by_group", "split_clients", "SCHEMES"]

SCHEMES = ("iid", "dirichlet", "unit")


def _check_clients(n_clients: Any, n: int, what: str = "samples") -> int:
    if isinstance(n_clients, bool) or not isinstance(n_clients, (int, np.integer)):
        raise TypeError(f"n_clients must be an int, got {type(n_clients).__name__}")
    if n_clients < 1:
        raise ValueError(f"n_clients must be >= 1, got {n_clients}")
    if n_clients > n:
        raise ValueError(
            f"n_clients={n_clients} exceeds the number of {what} ({n}): "
            "a client would have no data"
        )
    return int(n_clients)


def partition_iid(n: int, n_clients: int, *, seed: int = 0) -> list[np.ndarray]:
    """Shuffle ``range(n)`` and cut it into ``n_clients`` near-equal parts (sizes differ by
    at most one). Raises ``ValueError`` if ``n_clients > n`` or ``n_clients < 1``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    n_clients = _check_clients(n_clients, int(n))
    perm = np.random.default_rng(seed).permutation(int(n))
    return [np.sort(p).astype(np.int64) for p in np.array_split(perm, n_clients)]


def _labels(y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        floats = np.issubdtype(y.dtype, np.floating)
        if not floats or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("partition_dirichlet needs integer class labels (label skew); "
                             "for regression targets use partition_iid or partition_by_group")
        y = y.astype(np.int64)
    return y


def partition_dirichlet(
    y: Any,
    n_clients: int,
    alpha: float,
    *,
    seed: int = 0,
    min_size: int = 10,
    max_tries: int = 100,
) -> list[np.ndarray]:
    """Label-skewed partition (Hsu, Qi, Brown 2019): for each class, draw client
    proportions from Dirichlet(alpha * 1) and deal that class's shuffled examples out in
    those proportions. Small ``alpha`` (0.1) gives strongly skewed clients, large ``alpha``
    (100) nearly IID ones.

    The draw is repeated (up to ``max_tries``) until every client holds at least
    ``min_size`` examples; if that fails, examples are moved from the largest clients to the
    short ones (each move keeps disjointness and cover) until every client has ``min_size``.

    Raises ``ValueError`` for ``alpha <= 0``, ``min_size < 1``, non-integer labels, or
    ``n_clients * min_size > len(y)`` (lower ``min_size`` or use fewer clients).
    """
    y = _labels(y)
    n = len(y)
    n_clients = _check_clients(n_clients, n)
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 1:
        raise ValueError(f"min_size must be an int >= 1, got {min_size!r}")
    if n_clients * min_size > n:
        raise ValueError(
            f"{n_clients} clients x min_size {min_size} = {n_clients * min_size} exceeds the "
            f"{n} examples: lower min_size or n_clients"
        )
    if max_tries < 1:
        raise ValueError(f"max_tries must be >= 1, got {max_tries}")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    best: list[list[int]] | None = None
    for _ in range(max_tries):
        parts: list[list[int]] = [[] for _ in range(n_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(y == c))
            props = rng.dirichlet(np.full(n_clients, float(alpha)))
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(np.int64)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if best is None or min(map(len, parts)) > min(map(len, best)):
            best = parts
        if min(map(len, parts)) >= min_size:
            break
    assert best is not None
    parts = best
    # Rebalance if needed: move random examples from the currently largest client.
    for k in range(n_clients):
        while len(parts[k]) < min_size:
            donor = max(range(n_clients), key=lambda j: len(parts[j]))
            j = int(rng.integers(len(parts[donor])))
            parts[donor][j], parts[donor][-1] = parts[donor][-1], parts[donor][j]
            parts[k].append(parts[donor].pop())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def partition_by_group(groups: Any, n_clients: int, *, seed: int = 0) -> list[np.ndarray]:
    """Give each group (engine unit, machine) wholly to one client.

    Groups are shuffled with ``seed`` and dealt largest-first to the client holding the
    fewest examples so far (ties to the lowest client index), which balances example counts
    while keeping every group on exactly one client. Raises ``ValueError`` if there are
    fewer distinct groups than clients.
    """
    g = np.asarray(groups)
    if g.ndim != 1:
        raise ValueError(f"groups must be 1-D, got shape {g.shape}")
    uniq, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    n_clients = _check_clients(n_clients, len(uniq), what="distinct groups")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-counts[order], kind="stable")]
    load = np.zeros(n_clients, dtype=np.int64)
    owner = np.empty(len(uniq), dtype=np.int64)
    for gi in order:
        k = int(np.argmin(load))
        owner[gi] = k
        load[k] += counts[gi]
    client_of = owner[inverse]
    return [np.flatnonzero(client_of == k).astype(np.int64) for k in range(n_clients)]


def split_clients(
    ds: Dataset,
    n_clients: int,
    scheme: str = "iid",
    alpha: float = 0.5,
    seed: int = 0,
    *,
    min_size: int = 10,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split ``ds``'s training set into ``n_clients`` ``(X, y)`` pairs, the ``clients``
    argument of ``fl.run``.

    ``scheme``: ``"iid"`` (:func:`partition_iid`), ``"dirichlet"`` (label skew with
    ``alpha`` and ``min_size``, classification and anomaly tasks only) or ``"unit"``
    (:func:`partition_by_group` on ``ds.groups_train``; C-MAPSS engines, IIoT machines).
    Raises ``ValueError`` for an unknown scheme or one that does not fit the data set.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown partition scheme {scheme!r}; choose one of {SCHEMES}")
    if scheme == "iid":
        parts = partition_iid(ds.n_train, n_clients, seed=seed)
    elif scheme == "dirichlet":
        if ds.task == "regression":
            raise ValueError(f"scheme 'dirichlet' needs class labels; {ds.name} is a regression "
                             "data set: use 'iid' or 'unit'")
        parts = partition_dirichlet(ds.y_train, n_clients, alpha, seed=seed, min_size=min_size)
    else:
        if ds.groups_train is None:
            raise ValueError(f"scheme 'unit' needs groups; data set {ds.name} has none "
                             "(groups_train is None): use 'iid' or 'dirichlet'")
        parts = partition_by_group(ds.groups_train, n_clients, seed=seed)
    return [(ds.X_train[p], ds.y_train[p]) for p in parts]
