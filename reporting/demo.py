"""``privcrypt demo``: a small honest run of every capability that exists, with a report.

Runs each benchmark in ``--quick`` mode (each a minute or less), collects their JSON and
writes ``demo_report.md`` (and ``demo_report.json``, strict JSON) with the tables, and
nothing else: quick runs never write into ``benchmarks/results/`` or ``docs/figures/``. A benchmark whose
optional dependency is missing is reported as skipped with the reason, never faked.
"""

from __future__ import annotations

import argparse
import time
import traceback
from pathlib import Path

from privcrypt.cli import add_json_flag


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run a quick version of every benchmark and write a report")
    p.add_argument("--out", default="demo_report", help="report path without extension (.md and .json are added)")
    p.add_argument("--only", nargs="*", default=None, help="run only these benchmarks (default: all)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from privcrypt.bench_cli import bench_names, load_bench
    from privcrypt.progress import progress

    from privcrypt.cli import dumps_strict

    out = Path(args.out)
    for path in (out.with_name(out.name + ".md"), out.with_name(out.name + ".json")):
        if path.is_dir():
            raise ValueError(f"--out {args.out}: {path} is a folder")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise ValueError(f"--out {args.out}: folder {out.parent} does not exist")
    names = args.only or bench_names()
    unknown = sorted(set(names) - set(bench_names()))
    if unknown:
        raise ValueError(f"--only: no benchmark named {', '.join(unknown)} (have: {', '.join(bench_names())})")
    sections, summary = [], {}
    for name in progress(names, desc="demo"):
        t0 = time.perf_counter()
        try:
            mod = load_bench(name)
            p = argparse.ArgumentParser()
            mod.add_arguments(p)
            bargs = p.parse_args([])
            bargs.quick, bargs.json, bargs.no_write, bargs.write, bargs.out = True, True, True, False, None
            res = mod.run(bargs)
            status = "ok"
        except ImportError as exc:
            res, status = None, f"skipped: {exc}"
        except Exception as exc:  # report, don't hide: the demo goes on with the others
            res, status = None, f"FAILED: {exc!r}"
            traceback.print_exc()
        secs = time.perf_counter() - t0
        summary[name] = {"status": status, "seconds": round(secs, 2)}
        table = (res or {}).get("table_md", "")
        sections.append(f"## {name}\n\nstatus: {status} ({secs:.1f} s)\n\n{table}\n")
        summary[name]["result"] = res
    report = "# privcrypt demo report\n\n" + "\n".join(sections)
    from privcrypt.bench_cli import ensure_benchmarks_package

    ensure_benchmarks_package()
    from benchmarks.harness import atomic_write

    atomic_write(Path(args.out + ".md"), report)
    atomic_write(Path(args.out + ".json"), dumps_strict(summary, indent=2))
    if not args.json:
        print(report)
        print(f"report written to {args.out}.md")
        return None
    return {"report": args.out + ".md", "benchmarks": {k: v["status"] for k, v in summary.items()}}
