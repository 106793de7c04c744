"""privcrypt.rng throughput vs numpy's PCG64 (non-cryptographic) in the same run."""

from __future__ import annotations

DESCRIPTION = "CSPRNG throughput (uniform uint64, normals) vs numpy PCG64"


def add_arguments(parser) -> None:
    parser.add_argument("--n", type=int, default=10**7, help="elements per draw")


def run(args) -> dict:
    import numpy as np

    from benchmarks.harness import finish, markdown_table, measure, ratio
    from privcrypt.rng import SystemRandom

    n = 10**6 if args.quick else args.n
    repeat = 3 if args.quick else 7
    ours, pcg = SystemRandom(), np.random.Generator(np.random.PCG64())
    cases = {
        "uniform_uint64": (
            lambda: ours.integers(2**64, n, dtype=np.uint64),
            lambda: pcg.integers(0, 2**64, n, dtype=np.uint64, endpoint=False),
        ),
        "uniform_below_3*2^61": (
            lambda: ours.integers(3 * 2**61, n),
            lambda: pcg.integers(0, 3 * 2**61, n),
        ),
        "normal": (lambda: ours.normal(1.0, n), lambda: pcg.standard_normal(n)),
    }
    rows = []
    for case, (f_ours, f_base) in cases.items():
        a, b = measure(f_ours, repeat=repeat), measure(f_base, repeat=repeat)
        rows.append({
            "case": case,
            "ours_M_per_s": n / a["wall_s"] / 1e6,
            "numpy_pcg64_M_per_s": n / b["wall_s"] / 1e6,
            "ours_over_numpy": ratio(n / a["wall_s"], n / b["wall_s"]),
        })
    data = {"n": n, "rows": rows, "baseline": "numpy PCG64 (not a CSPRNG)"}
    return finish("rng", data, markdown_table(rows), args)
