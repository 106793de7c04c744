"""``privcrypt image keygen|encrypt|decrypt|metrics``: the FLEP pipeline on PNG files.

* ``keygen --out KEY``: a fresh 256-bit FLEP key (35-byte file, mode 0600).
* ``encrypt --key KEY --in IMG.png --out C.flep [--render C.png] [layer options]``.
* ``decrypt --key KEY --in C.flep --out IMG.png [--decode-order fixed|paper] [--no-denoise]``.
* ``metrics A [B]``: entropy and adjacent correlation of A; with B also NPCR/UACI (with Wu
  et al.'s verdict), encryption quality, PSNR and SSIM. A ``.flep`` file is measured on its
  8-bit rendering.

Cipher files use the strict format of :class:`imaging.pipeline.FlepCipher` (no pickle).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from privcrypt.cli import add_json_flag


def read_image(path: str | Path) -> np.ndarray:
    """A PNG (or any format Pillow reads) as uint8 ``(H, W)`` or ``(H, W, 3|4)``."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("L", "RGB", "RGBA"):
            im = im.convert("RGBA" if "A" in im.getbands() else ("L" if im.mode in ("1", "I", "I;16", "F") else "RGB"))
        arr = np.asarray(im)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


def write_image(path: str | Path, img: np.ndarray) -> None:
    from PIL import Image

    img = np.asarray(img, dtype=np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    Image.fromarray(img).save(path)


def _load_key(path: str):
    from imaging.key import FlepKey

    return FlepKey.from_bytes(Path(path).read_bytes())


def _cmd_keygen(args) -> dict:
    from imaging.key import FlepKey

    out = Path(args.out)
    if (out.exists() or out.is_symlink()) and not args.force:
        raise ValueError(f"{out} exists (use --force to overwrite)")
    key = FlepKey.generate()
    _write_secret_file(out, key.to_bytes())
    return {"key_file": str(out), "key_check_value": key.check_value().hex()}


def _write_secret_file(out: Path, data: bytes) -> None:
    """Write ``data`` to ``out`` with mode 0600 whatever was there before: a fresh file
    (O_EXCL, no symlink following) in the same folder, then an atomic rename over ``out``.
    (Opening ``out`` with O_TRUNC would keep an existing file's mode, and would follow a
    symlink planted at that path.)"""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pipeline_kwargs(args) -> dict:
    kw = dict(
        sigma=args.sigma, noise_mean=args.mean, diffusion=args.diffusion, block=args.block,
        full_permutation=args.full_permutation, scramble=not args.no_scramble,
        blend=not args.no_blend, wavelet=args.wavelet,
        alpha=tuple(args.alphas) if args.alphas else args.alpha,
    )
    if args.carrier:
        kw["carrier"] = read_image(args.carrier)
    return kw


def _cmd_encrypt(args) -> dict:
    from imaging.pipeline import FlepPipeline

    key = _load_key(args.key)
    img = read_image(args.input)
    pipe = FlepPipeline(key, **_pipeline_kwargs(args))
    t0 = time.perf_counter()
    cipher = pipe.encrypt(img)
    elapsed = time.perf_counter() - t0
    cipher.save(args.out)
    if args.render:
        write_image(args.render, cipher.to_uint8())
    params = {k: v for k, v in cipher.params.items() if k != "kcv"}
    return {"cipher_file": args.out, "render": args.render, "encrypt_s": elapsed, "params": params}


def _cmd_decrypt(args) -> dict:
    from imaging.pipeline import FlepCipher, FlepPipeline

    key = _load_key(args.key)
    cipher = FlepCipher.load(args.input)
    over = dict(decode_order=args.decode_order, denoise=not args.no_denoise)
    if args.carrier:
        over["carrier"] = read_image(args.carrier)
    pipe = FlepPipeline.from_cipher(key, cipher, **over)
    t0 = time.perf_counter()
    img = pipe.decrypt(cipher, verify_key=not args.no_verify_key)
    elapsed = time.perf_counter() - t0
    write_image(args.out, img)
    return {"image_file": args.out, "shape": list(img.shape), "decrypt_s": elapsed, "denoiser": pipe.denoiser_name}


def _read_any(path: str) -> np.ndarray:
    if str(path).endswith(".flep"):
        from imaging.pipeline import FlepCipher

        return FlepCipher.load(path).to_uint8()
    return read_image(path)


def _finite(obj):
    """JSON has no inf/nan: report them as strings."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _cmd_metrics(args) -> dict:
    from imaging import metrics as m

    a = _read_any(args.a)
    out: dict = {"a": args.a, "shape": list(a.shape), "entropy_a": m.entropy(a), "correlation_a": m.correlation(a)}
    if args.b:
        b = _read_any(args.b)
        if a.shape != b.shape:
            raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
        out.update({
            "b": args.b, "entropy_b": m.entropy(b), "correlation_b": m.correlation(b),
            "encryption_quality": m.encryption_quality(a, b),
            "wu": m.wu_test(a, b, args.alpha), "psnr": m.psnr(a, b), "ssim": m.ssim(a, b),
        })
    return _finite(out)


def add_parser(sub) -> None:
    parser = sub.add_parser("image", help="FLEP image protection: keygen, encrypt, decrypt, metrics")
    isub = parser.add_subparsers(dest="image_command", metavar="ACTION")

    p = isub.add_parser("keygen", help="write a fresh 256-bit FLEP key")
    p.add_argument("--out", required=True, help="key file to write (mode 0600)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    add_json_flag(p)
    p.set_defaults(func=_cmd_keygen)

    p = isub.add_parser("encrypt", help="encrypt a PNG into a .flep cipher file")
    p.add_argument("--key", required=True)
    p.add_argument("--in", dest="input", required=True, help="PNG image (gray or RGB)")
    p.add_argument("--out", required=True, help="cipher file (.flep)")
    p.add_argument("--render", help="also write the 8-bit rendering of the cipher as PNG")
    p.add_argument("--sigma", type=float, default=25.0, help="AWGN sigma on 0-255 (0: no noise, lossless)")
    p.add_argument("--mean", type=float, default=0.0, help="AWGN mean")
    p.add_argument("--diffusion", action="store_true", help="add the keyed diffusion layer")
    p.add_argument("--block", type=int, default=2, help="scrambler sub-block side")
    p.add_argument("--full-permutation", action="store_true", help="permute all pixels chaotically")
    p.add_argument("--no-scramble", action="store_true")
    p.add_argument("--no-blend", action="store_true")
    p.add_argument("--alpha", type=float, default=0.8, help="blend weight of the scrambled image")
    p.add_argument("--alphas", type=float, nargs=4, metavar=("A", "H", "V", "D"), help="per-sub-band alphas")
    p.add_argument("--wavelet", default="haar")
    p.add_argument("--carrier", help="secret carrier image (default: derived from the key)")
    add_json_flag(p)
    p.set_defaults(func=_cmd_encrypt)

    p = isub.add_parser("decrypt", help="decrypt a .flep cipher file into a PNG")
    p.add_argument("--key", required=True)
    p.add_argument("--in", dest="input", required=True, help="cipher file (.flep)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--carrier", help="the carrier image used at encryption, if user-supplied")
    p.add_argument("--decode-order", choices=("fixed", "paper"), default="fixed",
                   help="fixed: unblend, descramble, then denoise (default); paper: denoise first")
    p.add_argument("--no-denoise", action="store_true")
    p.add_argument("--no-verify-key", action="store_true", help="decrypt even if the key check value differs")
    add_json_flag(p)
    p.set_defaults(func=_cmd_decrypt)

    p = isub.add_parser("metrics", help="entropy, correlation; with two images NPCR/UACI (Wu), EQ, PSNR, SSIM")
    p.add_argument("a", help="PNG or .flep")
    p.add_argument("b", nargs="?", help="second PNG or .flep (same shape)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of Wu et al.'s tests")
    add_json_flag(p)
    p.set_defaults(func=_cmd_metrics)

    parser.set_defaults(func=lambda args: parser.print_help())

    try:  # the DnCNN training command lives with the denoiser
        from imaging.denoise.cli import add_parsers
    except ModuleNotFoundError:
        pass
    else:
        add_parsers(isub)
