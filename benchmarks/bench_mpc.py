"""SPDZ engine throughput (share, open with MAC check, Beaver mul, norm2) vs numpy plaintext.

Every row times our operation and a numpy plaintext operation on the same data in the same
run: share/open vs ``x + y`` (float64), mul vs ``x * y``, norm2 vs ``x·x`` (einsum).
``slowdown_vs_numpy`` is our time per element over numpy's. Targets from issue 3 (2-core
CPU): share+open >= 20 M elements/s, Beaver mul >= 5 M elements/s.

What each row includes:
* ``share``: the input protocol, dealer's authenticated mask included.
* ``open``: partial opening + batched MAC check (coin toss, commit-then-open) + decode.
* ``mul (online)``: Beaver multiplication with pre-dealt triples (the offline phase is the
  ``dealer: triples`` row), exact product at 2f fractional bits, MAC-check fold included.
* ``mul+truncate``: online mul plus truncation back to f bits (dealer pairs dealt inline).
* ``norm2+open``: triples dealt inline, Beaver squares, sum, open of the scalar.
* ``csprng words``: raw ``privcrypt.rng`` 64-bit words (AES-256-CTR). With 3 parties a share
  needs 5 uniform field elements (the dealer's mask: 3 shares, 2 free MAC shares) and an
  open 1 (MAC-check coefficients), so share+open cannot beat 1/6 of this rate on one core
  (the arithmetic runs on ``--threads`` workers; the CSPRNG on one).
"""

from __future__ import annotations

DESCRIPTION = "SPDZ engine: share/open/mul/norm2 elements per second vs numpy plaintext"

TARGETS = {"share+open": 20e6, "mul (online)": 5e6}


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**6, 10**7],
                        help="vector lengths (default 10^6 and 10^7)")
    parser.add_argument("--parties", type=int, default=3, help="SPDZ parties")
    parser.add_argument("--threads", type=int, default=None,
                        help="worker threads of privcrypt.mpc.field (default: CPU count)")


def run(args) -> dict:
    from privcrypt.progress import progress

    import gc
    import os

    import numpy as np

    from benchmarks.harness import finish, markdown_table, measure
    from privcrypt.mpc import SpdzEngine, field
    from privcrypt.rng import SystemRandom

    if args.threads:
        field.set_threads(args.threads)
    sizes = [10**5, 10**6] if args.quick else args.sizes
    data_rng = np.random.default_rng(0)  # public benchmark data, not secrets
    rows = []

    def row(op, n, ours, base, base_name):
        rate, base_rate = n / ours["wall_s"], n / base["wall_s"]
        target = TARGETS.get(op)
        rows.append({
            "op": op, "n": n, "ours_M_per_s": rate / 1e6, "numpy_op": base_name,
            "numpy_M_per_s": base_rate / 1e6, "slowdown_vs_numpy": base_rate / rate,
            "target_M_per_s": None if target is None else target / 1e6,
            "meets_target": None if target is None else bool(rate >= target),
        })

    for n in progress(sizes, desc="bench mpc"):
        big = n >= 5 * 10**6
        rep, warm = (1, 0) if big else (3, 1)
        x, y = data_rng.uniform(-1, 1, n), data_rng.uniform(-1, 1, n)
        eng = SpdzEngine(args.parties, 16, SystemRandom(), bound=1.0)
        add = measure(lambda: x + y, repeat=rep + 2, warmup=1)
        mul = measure(lambda: x * y, repeat=rep + 2, warmup=1)
        # einsum, not np.dot: BLAS threads made the dot baseline erratic on the shared 2-core box
        dot = measure(lambda: float(np.einsum("i,i->", x, x)), repeat=rep + 2, warmup=1)

        # context: every share costs 5 CSPRNG words (3 parties) and every open 1 more
        words = SystemRandom()
        pcg = np.random.Generator(np.random.PCG64())
        row("csprng words", n, measure(lambda: words.integers(2**64, n, dtype=np.uint64), repeat=rep + 2, warmup=1),
            measure(lambda: pcg.integers(0, 2**64, n, dtype=np.uint64, endpoint=False), repeat=rep + 2, warmup=1),
            "PCG64 (not a CSPRNG)")
        # one warm-up call even at 10^7 (as for the numpy baselines): the first call of a fresh
        # process otherwise also pays for growing the heap by about 1 GB (page faults)
        row("share", n, measure(lambda: eng.share(x), repeat=rep, warmup=1), add, "x + y")
        sx = eng.share(x)
        row("open", n, measure(lambda: eng.open(sx), repeat=rep, warmup=1), add, "x + y")
        row("share+open", n, measure(lambda: eng.open(eng.share(x)), repeat=rep, warmup=1), add, "x + y")
        sy = eng.share(y)
        gc.collect()
        t0 = measure(lambda: eng.dealer.triples(n), repeat=1, warmup=0)
        row("dealer: triples", n, t0, mul, "x * y")
        del t0
        batches = iter([eng.dealer.triples(n) for _ in range(rep + warm)])
        row("mul (online)", n, measure(lambda: eng.mul(sx, sy, truncate=False, triples=next(batches)),
                                       repeat=rep, warmup=warm), mul, "x * y")
        del batches
        gc.collect()
        row("mul+truncate", n, measure(lambda: eng.mul(sx, sy), repeat=1, warmup=0), mul, "x * y")
        gc.collect()
        row("norm2+open", n, measure(lambda: eng.open(eng.norm2(sx)), repeat=1, warmup=0), dot, "einsum x·x")
        del sx, sy
        gc.collect()

    data = {
        "n_parties": args.parties,
        "frac_bits": 16,
        "field": "Z_p, p = 2^61 - 1",
        "threads": field._threads,
        "cpu_count": os.cpu_count(),
        "targets_M_per_s": {k: v / 1e6 for k, v in TARGETS.items()},
        "rows": rows,
        "note": "wall-clock medians; on a shared machine compare slowdown_vs_numpy, not absolute rates",
    }
    return finish("mpc", data, markdown_table(rows), args)
