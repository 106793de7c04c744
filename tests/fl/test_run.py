"""fl.run end to end on digits: secure backends agree with plain, dropouts, aborts,
reproducibility and the DP budget guard (issue 12's "must show")."""

import numpy as np
import pytest

from fl import FLConfig, History, run
from privcrypt.exceptions import PrivacyBudgetExceeded
from privcrypt.rng import DeterministicRandom


def _vec(model):
    from fl.client import get_vector

    return get_vector(model)


def test_run_returns_history_with_contract_keys(digits_clients, small_cnn):
    clients, test = digits_clients
    h = run(small_cnn, clients, test, FLConfig(rounds=2, backend="plain"), rng=DeterministicRandom(0))
    assert isinstance(h, History)
    assert len(h.rounds) == 2
    for key in ("accuracy", "bytes_up_per_round", "bytes_down_per_round", "seconds_per_round"):
        assert key in h.final
    assert 0.0 <= h.final["accuracy"] <= 1.0
    assert h.final["bytes_up_per_round"] > 0
    assert "epsilon" not in h.final  # no DP, no epsilon


@pytest.mark.parametrize("backend", ["masking", "spdz", "ckks"])
def test_secure_backends_give_the_plain_model_within_their_error(digits_clients, small_cnn, backend):
    """One round: the same local deltas go through the backend; the global model differs
    from plain FedAvg's by at most the backend's declared per-coordinate error."""
    clients, test = digits_clients
    cfg = dict(rounds=1, clip_norm=5.0)
    plain = run(small_cnn, clients, test, FLConfig(backend="plain", **cfg), rng=DeterministicRandom(1))
    sec = run(small_cnn, clients, test, FLConfig(backend=backend, **cfg), rng=DeterministicRandom(1))
    atol = sec.rounds[0]["atol"]
    assert atol is not None and atol > 0
    diff = np.max(np.abs(_vec(plain.model) - _vec(sec.model)))
    assert diff <= atol * (1 + 1e-9)
    assert sec.rounds[0]["backend_clipped"] == 0
    # and the difference is not zero because the backend did nothing: it quantized
    assert backend == "ckks" or diff > 0


def test_three_rounds_masking_tracks_plain_accuracy(digits_clients):
    from fl.models import MLP

    clients, test = digits_clients
    mlp = lambda: MLP(64, 10, hidden=(32,))
    cfg = dict(rounds=3, lr=0.01, local_epochs=2, optimizer="adam")
    a = run(mlp, clients, test, FLConfig(backend="plain", **cfg)).final["accuracy"]
    b = run(mlp, clients, test, FLConfig(backend="masking", **cfg)).final["accuracy"]
    assert a > 0.6  # it learned something
    assert abs(a - b) <= 0.03


def test_same_seed_same_history(digits_clients, small_cnn):
    clients, test = digits_clients
    cfg = FLConfig(rounds=2, backend="masking", clients_per_round=6, dropout=0.2, seed=7)
    h1 = run(small_cnn, clients, test, cfg, rng=DeterministicRandom(3))
    h2 = run(small_cnn, clients, test, cfg, rng=DeterministicRandom(3))
    strip = lambda h: [{k: v for k, v in r.items() if "seconds" not in k and "cpu" not in k} for r in h.rounds]
    assert strip(h1) == strip(h2)
    assert np.array_equal(_vec(h1.model), _vec(h2.model))
    h3 = run(small_cnn, clients, test, FLConfig(rounds=2, backend="masking", clients_per_round=6, dropout=0.2, seed=8),
             rng=DeterministicRandom(3))
    assert strip(h3) != strip(h1)


def test_thirty_percent_dropout_completes_with_the_survivors(digits_clients, small_cnn):
    clients, test = digits_clients
    h = run(small_cnn, clients, test, FLConfig(rounds=4, backend="masking", dropout=0.3, seed=2))
    completed_with_drops = 0
    for r in h.rounds:
        if r["aborted"]:  # only when more dropped than the threshold tolerates (t = 4 of 10)
            assert len(r["participants"]) - len(r["dropped"]) < 5, r["abort_reason"]
            continue
        assert set(r["survivors"]) == set(r["participants"]) - set(r["dropped"])
        completed_with_drops += bool(r["dropped"])
    assert completed_with_drops >= 2


def test_aborted_round_leaves_the_model_unchanged(digits_clients, small_cnn):
    """Two clients, one drops: the masking round cannot reach min_clients=2 and aborts;
    the model after the run is exactly the initial model."""
    clients, test = digits_clients
    import torch
    torch.manual_seed(0)
    initial = _vec(small_cnn())
    cfg = FLConfig(rounds=2, backend="masking", dropout=0.9, seed=0)
    h = run(small_cnn, clients[:2], test, cfg)
    aborted = [r for r in h.rounds if r["aborted"]]
    assert aborted, "with 90 % dropout of 2 clients some round must abort"
    assert all("abort_reason" in r for r in aborted)
    if h.final["rounds_completed"] == 0:
        assert np.array_equal(_vec(h.model), initial)


def test_budget_guard_refuses_the_overspending_round(digits_clients, small_cnn):
    clients, test = digits_clients
    cfg = FLConfig(rounds=50, backend="plain", dp_epsilon=1.0, dp_unit="client", dp_mode="central",
                   dp_noise_multiplier=10.0, clip_norm=1.0)
    with pytest.raises(PrivacyBudgetExceeded, match="round") as info:
        run(small_cnn, clients, test, cfg)
    h = info.value.history
    assert 0 < len(h.rounds) < 50
    assert h.final["epsilon"] <= 1.0
    # one more round would have overspent
    from privcrypt.dp import compute_epsilon
    assert compute_epsilon(10.0, 1.0, len(h.rounds) + 1, 1e-5) > 1.0
    assert compute_epsilon(10.0, 1.0, len(h.rounds), 1e-5) <= 1.0


def test_calibrated_dp_ends_within_budget(digits_clients, small_cnn):
    clients, test = digits_clients
    for unit in ("example", "client"):
        h = run(small_cnn, clients[:4], test, FLConfig(rounds=2, backend="plain", dp_epsilon=2.0, dp_unit=unit))
        assert 0 < h.final["epsilon"] <= 2.0
        assert h.rounds[-1]["epsilon"] == h.final["epsilon"]
        assert h.rounds[0]["epsilon"] < h.rounds[1]["epsilon"]


def test_history_saves_strict_json_csv_and_plot(digits_clients, small_cnn, tmp_path):
    import json

    clients, test = digits_clients
    h = run(small_cnn, clients[:3], test, FLConfig(rounds=2, backend="plain"))
    files = h.save(tmp_path / "out")
    names = sorted(p.split("/")[-1] for p in files)
    assert names == ["curves.png", "history.json", "rounds.csv"]
    json.loads((tmp_path / "out" / "history.json").read_text(),
               parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
