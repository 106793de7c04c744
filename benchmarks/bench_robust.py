"""Robust aggregation: Krum on SPDZ shares vs plaintext Krum (and vs the SPDZ mean).

Part 1 (here now): for K clients x d values, of which f = K // 5 send -10x their update,
one round of

* ``spdz-krum`` (Krum on shares: matrix-Beaver Gram product, only the K x K distance matrix
  opened), with and without the in-MPC range proof;
* plaintext Krum: the ``plain`` backend's round (clients send their updates in the clear;
  its bytes) plus ``fl.aggregation.krum`` on them (its seconds);
* the ``spdz`` backend's plain mean on shares (the secure baseline without robustness).

Reported per cell: wall seconds per round (median of ``--repeat``), bytes up per client and
per round, inter-party bytes, whether the selection on shares equals plaintext Krum's, and
the ratios. Everything is measured in the same process run.

Part 2 (hook for the FL layer): :func:`accuracy_under_attack` takes a callable that runs one
FL experiment from a config dict and returns its metrics, and sweeps aggregator x attack x
number of attackers; :data:`FL_EXPERIMENT` is the callable ``run`` uses (None until the FL
layer sets it; the section is then reported as not run).
"""

from __future__ import annotations

from typing import Callable, Iterable

DESCRIPTION = "robust aggregation: Krum on SPDZ shares vs plaintext Krum (+ FL accuracy under attack hook)"

FULL = [(5, 100_000), (10, 100_000), (20, 100_000)]
FULL_RANGE = [(5, 10_000), (10, 10_000), (20, 10_000)]  # with the range proof (L = 21 bits/value)
QUICK = [(5, 10_000), (10, 10_000)]
QUICK_RANGE = [(5, 1_000)]
CLIP = 1.0

FL_AGGREGATORS = ("fedavg", "median", "trimmed", "krum", "multikrum", "bulyan", "centered_clip", "normbound")
FL_ATTACKS = ("signflip", "scaling", "gaussian", "labelflip", "alie", "ipm")
#: The full grid: every rule x attack x 0-3 attackers on digits (IID and Dirichlet 0.5);
#: on MNIST-5k (4x the CPU per run) the four main rules at 0 and 2 attackers.
FL_GRIDS_FULL = (
    {"datasets": ("digits",), "partitions": ("iid", "dirichlet"), "byzantine": (0, 1, 2, 3), "rounds": 6},
    {"datasets": ("mnist5k",), "partitions": ("iid", "dirichlet"), "byzantine": (0, 2), "rounds": 5,
     "aggregators": ("fedavg", "median", "trimmed", "krum")},
)
FL_GRIDS_QUICK = ({"datasets": ("digits",), "partitions": ("iid",), "byzantine": (0, 2), "rounds": 3,
                   "aggregators": ("fedavg", "median", "krum"), "attacks": ("signflip", "alie")},)
_FL_CACHE: dict = {}


def fl_experiment(cfg: dict) -> dict:
    """One FL run (``fl.run``) of 10 clients with ``cfg``'s aggregator, attack and number of
    attackers (``byzantine``; the rule is told ``f`` = that number) on ``cfg["dataset"]`` /
    ``cfg["partition"]``; with ``reputation`` also the precision and recall of its
    exclusions. Returns accuracy and, with reputation, precision/recall."""
    from fl.cli import PRESETS
    from fl.config import FLConfig
    from fl.data import load_dataset, split_clients
    from fl.models import default_model_fn
    from fl.server import run as fl_run

    key = (cfg["dataset"], cfg["partition"])
    if key not in _FL_CACHE:
        ds = load_dataset(cfg["dataset"], seed=0)
        _FL_CACHE[key] = (ds, split_clients(ds, 10, scheme=cfg["partition"], alpha=0.5, seed=0))
    ds, clients = _FL_CACHE[key]
    b = int(cfg["byzantine"])
    fc = FLConfig(rounds=cfg["rounds"], backend="plain", aggregator=cfg["aggregator"], byzantine=b,
                  byzantine_f=b, attack=None if b == 0 else cfg["attack"], reputation=cfg.get("reputation", False),
                  seed=0, **PRESETS[cfg["dataset"]])
    h = fl_run(default_model_fn(ds.input_shape, ds.task, ds.n_classes), clients, (ds.X_test, ds.y_test), fc,
               show_progress=False)
    out = {"accuracy": h.final["accuracy"]}
    if cfg.get("reputation"):
        bad, exc = set(h.final["attackers"]), set(h.final.get("excluded", ()))
        out["precision"] = len(bad & exc) / len(exc) if exc else (1.0 if not bad else None)
        out["recall"] = len(bad & exc) / len(bad) if bad else None
    return out


