"""The ``train-denoiser`` options, kept free of torch so that building the command-line
parser (``privcrypt --help``, ``privcrypt image ...``) does not import it."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the training options (each with its default) to ``p``."""
    p.add_argument("--sigma", type=float, default=25.0, help="noise sigma on 0-255 (sigma-specific model)")
    p.add_argument("--sigma-min", type=float, default=None, help="with --sigma-max: a blind model")
    p.add_argument("--sigma-max", type=float, default=None, help="with --sigma-min: upper end of the blind range (default 75 when only --sigma-min is given)")
    p.add_argument("--depth", type=int, default=17, help="convolution layers")
    p.add_argument("--features", type=int, default=64, help="channels per hidden layer")
    p.add_argument("--data", default=None, help=".npz from build_training_set (default: build a small set now)")
    p.add_argument("--dead-leaves", type=int, default=64, help="dead-leaves images when building the set")
    p.add_argument("--patch", type=int, default=48, help="training patch side")
    p.add_argument("--stride", type=int, default=12, help="stride between patches")
    p.add_argument("--batch", type=int, default=128, help="patches per step")
    p.add_argument("--natural-fraction", type=float, default=0.5, help="share of each batch from natural images")
    p.add_argument("--iters", type=int, default=None, help="training steps (default 200 when --seconds is not given)")
    p.add_argument("--seconds", type=float, default=None, help="train for this long instead of --iters")
    p.add_argument("--lr", type=float, default=1e-3, help="initial learning rate (cosine decay)")
    p.add_argument("--lr-min", type=float, default=1e-5, help="final learning rate")
    p.add_argument("--init", default=None, help="state_dict to start from (fine-tuning)")
    p.add_argument("--out", default="dncnn.pt", help="state_dict output (torch.save); usable with image decrypt --denoiser and load_denoiser(PATH)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: the GPU when present)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data sampling and initialisation (not a key)")
    p.add_argument("--info", default=None, help="write the training info JSON here")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 autocast on a GPU or a CPU with native bf16, else fp32")
    p.add_argument("--ema", type=float, default=None, help="save an EMA of the weights with this decay (e.g. 0.999)")
