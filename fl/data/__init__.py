"""Offline data sets, client partitioners and the synthetic IIoT generator for ``fl``.

>>> from fl.data import load_dataset, split_clients
>>> ds = load_dataset("digits", seed=0)
>>> clients = split_clients(ds, 10, scheme="dirichlet", alpha=0.5, seed=0)
"""

from .base import TASKS, Dataset
from .datasets import DATASETS, load_dataset
from .iiot import ANOMALY_KINDS, IIoTSeries, load_iiot, make_iiot
from .partition import (
    SCHEMES,
    partition_by_group,
    partition_dirichlet,
    partition_iid,
    split_clients,
)
from .turbofan import load_cmapss

__all__ = [
    "Dataset",
    "TASKS",
    "DATASETS",
    "load_dataset",
    "load_cmapss",
    "load_iiot",
    "make_iiot",
    "IIoTSeries",
    "ANOMALY_KINDS",
    "SCHEMES",
    "partition_iid",
    "partition_dirichlet",
    "partition_by_group",
    "split_clients",
]
