"""Issue 14: the image commands refuse bad input in one line, check outputs before any
work, write atomically, never reduce a 16-bit image silently, and print strict JSON."""

import json
from pathlib import Path

import numpy as np
import pytest

from privcrypt.cli import main

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


def strict_loads(text):
    def bad(name):
        raise ValueError(name)
    return json.loads(text, parse_constant=bad)


@pytest.fixture()
def env(tmp_path):
    img = (np.add.outer(np.arange(24), np.arange(20)) * 5 % 256).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "g.png")
    key = tmp_path / "k.key"
    assert main(["image", "keygen", "--out", str(key)]) == 0
    return tmp_path, img, key


def _err(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _write_16bit_png(path, arr):
    import zlib
    import struct

    h, w = arr.shape[:2]
    color = 0 if arr.ndim == 2 else 2
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)


@pytest.mark.parametrize("shape", [(8, 6), (8, 6, 3)])
def test_16bit_image_is_refused_not_clipped(env, capsys, shape):
    tmp, _, key = env
    arr = (np.arange(np.prod(shape)).reshape(shape) * 1000 % 65536).astype(np.uint16)
    _write_16bit_png(tmp / "deep.png", arr)
    out = tmp / "c.flep"
    assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp / "deep.png"), "--out", str(out)]) == 2
    assert "not 8 bits per sample" in _err(capsys)
    assert not out.exists()


def test_other_modes(env, capsys):
    tmp, img, key = env
    Image.fromarray(img).convert("P").save(tmp / "pal.png")  # palette: expanded losslessly
    Image.fromarray(img.astype(np.float32)).save(tmp / "f.tif")  # float: refused
    assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp / "pal.png"), "--out",
                 str(tmp / "p.flep"), "--sigma", "0"]) == 0
    assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp / "f.tif"), "--out",
                 str(tmp / "f.flep")]) == 2
    assert "not 8 bits" in _err(capsys)
    Image.fromarray(img).convert("CMYK").save(tmp / "c.tif")
    assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp / "c.tif"), "--out", str(tmp / "c.flep")]) == 2
    assert "CMYK" in _err(capsys)


@pytest.mark.parametrize("content", [b"just some text\n", None])
def test_text_or_truncated_file_as_image(env, capsys, content):
    tmp, _, key = env
    bad = tmp / "bad.png"
    if content is None:  # a PNG cut in the middle of its pixel data
        noise = (np.arange(64 * 64, dtype=np.uint64) * 2654435761 % 251).astype(np.uint8).reshape(64, 64)
        Image.fromarray(noise).save(tmp / "full.png")
        whole = (tmp / "full.png").read_bytes()
        content = whole[: len(whole) // 2]
    bad.write_bytes(content)
    assert main(["image", "encrypt", "--key", str(key), "--in", str(bad), "--out", str(tmp / "c.flep")]) == 2
    assert "bad.png" in _err(capsys)
    assert main(["image", "metrics", str(bad), "--json"]) == 2
    _err(capsys)


def test_directory_as_in_or_out(env, capsys):
    tmp, _, key = env
    assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp), "--out", str(tmp / "c.flep")]) == 2
    assert "folder" in _err(capsys)
    (tmp / "dir.flep").mkdir()
    assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp / "g.png"), "--out", str(tmp / "dir.flep")]) == 2
    assert "folder" in _err(capsys)
    assert main(["image", "keygen", "--out", str(tmp)]) == 2
    _err(capsys)


def test_outputs_checked_before_work_and_never_half_written(env, capsys):
    tmp, _, key = env
    ct = tmp / "r1.flep"
    # a bad --render extension is refused before the cipher is written
    assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp / "g.png"), "--out", str(ct),
                 "--render", str(tmp / "r1.xyz")]) == 2
    assert "--render" in _err(capsys) and not ct.exists()
    assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp / "g.png"), "--out", str(tmp / "x.bin")]) == 2
    assert ".flep" in _err(capsys)
    assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp / "g.png"), "--out", str(ct)]) == 0
    capsys.readouterr()
    # decrypt rejects --out x.bak at once (no denoiser run), and an existing file without --force
    assert main(["image", "decrypt", "--key", str(key), "--in", str(ct), "--out", str(tmp / "x.bak")]) == 2
    assert "--out" in _err(capsys)
    (tmp / "d.png").write_bytes(b"keep me")
    assert main(["image", "decrypt", "--key", str(key), "--in", str(ct), "--out", str(tmp / "d.png"),
                 "--no-denoise"]) == 2
    assert "--force" in _err(capsys) and (tmp / "d.png").read_bytes() == b"keep me"
    assert main(["image", "decrypt", "--key", str(key), "--in", str(ct), "--out", str(tmp / "d.png"),
                 "--no-denoise", "--force"]) == 0
    # encrypt refuses to overwrite too
    assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp / "g.png"), "--out", str(ct)]) == 2
    _err(capsys)
    assert not list(tmp.glob(".*.tmp"))  # no temporary files left behind


