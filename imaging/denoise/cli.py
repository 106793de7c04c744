"""``privcrypt image train-denoiser``: train a DnCNN (GPU when present, CPU smoke test).

Registered by ``imaging/cli.py`` through :func:`add_parsers`. Without ``--data`` the
training set is built on the spot (``--dead-leaves`` procedural images plus the bundled
natural images, see :mod:`imaging.denoise.data`); ``--build-data PATH`` only writes that
set as an ``.npz`` for later runs.
"""

from __future__ import annotations


def _run(args) -> dict:
    from imaging.cli import check_output

    # outputs are checked before the (long) work: folder, missing parent, overwrite
    check_output(args.build_data or args.out, "--build-data" if args.build_data else "--out", force=args.force)
    if args.info and not args.build_data:
        check_output(args.info, "--info", force=args.force)
    if args.build_data:
        import numpy as np

        from .data import build_training_set

        data = build_training_set(args.dead_leaves, 256, seed=args.seed, workers=args.workers)
        np.savez_compressed(args.build_data, **data)
        return {"written": args.build_data, "arrays": len(data),
                "dead_leaves": int(data["dead_leaves"].shape[0]),
                "natural": sorted(k for k in data if k.startswith("nat_"))}
    from .train import run_from_args

    return run_from_args(args)


def add_parsers(image_subparsers) -> None:
    from .args import add_arguments

    p = image_subparsers.add_parser(
        "train-denoiser",
        help="train a DnCNN denoiser (dead-leaves + bundled natural images; GPU when present)",
        description=__doc__.split("\n")[0],
    )
    add_arguments(p)
    p.add_argument("--build-data", default=None, metavar="PATH", help="only write the training set (.npz) and exit")
    p.add_argument("--workers", type=int, default=1, help="processes for --build-data")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--json", action="store_true", help="print one strict JSON object on stdout")
    p.set_defaults(func=_run)
