"""``privcrypt image keygen|encrypt|decrypt|metrics``: the FLEP pipeline on PNG files.

* ``keygen --out KEY``: a fresh 256-bit FLEP key (35-byte file, mode 0600).
* ``encrypt --key KEY --in IMG.png --out C.flep [--render C.png] [layer options]``.
* ``decrypt --key KEY --in C.flep --out IMG.png [--decode-order fixed|paper] [--no-denoise]
  [--denoiser MODEL.pt]``.
* ``metrics A [B]``: entropy and adjacent correlation of A; with B also NPCR/UACI (with Wu
  et al.'s verdict), encryption quality, PSNR and SSIM. A ``.flep`` file is measured on its
  8-bit rendering.

Inputs: 8-bit images only (gray, gray+alpha, RGB, RGBA; palette and 1-bit images are
expanded losslessly). A 16-bit or floating-point image is refused (``UnsupportedParameters``)
rather than reduced to 8 bits. Unreadable or truncated files raise ``MalformedInput``.

Outputs: every path and extension is checked before any work (images: ``.png``, ``.tif``,
``.tiff``, ``.bmp``, all lossless; ciphers: ``.flep``); an existing file is replaced only
with ``--force``; each file is written to a temporary name and renamed into place, so an
interrupted or failed command never leaves a half-written output.

Cipher files use the strict format of :class:`imaging.pipeline.FlepCipher` (no pickle).
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np

from privcrypt.cli import add_json_flag
from privcrypt.exceptions import MalformedInput, UnsupportedParameters

#: Lossless formats ``write_image`` writes, by extension.
IMAGE_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
_DIRECT_MODES = ("L", "LA", "RGB", "RGBA")


def read_image(path: str | Path) -> np.ndarray:
    """An 8-bit image file as uint8 ``(H, W)`` or ``(H, W, 2|3|4)``.

    Palette and 1-bit images are expanded losslessly (to RGB/RGBA and to 0/255 gray).
    Raises ``UnsupportedParameters`` for more than 8 bits per sample (16-bit PNG/TIFF,
    32-bit integer or float images) or a colour model other than gray/RGB (CMYK, YCbCr,
    LAB...), and ``MalformedInput`` for a file that is not a readable image (text,
    truncated or corrupt). A missing path or a folder raises ``OSError``."""
    from PIL import Image

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not an image")
    try:
        im = Image.open(path)
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as exc:  # Pillow raises many types for foreign bytes
        raise MalformedInput(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
    with im:
        rawmodes = " ".join(str(t[-1]) for t in getattr(im, "tile", []) or [])
        if im.mode not in _DIRECT_MODES + ("P", "PA", "1") or any(b in rawmodes for b in (";16", ";32", "I;", "F;")):
            raise UnsupportedParameters(
                f"{path}: image mode {im.mode!r} ({rawmodes or 'unknown layout'}) is not 8 bits per sample; "
                "FLEP encrypts 8-bit gray/RGB/RGBA images only; convert it first (it is not reduced silently)")
        try:
            im.load()
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA" if ("A" in im.getbands() or "transparency" in im.info) else "RGB")
            elif im.mode == "1":
                im = im.convert("L")
            arr = np.asarray(im)
        except Exception as exc:
            raise MalformedInput(f"{path}: truncated or corrupt image ({type(exc).__name__}: {exc})") from None
    if arr.dtype != np.uint8:  # pragma: no cover - excluded by the mode check above
        raise UnsupportedParameters(f"{path}: pixels are {arr.dtype}, not uint8")
    return arr


def encode_image(img: np.ndarray, ext: str = ".png") -> bytes:
    """``img`` (uint8, ``(H, W)`` or ``(H, W, 1..4)``) encoded in the lossless format of
    extension ``ext``."""
    from PIL import Image

    fmt = IMAGE_FORMATS.get(ext.lower())
    if fmt is None:
        raise ValueError(f"cannot write {ext!r} images; use one of {', '.join(sorted(IMAGE_FORMATS))} (lossless)")
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    return buf.getvalue()


def write_image(path: str | Path, img: np.ndarray) -> None:
    """Write ``img`` atomically in the lossless format named by ``path``'s extension."""
    path = Path(path)
    atomic_write(path, encode_image(img, path.suffix))


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a fresh temporary file (``O_EXCL``, no symlink following) in
    ``path``'s folder, then rename it over ``path``: readers see the old file or the whole
    new one, never a part; a failure removes the temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_secret_file(out: Path, data: bytes) -> None:
    """Write ``data`` to ``out`` with mode 0600 whatever was there before (a fresh file,
    then an atomic rename: opening ``out`` with O_TRUNC would keep an existing file's
    mode, and would follow a symlink planted at that path)."""
    atomic_write(out, data, 0o600)


