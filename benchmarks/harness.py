"""The small common harness every benchmark uses.

* :func:`measure` — warm-up runs, then the median (and min/max) of N timed runs, wall and
  process CPU time.
* :func:`ratio` — ours / baseline, both measured in the same process run.
* :func:`machine_info` — CPU, cores, Python and key library versions, GPU if any.
* :func:`write_result` — ``<name>.json`` and ``<name>.md`` into :func:`output_dir`.
* :func:`output_dir` — where a run may write: ``benchmarks/results/`` only for an explicit
  full run (``--write``), ``--out DIR`` for any run, else nowhere (quick runs and plain
  runs never rewrite committed files). Figures: :func:`figure_dir`.
* :func:`markdown_table` — rows of dicts to a markdown table.
"""

from __future__ import annotations

import json
import os
import sys
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FIGURES_DIR = Path(__file__).resolve().parents[1] / "docs" / "figures"


def check_output_args(args) -> None:
    """Refuse a contradictory or unusable output request before any work is done."""
    write, out = bool(getattr(args, "write", False)), getattr(args, "out", None)
    if write and getattr(args, "quick", False):
        raise ValueError("--write records full runs only; drop --quick (or use --out DIR)")
    if write and out:
        raise ValueError("give --write or --out DIR, not both")
    if write and getattr(args, "no_write", False):
        raise ValueError("--write and --no-write contradict each other")
    if out is not None:
        p = Path(out)
        if p.exists() and not p.is_dir():
            raise ValueError(f"--out {out} exists and is not a folder")
        if not p.parent.is_dir():
            raise ValueError(f"--out {out}: folder {p.parent} does not exist")


def output_dir(args) -> Path | None:
    """The folder this run writes its results to, or None (write nothing)."""
    if getattr(args, "no_write", False):
        return None
    if getattr(args, "out", None):
        return Path(args.out)
    if getattr(args, "write", False) and not getattr(args, "quick", False):
        return RESULTS_DIR
    return None


def figure_dir(args) -> Path | None:
    """The folder this run writes figures to (``docs/figures`` only with ``--write``)."""
    base = output_dir(args)
    if base is None:
        return None
    return FIGURES_DIR if base == RESULTS_DIR else base


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to a temporary file next to ``path`` and rename it over ``path``:
    a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def measure(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1) -> dict:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeat`` timed ones.

    Returns ``{"wall_s": median, "wall_min_s", "wall_max_s", "cpu_s": median process CPU,
    "repeat", "result": last return value}``. The median is robust to one slow run on a
    shared machine; ratios against a baseline in the same run are what to compare."""
    for _ in range(warmup):
        fn()
    walls, cpus, result = [], [], None
    for _ in range(max(1, repeat)):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {
        "wall_s": statistics.median(walls),
        "wall_min_s": min(walls),
        "wall_max_s": max(walls),
        "cpu_s": statistics.median(cpus),
        "repeat": len(walls),
        "result": result,
    }


def ratio(ours: float, baseline: float) -> float | None:
    """ours / baseline, or None when the baseline is zero."""
    return None if not baseline else ours / baseline


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def machine_info(packages: tuple[str, ...] = ("numpy", "pycryptodome", "torch", "tenseal")) -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: v for p in packages if (v := _version(p))},
    }
    try:  # only if torch is already importable; never required
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    return info


def markdown_table(rows: list[dict], columns: list[str] | None = None, floatfmt: str = ".4g") -> str:
    """Render rows (dicts) as a markdown table."""
    if not rows:
        return ""
    columns = columns or list(rows[0].keys())

    def fmt(v):
        if isinstance(v, float):
            return format(v, floatfmt)
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_result(name: str, data: dict, table_md: str = "", *, write: bool = True,
                 folder: Path | None = None) -> dict:
    """Add machine info and a timestamp to ``data``; write ``<name>.json`` (strict JSON,
    see :mod:`privcrypt.cli`) and ``<name>.md`` into ``folder`` (default
    ``benchmarks/results``) unless ``write`` is False. The written paths are added to the
    returned dict as ``"written"``."""
    from privcrypt.cli import dumps_strict

    data = {"benchmark": name, "machine": machine_info(), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), **data}
    written = list(data.pop("written", []) or [])
    if write:
        folder = Path(folder) if folder is not None else RESULTS_DIR
        atomic_write(folder / f"{name}.json", dumps_strict({**data, "written": written}, indent=2) + "\n")
        written.append(str(folder / f"{name}.json"))
        if table_md:
            atomic_write(folder / f"{name}.md", f"# {name}\n\n{table_md}\n")
            written.append(str(folder / f"{name}.md"))
    data["written"] = written
    return data


def finish(name: str, data: dict, table_md: str, args) -> dict | None:
    """The end of every benchmark's ``run``: write results where :func:`output_dir` says
    (nowhere by default), say on stderr what was written, print the markdown table for
    people, and return the dict for ``--json``."""
    folder = output_dir(args)
    out = write_result(name, {**data, "table_md": table_md}, table_md, write=folder is not None, folder=folder)
    for path in out["written"]:
        print(f"wrote {path}", file=sys.stderr)
    if getattr(args, "json", False):
        return out
    print(table_md)
    return None
