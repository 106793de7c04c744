"""DnCNN (shipped weights) vs BM3D, scikit-image NLM (fast) and TV on 8 standard images.

The images: camera, astronaut, coffee, chelsea, moon, coins (scikit-image) and ascent,
aero (pywt.data), each converted to gray (ITU-R 709 luma), resized to 256x256 with
anti-aliasing and rounded to uint8. Noise: white Gaussian, unclipped, from
``DeterministicRandom("bench_denoise").spawn(f"{image}/{sigma}")`` so every run (and the
GPU evaluation) sees the same noisy images. None of these images is used for training.

Per method and sigma: mean PSNR, SSIM (data_range 255, on the output clipped to 0-255)
and seconds per image on this CPU. GPU timings for DnCNN come from
``benchmarks/results/denoise_gpu.json``, measured on the device named there by
``imaging/denoise/recipe.py`` during training, and are reported as such.
"""

from __future__ import annotations

import json
from pathlib import Path

DESCRIPTION = "DnCNN vs BM3D / NLM / TV denoising: PSNR, SSIM, time on 8 images at sigma 15, 25, 50"

IMAGE_NAMES = ("camera", "astronaut", "coffee", "chelsea", "moon", "coins", "ascent", "aero")
SIGMAS = (15.0, 25.0, 50.0)
NOISE_SEED = "bench_denoise"
GPU_RESULTS = Path(__file__).resolve().parent / "results" / "denoise_gpu.json"


def add_arguments(parser) -> None:
    parser.add_argument("--sigmas", default=None, help="comma list (default 15,25,50; quick: 25)")
    parser.add_argument("--images", default=None, help="comma list of image names (default all 8; quick: 2)")
    parser.add_argument("--no-bm3d", action="store_true", help="skip BM3D (slow: 4-9 s per image)")
    parser.add_argument("--blind", action="store_true", help="also run the blind DnCNN")
    parser.add_argument("--no-x8", action="store_true", help="skip DnCNN with the 8-fold self-ensemble")


def load_image(name: str):
    """One evaluation image: gray, 256x256, uint8."""
    import numpy as np
    from skimage.transform import resize

    if name in ("ascent", "aero"):
        import pywt.data

        img = getattr(pywt.data, name)()
    else:
        import skimage.data

        img = getattr(skimage.data, name)()
    a = np.asarray(img)
    if a.ndim == 3:
        a = a[..., :3].astype(np.float64) @ np.array([0.2125, 0.7154, 0.0721])
    a = a.astype(np.float64)
    if a.max() <= 1.0:
        a = a * 255.0
    a = resize(a, (256, 256), anti_aliasing=True, preserve_range=True)
    return np.round(a).clip(0, 255).astype(np.uint8)


def add_noise(clean, sigma: float, name: str, seed: str = NOISE_SEED):
    """Clean + N(0, sigma^2), float64, unclipped, reproducible from (seed, name, sigma)."""
    import numpy as np

    from privcrypt.rng import DeterministicRandom

    rng = DeterministicRandom(seed).spawn(f"{name}/{sigma:g}")
    return clean.astype(np.float64) + rng.normal(float(sigma), clean.shape)