def check_input(path: str | None, flag: str) -> None:
    """``path`` (given as ``flag``) must be an existing regular file."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {path} is a folder, not a file")
    if not p.exists():
        raise FileNotFoundError(f"{flag} {path}: no such file")


def check_output(path: str | None, flag: str, *, force: bool, exts: tuple[str, ...] | None = None) -> None:
    """Refuse an output path before any work: a folder, a missing parent folder, an
    extension outside ``exts``, or an existing file without ``force``."""
    if path is None:
        return
    p = Path(path)
    if exts is not None and p.suffix.lower() not in exts:
        raise ValueError(f"{flag} {path}: the file name must end in {' or '.join(exts)}")
    if p.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{flag} {path}: folder {parent} does not exist")
    if (p.exists() or p.is_symlink()) and not force:
        raise ValueError(f"{flag} {path} exists (use --force to overwrite)")


def _distinct(*pairs: tuple[str, str | None]) -> None:
    seen: dict[str, str] = {}
    for flag, path in pairs:
        if path is None:
            continue
        key = os.path.realpath(path)
        if key in seen:
            raise ValueError(f"{flag} and {seen[key]} name the same file {path}")
        seen[key] = flag


def _load_key(path: str):
    from imaging.key import FlepKey

    check_input(path, "--key")
    return FlepKey.from_bytes(Path(path).read_bytes())


def _cmd_keygen(args) -> dict:
    from imaging.key import FlepKey

    check_output(args.out, "--out", force=args.force)
    key = FlepKey.generate()
    _write_secret_file(Path(args.out), key.to_bytes())
    return {"key_file": str(args.out), "key_check_value": key.check_value().hex()}


def _read_carrier(path: str) -> np.ndarray:
    check_input(path, "--carrier")
    try:
        return read_image(path)
    except (MalformedInput, UnsupportedParameters) as exc:
        raise type(exc)(f"--carrier: {exc}") from None


def _pipeline_kwargs(args) -> dict:
    for flag, value in (("--sigma", args.sigma), ("--mean", args.mean), ("--alpha", args.alpha)):
        if not np.isfinite(value):
            raise ValueError(f"{flag} must be a finite number, got {value}")
    if args.sigma < 0:
        raise ValueError(f"--sigma must be >= 0, got {args.sigma}")
    kw = dict(
        sigma=args.sigma, noise_mean=args.mean, diffusion=args.diffusion, block=args.block,
        full_permutation=args.full_permutation, scramble=not args.no_scramble,
        blend=not args.no_blend, wavelet=args.wavelet,
        alpha=tuple(args.alphas) if args.alphas else args.alpha,
    )
    if args.carrier:
        kw["carrier"] = _read_carrier(args.carrier)
    return kw


def _carrier_errors(exc: Exception) -> Exception:
    """Name the command-line flag, not the Python keyword, in carrier errors."""
    text = str(exc).replace("pass carrier=", "pass --carrier IMAGE").replace("carrier=", "--carrier ")
    return type(exc)(text) if text != str(exc) else exc


def _cmd_encrypt(args) -> dict:
    from imaging.pipeline import FlepPipeline

    check_input(args.input, "--in")
    check_output(args.out, "--out", force=args.force, exts=(".flep",))
    check_output(args.render, "--render", force=args.force, exts=tuple(IMAGE_FORMATS))
    _distinct(("--in", args.input), ("--out", args.out), ("--render", args.render), ("--key", args.key))
    key = _load_key(args.key)
    img = read_image(args.input)
    try:
        pipe = FlepPipeline(key, **_pipeline_kwargs(args))
        t0 = time.perf_counter()
        cipher = pipe.encrypt(img)
    except (ValueError, TypeError) as exc:
        raise _carrier_errors(exc) from None
    elapsed = time.perf_counter() - t0
    blobs = [(Path(args.out), cipher.to_bytes())]
    if args.render:
        blobs.append((Path(args.render), encode_image(cipher.to_uint8(), Path(args.render).suffix)))
    for path, data in blobs:  # every output is encoded before the first one is written
        atomic_write(path, data)
    params = {k: v for k, v in cipher.params.items() if k != "kcv"}
    return {"cipher_file": args.out, "render": args.render, "encrypt_s": elapsed, "params": params}


def _cmd_decrypt(args) -> dict:
    from imaging.pipeline import FlepCipher, FlepPipeline

    check_input(args.input, "--in")
    check_output(args.out, "--out", force=args.force, exts=tuple(IMAGE_FORMATS))
    check_input(args.denoiser, "--denoiser")
    _distinct(("--in", args.input), ("--out", args.out), ("--key", args.key))
    key = _load_key(args.key)
    cipher = FlepCipher.load(args.input)
    if cipher.params["carrier"] == "user" and not args.carrier:
        raise ValueError("this cipher was blended with a user-supplied carrier: pass --carrier IMAGE")
    over: dict = dict(decode_order=args.decode_order, denoise=not args.no_denoise)
    if args.carrier:
        over["carrier"] = _read_carrier(args.carrier)
    if args.denoiser and not args.no_denoise:
        from imaging.denoise import load_denoiser

        over["denoiser"] = load_denoiser(args.denoiser)
    try:
        pipe = FlepPipeline.from_cipher(key, cipher, **over)
    except (ValueError, TypeError) as exc:
        raise _carrier_errors(exc) from None
    t0 = time.perf_counter()
    img = pipe.decrypt(cipher, verify_key=not args.no_verify_key)
    elapsed = time.perf_counter() - t0
    write_image(args.out, img)
    return {"image_file": args.out, "shape": list(img.shape), "decrypt_s": elapsed, "denoiser": pipe.denoiser_name}


def _read_any(path: str, flag: str) -> np.ndarray:
    check_input(path, flag)
    if str(path).endswith(".flep"):
        from imaging.pipeline import FlepCipher

        return FlepCipher.load(path).to_uint8()
    return read_image(path)


def _cmd_metrics(args) -> dict:
    from imaging import metrics as m

    a = _read_any(args.a, "A")
    b = _read_any(args.b, "B") if args.b else None
    if b is not None and a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    out: dict = {"a": args.a, "shape": list(a.shape), "entropy_a": m.entropy(a), "correlation_a": m.correlation(a)}
    if b is not None:
        out.update({
            "b": args.b, "entropy_b": m.entropy(b), "correlation_b": m.correlation(b),
            "encryption_quality": m.encryption_quality(a, b),
            "wu": m.wu_test(a, b, args.alpha), "psnr": m.psnr(a, b), "ssim": m.ssim(a, b),
        })
    return out  # non-finite values (PSNR of identical images) follow privcrypt.cli's JSON rule


def add_parser(sub) -> None:
    """Register ``privcrypt image`` and its actions."""
    parser = sub.add_parser("image", help="FLEP image protection: keygen, encrypt, decrypt, metrics")
    isub = parser.add_subparsers(dest="image_command", metavar="ACTION", required=True)

    p = isub.add_parser("keygen", help="write a fresh 256-bit FLEP key")
    p.add_argument("--out", required=True, help="key file to write (mode 0600)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    add_json_flag(p)
    p.set_defaults(func=_cmd_keygen)

    p = isub.add_parser("encrypt", help="encrypt an 8-bit image into a .flep cipher file")
    p.add_argument("--key", required=True, help="FLEP key file (from image keygen)")
    p.add_argument("--in", dest="input", required=True, help="8-bit PNG/TIFF/BMP image (gray, RGB or RGBA)")
    p.add_argument("--out", required=True, help="cipher file to write (.flep)")
    p.add_argument("--render", help="also write the 8-bit rendering of the cipher (.png, .tif or .bmp)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--sigma", type=float, default=25.0, help="AWGN sigma on 0-255 (0: no noise, lossless)")
    p.add_argument("--mean", type=float, default=0.0, help="AWGN mean")
    p.add_argument("--diffusion", action="store_true", help="add the keyed diffusion layer")
    p.add_argument("--block", type=int, default=2, help="scrambler sub-block side")
    p.add_argument("--full-permutation", action="store_true", help="permute all pixels chaotically")
    p.add_argument("--no-scramble", action="store_true", help="switch the scrambling layer off")
    p.add_argument("--no-blend", action="store_true", help="switch the DWT blending layer off")
    p.add_argument("--alpha", type=float, default=0.8, help="blend weight of the scrambled image")
    p.add_argument("--alphas", type=float, nargs=4, metavar=("A", "H", "V", "D"),
                   help="per-sub-band alphas (instead of --alpha)")
    p.add_argument("--wavelet", default="haar", help="orthogonal pywavelets wavelet of the blend")
    p.add_argument("--carrier", help="secret carrier image (default: derived from the key)")
    add_json_flag(p)
    p.set_defaults(func=_cmd_encrypt)

    p = isub.add_parser("decrypt", help="decrypt a .flep cipher file into an image")
    p.add_argument("--key", required=True, help="FLEP key file the cipher was made under")
    p.add_argument("--in", dest="input", required=True, help="cipher file (.flep)")
    p.add_argument("--out", required=True, help="image to write (.png, .tif or .bmp)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--carrier", help="the carrier image used at encryption, if user-supplied")
    p.add_argument("--decode-order", choices=("fixed", "paper"), default="fixed",
                   help="fixed: unblend, descramble, then denoise; paper: denoise first")
    p.add_argument("--no-denoise", action="store_true", help="skip the denoiser (keeps the noise)")
    p.add_argument("--denoiser", metavar="MODEL", default=None,
                   help="DnCNN weights from train-denoiser (.pt or .safetensors) instead of the shipped model")
    p.add_argument("--no-verify-key", action="store_true", help="decrypt even if the key check value differs")
    add_json_flag(p)
    p.set_defaults(func=_cmd_decrypt)

    p = isub.add_parser("metrics", help="entropy, correlation; with two images NPCR/UACI (Wu), EQ, PSNR, SSIM")
    p.add_argument("a", help="PNG or .flep")
    p.add_argument("b", nargs="?", help="second PNG or .flep (same shape)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of Wu et al.'s tests")
    add_json_flag(p)
    p.set_defaults(func=_cmd_metrics)

    from imaging.denoise.cli import add_parsers  # the DnCNN training command (torch-free parser)

    add_parsers(isub)
