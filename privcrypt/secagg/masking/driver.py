"""Driving a masking round in process (:func:`run_round`) and the backend class
(:class:`MaskingAggregator`) behind ``make_aggregator("masking", ...)``."""

from __future__ import annotations

import math
from typing import Iterable, Mapping

from privcrypt.encoding import Quantizer
from privcrypt.rng import RandomSource, child_rng, resolve_rng
from privcrypt.secagg.base import (AggregationResult, SecureAggregator, check_declared_range,
                                   finish_round, validate_round_inputs)
from privcrypt.secagg.masking.client import MaskingClient
from privcrypt.secagg.masking.common import ADVERTISE, CONSISTENCY, MASKED, MAX_ID, SHARE, UNMASK
from privcrypt.secagg.masking.params import CORRUPTION, DROPOUT, ETA, SIGMA, secagg_plus_parameters
from privcrypt.secagg.masking.server import MaskingServer
from privcrypt.secagg.sim import RoundLog

__all__ = ["run_round", "MaskingAggregator"]


def run_round(server: MaskingServer, clients: Mapping[int, MaskingClient],
              dropped: Iterable[int] = (), log: RoundLog | None = None, *,
              intercept=None, dropped_late: Iterable[int] = ()) -> RoundLog:
    """Drive ``server`` and ``clients`` through every stage in process, passing only bytes.
    ``dropped`` clients go silent after receiving their shares (before the masked input);
    ``dropped_late`` ones (authenticated mode) after their masked input, before the
    consistency check. ``intercept(stage, direction, cid, msg) -> msg``, when given, sees
    (and may replace) every message; direction is ``"down"`` (server to client) or
    ``"up"``. Clients the server rejected at key advertisement take no further part. Call
    ``server.finish()`` afterwards for the unmasked sum."""
    log = log or RoundLog()
    dropped, late = frozenset(dropped), frozenset(dropped_late)
    hook = intercept or (lambda stage, direction, cid, msg: msg)

    def exchange(stage, cid, down_msg, step):
        down_msg = log.down(cid, hook(stage, "down", cid, down_msg))
        with log.client_cpu(cid):
            up = step(down_msg)
        return log.up(cid, hook(stage, "up", cid, up))

    for c in sorted(clients):  # stage 1: advertise keys
        with log.server_cpu():
            msg = server.config_message(c)
        up = exchange(ADVERTISE, c, msg, clients[c].advertise_keys)
        with log.server_cpu():
            server.receive_keys(up)
    with log.server_cpu():
        nmsgs = server.neighbour_messages()
    for c, msg in nmsgs.items():  # stage 2: share keys
        up = exchange(SHARE, c, msg, clients[c].share_keys)
        with log.server_cpu():
            server.receive_shares(up)
    with log.server_cpu():
        routed = server.routed_messages()
    for c, msg in routed.items():  # stage 3: masked input; the dropped go silent here
        if c in dropped:
            log.down(c, hook(MASKED, "down", c, msg))
            continue
        up = exchange(MASKED, c, msg, clients[c].masked_input)
        with log.server_cpu():
            server.receive_masked(up)
    if server.authenticated:  # stage 3b: consistency check
        with log.server_cpu():
            cmsgs = server.consistency_messages()
        for c, msg in cmsgs.items():
            if c in late:
                log.down(c, hook(CONSISTENCY, "down", c, msg))
                continue
            up = exchange(CONSISTENCY, c, msg, clients[c].consistency_check)
            with log.server_cpu():
                server.receive_consistency(up)
    with log.server_cpu():
        requests = server.unmask_requests()
    for c, msg in requests.items():  # stage 4: unmasking
        up = exchange(UNMASK, c, msg, clients[c].unmask)
        with log.server_cpu():
            server.receive_unmask(up)
    return log


