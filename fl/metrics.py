"""Evaluation metrics for the FL layer: classification (seed 002's detection metrics),
ROC-AUC, regression (RMSE, the C-MAPSS score) and a k-fold helper.

Classification metrics are computed one-vs-rest from the confusion matrix. For class ``c``
with ``TP, FP, FN, TN`` counts over ``N`` examples (seed 002 names, standard definitions):

====  ===========================  ==================================
ACC   accuracy (one-vs-rest)       (TP + TN) / N
SEN   sensitivity, recall, TPR     TP / (TP + FN)
SPE   specificity, TNR             TN / (TN + FP)
PRE   precision                    TP / (TP + FP)
JSS   Jaccard similarity score     TP / (TP + FP + FN)
FPR   false positive rate          1 - SPE  = FP / (FP + TN)
FNR   false negative rate          1 - SEN  = FN / (FN + TP)
F1    F1 score                     2 TP / (2 TP + FP + FN)
====  ===========================  ==================================

*Macro* values are the unweighted mean over all ``n_classes`` classes. The overall
``accuracy`` is ``trace(CM) / N`` (not the mean of the one-vs-rest ACCs).

Degenerate cases (a 0/0 ratio, e.g. a class that never occurs in ``y_true`` or is never
predicted): SEN, SPE, PRE, JSS and F1 are set to 0.0, as scikit-learn's
``zero_division=0``; FPR and FNR stay the complements ``1 - SPE`` and ``1 - SEN`` (so a
degenerate FNR is 1.0). Nothing is hidden: :func:`classification_report_dict` lists every
(class, metric) pair that hit 0/0 under ``"undefined"``. ROC-AUC of a class without both
positives and negatives in ``y_true`` is undefined and is reported as ``None`` (JSON
``null``) and left out of the macro mean; never a made-up 0.5. All report values are
Python floats/ints/lists, never NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "confusion_matrix",
    "accuracy",
    "f1_macro",
    "per_class_metrics",
    "macro_metrics",
    "roc_auc",
    "rmse",
    "mae",
    "cmapss_score",
    "kfold_indices",
    "classification_report_dict",
    "regression_report_dict",
    "METRIC_NAMES",
]

METRIC_NAMES = ("acc", "sen", "spe", "pre", "jss", "fpr", "fnr", "f1")


def _labels_pair(y_true: Any, y_pred: Any, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    if yt.ndim != 1 or yp.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D, got shapes {yt.shape} and {yp.shape}")
    if len(yt) != len(yp):
        raise ValueError(f"y_true has {len(yt)} labels, y_pred has {len(yp)}")
    if len(yt) == 0:
        raise ValueError("no examples: y_true is empty")
    for name, a in (("y_true", yt), ("y_pred", yp)):
        if not np.issubdtype(a.dtype, np.integer):
            if a.dtype == bool or not np.issubdtype(a.dtype, np.number) or np.any(a != np.round(a)):
                raise ValueError(f"{name} must hold integer class labels, got dtype {a.dtype}")
    yt = yt.astype(np.int64)
    yp = yp.astype(np.int64)
    if n_classes is None:
        n_classes = int(max(yt.max(), yp.max())) + 1
        n_classes = max(n_classes, 2)
    if int(n_classes) < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    for name, a in (("y_true", yt), ("y_pred", yp)):
        if a.min() < 0 or a.max() >= n_classes:
            raise ValueError(f"{name} has labels outside [0, {n_classes}): min {a.min()}, max {a.max()}")
    return yt, yp, int(n_classes)


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int | None = None) -> np.ndarray:
    """``(n_classes, n_classes)`` int64 counts; row = true class, column = predicted class.
    ``n_classes`` defaults to ``max(label) + 1``. Raises ``ValueError`` on bad labels."""
    yt, yp, k = _labels_pair(y_true, y_pred, n_classes)
    return np.bincount(yt * k + yp, minlength=k * k).reshape(k, k).astype(np.int64)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of exact label matches."""
    yt, yp, _ = _labels_pair(y_true, y_pred, None)
    return float(np.mean(yt == yp))


def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """num/den with 0/0 -> 0.0; also returns the mask of degenerate entries."""
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    bad = den == 0
    out = np.divide(num, den, out=np.zeros_like(num), where=~bad)
    return out, bad


