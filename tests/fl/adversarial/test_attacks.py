"""Every attack: output in the input range and inside its norm budget, the model's modes
and parameter gradients untouched, argument errors, targeted use, SimBA's query count."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fl.adversarial import (BIM, CWL2, FGSM, JSMA, PGD, Attack, DeepFool, SimBA, attack_names,
                            batch_norms, make_attack)
from fl.adversarial.simba import dct_matrix

torch.set_num_threads(1)

ATTACKS = {
    "fgsm": lambda: FGSM(0.1),
    "bim": lambda: BIM(0.1, steps=5),
    "pgd": lambda: PGD(0.1, steps=5, generator=0),
    "pgd_l2": lambda: PGD(1.0, norm="l2", steps=5, generator=0),
    "jsma": lambda: JSMA(gamma=0.2, generator=0),
    "jsma_decrease": lambda: JSMA(theta=-1.0, gamma=0.2, generator=0),
    "cw2": lambda: CWL2(steps=20, binary_search_steps=3),
    "cw2_eps": lambda: CWL2(steps=20, binary_search_steps=3, eps=0.5),
    "deepfool": lambda: DeepFool(),
    "deepfool_eps": lambda: DeepFool(eps=0.3),
    "simba": lambda: SimBA(0.3, generator=0),
    "simba_dct": lambda: SimBA(0.3, basis="dct", eps=1.0, generator=0),
}


def check_budget(atk: Attack, x: torch.Tensor, xa: torch.Tensor, lo: float = 0.0, hi: float = 1.0):
    """The invariants every attack promises, with float32 slack only."""
    assert xa.shape == x.shape and xa.dtype == x.dtype and not xa.requires_grad
    assert float(xa.min()) >= lo and float(xa.max()) <= hi
    d = xa - x
    n_feat = x[0].numel()
    if atk.norm == "linf":
        assert float(batch_norms(d, "linf").max()) <= atk.eps + 1e-6
    elif atk.norm == "l2" and atk.eps is not None:
        assert float(batch_norms(d, "l2").max()) <= atk.eps + 1e-5
    if isinstance(atk, JSMA):
        assert int(batch_norms(d, "l0").max()) <= atk.max_changed(n_feat) <= atk.gamma * n_feat
    if isinstance(atk, SimBA) and atk.basis == "pixel":
        iters = atk.max_iters or n_feat
        assert float(batch_norms(d, "linf").max()) <= atk.step + 1e-6
        assert float(batch_norms(d, "l2").max()) <= atk.step * math.sqrt(iters) + 1e-5
    # the attack kept its own promises: the base class had nothing to correct
    assert atk.last_correction <= 1e-6


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_budget_and_range_cnn(name, cnn, digits):
    _, _, xte, yte = digits
    x, y = xte[:40], yte[:40]
    atk = ATTACKS[name]()
    check_budget(atk, x, atk(cnn, x, y))


@pytest.mark.parametrize("name", ["fgsm", "pgd_l2", "jsma", "cw2", "deepfool", "simba"])
def test_budget_and_range_vectors(name, mlp, digits):
    _, _, xte, yte = digits
    x, y = xte[:30].flatten(1), yte[:30]
    atk = ATTACKS[name]()
    check_budget(atk, x, atk(mlp, x, y))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_other_input_range(name, cnn, digits):
    """Inputs in [-1, 1]: the attack keeps to that range, not to [0, 1]."""
    _, _, xte, yte = digits
    x, y = xte[:20] * 2 - 1, yte[:20]

    class Shifted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = cnn

        def forward(self, z):
            return self.inner((z + 1) / 2)

    atk = ATTACKS[name]()
    atk.lo, atk.hi = -1.0, 1.0
    xa = atk(Shifted(), x, y)
    check_budget(atk, x, xa, -1.0, 1.0)
    assert float(xa.min()) < 0.0  # it really used the negative half (no silent [0, 1] clip)


@settings(max_examples=25)
@given(eps=st.floats(0.0, 0.6), kind=st.sampled_from(["fgsm", "bim", "pgd", "pgd_l2"]), seed=st.integers(0, 2**16))
def test_budget_hypothesis(eps, kind, seed):
    """Any eps: the L-inf / L2 budget and the range hold (random model, random inputs)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    x = torch.rand(8, 12)
    x[0] = 0.0
    x[1] = 1.0  # corners: the clip to the range must bite
    y = torch.randint(0, 4, (8,))
    eps_used = eps * 5 if kind == "pgd_l2" else eps
    atk = make_attack(kind, eps=eps_used, **({} if kind == "fgsm" else {"steps": 3}))
    xa = atk(model, x, y)
    check_budget(atk, x, xa)
    if eps == 0.0:
        assert torch.equal(xa, x)


def test_modes_and_grads_restored(mlp, digits):
    """Eval mode during the attack; each module's own mode and the parameter grads after."""
    _, _, xte, yte = digits
    model = torch.nn.Sequential(mlp, torch.nn.Dropout(0.5))
    model.train()
    model[0][0].eval()  # a submodule deliberately in eval mode
    seen = []
    h = model.register_forward_pre_hook(lambda m, a: seen.append(m.training))
    for p in model.parameters():
        p.grad = None
    for name in ATTACKS:
        if name == "simba_dct":  # images only
            continue
        ATTACKS[name]()(model, xte[:8].flatten(1), yte[:8])
    h.remove()
    assert seen and not any(seen)
    assert model.training and model[1].training and not model[0][0].training
    assert all(p.grad is None for p in model.parameters())
    mlp.eval()  # the fixture is shared: put it back as it was


