"""The small common harness every benchmark uses.

* :func:`measure` — warm-up runs, then the median (and min/max) of N timed runs, wall and
  process CPU time.
* :func:`ratio` — ours / baseline, both measured in the same process run.
* :func:`machine_info` — CPU, cores, Python and key library versions, GPU if any.
* :func:`write_result` — ``benchmarks/results/<name>.json`` and ``<name>.md``.
* :func:`markdown_table` — rows of dicts to a markdown table.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"


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


def write_result(name: str, data: dict, table_md: str = "", *, write: bool = True) -> dict:
    """Add machine info and a timestamp to ``data``; write ``results/<name>.json`` and
    ``results/<name>.md`` unless ``write`` is False. Returns the enriched dict."""
    data = {"benchmark": name, "machine": machine_info(), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), **data}
    if write:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
        if table_md:
            (RESULTS_DIR / f"{name}.md").write_text(f"# {name}\n\n{table_md}\n")
    return data


def finish(name: str, data: dict, table_md: str, args) -> dict | None:
    """The end of every benchmark's ``run``: write results (unless ``--no-write``), print
    the markdown table for people, and return the dict for ``--json``."""
    out = write_result(name, {**data, "table_md": table_md},
                       table_md, write=not getattr(args, "no_write", False))
    if getattr(args, "json", False):
        return out
    print(table_md)
    return None