#: The FL experiment ``run`` sweeps (replaceable, e.g. by a test with a stub).
FL_EXPERIMENT: Callable[[dict], dict] | None = fl_experiment


def add_arguments(parser) -> None:
    parser.add_argument("--repeat", type=int, default=None, help="rounds per cell (median)")
    parser.add_argument("--sizes", default=None, help="comma-separated KxD, e.g. 10x100000")
    parser.add_argument("--no-range", action="store_true", help="skip the range-proof rows")
    parser.add_argument("--no-fl", action="store_true", help="skip the FL accuracy-under-attack grid")


def _updates(k: int, d: int, f: int):
    import numpy as np

    from privcrypt.rng import DeterministicRandom

    rng = DeterministicRandom(f"bench-robust-{k}-{d}")  # benchmark data, not secrets
    base = rng.normal(0.05, d)
    ups = {}
    for i in range(k):
        u = np.clip(base + rng.normal(0.05, d), -CLIP, CLIP)
        if i >= k - f:
            u = np.clip(-10.0 * u, -CLIP, CLIP)  # sign flip x10 (clipped to the declared range)
        ups[i] = np.round(u * 2**16) / 2**16  # on the fixed-point grid: both sides see the same values
    return ups


def distances_gram_vs_pairwise(ups: dict) -> dict:
    """The design choice, measured: the K x K squared distances on shares by the matrix-Beaver
    Gram product (what ``spdz-krum`` does) vs one elementwise Beaver product per coordinate of
    every pair's difference (K(K-1)/2 x d triples). Process CPU seconds (dealer included),
    opened elements, and whether both open the same matrix."""
    import time

    import numpy as np

    from privcrypt.mpc import SpdzEngine
    from privcrypt.rng import DeterministicRandom
    from privcrypt.secagg import spdz_robust as R

    k = len(ups)
    eng = SpdzEngine(3, 16, DeterministicRandom("bench-gram"), bound=CLIP)
    x = R._stack([eng.share(ups[i]) for i in sorted(ups)])
    opened0 = eng.stats["opened_elements"]
    c0 = time.process_time()
    gram = eng.open(R.sq_distances_on_shares(R.gram_on_shares(eng, x)))
    gram_cpu = time.process_time() - c0
    gram_open = eng.stats["opened_elements"] - opened0

    eng2 = SpdzEngine(3, 16, DeterministicRandom("bench-pairs"), bound=CLIP)
    rows = [eng2.share(ups[i]) for i in sorted(ups)]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    c0 = time.process_time()
    sq = [eng2.norm2(eng2.sub(rows[i], rows[j])) for i, j in pairs]  # exact, no truncation
    pair_vals = eng2.open(R._stack([v.reshape(1) for v in sq]).reshape(len(sq)))
    pair_cpu = time.process_time() - c0
    iu = np.triu_indices(k, 1)
    return {"gram_cpu_s": gram_cpu, "pairwise_beaver_cpu_s": pair_cpu,
            "pairwise_vs_gram_cpu": pair_cpu / gram_cpu if gram_cpu else None,
            "gram_opened": gram_open, "pairwise_opened": eng2.stats["opened_elements"],
            "pairwise_triples": eng2.stats["triples"],
            "gram_equals_pairwise": bool(np.array_equal(gram[iu], pair_vals))}


