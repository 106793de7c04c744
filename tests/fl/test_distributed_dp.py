"""Distributed DP in fl.run (issue 16): discrete Gaussian shares summed under masking /
SPDZ; the server never holds a noise-free sum; accounting with the surviving noise."""

import numpy as np
import pytest

from fl import FLConfig, run
from privcrypt.rng import DeterministicRandom


@pytest.fixture(scope="module")
def mlp():
    from fl.models import MLP

    return lambda: MLP(64, 10, hidden=(16,))


def test_distributed_without_noise_equals_the_plain_clipped_mean(digits_clients, mlp):
    """Noise multiplier ~0: the integer pipeline (rotate, scale, round, mod 2^b, secure sum,
    decode) must give plain FedAvg's clipped mean up to the rounding of the encoding."""
    clients, test = digits_clients
    from fl.client import get_vector

    base = dict(rounds=1, lr=0.01, optimizer="adam", clip_norm=1.0, dp_epsilon=1e300, dp_unit="client",
                dp_noise_multiplier=1e-5, dp_min_survivors=10)
    h_c = run(mlp, clients, test, FLConfig(backend="plain", dp_mode="central", **base), rng=DeterministicRandom(0))
    for backend in ("masking", "spdz"):
        h_d = run(mlp, clients, test, FLConfig(backend=backend, dp_mode="distributed", **base),
                  rng=DeterministicRandom(0))
        diff = np.abs(get_vector(h_c.model) - get_vector(h_d.model))
        gamma = h_d.final["ddg_gamma"]
        # each client's coordinate is rounded by < 1/gamma; the sum / 10 moves < 1/gamma
        assert diff.max() < 2.0 / gamma
        assert h_d.final["server_sees_noise_free_sum"] is False


def test_distributed_dp_reports_epsilon_within_budget_and_survived_noise(digits_clients, mlp):
    clients, test = digits_clients
    cfg = FLConfig(rounds=2, backend="masking", dp_epsilon=4.0, dp_unit="client", dp_mode="distributed",
                   clip_norm=1.0, dp_min_survivors=6, dropout=0.2, seed=3)
    h = run(mlp, clients, test, cfg)
    assert 0 < h.final["epsilon"] <= 4.0
    assert h.final["suspected_wraps"] == 0
    done = [r for r in h.rounds if not r["aborted"]]
    assert done and all("noise_std_survived" in r for r in done)


def test_fewer_survivors_cost_more_epsilon(digits_clients, mlp):
    """A round accounted with the noise that survived: 6 survivors spend more than 10."""
    clients, test = digits_clients
    from fl.privacy import DistributedDP

    cfg = FLConfig(rounds=3, backend="masking", dp_epsilon=4.0, dp_unit="client", dp_mode="distributed",
                   clip_norm=1.0, dp_min_survivors=6)
    a, b = DistributedDP(cfg, 1000, 10, 10, 1.0), DistributedDP(cfg, 1000, 10, 10, 1.0)
    a.record(range(10), 10)
    b.record(range(10), 6)
    assert b.epsilon > a.epsilon > 0


def test_distributed_needs_an_integer_summing_backend(digits_clients, mlp):
    clients, test = digits_clients
    with pytest.raises(ValueError, match="masking or spdz"):
        run(mlp, clients, test, FLConfig(rounds=1, backend="ckks", dp_epsilon=2.0, dp_unit="client",
                                         dp_mode="distributed"))
