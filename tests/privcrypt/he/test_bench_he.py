"""`privcrypt bench he --quick --json` runs and reports every field, with nothing but the
JSON object on stdout (no timing assertions: speed lives in benchmarks/results)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_bench_he_quick_json():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "privcrypt", "bench", "he", "--quick", "--json", "--no-write"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    out = json.loads(proc.stdout)  # TenSEAL's C++ warnings must not reach stdout
    names = [r["variant"] for r in out["rows"]]
    assert names == ["tenseal_flare", "ours_default", "ours_compact"]
    ours, compact = out["rows"][1], out["rows"][2]
    assert ours["up_B_per_value"] <= 8.1 and compact["up_B_per_value"] <= 4.1
    assert ours["max_abs_error"] <= ours["error_bound"] <= 1e-6
    assert compact["max_abs_error"] <= compact["error_bound"]
    for key in ("down_B_per_value", "client_encrypt_cpu_s", "server_aggregate_cpu_s", "decrypt_cpu_s",
                "up_B_per_value_ratio", "server_aggregate_cpu_s_ratio"):
        assert key in ours