def krum_cell(k: int, d: int, *, verify_range: bool, repeat: int) -> dict:
    """One (K, d) cell: spdz-krum vs plaintext Krum vs the spdz mean."""
    import numpy as np

    from benchmarks.harness import measure, ratio
    from fl.aggregation import krum
    from privcrypt.secagg import make_aggregator

    f = max(1, k // 5)
    ups = _updates(k, d, f)
    ids = sorted(ups)
    x = np.array([ups[i] for i in ids])

    # plain Krum (m = 1) to compare with plaintext Krum: its output is one client's update,
    # hence the explicit opt-ins (and trust_clients for the cells without the range proof)
    sk = make_aggregator("spdz-krum", f=f, clip=CLIP, verify_range=verify_range, reveal_individual=True,
                         trust_clients=not verify_range)
    m_sk = measure(lambda: sk.aggregate(ups), repeat=repeat, warmup=0)
    res = m_sk["result"]

    plain = make_aggregator("plain")

    def plain_krum():
        r = plain.aggregate(ups)  # the clients' messages in the clear (bytes)
        return r, krum(x, f)

    m_pk = measure(plain_krum, repeat=repeat, warmup=0)
    pres, (pagg, psel) = m_pk["result"]

    sp = make_aggregator("spdz", clip=CLIP, verify_range=verify_range)
    m_sp = measure(lambda: sp.aggregate(ups), repeat=repeat, warmup=0)
    spres = m_sp["result"]

    n_up = len(ups)
    design = {} if verify_range else distances_gram_vs_pairwise(ups)
    return {**design,
        "clients": k, "values": d, "f": f, "range_proof": verify_range,
        "same_selection": res.stats["selected"] == [ids[i] for i in psel],
        "selected": res.stats["selected"],
        "attackers_selected": sorted(set(res.stats["selected"]) & set(ids[k - f:])),
        "max_abs_err_vs_plain_krum": float(np.abs(res.mean - pagg).max()),
        "spdz_krum_s": m_sk["wall_s"], "plain_krum_s": m_pk["wall_s"], "spdz_mean_s": m_sp["wall_s"],
        "krum_shares_vs_plain": ratio(m_sk["wall_s"], m_pk["wall_s"]),
        "krum_shares_vs_spdz_mean": ratio(m_sk["wall_s"], m_sp["wall_s"]),
        # process CPU of the whole simulated round (all parties, dealer and clients): steadier
        # than wall time on a loaded shared machine
        "spdz_krum_cpu_s": m_sk["cpu_s"], "plain_krum_cpu_s": m_pk["cpu_s"], "spdz_mean_cpu_s": m_sp["cpu_s"],
        "cpu_krum_shares_vs_plain": ratio(m_sk["cpu_s"], m_pk["cpu_s"]),
        "cpu_krum_shares_vs_spdz_mean": ratio(m_sk["cpu_s"], m_sp["cpu_s"]),
        "spdz_krum_party_cpu_s": res.stats["server_cpu_s"], "spdz_krum_dealer_cpu_s": res.stats["dealer_cpu_s"],
        "up_per_client": res.bytes_up / n_up, "plain_up_per_client": pres.bytes_up / n_up,
        "up_vs_plain": ratio(res.bytes_up, pres.bytes_up),
        "bytes_per_round": res.bytes_up + res.bytes_down,
        "plain_bytes_per_round": pres.bytes_up + pres.bytes_down,
        "spdz_mean_bytes_per_round": spres.bytes_up + spres.bytes_down,
        "inter_party_bytes": res.stats["inter_party_bytes"],
        "spdz_mean_inter_party_bytes": spres.stats["inter_party_bytes"],
        "opened_distances": k * (k - 1) // 2, "gram_elements": res.stats["gram_elements"],
        "triples": res.stats["triples"],
    }


def synthetic_attack_grid(*, rounds: int = 40, n: int = 10, d: int = 20, byzantine=(0, 1, 2, 3),
                          seed: int = 0) -> list[dict]:
    """Numpy-only stand-in until the FL layer lands: federated least squares (each client
    holds 50 noisy samples of ``y = X·w*``; its update is one full-batch gradient step,
    ``lr = 0.1``), ``rounds`` rounds, the last ``b`` clients attacking every round with each
    model-poisoning attack. Reports the relative error ``‖w - w*‖/‖w*‖`` after the last
    round for every rule (``f = b`` given to the rule); ``error`` when the rule cannot run
    with that ``(n, f)``. ``labelflip`` needs a classifier and is left to the FL part."""
    import numpy as np

    from fl.aggregation import AGGREGATORS, robust_aggregate
    from fl.attacks import make_attack
    from privcrypt.rng import DeterministicRandom

    data = np.random.default_rng(seed)  # synthetic data, not secrets
    w_star = data.normal(size=d)
    xs = [data.normal(size=(50, d)) + 0.3 * data.normal(size=d) for _ in range(n)]  # shifted: non-IID
    ys = [x @ w_star + 0.1 * data.normal(size=50) for x in xs]
    rows = []
    for atk_name in ("none", "signflip", "scaling", "gaussian", "alie", "ipm"):
        for b in byzantine:
            if (atk_name == "none") != (b == 0):
                continue
            for rule in AGGREGATORS:
                attack = None if b == 0 else make_attack(atk_name, n_byzantine=b, rng=DeterministicRandom(seed))
                w = np.zeros(d)
                err = None
                for _ in range(rounds):
                    ups = np.array([-0.1 * x.T @ (x @ w - y) / len(y) for x, y in zip(xs, ys)])
                    honest = ups[: n - b].copy()
                    for i in range(n - b, n):
                        ups[i] = attack.corrupt(ups[i], honest)
                    try:
                        w = w + robust_aggregate(rule, ups, f=b).mean
                    except ValueError as exc:
                        err = str(exc)
                        break
                    if not np.all(np.isfinite(w)) or np.linalg.norm(w) > 1e12:
                        break
                rel = None if err else float(np.linalg.norm(w - w_star) / np.linalg.norm(w_star))
                rows.append({"aggregator": rule, "attack": atk_name, "byzantine": b,
                             "rel_error": rel, "error": err})
    return rows


def accuracy_under_attack(run_experiment: Callable[[dict], dict], *, aggregators: Iterable[str],
                          attacks: Iterable[str], byzantine: Iterable[int], base: dict | None = None) -> list[dict]:
    """The FL part's hook: for every aggregator x attack x number of attackers, call
    ``run_experiment({**base, "aggregator": a, "attack": atk, "byzantine": b})`` (a callable
    the FL layer provides: it trains and returns a metrics dict with at least "accuracy" or
    "rmse", optionally "excluded"/"attackers" for reputation precision/recall) and collect
    one row per run. ``byzantine = 0`` is run once per aggregator (no attack)."""
    rows = []
    for agg in aggregators:
        for b in byzantine:
            for atk in (["none"] if b == 0 else list(attacks)):
                cfg = {**(base or {}), "aggregator": agg, "attack": atk, "byzantine": int(b)}
                try:
                    out = run_experiment(cfg)
                except ValueError as exc:  # an impossible (n, f) for this rule: say so
                    out = {"error": str(exc)}
                rows.append({**cfg, **out})
    return rows


def run(args) -> dict:
    import argparse

    from benchmarks.harness import finish, markdown_table

    quick = bool(getattr(args, "quick", False))
    sizes = QUICK if quick else FULL
    range_sizes = [] if getattr(args, "no_range", False) else (QUICK_RANGE if quick else FULL_RANGE)
    if getattr(args, "sizes", None):
        sizes = [tuple(int(v) for v in c.split("x")) for c in args.sizes.split(",")]
        range_sizes = [] if getattr(args, "no_range", False) else [(k, d) for k, d in sizes if d <= 20_000]
    repeat = args.repeat or (1 if quick else 3)
    rows = [krum_cell(k, d, verify_range=False, repeat=repeat) for k, d in sizes]
    rows += [krum_cell(k, d, verify_range=True, repeat=1) for k, d in range_sizes]
    data = {
        "quick": quick,
        "repeat": repeat,
        "clip": CLIP,
        "krum_on_shares": rows,
        "all_same_selection": all(r["same_selection"] for r in rows),
        "synthetic_least_squares": synthetic_attack_grid(rounds=15 if quick else 40),
    }
    if FL_EXPERIMENT is not None and not getattr(args, "no_fl", False):
        fl_rows, rep_rows = [], []
        from privcrypt.progress import progress

        for grid, ds_name in [(g, d) for g in (FL_GRIDS_QUICK if quick else FL_GRIDS_FULL) for d in g["datasets"]]:
            for part in grid["partitions"]:
                base = {"dataset": ds_name, "partition": part, "rounds": grid["rounds"]}
                fl_rows += accuracy_under_attack(
                    FL_EXPERIMENT, aggregators=grid.get("aggregators", FL_AGGREGATORS),
                    attacks=grid.get("attacks", FL_ATTACKS), byzantine=grid["byzantine"], base=base)
                for atk in progress(grid.get("attacks", FL_ATTACKS), desc="reputation"):
                    cfg = {**base, "aggregator": "median", "attack": atk, "byzantine": 2, "reputation": True}
                    rep_rows.append({**cfg, **FL_EXPERIMENT(cfg)})
        data["fl_accuracy_under_attack"] = fl_rows
        data["fl_reputation"] = rep_rows
    cols = ["clients", "values", "f", "range_proof", "same_selection", "spdz_krum_s", "plain_krum_s",
            "krum_shares_vs_plain", "spdz_mean_s", "krum_shares_vs_spdz_mean", "spdz_krum_cpu_s",
            "cpu_krum_shares_vs_plain", "cpu_krum_shares_vs_spdz_mean", "up_per_client",
            "plain_up_per_client", "up_vs_plain", "inter_party_bytes", "gram_cpu_s",
            "pairwise_beaver_cpu_s", "pairwise_vs_gram_cpu", "gram_equals_pairwise"]
    if quick:  # --quick never writes benchmarks/results
        args = argparse.Namespace(**{**vars(args), "no_write": True})
    syn = _synthetic_table(data["synthetic_least_squares"])
    table = markdown_table(rows, cols) + "\n\nRelative error ||w - w*|| / ||w*|| after the rounds " \
        "(federated least squares, 10 clients; n/a: the rule cannot run with that f)\n\n" + syn
    if data.get("fl_accuracy_under_attack"):
        table += "\n\nFL accuracy under attack (10 clients, plain backend, f = number of attackers)\n\n" + \
            _fl_table(data["fl_accuracy_under_attack"])
        table += "\n\nReputation (median, 2 attackers of 10): precision / recall of its exclusions\n\n" + \
            markdown_table(data["fl_reputation"], ["dataset", "partition", "attack", "accuracy", "precision", "recall"])
    return finish("robust", data, table, args)


def _synthetic_table(rows: list[dict]) -> str:
    """attack x byzantine rows, one column per aggregator."""
    from benchmarks.harness import markdown_table

    from fl.aggregation import AGGREGATORS

    cells: dict[tuple, dict] = {}
    for r in rows:
        key = (r["attack"], r["byzantine"])
        cells.setdefault(key, {"attack": r["attack"], "byzantine": r["byzantine"]})
        cells[key][r["aggregator"]] = "n/a" if r["error"] else (
            "diverged" if r["rel_error"] is None or r["rel_error"] > 1e6 else round(r["rel_error"], 3))
    return markdown_table(list(cells.values()), ["attack", "byzantine", *AGGREGATORS])


def _fl_table(rows: list[dict]) -> str:
    """dataset/partition/attack/byzantine rows, one accuracy column per aggregator."""
    from benchmarks.harness import markdown_table

    cells: dict[tuple, dict] = {}
    for r in rows:
        key = (r["dataset"], r["partition"], r["attack"], r["byzantine"])
        c = cells.setdefault(key, dict(zip(("dataset", "partition", "attack", "byzantine"), key)))
        c[r["aggregator"]] = "n/a" if "error" in r else round(r["accuracy"], 3)
    return markdown_table(list(cells.values()))
