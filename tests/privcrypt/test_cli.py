import json
import subprocess
import sys

from privcrypt.cli import main


def test_help_and_version(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "bench" in out
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "privcrypt" in capsys.readouterr().out


def test_bench_rng_json(capsys):
    assert main(["bench", "rng", "--quick", "--no-write", "--json", "--n", "1000"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["benchmark"] == "rng"
    assert {r["case"] for r in data["rows"]} >= {"uniform_uint64", "normal"}
    assert all(r["ours_M_per_s"] > 0 for r in data["rows"])


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "privcrypt", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "usage: privcrypt" in out
