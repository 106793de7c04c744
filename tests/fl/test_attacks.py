"""fl.attacks: each attack against a hand-computed example, and the headline effect on the
aggregation rules (numpy only)."""

import numpy as np
import pytest

from fl.aggregation import coordinate_median, krum, weighted_mean
from fl.attacks import ATTACKS, ByzantineAttack, alie_z, make_attack
from privcrypt.rng import DeterministicRandom

OWN = np.array([1.0, -2.0])
HONEST = np.array([[1.0, 0.0], [3.0, 2.0]])  # mean [2, 1], std [1, 1], norms 1 and sqrt(13)


def test_model_poisoning_by_hand():
    assert make_attack("signflip").corrupt(OWN, HONEST).tolist() == [-10.0, 20.0]
    assert make_attack("signflip", 3).corrupt(OWN, HONEST).tolist() == [-3.0, 6.0]
    assert make_attack("scaling").corrupt(OWN, HONEST).tolist() == [10.0, -20.0]
    assert make_attack("ipm").corrupt(OWN, HONEST).tolist() == [-1.0, -0.5]  # -0.5·[2, 1]
    assert make_attack("ipm", 2).corrupt(OWN, HONEST).tolist() == [-4.0, -2.0]
    assert make_attack("alie", 1.5).corrupt(OWN, HONEST).tolist() == [0.5, -0.5]  # μ - 1.5σ
    for name in ATTACKS:
        a = make_attack(name)
        assert isinstance(a, ByzantineAttack) and a.poisons_data == (name == "labelflip")
    before = OWN.copy()
    make_attack("signflip").corrupt(OWN, HONEST)
    assert OWN.tolist() == before.tolist()  # inputs untouched


def test_alie_default_z_is_the_papers_z_max():
    # Baruch et al. 2019, Alg. 3: s = floor(n/2 + 1) - f, z = Phi^-1((n - s)/n).
    # n = 10, f = 2: s = 4, Phi^-1(0.6) = 0.2533471
    assert alie_z(10, 2) == pytest.approx(0.2533471, abs=1e-6)
    # n = 50, f = 12: s = 14, Phi^-1(0.72) = 0.5828415
    assert alie_z(50, 12) == pytest.approx(0.5828415, abs=1e-6)
    a = make_attack("alie", n_byzantine=2)
    honest = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [7.0]])  # 8 + 2 = 10
    assert a.corrupt(np.zeros(1), honest)[0] == pytest.approx(3.5 - 0.2533471 * np.std(honest), abs=1e-6)
    with pytest.raises(ValueError):
        alie_z(3, 3)


def test_gaussian_has_the_honest_norm_times_s_and_uses_privcrypt_rng():
    a = make_attack("gaussian", 2.0, rng=DeterministicRandom(0))
    out = a.corrupt(OWN, HONEST)
    assert np.linalg.norm(out) == pytest.approx(2.0 * (1 + np.sqrt(13)) / 2)
    b = make_attack("gaussian", 2.0, rng=DeterministicRandom(0))
    assert b.corrupt(OWN, HONEST).tolist() == out.tolist()  # reproducible from the seed
    assert a.corrupt(OWN, HONEST).tolist() != out.tolist()  # a fresh direction each round


def test_labelflip_permutes_labels_and_leaves_the_update():
    a = make_attack("labelflip")
    y = np.array([0, 1, 2, 9, 3])
    assert a.poison_labels(y, 10).tolist() == [9, 8, 7, 0, 6]
    assert sorted(a.poison_labels(np.arange(10), 10).tolist()) == list(range(10))  # a permutation
    assert a.corrupt(OWN, HONEST).tolist() == OWN.tolist()
    assert make_attack("signflip").poison_labels(y, 10).tolist() == y.tolist()
    with pytest.raises(ValueError):
        a.poison_labels(np.array([10]), 10)


def test_errors():
    with pytest.raises(ValueError, match="unknown attack"):
        make_attack("backdoor")
    with pytest.raises(ValueError):
        make_attack("signflip", float("nan"))
    with pytest.raises(ValueError):
        make_attack("signflip").corrupt(OWN, np.zeros((2, 3)))
    assert make_attack("ipm").corrupt(OWN, np.zeros((0, 2))).tolist() == [-0.5, 1.0]  # own as μ


def _round(attack, n=10, f=2, d=20, seed=0):
    rng = np.random.default_rng(seed)  # data, not secrets
    true = np.ones(d)
    honest = true + 0.3 * rng.normal(size=(n - f, d))
    bad = np.array([attack.corrupt(honest[i], honest) for i in range(f)])
    return np.vstack([honest, bad]), true


def test_signflip_breaks_the_mean_not_median_or_krum():
    x, true = _round(make_attack("signflip"))
    assert np.dot(weighted_mean(x), true) < 0  # the mean points the wrong way
    assert np.dot(coordinate_median(x), true) > 0.5 * true @ true
    assert np.dot(krum(x, 2)[0], true) > 0.5 * true @ true


def test_alie_is_accepted_by_krum():
    """ALIE stays inside the honest spread: Krum selects an attacker's update."""
    x, true = _round(make_attack("alie", 1.0, n_byzantine=2), d=200)
    assert set(krum(x, 2)[1].tolist()) & {8, 9}
