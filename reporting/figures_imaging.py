"""The report's imaging and denoising figures (see :mod:`reporting.figures` for the contract:
``fn(results, out) -> (filename, caption) | None``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from reporting.figures_base import _plt, _save, _src, pick

_CACHE: dict = {}  # the FLEP layers of one image, drawn once for two figures


# -- imaging ---------------------------------------------------------------------------------
def _flep_image():
    from reporting.bench_cli import load_bench

    images, _ = load_bench("imaging").load_images(1)
    return images[0]


def imaging_layers(results: dict, out: Path):
    """Seed 004 Fig. 4: plain, scrambled, scrambled+blended, cipher (+ diffusion), each
    with its histogram. Computed here on one image (a fraction of a second)."""
    import numpy as np

    from imaging.key import FlepKey
    from imaging.pipeline import FlepPipeline, paper_pipeline
    from privcrypt.rng import DeterministicRandom

    name, img = _flep_image()
    seed = DeterministicRandom("report/flep")
    key = FlepKey.generate(rng=seed.spawn("key"))
    rng = seed.spawn("noise")
    panels = [("plain", img),
              ("scrambled", FlepPipeline(key, sigma=0.0, blend=False).encrypt(img).to_uint8()),
              ("scrambled + DWT blend", FlepPipeline(key, sigma=0.0).encrypt(img).to_uint8()),
              ("cipher (paper: + noise)", paper_pipeline(key).encrypt(img, rng=rng).to_uint8()),
              ("cipher + diffusion", FlepPipeline(key, sigma=25.0, diffusion=True).encrypt(img, rng=rng).to_uint8())]
    plt = _plt()
    fig, ax = plt.subplots(2, len(panels), figsize=(11, 4.4))
    for j, (title, im) in enumerate(panels):
        ax[0, j].imshow(im, cmap="gray", vmin=0, vmax=255)
        ax[0, j].set_title(title)
        ax[0, j].axis("off")
        ax[1, j].bar(np.arange(256), np.bincount(np.asarray(im).ravel(), minlength=256), width=1.0, color="0.35")
        ax[1, j].set_xlim(0, 255)
        ax[1, j].set_yticks([])
    fig.suptitle(f"FLEP layers on {name} (256x256, sigma 25, alpha 0.8, block 2)")
    _CACHE["layers"] = (name, panels)
    return _save(fig, out, "imaging_layers.png"), (
        f"FLEP layer by layer on {name} with histograms (seed 004 Fig. 4), computed for this report. "
        "The paper's cipher keeps the image's histogram shape; only the diffusion layer flattens it.")


def imaging_correlation(results: dict, out: Path):
    """Adjacent-pixel (horizontal) correlation scatter: plain vs paper cipher vs diffusion."""
    import numpy as np

    if "layers" not in _CACHE:
        imaging_layers(results, out)
    name, panels = _CACHE["layers"]
    chosen = [p for p in panels if p[0] in ("plain", "cipher (paper: + noise)", "cipher + diffusion")]
    plt = _plt()
    fig, ax = plt.subplots(1, 3, figsize=(10, 3.4))
    idx = np.random.default_rng(0).integers(0, 256, size=(3000, 2))  # which pixels to plot
    idx[:, 1] = np.minimum(idx[:, 1], 254)
    for a, (title, im) in zip(ax, chosen):
        im = np.asarray(im, dtype=float)
        x, y = im[idx[:, 0], idx[:, 1]], im[idx[:, 0], idx[:, 1] + 1]
        r = np.corrcoef(im[:, :-1].ravel(), im[:, 1:].ravel())[0, 1]
        a.scatter(x, y, s=1, alpha=0.4, color="C0")
        a.set_title(f"{title}: r = {r:.3f}")
        a.set_xlabel("pixel (x, y)")
        a.set_ylabel("pixel (x+1, y)")
        a.set_xlim(0, 255)
        a.set_ylim(0, 255)
    return _save(fig, out, "imaging_correlation.png"), (
        f"Horizontally adjacent pixels of {name} (3000 random pairs); r over the whole image.")


def imaging_wu(results: dict, out: Path):
    """Wu et al. NPCR/UACI pass rates per configuration vs an ideal cipher's expected rate."""
    import numpy as np

    summary, src = pick(results, "imaging", "summary", prefer="full")
    rates = (summary or {}).get("wu_pass_rates")
    if not rates:
        return None
    levels = ("0.05", "0.01", "0.001")
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
    configs = list(rates)
    w = 0.8 / len(configs)
    for a, test in zip(ax, ("npcr", "uaci")):
        for i, cfg in enumerate(configs):
            vals = [rates[cfg].get(f"{test}@{lv}", np.nan) for lv in levels]
            a.bar(np.arange(3) + i * w, vals, width=w, label=cfg)
        for k, lv in enumerate(levels):
            a.hlines(1 - float(lv), k - 0.1, k + 0.8, colors="k", linestyles="--")
        a.set_xticks(np.arange(3) + 0.4 - w / 2, [f"alpha {lv}" for lv in levels])
        a.set_title(f"{test.upper()} test pass rate (dashed: ideal cipher)")
        a.set_ylim(0, 1.05)
    ax[0].legend(fontsize=7)
    return _save(fig, out, "imaging_wu.png"), (
        f"Share of pixel positions passing Wu et al.'s NPCR/UACI tests; source: {_src(src, results, 'imaging')}.")


