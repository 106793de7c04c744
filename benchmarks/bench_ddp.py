"""Distributed discrete Gaussian: the exact sampler's speed against numpy's float normal
(and privcrypt's CSPRNG float normal) in the same run, the client encode / server decode
cost, and the noise multiplier each accounting route needs for a target epsilon.

Sampler rows: samples/s of ``sample_discrete_gaussian`` (CKS 2020, exact, AES-CTR bits)
vs ``numpy`` PCG64 ``standard_normal`` (float, not a CSPRNG, not exact) vs
``SystemRandom.normal`` (float Box–Muller on AES-CTR bits). Calibration rows: the
smallest noise multiplier meeting epsilon at delta 1e-5 for 100 clients per round: central
continuous Gaussian (exact subsampled RDP), distributed DGauss with Zhu–Wang subsampling
(proven), and the Gaussian-equivalent route (heuristic, see privcrypt/dp/distributed.py).
"""

from __future__ import annotations

DESCRIPTION = "exact discrete Gaussian sampler vs numpy float normal; DDGauss encode/decode; calibration"


def add_arguments(parser) -> None:
    parser.add_argument("--n", type=int, default=10**6, help="samples per sampler run")
    parser.add_argument("--dim", type=int, default=100_000, help="model size for encode/decode")


def run(args) -> dict:
    import numpy as np

    from benchmarks.harness import finish, markdown_table, measure, ratio
    from privcrypt.dp import calibrate_ddgauss, noise_multiplier_for, sample_discrete_gaussian
    from privcrypt.dp.distributed import DDGaussConfig
    from privcrypt.rng import SystemRandom

    if args.quick:
        args.no_write = True  # quick runs never write benchmarks/results
    n = 10**5 if args.quick else args.n
    dim = 10_000 if args.quick else args.dim
    repeat = 2 if args.quick else 5
    ours, pcg = SystemRandom(), np.random.Generator(np.random.PCG64())
    rows = []
    for sigma in ((1.0, 1000.0) if args.quick else (0.5, 1.0, 10.0, 1000.0, 30000.0)):
        a = measure(lambda: sample_discrete_gaussian(sigma, n, rng=ours), repeat=repeat)
        b = measure(lambda: pcg.standard_normal(n) * sigma, repeat=repeat)
        c = measure(lambda: ours.normal(sigma, n), repeat=repeat)
        rows.append({"sigma": sigma, "exact_dgauss_M_per_s": n / a["wall_s"] / 1e6,
                     "numpy_normal_M_per_s": n / b["wall_s"] / 1e6,
                     "csprng_float_normal_M_per_s": n / c["wall_s"] / 1e6,
                     "numpy_over_ours": ratio(a["wall_s"], b["wall_s"])})
    table = markdown_table(rows)

    n_clients = 100
    plan = DDGaussConfig(dim=dim, clip=1.0, noise_multiplier=1.0, n_min=80, n_max=n_clients).plan()
    x = np.random.default_rng(0).normal(size=dim) * 0.001  # data only
    seed = ours.bytes(32)
    enc = measure(lambda: plan.encode(x, seed, rng=ours), repeat=repeat)
    res = enc["result"].residues
    dec = measure(lambda: plan.decode(res, seed, n_clients), repeat=repeat)
    codec = [{"dim": dim, "bits": plan.config.bits, "gamma": plan.gamma, "local_sigma": plan.local_sigma,
              "rounding_inflation": plan.rounding_inflation, "encode_s": enc["wall_s"],
              "decode_s": dec["wall_s"], "wrap_prob_bound": plan.wrap_probability(n_clients)}]
    table += "\n\n" + markdown_table(codec)

    cal = []
    configs = [(1.0, 100)] if args.quick else [(1.0, 100), (0.1, 200), (0.01, 1000)]
    for q, rounds in configs:
        for eps in ((2.0,) if args.quick else (1.0, 2.0, 4.0)):
            central = noise_multiplier_for(eps, 1e-5, q, rounds)
            zw = calibrate_ddgauss(eps, 1e-5, dim=dim, clip=1.0, n_min=n_clients, n_max=n_clients,
                                   sample_rate=q, rounds=rounds).config.noise_multiplier
            ge = calibrate_ddgauss(eps, 1e-5, dim=dim, clip=1.0, n_min=n_clients, n_max=n_clients,
                                   sample_rate=q, rounds=rounds,
                                   subsampling="gaussian-equivalent").config.noise_multiplier
            cal.append({"q": q, "rounds": rounds, "epsilon": eps, "central_gauss_z": central,
                        "ddgauss_zhu_wang_z": zw, "ddgauss_gauss_equiv_z": ge,
                        "zhu_wang_over_central": zw / central})
    table += "\n\n" + markdown_table(cal)
    data = {"n": n, "sampler": rows, "codec": codec, "calibration": cal, "delta": 1e-5,
            "note": "numpy_over_ours = our wall time / numpy's (how many times slower the exact "
                    "sampler is); same process, median of repeats"}
    return finish("ddp", data, table, args)
