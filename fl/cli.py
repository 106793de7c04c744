"""``privcrypt fl run``: a federated run on a built-in offline data set.

Flags mirror :class:`fl.FLConfig` (dashes for underscores); ``--config FILE.toml`` reads
the same keys, and flags given on the command line win over the file. Nothing heavy
(torch, the data sets) is imported until the command runs, so ``privcrypt --help`` stays
fast.
"""

from __future__ import annotations

import argparse
import json
import sys

from privcrypt.cli import add_json_flag

DATASETS = ("digits", "mnist5k", "cmapss", "iiot")
PARTITIONS = ("iid", "dirichlet", "unit")

#: Training settings that work for each built-in data set (measured in bench fl); used
#: where neither a flag nor --config sets the key.
PRESETS = {
    "digits": {"optimizer": "adam", "lr": 0.005, "local_epochs": 2, "batch_size": 16},
    "mnist5k": {"optimizer": "adam", "lr": 0.002, "local_epochs": 1, "batch_size": 32},
    "cmapss": {"optimizer": "adam", "lr": 0.005, "local_epochs": 1, "batch_size": 64},
    "iiot": {"optimizer": "adam", "lr": 0.005, "local_epochs": 2, "batch_size": 64},
}

# (flag, FLConfig field, type, help)
_FIELDS = [
    ("--rounds", "rounds", int, "federated rounds (default 10)"),
    ("--local-epochs", "local_epochs", int, "local epochs per round (default 1)"),
    ("--batch-size", "batch_size", int, "local batch size (default 32)"),
    ("--lr", "lr", float, "client learning rate (default 0.05)"),
    ("--optimizer", "optimizer", str, "client optimizer: sgd or adam (default sgd)"),
    ("--clients-per-round", "clients_per_round", int, "fixed number of clients per round (default: all)"),
    ("--sample-rate", "sample_rate", float, "Poisson client sampling rate instead of a fixed count"),
    ("--clip-norm", "clip_norm", float, "L2 bound C on each client update (default 5.0)"),
    ("--backend", "backend", str, "secure aggregation: plain, masking, spdz or ckks (default masking)"),
    ("--aggregator", "aggregator", str,
     "fedavg, median, trimmed, krum, multikrum, bulyan, centered_clip, normbound (default fedavg)"),
    ("--byzantine-f", "byzantine_f", int, "Byzantine clients a robust rule must tolerate (default: --byzantine)"),
    ("--byzantine", "byzantine", int, "number of Byzantine clients (default 0)"),
    ("--attack", "attack", str, "Byzantine attack: signflip, scaling, gaussian, labelflip, alie, ipm"),
    ("--attack-scale", "attack_scale", float, "attack strength S (attack-specific default)"),
    ("--strategy", "strategy", str, "server optimizer: fedavg, fedavgm or fedadam (default fedavg)"),
    ("--server-lr", "server_lr", float, "server learning rate (default 1.0)"),
    ("--dp-epsilon", "dp_epsilon", float, "differential privacy budget epsilon (default: no DP)"),
    ("--dp-delta", "dp_delta", float, "DP delta (default 1e-5)"),
    ("--dp-unit", "dp_unit", str, "example (DP-SGD in each client) or client (DP-FedAvg) (default example)"),
    ("--dp-mode", "dp_mode", str, "client unit: central, local or distributed (default central)"),
    ("--dp-noise-multiplier", "dp_noise_multiplier", float,
     "explicit noise multiplier (the budget guard stops before overspending)"),
    ("--dp-accountant", "dp_accountant", str, "rdp or pld (default rdp)"),
    ("--dp-min-survivors", "dp_min_survivors", int,
     "distributed DP: fewest survivors a round accepts; noise calibrated for them (default 70%%)"),
    ("--dp-bits", "dp_bits", int, "distributed DP: integer encoding modulus 2^bits (default 20)"),
    ("--compression", "compression", str, "none, q8, q16 or topk (default none)"),
    ("--dropout", "dropout", float, "probability a sampled client goes silent after key set-up (default 0)"),
    ("--adv-train", "adv_train", str,
     "adversarial training: an attack name (fgsm, pgd, bim, ...) or fda3 (per-client attacks)"),
    ("--adv-alpha", "adv_alpha", float, "weight a of the adversarial loss (default 0.5)"),
    ("--adv-eps", "adv_eps", float, "attack budget for adversarial training (attack default)"),
    ("--seed", "seed", int, "seed for data order, model init, sampling and dropouts (default 0)"),
    ("--threads", "torch_threads", int, "torch threads (default 1)"),
]


