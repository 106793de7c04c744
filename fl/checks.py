"""Validation of everything ``fl.run`` is given, before any training starts.

Each problem is one ``ValueError`` (or ``TypeError`` for a wrong kind of object) whose
message names the client, the argument or the combination at fault.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fl.config import ROBUST_RULES

__all__ = ["check_arrays", "check_clients", "check_model", "check_combination", "SECURE_ROBUST"]

#: Robust rules that run on SPDZ shares (pairwise distances computed under MPC). Plain
#: Krum is not among them: its output is the one selected client's update, opened.
SECURE_ROBUST = ("multikrum",)


def check_arrays(X, y, who: str, task: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` as numeric arrays of equal length, finite, non-empty."""
    try:
        Xa = np.asarray(X)
        ya = np.asarray(y)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{who}: data cannot be converted to arrays ({exc})") from None
    if Xa.dtype == object or not (np.issubdtype(Xa.dtype, np.number) or Xa.dtype == bool):
        raise ValueError(f"{who}: X must be numeric, got dtype {Xa.dtype}")
    if np.iscomplexobj(Xa) or np.iscomplexobj(ya):
        raise ValueError(f"{who}: complex data is not supported")
    if Xa.ndim < 1 or Xa.shape[0] == 0:
        raise ValueError(f"{who} has no data")
    if ya.ndim != 1:
        raise ValueError(f"{who}: y must be 1-D (one label/target per example), got shape {ya.shape}")
    if Xa.shape[0] != ya.shape[0]:
        raise ValueError(f"{who}: X has {Xa.shape[0]} rows but y has {ya.shape[0]}")
    if not np.all(np.isfinite(Xa)):
        raise ValueError(f"{who}: X contains NaN or infinite values")
    if ya.dtype == object or not np.issubdtype(ya.dtype, np.number):
        raise ValueError(f"{who}: y must be numeric, got dtype {ya.dtype}")
    if not np.all(np.isfinite(ya)):
        raise ValueError(f"{who}: y contains NaN or infinite values")
    if task in ("classification", "anomaly"):
        if not np.all(ya == np.round(ya)) or ya.min() < 0:
            raise ValueError(f"{who}: class labels must be integers >= 0")
        if task == "anomaly" and ya.max() > 1:
            raise ValueError(f"{who}: anomaly labels must be 0 (normal) or 1 (anomalous)")
    return Xa, ya


def check_clients(clients, test, task: str):
    """Validate the client list and the test set; returns them as arrays."""
    if isinstance(clients, dict) or not isinstance(clients, (list, tuple)):
        raise TypeError("clients must be a list of (X, y) pairs, one per client")
    if len(clients) == 0:
        raise ValueError("no clients")
    out = []
    shape = None
    for i, c in enumerate(clients):
        if not isinstance(c, (list, tuple)) or len(c) != 2:
            raise TypeError(f"client {i} must be an (X, y) pair")
        X, y = check_arrays(c[0], c[1], f"client {i}", task)
        if shape is None:
            shape = X.shape[1:]
        elif X.shape[1:] != shape:
            raise ValueError(f"client {i}: examples have shape {X.shape[1:]}, client 0's have {shape}")
        out.append((X, y))
    if not isinstance(test, (list, tuple)) or len(test) != 2:
        raise TypeError("test must be an (X, y) pair")
    Xt, yt = check_arrays(test[0], test[1], "test set", task)
    if Xt.shape[1:] != shape:
        raise ValueError(f"test set: examples have shape {Xt.shape[1:]}, clients' have {shape}")
    return out, (Xt, yt)


