"""Leakage: what an honest-but-curious server can reconstruct or infer, per configuration.

Gradient inversion (``fl.leakage.invert``: iDLG = DLG with the label read off the last
layer, and Geiping et al.'s cosine + TV attack) on exactly what the server observes of one
FedSGD round (``fl.leakage.observe``): one client's update (``plain``), the mean of K
clients through the real ``masking`` / ``spdz`` / ``ckks`` backends, example- and
client-level DP at epsilon in {1, 2, 8}, top-k and int8 compression. Victim: a LeNet-like
sigmoid CNN at initialisation (DLG's setting) on 8x8 scikit-learn digits. Two attacks on an
aggregate: ``target`` (n_images = B, scored against client 0's batch: the seed paper's
attack) and ``union`` (n_images = K*B, scored against every client's images: the FedSGD
mean of K gradients IS the gradient of the union batch). ``baseline_psnr``: the PSNR of the
dataset's mean image against the targets (an attacker who learned nothing).

Membership inference (``fl.leakage.membership``): loss threshold (Yeom et al. 2018) and
shadow models (Shokri et al. 2017) against an overfit MLP trained centrally, by FedAvg
with plain aggregation and by FedAvg through the real secure backends (the same final
model up to quantization), and by DP-SGD at epsilon in {1, 2, 8} next to the bound
(e^eps - 1 + 2 delta) / (e^eps + 1).

``--quick`` (about a minute) writes nothing; the full run writes
``benchmarks/results/leakage.json|.md`` and ``docs/figures/leakage_inversion.png``.
"""

from __future__ import annotations

DESCRIPTION = "Leakage: gradient inversion per secagg/DP/compression config, membership inference vs DP bound"

DELTA = 1e-5


def add_arguments(parser) -> None:
    parser.add_argument("--no-figure", action="store_true", help="do not write docs/figures/")
    parser.add_argument("--seed", type=int, default=0, help="data selection and model init seed")


# -- inversion ---------------------------------------------------------------------------

def _inversion_configs(quick: bool):
    from fl.leakage import ObserveConfig

    cfgs = []  # (key, ObserveConfig kwargs, K, B, attacks)
    bs = (1,) if quick else (1, 8)
    for b in bs:
        sfx = "" if b == 1 else f"_B{b}"
        cfgs.append((f"plain{sfx}", {}, 1, b, ("target",)))
        ks = (2, 10) if quick else (2, 5, 10)
        for backend in ("masking", "spdz", "ckks"):
            for k in ks:
                if quick and backend != "masking" and k != 10:
                    continue
                cfgs.append((f"{backend}_K{k}{sfx}", {"backend": backend}, k, b, ("target", "union")))
        for eps in ((1.0, 8.0) if quick else (1.0, 2.0, 8.0)):
            cfgs.append((f"dp_eps_{eps:g}{sfx}", {"dp": "example", "epsilon": eps}, 1, b, ("target",)))
            if not quick or eps == 1.0:
                cfgs.append((f"dp_client_eps_{eps:g}{sfx}", {"dp": "client", "epsilon": eps}, 1, b, ("target",)))
        cfgs.append((f"topk_0.1{sfx}", {"compression": "topk", "topk_frac": 0.1}, 1, b, ("target",)))
        cfgs.append((f"int8{sfx}", {"compression": "int8"}, 1, b, ("target",)))
    return cfgs


