"""``privcrypt fl run``: one strict JSON object, flags over --config, clear errors."""

import json

import pytest

from privcrypt.cli import main


def _strict(text):
    return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"non-strict {c}")))


def test_fl_run_json_is_one_strict_object(capsys, tmp_path):
    rc = main(["fl", "run", "--dataset", "digits", "--clients", "3", "--rounds", "1", "--backend", "masking",
               "--quiet", "--json", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert rc == 0
    d = _strict(out)
    for k in ("accuracy", "bytes_up_per_round", "bytes_down_per_round", "seconds_per_round"):
        assert k in d
    assert (tmp_path / "run" / "history.json").is_file()
    assert (tmp_path / "run" / "rounds.csv").is_file()


def test_fl_run_with_dp_reports_epsilon(capsys):
    rc = main(["fl", "run", "--dataset", "digits", "--clients", "3", "--rounds", "1", "--backend", "plain",
               "--dp-epsilon", "2", "--dp-unit", "client", "--quiet", "--json"])
    assert rc == 0
    d = _strict(capsys.readouterr().out)
    assert 0 < d["epsilon"] <= 2.0


def test_flags_win_over_config(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('rounds = 3\nbackend = "spdz"\nlr = 0.01\n')
    rc = main(["fl", "run", "--dataset", "digits", "--clients", "2", "--config", str(cfg), "--rounds", "1",
               "--quiet", "--json"])
    assert rc == 0
    c = _strict(capsys.readouterr().out)["config"]
    assert (c["rounds"], c["backend"], c["lr"]) == (1, "spdz", 0.01)


@pytest.mark.parametrize("argv, match", [
    (["--rounds", "0"], "rounds must be a positive integer"),
    (["--clients", "2000"], "client"),
    (["--backend", "masking", "--aggregator", "median"], "hides"),
    (["--dropout", "1.5"], "dropout"),
])
def test_fl_run_errors_are_one_line(capsys, argv, match):
    rc = main(["fl", "run", "--dataset", "digits", "--quiet", "--json", *argv])
    err = capsys.readouterr()
    assert rc != 0
    assert err.out == ""
    assert match in err.err
    assert "Traceback" not in err.err


def test_unknown_dataset_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["fl", "run", "--dataset", "cifar"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
