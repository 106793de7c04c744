"""``spdz-krum``: Krum / Multi-Krum on SPDZ shares; only the distance matrix is opened.

No FL framework offers a Byzantine-robust rule under secure aggregation: median, trimmed
mean and Krum all read individual updates. Krum needs only the pairwise squared distances,
and those can be computed on shares. A round, stage by stage:

1. ``setup`` / ``input``: exactly as the ``spdz`` backend (:mod:`privcrypt.secagg.spdz`,
   whose client and compute-party classes are reused): each client secret-shares
   ``encode(clip(x))`` to the ``n_parties`` compute parties through SPDZ's input protocol.
2. ``range_check`` (on by default, ``verify_range=True``): the in-MPC range proof of
   :mod:`privcrypt.mpc.rangeproof` shows every coordinate lies in ``[-B, B]``,
   ``B = ceil(clip·2^f)``. **Krum on shares is unsound without it**: a client can share any
   element of Z_p, e.g. a coordinate ``2^31`` (32768 at 16 bits) whose square is ``2 mod p``,
   so its distances would open small while its update is huge. With the proof, every
   distance is an integer below ``4·d·B² < 2^59`` and opens exactly.
3. ``gram``: the Gram matrix ``G = X·Xᵀ`` of the accepted clients' updates (``X``: K × d) with
   one *matrix* Beaver product (Mohassel–Zhang, SecureML 2017, with ``B = Aᵀ``): the dealer
   deals ``[A]`` (K × d, uniform) and ``[A·Aᵀ]``; the parties open ``D = X - A`` (uniform,
   MAC-checked: K·d elements, not K²·d) and form locally
   ``[G] = [A·Aᵀ] + D·[A]ᵀ + [A]·Dᵀ + D·Dᵀ`` (MAC shares alike; ``D·Dᵀ`` is public). The local
   products are exact modular matrix products on 21-bit limbs through float64 BLAS:
   ``K²·d`` modular multiply-adds per party for its shares and as many for its MAC shares
   (9 float multiply-adds each, one per limb pair), the same order as the
   ``K²/2·d`` products of the pairwise differences, but with ``K·d`` openings instead of
   ``K²·d`` and ``K·d + K²`` preprocessed elements instead of ``K²/2·d`` triples.
4. ``norm_check`` (only with ``norm_bound``): the diagonal ``G_kk = ‖x_k‖²`` is opened
   (MAC-checked) and clients above the bound are left out (``stats["rejected_norm"]``);
   their distances are never opened.
5. ``distances``: ``[Δ_ij] = [G_ii] + [G_jj] - 2[G_ij]`` (local) for the remaining clients;
   the ``K(K-1)/2`` upper-triangle values are opened after the MAC check.
6. ``select``: Krum scores and the selection run in the clear on the opened matrix
   (:func:`krum_select`; ties to the lower client id).
7. ``aggregate``: the weighted sum of the *selected* clients' shares is opened (as in
   ``spdz``); the mean is sum / Σ w.

What is revealed to the compute parties (and to whoever receives ``stats``): the K × K
matrix of squared distances between the accepted clients' (clipped, fixed-point) updates;
with ``norm_bound`` each client's squared norm; which clients were selected; the weighted
mean of the ``m`` selected updates. **With ``m = 1`` (plain Krum) that mean is one client's
whole update**: use Multi-Krum (``m >= 2``, e.g. ``n - f``) when individual updates must
stay hidden (``stats["opened_mean_of"]`` says how many updates the output averages).
**Not revealed**: any individual update (for ``m >= 2``) or coordinate, the Gram matrix's
inner products on their own, the unselected updates. Distances do leak geometry: they fix
the K updates up to a common rotation, reflection and translation (classical MDS); a
coalition that knows some updates (colluding clients' own, or the opened mean) learns every
other update's projection onto the span of the known ones' differences and its distance to
them. The distance matrix is the price of Krum; state it to users.

Threat model: as ``spdz``. The dealer is semi-honest and non-colluding; up to
``n_parties - 1`` compute parties may collude and deviate (malicious with abort: a tampered
share, MAC share or opening raises ``MacCheckFailed``, nothing is released); clients may be
malicious (bounded by the range proof, and then by Krum itself against at most ``f`` of
them); no compute party may drop out. Fewer than ``max(min_clients, 2f + 3)`` accepted
clients -> ``ProtocolAbort``.
"""

