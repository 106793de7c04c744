import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

import privcrypt.cli as cli
from privcrypt.cli import build_parser, dumps_strict, main

ROOT = Path(__file__).resolve().parents[2]


def strict_loads(text: str):
    """json.loads that refuses NaN/Infinity (RFC 8259)."""
    def bad(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=bad)


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "bench" in out and "image" in out and "dp" in out
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "privcrypt" in capsys.readouterr().out


def test_bare_commands_exit_nonzero_with_usage(capsys):
    assert main([]) == 2
    assert "usage: privcrypt" in capsys.readouterr().err
    for group in (["dp"], ["image"], ["bench"]):
        with pytest.raises(SystemExit) as exc:
            main(group)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"usage: privcrypt {group[0]}" in err


def _walk(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, path + (name,))


def test_every_option_has_help_and_shows_its_default():
    parser = build_parser(full=True)
    missing = []
    for path, p in _walk(parser):
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            if not action.help:
                missing.append(" ".join(path) + " " + "/".join(action.option_strings or [action.dest]))
    assert not missing, missing
    text = [p for path, p in _walk(parser) if path == ("dp", "epsilon")][0].format_help()
    assert "(default: rdp)" in " ".join(text.split())


@pytest.mark.parametrize("argv", [["--help"], ["image", "--help"], ["dp", "--help"], ["bench", "--help"]])
def test_help_does_not_import_torch(argv):
    code = ("import sys\nfrom privcrypt.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write('TORCH' if 'torch' in sys.modules else 'NOTORCH')")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.stderr.endswith("NOTORCH"), res.stderr[-300:]


def test_unexpected_error_is_one_line_exit_1(monkeypatch, capsys):
    import privcrypt.dp.cli as dpcli

    def boom(args):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(dpcli, "_epsilon", boom)
    rc = main(["dp", "epsilon", "--noise-multiplier", "1", "--sample-rate", "0.1", "--steps", "1", "--delta", "1e-5"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and "kaboom second line" in err and "Traceback" not in err


def test_keyboard_interrupt_exit_130(monkeypatch, capsys):
    import privcrypt.dp.cli as dpcli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(dpcli, "_epsilon", interrupted)
    rc = main(["dp", "epsilon", "--noise-multiplier", "1", "--sample-rate", "0.1", "--steps", "1", "--delta", "1e-5"])
    err = capsys.readouterr().err
    assert rc == 130 and err.strip() == "privcrypt: interrupted"


def test_user_error_is_one_line_exit_2(capsys):
    rc = main(["dp", "epsilon", "--noise-multiplier", "-1", "--sample-rate", "0.1", "--steps", "1", "--delta", "1e-5"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("privcrypt dp epsilon: error:") and err.count("\n") == 1


def test_dumps_strict_encodes_nonfinite_as_null_with_flags():
    import numpy as np

    text = dumps_strict({"a": float("inf"), "b": [1.0, float("nan")], "c": {"d": np.float32("-inf")},
                         "e": np.arange(2), "f": {3, 1}})
    data = strict_loads(text)
    assert data["a"] is None and data["b"] == [1.0, None] and data["c"]["d"] is None
    assert data["e"] == [0, 1] and data["f"] == [1, 3]
    assert data["nonfinite"] == {"a": "inf", "b.1": "nan", "c.d": "-inf"}
    assert "nonfinite" not in strict_loads(dumps_strict({"x": 1.0}))


@pytest.mark.parametrize("argv", [
    ["dp", "epsilon", "--noise-multiplier", "0", "--sample-rate", "0.01", "--steps", "10", "--delta", "1e-5"],
    ["dp", "epsilon", "--noise-multiplier", "1e-12", "--sample-rate", "0.01", "--steps", "10", "--delta", "1e-5",
     "--accountant", "pld"],
    ["dp", "sigma", "--epsilon", "2", "--delta", "1e-5", "--sample-rate", "1", "--steps", "4"],
])
def test_dp_json_is_strict(argv, capsys):
    assert main([*argv, "--json"]) == 0
    data = strict_loads(capsys.readouterr().out)
    if argv[1] == "epsilon":
        assert data["epsilon"] is None and data["nonfinite"] == {"epsilon": "inf"}


def test_bench_rng_json(capsys):
    assert main(["bench", "rng", "--quick", "--no-write", "--json", "--n", "1000"]) == 0
    data = strict_loads(capsys.readouterr().out)
    assert data["benchmark"] == "rng" and data["written"] == []
    assert {r["case"] for r in data["rows"]} >= {"uniform_uint64", "normal"}
    assert all(r["ours_M_per_s"] > 0 for r in data["rows"])


def test_bench_quick_never_writes_into_the_checkout(tmp_path, capsys):
    from benchmarks.harness import FIGURES_DIR, RESULTS_DIR

    def snapshot():
        return {p: p.stat().st_mtime_ns for d in (RESULTS_DIR, FIGURES_DIR) if d.exists() for p in d.iterdir()}

    before = snapshot()
    assert main(["bench", "rng", "--quick", "--json", "--n", "1000"]) == 0
    assert strict_loads(capsys.readouterr().out)["written"] == []
    assert snapshot() == before
    # --write is for full runs only; refused before any work
    assert main(["bench", "rng", "--quick", "--write", "--n", "1000"]) == 2
    assert "--write records full runs only" in capsys.readouterr().err
    # --out DIR: the files go there, and the run says so
    out = tmp_path / "res"
    assert main(["bench", "rng", "--quick", "--json", "--n", "1000", "--out", str(out)]) == 0
    cap = capsys.readouterr()
    data = strict_loads(cap.out)
    assert sorted(Path(p).name for p in data["written"]) == ["rng.json", "rng.md"]
    assert "wrote " in cap.err and strict_loads((out / "rng.json").read_text())["benchmark"] == "rng"
    assert snapshot() == before


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "privcrypt", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "usage: privcrypt" in out


def test_provider_mechanism_lists_present_modules_only(monkeypatch, capsys):
    monkeypatch.setattr(cli, "PROVIDERS", [*cli.PROVIDERS, ("nosuch", "privcrypt.nosuch_cli", "")])
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "nosuch" not in capsys.readouterr().out
