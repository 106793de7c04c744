"""Wall time per FL round on a loopback Flower federation (1 SuperLink + N SuperNodes on
127.0.0.1, :func:`fl.flower.run_flower`) against the in-process simulation
(:func:`fl.run`), same configuration, same run of this script.

    privcrypt bench flower [--clients 3] [--rounds 2] [--backend masking] [--json]

Reports, per transport: seconds per round; for Flower also each stage's wall time, the
number of pull calls and the slowest ClientApp handler (the rest of a stage is Flower's
own polling and process start-up: see docs/deploy.md).
"""

from __future__ import annotations

import time

DESCRIPTION = "FL rounds over a loopback Flower federation vs the in-process simulation (wall time per round)"


def add_arguments(parser) -> None:
    parser.add_argument("--clients", type=int, default=3, help="SuperNodes / clients")
    parser.add_argument("--rounds", type=int, default=2, help="FL rounds")
    parser.add_argument("--backend", default="masking", choices=("plain", "masking", "ckks"),
                        help="secure aggregation backend")


def run(args) -> dict | None:
    from benchmarks.harness import finish, markdown_table

    from fl.config import FLConfig
    from fl.flower.config import Scenario, from_run_config, to_run_config
    from fl.flower.launch import run_flower
    from fl.server import run

    cfg = FLConfig(rounds=args.rounds, backend=args.backend, optimizer="adam", lr=0.005, local_epochs=1,
                   batch_size=16, backend_params={"rounding": "nearest"} if args.backend == "masking" else {})
    t0 = time.perf_counter()
    res = run_flower(cfg, "digits", args.clients, stage_timeout=300.0)
    flower_wall = time.perf_counter() - t0

    cfg2, deploy = from_run_config(to_run_config(cfg, dataset="digits", num_clients=args.clients))
    sc = Scenario(cfg2, deploy)
    test, scale = sc.test_set()
    t1 = time.perf_counter()
    hist = run(sc.model_fn(), sc.clients(args.clients), test, cfg2, task=sc.dataset.task, show_progress=False,
               target_scale=scale)
    sim_wall = time.perf_counter() - t1

    stages = {}
    for rec in res["flower"]["transport"]:
        for s in rec["stages"]:
            d = stages.setdefault(s["stage"], {"seconds": [], "polls": [], "handler_s_max": []})
            d["seconds"].append(round(s["seconds"], 2))
            d["polls"].append(s["polls"])
            d["handler_s_max"].append(s["handler_s_max"] and round(s["handler_s_max"], 2))
    out = {
        "config": {"clients": args.clients, "rounds": args.rounds, "backend": args.backend, "dataset": "digits"},
        "flower": {"seconds_per_round": res["final"]["seconds_per_round"], "wall_s": round(flower_wall, 1),
                   "hello_s": round(res["flower"]["hello_s"], 2), "stages": stages,
                   "accuracy": res["final"].get("accuracy")},
        "simulation": {"seconds_per_round": hist.final["seconds_per_round"], "wall_s": round(sim_wall, 1),
                       "accuracy": hist.final.get("accuracy")},
    }
    out["ratio_seconds_per_round"] = out["flower"]["seconds_per_round"] / out["simulation"]["seconds_per_round"]
    rows = [{"transport": t, "seconds_per_round": out[t]["seconds_per_round"], "accuracy": out[t]["accuracy"]}
            for t in ("flower", "simulation")]
    stage_rows = [{"stage": k, "seconds": v["seconds"], "polls": v["polls"], "handler_s_max": v["handler_s_max"]}
                  for k, v in stages.items()]
    md = markdown_table(rows) + "\n\nFlower stages (per round):\n\n" + markdown_table(stage_rows)
    return finish("flower", out, md, args)
