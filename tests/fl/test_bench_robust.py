"""`privcrypt bench robust --quick --json`: same selection on shares as in the clear, the
hook for the FL part, and --quick never writes benchmarks/results."""

import json

from privcrypt.cli import main


def test_bench_robust_quick(capsys, monkeypatch, tmp_path):
    import benchmarks.harness as harness

    monkeypatch.setattr(harness, "RESULTS_DIR", tmp_path)
    assert main(["bench", "robust", "--quick", "--json", "--no-fl", "--sizes", "5x2000,7x500"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["benchmark"] == "robust" and data["quick"]
    assert data["all_same_selection"] is True
    rows = data["krum_on_shares"]
    assert [(r["clients"], r["range_proof"]) for r in rows] == [(5, False), (7, False), (5, True), (7, True)]
    for r in rows:
        assert r["attackers_selected"] == [] and r["max_abs_err_vs_plain_krum"] == 0.0
        assert r["up_vs_plain"] > 2.9  # one share per compute party (headers aside)
        if not r["range_proof"]:  # the Gram product opens K·d elements, pairwise 2·K(K-1)/2·d
            assert r["gram_equals_pairwise"] is True
            assert r["pairwise_opened"] > r["gram_opened"]
    syn = {(r["aggregator"], r["attack"], r["byzantine"]): r for r in data["synthetic_least_squares"]}
    assert syn[("fedavg", "signflip", 2)]["rel_error"] is None or syn[("fedavg", "signflip", 2)]["rel_error"] > 10
    assert syn[("median", "signflip", 2)]["rel_error"] < 0.5
    assert syn[("bulyan", "signflip", 2)]["error"]  # n = 10 < 4f + 3
    assert "fl_accuracy_under_attack" not in data  # --no-fl
    assert list(tmp_path.iterdir()) == []  # --quick wrote nothing


def test_accuracy_under_attack_hook():
    from benchmarks.bench_robust import accuracy_under_attack

    seen = []

    def fake(cfg):
        seen.append(cfg)
        if cfg["aggregator"] == "krum" and cfg["byzantine"] == 3:
            raise ValueError("Krum with f=3 needs n >= 9")
        return {"accuracy": 0.9}

    rows = accuracy_under_attack(fake, aggregators=["fedavg", "krum"], attacks=["signflip", "alie"],
                                 byzantine=[0, 3], base={"dataset": "digits"})
    assert len(rows) == 2 * (1 + 2)
    assert rows[0] == {"dataset": "digits", "aggregator": "fedavg", "attack": "none", "byzantine": 0, "accuracy": 0.9}
    assert rows[-1]["error"].startswith("Krum")
