"""``privcrypt demo [--out DIR]``: a small honest run of every benchmark, written as a report.

Runs each benchmark of ``benchmarks/`` in its ``--quick`` mode with the embedded arguments
of :data:`DEMO_ARGS` (sized so that the whole demo stays under 10 minutes on a 2-core CPU),
except those in :data:`FULL_ONLY` (``flower`` starts a real federation: minutes), whose
committed full results are shown instead. Then it writes into DIR (default ``report/``):
``index.html`` (self-contained: inline CSS, PNG figures next to it, no network),
``report.md``, ``results.json`` (strict JSON) and the figures. The folder is built next to
DIR and renamed into place, so a reader never sees a half-written report.

Nothing is hidden: a benchmark that fails or whose optional dependency is missing appears
in the report with the reason. Quick runs never write into ``benchmarks/results/`` or
``docs/figures/``. C++ libraries (TenSEAL/SEAL) print warnings on file descriptor 1; the
demo sends fd 1 to stderr while a benchmark runs so that stdout carries only the result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from privcrypt.cli import add_json_flag, stdout_to_stderr

#: Section order of the report (benchmark names of ``benchmarks/bench_*.py``).
ORDER = ("rng", "mpc", "he", "secagg", "dp", "ddp", "imaging", "denoise", "fl", "fl_data", "robust",
         "adversarial", "leakage", "flower")
#: Benchmarks the demo does not run (too slow); their committed full results are shown.
FULL_ONLY = {"flower": "starts a loopback Flower federation (SuperLink + SuperNodes): minutes"}
#: Extra command-line arguments for each benchmark's quick run in the demo (cuts sizes
#: through the benchmarks' own options, never their logic).
#: Measured on the shared 2-core machine (load average 4.4-5.6 from other work): 3 min 18 s
#: wall for the whole demo, 183 s of it benchmarks (imaging 37 s, fl 42 s, adversarial 31 s,
#: leakage 24 s), the rest figures and the page. Budget: 10 minutes.
DEMO_ARGS: dict[str, list[str]] = {
    "denoise": ["--no-x8"],  # DnCNN's 8-fold self-ensemble costs 8 DnCNN passes per image
}


def add_parser(sub) -> None:
    """Register ``privcrypt demo``."""
    p = sub.add_parser("demo", help="run a quick version of every benchmark and write an HTML report")
    p.add_argument("--out", default="report", metavar="DIR",
                   help="report folder: index.html, report.md, results.json, figures")
    p.add_argument("--only", nargs="*", default=None, metavar="NAME",
                   help="run only these benchmarks (the others show their committed full results)")
    add_json_flag(p)
    p.set_defaults(func=run)


def load_full(name: str) -> dict | None:
    """The committed full result ``benchmarks/results/<name>.json``, or None."""
    from reporting.bench_cli import BENCH_DIR

    path = BENCH_DIR / "results" / f"{name}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {"_error": f"{path.name} unreadable: {exc}"}


def run_quick(name: str, out_dir: Path) -> tuple[dict | None, str, float]:
    """Run benchmark ``name`` in quick mode; returns (result, status, seconds). Status is
    ``"ok"``, ``"skipped: ..."`` (optional dependency missing) or ``"failed: ..."``."""
    from reporting.bench_cli import load_bench

    t0 = time.perf_counter()
    try:
        with stdout_to_stderr():
            mod = load_bench(name)
            p = argparse.ArgumentParser()
            mod.add_arguments(p)
            bargs = p.parse_args(DEMO_ARGS.get(name, []))
            bargs.quick, bargs.json, bargs.no_write, bargs.write, bargs.out = True, True, True, False, None
            if name == "imaging":  # its Fig. 4-like figure goes into the report folder
                bargs.no_write, bargs.out = False, str(out_dir / "_imaging")
            res = mod.run(bargs)
        status = "ok"
    except ImportError as exc:
        res, status = None, f"skipped: optional dependency missing ({exc})"
    except Exception as exc:  # noqa: BLE001 - reported in the page, the demo goes on
        res, status = None, f"failed: {type(exc).__name__}: {exc}"
        traceback.print_exc()
    return res, status, time.perf_counter() - t0


def collect(names, out_dir: Path, *, show_progress: bool = True) -> dict:
    """Quick-run ``names`` (others: full results only); returns the report's results dict."""
    from reporting.bench_cli import bench_names

    have = set(bench_names())
    sections = [n for n in ORDER if n in have] + sorted(have - set(ORDER))
    todo = [n for n in sections if n in names and n not in FULL_ONLY]
    results: dict = {"generated": time.strftime("%Y-%m-%dT%H:%M:%S"), "sections": {}}
    t_all = time.perf_counter()
    for i, name in enumerate(sections):
        entry = {"full": load_full(name), "quick": None, "status": "not run", "seconds": None}
        if name in FULL_ONLY:
            entry["status"] = f"not run in the demo: {FULL_ONLY[name]}"
        elif name in todo:
            k = todo.index(name)
            if show_progress:
                _bar(k, len(todo), name, time.perf_counter() - t_all)
            entry["quick"], entry["status"], entry["seconds"] = run_quick(name, out_dir)
            entry["quick_args"] = ["--quick", *DEMO_ARGS.get(name, [])]
        else:
            entry["status"] = "not run (--only)"
        results["sections"][name] = entry
    if show_progress:
        _bar(len(todo), len(todo), "done", time.perf_counter() - t_all)
        print(file=sys.stderr)
    results["total_seconds"] = time.perf_counter() - t_all
    try:
        results["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    return results


def _bar(done: int, total: int, label: str, secs: float) -> None:
    width = 30
    fill = int(width * done / max(total, 1))
    line = f"\rdemo [{'#' * fill}{'.' * (width - fill)}] {done}/{total} {label:<12} {secs:6.0f} s"
    if sys.stderr.isatty():
        print(line, end="", file=sys.stderr, flush=True)
    else:
        print(line.strip(), file=sys.stderr, flush=True)


def check_out(out: str) -> Path:
    """``--out`` must be a folder or not exist yet, inside an existing folder."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    parent = p.resolve().parent
    if not parent.is_dir():
        raise ValueError(f"--out {out}: folder {parent} does not exist")
    return p


def replace_dir(tmp: Path, dest: Path) -> None:
    """Put the finished folder ``tmp`` at ``dest`` (an old report there is replaced)."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old.{os.getpid()}")
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run(args) -> dict | None:
    """``privcrypt demo``: run, write the report folder, say where it is."""
    from reporting.bench_cli import bench_names
    from reporting.html import write_report

    dest = check_out(args.out)
    have = bench_names()
    if not have:
        raise ValueError("the demo runs the benchmarks of a source checkout (benchmarks/bench_*.py); "
                         "none found next to this installation")
    names = args.only if args.only else have
    unknown = sorted(set(names) - set(have))
    if unknown:
        raise ValueError(f"--only: no benchmark named {', '.join(unknown)} (have: {', '.join(have)})")
    tmp = dest.resolve().parent / f".{dest.name}.tmp.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        results = collect(names, tmp)
        with stdout_to_stderr():
            written = write_report(results, tmp, doc_base=_doc_base(dest))
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    index = dest / "index.html"
    statuses = {k: v["status"] for k, v in results["sections"].items()}
    if args.json:
        return {"report": str(index), "markdown": str(dest / "report.md"), "results": str(dest / "results.json"),
                "figures": [str(dest / f) for f in written["figures"]],
                "seconds": round(results["total_seconds"], 1), "benchmarks": statuses}
    for k, v in statuses.items():
        print(f"  {k:<12} {v}", file=sys.stderr)
    print(f"report written to {index} (open it in a browser; {results['total_seconds']:.0f} s)", file=sys.stderr)
    return None


def _doc_base(dest: Path) -> str | None:
    """Relative link from the report folder to the checkout's docs/, or None when the
    report lies outside the checkout (the page then names the doc page instead)."""
    from reporting.bench_cli import ROOT

    d = dest.resolve()
    try:
        d.relative_to(ROOT)
    except ValueError:
        return None
    return os.path.relpath(ROOT / "docs", d)
