"""The report writer on small FAKE results (no benchmark runs) and the demo's command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reporting import figures
from reporting.html import SECTIONS, headline, md_to_html, write_report


def fake_results() -> dict:
    """Small results of the shapes the benchmarks write; one failed and one missing section."""
    table = "| a | b |\n|---|---|\n| x | 1.5 |"
    curve = {"accuracy": [0.5, 0.7, 0.8], "train_loss": [1.2, 0.8, 0.5]}
    s = {name: {"quick": None, "full": None, "status": "ok", "seconds": 1.0} for name in SECTIONS}
    s["rng"]["quick"] = {"rows": [{"case": "uniform_uint64", "ours_M_per_s": 500.0, "ours_over_numpy": 1.3}],
                         "table_md": table}
    s["rng"]["full"] = {"rows": [{"case": "uniform_uint64", "ours_M_per_s": 400.0, "ours_over_numpy": 1.1}],
                        "table_md": table, "timestamp": "2026-01-01T00:00:00", "machine": {"cpu": "x", "cores": 2}}
    s["he"]["full"] = {"timestamp": "t", "table_md": table, "rows": [
        {"variant": "tenseal_flare", "up_B_per_value": 57.6, "server_aggregate_cpu_s": 2.0},
        {"variant": "ours_default", "up_B_per_value": 8.0, "server_aggregate_cpu_s": 0.4}]}
    s["secagg"]["quick"] = {"table_md": table, "rows": [
        {"backend": b, "clients": n, "values": 1000, "dropout": d, "bytes_up_total": 1e6 * n, "server_cpu_s": 0.01 * n,
         "up_vs_plain": 1.2, "server_cpu_vs_plain": 3.0}
        for b in ("plain", "masking") for n in (10, 20) for d in (0.0, 0.3)]}
    s["fl"]["quick"] = {"table_md": table, "ratios": {"digits/iid": {"masking wall/round vs plain": 1.2}}, "rows": [
        {"dataset": "digits", "partition": "iid", "row": r, "curve": curve} for r in ("fedavg", "masking")]}
    s["adversarial"]["quick"] = {"table_md": table, "models": {
        "None": {"Nature": 0.9, "FGSM": 0.1}, "FGSM+AdvTrain": {"Nature": 0.85, "FGSM": 0.5}}}
    s["leakage"]["full"] = {"timestamp": "t", "table_md": table, "membership": {
        "fedavg_plain": {"loss_threshold": {"advantage": 0.08}},
        "dp_eps_1": {"loss_threshold": {"advantage": 0.02}, "delta": 1e-5},
        "dp_eps_8": {"loss_threshold": {"advantage": 0.05}, "delta": 1e-5}}}
    s["robust"]["quick"] = {"table_md": table, "synthetic_least_squares": [
        {"aggregator": g, "attack": a, "byzantine": 2, "rel_error": 0.1} for g in ("fedavg", "krum")
        for a in ("none", "signflip")]}
    s["mpc"].update(status="failed: RuntimeError: boom")
    s["flower"].update(status="not run in the demo: minutes")
    return {"generated": "2026-01-01T00:00:00", "sections": s}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    cheap = {k: [f for f in v if f.__name__ not in figures.COMPUTED] for k, v in figures.FIGURES.items()}
    saved = dict(figures.FIGURES)
    figures.FIGURES.clear()
    figures.FIGURES.update(cheap)
    try:
        written = write_report(fake_results(), out, doc_base="../docs")
    finally:
        figures.FIGURES.clear()
        figures.FIGURES.update(saved)
    return out, written


def test_every_section_present_with_status_and_doc_link(report):
    out, _ = report
    page = (out / "index.html").read_text()
    for name, (title, doc, _, _) in SECTIONS.items():
        assert f'<section id="{name}">' in page
        assert f'href="../docs/{doc}"' in page
    assert "quick run failed" in page and "RuntimeError: boom" in page  # failures shown, not hidden
    assert "not run in the demo: minutes" in page
    # both exist: the full table is shown and the quick headline next to it
    rng = page.split('<section id="rng">')[1].split("</section>")[0]
    assert "full results 2026-01-01T00:00:00" in rng and "1.1x" in rng and "1.3x" in rng
    md = (out / "report.md").read_text()
    assert all(f"## {t}" in md for t, *_ in SECTIONS.values())


def test_figures_exist_and_nothing_external(report):
    out, written = report
    page = (out / "index.html").read_text()
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and {"secagg_scaling.png", "fl_curves.png", "adversarial.png", "he_cost.png"} <= set(srcs)
    for src in srcs:
        assert (out / src).is_file() and (out / src).read_bytes()[:4] == b"\x89PNG"
    assert set(srcs) == set(written["figures"])
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert not attr.startswith(("http:", "https:", "//")), attr
    assert "http://" not in page and "https://" not in page
    assert "missing" in page  # e.g. the denoise figures: no data in the fake results


def test_results_json_is_strict(report):
    out, _ = report

    def reject(c):
        raise ValueError(c)

    data = json.loads((out / "results.json").read_text(), parse_constant=reject)
    assert set(data["sections"]) == set(SECTIONS)


def test_headline_is_computed_not_hardcoded():
    assert "2x" in headline("rng", {"rows": [{"case": "uniform_uint64", "ours_M_per_s": 1.0, "ours_over_numpy": 2.0}]})
    assert headline("rng", {"rows": []}) is None and headline("he", None) is None


def test_markdown_is_escaped():
    h = md_to_html("# T <b>\n\n| a |\n|---|\n| <script> |")
    assert "<script>" not in h and "&lt;script&gt;" in h and "<table" in h


def test_demo_help_and_out_must_be_a_folder(tmp_path, capsys):
    from privcrypt.cli import main

    with pytest.raises(SystemExit) as e:
        main(["demo", "--help"])
    assert e.value.code == 0 and "--out" in capsys.readouterr().out
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert main(["demo", "--out", str(f), "--only", "rng"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "no" / "such" / "dir")]) == 2
    assert f.read_text() == "x"


def test_stdout_to_stderr_moves_fd1_and_restores_it(capfd):
    """What every --json command and the demo's benchmark runs sit inside: a C++ library
    writing to fd 1 ends up on stderr; stdout is back afterwards."""
    import os

    from privcrypt.cli import stdout_to_stderr

    with stdout_to_stderr():
        os.write(1, b"SEAL warning\n")
        print("python print")
    os.write(1, b"after\n")
    out, err = capfd.readouterr()
    assert out == "after\n" and "SEAL warning" in err and "python print" in err