def imaging_bench_figure(results: dict, out: Path):
    """The imaging benchmark's own Fig. 4-like figure (decrypted in the paper's order and in
    the fixed order), drawn by bench_imaging into the report folder during the quick run."""
    src = out / "_imaging" / "flep_fig4.png"
    if not src.is_file():
        return None
    shutil.copyfile(src, out / "imaging_decrypted.png")
    return "imaging_decrypted.png", ("Cipher and decryption in the paper's order (denoise first) and in the "
                                     "fixed order, drawn by benchmarks/bench_imaging.py in this quick run.")


# -- denoise ---------------------------------------------------------------------------------
def denoise_images(results: dict, out: Path):
    """One image at sigma 25 through each denoiser, with its PSNR (computed here; BM3D takes
    a few seconds and is left out when the bm3d package is missing)."""
    import types

    from reporting.bench_cli import load_bench

    b = load_bench("denoise")
    try:
        import bm3d  # noqa: F401
        no_bm3d = False
    except ImportError:
        no_bm3d = True
    methods = b._methods(types.SimpleNamespace(no_bm3d=no_bm3d, no_x8=True, blind=False))
    clean = b.load_image("camera")
    noisy = b.add_noise(clean, 25.0, "camera")
    plt = _plt()
    fig, ax = plt.subplots(1, len(methods) + 1, figsize=(2.2 * (len(methods) + 1), 2.7))
    ax[0].imshow(clean, cmap="gray", vmin=0, vmax=255)
    ax[0].set_title("clean")
    for a, (m, fn) in zip(ax[1:], methods.items()):
        den = fn(noisy, 25.0)
        a.imshow(den.clip(0, 255), cmap="gray", vmin=0, vmax=255)
        a.set_title(f"{m}\nPSNR {b.psnr(clean, den):.2f} dB")
    for a in ax:
        a.axis("off")
    return _save(fig, out, "denoise_images.png"), (
        "camera (256x256) with Gaussian noise sigma 25 and each denoiser's output, computed for this report"
        + (" (bm3d not installed: BM3D left out)" if no_bm3d else "") + ".")


def denoise_per_image(results: dict, out: Path):
    """DnCNN vs BM3D PSNR per image at each sigma."""
    import numpy as np

    rows, src = pick(results, "denoise", "per_image", prefer="full")
    if not rows:
        return None
    sig = 25.0 if any(r["sigma"] == 25.0 for r in rows) else rows[0]["sigma"]
    per = {}
    for r in rows:
        if r["sigma"] == sig and r["method"] in ("dncnn", "bm3d", "noisy"):
            per.setdefault(r["image"], {})[r["method"]] = r["psnr"]
    imgs = [k for k, v in per.items() if "dncnn" in v]
    if not imgs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3))
    x = np.arange(len(imgs))
    for i, m in enumerate(("bm3d", "dncnn")):
        ax.bar(x + (i - 0.5) * 0.38, [per[k].get(m, np.nan) for k in imgs], width=0.38, label=m)
    lo = min(v for k in imgs for v in per[k].values() if v == v) - 1
    ax.set_ylim(lo, None)
    ax.set_xticks(x, imgs)
    ax.set_ylabel("PSNR (dB)")
    ax.legend()
    ax.set_title(f"DnCNN vs BM3D per image, sigma {sig:g}")
    return _save(fig, out, "denoise_per_image.png"), (
        f"PSNR per image; source: {_src(src, results, 'denoise')}.")