def _run_inversion(args, quick):
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    from fl.leakage import LeNetSigmoid, ObserveConfig, invert, match_and_score, observe_detailed
    from privcrypt.rng import DeterministicRandom

    d = load_digits()
    X = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(args.seed).permutation(len(X))
    mean_img = X.mean(axis=0)
    torch.manual_seed(args.seed)
    model = LeNetSigmoid((1, 8, 8))
    rows, figs, summary = [], [], {}
    methods = ("idlg",) if quick else ("idlg", "geiping")
    for key, kw, k, b, attacks in _inversion_configs(quick):
        idx = order[:k * b]
        batches = [(torch.tensor(X[idx[i * b:(i + 1) * b]]), torch.tensor(y[idx[i * b:(i + 1) * b]])) for i in range(k)]
        cfg = ObserveConfig(rng=DeterministicRandom(1000 + len(rows)), **kw)
        obs = observe_detailed(cfg, batches, model)
        target = batches[0][0].numpy()
        union = np.concatenate([bb[0].numpy() for bb in batches])
        union_labels = np.concatenate([bb[1].numpy() for bb in batches])
        for attack in attacks:
            n = b if attack == "target" else k * b
            if n > 40:
                continue  # L-BFGS over > 40 images: minutes each on 2 shared cores
            originals = target if attack == "target" else union
            base = float(np.mean([10 * np.log10(1.0 / np.mean((mean_img - o) ** 2)) for o in originals]))
            for method in methods:
                if method == "geiping" and n > 8:
                    continue  # Adam with the TV prior on > 8 images: minutes on 2 shared cores
                for known in ((False, True) if (b > 1 or attack == "union") and method == "idlg" else (False,)):
                    res = invert(model, obs.update, (1, 8, 8), n, method=method,
                                 labels=union_labels[:n] if known else None,
                                 steps=None if method == "idlg" else (300 if quick else 600))
                    s = match_and_score(res.images, originals)
                    label_acc = float(np.mean(np.sort(res.labels) == np.sort(union_labels[:n])))
                    row = {"config": key, "K": k, "B": b, "attack": attack, "method": method,
                           "labels": "known" if known else "recovered", "n_images": n,
                           "psnr": s["psnr"], "ssim": s["ssim"], "psnr_max": s["psnr_max"],
                           "baseline_psnr": base, "label_acc": label_acc,
                           "noise_multiplier": obs.info["noise_multiplier"]}
                    rows.append(row)
                    if method == "idlg" and not known and attack == "target" and b == 1:
                        figs.append((key, target[0, 0], res.images[0, 0], s["psnr"]))
                    if method == "idlg" and attack == "union" and not known and b == 1:
                        j = [r for r, c in s["pairs"] if c == 0]
                        if j:
                            figs.append((key + " union", target[0, 0], res.images[j[0], 0],
                                         s["psnr_each"][s["pairs"].index((j[0], 0))]))
        # summary entry per configuration: the strongest idlg result that needs no label
        # oracle, plus the union attack where there is one
        mine = [r for r in rows if r["config"] == key and r["labels"] == "recovered"]
        tgt = max((r for r in mine if r["attack"] == "target"), key=lambda r: r["psnr"])
        entry = {"psnr": tgt["psnr"], "ssim": tgt["ssim"], "K": k, "B": b, "method": tgt["method"],
                 "baseline_psnr": tgt["baseline_psnr"]}
        un = [r for r in rows if r["config"] == key and r["attack"] == "union"]
        if un:
            best = max(un, key=lambda r: r["psnr"])
            entry.update(union_psnr=best["psnr"], union_ssim=best["ssim"], union_labels=best["labels"])
        summary[key] = entry
    for backend in ("masking", "spdz", "ckks"):  # the top-level keys: K = 10, B = 1
        summary[backend] = summary[f"{backend}_K10"]
    return rows, summary, figs


