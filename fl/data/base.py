"""The :class:`Dataset` container shared by every built-in data set.

A ``Dataset`` is plain numpy arrays plus the facts the FL layer needs to pick a model and a
metric (task, number of classes, input shape) and to split clients by a natural unit
(``groups_train``: engine id for C-MAPSS, machine id for the IIoT generator).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Dataset", "TASKS"]

TASKS = ("classification", "regression", "anomaly")


@dataclass(frozen=True)
class Dataset:
    """A train/test data set, already preprocessed, as float32 inputs and numpy labels.

    Attributes:
        X_train, X_test: float32 arrays of shape ``(N, *input_shape)``.
        y_train, y_test: int64 class labels in ``[0, n_classes)`` for ``classification``
            and ``anomaly`` (0 = normal, 1 = anomalous), float32 targets for ``regression``.
        task: ``"classification"``, ``"regression"`` or ``"anomaly"``.
        n_classes: number of classes (2 for ``anomaly``), ``None`` for regression.
        input_shape: shape of one example, e.g. ``(1, 8, 8)`` or ``(30, 1)``
            (sequences are ``(time, features)``, batch-first for ``torch.nn.LSTM``).
        groups_train: int64 array, one natural unit id per training example (engine,
            machine), or ``None`` when the data set has no such unit.
        name, description: short id and a one-paragraph human description (source, units,
            preprocessing).
        groups_test: like ``groups_train`` for the test examples, or ``None``.
        meta: JSON-friendly extra facts (normalisation statistics, window length, ...).

    Construction validates shapes, dtypes, label ranges and finiteness and raises
    ``ValueError`` naming the problem (NaN in data is never passed on silently).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task: str
    n_classes: int | None
    input_shape: tuple[int, ...]
    groups_train: np.ndarray | None
    name: str
    description: str
    groups_test: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        shape = tuple(int(s) for s in self.input_shape)
        object.__setattr__(self, "input_shape", shape)
        for split in ("train", "test"):
            X = getattr(self, f"X_{split}")
            y = getattr(self, f"y_{split}")
            if not isinstance(X, np.ndarray) or not isinstance(y, np.ndarray):
                raise TypeError(f"X_{split} and y_{split} must be numpy arrays")
            if X.shape[1:] != shape:
                raise ValueError(f"X_{split} has example shape {X.shape[1:]}, expected {shape}")
            if y.ndim != 1 or len(y) != len(X):
                raise ValueError(
                    f"y_{split} must be 1-D with one label per example: "
                    f"X_{split} has {len(X)} rows, y_{split} has shape {y.shape}"
                )
            if len(X) == 0:
                raise ValueError(f"{split} split is empty")
            if not np.all(np.isfinite(X)):
                raise ValueError(f"X_{split} contains NaN or infinity")
            if self.task == "regression":
                if not np.all(np.isfinite(y)):
                    raise ValueError(f"y_{split} contains NaN or infinity")
            else:
                if self.n_classes is None or self.n_classes < 2:
                    raise ValueError(f"task {self.task!r} needs n_classes >= 2")
                if not np.issubdtype(y.dtype, np.integer):
                    raise ValueError(f"y_{split} must hold integer class labels for {self.task}")
                if y.min() < 0 or y.max() >= self.n_classes:
                    raise ValueError(
                        f"y_{split} has labels outside [0, {self.n_classes}): "
                        f"min {y.min()}, max {y.max()}"
                    )
            g = getattr(self, f"groups_{split}")
            if g is not None and (g.ndim != 1 or len(g) != len(X)):
                raise ValueError(f"groups_{split} must be 1-D with one id per example")
        if self.task == "regression" and self.n_classes is not None:
            raise ValueError("regression data sets have n_classes=None")
        if self.task == "anomaly" and self.n_classes != 2:
            raise ValueError("anomaly data sets are binary: n_classes must be 2")

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return len(self.X_train)

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return len(self.X_test)

    def class_counts(self, split: str = "train") -> list[int] | None:
        """Per-class example counts of ``split`` ("train" or "test"); ``None`` for regression."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if self.n_classes is None:
            return None
        y = getattr(self, f"y_{split}")
        return np.bincount(y, minlength=self.n_classes).tolist()

    def summary(self) -> dict[str, Any]:
        """JSON-friendly facts: name, task, shapes, class balance (or target range)."""
        out: dict[str, Any] = {
            "name": self.name,
            "task": self.task,
            "n_classes": self.n_classes,
            "input_shape": list(self.input_shape),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_groups_train": None
            if self.groups_train is None
            else int(len(np.unique(self.groups_train))),
        }
        if self.n_classes is None:
            out["y_train_range"] = [float(self.y_train.min()), float(self.y_train.max())]
            out["y_test_range"] = [float(self.y_test.min()), float(self.y_test.max())]
        else:
            out["class_counts_train"] = self.class_counts("train")
            out["class_counts_test"] = self.class_counts("test")
        return out
