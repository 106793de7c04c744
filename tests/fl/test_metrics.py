"""fl.metrics: hand-computed examples, scikit-learn as the oracle, degenerate cases."""

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as skm

from fl.metrics import (
    METRIC_NAMES,
    accuracy,
    classification_report_dict,
    cmapss_score,
    confusion_matrix,
    f1_macro,
    kfold_indices,
    macro_metrics,
    mae,
    per_class_metrics,
    regression_report_dict,
    rmse,
    roc_auc,
)


def test_binary_confusion_hand_computed():
    # Hand-computed 2x2 example: true 1 1 1 1 0 0 0 0 0 0 / pred 1 1 1 0 1 0 0 0 0 0
    # -> TP=3, FN=1, FP=1, TN=5 for class 1.
    y_true = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    y_pred = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    assert confusion_matrix(y_true, y_pred).tolist() == [[5, 1], [1, 3]]
    rep = classification_report_dict(y_true, y_pred)
    b = rep["binary"]
    assert b["positive_label"] == 1
    assert b["acc"] == pytest.approx(8 / 10)
    assert b["sen"] == pytest.approx(3 / 4)
    assert b["spe"] == pytest.approx(5 / 6)
    assert b["pre"] == pytest.approx(3 / 4)
    assert b["jss"] == pytest.approx(3 / 5)
    assert b["fpr"] == pytest.approx(1 / 6)
    assert b["fnr"] == pytest.approx(1 / 4)
    assert b["f1"] == pytest.approx(6 / 8)
    # class 0 seen one-vs-rest: TP=5, FN=1, FP=1, TN=3
    c0 = rep["per_class"]["0"]
    assert c0["sen"] == pytest.approx(5 / 6) and c0["spe"] == pytest.approx(3 / 4)
    assert rep["accuracy"] == pytest.approx(0.8)
    assert rep["undefined"] == []


def test_three_class_hand_computed():
    # rows true, cols pred: [[2,1,0],[0,1,1],[1,0,3]], N=9
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 2, 0]
    cm = confusion_matrix(y_true, y_pred)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    pc = per_class_metrics(y_true, y_pred)
    # class 1: TP=1, FN=1, FP=1, TN=6
    assert pc["sen"][1] == pytest.approx(1 / 2)
    assert pc["spe"][1] == pytest.approx(6 / 7)
    assert pc["pre"][1] == pytest.approx(1 / 2)
    assert pc["jss"][1] == pytest.approx(1 / 3)
    assert pc["acc"][1] == pytest.approx(7 / 9)
    assert accuracy(y_true, y_pred) == pytest.approx(6 / 9)


def _random_labels(seed, n, k):
    rng = np.random.default_rng(seed)
    return rng.integers(0, k, n), rng.integers(0, k, n)


@given(st.integers(0, 10_000), st.integers(1, 60), st.integers(2, 6))
def test_matches_sklearn(seed, n, k):
    yt, yp = _random_labels(seed, n, k)
    labels = list(range(k))
    assert f1_macro(yt, yp, k) == pytest.approx(
        skm.f1_score(yt, yp, average="macro", labels=labels, zero_division=0)
    )
    m = macro_metrics(yt, yp, k)
    assert m["sen"] == pytest.approx(
        skm.recall_score(yt, yp, average="macro", labels=labels, zero_division=0)
    )
    assert m["pre"] == pytest.approx(
        skm.precision_score(yt, yp, average="macro", labels=labels, zero_division=0)
    )
    assert m["jss"] == pytest.approx(
        skm.jaccard_score(yt, yp, average="macro", labels=labels, zero_division=0)
    )
    assert confusion_matrix(yt, yp, k).tolist() == skm.confusion_matrix(yt, yp, labels=labels).tolist()
    pc = per_class_metrics(yt, yp, k)
    np.testing.assert_allclose(pc["fpr"], 1 - pc["spe"])
    np.testing.assert_allclose(pc["fnr"], 1 - pc["sen"])
    rep = classification_report_dict(yt, yp, n_classes=k)
    json.dumps(rep, allow_nan=False)  # raises on NaN/inf


def test_degenerate_class_never_predicted_is_defined_and_listed():
    y_true = [0, 1, 2, 2]
    y_pred = [0, 0, 2, 2]  # class 1 never predicted
    rep = classification_report_dict(y_true, y_pred, n_classes=4)  # class 3 never occurs
    assert rep["per_class"]["1"]["pre"] == 0.0
    assert rep["per_class"]["3"]["sen"] == 0.0 and rep["per_class"]["3"]["fnr"] == 1.0
    assert "class 1: pre" in rep["undefined"]
    assert "class 3: sen" in rep["undefined"] and "class 3: f1" in rep["undefined"]
    assert "class 0: pre" not in rep["undefined"]
    json.dumps(rep, allow_nan=False)


