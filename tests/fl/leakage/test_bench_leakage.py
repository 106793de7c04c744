"""The leakage benchmark covers the configurations issue 18 asks for (no run here: the
benchmark itself takes a minute; see benchmarks/bench_leakage.py)."""

from benchmarks import bench_leakage


def test_full_run_covers_the_issue_grid():
    keys = {c[0] for c in bench_leakage._inversion_configs(quick=False)}
    for b in ("", "_B8"):
        assert f"plain{b}" in keys
        for backend in ("masking", "spdz", "ckks"):
            for k in (2, 5, 10):
                assert f"{backend}_K{k}{b}" in keys
        for eps in (1, 2, 8):
            assert f"dp_eps_{eps}{b}" in keys and f"dp_client_eps_{eps}{b}" in keys
        assert f"topk_0.1{b}" in keys and f"int8{b}" in keys


def test_quick_run_has_the_top_level_keys():
    keys = {c[0] for c in bench_leakage._inversion_configs(quick=True)}
    assert {"plain", "masking_K10", "spdz_K10", "ckks_K10", "dp_eps_1"} <= keys
