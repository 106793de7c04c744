"""Helpers shared by the figure modules: matplotlib on Agg, atomic PNG save, picking a
value from the quick run or the full results."""

from __future__ import annotations

import os
from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "figure.dpi": 90,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _save(fig, out: Path, name: str) -> str:
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.{os.getpid()}.tmp"
    fig.tight_layout()
    fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    os.replace(tmp, out / name)
    return name


def pick(results: dict, name: str, key: str, prefer: str = "quick"):
    """``(value, source)`` of ``key`` in section ``name``: from the quick run or the full
    results (``prefer`` first); ``(None, None)`` when neither has it."""
    sec = results.get("sections", {}).get(name) or {}
    order = (prefer, "full" if prefer == "quick" else "quick")
    for src in order:
        data = sec.get(src)
        if isinstance(data, dict) and data.get(key) not in (None, [], {}):
            return data[key], src
    return None, None


def _src(source: str | None, results: dict, name: str) -> str:
    if source == "full":
        ts = ((results["sections"].get(name) or {}).get("full") or {}).get("timestamp", "?")
        return f"full results in benchmarks/results/{name}.json ({ts})"
    return "this demo's quick run"
