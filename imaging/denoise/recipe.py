"""The recipe that produced the shipped weights (run once on a GPU machine).

1. A blind DnCNN-17 (sigma uniform in 5-80) trained from scratch on the whole GPU.
2. In parallel processes on the same GPU: one fine-tune of it per shipped sigma
   (15, 25, 31.25, 50) and a low-learning-rate continuation of the blind model.
3. Evaluation of every model on the benchmark's noisy images (``eval_set.npz``, made with
   ``benchmarks/bench_denoise.py``'s noise) and GPU inference timings of the shipped
   inference path (BN folded, float32) at several image sizes.

Writes ``<name>.pt`` state_dicts, ``results.json`` and ``log.txt`` under ``--out``.
Imports neither privcrypt nor pywt::

    python -m imaging.denoise.recipe --data train_data.npz --eval eval_set.npz --out OUT \\
        --blind-seconds 250 --ft-seconds 230
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

PKG = __package__ or "imaging.denoise"


def _train_cmd(out: str, seconds: float, extra: list[str], data: str) -> list[str]:
    return [sys.executable, "-m", f"{PKG}.train", "--data", data, "--seconds", str(seconds), "--out", out,
            "--info", out + ".json", *extra]


def _run_parallel(jobs: dict[str, list[str]], logdir: str) -> dict:
    procs = {}
    for name, cmd in jobs.items():
        fh = open(os.path.join(logdir, f"{name}.log"), "w")
        procs[name] = (subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT), fh, cmd)
    rcs = {}
    for name, (p, fh, cmd) in procs.items():
        rcs[name] = p.wait()
        fh.close()
    return rcs


def evaluate(state_path: str, eval_npz: str, depth: int = 17) -> dict:
    import torch

    from .model import DnCNN, FoldedDnCNN

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    m = DnCNN(depth)
    m.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
    m.eval()
    res = {}
    for dtype_name, conv in (("fp32", lambda sd: sd), ("fp16_storage", lambda sd: {k: v.half().float() for k, v in sd.items()})):
        mm = DnCNN(depth)
        mm.load_state_dict(conv(m.state_dict()))
        net = FoldedDnCNN(mm.eval()).to(dev).eval()
        with np.load(eval_npz) as z, torch.inference_mode():
            clean = z["clean"].astype(np.float64)
            for key in z.files:
                if not key.startswith("noisy_"):
                    continue
                noisy = z[key]
                x = torch.from_numpy(noisy.astype(np.float32) / 255.0)[:, None].to(dev)
                y = net(x)[:, 0].float().cpu().numpy().astype(np.float64) * 255.0
                mse = ((np.clip(y, 0, 255) - clean) ** 2).mean(axis=(1, 2))
                res.setdefault(dtype_name, {})[key[len("noisy_"):]] = float(np.mean(10 * np.log10(255.0 ** 2 / mse)))
    return res


def gpu_timings(state_path: str, sizes=(256, 512, 1024, 2048), depth: int = 17) -> list[dict]:
    import torch

    from .model import DnCNN, FoldedDnCNN

    if not torch.cuda.is_available():
        return []
    torch.backends.cudnn.benchmark = True
    m = DnCNN(depth)
    m.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
    net = FoldedDnCNN(m.eval()).cuda().eval()
    rows = []
    for s in sizes:
        x = torch.rand(1, 1, s, s, device="cuda")
        for mode in ("fp32", "bf16_autocast"):
            def f():
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode != "fp32"):
                    return net(x)
            for _ in range(3):
                f()
            torch.cuda.synchronize()
            ts = []
            for _ in range(10):
                t0 = time.perf_counter()
                f()
                torch.cuda.synchronize()
                ts.append(time.perf_counter() - t0)
            # end-to-end from a numpy image (host->device, inference, device->host)
            a = np.random.default_rng(0).uniform(0, 255, (s, s)).astype(np.float32)
            te = []
            for _ in range(5):
                t0 = time.perf_counter()
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode != "fp32"):
                    y = net(torch.from_numpy(a / 255.0)[None, None].cuda())
                y.float().cpu().numpy()
                te.append(time.perf_counter() - t0)
            rows.append({"size": f"{s}x{s}", "precision": mode, "gpu_ms_median": 1000 * float(np.median(ts)),
                         "end_to_end_ms_median": 1000 * float(np.median(te))})
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="train the shipped DnCNN models")
    p.add_argument("--data", required=True)
    p.add_argument("--eval", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--work", default=None,
                   help="folder for checkpoints (default: a fresh private temporary folder)")
    p.add_argument("--blind-seconds", type=float, default=250)
    p.add_argument("--ft-seconds", type=float, default=230)
    p.add_argument("--sigmas", default="15,25,31.25,50")
    p.add_argument("--blind-range", default="5,80")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--ft-lr", type=float, default=3e-4, help="peak learning rate of phase 2")
    p.add_argument("--resume", default=None, help="directory with <name>.pt to continue from (skips phase 1)")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.work is None:  # never a shared, predictable path: checkpoints are loaded back
        args.work = tempfile.mkdtemp(prefix="dncnn_work_")
    os.makedirs(args.work, exist_ok=True)
    lo, hi = (float(v) for v in args.blind_range.split(","))
    sigmas = [float(s) for s in args.sigmas.split(",")]
    t0 = time.time()
    results: dict = {"argv": sys.argv, "phases": {}}
    blind0 = os.path.join(args.work, "blind_phase1.pt")
    bs = ["--batch", str(args.batch)]
    if not args.resume:
        rc = _run_parallel({"phase1_blind": _train_cmd(blind0, args.blind_seconds,
                            ["--sigma-min", str(lo), "--sigma-max", str(hi), "--lr", "1e-3", "--lr-min", "5e-5", *bs],
                            args.data)}, args.work)
        results["phases"]["phase1"] = {"rc": rc, "seconds": time.time() - t0}
    jobs = {}
    names = {}
    for s in sigmas:
        name = f"dncnn17_s{s:g}".replace(".", "p")
        names[name] = s
        init = os.path.join(args.resume, name + ".pt") if args.resume else blind0
        jobs[name] = _train_cmd(os.path.join(args.out, name + ".pt"), args.ft_seconds,
                                ["--sigma", str(s), "--init", init, "--lr", str(args.ft_lr), "--lr-min", "1e-6",
                                 "--seed", str(int(s * 100) + (1000 if args.resume else 0)), *bs], args.data)
    init_b = os.path.join(args.resume, "dncnn17_blind.pt") if args.resume else blind0
    jobs["dncnn17_blind"] = _train_cmd(os.path.join(args.out, "dncnn17_blind.pt"), args.ft_seconds,
                                       ["--sigma-min", str(lo), "--sigma-max", str(hi), "--init", init_b,
                                        "--lr", str(args.ft_lr), "--lr-min", "1e-6", "--seed", str(7 + (1000 if args.resume else 0)), *bs], args.data)
    t1 = time.time()
    rc = _run_parallel(jobs, args.work)
    results["phases"]["phase2"] = {"rc": rc, "seconds": time.time() - t1}
    info = {}
    for name in jobs:
        path = os.path.join(args.out, name + ".pt")
        if os.path.exists(path + ".json"):
            with open(path + ".json") as fh:
                info[name] = json.load(fh)
            os.remove(path + ".json")
    results["train_info"] = info
    ev = {}
    for name in jobs:
        path = os.path.join(args.out, name + ".pt")
        if os.path.exists(path):
            ev[name] = evaluate(path, args.eval)
    results["eval_psnr"] = ev
    import torch

    results["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    results["torch"] = torch.__version__
    tpath = os.path.join(args.out, "dncnn17_s25.pt")
    results["timings"] = gpu_timings(tpath) if os.path.exists(tpath) else []
    results["total_seconds"] = time.time() - t0
    # fold the per-process logs into one file (at most 8 files come back)
    with open(os.path.join(args.out, "log.txt"), "w") as out:
        for fn in sorted(os.listdir(args.work)):
            if fn.endswith(".log"):
                with open(os.path.join(args.work, fn)) as fh:
                    out.write(f"==== {fn}\n" + fh.read())
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    print(json.dumps({k: v for k, v in results.items() if k != "train_info"}, indent=1))


if __name__ == "__main__":
    main()


def export(src_dir: str, dst_dir: str, results_json: str | None = None, command: str = "") -> dict:
    """Convert ``<name>.pt`` state_dicts from :func:`main` into float16 safetensors in
    ``dst_dir`` and write ``manifest.json`` (sha256, architecture, sigma, training info,
    the GPU evaluation's PSNR). Returns the manifest."""
    import hashlib

    import torch
    from safetensors.torch import save_file

    res = json.load(open(results_json)) if results_json else {}
    models = []
    for fn in sorted(os.listdir(src_dir)):
        if not (fn.startswith("dncnn") and fn.endswith(".pt")):
            continue
        name = fn[:-3]
        sd = torch.load(os.path.join(src_dir, fn), map_location="cpu", weights_only=True)
        sd = {k: v.half().contiguous() if v.is_floating_point() else v.contiguous() for k, v in sd.items()}
        out = os.path.join(dst_dir, name + ".safetensors")
        save_file(sd, out, metadata={"arch": "DnCNN", "depth": "17", "features": "64", "scale": "0-1 input"})
        digest = hashlib.sha256(open(out, "rb").read()).hexdigest()
        info = res.get("train_info", {}).get(name, {})
        entry = {
            "name": name, "file": name + ".safetensors", "sha256": digest, "bytes": os.path.getsize(out),
            "arch": "DnCNN", "depth": info.get("depth", 17), "features": info.get("features", 64),
            "storage_dtype": "float16", "input_scale": "pixel/255, residual output",
            "sigma": info.get("sigma"), "sigma_range": info.get("sigma_range"),
            "training": {k: info.get(k) for k in ("steps", "train_seconds", "batch", "patch", "lr", "lr_min", "device")},
            "gpu_eval_psnr_db": res.get("eval_psnr", {}).get(name, {}).get("fp16_storage"),
        }
        models.append(entry)
    manifest = {
        "format": 1,
        "models": models,
        "recipe": command,
        "device": res.get("device"), "torch": res.get("torch"),
        "phases_seconds": {k: v.get("seconds") for k, v in res.get("phases", {}).items()},
    }
    with open(os.path.join(dst_dir, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=2)
    return manifest