def check_model(model: nn.Module, clients, test, task: str) -> int | None:
    """Run the model on two examples and check that its output fits the task. Returns the
    number of classes (classification) and checks every label is below it."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model_fn() must return a torch.nn.Module, got {type(model).__name__}")
    if not any(True for _ in model.parameters()):
        raise ValueError("the model has no trainable parameters")
    x = torch.as_tensor(np.asarray(test[0][:2], dtype=np.float32))
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise ValueError(f"the model cannot run on inputs of shape {tuple(x.shape)}: {exc}") from None
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"the model must return a tensor, got {type(out).__name__}")
    if task == "classification":
        if out.dim() != 2:
            raise ValueError(f"classification needs (N, classes) logits; the model returns shape {tuple(out.shape)}")
        n_classes = out.shape[1]
        top = max(int(np.max(y)) for _, y in [*clients, test])
        if top >= n_classes:
            raise ValueError(f"label {top} is out of range for a model with {n_classes} outputs")
        if n_classes < 2:
            raise ValueError("classification needs at least 2 outputs")
        return n_classes
    if task == "regression":
        if tuple(out.shape) not in ((x.shape[0],), (x.shape[0], 1)):
            raise ValueError(f"regression needs one output per example; the model returns shape {tuple(out.shape)}")
        return None
    if task == "anomaly":
        if tuple(out.shape) != tuple(x.shape):
            raise ValueError(f"anomaly detection needs a reconstruction of the input {tuple(x.shape)}; "
                             f"the model returns {tuple(out.shape)}")
        return None
    raise ValueError(f"unknown task {task!r}; choose classification, regression or anomaly")


def check_combination(cfg, model: nn.Module, n_clients: int) -> None:
    """Refuse configurations that cannot be honest or cannot run."""
    secure = cfg.backend != "plain"
    if cfg.aggregator in ROBUST_RULES:
        if cfg.backend in ("masking", "ckks"):
            raise ValueError(
                f"aggregator {cfg.aggregator!r} needs each client's update, which the {cfg.backend} "
                f"backend hides by design. Secure alternatives on SPDZ shares: --backend spdz with "
                f"--aggregator multikrum (pairwise distances computed on shares), or a norm "
                f"bound (backend_params norm_bound, range-proved); or --backend plain (no secrecy)")
        if cfg.backend == "spdz" and cfg.aggregator == "krum":
            raise ValueError("Krum on SPDZ shares would open the one selected client's update every round; "
                             "use --aggregator multikrum (the mean of m >= f + 2 selected updates)")
        if cfg.backend == "spdz" and cfg.aggregator not in SECURE_ROBUST:
            raise ValueError(f"aggregator {cfg.aggregator!r} does not run on SPDZ shares; "
                             f"use multikrum, or --backend plain")
    if cfg.reputation and cfg.backend in ("masking", "ckks"):
        raise ValueError(f"reputation scores individual updates, which the {cfg.backend} backend hides; "
                         f"use --backend spdz with --aggregator multikrum (scores from the opened "
                         f"distances) or --backend plain")
    if cfg.reputation and cfg.backend == "spdz" and cfg.aggregator not in SECURE_ROBUST:
        raise ValueError("reputation on spdz needs --aggregator multikrum (it scores the opened distances)")
    if cfg.clients_per_round is not None and cfg.clients_per_round > n_clients:
        raise ValueError(f"clients_per_round={cfg.clients_per_round} but there are only {n_clients} clients")
    per_round = n_clients if cfg.clients_per_round is None else cfg.clients_per_round
    if cfg.sample_rate is not None:
        per_round = cfg.sample_rate * n_clients
    if secure and per_round < 2:
        raise ValueError(f"a secure aggregation round needs at least 2 clients (a 'mean' of one client "
                         f"is that client's update); this configuration has {per_round:g} per round")
    if cfg.dp and cfg.dp_unit == "example":
        bn = [type(m).__name__ for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if bn:
            raise ValueError(f"example-level DP-SGD needs per-example gradients, which {bn[0]} "
                             f"(batch statistics) breaks; use GroupNorm/LayerNorm or dp_unit='client'")
    if cfg.adv_train is not None:
        try:
            from fl.adversarial import make_attack
        except ImportError:
            raise ValueError("adversarial training needs fl.adversarial, which this build lacks") from None
        if cfg.adv_train != "fda3":
            make_attack(cfg.adv_train)  # unknown names raise ValueError listing the known ones
    if cfg.dp and cfg.dp_unit == "client" and cfg.dp_mode == "distributed" and cfg.backend not in ("masking", "spdz"):
        raise ValueError("dp_mode='distributed' needs a secure backend that sums integers: masking or spdz")
    if cfg.dp and cfg.dp_unit == "client" and cfg.dp_mode == "distributed" and cfg.compression != "none":
        raise ValueError("dp_mode='distributed' already encodes updates as bounded integers; use compression='none'")
    if cfg.dp and cfg.dp_unit == "client" and cfg.dp_mode == "distributed" and cfg.aggregator != "fedavg":
        raise ValueError("dp_mode='distributed' sums noisy integers; robust rules cannot run on them")
