"""fl.data: the offline data sets, the IIoT generator and the partitioners."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fl.data import (
    Dataset,
    load_dataset,
    make_iiot,
    partition_by_group,
    partition_dirichlet,
    partition_iid,
    split_clients,
)
from fl.data.turbofan import read_cmapss_csv


def _assert_partition(parts, n, n_clients):
    assert len(parts) == n_clients
    assert all(len(p) > 0 for p in parts), "a client is empty"
    allidx = np.concatenate(parts)
    assert len(allidx) == n, "not disjoint or not covering"
    assert np.array_equal(np.sort(allidx), np.arange(n))
    assert all(p.dtype == np.int64 for p in parts)


# ---- partitioners: invariants -------------------------------------------------------


@given(st.integers(1, 300), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_iid_invariants(n, n_clients, seed):
    if n_clients > n:
        with pytest.raises(ValueError, match="exceeds"):
            partition_iid(n, n_clients, seed=seed)
        return
    parts = partition_iid(n, n_clients, seed=seed)
    _assert_partition(parts, n, n_clients)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=300),
    st.integers(1, 20),
    st.sampled_from([0.05, 0.5, 5.0]),
    st.integers(1, 5),
    st.integers(0, 1000),
)
def test_dirichlet_invariants(labels, n_clients, alpha, min_size, seed):
    y = np.array(labels)
    if n_clients * min_size > len(y):
        with pytest.raises(ValueError):
            partition_dirichlet(y, n_clients, alpha, seed=seed, min_size=min_size)
        return
    parts = partition_dirichlet(y, n_clients, alpha, seed=seed, min_size=min_size, max_tries=3)
    _assert_partition(parts, len(y), n_clients)
    assert min(len(p) for p in parts) >= min_size


@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=300),
    st.integers(1, 12),
    st.integers(0, 1000),
)
def test_by_group_invariants(groups, n_clients, seed):
    g = np.array(groups)
    if n_clients > len(np.unique(g)):
        with pytest.raises(ValueError, match="distinct groups"):
            partition_by_group(g, n_clients, seed=seed)
        return
    parts = partition_by_group(g, n_clients, seed=seed)
    _assert_partition(parts, len(g), n_clients)
    owners = {}
    for k, p in enumerate(parts):
        for grp in np.unique(g[p]):
            assert owners.setdefault(int(grp), k) == k, "a group is split across clients"


def test_dirichlet_alpha_controls_skew():
    y = np.repeat(np.arange(10), 100)

    def mean_classes_per_client(alpha):
        parts = partition_dirichlet(y, 10, alpha, seed=3, min_size=10)
        return np.mean([np.count_nonzero(np.bincount(y[p], minlength=10) >= 5) for p in parts])

    assert mean_classes_per_client(0.1) < 5 < mean_classes_per_client(100.0)


def test_partitioners_are_seeded():
    y = np.repeat(np.arange(4), 25)
    a = partition_dirichlet(y, 5, 0.5, seed=7, min_size=2)
    b = partition_dirichlet(y, 5, 0.5, seed=7, min_size=2)
    c = partition_dirichlet(y, 5, 0.5, seed=8, min_size=2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))
    d, e = partition_iid(50, 3, seed=1), partition_iid(50, 3, seed=1)
    assert all(np.array_equal(p, q) for p, q in zip(d, e))


def test_dirichlet_rebalances_when_draws_fail():
    # alpha tiny + one class: draws almost always give one client everything; rebalance.
    y = np.zeros(100, dtype=np.int64)
    parts = partition_dirichlet(y, 10, 0.001, seed=0, min_size=10, max_tries=1)
    _assert_partition(parts, 100, 10)
    assert [len(p) for p in parts] == [10] * 10


def test_partition_errors():
    with pytest.raises(ValueError, match="alpha"):
        partition_dirichlet([0, 1, 0, 1], 2, 0.0, min_size=1)
    with pytest.raises(ValueError, match="alpha"):
        partition_dirichlet([0, 1, 0, 1], 2, -1.0, min_size=1)
    with pytest.raises(ValueError, match="min_size"):
        partition_dirichlet([0, 1, 0, 1], 2, 0.5, min_size=3)
    with pytest.raises(ValueError, match="integer class labels"):
        partition_dirichlet([0.5, 1.2, 3.3], 2, 0.5, min_size=1)
    with pytest.raises(ValueError, match="n_clients"):
        partition_iid(10, 0)
    with pytest.raises(TypeError):
        partition_iid(10, 2.5)
    with pytest.raises(ValueError, match="exceeds"):
        partition_iid(3, 4)


# ---- data sets -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_digits(digits):
    ds = digits
    assert ds.X_train.shape == (1437, 1, 8, 8) and ds.X_test.shape == (360, 1, 8, 8)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.X_train.min() and ds.X_train.max() == pytest.approx(1.0)
    assert ds.task == "classification" and ds.n_classes == 10 and ds.groups_train is None
    assert sorted(np.unique(ds.y_test).tolist()) == list(range(10))
    json.dumps(ds.summary())


def test_digits_split_clients(digits):
    for scheme in ("iid", "dirichlet"):
        clients = split_clients(digits, 10, scheme=scheme, alpha=0.5, seed=0)
        assert len(clients) == 10
        assert sum(len(X) for X, _ in clients) == digits.n_train
        assert all(len(X) >= 10 and len(X) == len(y) for X, y in clients)
    with pytest.raises(ValueError, match="groups"):
        split_clients(digits, 10, scheme="unit")
    with pytest.raises(ValueError, match="unknown partition scheme"):
        split_clients(digits, 10, scheme="shards")


def test_mnist5k():
    ds = load_dataset("mnist5k", seed=1)
    assert ds.X_train.shape == (4000, 1, 28, 28) and ds.X_test.shape == (1000, 1, 28, 28)
    assert ds.class_counts("train") == [400] * 10 and ds.class_counts("test") == [100] * 10
    assert 0.0 <= ds.X_train.min() and ds.X_train.max() <= 1.0


def test_cmapss_csv_facts():
    train, test = read_cmapss_csv("train"), read_cmapss_csv("test")
    assert train.shape == (16584, 5) and test.shape == (4047, 5)
    assert len(np.unique(train[:, 0])) == 80 and len(np.unique(test[:, 0])) == 20
    assert set(train[:, 0]).isdisjoint(test[:, 0])
    # every engine, test ones too, runs to failure: last RUL of each unit is 0
    for d in (train, test):
        last = [d[d[:, 0] == u][-1, 4] for u in np.unique(d[:, 0])]
        assert set(last) == {0}


def test_cmapss_windows():
    ds = load_dataset("cmapss")
    assert ds.task == "regression" and ds.n_classes is None
    assert ds.X_train.shape == (16584 - 80 * 29, 30, 1)
    assert ds.X_test.shape == (4047 - 20 * 29, 30, 1)
    assert ds.y_train.max() == 125.0 and ds.y_train.min() == 0.0
    assert len(np.unique(ds.groups_train)) == 80
    # statistics come from the training file only
    train = read_cmapss_csv("train")
    assert ds.meta["s11_mean"] == pytest.approx(train[:, 2].mean())
    assert ds.meta["s11_std"] == pytest.approx(train[:, 2].std())
    # first window of unit 1: s_11 cycles 1..30 standardised; target RUL min(191-29, 125)
    u1 = train[train[:, 0] == 1]
    expect = (u1[:30, 2] - ds.meta["s11_mean"]) / ds.meta["s11_std"]
    np.testing.assert_allclose(ds.X_train[0, :, 0], expect, rtol=1e-5)
    assert ds.y_train[0] == min(u1[29, 4], 125)
    raw = load_dataset("cmapss", rul_cap=None)
    assert raw.y_train.max() == train[:, 4].max() - 29
    clients = split_clients(ds, 10, scheme="unit", seed=0)
    assert sum(len(X) for X, _ in clients) == ds.n_train
    with pytest.raises(ValueError, match="regression"):
        split_clients(ds, 10, scheme="dirichlet")


def test_cmapss_truncated_and_errors():
    ds = load_dataset("cmapss", seed=5, test_windows="truncated", window_length=20)
    assert ds.X_test.shape == (20, 20, 1) and len(np.unique(ds.groups_test)) == 20
    again = load_dataset("cmapss", seed=5, test_windows="truncated", window_length=20)
    np.testing.assert_array_equal(ds.y_test, again.y_test)
    with pytest.raises(ValueError, match="window_length"):
        load_dataset("cmapss", window_length=500)
    with pytest.raises(ValueError, match="test_windows"):
        load_dataset("cmapss", test_windows="last")


def test_iiot_generator():
    s = make_iiot(3, 500, 2, anomaly_rate=0.05, seed=4)
    assert s.signals.shape == (3, 500, 2) and s.signals.dtype == np.float32
    assert np.all(np.isfinite(s.signals))
    for m in range(3):
        assert s.labels[m].mean() >= 0.05
    assert np.array_equal(s.labels, (s.kinds > 0).any(axis=2).astype(np.int64))
    t = make_iiot(3, 500, 2, anomaly_rate=0.05, seed=4)
    np.testing.assert_array_equal(s.signals, t.signals)
    clean = make_iiot(2, 300, 3, anomaly_rate=0.0, seed=1)
    assert clean.labels.sum() == 0 and clean.events == []
    # a stuck sensor repeats its first reading over the whole event
    st_ = make_iiot(1, 400, 1, anomaly_rate=0.1, seed=2, anomaly_kinds=("stuck",))
    spans = [(e["start"], e["start"] + e["length"]) for e in st_.events]
    checked = 0
    for i, (a, b) in enumerate(spans):
        if all(b2 <= a or a2 >= b for j, (a2, b2) in enumerate(spans) if j != i):
            seg = st_.signals[0, a:b, 0]
            assert np.all(seg == seg[0])
            checked += 1
    assert checked > 0
    json.dumps(s.params)


def test_iiot_generator_errors():
    with pytest.raises(ValueError, match="anomaly_rate"):
        make_iiot(2, 100, 2, anomaly_rate=0.9)
    with pytest.raises(ValueError, match="anomaly_kinds"):
        make_iiot(2, 100, 2, anomaly_kinds=("fire",))
    with pytest.raises(ValueError, match="noise_std"):
        make_iiot(2, 100, 2, noise_std=-1.0)
    with pytest.raises(ValueError, match="n_machines"):
        make_iiot(0, 100, 2)


def test_iiot_dataset():
    ds = load_dataset("iiot", seed=0)
    assert ds.task == "anomaly" and ds.n_classes == 2
    assert ds.X_train.shape == (1250, 32, 4) and ds.X_test.shape == (530, 32, 4)
    assert 0 < ds.y_train.sum() < ds.n_train and 0 < ds.y_test.sum() < ds.n_test
    assert sorted(np.unique(ds.groups_train).tolist()) == list(range(10))
    clients = split_clients(ds, 10, scheme="unit", seed=0)
    parts = partition_by_group(ds.groups_train, 10, seed=0)
    assert sorted(int(np.unique(ds.groups_train[p])[0]) for p in parts) == list(range(10))
    assert all(len(np.unique(ds.groups_train[p])) == 1 for p in parts)
    assert all(len(X) == 125 for X, _ in clients)
    small = load_dataset("iiot", seed=1, n_machines=3, n_steps=400, window_length=16, stride=16)
    assert small.X_train.shape[1:] == (16, 4) and small.X_train.shape[0] == 3 * (280 // 16)


def test_load_dataset_errors():
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("cifar10")
    with pytest.raises(TypeError):
        load_dataset("digits", window_length=3)


def test_dataset_validation():
    X = np.zeros((4, 2), np.float32)
    y = np.array([0, 1, 0, 1])
    ok = dict(X_train=X, y_train=y, X_test=X, y_test=y, task="classification", n_classes=2,
              input_shape=(2,), groups_train=None, name="t", description="t")  # fmt: skip
    Dataset(**ok)
    bad_nan = X.copy()
    bad_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Dataset(**dict(ok, X_train=bad_nan))
    with pytest.raises(ValueError, match="outside"):
        Dataset(**dict(ok, y_test=np.array([0, 1, 2, 1])))
    with pytest.raises(ValueError, match="task"):
        Dataset(**dict(ok, task="clustering"))
    with pytest.raises(ValueError, match="example shape"):
        Dataset(**dict(ok, input_shape=(3,)))