def test_mode_restored_when_attack_raises(mlp):
    mlp.train()

    class Boom(Attack):
        def _perturb(self, model, x, y):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        Boom(eps=0.1)(mlp, torch.rand(2, 64), torch.tensor([0, 1]))
    assert mlp.training
    mlp.eval()


def test_errors(mlp):
    x, y = torch.rand(4, 64), torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match="outside the declared input range"):
        FGSM(0.1)(mlp, x + 1.5, y)
    with pytest.raises(ValueError, match="NaN"):
        FGSM(0.1)(mlp, x * float("nan"), y)
    with pytest.raises(ValueError, match="labels"):
        FGSM(0.1)(mlp, x, y[:3])
    with pytest.raises(TypeError):
        FGSM(0.1)(mlp, x.numpy(), y)
    with pytest.raises(ValueError, match="does not take a target"):
        DeepFool()(mlp, x, y, target=y)
    with pytest.raises(ValueError, match="unknown attack"):
        make_attack("nope")
    with pytest.raises(TypeError):
        make_attack("fgsm", steps=3)
    for bad in (lambda: FGSM(-0.1), lambda: FGSM(float("inf")), lambda: FGSM(0.1, lo=1, hi=0),
                lambda: PGD(0.1, norm="l1"), lambda: PGD(0.1, steps=0), lambda: JSMA(gamma=1.5),
                lambda: JSMA(theta=0), lambda: JSMA(target_mode="x"), lambda: CWL2(c=0),
                lambda: SimBA(basis="fft"), lambda: SimBA(step=0), lambda: DeepFool(candidates=1)):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(ValueError, match="DCT"):
        SimBA(basis="dct")(mlp, x, y)
    assert FGSM(0.1)(mlp, x[:0], y[:0]).shape == (0, 64)


def test_make_attack_names():
    for n in attack_names():
        assert make_attack(n).name == n
    assert isinstance(make_attack("PGD-L2"), PGD) and make_attack("pgd-l2").norm == "l2"
    assert isinstance(make_attack("cw"), CWL2)
    for n in attack_names():
        doc = type(make_attack(n)).__doc__
        assert "Threat model" in doc


@pytest.mark.parametrize("factory", [lambda: JSMA(gamma=0.3), lambda: PGD(0.3, steps=10, generator=0),
                                     lambda: CWL2(),
                                     lambda: SimBA(0.5, generator=0)])
def test_targeted(factory, cnn, digits):
    """With target=, the attack drives most examples to the chosen class."""
    _, _, xte, yte = digits
    x, y = xte[:40], yte[:40]
    target = (y + 3) % 10
    xa = factory()(cnn, x, y, target=target)
    with torch.no_grad():
        hit = (cnn(xa).argmax(1) == target).float().mean()
    assert hit >= 0.5


def test_jsma_decrease_only_lowers_features(cnn, digits):
    """theta < 0: features only move down, each by at most |theta| (hi - lo)."""
    _, _, xte, yte = digits
    x, y = xte[:20], yte[:20]
    xa = JSMA(theta=-0.5, gamma=0.2, generator=0)(cnn, x, y)
    d = xa - x
    assert float(d.max()) <= 0.0 and float(d.min()) >= -0.5 - 1e-6 and float(d.min()) < 0


def test_jsma_target_modes(cnn, digits):
    _, _, xte, yte = digits
    x, y = xte[:20], yte[:20]
    a = JSMA(gamma=0.1, target_mode="next")
    a(cnn, x, y)
    assert torch.equal(a.last_targets, (y + 1) % 10)
    for mode in ("random", "least_likely"):
        a = JSMA(gamma=0.1, target_mode=mode, generator=3)
        a(cnn, x, y)
        assert not (a.last_targets == y).any()


def test_simba_is_query_only_and_counts(cnn, digits):
    """SimBA never asks for a gradient, and last_queries equals the rows the model saw."""
    _, _, xte, yte = digits
    rows = []

    class Oracle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = cnn

        def forward(self, z):
            assert not torch.is_grad_enabled()  # score-only access
            rows.append(z.shape[0])
            return self.inner(z)

    for basis in ("pixel", "dct"):
        rows.clear()
        atk = SimBA(0.3, basis=basis, max_iters=40, generator=0)
        atk(Oracle(), xte[:25], yte[:25])
        assert atk.last_queries.shape == (25,)
        assert int(atk.last_queries.sum()) == sum(rows) == atk.total_queries
        assert int(atk.last_queries.min()) >= 1 and int(atk.last_queries.max()) <= 1 + 2 * 40


def test_dct_matrix_orthonormal():
    d = dct_matrix(8, torch.float64)
    assert torch.allclose(d @ d.T, torch.eye(8, dtype=torch.float64), atol=1e-12)
    scipy_fft = pytest.importorskip("scipy.fft")
    import numpy as np

    # known answer: scipy's orthonormal DCT-II of the identity is D^T
    ref = scipy_fft.dct(np.eye(8), type=2, norm="ortho", axis=0)
    assert np.allclose(d.numpy(), ref, atol=1e-12)