def _per_class(cm: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    n = cm.sum()
    tp = np.diag(cm).astype(np.int64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = n - tp - fp - fn
    sen, bad_sen = _ratio(tp, tp + fn)
    spe, bad_spe = _ratio(tn, tn + fp)
    pre, bad_pre = _ratio(tp, tp + fp)
    jss, bad_jss = _ratio(tp, tp + fp + fn)
    f1, bad_f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    vals = {
        "acc": (tp + tn) / n, "sen": sen, "spe": spe, "pre": pre, "jss": jss,
        "fpr": 1.0 - spe, "fnr": 1.0 - sen, "f1": f1,
    }  # fmt: skip
    bad = {
        "sen": bad_sen, "spe": bad_spe, "pre": bad_pre, "jss": bad_jss, "f1": bad_f1,
        "fpr": bad_spe, "fnr": bad_sen,
    }  # fmt: skip
    return vals, bad


def per_class_metrics(y_true: Any, y_pred: Any, n_classes: int | None = None) -> dict[str, np.ndarray]:
    """One-vs-rest ACC, SEN, SPE, PRE, JSS, FPR, FNR, F1 per class: a dict of float64
    arrays of length ``n_classes`` keyed by :data:`METRIC_NAMES` (0/0 -> 0.0, see module)."""
    return _per_class(confusion_matrix(y_true, y_pred, n_classes))[0]


def macro_metrics(y_true: Any, y_pred: Any, n_classes: int | None = None) -> dict[str, float]:
    """Unweighted mean over classes of each :func:`per_class_metrics` entry."""
    return {k: float(v.mean()) for k, v in per_class_metrics(y_true, y_pred, n_classes).items()}


def f1_macro(y_true: Any, y_pred: Any, n_classes: int | None = None) -> float:
    """Macro F1 over ``n_classes`` classes (equals scikit-learn's ``f1_score(average=
    "macro", labels=range(n_classes), zero_division=0)``)."""
    return float(per_class_metrics(y_true, y_pred, n_classes)["f1"].mean())


def _auc_parts(
    y_true: Any, y_score: Any, n_classes: int | None
) -> tuple[float | None, list[float | None]]:
    from sklearn.metrics import roc_auc_score

    yt = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if yt.ndim != 1 or len(yt) != len(s) or len(yt) == 0:
        raise ValueError(f"y_score must have one row per label: {s.shape} vs {yt.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("y_score contains NaN or infinity")
    if s.ndim == 1:
        s = np.stack([-s, s], axis=1)  # binary: the score of class 1
    if s.ndim != 2:
        raise ValueError(f"y_score must be 1-D (binary) or (N, n_classes), got {s.shape}")
    k = s.shape[1] if n_classes is None else int(n_classes)
    if s.shape[1] != k or k < 2:
        raise ValueError(f"y_score has {s.shape[1]} columns, expected n_classes={k} >= 2")
    yt, _, _ = _labels_pair(yt, yt, k)
    per: list[float | None] = []
    for c in range(k):
        pos = yt == c
        if pos.all() or not pos.any():
            per.append(None)
        else:
            per.append(float(roc_auc_score(pos.astype(np.int64), s[:, c])))
    if k == 2:
        return per[1], per
    ok = [a for a in per if a is not None]
    return (float(np.mean(ok)) if ok else None), per


def roc_auc(y_true: Any, y_score: Any, n_classes: int | None = None) -> float | None:
    """ROC-AUC. Binary: ``y_score`` is the score of class 1, shape ``(N,)``, or
    ``(N, 2)``. Multi-class: ``(N, n_classes)`` scores (probabilities or logits), one-vs-rest
    AUC per class, macro mean over the classes that have both positives and negatives.
    Returns ``None`` when no class has both (AUC undefined). Uses scikit-learn's
    ``roc_auc_score`` for each binary AUC (ties count one half)."""
    return _auc_parts(y_true, y_score, n_classes)[0]


def _reg_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    yt = np.asarray(y_true, dtype=np.float64).reshape(-1)
    yp = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if len(yt) != len(yp):
        raise ValueError(f"y_true has {len(yt)} values, y_pred has {len(yp)}")
    if len(yt) == 0:
        raise ValueError("no examples: y_true is empty")
    if not (np.all(np.isfinite(yt)) and np.all(np.isfinite(yp))):
        raise ValueError("y_true or y_pred contains NaN or infinity")
    return yt, yp


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error ``sqrt(mean((y_pred - y_true)^2))``."""
    yt, yp = _reg_pair(y_true, y_pred)
    return float(np.sqrt(np.mean((yp - yt) ** 2)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error."""
    yt, yp = _reg_pair(y_true, y_pred)
    return float(np.mean(np.abs(yp - yt)))


def cmapss_score(y_true: Any, y_pred: Any) -> float:
    """The asymmetric C-MAPSS / PHM08 scoring function (Saxena, Goebel, Simon, Eklund,
    "Damage propagation modeling for aircraft engine run-to-failure simulation", PHM 2008):
    with ``d = predicted RUL - true RUL``, ``s = sum(exp(-d/13) - 1)`` over ``d < 0`` (early)
    plus ``sum(exp(d/10) - 1)`` over ``d >= 0`` (late, punished harder). Lower is better, 0
    is perfect. It is a *sum*, so it grows with the number of test examples. Raises
    ``ValueError`` if a term overflows float64 (|d| of about 7,000 or more)."""
    yt, yp = _reg_pair(y_true, y_pred)
    d = yp - yt
    with np.errstate(over="ignore"):
        s = float(np.sum(np.where(d < 0, np.expm1(-d / 13.0), np.expm1(d / 10.0))))
    if not np.isfinite(s):
        raise ValueError("C-MAPSS score overflows: prediction errors are far too large")
    return s


def kfold_indices(
    n: int, k: int, *, seed: int = 0, stratify: Any = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` shuffled folds of ``range(n)`` as ``(train_idx, test_idx)`` pairs; the test
    parts are disjoint and cover ``range(n)``. With ``stratify`` (labels of length ``n``)
    each fold keeps the class proportions (scikit-learn ``StratifiedKFold``; it warns when a
    class has fewer than ``k`` members). Seed 002 uses ``k = 10``. Raises ``ValueError``
    for ``k < 2`` or ``k > n``."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= n:
        raise ValueError(f"k must be an int with 2 <= k <= n={n}, got {k!r}")
    X = np.zeros((int(n), 1))
    if stratify is None:
        splits = KFold(int(k), shuffle=True, random_state=seed).split(X)
    else:
        y = np.asarray(stratify)
        if y.shape != (n,):
            raise ValueError(f"stratify must have shape ({n},), got {y.shape}")
        splits = StratifiedKFold(int(k), shuffle=True, random_state=seed).split(X, y)
    return [(tr.astype(np.int64), te.astype(np.int64)) for tr, te in splits]


def classification_report_dict(
    y_true: Any,
    y_pred: Any,
    y_score: Any = None,
    n_classes: int | None = None,
    *,
    positive_label: int = 1,
) -> dict[str, Any]:
    """Every classification metric in one JSON-friendly dict.

    Keys: ``n``, ``n_classes``, ``accuracy``, ``f1_macro``, ``macro`` (ACC..F1 means),
    ``per_class`` (``{"0": {"acc": ..., ...}, ...}``), ``confusion_matrix`` (nested lists),
    ``roc_auc`` (float or ``None``; only with ``y_score``) and ``roc_auc_per_class``,
    ``undefined`` (``["class 3: pre", ...]``, each 0/0 replaced by its convention), and for
    two classes ``binary``: the metrics of ``positive_label`` (the anomaly/attack class),
    the usual reading of seed 002's single-number SEN/SPE/FPR/FNR.
    """
    if n_classes is None and y_score is not None and np.ndim(y_score) == 2:
        n_classes = int(np.shape(y_score)[1])  # a class may be absent from both label arrays
    cm = confusion_matrix(y_true, y_pred, n_classes)
    k = cm.shape[0]
    vals, bad = _per_class(cm)
    out: dict[str, Any] = {
        "n": int(cm.sum()),
        "n_classes": k,
        "accuracy": float(np.trace(cm) / cm.sum()),
        "f1_macro": float(vals["f1"].mean()),
        "macro": {m: float(vals[m].mean()) for m in METRIC_NAMES},
        "per_class": {str(c): {m: float(vals[m][c]) for m in METRIC_NAMES} for c in range(k)},
        "confusion_matrix": cm.tolist(),
        "undefined": [f"class {c}: {m}" for c in range(k) for m in METRIC_NAMES
                      if m in bad and bad[m][c]],
    }  # fmt: skip
    if k == 2:
        if positive_label not in (0, 1):
            raise ValueError(f"positive_label must be 0 or 1, got {positive_label}")
        out["binary"] = dict(out["per_class"][str(positive_label)], positive_label=positive_label)
    if y_score is not None:
        auc, per = _auc_parts(y_true, y_score, k)
        if k == 2:
            auc = per[positive_label]  # a 1-D score is class 1's; both AUCs then agree
        out["roc_auc"] = auc
        out["roc_auc_per_class"] = per
    return out


def regression_report_dict(y_true: Any, y_pred: Any, *, cmapss: bool = True) -> dict[str, Any]:
    """``{"n", "rmse", "mae"}`` plus ``"cmapss_score"`` (the PHM08 sum) and
    ``"cmapss_score_mean"`` (per example) when ``cmapss`` is true; JSON-friendly floats."""
    yt, yp = _reg_pair(y_true, y_pred)
    out: dict[str, Any] = {"n": int(len(yt)), "rmse": rmse(yt, yp), "mae": mae(yt, yp)}
    if cmapss:
        s = cmapss_score(yt, yp)
        out["cmapss_score"] = s
        out["cmapss_score_mean"] = s / len(yt)
    return out
