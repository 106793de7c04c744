"""`privcrypt bench secagg --quick --json` runs and reports what issue 8 asks for."""

import json

from privcrypt.cli import main


def test_bench_secagg_quick_json(capsys):
    assert main(["bench", "secagg", "--quick", "--no-write", "--json", "--repeat", "1",
                 "--backends", "plain,masking"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["benchmark"] == "secagg" and data["quick"]
    rows = data["rows"]
    assert {r["backend"] for r in rows} == {"plain", "masking"}
    assert {r["dropout"] for r in rows} == {0.0, 0.3}
    for r in rows:
        for key in ("up_per_client", "down_per_client", "client_cpu_s", "server_cpu_s",
                    "up_vs_plain", "server_cpu_vs_plain"):
            assert r[key] is not None
    assert data["targets"]["masking_upload_le_1.3x_q32"] is True


def test_bench_secagg_quick_authenticated_rows(capsys):
    """Issue 13: rows for the authenticated mode with its extra bytes and CPU per client
    and for the server against the unauthenticated mode, measured in the same run."""
    assert main(["bench", "secagg", "--quick", "--no-write", "--json", "--repeat", "1",
                 "--backends", "plain,masking,masking-auth", "--sizes", "10x1000"]) == 0
    data = json.loads(capsys.readouterr().out)
    auth = [r for r in data["rows"] if r["backend"] == "masking-auth"]
    assert len(auth) == 2 and not data["errors"]
    for r in auth:
        for key in ("extra_up_per_client_vs_masking", "extra_down_per_client_vs_masking",
                    "extra_client_cpu_s_vs_masking", "extra_server_cpu_s_vs_masking",
                    "extra_server_cpu_s_vs_masking_same_graph"):
            assert r[key] is not None
        assert r["extra_down_per_client_vs_masking"] > 0  # signatures travel