def test_non_finite_cipher_is_refused(env, capsys):
    tmp, _, key = env
    ct = tmp / "big.flep"
    for extra in ([], ["--diffusion"]):
        assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp / "g.png"), "--out", str(ct),
                     "--sigma", "1e300", *extra]) == 2
        _err(capsys)
        assert not ct.exists()
    assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp / "g.png"), "--out", str(ct),
                 "--sigma", "nan"]) == 2
    assert "--sigma" in _err(capsys)


def test_user_carrier_error_names_the_flag(env, capsys):
    tmp, img, key = env
    carrier = (255 - img)
    Image.fromarray(carrier).save(tmp / "carrier.png")
    ct = tmp / "u.flep"
    assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp / "g.png"), "--out", str(ct),
                 "--carrier", str(tmp / "carrier.png"), "--sigma", "0"]) == 0
    capsys.readouterr()
    assert main(["image", "decrypt", "--key", str(key), "--in", str(ct), "--out", str(tmp / "o.png")]) == 2
    err = _err(capsys)
    assert "--carrier" in err and "carrier=" not in err
    assert main(["image", "decrypt", "--key", str(key), "--in", str(ct), "--out", str(tmp / "o.png"),
                 "--carrier", str(tmp / "carrier.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp / "o.png")), img)


def test_metrics_json_is_strict(env, capsys):
    tmp, _, _ = env
    assert main(["image", "metrics", str(tmp / "g.png"), str(tmp / "g.png"), "--json"]) == 0
    data = strict_loads(capsys.readouterr().out)
    assert data["psnr"] is None and data["nonfinite"]["psnr"] == "inf"


def test_trained_denoiser_is_accepted(env, capsys):
    """A file in train-denoiser's --out format (torch.save of a float32 state_dict)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from imaging.denoise import load_denoiser
    from imaging.denoise.model import DnCNN

    tmp, img, key = env
    model = DnCNN(3, 8)
    torch.save({k: v.detach().float().cpu() for k, v in model.state_dict().items()}, tmp / "mine.pt")
    den = load_denoiser(tmp / "mine.pt", device="cpu")
    assert den.denoise(img).shape == img.shape and "mine.pt" in den.name
    ct = tmp / "n.flep"
    assert main(["image", "encrypt", "--key", str(key), "--in", str(tmp / "g.png"), "--out", str(ct)]) == 0
    capsys.readouterr()
    assert main(["image", "decrypt", "--key", str(key), "--in", str(ct), "--out", str(tmp / "n.png"),
                 "--denoiser", str(tmp / "mine.pt"), "--json"]) == 0
    assert "mine.pt" in strict_loads(capsys.readouterr().out)["denoiser"]
    (tmp / "junk.pt").write_bytes(b"not a model")
    assert main(["image", "decrypt", "--key", str(key), "--in", str(ct), "--out", str(tmp / "n2.png"),
                 "--denoiser", str(tmp / "junk.pt")]) == 2
    assert "junk.pt" in _err(capsys) and not (tmp / "n2.png").exists()


def test_train_denoiser_checks_its_output_first(env, capsys):
    tmp, _, _ = env
    (tmp / "m.pt").write_bytes(b"an earlier model")
    assert main(["image", "train-denoiser", "--out", str(tmp / "m.pt"), "--iters", "1"]) == 2
    assert "--force" in _err(capsys) and (tmp / "m.pt").read_bytes() == b"an earlier model"
    assert main(["image", "train-denoiser", "--out", str(tmp / "nodir" / "m.pt"), "--iters", "1"]) == 2
    assert "does not exist" in _err(capsys)
