"""imaging.denoise: shipped weights, model selection, denoising quality, sizes and dtypes,
tiling, the model and BN folding, training smoke test, CLI registration."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from imaging.denoise import (  # noqa: E402
    WEIGHTS_DIR,
    available_models,
    choose_model,
    load_denoiser,
    manifest,
    sha256_file,
)
from imaging.denoise.model import DnCNN, FoldedDnCNN  # noqa: E402
from privcrypt.rng import DeterministicRandom  # noqa: E402


def _psnr(ref, x):
    mse = np.mean((ref.astype(np.float64) - np.clip(x, 0, 255)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def test_weights_match_manifest_sha256():
    models = available_models()
    assert {m["sigma"] for m in models if m["sigma"]} >= {15.0, 25.0, 31.25, 50.0}
    assert any(m["sigma_range"] for m in models)
    for m in models:
        path = WEIGHTS_DIR / m["file"]
        assert path.exists()
        assert sha256_file(path) == m["sha256"]
        assert path.stat().st_size < 3_000_000
    assert manifest()["format"] == 1


def test_every_model_loads_on_cpu():
    for m in available_models():
        d = load_denoiser(m["sigma"] or 40.0, blind=m["sigma"] is None, device="cpu")
        assert d.name == m["name"]
        assert d.device == "cpu"


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    import imaging.denoise as den

    src = WEIGHTS_DIR / "dncnn17_s25.safetensors"
    bad = tmp_path / "dncnn17_s25.safetensors"
    data = bytearray(src.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    (tmp_path / "manifest.json").write_text((WEIGHTS_DIR / "manifest.json").read_text())
    monkeypatch.setattr(den, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(den, "MANIFEST", tmp_path / "manifest.json")
    den._load_module.cache_clear()
    try:
        with pytest.raises(ValueError, match="sha256"):
            den.load_denoiser(25, device="cpu")
    finally:
        den._load_module.cache_clear()


def test_selection_rule():
    models = available_models()
    pick = lambda s, **kw: choose_model(s, models, **kw)["name"]  # noqa: E731
    assert pick(25) == "dncnn17_s25"
    assert pick(26) == "dncnn17_s25"  # within 10 %
    assert pick(31.25) == pick(30) == "dncnn17_s31p25"
    assert pick(15) == "dncnn17_s15"
    assert pick(50) == "dncnn17_s50"
    assert pick(40) == pick(10) == "dncnn17_blind"
    assert pick(25, blind=True) == "dncnn17_blind"
    assert pick(120) == "dncnn17_s50"  # outside the blind range: nearest specific
    with pytest.raises(ValueError):
        load_denoiser(0)


@pytest.fixture(scope="module")
def crop():
    skd = pytest.importorskip("skimage.data")
    return skd.camera()[96:192, 160:256]  # 96x96 uint8


def test_denoising_gains_at_least_8_db(crop):
    noisy = crop + DeterministicRandom("test_denoise").normal(25.0, crop.shape)
    out = load_denoiser(25, device="cpu").denoise(noisy)
    assert out.dtype == np.float32 and out.shape == crop.shape
    gain = _psnr(crop, out) - _psnr(crop, noisy)
    assert gain >= 8.0, gain


def test_blind_model_denoises(crop):
    noisy = crop + DeterministicRandom("test_denoise_blind").normal(40.0, crop.shape)
    out = load_denoiser(40, device="cpu").denoise(noisy)
    assert _psnr(crop, out) - _psnr(crop, noisy) >= 8.0


@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (2, 9), (65, 31)])
def test_odd_sizes_and_dtypes(shape):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, shape, dtype=np.uint8)
    d = load_denoiser(25, device="cpu")
    a = d.denoise(u8)
    b = d.denoise(u8.astype(np.float64))
    c = d.denoise(u8.astype(np.float32))
    for x in (a, b, c):
        assert x.shape == shape and x.dtype == np.float32 and np.isfinite(x).all()
    np.testing.assert_allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(a, c, atol=1e-3)


def test_output_on_0_255_scale(crop):
    out = load_denoiser(15, device="cpu").denoise(crop)
    assert 0.5 * crop.mean() < out.mean() < 1.5 * crop.mean()
    assert _psnr(crop, out) > 28  # a clean input stays close (a sigma-15 model smooths it a little)


def test_rejects_non_2d():
    with pytest.raises(ValueError):
        load_denoiser(25, device="cpu").denoise(np.zeros((4, 4, 3)))


def test_tiled_equals_whole_image():
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 255, (70, 93))
    whole = load_denoiser(25, device="cpu", tile=512).denoise(img)
    tiled = load_denoiser(25, device="cpu", tile=16).denoise(img)
    np.testing.assert_allclose(tiled, whole, atol=1e-3)


def test_model_shapes_and_bn_folding():
    torch.manual_seed(0)
    for depth in (9, 17):
        m = DnCNN(depth=depth)
        assert len([x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]) == depth
        for bn in m.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.running_mean.uniform_(-0.1, 0.1)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.data.uniform_(0.5, 1.5)
                bn.bias.data.uniform_(-0.1, 0.1)
        m.eval()
        x = torch.rand(2, 1, 19, 23)
        with torch.no_grad():
            y, yf = m(x), FoldedDnCNN(m)(x)
        assert y.shape == x.shape
        torch.testing.assert_close(y, yf, atol=1e-5, rtol=1e-4)


def test_dead_leaves_deterministic_and_in_range():
    from imaging.denoise.data import dead_leaves

    a, b = dead_leaves(48, 3), dead_leaves(48, 3)
    assert a.shape == (48, 48)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 255 and a.std() > 5


def test_training_data_excludes_evaluation_images():
    from imaging.denoise import data

    for name in data.SKIMAGE_TRAIN:
        assert name not in data.EVAL_IMAGES
    assert {"camera", "astronaut", "coffee", "chelsea", "cat", "moon", "coins", "ascent", "aero"} <= set(data.EVAL_IMAGES)


def test_train_smoke_cpu(tmp_path):
    from imaging.denoise.data import dead_leaves_set
    from imaging.denoise.train import train

    npz = tmp_path / "d.npz"
    np.savez(npz, dead_leaves=dead_leaves_set(2, 64, seed=1), nat_x_1=dead_leaves_set(1, 64, seed=2)[0])
    out = tmp_path / "m.pt"
    model, info = train(sigma=25, depth=3, features=8, data=str(npz), patch=24, stride=8, batch=4,
                        iters=3, device="cpu", out=str(out), log=lambda m: None)
    assert info["steps"] == 3 and out.exists()
    sd = torch.load(out, weights_only=True)
    m2 = DnCNN(depth=3, features=8)
    m2.load_state_dict(sd)
    _, info_b = train(sigma_range=(5, 50), depth=3, features=8, data=str(npz), patch=24, stride=8, batch=4,
                      iters=2, device="cpu", init=str(out), log=lambda m: None)
    assert info_b["sigma_range"] == [5, 50]


def test_train_ema_saves_the_average_and_precision_is_checked(tmp_path):
    from imaging.denoise.data import dead_leaves_set
    from imaging.denoise.train import train

    npz = tmp_path / "d.npz"
    np.savez(npz, dead_leaves=dead_leaves_set(2, 64, seed=1))
    kw = dict(sigma=25, depth=3, features=8, data=str(npz), patch=24, stride=8, batch=4, iters=4,
              device="cpu", lr=1e-2, log=lambda m: None)
    init = tmp_path / "init.pt"
    torch.manual_seed(0)
    torch.save(DnCNN(depth=3, features=8).state_dict(), init)
    start = torch.load(init, weights_only=True)
    _, info_last = train(**kw, init=str(init), out=str(tmp_path / "last.pt"), precision="fp32")
    _, info_ema = train(**kw, init=str(init), out=str(tmp_path / "ema.pt"), precision="fp32", ema=0.5)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    avg = torch.load(tmp_path / "ema.pt", weights_only=True)
    assert info_last["ema"] is None and info_ema["ema"] == 0.5 and info_ema["precision"] == "fp32"
    key = "body.0.weight"
    # Same seed, same steps: the EMA of the iterates lies strictly between start and end.
    d_end = (avg[key] - last[key]).norm()
    d_start = (avg[key] - start[key]).norm()
    total = (last[key] - start[key]).norm()
    assert 0 < d_end < total and 0 < d_start < total
    with pytest.raises(ValueError):
        train(**kw, precision="fp8")
    with pytest.raises(ValueError):
        train(**kw, ema=1.0)


def test_cli_add_parsers(tmp_path):
    from imaging.denoise.cli import add_parsers
    from imaging.denoise.data import dead_leaves_set

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd")
    add_parsers(sub)
    npz = tmp_path / "d.npz"
    np.savez(npz, dead_leaves=dead_leaves_set(2, 64, seed=1))
    args = parser.parse_args(["train-denoiser", "--data", str(npz), "--iters", "2", "--depth", "3",
                              "--features", "8", "--batch", "2", "--patch", "24", "--device", "cpu",
                              "--out", str(tmp_path / "m.pt")])
    info = args.func(args)
    assert info["steps"] == 2 and (tmp_path / "m.pt").exists()


def test_importable_without_pywt():
    code = ("import sys; sys.modules['pywt'] = None\n"
            "import imaging.denoise as d; import json\n"
            "print(json.dumps(d.load_denoiser(25, device='cpu').name))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == "dncnn17_s25"


def test_self_ensemble_shapes_and_quality(crop):
    noisy = crop + DeterministicRandom("test_denoise_x8").normal(25.0, crop.shape)
    plain = load_denoiser(25, device="cpu").denoise(noisy)
    ens = load_denoiser(25, device="cpu", ensemble=True).denoise(noisy)
    assert ens.shape == crop.shape and ens.dtype == np.float32
    assert _psnr(crop, ens) > _psnr(crop, plain) - 0.05
    odd = load_denoiser(25, device="cpu", ensemble=True).denoise(np.zeros((7, 12), np.uint8))
    assert odd.shape == (7, 12)
