"""Robust aggregation inside fl.run (issue 15): 2 of 10 clients send -10x their update.
FedAvg collapses; the median and Krum (in the clear and on SPDZ shares) keep the model;
reputation excludes the attackers."""

import pytest

from fl import FLConfig, run
from privcrypt.rng import DeterministicRandom


@pytest.fixture(scope="module")
def mlp():
    from fl.models import MLP

    return lambda: MLP(64, 10, hidden=(32,))


BASE = dict(rounds=4, lr=0.01, local_epochs=2, optimizer="adam", byzantine=2, byzantine_f=2,
            attack="signflip", attack_scale=10.0, clip_norm=50.0)


@pytest.fixture(scope="module")
def results(digits_clients, mlp):
    clients, test = digits_clients
    out = {}
    for name, kw in {"fedavg": dict(backend="plain"), "median": dict(backend="plain", aggregator="median"),
                     "krum": dict(backend="plain", aggregator="krum"),
                     "clean": dict(backend="plain", byzantine=0, attack=None)}.items():
        out[name] = run(mlp, clients, test, FLConfig(**{**BASE, **kw}), rng=DeterministicRandom(0))
    return out


def test_signflip_breaks_fedavg_but_not_median_or_krum(results):
    acc = {k: h.final["accuracy"] for k, h in results.items()}
    assert acc["clean"] > 0.7
    assert acc["fedavg"] < acc["clean"] - 0.3          # the attack works on the mean
    assert acc["median"] > acc["clean"] - 0.1          # and not on the robust rules
    assert acc["krum"] > acc["clean"] - 0.15
    attackers = set(results["krum"].final["attackers"])
    assert len(attackers) == 2
    for r in results["krum"].rounds:                    # Krum never picks an attacker
        assert not set(r["selected"]) & attackers


def test_krum_on_spdz_shares_selects_like_plaintext_krum(digits_clients, mlp):
    clients, test = digits_clients
    plain = run(mlp, clients, test, FLConfig(**{**BASE, "rounds": 2, "backend": "plain", "aggregator": "krum"}),
                rng=DeterministicRandom(1))
    secure = run(mlp, clients, test, FLConfig(**{**BASE, "rounds": 2, "backend": "spdz", "aggregator": "krum",
                                                 # plain Krum outputs one client's update: explicit opt-in
                                                 "backend_params": {"clip": 50.0, "reveal_individual": True}}),
                 rng=DeterministicRandom(1))
    assert [r["selected"] for r in plain.rounds] == [r["selected"] for r in secure.rounds]
    assert abs(plain.final["accuracy"] - secure.final["accuracy"]) < 0.02


def test_reputation_excludes_persistent_attackers(digits_clients, mlp):
    clients, test = digits_clients
    h = run(mlp, clients, test, FLConfig(**{**BASE, "rounds": 6, "aggregator": "median", "backend": "plain",
                                            "reputation": True}), rng=DeterministicRandom(2))
    bad = set(h.final["attackers"])
    assert set(h.final["excluded"]) == bad            # precision and recall 1
    first = next(r["round"] for r in h.rounds if set(r.get("excluded", ())) == bad)
    assert first < 6
    for r in h.rounds[first:]:                          # excluded clients are no longer asked
        assert not set(r["participants"]) & bad


def test_robust_rule_with_masking_names_the_secure_alternatives(digits_clients, mlp):
    clients, test = digits_clients
    with pytest.raises(ValueError, match="spdz with --aggregator krum or multikrum"):
        run(mlp, clients, test, FLConfig(rounds=1, backend="masking", aggregator="krum"))
    with pytest.raises(ValueError, match="reputation"):
        run(mlp, clients, test, FLConfig(rounds=1, backend="ckks", reputation=True))
