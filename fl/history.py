"""Per-round records of a federated run, their JSON/CSV form and plots.

``History.rounds`` is a list of dicts, one per round, with at least ``round``,
``participants``, ``survivors``, ``aborted`` and, when evaluated, the task metric
(``accuracy``/``f1`` or ``rmse``), ``loss``, ``epsilon`` (with DP), ``bytes_up``,
``bytes_down``, ``seconds``, ``server_cpu_s`` and ``clipped`` counts. ``History.final``
summarises the run with the keys of DESIGN.md (``accuracy`` or ``rmse``, ``epsilon``,
``bytes_up_per_round``, ``bytes_down_per_round``, ``seconds_per_round``, ...).
Non-finite floats are written as ``null`` so that every file is strict JSON.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["History", "json_safe"]


def json_safe(obj: Any):
    """A copy of ``obj`` with numpy scalars as Python numbers, sets as sorted lists and
    non-finite floats as ``None`` (strict JSON has no NaN or Infinity)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(json_safe(v) for v in obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class History:
    """The result of :func:`fl.run`: per-round records, a final summary and the model."""

    rounds: list = field(default_factory=list)
    final: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    model: Any = None

    def to_dict(self) -> dict:
        """Strict-JSON-safe dict (no model)."""
        return json_safe({"final": self.final, "rounds": self.rounds, "config": self.config})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    def save(self, out_dir, *, plots: bool = True) -> list[str]:
        """Write ``history.json``, ``rounds.csv`` and (with matplotlib) ``curves.png`` into
        ``out_dir`` (created if missing; each file replaced atomically). Returns the
        paths written."""
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {str(out)!r} exists and is not a directory")
        out.mkdir(parents=True, exist_ok=True)
        written = []
        p = out / "history.json"
        _atomic_write(p, json.dumps(self.to_dict(), indent=1, allow_nan=False))
        written.append(str(p))
        keys: list[str] = []
        for r in self.rounds:
            keys += [k for k in r if k not in keys and not isinstance(r[k], (list, dict))]
        p = out / "rounds.csv"
        rows = [json_safe({k: r.get(k) for k in keys}) for r in self.rounds]
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".rounds.csv.")
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, p)
        written.append(str(p))
        if plots:
            png = self.plot(out / "curves.png")
            if png:
                written.append(png)
        return written

    def plot(self, path) -> str | None:
        """Accuracy or RMSE, loss, epsilon and MB per round in one PNG; ``None`` when
        matplotlib is missing."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        series = [(k, lbl) for k, lbl in (("accuracy", "accuracy"), ("rmse", "RMSE"), ("f1", "F1"),
                                          ("loss", "train loss"), ("epsilon", "epsilon"),
                                          ("mb_up", "MB up / round")) if any(
            r.get(k) is not None for r in self.rounds)]
        if not series:
            return None
        fig, axes = plt.subplots(1, len(series), figsize=(3.2 * len(series), 2.8), squeeze=False)
        for ax, (k, lbl) in zip(axes[0], series):
            pts = [(r["round"], r[k]) for r in self.rounds if r.get(k) is not None
                   and isinstance(r[k], (int, float)) and math.isfinite(r[k])]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3)
            ax.set_xlabel("round")
            ax.set_title(lbl)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=".curves.", suffix=".png")
        os.close(fd)
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        os.replace(tmp, path)
        return str(path)
