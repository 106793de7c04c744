"""``spdz-krum``: Krum / Multi-Krum on SPDZ shares; only the distance matrix is opened.

No FL framework offers a Byzantine-robust rule under secure aggregation: median, trimmed
mean and Krum all read individual updates. Krum needs only the pairwise squared distances,
and those can be computed on shares. A round, stage by stage:

1. ``setup`` / ``input``: exactly as the ``spdz`` backend (:mod:`privcrypt.secagg.spdz`,
   whose client and compute-party classes are reused): each client secret-shares
   ``encode(clip(x))`` to the ``n_parties`` compute parties through SPDZ's input protocol
   (sender ids checked against the channel; any disagreement between the parties aborts:
   threat model below).
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
6. ``select``: Krum scores and the selection run in the clear on the opened matrix of exact
   integers (:func:`krum_select`; ties to the lower client id).
7. ``aggregate``: the weighted sum of the *selected* clients' shares is opened (as in
   ``spdz``); the mean is sum / Σ w.

What is revealed to the compute parties (and to whoever receives ``stats``):

* the K × K matrix of squared distances between the accepted clients' (clipped, fixed-point)
  updates (exact integers at scale ``2^(2·frac_bits)``, ``stats["distances_int"]``; selection
  runs on these; ``stats["distances"]`` is the same in real units as float64, rounded once an
  integer exceeds 2^53, i.e. a distance above 2^21 at 16 bits);
* with ``norm_bound``, each accepted client's squared norm; norms and distances together
  give the whole Gram matrix ``G_ij = (‖x_i‖² + ‖x_j‖² − Δ_ij) / 2``;
* which clients were selected, and the weighted mean of the ``m`` selected updates;
* ``stats["clipped"]``: the number of clipped coordinates, summed over the clients (the
  simulation reads each client's count; a deployment would have each client report it);
* which clients were malformed or failed the range proof or norm check.

What the distances imply: they fix the K updates up to one common rotation, reflection and
translation (classical MDS). **Colluding clients choose points and turn the distances into
coordinates**: a coalition of ``c`` clients (submitting ``y_1, …, y_c``) and anyone who sees
the distances learns, for every honest update ``x``, ``⟨x, y_a − y_1⟩`` for the ``c − 1``
directions ``y_a − y_1`` of its choice (``Δ(x, y_1) − Δ(x, y_a)`` is linear in ``x``) and, with
``y_1 = 0``, ``‖x‖²``: two colluders with ``0`` and ``t·e_i`` learn coordinate ``i`` and the
norm of *every* honest update, whether or not Krum selects them. This holds for every ``m``;
the distance matrix is the price of Krum on shares, state it to users.

**The output**: ``m ≤ f + 1`` is refused (``ValueError``) unless ``reveal_individual=True``:
with ``m = 1`` (plain Krum) the output IS one client's update, and with ``2 ≤ m ≤ f + 1``,
``m − 1`` colluders placed at the honest centre are selected with one honest client ``h`` and
recover ``x_h = m·mean − Σ colluders`` exactly. With ``m ≥ f + 2`` the output is the mean of
at least ``m − f ≥ 2`` honest updates (``stats["opened_mean_of"]`` = m). **Not revealed**
(beyond what the values above imply): the masked inputs, the shares, the unselected updates'
coordinates along directions no colluder chose.

Threat model: as ``spdz``. The dealer is semi-honest and non-colluding; up to
``n_parties - 1`` compute parties may collude and deviate (malicious with abort: a tampered
share, MAC share or opening raises ``MacCheckFailed``, nothing is released); clients may be
malicious (bounded by the range proof, and then by Krum itself against at most ``f`` of
them); no compute party may drop out. ``verify_range=False`` is refused unless
``trust_clients=True`` (honest-but-curious clients only: without the proof Krum is unsound).
Channels are authenticated: each party checks that a message's sender id is the client the
channel delivered it from (``channel_sender``), so a client cannot impersonate another.
Input consistency (echo broadcast): every party reports, per client, the digest of the
payload it accepted or "malformed"; the client is kept if all reports agree on a digest,
excluded if all say malformed (at least one party is honest, so the fault is the client's),
and on **any disagreement the round aborts** (``ProtocolAbort``, stage ``input``): a client
that equivocated and a party that lies about what it received look the same, and excluding
the client would let one malicious party steer Krum's input set. So a malicious client can
abort a round (denial of service, as any compute party can); attributing it would need
per-party signed inputs (not done). Weights are turned into public integers before anything
is opened, valid for every possible selection. Fewer than ``max(min_clients, 2f + 3, m + f)``
accepted clients -> ``ProtocolAbort``.
"""

