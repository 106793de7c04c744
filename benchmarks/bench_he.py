"""CKKS secure aggregation: ours (privcrypt.he, default and compact) vs the FLARE-style
TenSEAL recipe, in one process run.

Baseline (what NVIDIA FLARE's HE components do): ``ts.context(CKKS, N=8192,
coeff_mod_bit_sizes=[60, 40, 40])``, global scale 2^40, relinearization keys, one
``ts.ckks_vector`` per layer; the server deserializes each client's vector, multiplies it by
the client's aggregation weight (ciphertext x scalar, auto-rescaled) and adds; clients
decrypt and divide by the total weight. Every client holds the secret key in both.

Ours: ``privcrypt.he`` (N=4096, one 60-bit prime, scale 2^40, flattened model, two reals per
slot, seeded symmetric encryption, division by a change of scale; compact: 16-bit
quantization in two 20-bit lanes per real). See docs/he.md.

Reported per variant: bytes/value up (one client) and down (the aggregate), client encrypt
CPU s (mean over clients), server aggregate CPU s (all clients; median of ``--repeat``),
decrypt CPU s (one key holder; median of ``--repeat``), max abs error against the float64
weighted mean, and ratios ours/baseline. CPU times are process CPU (all threads), because the machine is shared.
"""

from __future__ import annotations

import contextlib
import os
import sys

DESCRIPTION = "CKKS aggregation: privcrypt.he (default, compact) vs FLARE-style TenSEAL ckks_vector"


def add_arguments(parser) -> None:
    parser.add_argument("--n", type=int, default=1_000_000, help="model size (float32 values)")
    parser.add_argument("--clients", type=int, default=10, help="clients whose updates are aggregated")
    parser.add_argument("--layers", type=int, default=1, help="baseline: vectors per model")
    parser.add_argument("--clip", type=float, default=1.0, help="compact mode clip bound")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of aggregate/decrypt (median)")


@contextlib.contextmanager
def _stdout_to_stderr():
    """TenSEAL prints a C++ warning on stdout for vectors longer than one ciphertext; keep
    stdout clean for --json."""
    import ctypes

    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        libc.fflush(None)  # C++ cout goes through C stdio: flush it while redirected
        os.dup2(saved, 1)
        os.close(saved)


def _baseline(xs, ws, layers, measure, repeat):
    import numpy as np
    import tenseal as ts

    with _stdout_to_stderr():
        ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40])
        ctx.global_scale = 2**40
        ctx.generate_relin_keys()
        server_ctx = ctx.copy()
        server_ctx.make_context_public()
        bounds = np.linspace(0, xs[0].size, layers + 1).astype(int)

        def enc(x):
            return [ts.ckks_vector(ctx, x[a:b]).serialize() for a, b in zip(bounds[:-1], bounds[1:])]

        encs = [measure(lambda x=x: enc(x), repeat=1, warmup=0) for x in xs]
        ups = [e["result"] for e in encs]

        def server():
            merged = None
            for blobs, w in zip(ups, ws):
                vecs = [ts.ckks_vector_from(server_ctx, b) * float(w) for b in blobs]
                merged = vecs if merged is None else [m + v for m, v in zip(merged, vecs)]
            return [m.serialize() for m in merged]

        srv = measure(server, repeat=repeat, warmup=0)
        down = srv["result"]

        def dec():
            return np.concatenate([np.array(ts.ckks_vector_from(ctx, b).decrypt()) for b in down]) / float(np.sum(ws))

        d = measure(dec, repeat=repeat, warmup=0)
    return {
        "up_bytes": sum(len(b) for b in ups[0]),
        "down_bytes": sum(len(b) for b in down),
        "client_encrypt_cpu_s": float(np.mean([e["cpu_s"] for e in encs])),
        "server_aggregate_cpu_s": srv["cpu_s"],
        "server_aggregate_wall_s": srv["wall_s"],
        "decrypt_cpu_s": d["cpu_s"],
        "mean": d["result"],
    }


