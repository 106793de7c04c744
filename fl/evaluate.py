"""Evaluation of the global model on the held-out test set, per task.

* classification: ``accuracy``, macro ``f1``, test ``loss`` (cross-entropy);
* regression: ``rmse`` and the C-MAPSS ``nasa_score`` in the target's units
  (``target_scale`` multiplies predictions and targets back, e.g. RUL cycles);
* anomaly: the reconstruction error of each window is its anomaly score; windows above
  ``threshold`` (from the clients' training errors) are flagged; ``accuracy``, ``f1``,
  ``roc_auc`` and seed 002's ACC/SEN/SPE/PRE/JSS/FPR/FNR.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["evaluate"]


def _predict(model, X: np.ndarray, batch: int = 512) -> torch.Tensor:
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(X), batch):
            outs.append(model(torch.as_tensor(np.asarray(X[i:i + batch], dtype=np.float32))))
    return torch.cat(outs)


def _binary_rates(y: np.ndarray, pred: np.ndarray) -> dict:
    tp = int(np.sum((pred == 1) & (y == 1)))
    tn = int(np.sum((pred == 0) & (y == 0)))
    fp = int(np.sum((pred == 1) & (y == 0)))
    fn = int(np.sum((pred == 0) & (y == 1)))

    def div(a, b):
        return a / b if b else 0.0

    return {"ACC": div(tp + tn, len(y)), "SEN": div(tp, tp + fn), "SPE": div(tn, tn + fp),
            "PRE": div(tp, tp + fp), "JSS": div(tp, tp + fp + fn), "FPR": div(fp, fp + tn),
            "FNR": div(fn, fn + tp)}


def evaluate(model, X: np.ndarray, y: np.ndarray, task: str, *, threshold: float | None = None,
             target_scale: float = 1.0) -> dict:
    """Metrics of ``model`` on ``(X, y)`` for ``task`` (see module docstring)."""
    from sklearn.metrics import f1_score, roc_auc_score

    out = _predict(model, X)
    if task == "classification":
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
        loss = float(torch.nn.functional.cross_entropy(out, yt))
        pred = out.argmax(1).numpy()
        return {"accuracy": float(np.mean(pred == y)), "f1": float(f1_score(y, pred, average="macro")),
                "test_loss": loss}
    if task == "regression":
        pred = out.reshape(-1).numpy().astype(np.float64) * target_scale
        true = np.asarray(y, dtype=np.float64) * target_scale
        d = pred - true
        score = float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1, np.exp(np.minimum(d, 700) / 10.0) - 1)))
        return {"rmse": float(np.sqrt(np.mean(d**2))), "nasa_score": score,
                "test_loss": float(np.mean((d / target_scale) ** 2))}
    xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    err = ((out - xt) ** 2).reshape(len(X), -1).mean(1).numpy().astype(np.float64)
    yb = np.asarray(y).astype(int)
    res = {"test_loss": float(err.mean())}
    if threshold is not None and math.isfinite(threshold):
        pred = (err > threshold).astype(int)
        res.update(accuracy=float(np.mean(pred == yb)), f1=float(f1_score(yb, pred, zero_division=0)),
                   threshold=float(threshold), **_binary_rates(yb, pred))
    if 0 < yb.sum() < len(yb):
        res["roc_auc"] = float(roc_auc_score(yb, err))
    return res