from __future__ import annotations

import contextlib
import hmac
import math
import os
import time

import numpy as np

from privcrypt.exceptions import MalformedInput, UnsupportedParameters
from privcrypt.mpc import SpdzEngine, field
from privcrypt.mpc.dealer import OneShot
from privcrypt.mpc.rangeproof import verify_range
from privcrypt.mpc.shares import MAX_ABS_BITS, Shared
from privcrypt.rng import RandomSource
from privcrypt.secagg.base import AggregationResult, check_survivors, validate_round_inputs
from privcrypt.secagg.spdz import DEALER, SpdzAggregator, SpdzClient, SpdzComputeParty, expand_mask
from privcrypt.wire import Message

__all__ = ["SpdzKrumAggregator", "matmul_mod", "gram_on_shares", "sq_distances_on_shares", "krum_select"]

_LIMB, _NLIMB = 21, 3  # three limbs (21, 21, 19 bits) hold a 61-bit residue; products < 2^42
_CHUNK = 1 << 11  # columns per BLAS call: 2^11·(2^21-1)^2 < 2^53, so float64 sums are exact
#: BLAS threads inside :func:`matmul_mod` (``PRIVCRYPT_BLAS_THREADS``, default 1): OpenBLAS
#: workers spin-wait, and on the shared 2-core box two of them ran the product 20x slower
#: than one. Needs ``threadpoolctl`` to take effect (installed with scikit-learn).
BLAS_THREADS = max(1, int(os.environ.get("PRIVCRYPT_BLAS_THREADS", "1")))

try:  # optional: only limits OpenBLAS/MKL threads
    from threadpoolctl import threadpool_limits as _blas_limits
except ImportError:  # pragma: no cover
    _blas_limits = None


def _limbs(a: np.ndarray) -> np.ndarray:
    """(R, c) residues -> (3R, c) float64 limbs, limb-major (limb l of all rows together)."""
    mask = np.uint64((1 << _LIMB) - 1)
    return np.concatenate([((a >> np.uint64(_LIMB * l)) & mask).astype(np.float64) for l in range(_NLIMB)])


