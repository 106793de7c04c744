"""Train a DnCNN denoiser: patches, flips/rotations, Adam, a cosine learning-rate schedule.

Everything happens on the device: the training images are cut into a bank of uint8
patches held on the GPU (or CPU), and each step draws a batch from it, applies one of the
8 flips/rotations, adds Gaussian noise (a fixed sigma, or per-patch uniform sigmas for a
blind model) and regresses the noise (residual learning, MSE).

The budget is given in steps or in seconds; with ``--seconds`` the learning rate follows
the elapsed fraction of the budget, so the schedule completes whatever the device speed.
It trains in bfloat16 autocast with channels-last memory on a GPU, and on a CPU whose
oneDNN supports bfloat16 (AVX-512 BF16 or AMX: about 4x the float32 speed on the 2-core
Xeon measured here, ~1 step/s at batch 128); ``precision="fp32"`` turns that off. Without a
GPU, training is a smoke test or a short fine-tune: an H100 runs ~70x faster.

``ema`` keeps an exponential moving average of the weights and BatchNorm statistics and
saves that instead of the last iterate (a cheap way to average out the step noise of a
fine-tune).

Training noise is not secret material: it comes from torch's generator (seeded). This
module imports neither privcrypt nor pywt (it runs on a bare GPU machine)::

    python -m imaging.denoise.train --sigma 25 --seconds 240 --data train_data.npz --out s25.pt
    python -m imaging.denoise.train --sigma-min 5 --sigma-max 80 --iters 20000 --out blind.pt
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from .args import add_arguments  # noqa: F401 - re-exported (torch-free parser)
from .model import DnCNN


def load_sources(path: str | None, n_dead_leaves: int = 64, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(dead-leaves images, natural images) as uint8 arrays: from an ``.npz`` written by
    :func:`imaging.denoise.data.build_training_set`, or built now when ``path`` is None."""
    if path:
        with np.load(path) as z:
            data = {k: z[k] for k in z.files}
    else:
        from .data import build_training_set

        data = build_training_set(n_dead_leaves, 256, seed=seed, workers=1)
    dl = list(data.pop("dead_leaves", []))
    nat = [v for k, v in sorted(data.items()) if k.startswith("nat_")]
    return dl, nat


def patch_bank(images: list[np.ndarray], patch: int, stride: int, device) -> torch.Tensor:
    """All ``patch x patch`` crops at ``stride`` of every image: uint8 ``(N, patch, patch)``."""
    out = []
    for img in images:
        t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.uint8))
        if t.shape[0] < patch or t.shape[1] < patch:
            continue
        p = t.unfold(0, patch, stride).unfold(1, patch, stride).reshape(-1, patch, patch)
        out.append(p)
    return torch.cat(out).to(device)


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def lr_at(frac: float, lr: float, lr_min: float, warmup: float = 0.02) -> float:
    """Linear warm-up over the first ``warmup`` fraction, then cosine from lr to lr_min."""
    if frac < warmup:
        return lr * max(frac / warmup, 0.05)
    f = min(1.0, (frac - warmup) / (1 - warmup))
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * f))


