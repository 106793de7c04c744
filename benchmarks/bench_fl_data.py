"""fl.data and fl.metrics: the built-in data sets, centralized classical baselines on each,
and our metrics next to scikit-learn's on the same predictions (same run).

The baselines are reference points for the federated runs (``privcrypt bench fl``), not
the project's models: logistic regression (digits, mnist5k), ridge regression on the raw
window (C-MAPSS), and a threshold on the largest step-to-step jump (IIoT, threshold = 95th
percentile of the normal training windows).
"""

from __future__ import annotations

DESCRIPTION = "fl data sets: shapes, class balance, centralized baselines, metrics vs sklearn"


def add_arguments(parser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="split / generator seed")


def run(args) -> dict:
    import time

    import numpy as np
    from sklearn import metrics as skm
    from sklearn.linear_model import LogisticRegression, Ridge

    from benchmarks.harness import finish, markdown_table
    from fl.data import load_dataset
    from fl.metrics import classification_report_dict, regression_report_dict

    names = ("digits", "cmapss", "iiot") if args.quick else ("digits", "mnist5k", "cmapss", "iiot")
    rows, details = [], {}
    for name in names:
        t0 = time.perf_counter()
        ds = load_dataset(name, seed=args.seed)
        load_s = time.perf_counter() - t0
        row = {"dataset": name, "task": ds.task, "train": ds.n_train, "test": ds.n_test,
               "input_shape": "x".join(map(str, ds.input_shape)), "load_s": load_s}  # fmt: skip
        if ds.task == "classification":
            Xtr, Xte = ds.X_train.reshape(ds.n_train, -1), ds.X_test.reshape(ds.n_test, -1)
            p = LogisticRegression(max_iter=300).fit(Xtr, ds.y_train).predict_proba(Xte)
            pred = p.argmax(1)
            rep = classification_report_dict(ds.y_test, pred, y_score=p)
            row.update(baseline="logreg", accuracy=rep["accuracy"], f1_macro=rep["f1_macro"],
                       roc_auc=rep["roc_auc"],
                       sk_f1_macro=skm.f1_score(ds.y_test, pred, average="macro"),
                       sk_roc_auc=skm.roc_auc_score(ds.y_test, p, multi_class="ovr"))  # fmt: skip
        elif ds.task == "regression":
            pred = Ridge(1.0).fit(ds.X_train[..., 0], ds.y_train).predict(ds.X_test[..., 0])
            rep = regression_report_dict(ds.y_test, pred)
            row.update(baseline="ridge", rmse=rep["rmse"], cmapss_score=rep["cmapss_score"],
                       sk_rmse=float(np.sqrt(skm.mean_squared_error(ds.y_test, pred))))  # fmt: skip
        else:
            def jump(X):
                return np.abs(np.diff(X, axis=1)).max(axis=(1, 2))

            thr = float(np.quantile(jump(ds.X_train[ds.y_train == 0]), 0.95))
            s = jump(ds.X_test)
            pred = (s > thr).astype(np.int64)
            rep = classification_report_dict(ds.y_test, pred, y_score=s)
            b = rep["binary"]
            row.update(baseline="max-jump threshold", accuracy=rep["accuracy"],
                       f1_macro=rep["f1_macro"], roc_auc=rep["roc_auc"], sen=b["sen"],
                       spe=b["spe"], pre=b["pre"], jss=b["jss"], fpr=b["fpr"], fnr=b["fnr"],
                       sk_roc_auc=skm.roc_auc_score(ds.y_test, s),
                       sk_recall=skm.recall_score(ds.y_test, pred))  # fmt: skip
        details[name] = {"summary": ds.summary(), "description": ds.description, "report": rep}
        rows.append(row)
    cols = ["dataset", "task", "train", "test", "input_shape", "baseline", "accuracy",
            "f1_macro", "sk_f1_macro", "roc_auc", "sk_roc_auc", "rmse", "sk_rmse",
            "cmapss_score", "sen", "sk_recall", "spe", "fpr", "fnr", "load_s"]  # fmt: skip
    table = markdown_table(rows, cols)
    return finish("fl_data", {"rows": rows, "details": details, "seed": args.seed}, table, args)