def _figure(path, figs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(figs)
    ncols = min(n, 9)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(1.2 * ncols, 2.6 * nrows), squeeze=False)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
        a.set_frame_on(False)
    for j, (name, orig, rec, psnr) in enumerate(figs):
        r, c = 2 * (j // ncols), j % ncols
        axes[r, c].imshow(orig, cmap="gray", vmin=0, vmax=1)
        axes[r + 1, c].imshow(rec, cmap="gray", vmin=0, vmax=1)
        axes[r, c].set_title(name.replace("_", " "), fontsize=6)
        axes[r + 1, c].set_xlabel(f"{psnr:.1f} dB", fontsize=6)
    for r in range(nrows):
        axes[2 * r, 0].set_ylabel("original", fontsize=6)
        axes[2 * r + 1, 0].set_ylabel("reconstructed", fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return str(path)


# -- membership --------------------------------------------------------------------------

def _fedavg(X, y, n_clients, rounds, local_epochs, backend, seed):
    """Minimal FedAvg for this benchmark only (fl.run replaces it): clients train a copy of
    the global MLP with Adam, the server applies the backend's mean of the deltas."""
    import copy

    import numpy as np
    import torch

    from fl.leakage import MLP, train_classifier
    from privcrypt.rng import DeterministicRandom
    from privcrypt.secagg import make_aggregator

    torch.manual_seed(seed)
    glob = MLP(X.shape[1], 10)
    parts = np.array_split(np.arange(len(X)), n_clients)
    params = {"masking": {"clip": 4.0, "bits": 24}, "spdz": {"clip": 4.0, "frac_bits": 24}}.get(backend, {})
    agg = make_aggregator(backend, rng=DeterministicRandom(seed), **params)
    clipped = 0
    for r in range(rounds):
        g0 = torch.nn.utils.parameters_to_vector(glob.parameters()).detach()
        ups = {}
        for c, idx in enumerate(parts):
            local = copy.deepcopy(glob)
            train_classifier(local, X[idx], y[idx], epochs=local_epochs, batch_size=10, seed=seed + 97 * r + c)
            ups[c] = (torch.nn.utils.parameters_to_vector(local.parameters()).detach() - g0).double().numpy()
        res = agg.aggregate(ups)
        clipped += int(res.stats.get("clipped", 0) or 0)
        torch.nn.utils.vector_to_parameters(g0 + torch.as_tensor(res.mean, dtype=g0.dtype), glob.parameters())
    glob.eval()
    return glob, clipped


def _accuracy(model, X, y):
    import numpy as np

    from fl.leakage.membership import softmax_outputs

    return float(np.mean(softmax_outputs(model, X).argmax(1) == y))


def _run_membership(args, quick):
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    from fl.leakage import MLP, dp_advantage_bound, loss_threshold_attack, shadow_model_attack, train_classifier
    from privcrypt.rng import DeterministicRandom

    d = load_digits()
    X, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    perm = np.random.default_rng(args.seed + 1).permutation(len(X))
    X, y = X[perm], y[perm]
    n = 100 if quick else 200
    n_shadow = 2 if quick else 3
    mem, non = (X[:n], y[:n]), (X[n:2 * n], y[n:2 * n])
    test = (X[-200:], y[-200:])
    shadows = [(X[2 * n + 2 * n * i:3 * n + 2 * n * i], y[2 * n + 2 * n * i:3 * n + 2 * n * i],
                X[3 * n + 2 * n * i:4 * n + 2 * n * i], y[3 * n + 2 * n * i:4 * n + 2 * n * i]) for i in range(n_shadow)]
    epochs = 150

    def train_fn(Xs, ys, seed=args.seed + 11):
        torch.manual_seed(seed)
        m = MLP(64, 10)
        train_classifier(m, Xs, ys, epochs=epochs, batch_size=20, seed=seed)
        return m

    out = {}
    target = train_fn(*mem, seed=args.seed)
    out["central_plain"] = {"loss_threshold": loss_threshold_attack(target, mem, non),
                            "shadow": shadow_model_attack(train_fn, target, shadows, mem, non),
                            "test_accuracy": _accuracy(target, *test)}
    backends = ("plain", "masking") if quick else ("plain", "masking", "spdz", "ckks")
    k, rounds = 5, (10 if quick else 20)
    for backend in backends:
        model, clipped = _fedavg(mem[0], mem[1], k, rounds, 3, backend, args.seed)
        out[f"fedavg_{backend}"] = {"loss_threshold": loss_threshold_attack(model, mem, non),
                                    "shadow": shadow_model_attack(train_fn, model, shadows, mem, non),
                                    "test_accuracy": _accuracy(model, *test), "clients": k,
                                    "rounds": rounds, "clipped": clipped}
    for eps in ((1.0, 8.0) if quick else (1.0, 2.0, 8.0)):
        torch.manual_seed(args.seed)
        m = MLP(64, 10)
        info = train_classifier(m, *mem, epochs=30, batch_size=50, dp_epsilon=eps, dp_delta=DELTA,
                                dp_lr=4.0, rng=DeterministicRandom(args.seed + int(eps * 10)))
        lt = loss_threshold_attack(m, mem, non)
        out[f"dp_eps_{eps:g}"] = {"loss_threshold": lt, "test_accuracy": _accuracy(m, *test),
                                  "bound": dp_advantage_bound(eps, DELTA), "delta": DELTA,
                                  "within_bound": lt["advantage"] <= dp_advantage_bound(eps, DELTA),
                                  **{kk: info[kk] for kk in ("noise_multiplier", "steps", "sample_rate")}}
    return out


def run(args) -> dict:
    import time
    import warnings
    from pathlib import Path

    import torch

    from benchmarks.harness import finish, markdown_table

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    quick = bool(args.quick)
    if quick:  # --quick never writes benchmarks/results or docs/figures
        args.no_write = True
    t0 = time.process_time()
    rows, summary, figs = _run_inversion(args, quick)
    t_inv = time.process_time() - t0
    membership = _run_membership(args, quick)
    figure = None
    if not quick and not args.no_figure and not getattr(args, "no_write", False):
        figure = _figure(Path(__file__).resolve().parents[1] / "docs" / "figures" / "leakage_inversion.png", figs)
    table = markdown_table(rows, ["config", "K", "B", "attack", "method", "labels", "psnr", "ssim",
                                  "psnr_max", "baseline_psnr", "label_acc"])
    mrows = []
    for name, v in membership.items():
        for att in ("loss_threshold", "shadow"):
            if att in v:
                mrows.append({"model": name, "attack": att, "auc": v[att]["auc"],
                              "balanced_accuracy": v[att].get("balanced_accuracy"),
                              "advantage": v[att]["advantage"], "dp_bound": v.get("bound"),
                              "test_accuracy": v["test_accuracy"]})
    table += "\n\n" + markdown_table(mrows, ["model", "attack", "auc", "balanced_accuracy", "advantage",
                                             "dp_bound", "test_accuracy"])
    data = {"quick": quick, "inversion": summary, "inversion_rows": rows, "membership": membership,
            "figure": figure, "cpu_s": time.process_time() - t0, "inversion_cpu_s": t_inv,
            "victim": "LeNetSigmoid at init, 8x8 digits; MLP 64-128-128-10 for membership"}
    if figure:
        print(f"wrote {figure} and benchmarks/results/leakage.json/.md", flush=True,
              file=__import__("sys").stderr)
    return finish("leakage", data, table, args)
