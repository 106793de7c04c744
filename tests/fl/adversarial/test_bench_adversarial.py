"""The adversarial benchmark's JSON shape on a tiny in-process run (no timing assertions;
the numbers live in benchmarks/results and docs/adversarial.md)."""

from __future__ import annotations

import copy
import types

import torch

torch.set_num_threads(1)


def test_bench_adversarial_tiny_run():
    from reporting.bench_cli import load_bench

    bench = load_bench("adversarial")
    seen = {}

    def fl_hook(base, devices, *, alpha, epochs, batch_size, seed):
        seen.update(n=len(devices), attacks=[d["attack"] for d in devices], alpha=alpha)
        assert all(d["x_adv"].shape == d["x"].shape for d in devices)
        return copy.deepcopy(base)

    args = types.SimpleNamespace(quick=True, dataset="digits", alpha=0.5, devices=6, per_device=20,
                                 base_epochs=3, retrain_epochs=1, n_test=40, n_adaptive=12, eval="both",
                                 reference_fl=True, seed=0, json=True, no_write=False)
    out = bench.run(args, fl_adv_train=fl_hook, fl_hybrid=None)
    assert args.no_write is True  # --quick never writes benchmarks/results
    assert seen == {"n": 6, "attacks": ["fgsm", "fgsm", "bim", "bim", "jsma", "jsma"], "alpha": 0.5}
    rows = ["None", "FGSM+AdvTrain", "BIM+AdvTrain", "JSMA+AdvTrain", "CW2+AdvTrain", "DeepFool+AdvTrain",
            "ALL+AdvTrain", "FedSim+AdvTrain", "FL+AdvTrain"]
    cols = ["Nature", "FGSM", "BIM", "JSMA", "CW2", "DeepFool", "SimBA"]
    for key in ("models", "models_adaptive"):
        assert list(out[key]) == rows
        for r in out[key].values():
            assert list(r) == cols and all(0.0 <= v <= 1.0 for v in r.values())
    # the hook returned the initial model: its row equals None's
    assert out["models"]["FL+AdvTrain"] == out["models"]["None"]
    assert out["simba_queries_adaptive"]["None"]["total"] >= 12
    assert "| FedSim+AdvTrain |" in out["table_md"]
    assert set(out["success_reduction_vs_none"]) == set(rows) - {"None"}


def test_fda3_through_fl_run_trains_on_the_precomputed_examples():
    """The default FL hook runs fl.run with each device's precomputed adversarial examples:
    the returned model differs from the initial one and keeps its architecture."""
    from reporting.bench_cli import load_bench

    bench = load_bench("adversarial")
    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    g = torch.Generator().manual_seed(0)
    devices = [{"x": torch.rand(12, 1, 8, 8, generator=g), "y": torch.randint(0, 10, (12,), generator=g),
                "x_adv": torch.rand(12, 1, 8, 8, generator=g), "attack": "fgsm"} for _ in range(3)]
    m = bench.fl_adv_train(base, devices, alpha=0.5, epochs=2, batch_size=4, seed=0)
    w0, w1 = base[1].weight, m[1].weight
    assert w1.shape == w0.shape and not torch.equal(w0, w1)