def train(
    *,
    sigma: float | None = 25.0,
    sigma_range: tuple[float, float] | None = None,
    depth: int = 17,
    features: int = 64,
    data: str | None = None,
    patch: int = 48,
    stride: int = 12,
    batch: int = 128,
    natural_fraction: float = 0.5,
    iters: int | None = None,
    seconds: float | None = None,
    lr: float = 1e-3,
    lr_min: float = 1e-5,
    init: str | None = None,
    out: str | None = None,
    device: str | None = None,
    seed: int = 0,
    checkpoint_every_s: float = 60.0,
    log=print,
    n_dead_leaves: int = 64,
    precision: str = "auto",
    ema: float | None = None,
) -> tuple[DnCNN, dict]:
    """Train one model; returns ``(model in eval mode on the CPU, info dict)``.
    Writes the state_dict to ``out`` (``torch.save``) at checkpoints and at the end."""
    if iters is None and seconds is None:
        raise ValueError("give iters or seconds")
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if ema is not None and not 0.0 < ema < 1.0:
        raise ValueError(f"ema decay must lie in (0, 1), not {ema!r}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = dev.type == "cuda"
    bf16 = precision == "bf16" or (precision == "auto" and (cuda or _cpu_bf16_supported()))
    torch.manual_seed(seed)
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    t_start = time.time()
    dl, nat = load_sources(data, n_dead_leaves=n_dead_leaves, seed=seed)
    banks = []
    if dl:
        banks.append(patch_bank(dl, patch, stride, dev))
    if nat:
        banks.append(patch_bank(nat, patch, max(4, stride // 2), dev))
    if not banks:
        raise ValueError("no training images")
    n_nat = int(round(batch * natural_fraction)) if len(banks) == 2 else 0
    sizes = [batch - n_nat, n_nat] if len(banks) == 2 else [batch]
    log(f"[train] device={dev} banks={[tuple(b.shape) for b in banks]} setup={time.time() - t_start:.1f}s")

    model = DnCNN(depth, features).to(dev)
    if init:
        model.load_state_dict(torch.load(init, map_location=dev, weights_only=True))
    mf = torch.channels_last if bf16 else torch.contiguous_format
    model = model.to(memory_format=mf)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    avg = None
    if ema is not None:  # float32 copy of every parameter and buffer, updated after each step
        avg = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    gen = torch.Generator(device=dev).manual_seed(seed)
    model.train()

    def final_state() -> dict:
        src = avg if avg is not None else model.state_dict()
        return {k: v.detach().float().cpu() for k, v in src.items()}

    def save():
        if out:
            sd = final_state()
            tmp = out + ".tmp"
            torch.save(sd, tmp)
            os.replace(tmp, out)

    t0 = time.time()
    last_ckpt, step, loss_ema = t0, 0, None
    while True:
        elapsed = time.time() - t0
        frac = step / iters if iters is not None else elapsed / seconds
        if frac >= 1.0:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(frac, lr, lr_min)
        parts = []
        for b, n in zip(banks, sizes):
            if n:
                idx = torch.randint(0, b.shape[0], (n,), device=dev, generator=gen)
                parts.append(b[idx])
        k = int(torch.randint(0, 8, (1,), generator=torch.Generator().manual_seed(seed * 1_000_003 + step)))
        clean = _dihedral(torch.cat(parts), k).unsqueeze(1).float().div_(255.0)
        if sigma_range is not None:
            lo, hi = sigma_range
            s = torch.empty(clean.shape[0], 1, 1, 1, device=dev).uniform_(lo, hi, generator=gen) / 255.0
        else:
            s = sigma / 255.0
        noise = torch.randn(clean.shape, device=dev, generator=gen) * s
        noisy = (clean + noise).contiguous(memory_format=mf)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            pred_noise = model.body(noisy)
        loss = F.mse_loss(pred_noise.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if avg is not None:
            with torch.no_grad():
                for key, v in model.state_dict().items():
                    if v.dtype.is_floating_point:
                        avg[key].mul_(ema).add_(v.float(), alpha=1.0 - ema)
                    else:
                        avg[key].copy_(v)
        step += 1
        if step % 200 == 0 or step == 1:
            lv = loss.detach().item()
            loss_ema = lv if loss_ema is None else 0.9 * loss_ema + 0.1 * lv
            log(f"[train] step={step} t={time.time() - t0:.0f}s lr={opt.param_groups[0]['lr']:.2e} "
                f"loss={lv:.3e} rmse={math.sqrt(loss_ema) * 255:.3f}")
        if out and time.time() - last_ckpt > checkpoint_every_s:
            save()
            last_ckpt = time.time()
    train_s = time.time() - t0
    save()
    if avg is not None:
        model.load_state_dict({k: v.to(dev) for k, v in avg.items()})
    model = model.to(memory_format=torch.contiguous_format).cpu().eval()
    info = {
        "steps": step, "train_seconds": round(train_s, 1), "batch": batch, "patch": patch,
        "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "precision": "bf16" if bf16 else "fp32", "ema": ema,
        "sigma": sigma if sigma_range is None else None,
        "sigma_range": list(sigma_range) if sigma_range is not None else None,
        "depth": depth, "features": features, "lr": lr, "lr_min": lr_min, "init": init,
        "patches": [int(b.shape[0]) for b in banks], "natural_fraction": natural_fraction,
        "final_rmse_ema": None if loss_ema is None else math.sqrt(loss_ema) * 255,
    }
    log(f"[train] done {json.dumps(info)}")
    return model, info


def _cpu_bf16_supported() -> bool:
    """True when oneDNN can run bfloat16 convolutions natively on this CPU."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def run_from_args(args) -> dict:
    rng = None
    if args.sigma_min is not None or args.sigma_max is not None:
        rng = (args.sigma_min if args.sigma_min is not None else 5.0, args.sigma_max if args.sigma_max is not None else 75.0)
    if args.iters is None and args.seconds is None:
        args.iters = 200
    _, info = train(
        sigma=args.sigma, sigma_range=rng, depth=args.depth, features=args.features, data=args.data,
        patch=args.patch, stride=args.stride, batch=args.batch, natural_fraction=args.natural_fraction,
        iters=args.iters, seconds=args.seconds, lr=args.lr, lr_min=args.lr_min, init=args.init,
        out=args.out, device=args.device, seed=args.seed, n_dead_leaves=args.dead_leaves,
        precision=args.precision, ema=args.ema,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    info["out"] = args.out
    info["command"] = " ".join(sys.argv)
    if args.info:
        with open(args.info, "w") as fh:
            json.dump(info, fh, indent=2)
    return info


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(p)
    print(json.dumps(run_from_args(p.parse_args(argv))))


if __name__ == "__main__":
    main()