def test_roc_auc_binary_and_ovr_vs_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = y + rng.normal(0, 1.0, 200)
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    # hand-computed: positives {0.8, 0.4}, negatives {0.5, 0.1}: 3 of 4 pairs ordered
    assert roc_auc([1, 1, 0, 0], [0.8, 0.4, 0.5, 0.1]) == pytest.approx(0.75)
    y3 = rng.integers(0, 4, 300)
    logits = rng.normal(0, 1, (300, 4))
    logits[np.arange(300), y3] += 1.0
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert roc_auc(y3, p) == pytest.approx(skm.roc_auc_score(y3, p, multi_class="ovr", average="macro"))
    rep = classification_report_dict(y3, p.argmax(1), y_score=p)
    assert rep["roc_auc"] == pytest.approx(roc_auc(y3, p))


def test_roc_auc_undefined_is_none():
    assert roc_auc([1, 1, 1], [0.2, 0.3, 0.9]) is None
    p = np.full((3, 3), 1 / 3)
    rep = classification_report_dict([0, 0, 1], [0, 0, 1], y_score=p, n_classes=3)
    assert rep["roc_auc_per_class"][2] is None
    assert rep["roc_auc"] == pytest.approx(0.5)  # mean over classes 0 and 1 only
    # n_classes taken from y_score's columns when not given
    rep = classification_report_dict([0, 0, 1], [0, 0, 1], y_score=p)
    assert rep["n_classes"] == 3 and len(rep["per_class"]) == 3
    json.dumps(rep, allow_nan=False)


def test_binary_positive_label_zero():
    y_true = [1, 1, 0, 0, 0]
    y_pred = [1, 0, 0, 0, 1]
    rep = classification_report_dict(y_true, y_pred, y_score=[0.9, 0.2, 0.1, 0.3, 0.8], positive_label=0)
    assert rep["binary"]["positive_label"] == 0
    assert rep["binary"]["sen"] == pytest.approx(2 / 3)
    assert rep["roc_auc"] == pytest.approx(roc_auc(y_true, [0.9, 0.2, 0.1, 0.3, 0.8]))


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 1, 3], [0, 1, 1], n_classes=3)
    with pytest.raises(ValueError, match="labels"):
        confusion_matrix([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="integer"):
        accuracy([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1], [np.nan, 1.0])


def test_rmse_mae_hand_computed():
    # errors 1, -1, 2, 0 -> MSE = 6/4, MAE = 1
    assert rmse([1, 2, 3, 4], [2, 1, 5, 4]) == pytest.approx(math.sqrt(1.5))
    assert mae([1, 2, 3, 4], [2, 1, 5, 4]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="NaN"):
        rmse([1.0], [np.nan])


def test_cmapss_score_known_values():
    # Saxena et al. 2008 (PHM08): d = pred - true; exp(-d/13)-1 early, exp(d/10)-1 late.
    assert cmapss_score([100], [100]) == 0.0
    assert cmapss_score([100], [110]) == pytest.approx(math.e - 1)  # late by 10
    assert cmapss_score([100], [87]) == pytest.approx(math.e - 1)  # early by 13
    s = cmapss_score([50, 50], [40, 60])
    assert s == pytest.approx(math.exp(10 / 13) - 1 + math.exp(1) - 1)
    assert cmapss_score([0], [20]) > cmapss_score([20], [0])  # late is punished harder
    with pytest.raises(ValueError, match="overflow"):
        cmapss_score([0], [1e5])
    rep = regression_report_dict([100, 50], [110, 50])
    assert rep["cmapss_score_mean"] == pytest.approx((math.e - 1) / 2)
    json.dumps(rep, allow_nan=False)


@given(st.integers(2, 80), st.integers(2, 10), st.integers(0, 1000))
def test_kfold_partitions(n, k, seed):
    if k > n:
        with pytest.raises(ValueError):
            kfold_indices(n, k, seed=seed)
        return
    folds = kfold_indices(n, k, seed=seed)
    assert len(folds) == k
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests.tolist()) == list(range(n))
    for tr, te in folds:
        assert len(te) > 0
        assert set(tr.tolist()).isdisjoint(te.tolist())
        assert len(tr) + len(te) == n


def test_kfold_stratified_keeps_proportions():
    y = np.array([0] * 50 + [1] * 10)
    folds = kfold_indices(60, 10, seed=0, stratify=y)
    for _, te in folds:
        assert np.bincount(y[te], minlength=2).tolist() == [5, 1]
    again = kfold_indices(60, 10, seed=0, stratify=y)
    assert [te.tolist() for _, te in folds] == [te.tolist() for _, te in again]
    with pytest.raises(ValueError, match="stratify"):
        kfold_indices(60, 10, stratify=y[:10])
    with pytest.raises(ValueError, match="k must"):
        kfold_indices(10, 1)


def test_metric_names_cover_report():
    rep = classification_report_dict([0, 1, 1], [0, 1, 0])
    assert set(rep["macro"]) == set(METRIC_NAMES)