from __future__ import annotations

import contextlib
import math
import os
from fractions import Fraction

import numpy as np

from privcrypt.exceptions import MalformedInput, ProtocolAbort, UnsupportedParameters
from privcrypt.mpc import SpdzEngine, field
from privcrypt.mpc.dealer import OneShot
from privcrypt.mpc.shares import MAX_ABS_BITS, Shared
from privcrypt.rng import RandomSource
from privcrypt.secagg.base import AggregationResult, check_survivors, validate_round_inputs
from privcrypt.secagg.spdz import DEALER, SpdzAggregator, SpdzClient, SpdzComputeParty, cpu_timer
from privcrypt.wire import Message

__all__ = ["SpdzKrumAggregator", "matmul_mod", "gram_on_shares", "sq_distances_on_shares", "krum_scores",
           "krum_select"]

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
    integers (R·S·9 of them). Cost: 9·R·S·d multiply-adds in BLAS. ``ValueError`` unless
    both are 2-D with equal rows lengths and hold canonical residues (``< p``)."""
    a, b = np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"matmul_mod needs (R, d) and (S, d), got {a.shape} and {b.shape}")
    for name, arr in (("a", a), ("b", b)):  # non-canonical residues would give a wrong product
        if arr.size and int(arr.max()) >= field.P:
            raise ValueError(f"matmul_mod: {name} holds values >= p; pass canonical residues mod p")
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
    the public MAC offset), MAC shares alike. ``pair``: a pre-dealt :func:`gram_pair`;
    ``ValueError`` (nothing opened) if its shapes are not ``(K, d)`` and ``(K, K)``."""
    k, d = x.shape
    bound = x.bound * x.bound * d
    if math.ceil(bound * 2.0 ** (2 * x.frac_bits)).bit_length() > MAX_ABS_BITS:
        raise UnsupportedParameters(f"inner products of {d} values bounded by ±{x.bound} could "
                                    f"overflow Z_p at 2·{x.frac_bits} fractional bits")
    a, aa = (pair if pair is not None else gram_pair(engine.dealer, (k, d))).consume()
    if a.shape != (k, d) or aa.shape != (k, k):  # before anything is opened
        raise ValueError(f"pre-dealt Gram pair has shapes {a.shape}, {aa.shape}; "
                         f"x of shape {(k, d)} needs {(k, d)}, {(k, k)}")
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


def krum_scores(dist: np.ndarray, f: int) -> list:
    """Krum score of each row of the square matrix ``dist``: the sum of its ``n - f - 2``
    smallest off-diagonal entries. Integer matrices are summed exactly as Python ints (the
    opened distances, < 2^59 each); float matrices in float64."""
    d = np.asarray(dist)
    n = d.shape[0]
    if d.dtype.kind in "iuO":
        return [sum(sorted(int(d[i, j]) for j in range(n) if j != i)[: n - f - 2]) for i in range(n)]
    d = d.astype(np.float64)
    return np.sort(d + np.diag(np.full(n, np.inf)), axis=1)[:, : n - f - 2].sum(axis=1).tolist()


def krum_select(dist: np.ndarray, f: int, m: int = 1) -> np.ndarray:
    """Indices (sorted) of the ``m`` rows of the squared-distance matrix ``dist`` with the
    lowest Krum scores (:func:`krum_scores`; exact on integer matrices); ties go to the lower
    index. The same rule as ``fl.aggregation.krum_select`` (privcrypt does not import fl; a
    test checks they agree). ``ValueError`` unless ``n >= 2f + 3`` and ``1 <= m <= n - f``."""
    d = np.asarray(dist)
    n = d.shape[0]
    if d.ndim != 2 or d.shape != (n, n):
        raise ValueError("distance matrix must be square")
    if n < 2 * f + 3:
        raise ValueError(f"Krum with f={f} needs n >= {2 * f + 3} clients, got {n}")
    if not 1 <= m <= n - f:
        raise ValueError(f"m must be in [1, n - f] = [1, {n - f}], got {m}")
    scores = krum_scores(d, f)
    return np.array(sorted(sorted(range(n), key=lambda i: (scores[i], i))[:m]), dtype=np.int64)


