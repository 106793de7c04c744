"""Every bad input of issue 12 is refused with one clear error before any training."""

import math

import numpy as np
import pytest
import torch

from fl import FLConfig, run


def _never_called():
    raise AssertionError("training must not start")


@pytest.mark.parametrize("kw, match", [
    (dict(backend="paillier"), "unknown backend 'paillier'"),
    (dict(aggregator="average"), "unknown aggregator 'average'"),
    (dict(rounds=0), "rounds must be a positive integer"),
    (dict(rounds=-3), "rounds must be a positive integer"),
    (dict(rounds=2.5), "rounds must be a positive integer"),
    (dict(lr=float("nan")), "lr must be finite"),
    (dict(dropout=1.0), "dropout must be in"),
    (dict(dp_epsilon=-1.0), "dp_epsilon must be finite and > 0"),
    (dict(dp_delta=1.5), "dp_delta must be in"),
    (dict(dp_mode="global"), "unknown dp_mode"),
    (dict(dp_noise_multiplier=1.0), "needs dp_epsilon"),
    (dict(clients_per_round=5, sample_rate=0.5), "not both"),
    (dict(sample_rate=1.5), "sample_rate must be in"),
    (dict(byzantine=2), "need an attack name"),
    (dict(dp_epsilon=1.0, dp_unit="example", dp_mode="local"), "dp_mode applies to dp_unit='client'"),
    (dict(dp_epsilon=1.0, dp_unit="client", aggregator="median"), "sensitivity"),
])
def test_config_refuses(kw, match):
    with pytest.raises(ValueError, match=match):
        FLConfig(**kw)


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown FLConfig keys: roundz"):
        FLConfig.from_dict({"roundz": 3})


def test_toml_round_trip_and_errors(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('rounds = 3\nbackend = "spdz"\n[backend_params]\nfrac_bits = 20\n')
    cfg = FLConfig.from_toml(p, rounds=4)
    assert (cfg.rounds, cfg.backend, cfg.backend_params) == (4, "spdz", {"frac_bits": 20})
    (tmp_path / "bad.toml").write_text("rounds = = 3")
    with pytest.raises(ValueError, match="not valid TOML"):
        FLConfig.from_toml(tmp_path / "bad.toml")
    with pytest.raises(FileNotFoundError):
        FLConfig.from_toml(tmp_path / "missing.toml")
    (tmp_path / "neg.toml").write_text("rounds = -1\n")
    with pytest.raises(ValueError, match="rounds"):
        FLConfig.from_toml(tmp_path / "neg.toml")


def _data(n=20, d=(1, 8, 8), classes=3):
    rs = np.random.default_rng(0)
    return rs.random((n, *d)).astype(np.float32), rs.integers(0, classes, n)


@pytest.fixture
def cnn3():
    from fl.models import CNN

    return lambda: CNN((1, 8, 8), 3, width=2)


def test_client_with_no_data(cnn3):
    X, y = _data()
    with pytest.raises(ValueError, match="client 1 has no data"):
        run(cnn3, [(X, y), (X[:0], y[:0])], (X, y), FLConfig(rounds=1, backend="plain"))


def test_nan_in_client_data(cnn3):
    X, y = _data()
    Xb = X.copy()
    Xb[3, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="client 1: X contains NaN"):
        run(cnn3, [(X, y), (Xb, y)], (X, y), FLConfig(rounds=1, backend="plain"))
    with pytest.raises(ValueError, match="test set: X contains NaN"):
        run(cnn3, [(X, y), (X, y)], (Xb, y), FLConfig(rounds=1, backend="plain"))


def test_labels_out_of_range(cnn3):
    X, y = _data()
    bad = y.copy()
    bad[0] = 7
    with pytest.raises(ValueError, match="label 7 is out of range for a model with 3 outputs"):
        run(cnn3, [(X, y), (X, bad)], (X, y), FLConfig(rounds=1, backend="plain"))
    with pytest.raises(ValueError, match="class labels must be integers"):
        run(cnn3, [(X, y + 0.5), (X, y)], (X, y), FLConfig(rounds=1, backend="plain"))


def test_mismatched_shapes_and_lengths(cnn3):
    X, y = _data()
    with pytest.raises(ValueError, match="client 0: X has 20 rows but y has 19"):
        run(cnn3, [(X, y[:-1])], (X, y), FLConfig(rounds=1, backend="plain"))
    X2, _ = _data(d=(1, 9, 9))
    with pytest.raises(ValueError, match="client 1: examples have shape"):
        run(cnn3, [(X, y), (X2, y)], (X, y), FLConfig(rounds=1, backend="plain"))


def test_model_output_does_not_fit_task(cnn3):
    X, y = _data()
    with pytest.raises(ValueError, match="regression needs one output per example"):
        run(cnn3, [(X, y.astype(float))] * 2, (X, y.astype(float)), FLConfig(rounds=1, backend="plain"),
            task="regression")
    with pytest.raises(ValueError, match="anomaly detection needs a reconstruction"):
        run(cnn3, [(X, y % 2)] * 2, (X, y % 2), FLConfig(rounds=1, backend="plain"), task="anomaly")
    with pytest.raises(ValueError, match="model cannot run on inputs"):
        run(lambda: torch.nn.Linear(5, 3), [(X, y)] * 2, (X, y), FLConfig(rounds=1, backend="plain"))
    with pytest.raises(TypeError, match="must return a torch.nn.Module"):
        run(lambda: "model", [(X, y)] * 2, (X, y), FLConfig(rounds=1, backend="plain"))


def test_incompatible_combinations(cnn3):
    X, y = _data()
    clients = [(X, y)] * 3
    with pytest.raises(ValueError, match="median.*masking backend hides.*multikrum"):
        run(cnn3, clients, (X, y), FLConfig(rounds=1, backend="masking", aggregator="median"))
    with pytest.raises(ValueError, match="ckks"):
        run(cnn3, clients, (X, y), FLConfig(rounds=1, backend="ckks", aggregator="krum"))
    with pytest.raises(ValueError, match="at least 2 clients"):
        run(cnn3, clients[:1], (X, y), FLConfig(rounds=1, backend="masking"))
    with pytest.raises(ValueError, match="clients_per_round=5 but there are only 3"):
        run(cnn3, clients, (X, y), FLConfig(rounds=1, backend="plain", clients_per_round=5))

    class BN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm2d(1)
            self.fc = torch.nn.Linear(64, 3)

        def forward(self, x):
            return self.fc(torch.flatten(self.bn(x), 1))

    with pytest.raises(ValueError, match="BatchNorm2d"):
        run(BN, clients, (X, y), FLConfig(rounds=1, backend="plain", dp_epsilon=1.0))


def test_wrong_kinds_of_objects(cnn3):
    X, y = _data()
    with pytest.raises(TypeError, match="list of \\(X, y\\) pairs"):
        run(cnn3, {0: (X, y)}, (X, y), FLConfig(rounds=1))
    with pytest.raises(ValueError, match="no clients"):
        run(cnn3, [], (X, y), FLConfig(rounds=1))
    with pytest.raises(ValueError, match="X must be numeric"):
        run(cnn3, [(np.array([["a"] * 3] * 20), y)] * 2, (X, y), FLConfig(rounds=1))
    with pytest.raises(ValueError, match="unknown task"):
        run(cnn3, [(X, y)] * 2, (X, y), FLConfig(rounds=1), task="clustering")
    with pytest.raises(TypeError, match="cfg must be an FLConfig"):
        run(cnn3, [(X, y)] * 2, (X, y), {"rounds": 1})
