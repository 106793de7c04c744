"""Training images for the DnCNN denoisers, with no download.

Two sources, both grayscale on the 0-255 scale:

* **Dead-leaves images** (:func:`dead_leaves`), generated procedurally: occluding discs
  with power-law radii (``r^-3`` between ``rmin`` and ``rmax``, the scale-invariant model
  of natural images), each leaf flat, with a linear gradient or with a sinusoidal texture;
  rendered at twice the size and area-downsampled (anti-aliased edges as in a photograph),
  and some slightly blurred (depth of field). Denoisers trained on such images come within
  a fraction of a dB of those trained on natural images.
* **Bundled natural images** (:func:`natural_images`) that ship with installed packages
  and load offline: scikit-image's brick, cell, clock, grass, gravel, hubble_deep_field,
  immunohistochemistry, page, retina, rocket, text and stereo_motorcycle; scikit-learn's
  sample images china and flower; matplotlib's grace_hopper and Minduka sample pictures.
  Missing packages are skipped.

The evaluation images of the benchmark are never used for training:
:data:`EVAL_IMAGES` lists them (camera, astronaut, coffee, chelsea — also called ``cat``
in scikit-image — moon, coins, and pywt's ascent and aero; pywt's camera is the same photo
as scikit-image's camera). :func:`natural_images` refuses them.

Training noise is not secret material; this module uses numpy's PCG64 seeded generator.
It imports neither privcrypt nor pywt, so it also runs on a bare GPU machine.
"""

from __future__ import annotations

import numpy as np

# The benchmark's evaluation images: never used for training.
EVAL_IMAGES = ("camera", "astronaut", "coffee", "chelsea", "cat", "moon", "coins", "ascent", "aero")

SKIMAGE_TRAIN = (
    "brick", "cell", "clock", "grass", "gravel", "hubble_deep_field",
    "immunohistochemistry", "page", "retina", "rocket", "text", "stereo_motorcycle",
)
SKLEARN_TRAIN = ("china.jpg", "flower.jpg")
MATPLOTLIB_TRAIN = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")


def to_gray255(img: np.ndarray) -> np.ndarray:
    """RGB(A)/gray, any dtype -> float64 gray on 0-255 (ITU-R 709 luma, as skimage.rgb2gray)."""
    a = np.asarray(img)
    scale = 255.0
    if a.dtype == bool:
        a = a.astype(np.float64)
    elif np.issubdtype(a.dtype, np.integer):
        scale = 255.0 / np.iinfo(a.dtype).max
        a = a.astype(np.float64)
    elif a.max() > 1.0 + 1e-6:
        scale = 1.0
    a = a.astype(np.float64)
    if a.ndim == 3:
        a = a[..., :3] @ np.array([0.2125, 0.7154, 0.0721])
    return a * scale


def _box_downsample(img: np.ndarray, f: int) -> np.ndarray:
    h, w = (img.shape[0] // f) * f, (img.shape[1] // f) * f
    return img[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return img
    r = max(1, int(3 * sigma + 0.5))
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(img, r, mode="reflect")
    tmp = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 0, pad)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 1, tmp)


def dead_leaves(
    size: int = 256,
    rng: np.random.Generator | int | None = None,
    *,
    rmin: float = 1.5,
    rmax: float | None = None,
    supersample: int = 2,
    max_leaves: int = 60000,
) -> np.ndarray:
    """One dead-leaves image, ``size x size`` float64 on 0-255.

    Leaves are drawn front to back: each disc paints only the still-uncovered pixels, so
    the loop stops when the canvas is covered (or after ``max_leaves``)."""
    rng = np.random.default_rng(rng)
    s = size * supersample
    rmin_s = rmin * supersample
    rmax_s = (rmax if rmax is not None else size / 2.5) * supersample
    img = np.zeros((s, s))
    free = np.ones((s, s), dtype=bool)
    n_free = s * s
    # Global contrast and texture statistics vary from image to image.
    contrast = rng.uniform(0.4, 1.0)
    mid = rng.uniform(80, 175)
    p_grad, p_tex = rng.uniform(0.1, 0.4), rng.uniform(0.1, 0.4)
    for _ in range(max_leaves):
        if n_free == 0:
            break
        # r ~ r^-3 on [rmin, rmax] by inverse CDF of the pdf ∝ r^-3.
        u = rng.uniform()
        r = (rmin_s ** -2 - u * (rmin_s ** -2 - rmax_s ** -2)) ** -0.5
        cx, cy = rng.uniform(-r, s + r), rng.uniform(-r, s + r)
        x0, x1 = int(max(0, np.floor(cx - r))), int(min(s, np.ceil(cx + r) + 1))
        y0, y1 = int(max(0, np.floor(cy - r))), int(min(s, np.ceil(cy + r) + 1))
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dx, dy = xx - cx, yy - cy
        # Slightly elliptic leaves, random orientation.
        if rng.uniform() < 0.5:
            th, e = rng.uniform(0, np.pi), rng.uniform(0.5, 1.0)
            c, sn = np.cos(th), np.sin(th)
            u_, v_ = c * dx + sn * dy, (-sn * dx + c * dy) / e
            inside = u_ * u_ + v_ * v_ <= r * r
        else:
            inside = dx * dx + dy * dy <= r * r
        m = inside & free[y0:y1, x0:x1]
        if not m.any():
            continue
        base = np.clip(mid + contrast * rng.normal(0, 70), 0, 255)
        kind = rng.uniform()
        if kind < p_grad:  # linear gradient across the leaf
            th = rng.uniform(0, 2 * np.pi)
            val = base + rng.uniform(-1, 1) * 60 * contrast * (np.cos(th) * dx + np.sin(th) * dy) / max(r, 1)
        elif kind < p_grad + p_tex:  # oriented sinusoidal texture
            th = rng.uniform(0, 2 * np.pi)
            period = rng.uniform(2.5, 16) * supersample
            amp = rng.uniform(5, 45) * contrast
            val = base + amp * np.sin(2 * np.pi * (np.cos(th) * xx + np.sin(th) * yy) / period + rng.uniform(0, 6.3))
        else:
            val = np.full(m.shape, base)
        sub = img[y0:y1, x0:x1]
        sub[m] = val[m]
        free[y0:y1, x0:x1] &= ~m
        n_free -= int(m.sum())
    img = _box_downsample(img, supersample) if supersample > 1 else img
    if rng.uniform() < 0.3:
        img = _gaussian_blur(img, rng.uniform(0.3, 1.2))
    return np.clip(img, 0, 255)