_MALFORMED = b"malformed"


def _signed(res: np.ndarray) -> np.ndarray:
    """Centered lift of opened residues to exact int64 integers (|v| < p/2 < 2^60)."""
    r = np.asarray(res, dtype=np.uint64)
    return np.where(r > np.uint64(field.P // 2), -(np.uint64(field.P) - r).astype(np.int64), r.astype(np.int64))


class SpdzKrumAggregator(SpdzAggregator):
    """Krum (``m = 1``) / Multi-Krum (``m > 1``) on SPDZ shares: only the pairwise squared
    distances (and, with ``norm_bound``, each squared norm) are opened; only the weighted
    mean of the selected updates is output. Stages, what is revealed and the threat model
    are in the module docstring.

    Parameters: ``f`` (Byzantine clients to tolerate; a round needs ``>= max(2f + 3, m + f,
    min_clients)`` accepted clients, else ``ProtocolAbort`` naming the stage); ``m`` (clients
    averaged; **``m <= f + 1`` raises ``ValueError`` unless ``reveal_individual=True``**: the
    output can then be one honest client's update; with ``m >= f + 2`` it averages at least
    ``m - f`` honest updates); ``verify_range`` (default True; **False raises ``ValueError``
    unless ``trust_clients=True``**: without the range proof Krum is unsound against malicious
    clients); and the ``spdz`` backend's ``n_parties``, ``frac_bits``, ``clip``,
    ``norm_bound``, ``min_clients``, ``rng``, ``record_view``.

    ``stats`` adds (all revealed, see the module docstring): ``selected``,
    ``distance_clients`` (the ids ordering the rows of) ``distances_int`` (exact int64 at
    scale ``2^(2·frac_bits)``) and ``distances`` (float64, real units), ``scores``,
    ``norms_sq`` (with ``norm_bound``), ``gram_elements``, ``opened_mean_of``, ``atol``; and
    keeps ``clipped``, ``rejected_range``, ``rejected_norm``, ``malformed_clients``, CPU
    seconds and byte counts as ``spdz`` (``inconsistent_clients`` is always empty: a
    disagreement aborts)."""

    name = "spdz-krum"

    def __init__(self, f: int = 0, m: int = 1, n_parties: int = 3, frac_bits: int = 16,
                 clip: float = 8.0, norm_bound: float | None = None, min_clients: int = 2, *,
                 verify_range: bool = True, reveal_individual: bool = False, trust_clients: bool = False,
                 rng: RandomSource | None = None, record_view: bool = False):
        if isinstance(f, bool) or int(f) != f or f < 0:
            raise ValueError("f must be a non-negative integer")
        if isinstance(m, bool) or int(m) != m or m < 1:
            raise ValueError("m must be a positive integer")
        if m <= f + 1 and not reveal_individual:
            raise ValueError(
                f"m={m} <= f+1={f + 1} can reveal an individual update: with m = 1 the output IS the "
                f"selected client's update, and with m <= f + 1, m - 1 colluding clients at the honest "
                f"centre are selected with one honest client, whose update is then m·mean minus theirs. "
                f"Use m >= f + 2 (the output then averages at least m - f >= 2 honest updates; e.g. "
                f"m = n - f), or pass reveal_individual=True to accept this")
        if not verify_range and norm_bound is None and not trust_clients:
            raise ValueError(
                "verify_range=False makes Krum on shares unsound against malicious clients (a shared "
                "coordinate can be any element of Z_p, so distances wrap mod p and open small); "
                "keep the range proof, or pass trust_clients=True for honest-but-curious clients")
        super().__init__(n_parties, frac_bits, clip, norm_bound, min_clients,
                         verify_range=verify_range, rng=rng, record_view=record_view)
        self.f, self.m = int(f), int(m)
        self.reveal_individual, self.trust_clients = bool(reveal_individual), bool(trust_clients)

    def _check_distances_fit(self, dim: int) -> None:
        """Every accepted coordinate is an integer in [-B, B] (range proof), so
        ``Δ <= 4·dim·B² `` must stay below 2^59 to open exactly."""
        if 4 * dim * self.range_bound**2 >= 2**MAX_ABS_BITS:
            raise UnsupportedParameters(
                f"squared distances of {dim} values clipped to ±{self.clip} could overflow Z_p "
                f"at 2·{self.frac_bits} fractional bits; lower clip or frac_bits")

    def _selection_weights(self, w: dict) -> tuple[dict[int, int], int]:
        """Public integer weights for every client that may be selected, fixed before any
        opening and valid for the worst selection of ``m`` of them: the sum of the ``m``
        largest must not overflow Z_p, and (non-integer weights, normalised by the largest
        of all) the rounding error of the ``m`` smallest must stay below ``2^-(f+1)``.
        ``UnsupportedParameters`` otherwise."""
        f, m = self.frac_bits, min(self.m, len(w))
        if all(float(v).is_integer() for v in w.values()):
            out, wb = {k: int(v) for k, v in w.items()}, 0
        else:
            wb = min(40, MAX_ABS_BITS - 1 - f - int(math.ceil(m * self.clip)).bit_length())
            wmax = max(w.values())
            worst = sum(sorted(v / wmax for v in w.values())[:m])  # lightest possible selection
            if wb < 1 or self.clip * m * 2.0**-wb / worst > 2.0 ** -(f + 1):
                raise UnsupportedParameters(
                    f"non-integer weights for a selection of {m} clients with clip {self.clip} cannot "
                    f"be represented within atol at {f} fractional bits; use integer weights")
            out = {k: max(1, round(v / wmax * 2**wb)) for k, v in w.items()}
        if self.range_bound * sum(sorted(out.values())[-m:]) >= 2**MAX_ABS_BITS:
            raise UnsupportedParameters("weighted sum could overflow Z_p: lower clip, weights or frac_bits")
        return out, wb

    def aggregate(self, updates, weights=None, dropped=frozenset()) -> AggregationResult:
        upd, w, dropped = validate_round_inputs(updates, weights, dropped)
        dim = next(iter(upd.values())).shape[0]
        self._check_distances_fit(dim)
        wint, wb = self._selection_weights({c: w[c] for c in upd if c not in dropped})  # L4: first
        n, L, B = self.n_parties, self.range_bits, self.range_bound
        cpu = {"client": {}, "parties": 0.0, "dealer": 0.0}
        up, down = {}, {}

        timed = cpu_timer(cpu)

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
        bad = [set() for _ in parties]  # per party: clients whose message it found malformed
        for cid, client in clients.items():  # stage "input"
            if cid in dropped:
                continue
            msgs = timed("client", client.input_messages, n, key=cid)
            up[cid] = sum(len(mm) for mm in msgs)
            for party, mm in zip(parties, msgs):
                try:  # the channel says who sent it: a forged sender id is malformed from cid
                    timed("parties", lambda: party.receive_input(
                        mm, record=self.record_view and party.j == 0, channel_sender=cid))
                except MalformedInput:
                    bad[party.j].add(cid)
        consistent, malformed = self._echo_check(parties, bad, [c for c in clients if c not in dropped])
        received = sorted(set(consistent) | set(malformed))
        need = max(self.min_clients, 2 * self.f + 3, self.m + self.f)
        check_survivors(len(consistent), need, "input")

        # stage "range_check": shares of every consistent client, range-proved
        ids, rows, rejected_range = [], [], []
        for cid in consistent:
            xk = self._client_share(engine, parties[0], seeds[cid], cid, dim, timed)
            if xk is None:
                rejected_range.append(cid)
                continue
            ids.append(cid)
            rows.append(xk)
        check_survivors(len(ids), need, "range_check")
        x = _stack(rows)

        # stage "gram", then "norm_check" on its diagonal (only with norm_bound)
        pair = timed("dealer", gram_pair, engine.dealer, x.shape)
        g = timed("parties", gram_on_shares, engine, x, pair)
        scale = 2.0 ** (-2 * self.frac_bits)
        rejected_norm, norms_sq = [], None
        if self.norm_bound is not None:
            diag = Shared(np.ascontiguousarray(np.diagonal(g.shares, axis1=1, axis2=2)),
                          np.ascontiguousarray(np.diagonal(g.macs, axis1=1, axis2=2)),
                          g.frac_bits, g.bound, np.ascontiguousarray(np.diagonal(g.offset)))
            nsq = _signed(timed("parties", engine.open_residues, diag))  # exact integers
            limit = math.floor(Fraction(self.norm_bound) ** 2 * 2 ** (2 * self.frac_bits))
            norms_sq = {c: float(v) * scale for c, v in zip(ids, nsq)}
            keep = [i for i, v in enumerate(nsq) if int(v) <= limit]
            rejected_norm = [ids[i] for i in range(len(ids)) if i not in keep]
            g = g[np.ix_(keep, keep)]
            ids, rows = [ids[i] for i in keep], [rows[i] for i in keep]
            check_survivors(len(ids), need, "norm_check")

        # stages "distances" (opened) and "select" (in the clear, on exact integers)
        delta = timed("parties", sq_distances_on_shares, g)
        iu = np.triu_indices(len(ids), 1)
        dint = np.zeros((len(ids), len(ids)), dtype=np.int64)
        dint[iu] = _signed(timed("parties", engine.open_residues, delta[iu]))
        dint = dint + dint.T
        sel = krum_select(dint, self.f, self.m)
        selected = [ids[i] for i in sel]

        # stage "aggregate": the weighted sum of the selected clients only
        acc = None
        for i in sel:
            acc = timed("parties", parties[0].weighted_sum, engine, acc, rows[i], wint[ids[i]])
        total = timed("parties", engine.open, acc)
        mean = total / float(sum(wint[c] for c in selected))
        stats = {
            "client_cpu_s_mean": sum(cpu["client"].values()) / max(1, len(cpu["client"])),
            "client_cpu_s_max": max(cpu["client"].values(), default=0.0),
            "server_cpu_s": cpu["parties"],
            "dealer_cpu_s": cpu["dealer"],
            "bytes_up_max_client": max(up.values(), default=0),
            "bytes_down_max_client": max(down.values(), default=0),
            "clipped": sum(clients[c].clipped for c in received),  # revealed (module docstring)
            "selected": sorted(selected),
            "distance_clients": ids,
            "distances_int": dint,
            "distances": dint.astype(np.float64) * scale,
            "scores": np.array([float(s) * scale for s in krum_scores(dint, self.f)]),
            "norms_sq": norms_sq,
            "rejected_norm": rejected_norm,
            "rejected_range": rejected_range,
            "range_bits": L,
            "inconsistent_clients": [],  # a disagreement between the parties aborts the round
            "malformed_clients": sorted(malformed),
            "mac_checks": engine.stats["mac_checks"],
            "triples": engine.stats["triples"],
            "gram_elements": engine.stats.get("gram_elements", 0),
            "inter_party_bytes": engine.stats["opened_elements"] * 8 * n * (n - 1),
            "weight_bits": wb,
            "n_parties": n,
            "f": self.f,
            "m": self.m,
            "opened_mean_of": len(selected),  # at least m - f honest ones among them
            "atol": self.atol,
        }
        if self.record_view:
            stats["server_view"] = parties[0].view
        return AggregationResult(mean, sum(up.values()), sum(down.values()), frozenset(selected), stats)

    @staticmethod
    def _echo_check(parties, bad, expected) -> tuple[list[int], list[int]]:
        """The echo broadcast of the ``input`` stage: every party reports, per client, the
        SHA-256 of the payload it accepted, "malformed", or nothing. A client is kept when all
        reports are the same digest and excluded (as malformed) when all say "malformed": at
        least one party is honest, so either way the verdict is the client's own doing. Any
        disagreement (the client equivocated, or a party lies about what it received) cannot
        be attributed, so the round aborts (``ProtocolAbort``, stage ``input``) rather than let
        one party remove an honest client from Krum's input set."""
        consistent, malformed = [], []
        for cid in sorted(expected):
            views = {(p.digests.get(cid) if cid in p.inputs else (_MALFORMED if cid in bad[p.j] else None))
                     for p in parties}
            if views == {None}:
                continue  # silent towards every party: a dropout
            if len(views) != 1:
                raise ProtocolAbort(f"compute parties disagree on client {cid}'s input (client "
                                    f"equivocation or a lying party; not attributable)", stage="input")
            (view,) = views
            (malformed if view == _MALFORMED else consistent).append(cid)
        return consistent, malformed


def _stack(rows: list[Shared]) -> Shared:
    """K shared vectors (d,) -> one shared (K, d) matrix (local)."""
    offs = [r.offset if r.offset is not None else np.zeros(r.shape, dtype=np.uint64) for r in rows]
    return Shared(np.ascontiguousarray(np.stack([r.shares for r in rows], axis=1)),
                  np.ascontiguousarray(np.stack([r.macs for r in rows], axis=1)),
                  rows[0].frac_bits, rows[0].bound, np.ascontiguousarray(np.stack(offs)))