def add_parser(sub) -> None:
    p = sub.add_parser("fl", help="federated learning with secure aggregation and DP")
    fsub = p.add_subparsers(dest="fl_command", metavar="COMMAND")
    r = fsub.add_parser("run", help="train across clients on a built-in offline data set",
                        description="Train a model across N clients of a built-in data set; "
                                    "flags mirror FLConfig (docs/fl.md).")
    r.add_argument("--dataset", default=None, choices=DATASETS, help="data set (default digits)")
    r.add_argument("--clients", type=int, default=None, help="number of clients (default 10)")
    r.add_argument("--partition", default=None, choices=PARTITIONS,
                   help="iid, dirichlet (label skew) or unit (one engine/machine per client); "
                        "default: unit for cmapss/iiot, else iid")
    r.add_argument("--alpha", type=float, default=None, help="Dirichlet concentration (default 0.5)")
    r.add_argument("--model", default=None, choices=("cnn", "lenet", "mlp", "lstm", "lstm_ae"),
                   help="model (default: by data set)")
    for flag, field, typ, hlp in _FIELDS:
        r.add_argument(flag, dest=field, type=typ, default=None, help=hlp)
    r.add_argument("--engine", default="sim", choices=("sim", "flower"),
                   help="sim: every client in this process; flower: a local Flower federation "
                        "(SuperLink + one SuperNode per client on 127.0.0.1, docs/deploy.md)")
    r.add_argument("--config", default=None, help="TOML file with FLConfig keys (flags win)")
    r.add_argument("--out", default=None, help="write history.json, rounds.csv and curves.png here")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(r)
    r.set_defaults(func=run_command)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser) -> None:
    parser.print_usage(sys.stderr)
    raise ValueError("choose a subcommand: privcrypt fl run ...")


def config_from_args(args, preset: dict | None = None):
    """The FLConfig from the data set's preset, ``--config`` and the flags (in that order;
    later wins)."""
    from fl.config import FLConfig

    overrides = {field: getattr(args, field) for _, field, _, _ in _FIELDS if getattr(args, field) is not None}
    if "byzantine_f" not in overrides and "byzantine" in overrides:
        overrides["byzantine_f"] = overrides["byzantine"]
    data = dict(preset or {})
    if args.config:
        file_cfg = FLConfig.from_toml(args.config)  # validates the file on its own
        data.update({k: v for k, v in file_cfg.to_dict().items() if k in _toml_keys(args.config)})
    data.update(overrides)
    return FLConfig.from_dict(data)


def _toml_keys(path) -> set[str]:
    import tomllib
    from pathlib import Path

    return set(tomllib.loads(Path(path).read_text(encoding="utf-8")))


def _run_flower(args, cfg, name: str, n_clients: int) -> dict | None:
    """``--engine flower``: the same run over a loopback Flower federation."""
    import json as _json
    from pathlib import Path

    from fl.flower import run_flower
    from fl.history import json_safe

    res = run_flower(cfg, name, n_clients, partition=args.partition or "",
                     alpha=0.5 if args.alpha is None else args.alpha, model=args.model or "")
    out = {"dataset": name, "clients": n_clients, "engine": "flower", **res.get("final", {}),
           "flower": res.get("flower", {})}
    if args.out:
        d = Path(args.out)
        d.mkdir(parents=True, exist_ok=True)
        (d / "history.json").write_text(_json.dumps(json_safe(res), indent=1, allow_nan=False))
        out["files"] = [str(d / "history.json")]
    out["config"] = cfg.to_dict()
    if not args.json:
        for k, v in json_safe(out).items():
            if k != "config":
                print(f"{k}: {_json.dumps(v) if isinstance(v, (dict, list)) else v}")
        return None
    return json_safe(out)


def training_view(ds, clients):
    """Regression targets scaled to about [0, 1] for training (C-MAPSS RUL / its cap) so
    that updates stay within a sensible clip norm; metrics are reported back in the
    target's units. Returns ``(clients, test, target_scale)``."""
    scale = float(ds.meta.get("rul_cap", 1.0)) if ds.task == "regression" else 1.0
    if scale == 1.0:
        return clients, (ds.X_test, ds.y_test), 1.0
    return ([(X, y / scale) for X, y in clients], (ds.X_test, ds.y_test / scale), scale)


def run_command(args) -> dict:
    from pathlib import Path

    name = args.dataset or "digits"
    cfg = config_from_args(args, PRESETS[name])  # validated before any data is loaded
    n_clients = 10 if args.clients is None else args.clients
    if n_clients < 1:
        raise ValueError(f"--clients must be >= 1, got {n_clients}")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out!r} exists and is not a directory")
    if args.engine == "flower":
        return _run_flower(args, cfg, name, n_clients)
    from fl.data import load_dataset, split_clients
    from fl.models import default_model_fn
    from fl.server import run

    ds = load_dataset(name, seed=cfg.seed)
    scheme = args.partition or ("unit" if ds.groups_train is not None else "iid")
    clients = split_clients(ds, n_clients, scheme=scheme, alpha=0.5 if args.alpha is None else args.alpha,
                            seed=cfg.seed)
    clients, test, scale = training_view(ds, clients)
    model_fn = default_model_fn(ds.input_shape, ds.task, ds.n_classes, args.model)
    hist = run(model_fn, clients, test, cfg, task=ds.task,
               show_progress=False if args.quiet else None, target_scale=scale)
    out = {"dataset": name, "task": ds.task, "clients": n_clients, "partition": scheme, **hist.final}
    if args.out:
        out["files"] = hist.save(args.out)
    out["config"] = cfg.to_dict()
    from fl.history import json_safe
    if not args.json:
        for k, v in json_safe(out).items():
            if k not in ("config",):
                print(f"{k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}")
        return None
    return json_safe(out)
