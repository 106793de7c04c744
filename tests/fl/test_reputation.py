"""fl.reputation: the rule by hand, then synthetic multi-round simulations (numpy only) in
which constant attackers are excluded and honest clients are not."""

import numpy as np
import pytest

from fl.aggregation import krum, robust_aggregate
from fl.attacks import make_attack
from fl.reputation import Reputation
from privcrypt.rng import DeterministicRandom


def test_rule_by_hand():
    rep = Reputation()  # decay 0.6, initial 1, down-weight below 0.6, exclude below 0.3 after 3
    u = [[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0]]
    # cosines 1, 1, -1; median 1 -> g = 1, 1, 0; norm ratios 1, 2, 1 (<= 2): no norm penalty
    assert rep.update(1, [4, 5, 6], u, [1.0, 0.0]) == {4: 1.0, 5: 1.0, 6: 0.0}
    assert rep.score(6) == pytest.approx(0.6)  # 0.6·1 + 0.4·0
    rep.update(2, [4, 5, 6], u, [1.0, 0.0])
    assert rep.score(6) == pytest.approx(0.36) and not rep.excluded  # only 2 observations
    assert rep.weights([4, 6, 99]) == pytest.approx({4: 1.0, 6: 0.36 / 0.6, 99: 1.0})
    rep.update(3, [4, 5, 6], u, [1.0, 0.0])
    assert rep.score(6) == pytest.approx(0.216) and rep.excluded == {6}
    assert rep.weights([6])[6] == 0.0
    # scaling: same direction, 10x the median norm -> g = 2/10
    ev = Reputation().update(0, [0, 1, 2], [[1.0, 0.0], [1.0, 0.0], [10.0, 0.0]], [1.0, 0.0])
    assert ev[2] == pytest.approx(0.2) and ev[0] == 1.0
    # validation: losses 1, 1, 4; limit 1.5·1 -> factors 1, 1, 1.5/4
    rep = Reputation(validation=lambda upd: float(upd[1]))
    ev = rep.update(0, [0, 1, 2], [[1.0, 1.0], [1.0, 1.0], [1.0, 4.0]], [1.0, 1.0])
    cos2 = (1 + 4) / (np.sqrt(17) * np.sqrt(2)) / 1.0  # median cosine is 1
    norm2 = 2.0 / np.sqrt(17 / 2)  # norm ratio sqrt(17)/sqrt(2) > 2
    assert ev[2] == pytest.approx(cos2 * norm2 * 1.5 / 4) and ev[0] == pytest.approx(1.0)


def test_distance_metric_and_distances_only():
    rep = Reputation(metric="distance")
    # distances to the aggregate 0, 1, 1, 10: median 1, tolerance 2 -> g = 1, 1, 1, 0.2
    ev = rep.update(0, [0, 1, 2, 3], [[0.0], [1.0], [-1.0], [10.0]], [0.0])
    assert ev == pytest.approx({0: 1.0, 1: 1.0, 2: 1.0, 3: 0.2})
    # from squared distances and a selection only (what spdz-krum opens): selected {0, 1}
    d = np.array([[0, 1, 1, 100], [1, 0, 4, 81], [1, 4, 0, 121], [100, 81, 121, 0]], dtype=float)
    ev = Reputation().update_from_distances(0, [0, 1, 2, 3], d, [0, 1])
    # mean sq. distance to the selected others: 1, 1, 2.5, 90.5 -> sqrt: 1, 1, 1.58, 9.51;
    # median 1.29, tolerance 2 -> min(1, 2.58/δ): 1, 1, 1, 0.2716
    assert ev[0] == ev[1] == ev[2] == 1.0 and ev[3] == pytest.approx(2 * np.median(np.sqrt([1, 1, 2.5, 90.5])) / np.sqrt(90.5))


def test_skipped_round_is_counted_and_rounds_must_advance():
    rep = Reputation()
    assert rep.update(0, [0, 1], [[1.0], [2.0]], [0.0]) == {}
    assert rep.skipped_rounds == 1 and rep.history[-1]["skipped"]
    with pytest.raises(ValueError, match="not after"):
        rep.update(0, [0, 1], [[1.0], [2.0]], [1.0])
    with pytest.raises(ValueError):
        rep.update(1, [0, 0], [[1.0], [2.0]], [1.0])
    with pytest.raises(ValueError):
        Reputation(exclude_below=0.7, down_weight_below=0.5)
    with pytest.raises(TypeError):
        Reputation(validation=3)


def _simulate(attack_name, rule="median", rounds=12, n=10, attackers=(8, 9), d=40, seed=0, **kw):
    """Honest clients: a drifting true direction plus a per-client bias and noise (non-IID);
    the attackers attack every round; the server aggregates the non-excluded clients with the
    robust rule and feeds the aggregate to the reputation."""
    rng = np.random.default_rng(seed)  # data, not secrets
    bias = 0.5 * rng.normal(size=(n, d))
    attack = make_attack(attack_name, rng=DeterministicRandom(seed), n_byzantine=len(attackers))
    rep = Reputation(**kw)
    for r in range(rounds):
        true = np.ones(d) + 0.3 * rng.normal(size=d)
        u = true + bias + 0.5 * rng.normal(size=(n, d))
        honest = u[[i for i in range(n) if i not in attackers]]
        for a in attackers:
            u[a] = attack.corrupt(u[a], honest)
        live = [i for i in range(n) if i not in rep.excluded]
        agg = robust_aggregate(rule, u[live], f=len(attackers) if rule != "fedavg" else 0).mean
        rep.update(r, list(range(n)), u, agg)
    return rep


@pytest.mark.parametrize("attack", ["signflip", "scaling", "gaussian"])
def test_constant_attackers_are_excluded(attack):
    rep = _simulate(attack)
    assert rep.excluded == {8, 9}
    assert all(rep.score(i) > 0.6 for i in range(8))


def test_krum_aggregate_and_distance_metric_also_exclude():
    rep = _simulate("signflip", rule="krum", metric="distance")
    assert rep.excluded == {8, 9}


def test_alie_is_not_caught_a_documented_failure_mode():
    rep = _simulate("alie", rule="krum")
    assert not rep.excluded & {8, 9}


def test_validation_hook_catches_what_geometry_misses():
    """A backdoor-like attacker sends ALIE plus a push along one coordinate: geometrically
    close to the honest clients (not excluded by the distance rule alone), but a server-held
    check of that coordinate (the validation hook) flags it."""
    class Backdoor:
        def corrupt(self, own, honest):
            out = honest.mean(axis=0).copy()
            out[0] += 4.0
            return out

    import fl.attacks.byzantine as B
    orig = B._CLASSES["alie"]
    try:
        B._CLASSES["alie"] = lambda *a, **k: Backdoor()
        plain = _simulate("alie", rule="krum")
        checked = _simulate("alie", rule="krum", validation=lambda upd: 1.0 + max(0.0, upd[0] - 3.0) ** 2)
    finally:
        B._CLASSES["alie"] = orig
    assert not plain.excluded & {8, 9}
    assert checked.excluded == {8, 9}
