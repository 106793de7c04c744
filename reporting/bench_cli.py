"""``privcrypt bench NAME``: dispatch to the benchmark scripts in ``benchmarks/``.

Benchmarks live in the source checkout (``benchmarks/bench_<name>.py`` next to the
packages), not in the installed packages: they compare against peer libraries from the
``bench`` extra and print their table (``--json``: one JSON object). They write files only
when asked: ``--write`` (a full run, never with ``--quick``) records
``benchmarks/results/<name>.json`` and ``.md`` (and figures under ``docs/figures/``) in the
checkout; ``--out DIR`` writes the same files into DIR instead. Either way the written
paths are listed in the result (``"written"``) and on stderr. Each
script defines ``DESCRIPTION``, ``add_arguments(parser)`` and ``run(args) -> dict``, and
keeps heavy imports inside ``run`` so that ``privcrypt --help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from privcrypt.cli import add_json_flag

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"


def bench_names() -> list[str]:
    """Benchmarks present in the checkout, by name."""
    if not BENCH_DIR.is_dir():
        return []
    return sorted(p.stem[len("bench_"):] for p in BENCH_DIR.glob("bench_*.py"))


def ensure_benchmarks_package():
    """Bind the import name ``benchmarks`` to this checkout's ``benchmarks/`` folder.

    Some dependencies (Opacus) install an unrelated top-level package called
    ``benchmarks``; without this, ``import benchmarks.harness`` could find theirs."""
    mod = sys.modules.get("benchmarks")
    if mod is not None and list(getattr(mod, "__path__", [])) == [str(BENCH_DIR)]:
        return mod
    for key in [k for k in sys.modules if k == "benchmarks" or k.startswith("benchmarks.")]:
        del sys.modules[key]
    spec = importlib.util.spec_from_file_location(
        "benchmarks", BENCH_DIR / "__init__.py", submodule_search_locations=[str(BENCH_DIR)]
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = mod
    spec.loader.exec_module(mod)
    return mod


def load_bench(name: str):
    """Import ``benchmarks.bench_<name>`` from the checkout."""
    ensure_benchmarks_package()
    return importlib.import_module(f"benchmarks.bench_{name}")


def add_parser(sub) -> None:
    names = bench_names()
    if not names:  # installed without a checkout: nothing to run
        return
    parser = sub.add_parser("bench", help="run a benchmark against its peer (writes files only with --write or --out)")
    bsub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name in names:
        mod = load_bench(name)
        p = bsub.add_parser(name, help=getattr(mod, "DESCRIPTION", ""))
        p.add_argument("--quick", action="store_true", help="a small run (a minute or less)")
        p.add_argument("--write", action="store_true",
                       help="record a full run in benchmarks/results/ (and docs/figures/) of the checkout")
        p.add_argument("--out", metavar="DIR", default=None,
                       help="write the result files into DIR instead (any run, --quick too)")
        p.add_argument("--no-write", action="store_true",
                       help="write nothing (the default without --write/--out; kept for old scripts)")
        add_json_flag(p)
        mod.add_arguments(p)
        p.set_defaults(func=_runner(mod.run))


def _runner(run):
    def checked(args):
        from benchmarks.harness import check_output_args

        check_output_args(args)
        return run(args)

    return checked