def _ours(xs, ws, mode, clip, measure, rng, repeat):
    import numpy as np

    from privcrypt.he import Accumulator, CkksContext, decrypt, encrypt

    key = CkksContext.generate(rng=rng)
    pub = key.public()
    wn = np.asarray(ws, dtype=np.float64) / np.max(ws)  # public, normalized weights
    kw = {"mode": mode, "clip": clip} if mode == "compact" else {}
    encs = [measure(lambda x=x, w=w: encrypt(key, x, weight=w, rng=rng, **kw), repeat=1, warmup=0)
            for x, w in zip(xs, wn)]
    ups = [e["result"] for e in encs]

    def server():
        acc = Accumulator(pub, xs[0].size, mode)
        for u in ups:
            acc.add(u)
        return acc.finish()

    srv = measure(server, repeat=repeat, warmup=0)
    d = measure(lambda: decrypt(key, srv["result"], dtype=np.float64, with_info=True), repeat=repeat,
                warmup=0)
    mean, info = d["result"]
    return {
        "up_bytes": len(ups[0]),
        "down_bytes": len(srv["result"]),
        "client_encrypt_cpu_s": float(np.mean([e["cpu_s"] for e in encs])),
        "server_aggregate_cpu_s": srv["cpu_s"],
        "server_aggregate_wall_s": srv["wall_s"],
        "decrypt_cpu_s": d["cpu_s"],
        "error_bound": float(info["error_bound"]),
        "mean": mean,
    }


def run(args) -> dict:
    import numpy as np

    from benchmarks.harness import finish, markdown_table, measure, ratio
    from privcrypt.rng import DeterministicRandom

    # --quick: 98,304 = 12 x 8192 values (about 100k, whole chunks in both modes) x 3 clients.
    n, k = (98_304, 3) if args.quick else (args.n, args.clients)
    rng = DeterministicRandom("bench-he")  # reproducible data and keys; benchmark only
    xs = [(rng.uniform(n) * 2 - 1).astype(np.float32) * np.float32(args.clip) for _ in range(k)]
    ws = (rng.integers(501, k) + 500).astype(np.float64)  # sample counts 500..1000
    ref = np.average(np.stack([x.astype(np.float64) for x in xs]), axis=0, weights=ws)

    variants = {
        "tenseal_flare": _baseline(xs, ws, args.layers, measure, args.repeat),
        "ours_default": _ours(xs, ws, "default", args.clip, measure, rng, args.repeat),
        "ours_compact": _ours(xs, ws, "compact", args.clip, measure, rng, args.repeat),
    }
    rows = []
    for name, v in variants.items():
        mean = v.pop("mean")
        rows.append({
            "variant": name,
            "up_B_per_value": v["up_bytes"] / n,
            "down_B_per_value": v["down_bytes"] / n,
            "client_encrypt_cpu_s": v["client_encrypt_cpu_s"],
            "server_aggregate_cpu_s": v["server_aggregate_cpu_s"],
            "decrypt_cpu_s": v["decrypt_cpu_s"],
            "max_abs_error": float(np.max(np.abs(mean - ref))),
            "error_bound": v.get("error_bound"),
        })
    base = rows[0]
    metrics = ["up_B_per_value", "down_B_per_value", "client_encrypt_cpu_s", "server_aggregate_cpu_s",
               "decrypt_cpu_s"]
    for r in rows:
        for m in metrics:
            r[f"{m}_ratio"] = ratio(r[m], base[m])
    d, c = rows[1], rows[2]
    targets = {
        "default_upload_le_8.1": d["up_B_per_value"] <= 8.1,
        "compact_upload_le_4.1": c["up_B_per_value"] <= 4.1,
        "default_server_cpu_le_0.4x": d["server_aggregate_cpu_s_ratio"] <= 0.4,
        "default_error_le_1e-6": d["max_abs_error"] <= 1e-6,
    }
    data = {"n_values": n, "clients": k, "baseline_layers": args.layers, "clip": args.clip,
            "repeat": args.repeat, "cpu_time": "process CPU s (all threads)",
            "weights": "sample counts 500..1000", "rows": rows, "targets_met": targets,
            "quick": bool(args.quick)}
    cols = ["variant", "up_B_per_value", "down_B_per_value", "client_encrypt_cpu_s",
            "server_aggregate_cpu_s", "decrypt_cpu_s", "max_abs_error", "up_B_per_value_ratio",
            "server_aggregate_cpu_s_ratio"]
    table = markdown_table(rows, cols)
    table += "\n\nTargets: " + ", ".join(f"{t}: {'met' if ok else 'MISSED'}" for t, ok in targets.items())
    return finish("he", data, table, args)
