"""Each attack raises the loss and lowers the accuracy of an undefended model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fl.adversarial import BIM, CWL2, FGSM, JSMA, PGD, DeepFool, SimBA

torch.set_num_threads(1)

ATTACKS = {
    "fgsm": lambda: FGSM(0.1),
    "bim": lambda: BIM(0.1, steps=5),
    "pgd": lambda: PGD(0.1, steps=5, generator=0),
    "pgd_l2": lambda: PGD(1.0, norm="l2", steps=5, generator=0),
    "jsma": lambda: JSMA(gamma=0.2, generator=0),
    "cw2": lambda: CWL2(),
    "deepfool": lambda: DeepFool(),
    "simba": lambda: SimBA(0.3, generator=0),
    "simba_dct": lambda: SimBA(0.3, basis="dct", generator=0),
}


@torch.no_grad()
def _loss_acc(model, x, y):
    out = model(x)
    return float(F.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_hurts_undefended_cnn(name, cnn, digits):
    _, _, xte, yte = digits
    x, y = xte[:120], yte[:120]
    loss0, acc0 = _loss_acc(cnn, x, y)
    assert acc0 > 0.85  # the fixture really is a trained model
    xa = ATTACKS[name]()(cnn, x, y)
    loss1, acc1 = _loss_acc(cnn, xa, y)
    assert loss1 > loss0 + 0.5
    assert acc1 < acc0 - 0.25


@pytest.mark.parametrize("name", ["fgsm", "pgd_l2", "jsma", "cw2", "deepfool", "simba"])
def test_attack_hurts_undefended_mlp(name, mlp, digits):
    _, _, xte, yte = digits
    x, y = xte[:120].flatten(1), yte[:120]
    loss0, acc0 = _loss_acc(mlp, x, y)
    assert acc0 > 0.85
    xa = ATTACKS[name]()(mlp, x, y)
    loss1, acc1 = _loss_acc(mlp, xa, y)
    assert loss1 > loss0 + 0.5
    assert acc1 < acc0 - 0.25


def test_minimal_norm_attacks_are_small(cnn, digits):
    """DeepFool and CW-L2 look for the nearest boundary: their mean L2 is well below that
    of SimBA's random search and of a budgeted L2 PGD at eps = 2 that also succeeds."""
    _, _, xte, yte = digits
    x, y = xte[:60], yte[:60]
    l2 = {}
    for name, atk in {"deepfool": DeepFool(), "cw2": CWL2(), "pgd": PGD(2.0, norm="l2", steps=10, generator=0)}.items():
        l2[name] = float((atk(cnn, x, y) - x).flatten(1).norm(dim=1).mean())
    assert l2["deepfool"] < 0.75 * l2["pgd"]
    assert l2["cw2"] < 0.75 * l2["pgd"]


def test_stronger_budget_hurts_more(cnn, digits):
    """Monotone in eps on this model: PGD at 0.2 is at least as strong as at 0.05."""
    _, _, xte, yte = digits
    x, y = xte[:120], yte[:120]
    accs = [_loss_acc(cnn, PGD(e, steps=10, generator=0)(cnn, x, y), y)[1] for e in (0.05, 0.2)]
    assert accs[1] < accs[0]
