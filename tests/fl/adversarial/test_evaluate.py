"""evaluate_robustness: the numbers it reports, checked on attacks whose effect is known."""

from __future__ import annotations

import pytest
import torch

from fl.adversarial import Attack, FGSM, SimBA, evaluate_robustness, generate_adversarial, predict

torch.set_num_threads(1)


class Identity(Attack):
    """Returns x unchanged: accuracy under attack == clean accuracy, success rate 0."""

    name = "identity"

    def __init__(self):
        super().__init__(eps=0.0)

    def _perturb(self, model, x, y):
        return x.clone()


class ZeroOut(Attack):
    """Maps every input to zero (an L-inf attack with eps = 1)."""

    name = "zero"

    def __init__(self):
        super().__init__(eps=1.0)

    def _perturb(self, model, x, y):
        return torch.zeros_like(x)


def test_known_answers(cnn, digits):
    _, _, xte, yte = digits
    x, y = xte[:100], yte[:100]
    clean = predict(cnn, x)
    zero_pred = predict(cnn, torch.zeros(1, 1, 8, 8))[0]
    r = evaluate_robustness(cnn, x, y, {"id": Identity(), "zero": ZeroOut()}, batch_size=7)
    acc = float((clean == y).float().mean())
    assert r["n"] == 100 and r["accuracy"]["Nature"] == pytest.approx(acc)
    assert r["accuracy"]["id"] == pytest.approx(acc) and r["success_rate"]["id"] == 0.0
    # every point becomes the zero image: accuracy = share of labels equal to its class
    assert r["accuracy"]["zero"] == pytest.approx(float((y == zero_pred).float().mean()))
    correct = clean == y
    want = float((correct & (y != zero_pred)).sum()) / float(correct.sum())
    assert r["success_rate"]["zero"] == pytest.approx(want)
    assert r["perturbation"]["id"] == {"l2_mean": 0.0, "linf_max": 0.0, "l0_mean": 0.0}
    assert r["queries"] == {}


def test_transfer_and_precomputed(cnn, mlp, digits):
    """craft_on: examples crafted on another model; precomputed sets are evaluated as given."""
    _, _, xte, yte = digits
    x, y = xte[:80], yte[:80]

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = mlp

        def forward(self, z):
            return self.m(z.flatten(1))

    target = Flat()
    xa = generate_adversarial(cnn, x, y, FGSM(0.1), batch_size=16)
    r1 = evaluate_robustness(target, x, y, {"fgsm": FGSM(0.1)}, craft_on=cnn)
    r2 = evaluate_robustness(target, x, y, {}, precomputed={"fgsm": xa})
    assert r1["accuracy"] == r2["accuracy"]
    with pytest.raises(ValueError, match="shape"):
        evaluate_robustness(target, x, y, {}, precomputed={"fgsm": xa[:5]})
    with pytest.raises(ValueError, match="Nature"):
        evaluate_robustness(target, x, y, {"Nature": FGSM(0.1)})
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_robustness(target, x, y, {}, batch_size=0)


def test_simba_queries_reported(cnn, digits):
    _, _, xte, yte = digits
    x, y = xte[:50], yte[:50]
    atk = SimBA(0.3, generator=0)
    r = evaluate_robustness(cnn, x, y, {"simba": atk}, batch_size=20)
    q = r["queries"]["simba"]
    assert atk.last_queries.shape == (50,)  # over all batches, not the last one
    assert q["total"] == int(atk.last_queries.sum()) and q["max"] <= 1 + 2 * 64
    assert q["mean"] >= 1 and q["mean_successful"] is not None
    assert r["success_rate"]["simba"] > 0.5
