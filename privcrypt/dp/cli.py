"""``privcrypt dp epsilon|sigma``: accounting from the command line.

    privcrypt dp epsilon --noise-multiplier S --sample-rate Q --steps T --delta D --accountant rdp|pld --json
    privcrypt dp sigma --epsilon E --delta D --sample-rate Q --steps T --accountant rdp|pld --json
"""

from __future__ import annotations

from privcrypt.cli import add_json_flag


def _common(p) -> None:
    p.add_argument("--sample-rate", type=float, required=True, help="Poisson sampling rate q in [0, 1]")
    p.add_argument("--steps", type=int, required=True, help="number of steps T")
    p.add_argument("--delta", type=float, required=True, help="target delta")
    p.add_argument("--accountant", choices=("rdp", "pld"), default="rdp", help="privacy accountant: rdp (Renyi DP, an upper bound) or pld (privacy loss distribution, tight)")
    add_json_flag(p)


def _epsilon(args) -> dict:
    from privcrypt.dp.calibrate import compute_epsilon

    eps = compute_epsilon(args.noise_multiplier, args.sample_rate, args.steps, args.delta, args.accountant)
    return {"epsilon": eps, "delta": args.delta, "noise_multiplier": args.noise_multiplier,
            "sample_rate": args.sample_rate, "steps": args.steps, "accountant": args.accountant}


def _sigma(args) -> dict:
    from privcrypt.dp.calibrate import compute_epsilon, noise_multiplier_for

    sigma = noise_multiplier_for(args.epsilon, args.delta, args.sample_rate, args.steps, args.accountant)
    achieved = compute_epsilon(sigma, args.sample_rate, args.steps, args.delta, args.accountant)
    return {"noise_multiplier": sigma, "epsilon": achieved, "target_epsilon": args.epsilon,
            "delta": args.delta, "sample_rate": args.sample_rate, "steps": args.steps,
            "accountant": args.accountant}


def add_parser(sub) -> None:
    parser = sub.add_parser("dp", help="differential privacy: epsilon of a run, noise for a target")
    dsub = parser.add_subparsers(dest="dp_command", metavar="{epsilon,sigma}", required=True)
    p = dsub.add_parser("epsilon", help="epsilon after T Poisson-subsampled Gaussian steps")
    p.add_argument("--noise-multiplier", type=float, required=True, help="noise std / clip norm (0: no noise, epsilon is infinite)")
    _common(p)
    p.set_defaults(func=_epsilon)
    p = dsub.add_parser("sigma", help="smallest noise multiplier that meets a target epsilon")
    p.add_argument("--epsilon", type=float, required=True, help="target epsilon")
    _common(p)
    p.set_defaults(func=_sigma)

