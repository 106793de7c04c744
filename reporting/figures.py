"""The report's figures (matplotlib, Agg backend: no display needed).

Each figure function takes the report's results dict (``{"sections": {name: {"quick":
..., "full": ...}}}``, see :mod:`reporting.demo`) and an output folder, draws from the
quick run's numbers or the committed full results, writes one PNG there and returns
``(filename, caption)``; it returns ``None`` when the data it needs is missing (the page
then says so). A figure function that raises is reported as missing with the error, by
:func:`draw`. Some figures compute cheap data themselves (the epsilon curves, the FLEP
layers of one image, one image through each denoiser).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from reporting.figures_base import _plt, _save, _src, pick
from reporting.figures_imaging import (
    denoise_images, denoise_per_image, imaging_bench_figure, imaging_correlation, imaging_layers, imaging_wu)


# -- he / secagg -----------------------------------------------------------------------------
def he_cost(results: dict, out: Path):
    """CKKS upload bytes per value and server CPU: ours vs the FLARE-style TenSEAL recipe."""
    rows, src = pick(results, "he", "rows", prefer="full")
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(8, 2.8))
    names = [r["variant"] for r in rows]
    colors = ["0.55" if "tenseal" in n else "C0" for n in names]
    for a, key, label in ((ax[0], "up_B_per_value", "upload bytes per value"),
                          (ax[1], "server_aggregate_cpu_s", "server aggregate CPU (s)")):
        a.barh(names, [r[key] for r in rows], color=colors)
        a.set_title(label)
        for i, r in enumerate(rows):
            a.text(r[key], i, f" {r[key]:.3g}", va="center", fontsize=7)
    return _save(fig, out, "he_cost.png"), f"CKKS aggregation cost; source: {_src(src, results, 'he')}."


def secagg_scaling(results: dict, out: Path):
    """Secure-aggregation bytes up and server CPU vs number of clients, per backend and
    dropout rate (100k values per client)."""
    rows, src = pick(results, "secagg", "rows", prefer="full")
    if not rows:
        return None
    dims = sorted({r["values"] for r in rows}, key=lambda d: -sum(r["values"] == d for r in rows))
    dim = dims[0]
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
    for bi, be in enumerate(sorted({r["backend"] for r in rows})):
        for drop, ls in ((0.0, "-"), (0.3, "--")):
            sel = sorted((r for r in rows if r["backend"] == be and r["dropout"] == drop and r["values"] == dim),
                         key=lambda r: r["clients"])
            if not sel:
                continue
            n = [r["clients"] for r in sel]
            lab = f"{be}" + (f", {int(drop * 100)}% drop" if drop else "")
            mk = "osD^v"[bi % 5]
            ax[0].plot(n, [r["bytes_up_total"] / 1e6 for r in sel], ls, marker=mk, color=f"C{bi}", label=lab)
            ax[1].plot(n, [r["server_cpu_s"] for r in sel], ls, marker=mk, color=f"C{bi}", label=lab)
    ax[0].set_title(f"upload, all clients (MB), {dim:,} values")
    ax[1].set_title("server CPU per round (s)")
    for a in ax:
        a.set_xlabel("clients")
        a.set_yscale("log")
    ax[1].legend(fontsize=6, ncol=2)
    return _save(fig, out, "secagg_scaling.png"), (
        f"Secure aggregation cost vs clients (solid: no dropout, dashed: 30% dropout; lines that coincide "
        f"have the same cost); "
        f"source: {_src(src, results, 'secagg')}.")


# -- dp --------------------------------------------------------------------------------------
def dp_epsilon_curves(results: dict, out: Path):
    """Epsilon vs steps (sigma 1.0, q 0.01, delta 1e-5): privcrypt RDP and PLD, and the
    peers when installed (dp-accounting RDP/PLD, Opacus RDP). Computed here."""
    import numpy as np

    from privcrypt.dp import PLDAccountant, RDPAccountant

    sigma, q, delta = 1.0, 0.01, 1e-5
    steps = np.array([500, 1500, 3000, 6000, 10000])
    curves = {}
    for label, cls in (("privcrypt RDP", RDPAccountant), ("privcrypt PLD", PLDAccountant)):
        curves[label] = [cls().epsilon_after(delta, noise_multiplier=sigma, sample_rate=q, steps=int(s))
                         for s in steps]
    missing = []
    try:
        import dp_accounting
        from dp_accounting.pld import pld_privacy_accountant
        from dp_accounting.rdp import rdp_privacy_accountant

        ev = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
        for label, mk in (("dp-accounting RDP", rdp_privacy_accountant.RdpAccountant),
                          ("dp-accounting PLD", pld_privacy_accountant.PLDAccountant)):
            curves[label] = [mk().compose(ev, int(s)).get_epsilon(delta) for s in steps]
    except ImportError:
        missing.append("dp-accounting")
    try:
        import warnings

        from opacus.accountants import RDPAccountant as ORDP

        vals = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for s in steps:
                acc = ORDP()
                acc.history = [(sigma, q, int(s))]
                vals.append(acc.get_epsilon(delta))
        curves["opacus RDP"] = vals
    except ImportError:
        missing.append("opacus")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    styles = {"privcrypt": dict(lw=5, alpha=0.35), "dp-accounting": dict(lw=1, ls="--", marker="x", ms=6),
              "opacus": dict(lw=1, ls=":", marker="+", ms=9)}
    for label, vals in curves.items():
        ax.plot(steps, vals, label=label, color="C0" if "RDP" in label else "C1", **styles[label.split()[0]])
    ax.set_xlabel("steps (rounds)")
    ax.set_ylabel("epsilon at delta 1e-5")
    ax.legend(fontsize=7)
    ax.set_title(f"Poisson-subsampled Gaussian, sigma {sigma}, q {q}")
    cap = ("Epsilon vs steps, computed for this report with each accountant (thick: privcrypt; "
           "where the curves lie on top of each other the accountants agree).")
    if missing:
        cap += f" Not installed: {', '.join(missing)} (their curves are missing)."
    return _save(fig, out, "dp_epsilon.png"), cap


# -- fl --------------------------------------------------------------------------------------
def fl_curves(results: dict, out: Path):
    """Test accuracy (or RMSE) and training loss per round, one line per Table 2 row."""
    rows, src = pick(results, "fl", "rows")
    rows = [r for r in rows or [] if r.get("curve")]
    if not rows:
        return None
    first = (rows[0]["dataset"], rows[0]["partition"])
    rows = [r for r in rows if (r["dataset"], r["partition"]) == first]
    metric = "accuracy" if any("accuracy" in r["curve"] for r in rows) else "rmse"
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    for i, r in enumerate(rows):
        ls = "--" if r["row"].startswith("dp-") else "-"
        for a, key in ((ax[0], metric), (ax[1], "train_loss")):
            ys = r["curve"].get(key)
            if ys:
                a.plot(range(1, len(ys) + 1), ys, ls, marker="o", ms=3, color=f"C{i % 10}", label=r["row"])
    from matplotlib.ticker import MaxNLocator

    ax[0].set_title(f"test {metric} per round ({first[0]}, {first[1]})")
    ax[1].set_title("training loss per round (log scale)")
    ax[1].set_yscale("log")
    for a in ax:
        a.set_xlabel("round")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax[0].legend(fontsize=6)
    return _save(fig, out, "fl_curves.png"), (
        f"Federated learning per round for each backend and DP setting (dashed: DP); "
        f"source: {_src(src, results, 'fl')}.")


# -- robust / adversarial / leakage ----------------------------------------------------------
def _heat(ax, mat, rows, cols, fmt="{:.2f}", cmap="viridis", log=False):
    import numpy as np
    from matplotlib.colors import LogNorm

    m = np.array(mat, dtype=float)
    pos = m[(m == m) & (m > 0)]
    norm = LogNorm(vmin=pos.min(), vmax=pos.max()) if log and pos.size else None
    im = ax.imshow(m, cmap=cmap, aspect="auto", norm=norm)
    mid = np.exp(np.nanmean(np.log(pos))) if log and pos.size else np.nanmean(m)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j] == m[i, j]:
                dark = (m[i, j] > mid) if cmap.endswith("_r") else (m[i, j] < mid)
                ax.text(j, i, fmt.format(m[i, j]), ha="center", va="center", fontsize=7,
                        color="w" if dark else "k")
            else:
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="0.4")
    return im


def robust_attack(results: dict, out: Path):
    """Robust aggregation under attack: FL accuracy per rule x attack when the FL grid ran,
    else the synthetic least-squares relative error at the largest Byzantine count."""
    plt = _plt()
    fl, src = pick(results, "robust", "fl_accuracy_under_attack", prefer="full")
    if isinstance(fl, list) and fl and "accuracy" in fl[0]:
        ds, part = fl[0].get("dataset"), fl[0].get("partition")
        # one data set and partition; no attack, and 2 attackers of 10 (in every grid)
        fl = [r for r in fl if r.get("dataset") == ds and r.get("partition") == part
              and r.get("byzantine") in (0, 2) and "accuracy" in r]
        aggs = list(dict.fromkeys(r["aggregator"] for r in fl))
        atks = list(dict.fromkeys(r["attack"] for r in fl))
        cell = {}
        for r in fl:
            cell.setdefault((r["aggregator"], r["attack"]), []).append(r["accuracy"])
        mat = [[sum(cell[(g, a)]) / len(cell[(g, a)]) if (g, a) in cell else float("nan") for a in atks]
               for g in aggs]
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(aggs) + 1.5))
        fig.colorbar(_heat(ax, mat, aggs, atks), ax=ax, label="test accuracy")
        ax.set_title(f"FL test accuracy per rule and attack ({ds}, {part}; 2 attackers of 10)")
        return _save(fig, out, "robust_attack.png"), (
            f"Accuracy with no attacker ('none') and with 2 of 10 clients attacking; "
            f"source: {_src(src, results, 'robust')}.")
    syn, src = pick(results, "robust", "synthetic_least_squares", prefer="full")
    if not syn:
        return None
    f = max(r["byzantine"] for r in syn)
    sel = [r for r in syn if r["byzantine"] == f]
    aggs = list(dict.fromkeys(r["aggregator"] for r in sel))
    atks = [a for a in dict.fromkeys(r["attack"] for r in sel)]
    cell = {(r["aggregator"], r["attack"]): r["rel_error"] for r in sel}
    mat = [[cell.get((g, a), float("nan")) for a in atks] for g in aggs]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(aggs) + 1.5))
    fig.colorbar(_heat(ax, mat, aggs, atks, fmt="{:.2g}", cmap="viridis_r", log=True), ax=ax,
                 label="relative error (log scale)")
    ax.set_title(f"Synthetic least squares, {f} Byzantine of 10: relative error (lower is better)")
    return _save(fig, out, "robust_attack.png"), (
        f"Robust aggregation under attack (no FL accuracy grid in these results); "
        f"source: {_src(src, results, 'robust')}.")


def adversarial_bars(results: dict, out: Path):
    """FDA3 Fig. 2 shape: accuracy per attack (groups) for each model (bars)."""
    import numpy as np

    models, src = pick(results, "adversarial", "models", prefer="full")
    if not models:
        return None
    names = list(models)
    attacks = list(next(iter(models.values())))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 3.4))
    w = 0.85 / len(names)
    for i, m in enumerate(names):
        ax.bar(np.arange(len(attacks)) + i * w, [models[m].get(a, np.nan) for a in attacks], width=w,
               label=m, color=plt.cm.tab10(i % 10))
    ax.set_xticks(np.arange(len(attacks)) + 0.425 - w / 2, attacks)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=6, ncol=3)
    return _save(fig, out, "adversarial.png"), (
        f"Accuracy on natural and adversarial test examples per model (FDA³ Fig. 2 shape); "
        f"source: {_src(src, results, 'adversarial')}.")


def leakage_inversion(results: dict, out: Path):
    """The committed gradient-inversion figure (docs/figures/leakage_inversion.png)."""
    from reporting.bench_cli import ROOT

    src = ROOT / "docs" / "figures" / "leakage_inversion.png"
    if not src.is_file():
        return None
    shutil.copyfile(src, out / "leakage_inversion.png")
    return "leakage_inversion.png", ("Gradient-inversion reconstructions per configuration, from the committed "
                                     "full run (docs/figures/leakage_inversion.png).")


def leakage_membership(results: dict, out: Path):
    """Membership-inference advantage vs epsilon, with the (eps, delta)-DP bound curve."""
    import numpy as np

    mem, src = pick(results, "leakage", "membership", prefer="full")
    if not mem:
        return None
    dp = sorted((float(k.split("_")[-1]), v) for k, v in mem.items() if k.startswith("dp_eps_"))
    if not dp:
        return None
    delta = dp[0][1].get("delta", 1e-5)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    eps = np.linspace(0.05, max(e for e, _ in dp) * 1.1, 200)
    from fl.leakage import dp_advantage_bound  # (e^eps - 1 + 2 delta) / (e^eps + 1), capped at 1

    ax.plot(eps, [dp_advantage_bound(float(e), delta) for e in eps], "k--",
            label=f"any attack's bound under (eps, delta={delta:g})-DP")
    ax.plot([e for e, _ in dp], [v["loss_threshold"]["advantage"] for _, v in dp], "o-", color="C3",
            label="loss-threshold attack, DP-SGD")
    for i, k in enumerate(("central_plain", "fedavg_plain", "fedavg_masking")):
        if k in mem:
            ax.axhline(mem[k]["loss_threshold"]["advantage"], color=f"C{i}", lw=1, ls=":",
                       label=f"{k} (no DP)")
    ax.set_xlabel("epsilon")
    ax.set_ylabel("membership advantage")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=6)
    return _save(fig, out, "leakage_membership.png"), (
        f"Membership-inference advantage vs epsilon; source: {_src(src, results, 'leakage')}.")


#: Figure functions that compute their data (seconds of CPU) rather than only plot results.
COMPUTED = {"imaging_layers", "imaging_correlation", "denoise_images", "dp_epsilon_curves"}

#: Figures of each section, in order.
FIGURES: dict[str, list[Callable]] = {
    "he": [he_cost], "secagg": [secagg_scaling], "dp": [dp_epsilon_curves],
    "imaging": [imaging_layers, imaging_correlation, imaging_wu, imaging_bench_figure],
    "denoise": [denoise_images, denoise_per_image], "fl": [fl_curves], "robust": [robust_attack],
    "adversarial": [adversarial_bars], "leakage": [leakage_inversion, leakage_membership],
}


def draw(name: str, results: dict, out: Path) -> list[dict]:
    """Draw section ``name``'s figures; each entry ``{"file", "caption"}`` or
    ``{"missing": reason}`` (no data, or the error the figure function raised)."""
    done = []
    for fn in FIGURES.get(name, []):
        try:
            res = fn(results, Path(out))
        except Exception as exc:  # noqa: BLE001 - reported on the page, never hidden
            done.append({"figure": fn.__name__, "missing": f"{type(exc).__name__}: {exc}"})
            continue
        if res is None:
            done.append({"figure": fn.__name__, "missing": "its data is not in the quick run nor the full results"})
        else:
            done.append({"figure": fn.__name__, "file": res[0], "caption": res[1]})
    return done