def _dead_leaves_worker(args):
    size, seed = args
    return np.round(dead_leaves(size, np.random.default_rng(seed))).astype(np.uint8)


def dead_leaves_set(n: int, size: int = 256, seed: int = 0, workers: int = 1) -> np.ndarray:
    """``n`` dead-leaves images as uint8 ``(n, size, size)``; image i uses seed ``(seed, i)``."""
    seeds = [np.random.SeedSequence([seed, i]) for i in range(n)]
    jobs = [(size, s) for s in seeds]
    if workers > 1:
        from multiprocessing import Pool

        with Pool(workers) as pool:
            imgs = pool.map(_dead_leaves_worker, jobs)
    else:
        imgs = [_dead_leaves_worker(j) for j in jobs]
    return np.stack(imgs)


def natural_images(min_side: int = 64) -> dict[str, np.ndarray]:
    """The bundled natural training images that load offline, gray uint8, by name."""
    out: dict[str, np.ndarray] = {}
    try:
        import skimage.data as skd

        for name in SKIMAGE_TRAIN:
            assert name not in EVAL_IMAGES
            try:
                img = getattr(skd, name)()
            except Exception:
                continue
            if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity)
                out[name + "_left"] = img[0]
                out[name + "_right"] = img[1]
            else:
                out[name] = img
    except ImportError:
        pass
    try:
        from sklearn.datasets import load_sample_images

        ds = load_sample_images()
        for fname, img in zip(ds.filenames, ds.images):
            base = fname.replace("\\", "/").rsplit("/", 1)[-1]
            if base in SKLEARN_TRAIN:
                out[base.split(".")[0]] = img
    except Exception:
        pass
    try:
        import os

        import matplotlib
        import matplotlib.image as mpimg

        root = os.path.join(matplotlib.get_data_path(), "sample_data")
        for fname in MATPLOTLIB_TRAIN:
            path = os.path.join(root, fname)
            if os.path.exists(path):
                out[fname.split(".")[0]] = mpimg.imread(path)
    except Exception:
        pass
    res = {}
    for k, v in out.items():
        g = np.round(to_gray255(v)).clip(0, 255).astype(np.uint8)
        if min(g.shape) >= min_side:
            res[k] = g
    return res


def resize_area(img: np.ndarray, scale: float) -> np.ndarray:
    """Anti-aliased downscale by ``scale`` < 1 (skimage when present, else box filter)."""
    try:
        from skimage.transform import rescale

        return rescale(img.astype(np.float64), scale, anti_aliasing=True, preserve_range=True)
    except ImportError:
        return _box_downsample(img.astype(np.float64), max(1, int(round(1 / scale))))


def build_training_set(
    n_dead_leaves: int = 400, size: int = 256, seed: int = 0, workers: int = 1,
    scales: tuple[float, ...] = (1.0, 0.7, 0.5),
) -> dict[str, np.ndarray]:
    """Everything training needs, as uint8 arrays: ``dead_leaves`` (n, size, size) and the
    natural images at several scales (``nat_<name>_<scale>``). Save with ``np.savez``."""
    data = {"dead_leaves": dead_leaves_set(n_dead_leaves, size, seed, workers)}
    for name, img in natural_images().items():
        for sc in scales:
            im = img if sc == 1.0 else np.round(resize_area(img, sc)).clip(0, 255).astype(np.uint8)
            if min(im.shape) >= 64:
                data[f"nat_{name}_{sc:g}"] = im
    return data
