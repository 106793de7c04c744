"""The round loop: ``fl.run(model_fn, clients, test, cfg, task)``.

One round, in order (docs/fl.md has the diagram):

1. the strategy samples clients (fixed count or Poisson rate);
2. the DP budget guard refuses the round if it would overspend (before anything runs);
3. each sampled client that will not drop trains locally (``fl.client.LocalTrainer``;
   DP-SGD for the example unit), then clips its delta to ``clip_norm``, adds its own noise
   (client-level local DP) and compresses it;
4. the secure-aggregation backend (``privcrypt.secagg``) runs one real protocol round over
   the prepared vectors with the dropped clients going silent after key set-up; a round
   the backend aborts is recorded as aborted and the model is left as it was;
5. the server finishes the aggregate (central DP noise on the sum; a robust rule when
   the configuration has one), the strategy applies it, the accountant records the
   round, and the model is evaluated.

Randomness: data order, model initialisation, dropouts and (without DP) client sampling
come from ``cfg.seed``; keys, masks, shares, DP noise, DP-SGD's Poisson batches and, with
DP, client sampling come from the ``rng`` argument (``privcrypt.rng``; OS CSPRNG default).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from fl.checks import check_clients, check_combination, check_model
from fl.client import ClientPipeline, LocalTrainer, get_vector, set_vector
from fl.compression import make_compressor
from fl.config import FLConfig
from fl.evaluate import evaluate
from fl.history import History
from fl.privacy import make_privacy
from fl.strategy import make_strategy
from fl.transport import InProcess
from privcrypt.exceptions import PrivacyBudgetExceeded, ProtocolAbort, UnsupportedParameters
from privcrypt.progress import progress
from privcrypt.rng import RandomSource, resolve_rng
from privcrypt.secagg import make_aggregator

__all__ = ["run", "serve", "make_backend", "round_bound", "sampling_rate"]


def _spawn(rng: RandomSource, label: str) -> RandomSource:
    spawn = getattr(rng, "spawn", None)
    return spawn(label) if spawn else rng


def make_backend(cfg: FLConfig, bound: float, rng: RandomSource, per_round: int | None = None, privacy=None,
                 weight_ratio: float = 1.0):
    """The secure-aggregation backend for ``cfg``, with its declared range set to
    ``bound`` (derived from ``clip_norm``: every coordinate of a clipped update is within
    it) unless ``backend_params`` says otherwise, and at least 2 clients per round for the
    secure backends. Multi-Krum with ``spdz`` uses the SPDZ robust backend."""
    params = dict(cfg.backend_params)
    name = cfg.backend
    if name in ("masking", "spdz") or (name == "ckks" and params.get("mode") == "compact"):
        params.setdefault("clip", bound)
    if name == "masking" and cfg.compression in ("q8", "q16"):
        params.setdefault("bits", 8 if cfg.compression == "q8" else 16)
    if name != "plain":
        params.setdefault("min_clients", 2)
    if name in ("masking", "ckks"):  # the spread of FedAvg weights that atol must cover
        params.setdefault("max_weight_ratio", max(1.0, float(weight_ratio)))
    if name == "spdz" and cfg.aggregator == "multikrum":
        name = "spdz-krum"
        params.setdefault("f", cfg.byzantine_f)
        # Multi-Krum's default m = n - f (fl.aggregation)
        params.setdefault("m", cfg.aggregator_params.get("m", max(1, (per_round or 1) - cfg.byzantine_f)))
    if privacy is not None and getattr(privacy, "mode", None) == "distributed":
        params.update(privacy.backend_params(name))  # exact integer sums: these must win
    params.setdefault("rng", _spawn(rng, f"backend-{name}"))
    try:
        return make_aggregator(name, **params)
    except TypeError as exc:
        raise ValueError(f"backend_params for {name!r}: {exc}") from None


class _Attackers:
    """Byzantine clients (``fl.attacks``), when the configuration has any."""

    def __init__(self, cfg: FLConfig, ids: list[int], sim: np.random.Generator, n_classes, rng: RandomSource):
        self.ids: set[int] = set()
        self.attack = None
        if cfg.byzantine:
            if cfg.byzantine >= len(ids):
                raise ValueError(f"byzantine={cfg.byzantine} must be below the number of clients ({len(ids)})")
            try:
                from fl.attacks import make_attack
            except ImportError:
                raise UnsupportedParameters("Byzantine attacks (fl.attacks) are not available in this build") from None
            self.attack = make_attack(cfg.attack, scale=cfg.attack_scale, n_byzantine=cfg.byzantine,
                                      rng=_spawn(rng, "attack"))
            self.ids = set(int(i) for i in sim.choice(ids, size=cfg.byzantine, replace=False))
        self.n_classes = n_classes

    def poison(self, cid: int, y: np.ndarray) -> np.ndarray:
        if cid in self.ids and getattr(self.attack, "poisons_data", False):
            return self.attack.poison_labels(y, self.n_classes)
        return y

    def corrupt(self, updates: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        bad = [c for c in updates if c in self.ids]
        if not bad or getattr(self.attack, "poisons_data", False):
            return updates
        honest = np.stack([v for c, v in updates.items() if c not in self.ids] or [np.zeros_like(updates[bad[0]])])
        out = dict(updates)
        for c in bad:
            out[c] = np.asarray(self.attack.corrupt(updates[c], honest), dtype=np.float64)
        return out


def _robust(cfg: FLConfig, updates: dict[int, np.ndarray], weights: dict[int, float], survivors):
    """A robust rule on plaintext updates (``plain`` backend only: the server sees them)."""
    try:
        from fl.aggregation import robust_aggregate
    except ImportError:
        raise UnsupportedParameters("robust aggregation (fl.aggregation) is not available in this build") from None
    ids = sorted(survivors)
    res = robust_aggregate(cfg.aggregator, np.stack([updates[c] for c in ids]),
                           np.array([weights[c] for c in ids]), f=cfg.byzantine_f, **cfg.aggregator_params)
    return res.mean, [ids[i] for i in res.selected]


def run(model_fn, clients, test, cfg: FLConfig | None = None, task: str = "classification", *,
        rng: RandomSource | None = None, show_progress: bool | None = None,
        target_scale: float = 1.0, adv_examples=None) -> History:
    """Train ``model_fn()`` federatedly on ``clients`` and evaluate on ``test``.

    ``clients``: list of ``(X, y)`` numpy arrays, one per client (``y``: int labels for
    classification, float targets for regression, 0/1 anomaly labels for anomaly, used
    only for evaluation and to train the autoencoder on normal windows). ``test``: ``(X, y)``.
    ``cfg``: :class:`fl.FLConfig` (default: its defaults). ``rng``: source of keys, masks,
    shares and DP noise (default OS CSPRNG). ``target_scale``: regression metrics are
    reported in ``y * target_scale`` units. ``adv_examples``: optional list, one array
    per client aligned with its ``X``, of precomputed adversarial examples to train on with
    the FDA³ loss (weight ``cfg.adv_alpha``).

    Returns a :class:`fl.History`. Raises ``ValueError``/``TypeError`` naming the problem
    for bad input before any training; ``PrivacyBudgetExceeded`` before a round that would
    overspend (the partial history is on the exception as ``.history``)."""
    cfg = FLConfig() if cfg is None else cfg
    if not isinstance(cfg, FLConfig):
        raise TypeError(f"cfg must be an FLConfig, got {type(cfg).__name__}")
    if task not in ("classification", "regression", "anomaly"):
        raise ValueError(f"unknown task {task!r}; choose classification, regression or anomaly")
    if not callable(model_fn):
        raise TypeError("model_fn must be a callable returning a fresh torch.nn.Module")
    clients, test = check_clients(clients, test, task)
    if adv_examples is not None:
        if task != "classification" or len(adv_examples) != len(clients):
            raise ValueError("adv_examples needs a classification task and one array per client")
        adv_examples = [np.asarray(a, dtype=np.float32) for a in adv_examples]
        for i, (a, (X, _)) in enumerate(zip(adv_examples, clients)):
            if a.shape != X.shape or not np.all(np.isfinite(a)):
                raise ValueError(f"adv_examples[{i}] must be finite with the shape of client {i}'s X {X.shape}")
    if cfg.adv_train is not None and task != "classification":
        raise ValueError(f"adversarial training (adv_train={cfg.adv_train!r}) is for classification, not {task}")
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    try:
        return _run(model_fn, clients, test, cfg, task, resolve_rng(rng), show_progress, target_scale,
                    adv_examples)
    finally:
        torch.set_num_threads(threads)


def round_bound(cfg: FLConfig, privacy) -> float:
    """The backends' declared per-coordinate range: ``clip_norm`` (a clipped update's
    coordinates are within it), widened by 6 standard deviations of the clients' own
    noise in local DP mode (values beyond are clipped by the backend and counted)."""
    extra = privacy.client_noise_std if privacy is not None and privacy.unit == "client" else 0.0
    return cfg.clip_norm + 6.0 * extra


def sampling_rate(cfg: FLConfig, n_clients: int) -> float:
    """The rate at which the server samples clients (Poisson rate, or m / N)."""
    if cfg.sample_rate is not None:
        return cfg.sample_rate
    return (cfg.clients_per_round or n_clients) / n_clients


def _run(model_fn, clients, test, cfg, task, rng, show_progress, target_scale, adv_examples=None) -> History:
    torch.manual_seed(cfg.seed)
    model = model_fn()
    n_classes = check_model(model, clients, test, task)
    ids = list(range(len(clients)))
    check_combination(cfg, model, len(ids))
    sim = np.random.default_rng(cfg.seed)  # dropouts and attacker choice: simulation, not secret
    sizes = {c: len(clients[c][0]) for c in ids}
    privacy = make_privacy(cfg, sizes, sampling_rate(cfg, len(ids)), dim=get_vector(model).size)
    bound = round_bound(cfg, privacy)
    per_round = cfg.clients_per_round or (round(cfg.sample_rate * len(ids)) if cfg.sample_rate else len(ids))
    equal = privacy is not None and privacy.unit == "client"
    ratio = 1.0 if equal else max(sizes.values()) / min(sizes.values())
    backend = make_backend(cfg, bound, rng, per_round, privacy, ratio)
    compressor = make_compressor(cfg.compression, topk_fraction=cfg.topk_fraction, rng=_spawn(rng, "compress"))
    attackers = _Attackers(cfg, ids, sim, n_classes, rng)
    pipeline = ClientPipeline(LocalTrainer(model_fn, task, cfg), cfg, privacy=privacy, compressor=compressor,
                              bound=bound)
    transport = InProcess(clients, pipeline, backend, rng=_spawn(rng, "clients"), attackers=attackers,
                          adv_examples=adv_examples)
    hist = serve(model, sizes, test, cfg, task, transport, privacy=privacy, rng=rng, atol=backend.atol,
                 sim=sim, show_progress=show_progress, target_scale=target_scale)
    hist.final["attackers"] = sorted(attackers.ids)
    return hist


def serve(model, sizes: dict[int, int], test, cfg: FLConfig, task: str, transport, *, privacy, rng: RandomSource,
          atol: float = 0.0, sim: np.random.Generator | None = None, show_progress: bool | None = None,
          target_scale: float = 1.0) -> History:
    """The server's round loop over any :class:`fl.transport.Transport` (simulation and
    deployment share it). ``sizes``: client id -> number of examples (FedAvg weights);
    ``privacy``: :func:`fl.privacy.make_privacy`'s object or ``None``; ``sim``: the
    seeded generator for simulated dropouts and non-DP client sampling."""
    ids = sorted(sizes)
    sim = np.random.default_rng(cfg.seed) if sim is None else sim
    vec = get_vector(model)
    strategy = make_strategy(cfg)
    equal_weights = privacy is not None and privacy.unit == "client"
    hist = History(config=cfg.to_dict())
    threshold = None
    sample_uniform = (lambda n: rng.uniform(n)) if cfg.dp else (lambda n: sim.random(n))
    rep = None
    if cfg.reputation:
        from fl.reputation import Reputation

        rep = Reputation(**cfg.reputation_params)

    disable = None if show_progress is None else not show_progress
    for r in progress(range(1, cfg.rounds + 1), desc="fl rounds", total=cfg.rounds, disable=disable):
        t0, c0 = time.perf_counter(), time.process_time()
        rec: dict = {"round": r}
        participants = strategy.configure_round(r, ids, sample_uniform)
        if rep is not None:  # leave the excluded out
            factor = rep.weights(participants)
            participants = [c for c in participants if factor[c] > 0]
            rec["excluded"] = sorted(rep.excluded)
        rec["participants"] = participants
        if privacy is not None:
            try:
                privacy.check_round(participants, r)
            except PrivacyBudgetExceeded as exc:
                exc.history = _finish(hist, model, vec, privacy)
                raise
        weights = {c: 1.0 if equal_weights else float(sizes[c]) for c in participants}
        if rep is not None:  # down-weight low scores
            weights = {c: weights[c] * factor[c] for c in participants}
        dropped = {c for c in participants if sim.random() < cfg.dropout}
        rec["dropped"] = sorted(dropped)
        if not participants:
            rec.update(aborted=True, abort_reason="no client sampled", seconds=time.perf_counter() - t0)
            hist.rounds.append(rec)
            continue
        if privacy is not None:
            privacy.begin_round(r, rng)
        try:
            out = transport.run_round(r, participants, dropped, weights, vec)
        except ProtocolAbort as exc:
            rec.update(aborted=True, abort_reason=str(exc), survivors=[], seconds=time.perf_counter() - t0)
            hist.rounds.append(rec)
            continue
        res, m = out.result, out.metrics
        rec.update(norm_clipped=sum(bool(v.get("clipped")) for v in m.values()),
                   train_loss=_mean([v["loss"] for v in m.values()]))
        compress_clipped = sum(int(v.get("compress_clipped", 0)) for v in m.values())
        q99 = [v["recon_q99"] for v in m.values() if "recon_q99" in v]
        survivors = sorted(res.survivors)
        delta = res.mean
        t_srv = time.process_time()
        if cfg.aggregator != "fedavg" and cfg.backend == "plain":
            delta, selected = _robust(cfg, out.updates, weights, survivors)
            rec["selected"] = selected
        elif "selected" in res.stats:
            rec["selected"] = sorted(int(i) for i in res.stats["selected"])
        if rep is not None:
            if out.updates is not None:
                rep.update(r, survivors, np.stack([out.updates[c] for c in survivors]), delta)
            elif "distances" in res.stats:
                rep.update_from_distances(r, res.stats["distance_clients"], res.stats["distances"],
                                          res.stats["selected"])
            rec["excluded"] = sorted(rep.excluded)
        if privacy is not None and getattr(privacy, "mode", None) == "distributed":
            privacy.record(participants, len(survivors))  # the server has seen the noisy sum
            rec["epsilon"] = privacy.epsilon
            try:
                delta = privacy.decode(delta, len(survivors))
            except ProtocolAbort as exc:
                rec.update(aborted=True, abort_reason=str(exc), survivors=survivors,
                           seconds=time.perf_counter() - t0)
                hist.rounds.append(rec)
                continue
            rec["noise_std_survived"] = privacy.survived_noise[-1]
        elif privacy is not None:
            if privacy.unit == "client":
                delta = privacy.finish_sum(delta * len(survivors), rng)
            privacy.record(participants, len(survivors))
            rec["epsilon"] = privacy.epsilon
        vec = strategy.update(vec, delta)
        if q99:
            threshold = float(np.median(q99))
        rec.update(aborted=False, survivors=survivors, bytes_up=res.bytes_up, bytes_down=res.bytes_down,
                   mb_up=res.bytes_up / 1e6, mb_down=res.bytes_down / 1e6,
                   model_bytes_down=4 * vec.size * len(participants),
                   backend_clipped=int(res.stats.get("clipped", 0)) + compress_clipped,
                   atol=res.stats.get("atol", atol),
                   server_cpu_s=float(res.stats.get("server_cpu_s", 0.0)) + time.process_time() - t_srv,
                   client_cpu_s_max=res.stats.get("client_cpu_s_max"))
        rec["cpu_s"] = time.process_time() - c0  # all simulated parties' training + protocol CPU
        if rec["backend_clipped"]:
            rec["warning"] = f"{rec['backend_clipped']} values outside the backend's declared range were clipped"
        if r % cfg.eval_every == 0 or r == cfg.rounds:
            set_vector(model, vec)
            rec.update(evaluate(model, test[0], test[1], task, threshold=threshold, target_scale=target_scale))
        rec["seconds"] = time.perf_counter() - t0
        hist.rounds.append(rec)
    return _finish(hist, model, vec, privacy)


def _mean(xs):
    xs = [x for x in xs if x == x]
    return float(np.mean(xs)) if xs else None


def _finish(hist: History, model, vec, privacy) -> History:
    set_vector(model, vec)
    hist.model = model
    done = [r for r in hist.rounds if not r.get("aborted")]
    last_eval = next((r for r in reversed(done) if "test_loss" in r), {})
    f = hist.final
    for k in ("accuracy", "f1", "rmse", "nasa_score", "roc_auc", "test_loss", "threshold",
              "ACC", "SEN", "SPE", "PRE", "JSS", "FPR", "FNR"):
        if k in last_eval:
            f[k] = last_eval[k]
    f["rounds_completed"] = len(done)
    f["rounds_aborted"] = len(hist.rounds) - len(done)
    n = max(1, len(done))
    f["bytes_up_per_round"] = sum(r["bytes_up"] for r in done) / n
    f["bytes_down_per_round"] = sum(r["bytes_down"] for r in done) / n
    f["model_bytes_down_per_round"] = sum(r["model_bytes_down"] for r in done) / n
    f["seconds_per_round"] = sum(r["seconds"] for r in hist.rounds) / max(1, len(hist.rounds))
    f["cpu_s_per_round"] = sum(r["cpu_s"] for r in done) / n
    f["server_cpu_s_per_round"] = sum(r["server_cpu_s"] for r in done) / n
    f["backend_clipped"] = sum(r["backend_clipped"] for r in done)
    f["norm_clipped"] = sum(r.get("norm_clipped", 0) for r in hist.rounds)
    excluded = [r["excluded"] for r in hist.rounds if "excluded" in r]
    if excluded:
        f["excluded"] = excluded[-1]
    if privacy is not None:
        f["epsilon"] = privacy.epsilon
        f["delta"] = privacy.delta
        f.update(privacy.summary())
    return hist