def psnr(ref, x) -> float:
    import numpy as np

    mse = np.mean((ref.astype(np.float64) - np.clip(np.asarray(x, dtype=np.float64), 0, 255)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def ssim(ref, x) -> float:
    import numpy as np
    from skimage.metrics import structural_similarity

    return float(structural_similarity(ref.astype(np.float64), np.clip(np.asarray(x, dtype=np.float64), 0, 255), data_range=255.0))


def _methods(args):
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    from imaging.denoise import load_denoiser

    def nlm(noisy, sigma):
        x = noisy / 255.0
        s = sigma / 255.0
        return 255.0 * denoise_nl_means(x, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6)

    def tv(noisy, sigma):
        # weight grows with sigma (tuned once on a non-evaluation image, brick)
        return 255.0 * denoise_tv_chambolle(noisy / 255.0, weight=0.0045 * sigma)

    methods = {"noisy": lambda noisy, sigma: noisy}
    if not args.no_bm3d:
        import bm3d

        methods["bm3d"] = lambda noisy, sigma: bm3d.bm3d(noisy, sigma_psd=sigma)
    methods["nlm_fast"] = nlm
    methods["tv_chambolle"] = tv
    methods["dncnn"] = lambda noisy, sigma: load_denoiser(sigma, device="cpu").denoise(noisy)
    if not args.no_x8:
        methods["dncnn_x8"] = lambda noisy, sigma: load_denoiser(sigma, device="cpu", ensemble=True).denoise(noisy)
    if args.blind:
        methods["dncnn_blind"] = lambda noisy, sigma: load_denoiser(sigma, blind=True, device="cpu").denoise(noisy)
    return methods


def run(args) -> dict:
    from privcrypt.progress import progress

    import time

    import numpy as np

    from benchmarks.harness import finish, markdown_table
    from imaging.denoise import load_denoiser

    quick = getattr(args, "quick", False)
    sigmas = [float(s) for s in args.sigmas.split(",")] if args.sigmas else ([25.0] if quick else list(SIGMAS))
    names = args.images.split(",") if args.images else (["camera", "coins"] if quick else list(IMAGE_NAMES))
    methods = _methods(args)
    for s in sigmas:  # load (and verify) the weights outside the timed region
        load_denoiser(s, device="cpu")
        if args.blind:
            load_denoiser(s, blind=True, device="cpu")
    clean = {n: load_image(n) for n in names}
    per_image, rows = [], []
    for sigma in sigmas:
        agg = {m: {"psnr": [], "ssim": [], "seconds": []} for m in methods}
        for n in progress(names, desc=f"bench denoise sigma {sigma:g}"):
            noisy = add_noise(clean[n], sigma, n)
            for m, fn in methods.items():
                t0 = time.perf_counter()
                out = fn(noisy, sigma)
                dt = time.perf_counter() - t0
                p, s_ = psnr(clean[n], out), ssim(clean[n], out)
                agg[m]["psnr"].append(p)
                agg[m]["ssim"].append(s_)
                agg[m]["seconds"].append(dt)
                per_image.append({"sigma": sigma, "image": n, "method": m, "psnr": p, "ssim": s_, "seconds": dt})
        for m, a in agg.items():
            rows.append({
                "sigma": sigma, "method": m, "psnr": float(np.mean(a["psnr"])), "ssim": float(np.mean(a["ssim"])),
                "cpu_seconds_per_image": float(np.mean(a["seconds"])) if m != "noisy" else 0.0,
            })
    deltas = {}
    for sigma in sigmas:
        r = {row["method"]: row["psnr"] for row in rows if row["sigma"] == sigma}
        if "bm3d" in r:
            deltas[f"sigma_{sigma:g}"] = r["dncnn"] - r["bm3d"]
            if "dncnn_x8" in r:
                deltas[f"sigma_{sigma:g}_x8"] = r["dncnn_x8"] - r["bm3d"]
    models = {f"{s:g}": load_denoiser(s, device="cpu").name for s in sigmas}
    gpu = json.loads(GPU_RESULTS.read_text()) if GPU_RESULTS.exists() else None
    from importlib import metadata

    def _ver(pkg):
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    data = {
        "peer_versions": {p: _ver(p) for p in ("bm3d", "scikit-image", "torch", "safetensors")},
        "images": names, "image_size": [256, 256], "sigmas": sigmas, "noise_seed": NOISE_SEED,
        "rows": rows, "dncnn_minus_bm3d_psnr_db": deltas, "dncnn_models": models, "per_image": per_image,
        "target": "DnCNN mean PSNR >= BM3D + 0.3 dB at sigma 25",
        "gpu_timings": None if gpu is None else {
            "note": "measured on the GPU machine named here during training (imaging/denoise/recipe.py), not in this run",
            "device": gpu.get("device"), "torch": gpu.get("torch"), "timings": gpu.get("timings"),
        },
    }
    table = markdown_table(rows, ["sigma", "method", "psnr", "ssim", "cpu_seconds_per_image"])
    if deltas:
        table += "\n\nDnCNN - BM3D (dB): " + ", ".join(f"{k}: {v:+.2f}" for k, v in deltas.items())
    if gpu:
        table += f"\n\nDnCNN GPU timings (measured on {gpu.get('device')}, from {GPU_RESULTS.name}):\n\n"
        table += markdown_table(gpu.get("timings", []))
    return finish("denoise", data, table, args)


def write_eval_set(path: str, sigmas=(15.0, 25.0, 31.25, 50.0)) -> None:
    """The ``eval_set.npz`` that ``imaging/denoise/recipe.py`` reports PSNR on during
    training: the 8 clean images and their noisy versions (this benchmark's noise)."""
    import numpy as np

    clean = np.stack([load_image(n) for n in IMAGE_NAMES])
    noisy = {f"noisy_{s:g}": np.stack([add_noise(c, s, n) for c, n in zip(clean, IMAGE_NAMES)]).astype(np.float32)
             for s in sigmas}
    np.savez(path, clean=clean, names=np.array(IMAGE_NAMES), **noisy)