def matmul_mod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a·bᵀ mod p`` for residue matrices ``a`` (R, d) and ``b`` (S, d), exactly.

    Each residue is split into three limbs of at most 21 bits; one float64 BLAS product per
    chunk of 2^11 columns multiplies all limb pairs at once (every partial sum is an integer
    below 2^53, so float64 is exact), chunks accumulate in uint64 (exact up to 2^20 columns;
    longer rows go in blocks), and the limb products are recombined mod p with Python
    integers (R·S·9 of them). Cost: 9·R·S·d multiply-adds in BLAS."""
    a, b = np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"matmul_mod needs (R, d) and (S, d), got {a.shape} and {b.shape}")
    if a.shape[1] > 1 << 20:  # keep the uint64 accumulation exact: blocks of 2^20 columns
        parts = [matmul_mod(a[:, lo: lo + (1 << 20)], b[:, lo: lo + (1 << 20)])
                 for lo in range(0, a.shape[1], 1 << 20)]
        return (sum(p.astype(object) for p in parts) % field.P).astype(np.uint64)
    r, s = a.shape[0], b.shape[0]
    acc = np.zeros((_NLIMB * r, _NLIMB * s), dtype=np.uint64)
    ctx = _blas_limits(limits=BLAS_THREADS, user_api="blas") if _blas_limits else contextlib.nullcontext()
    with ctx:
        for lo in range(0, a.shape[1], _CHUNK):
            prod = _limbs(a[:, lo: lo + _CHUNK]) @ _limbs(b[:, lo: lo + _CHUNK]).T
            acc += prod.astype(np.uint64)
    out = np.zeros((r, s), dtype=object)
    for la in range(_NLIMB):
        for lb in range(_NLIMB):
            block = acc[la * r:(la + 1) * r, lb * s:(lb + 1) * s].astype(object)
            out = out + block * (1 << (_LIMB * (la + lb)))
    return (out % field.P).astype(np.uint64)


def gram_pair(dealer, shape) -> OneShot:
    """Dealer: a single-use matrix Beaver pair ``([A], [A·Aᵀ])`` with ``A`` uniform in
    Z_p^(K×d) (both authenticated; the dealer forgets ``A`` in deployment)."""
    batch, a = dealer.input_masks(shape)
    (sa,) = batch.consume()
    return OneShot("gram-pair", (sa, dealer.authenticate(matmul_mod(a, a))))


def gram_on_shares(engine: SpdzEngine, x: Shared, pair: OneShot | None = None) -> Shared:
    """``[X·Xᵀ]`` (K × K, scale ``2·x.frac_bits``, exact) for shared ``x`` of shape (K, d).

    Opens ``D = X - A`` (uniform; folded into the MAC check, checked here) and combines
    locally: party ``i`` holds ``(A·Aᵀ)_i + D·A_iᵀ + A_i·Dᵀ`` (party 0 also ``D·Dᵀ``, which is
    the public MAC offset), MAC shares alike. ``pair``: a pre-dealt :func:`gram_pair`."""
    k, d = x.shape
    bound = x.bound * x.bound * d
    if math.ceil(bound * 2.0 ** (2 * x.frac_bits)).bit_length() > MAX_ABS_BITS:
        raise UnsupportedParameters(f"inner products of {d} values bounded by ±{x.bound} could "
                                    f"overflow Z_p at 2·{x.frac_bits} fractional bits")
    a, aa = (pair if pair is not None else gram_pair(engine.dealer, (k, d))).consume()
    masked = Shared(field.submod(x.shares, a.shares), field.submod(x.macs, a.macs), 0,
                    float(field.P), x.offset)
    dd = engine.open_residues(masked)  # D = X - A, MAC-checked
    n = engine.n_parties
    # one product for every party's D·A_iᵀ, D·M(A)_iᵀ and the public D·Dᵀ (in deployment each
    # party computes its own two blocks and D·Dᵀ)
    both = matmul_mod(dd, np.concatenate([a.shares.reshape(n * k, d), a.macs.reshape(n * k, d), dd]))
    cross = both[:, : 2 * n * k].reshape(k, 2, n, k)
    ddt = np.ascontiguousarray(both[:, 2 * n * k:])
    shares, macs = aa.shares.copy(), aa.macs.copy()
    for i in range(n):
        for tgt, blk in ((shares, cross[:, 0, i, :]), (macs, cross[:, 1, i, :])):
            tgt[i] = field.addmod(tgt[i], field.addmod(blk, np.ascontiguousarray(blk.T)))
    shares[0] = field.addmod(shares[0], ddt)
    engine.stats["gram_elements"] = engine.stats.get("gram_elements", 0) + k * d
    return Shared(shares, macs, 2 * x.frac_bits, bound, ddt)


def sq_distances_on_shares(g: Shared) -> Shared:
    """``[Δ]`` with ``Δ_ij = G_ii + G_jj - 2·G_ij`` from a shared Gram matrix (local, linear;
    MAC shares and the public offset combine alike). Declared bound ``4·max G``."""
    def lin(m):
        diag = np.diagonal(m, axis1=-2, axis2=-1)
        out = field.addmod(np.ascontiguousarray(np.broadcast_to(diag[..., :, None], m.shape)),
                           np.ascontiguousarray(np.broadcast_to(diag[..., None, :], m.shape)))
        return field.submod(out, field.addmod(m, m))
    if math.ceil(4 * g.bound * 2.0**g.frac_bits).bit_length() > MAX_ABS_BITS:
        raise UnsupportedParameters("squared distances could overflow Z_p: lower clip or frac_bits")
    off = None if g.offset is None else lin(g.offset[None])[0]
    return Shared(lin(g.shares), lin(g.macs), g.frac_bits, 4 * g.bound, off)


def krum_select(dist: np.ndarray, f: int, m: int = 1) -> np.ndarray:
    """Indices (sorted) of the ``m`` rows of the squared-distance matrix ``dist`` with the
    lowest Krum scores (sum of the ``n - f - 2`` smallest distances to the other rows); ties
    go to the lower index. The same rule as ``fl.aggregation.krum_select`` (privcrypt does not
    import fl; a test checks they agree). ``ValueError`` unless ``n >= 2f + 3`` and
    ``1 <= m <= n - f``."""
    d = np.asarray(dist, dtype=np.float64)
    n = d.shape[0]
    if d.shape != (n, n):
        raise ValueError("distance matrix must be square")
    if n < 2 * f + 3:
        raise ValueError(f"Krum with f={f} needs n >= {2 * f + 3} clients, got {n}")
    if not 1 <= m <= n - f:
        raise ValueError(f"m must be in [1, n - f] = [1, {n - f}], got {m}")
    scores = np.sort(d + np.diag(np.full(n, np.inf)), axis=1)[:, : n - f - 2].sum(axis=1)
    return np.sort(np.argsort(scores, kind="stable")[:m])


class SpdzKrumAggregator(SpdzAggregator):
    """Krum (``m = 1``) / Multi-Krum (``m > 1``) on SPDZ shares: only the pairwise squared
    distances (and, with ``norm_bound``, each squared norm) are opened; only the weighted
    mean of the selected updates is output. Stages, what is revealed and the threat model
    are in the module docstring.

    Parameters: ``f`` (Byzantine clients to tolerate; a round needs ``>= max(2f + 3, m + f,
    min_clients)`` accepted clients, else ``ProtocolAbort`` naming the stage), ``m`` (clients
    averaged, default 1; **with m = 1 the opened output is the selected client's own update**,
    so prefer ``m >= 2`` when updates are private), ``verify_range`` (default **True**: without the range proof a
    malicious client's shared value is any field element and its distances can wrap mod p,
    so Krum would be unsound), and the ``spdz`` backend's ``n_parties``, ``frac_bits``,
    ``clip``, ``norm_bound``, ``min_clients``, ``rng``, ``record_view``.

    ``stats`` adds: ``selected`` (client ids in the mean), ``distance_clients`` (the ids
    ordering the rows of) ``distances`` (the opened matrix, revealed), ``scores``,
    ``norms_sq`` (with ``norm_bound``: the opened squared norms, revealed),
    ``gram_elements``, ``atol``; and keeps ``clipped``, ``rejected_range``,
    ``rejected_norm``, CPU seconds and byte counts as ``spdz``. The distances are exact on
    the clipped, encoded updates (integers at scale ``2^2f``)."""

    name = "spdz-krum"

    def __init__(self, f: int = 0, m: int = 1, n_parties: int = 3, frac_bits: int = 16,
                 clip: float = 8.0, norm_bound: float | None = None, min_clients: int = 1, *,
                 verify_range: bool = True, rng: RandomSource | None = None, record_view: bool = False):
        if isinstance(f, bool) or int(f) != f or f < 0:
            raise ValueError("f must be a non-negative integer")
        if isinstance(m, bool) or int(m) != m or m < 1:
            raise ValueError("m must be a positive integer")
        super().__init__(n_parties, frac_bits, clip, norm_bound, min_clients,
                         verify_range=verify_range, rng=rng, record_view=record_view)
        self.f, self.m = int(f), int(m)

    def _check_distances_fit(self, dim: int) -> None:
        """Every accepted coordinate is an integer in [-B, B] (range proof), so
        ``Δ <= 4·dim·B² `` must stay below 2^59 to open exactly."""
        if 4 * dim * self.range_bound**2 >= 2**MAX_ABS_BITS:
            raise UnsupportedParameters(
                f"squared distances of {dim} values clipped to ±{self.clip} could overflow Z_p "
                f"at 2·{self.frac_bits} fractional bits; lower clip or frac_bits")

    def aggregate(self, updates, weights=None, dropped=frozenset()) -> AggregationResult:
        upd, w, dropped = validate_round_inputs(updates, weights, dropped)
        dim = next(iter(upd.values())).shape[0]
        self._check_distances_fit(dim)
        n, L, B = self.n_parties, self.range_bits, self.range_bound
        cpu = {"client": {}, "parties": 0.0, "dealer": 0.0}
        up, down, malformed = {}, {}, set()

        def timed(bucket, fn, *args, key=None):
            t0 = time.process_time()
            out = fn(*args)
            dt = time.process_time() - t0
            if key is None:
                cpu[bucket] += dt
            else:
                cpu[bucket][key] = cpu[bucket].get(key, 0.0) + dt
            return out

        round_id = self._rng.bytes(16)
        engine = timed("dealer", lambda: SpdzEngine(n, self.frac_bits, self._rng, bound=self.clip))
        parties = [SpdzComputeParty(j, round_id, dim, L, clients=frozenset(upd)) for j in range(n)]
        clients, seeds = {}, {}
        for cid, x in upd.items():  # stage "setup"
            seeds[cid] = self._rng.bytes(32)
            msg = Message(round_id, "setup", DEALER, cid, seeds[cid]).encode()
            down[cid] = len(msg)
            clients[cid] = SpdzClient(cid, x, self._fp, round_id, range_bound=B if L else None)
            timed("client", clients[cid].receive_setup, msg, key=cid)
        for cid, client in clients.items():  # stage "input"
            if cid in dropped:
                continue
            msgs = timed("client", client.input_messages, n, key=cid)
            up[cid] = sum(len(mm) for mm in msgs)
            for party, mm in zip(parties, msgs):
                try:
                    timed("parties", lambda: party.receive_input(mm, record=self.record_view and party.j == 0))
                except MalformedInput:
                    malformed.add(cid)
        received = sorted(parties[0].inputs)
        consistent = [c for c in received if c not in malformed and
                      all(hmac.compare_digest(p.digests.get(c, b""), parties[0].digests[c]) for p in parties)]
        need = max(self.min_clients, 2 * self.f + 3, self.m + self.f)
        check_survivors(len(consistent), need, "input")

        # stage "range_check": shares of every consistent client, range-proved
        ids, rows, rejected_range = [], [], []
        for cid in consistent:
            mask = expand_mask(seeds[cid], dim * (1 + L))
            masks = timed("dealer", lambda: OneShot("input-mask", (engine.dealer.authenticate(mask[:dim]),)))
            xk = timed("parties", lambda: engine.from_masked_input(
                masks, parties[0].inputs[cid], frac_bits=self.frac_bits, bound=self.clip))
            if L and not self._range_proof(engine, xk, mask[dim:], parties[0].bit_inputs[cid], cid, timed):
                rejected_range.append(cid)
                continue
            ids.append(cid)
            rows.append(xk)
        check_survivors(len(ids), need, "range_check")
        x = _stack(rows)

        # stage "gram", then "norm_check" on its diagonal (only with norm_bound)
        pair = timed("dealer", gram_pair, engine.dealer, x.shape)
        g = timed("parties", gram_on_shares, engine, x, pair)
        rejected_norm, norms_sq = [], None
        if self.norm_bound is not None:
            diag = Shared(np.ascontiguousarray(np.diagonal(g.shares, axis1=1, axis2=2)),
                          np.ascontiguousarray(np.diagonal(g.macs, axis1=1, axis2=2)),
                          g.frac_bits, g.bound, np.ascontiguousarray(np.diagonal(g.offset)))
            opened_norms = timed("parties", engine.open, diag)
            norms_sq = {c: float(v) for c, v in zip(ids, opened_norms)}
            keep = [i for i, v in enumerate(opened_norms) if v <= self.norm_bound**2]
            rejected_norm = [ids[i] for i in range(len(ids)) if i not in keep]
            g = g[np.ix_(keep, keep)]
            ids, rows = [ids[i] for i in keep], [rows[i] for i in keep]
            check_survivors(len(ids), need, "norm_check")

        # stages "distances" (opened) and "select" (in the clear)
        delta = timed("parties", sq_distances_on_shares, g)
        iu = np.triu_indices(len(ids), 1)
        opened = timed("parties", engine.open, delta[iu])
        dist = np.zeros((len(ids), len(ids)))
        dist[iu] = opened
        dist = dist + dist.T
        sel = krum_select(dist, self.f, self.m)
        selected = [ids[i] for i in sel]

        # stage "aggregate": the weighted sum of the selected clients only
        wint, wb = self._integer_weights({c: w[c] for c in selected})
        acc = None
        for i in sel:
            acc = timed("parties", parties[0].weighted_sum, engine, acc, rows[i], wint[ids[i]])
        total = timed("parties", engine.open, acc)
        mean = total / float(sum(wint.values()))
        scores = np.sort(dist + np.diag(np.full(len(ids), np.inf)), axis=1)[:, : len(ids) - self.f - 2].sum(axis=1)
        stats = {
            "client_cpu_s_mean": sum(cpu["client"].values()) / max(1, len(cpu["client"])),
            "client_cpu_s_max": max(cpu["client"].values(), default=0.0),
            "server_cpu_s": cpu["parties"],
            "dealer_cpu_s": cpu["dealer"],
            "bytes_up_max_client": max(up.values(), default=0),
            "bytes_down_max_client": max(down.values(), default=0),
            "clipped": sum(clients[c].clipped for c in received),
            "selected": sorted(selected),
            "distance_clients": ids,
            "distances": dist,
            "scores": scores,
            "norms_sq": norms_sq,
            "rejected_norm": rejected_norm,
            "rejected_range": rejected_range,
            "range_bits": L,
            "inconsistent_clients": sorted(set(received) - set(consistent) - malformed),
            "malformed_clients": sorted(malformed),
            "mac_checks": engine.stats["mac_checks"],
            "triples": engine.stats["triples"],
            "gram_elements": engine.stats.get("gram_elements", 0),
            "inter_party_bytes": engine.stats["opened_elements"] * 8 * n * (n - 1),
            "weight_bits": wb,
            "n_parties": n,
            "f": self.f,
            "m": self.m,
            "opened_mean_of": len(selected),  # 1: the output IS one client's update
            "atol": self.atol,
        }
        if self.record_view:
            stats["server_view"] = parties[0].view
        return AggregationResult(mean, sum(up.values()), sum(down.values()), frozenset(selected), stats)

    def _range_proof(self, engine, xk, bit_mask, bit_delta, cid, timed) -> bool:
        """The ``range_check`` stage for one client (as in ``spdz``): its bits enter through
        the input protocol, then :func:`verify_range` (``MacCheckFailed`` if a compute party
        cheats, False if the client does)."""
        dim, L = xk.size, self.range_bits
        masks = timed("dealer", lambda: OneShot("input-mask", (engine.dealer.authenticate(bit_mask),)))
        bits = timed("parties", lambda: engine.from_masked_input(masks, bit_delta, frac_bits=0, bound=1.0))
        triples = timed("dealer", engine.dealer.triples, (dim, L))
        return timed("parties", lambda: verify_range(engine, xk, bits.reshape(dim, L), self.range_bound,
                                                     label=str(cid).encode(), triples=triples))


def _stack(rows: list[Shared]) -> Shared:
    """K shared vectors (d,) -> one shared (K, d) matrix (local)."""
    offs = [r.offset if r.offset is not None else np.zeros(r.shape, dtype=np.uint64) for r in rows]
    return Shared(np.ascontiguousarray(np.stack([r.shares for r in rows], axis=1)),
                  np.ascontiguousarray(np.stack([r.macs for r in rows], axis=1)),
                  rows[0].frac_bits, rows[0].bound, np.ascontiguousarray(np.stack(offs)))
