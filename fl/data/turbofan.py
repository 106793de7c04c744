"""NASA C-MAPSS FD001 (one sensor, s_11) as a remaining-useful-life regression data set.

Source: the FD001 extract shipped inside HiMAP 1.4.0 (Group iSP, Apache-2.0; copied into
``fl/data/cmapss/`` with its NOTICE). The data themselves are NASA's C-MAPSS simulations
(Saxena et al., PHM 2008). Facts about the extract that we measured (see
``fl/data/cmapss/README.md``): 80 training and 20 test engines with disjoint ids, every
engine runs to failure, so the ``RUL`` column is the true remaining life at each cycle and
is 0 at each engine's last cycle.

Preprocessing done here:

* ``s_11`` (Ps30 x 100) is standardised with the mean and standard deviation of the
  *training* file only (the test file never influences the statistics).
* Sliding windows of ``window_length`` consecutive cycles, stride 1, within one engine; the
  target of a window is the RUL at its last cycle.
* RUL is capped at ``rul_cap`` (default 125): the customary piecewise-linear target
  (Heimes 2008, and most C-MAPSS papers since), because early in life the degradation is
  not observable. ``rul_cap=None`` keeps the raw RUL.
* Test windows: ``"all"`` (default) evaluates every window of every test engine (3,467
  windows with the defaults), which is possible because this extract's test engines run to
  failure. ``"truncated"`` imitates NASA's official protocol: one window per test engine,
  ending at a cycle drawn uniformly (numpy generator seeded by ``seed``) from
  ``[window_length, length]``, so 20 test examples. The last window of each engine alone is
  useless here: its RUL is always 0.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from .base import Dataset

__all__ = ["load_cmapss", "read_cmapss_csv", "CMAPSS_FILES"]

CMAPSS_FILES = {
    "train": "train_FD001_disc_20_mod.csv",
    "test": "test_FD001_disc_20_mod.csv",
}
_HEADER = "unit_nr;time_cycles;s_11;s_discretized;RUL"


def read_cmapss_csv(split: str) -> np.ndarray:
    """Read the shipped FD001 extract's ``split`` file ("train" or "test").

    Returns an int64 array of shape ``(rows, 5)`` with columns
    ``unit_nr, time_cycles, s_11, s_discretized, RUL``. Raises ``ValueError`` if the header
    is not the expected one or a unit's cycles are not 1, 2, ... with RUL counting down to 0.
    """
    if split not in CMAPSS_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    res = resources.files("fl.data").joinpath("cmapss", CMAPSS_FILES[split])
    with res.open("r", encoding="utf-8") as f:
        header = f.readline().strip()
        if header != _HEADER:
            raise ValueError(f"unexpected C-MAPSS header {header!r}, expected {_HEADER!r}")
        data = np.loadtxt(f, delimiter=";", dtype=np.int64, ndmin=2)
    if data.shape[1] != 5:
        raise ValueError(f"C-MAPSS {split} file has {data.shape[1]} columns, expected 5")
    for unit in np.unique(data[:, 0]):
        rows = data[data[:, 0] == unit]
        cyc, rul = rows[:, 1], rows[:, 4]
        if not np.array_equal(cyc, np.arange(1, len(rows) + 1)) or not np.array_equal(
            rul, np.arange(len(rows) - 1, -1, -1)
        ):
            raise ValueError(f"C-MAPSS {split} unit {unit}: cycles or RUL are not consecutive")
    return data


def _windows(
    data: np.ndarray, window_length: int, mean: float, std: float, rul_cap: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """All stride-1 windows of every unit: X (N, W, 1), y (N,), unit id (N,), per-unit ranges."""
    xs, ys, gs, per_unit = [], [], [], []
    start = 0
    for unit in np.unique(data[:, 0]):
        rows = data[data[:, 0] == unit]
        sig = (rows[:, 2].astype(np.float64) - mean) / std
        rul = rows[:, 4].astype(np.float64)
        n_win = len(rows) - window_length + 1
        if n_win < 1:
            raise ValueError(
                f"window_length={window_length} exceeds the length of engine {unit} "
                f"({len(rows)} cycles)"
            )
        win = np.lib.stride_tricks.sliding_window_view(sig, window_length)
        xs.append(win[..., None])
        target = rul[window_length - 1 :]
        if rul_cap is not None:
            target = np.minimum(target, rul_cap)
        ys.append(target)
        gs.append(np.full(n_win, unit, dtype=np.int64))
        per_unit.append(np.arange(start, start + n_win))
        start += n_win
    X = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys).astype(np.float32)
    return X, y, np.concatenate(gs), per_unit


def load_cmapss(
    *,
    seed: int = 0,
    window_length: int = 30,
    rul_cap: float | None = 125.0,
    test_windows: str = "all",
) -> Dataset:
    """C-MAPSS FD001 (sensor s_11) RUL regression: windows ``(N, window_length, 1)``.

    Args:
        seed: used only by ``test_windows="truncated"`` to draw each engine's cut point.
        window_length: cycles per window, 1 ... 128 (the shortest engine has 128 cycles).
        rul_cap: cap on the RUL target (default 125, piecewise-linear target); ``None``
            keeps the raw RUL.
        test_windows: ``"all"`` (every test window) or ``"truncated"`` (one window per test
            engine, cut at a seeded random cycle, like NASA's official test protocol).

    ``groups_train``/``groups_test`` hold the engine ``unit_nr`` of each window, so
    ``partition_by_group`` gives each client whole engines (non-IID by nature).
    Raises ``ValueError`` on a bad argument.
    """
    if isinstance(window_length, bool) or not isinstance(window_length, (int, np.integer)):
        raise TypeError("window_length must be an int")
    if window_length < 1:
        raise ValueError(f"window_length must be >= 1, got {window_length}")
    if rul_cap is not None and not rul_cap > 0:
        raise ValueError(f"rul_cap must be > 0 or None, got {rul_cap}")
    if test_windows not in ("all", "truncated"):
        raise ValueError(f"test_windows must be 'all' or 'truncated', got {test_windows!r}")
    train = read_cmapss_csv("train")
    test = read_cmapss_csv("test")
    s11 = train[:, 2].astype(np.float64)
    mean, std = float(s11.mean()), float(s11.std())
    Xtr, ytr, gtr, _ = _windows(train, window_length, mean, std, rul_cap)
    Xte, yte, gte, per_unit = _windows(test, window_length, mean, std, rul_cap)
    if test_windows == "truncated":
        rng = np.random.default_rng(seed)
        pick = np.array([idx[rng.integers(0, len(idx))] for idx in per_unit])
        Xte, yte, gte = Xte[pick], yte[pick], gte[pick]
    cap = "uncapped" if rul_cap is None else f"capped at {rul_cap:g}"
    return Dataset(
        X_train=Xtr,
        y_train=ytr,
        X_test=Xte,
        y_test=yte,
        task="regression",
        n_classes=None,
        input_shape=(window_length, 1),
        groups_train=gtr,
        groups_test=gte,
        name="cmapss",
        description=(
            "NASA C-MAPSS FD001 turbofan run-to-failure data, sensor s_11 (Ps30), from the "
            "HiMAP 1.4.0 extract (Group iSP, Apache-2.0): 80 train / 20 test engines. "
            f"Sliding windows of {window_length} cycles (stride 1), standardised with train "
            f"statistics; target = RUL at the window's last cycle, {cap}. "
            f"Test windows: {test_windows}."
        ),
        meta={
            "s11_mean": mean,
            "s11_std": std,
            "window_length": int(window_length),
            "rul_cap": rul_cap,
            "test_windows": test_windows,
            "n_train_units": int(len(np.unique(gtr))),
            "n_test_units": int(len(np.unique(gte))),
        },
    )