class MaskingAggregator(SecureAggregator):
    """Pairwise-masking secure aggregation (Bonawitz et al. 2017 on the SecAgg+ graph of
    Bell et al. 2020); see :mod:`privcrypt.secagg.masking` for the protocol, the threat
    models and the exact guarantee.

    Parameters (defaults in brackets): ``clip`` [1.0]: declared bound; values outside
    ±clip (after weight scaling) are clipped, counted in ``stats["clipped"]`` and warned
    about (:class:`~privcrypt.exceptions.ClippingWarning`), or raise ``ValueError`` with
    ``strict=True``. ``bits`` [16]: quantization bits. ``modulus_bits`` [32]: R = 2^32 or
    2^64. ``degree``, ``threshold`` [from :func:`secagg_plus_parameters` with
    ``corruption`` [0.05], ``dropout`` [0.3], ``sigma`` [40], ``eta`` [20]]: neighbours per
    client and Shamir threshold (an int, or a fraction < 1 of the k+1 holders).
    ``min_clients`` [2]: fewest survivors; below 2 is refused (a "secure" mean of one
    client is its update). ``max_weight_ratio`` [1.0]: the spread of weights
    (largest/smallest) that :attr:`atol` covers. ``rounding`` ["stochastic"] or
    "nearest". ``authenticated`` [False]: Ed25519-signed key advertisements and the
    consistency check (needs the ``cryptography`` package); ``identities``: ``{client id:
    IdentityKey}`` (default: generated per client on first use, enrolment in
    :attr:`enrolment`). ``record_view`` [False]: the server's received messages in
    ``stats["server_view"]``. ``rng`` [OS CSPRNG]: every key, seed, share, nonce and
    rounding bit; each client gets a child stream keyed by fresh bytes of it each round, so
    no key material repeats across rounds whatever source is given.
    """

    name = "masking"

    def __init__(self, clip: float = 1.0, bits: int = 16, modulus_bits: int = 32, *,
                 degree: int | None = None, threshold: int | float | None = None,
                 min_clients: int = 2, corruption: float = CORRUPTION, dropout: float = DROPOUT,
                 sigma: int = SIGMA, eta: int = ETA, max_weight_ratio: float = 1.0,
                 rounding: str = "stochastic", strict: bool = False, authenticated: bool = False,
                 identities: Mapping | None = None, record_view: bool = False,
                 rng: RandomSource | None = None):
        self.quantizer = Quantizer(float(clip), int(bits))
        if int(modulus_bits) not in (32, 64):
            raise ValueError("modulus_bits must be 32 or 64")
        if int(bits) >= int(modulus_bits):
            raise ValueError("bits must be below modulus_bits")
        if rounding not in ("stochastic", "nearest"):
            raise ValueError("rounding must be 'stochastic' or 'nearest'")
        if degree is not None and int(degree) < 1:
            raise ValueError("degree must be >= 1")
        if threshold is not None and not (0 < threshold):
            raise ValueError("threshold must be positive")
        if int(min_clients) < 2:
            raise ValueError("min_clients must be >= 2: a secure aggregate of one client is "
                             "that client's update")
        if not (0 <= corruption < 1 and 0 <= dropout < 1):
            raise ValueError("corruption and dropout must be rates in [0, 1)")
        if not max_weight_ratio >= 1.0:
            raise ValueError("max_weight_ratio must be >= 1")
        self.clip, self.bits, self.modulus_bits = float(clip), int(bits), int(modulus_bits)
        self.degree, self.threshold, self.min_clients = degree, threshold, int(min_clients)
        self.rates = dict(corruption=float(corruption), dropout=float(dropout), sigma=int(sigma),
                          eta=int(eta))
        self.max_weight_ratio = float(max_weight_ratio)
        self.rounding, self.strict, self.record_view = rounding, bool(strict), bool(record_view)
        self.authenticated = bool(authenticated)
        self._rng = resolve_rng(rng)
        self.identities = dict(identities or {})
        if self.authenticated:
            from privcrypt.identity import _need_backend
            _need_backend()
        self._round_ids: set[bytes] = set()

    @property
    def enrolment(self) -> dict[int, bytes]:
        """``{client id: Ed25519 public key}`` of the identities in use (authenticated)."""
        return {c: k.public for c, k in sorted(self.identities.items())}

    @property
    def atol(self) -> float:
        """Error bound per coordinate of the mean for inputs within ±clip and weights
        within ``max_weight_ratio`` of each other: ``max_weight_ratio`` quantization steps
        (stochastic rounding) or half that (nearest). Each round's own (tighter) bound is
        ``stats["atol"]``."""
        step = self.quantizer.step
        return (step if self.rounding == "stochastic" else step / 2) * self.max_weight_ratio

    def round_parameters(self, n: int) -> tuple[int, int]:
        """``(degree, threshold)`` used for a round of ``n`` clients."""
        auto = secagg_plus_parameters(n, authenticated=self.authenticated, **self.rates)
        k = auto.degree if self.degree is None else min(int(self.degree), n - 1)
        if k < n - 1 and k % 2:
            k += 1
        holders = k + 1
        if self.threshold is None:
            t = auto.threshold if k == auto.degree else min(
                holders, max(2, math.ceil(auto.threshold * holders / (auto.degree + 1))))
        elif isinstance(self.threshold, float) and self.threshold < 1:
            t = max(1, math.ceil(self.threshold * holders))
        else:
            t = int(self.threshold)
        if not 1 <= t <= holders:
            raise ValueError(f"threshold {t} must be in [1, degree + 1 = {holders}]")
        return k, t

    def _identity(self, cid: int):
        if cid not in self.identities:
            from privcrypt.identity import IdentityKey
            self.identities[cid] = IdentityKey.generate(rng=child_rng(self._rng, f"identity-{cid}"))
        return self.identities[cid]

    def aggregate(self, updates, weights=None, dropped=frozenset()) -> AggregationResult:
        upd, w, dropped = validate_round_inputs(updates, weights, dropped)
        ids = sorted(upd)
        if ids[0] < 0 or ids[-1] > MAX_ID:
            raise ValueError(f"client ids must be in [0, {MAX_ID}]")
        n, dim = len(ids), upd[ids[0]].shape[0]
        if n < self.min_clients:
            raise ValueError(f"{n} clients, min_clients={self.min_clients}")
        # overflow guard, before anything is sent: n * (2^bits - 1) < R
        self.quantizer.check_sum_fits(n, 2**self.modulus_bits)
        k, t = self.round_parameters(n)
        w_max = max(w.values())
        check_declared_range({c: upd[c] * (w[c] / w_max) for c in ids}, self.clip, self.strict)
        round_id = self._rng.bytes(16)
        if round_id in self._round_ids:  # a broken rng would reuse every key of a round
            raise ValueError("the rng repeated a round id; it is not a usable RandomSource")
        self._round_ids.add(round_id)
        log = RoundLog(record=self.record_view)
        enrol = None
        if self.authenticated:
            idents = {c: self._identity(c) for c in ids}
            enrol = {c: idents[c].public for c in ids}
        server = MaskingServer(round_id, ids, dim, clip=self.clip, bits=self.bits,
                               modulus_bits=self.modulus_bits, degree=k, threshold=t,
                               weights=w, min_clients=self.min_clients, record=self.record_view,
                               enrolment=enrol)
        clients = {c: MaskingClient(c, upd[c], rng=child_rng(self._rng, f"client-{c}"),
                                    rounding=self.rounding, strict=self.strict,
                                    identity=idents[c] if enrol else None, enrolment=enrol)
                   for c in ids}
        run_round(server, clients, dropped, log)
        with log.server_cpu():
            qsum = server.finish()
            n_surv = len(server.u3)
            wsum = server.survivors_weight()
            mean = self.quantizer.dequantize_sum(qsum, n_surv) / wsum
        stats = log.stats()
        clipped = {c: clients[c].n_clipped for c in server.u3 if clients[c].n_clipped}
        step_bound = self.atol / self.max_weight_ratio
        stats.update(degree=k, threshold=t, round_id=round_id.hex(),
                     atol=step_bound * n_surv / wsum, clipped=sum(clipped.values()),
                     clipped_clients=sorted(clipped), rejected=dict(server.rejected),
                     authenticated=self.authenticated)
        res = AggregationResult(mean, log.bytes_up, log.bytes_down, frozenset(server.u3), stats)
        return finish_round(self, res, ids)
