"""The report writer: ``index.html`` (self-contained), ``report.md`` and ``results.json``.

:func:`write_report` takes the results dict built by :mod:`reporting.demo` (or any dict of
the same shape: ``{"sections": {name: {"quick": dict|None, "full": dict|None, "status":
str, "seconds": float|None}}}``), draws the figures of :mod:`reporting.figures` into the
folder and writes the page. The page has inline CSS, PNG figures referenced by their file
name, and no external URL (no network, no CDN); links to the docs are relative.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Callable

# -- headlines: one sentence per section, computed from a result dict ----------------------


def _f(x, fmt=".3g"):
    return "?" if x is None else format(x, fmt)


def _rows(d, key="rows"):
    return [r for r in (d or {}).get(key) or [] if isinstance(r, dict)]


def h_rng(d):
    r = next((r for r in _rows(d) if r.get("case") == "uniform_uint64"), None)
    return r and (f"privcrypt's CSPRNG draws uniform 64-bit words at {_f(r['ours_M_per_s'])} M/s, "
                  f"{_f(r['ours_over_numpy'])}x the speed of numpy's PCG64 (not a CSPRNG)")


def h_mpc(d):
    rs = [r for r in _rows(d) if r.get("op") == "share+open"]
    r = max(rs, key=lambda r: r["n"]) if rs else None
    return r and (f"SPDZ share+open of {r['n']:,} values runs at {_f(r['ours_M_per_s'])} M values/s, "
                  f"{_f(r['slowdown_vs_numpy'])}x slower than the plaintext numpy {r.get('numpy_op', 'op')}")


def h_he(d):
    by = {r.get("variant"): r for r in _rows(d)}
    o, t = by.get("ours_default"), by.get("tenseal_flare")
    return o and t and (f"our CKKS aggregation uploads {_f(o['up_B_per_value'])} bytes per value vs "
                        f"{_f(t['up_B_per_value'])} for the FLARE-style TenSEAL recipe "
                        f"({_f(t['up_B_per_value'] / o['up_B_per_value'])}x less) and uses "
                        f"{_f(o['server_aggregate_cpu_s'] / t['server_aggregate_cpu_s'])}x its server CPU")


def h_secagg(d):
    rs = [r for r in _rows(d) if r.get("backend") == "masking" and r.get("dropout") == 0.0]
    r = max(rs, key=lambda r: (r["clients"], -r["values"])) if rs else None
    q32 = f" ({_f(r['up_vs_q32'])}x a 32-bit vector)" if r.get("up_vs_q32") is not None else ""
    return r and (f"masking secure aggregation with {r['clients']} clients x {r['values']:,} values uploads "
                  f"{_f(r.get('up_vs_plain'))}x the bytes of plain FedAvg's float64 update{q32} and needs "
                  f"{_f(r.get('server_cpu_vs_plain'))}x its server CPU")


def h_dp(d):
    rs = _rows(d)
    o = next((r for r in rs if r.get("accountant") == "rdp" and r.get("impl") == "privcrypt"), None)
    p = next((r for r in rs if r.get("accountant") == "rdp" and r.get("impl") == "dp-accounting"
              and r.get("sigma") == (o or {}).get("sigma") and r.get("q") == (o or {}).get("q")), None)
    return o and p and (f"RDP accounting of 10,000 subsampled-Gaussian steps (sigma {o['sigma']}, q {o['q']}) "
                        f"takes {_f(o['wall_s'] * 1e3)} ms here, {_f(p['peer_over_ours'])}x faster than "
                        f"dp-accounting, with epsilon {_f(o['epsilon'], '.4f')} vs {_f(p['epsilon'], '.4f')}")


def h_ddp(d):
    s = _rows(d, "sampler")
    c = _rows(d, "calibration")
    if not s:
        return None
    out = (f"the exact discrete Gaussian sampler draws {_f(s[0]['exact_dgauss_M_per_s'])} M samples/s, "
           f"{_f(s[0]['numpy_over_ours'])}x slower than numpy's float normal (sigma {s[0]['sigma']:g})")
    if c:
        out += f"; distributed DGauss needs {_f(c[0]['zhu_wang_over_central'])}x the central noise multiplier"
    return out


def h_imaging(d):
    s = (d or {}).get("summary") or {}
    p = s.get("psnr_median") or {}
    w = s.get("wu_pass_rates") or {}
    if not p:
        return None
    out = (f"decrypted PSNR (median) is {_f(p.get('paper/fixed-order'))} dB in the fixed decoding order vs "
           f"{_f(p.get('paper/paper-order'))} dB in the paper's order")
    if w.get("paper") and w.get("aes-256-gcm"):
        out += (f"; the paper's cipher passes Wu's NPCR test at alpha 0.05 for "
                f"{_f(100 * w['paper'].get('npcr@0.05', 0), '.0f')}% of positions vs "
                f"{_f(100 * w['aes-256-gcm'].get('npcr@0.05', 0), '.0f')}% for AES-256-GCM "
                f"(diffusion: {_f(100 * w.get('diffusion-noise-free', {}).get('npcr@0.05', 0), '.0f')}%)")
    return out


def h_denoise(d):
    g = (d or {}).get("dncnn_minus_bm3d_psnr_db") or {}
    if not g:
        return None
    k = "sigma_25" if "sigma_25" in g else sorted(g)[0]
    return f"DnCNN's mean PSNR is {_f(g[k], '+.2f')} dB against BM3D at {k.replace('_', ' ')}"


def h_fl(d):
    ratios = (d or {}).get("ratios") or {}
    if not ratios:
        return None
    key, s = next(iter(ratios.items()))
    parts = [f"{b} {_f(s[f'{b} wall/round vs plain'])}x" for b in ("masking", "spdz", "ckks")
             if s.get(f"{b} wall/round vs plain") is not None]
    gap = s.get("masking accuracy gap (points)")
    by = {(f"{r.get('dataset')}/{r.get('partition')}", r.get("row")): r for r in _rows(d)}
    fa, ce = by.get((key, "fedavg")), by.get((key, "centralized"))
    acc = ""
    if fa and ce and fa.get("accuracy") is not None and ce.get("accuracy") is not None:
        acc = (f"FedAvg reaches {_f(100 * fa['accuracy'], '.1f')}% accuracy vs {_f(100 * ce['accuracy'], '.1f')}% "
               f"centralized after {fa.get('rounds', '?')} rounds; ")
    return (acc + f"on {key}, wall time per round vs plain FedAvg: " + ", ".join(parts)
            + (f"; masking's accuracy gap {_f(gap, '+.2f')} points" if gap is not None else ""))


def h_fl_data(d):
    r = next((r for r in _rows(d) if r.get("dataset") == "digits"), None)
    return r and r.get("accuracy") is not None and (
        f"centralized logistic regression reaches {_f(100 * r['accuracy'], '.1f')}% on digits; our macro F1 "
        f"differs from scikit-learn's by {_f(abs(r['f1_macro'] - r['sk_f1_macro']), '.1g')}")


def h_robust(d):
    k = _rows(d, "krum_on_shares")
    if not k:
        return None
    r = k[0]
    return (f"Multi-Krum on SPDZ shares ({r['clients']} clients x {r['values']:,} values) costs "
            f"{_f(r.get('cpu_krum_shares_vs_plain'))}x the CPU of plain Krum; the Gram route uses "
            f"{_f(1 / r['pairwise_vs_gram_cpu'] if r.get('pairwise_vs_gram_cpu') else None)}x the CPU of "
            f"pairwise Beaver distances")


def h_adversarial(d):
    m = (d or {}).get("models") or {}
    if "None" not in m:
        return None

    def adv(row):
        vals = [v for k, v in row.items() if k != "Nature"]
        return sum(vals) / len(vals)

    best = max((k for k in m if k != "None"), key=lambda k: adv(m[k]), default=None)
    return best and (f"mean accuracy under the attacks rises from {_f(100 * adv(m['None']), '.0f')}% "
                     f"(no defence) to {_f(100 * adv(m[best]), '.0f')}% ({best})")


def h_leakage(d):
    inv = (d or {}).get("inversion") or {}
    p = inv.get("plain")
    k = next((inv[x] for x in ("masking_K10", "masking_K5", "masking_K2", "masking") if x in inv), None)
    return p and k and (f"gradient inversion recovers the plain update's image at {_f(p['psnr'])} dB PSNR vs "
                        f"{_f(k['psnr'])} dB through masking with K={k.get('K', '?')} clients "
                        f"(random guess: {_f(p.get('baseline_psnr'))} dB)")


def h_flower(d):
    r = (d or {}).get("ratio_seconds_per_round")
    return r and f"a loopback Flower round takes {_f(r)}x the in-process simulation's"


# name -> (title, doc page, what is measured, headline function)
SECTIONS: dict[str, tuple[str, str, str, Callable]] = {
    "rng": ("Randomness", "rng.md", "CSPRNG throughput against numpy's PCG64", h_rng),
    "mpc": ("SPDZ engine", "mpc.md", "SPDZ share/open/multiply throughput against plaintext numpy", h_mpc),
    "he": ("CKKS aggregation", "he.md", "CKKS bytes per value and CPU against the FLARE-style TenSEAL recipe", h_he),
    "secagg": ("Secure aggregation", "secagg.md",
               "bytes and CPU of the plain, masking, SPDZ and CKKS backends vs clients and dropout", h_secagg),
    "dp": ("DP accounting", "dp.md", "RDP and PLD accountants against dp-accounting and Opacus", h_dp),
    "ddp": ("Distributed DP", "dp.md", "the exact discrete Gaussian sampler, DDGauss codec and calibration", h_ddp),
    "imaging": ("FLEP image protection", "imaging.md",
                "seed 004's Table I metrics, Wu's tests and decrypted quality against AES-GCM", h_imaging),
    "denoise": ("Denoisers", "denoise.md", "DnCNN against BM3D, NLM and TV", h_denoise),
    "fl": ("Federated learning", "fl.md",
           "seed 001's Table 2: FedAvg, DP and secure backends against centralized training", h_fl),
    "fl_data": ("FL data sets", "fl_data.md", "the data sets with centralized baselines; our metrics vs scikit-learn",
                h_fl_data),
    "robust": ("Robust aggregation", "robust.md", "robust rules under Byzantine attacks; Multi-Krum on shares",
               h_robust),
    "adversarial": ("Adversarial robustness", "adversarial.md",
                    "accuracy under evasion attacks with and without FDA³ adversarial training", h_adversarial),
    "leakage": ("Leakage", "leakage.md", "gradient inversion and membership inference per configuration",
                h_leakage),
    "flower": ("Flower deployment", "deploy.md", "FL rounds over a loopback Flower federation vs in-process",
               h_flower),
}


def headline(name: str, data: dict | None) -> str | None:
    """The section's headline sentence from one result dict, or None."""
    fn = SECTIONS.get(name, (None, None, None, lambda d: None))[3]
    if not data:
        return None
    try:
        return fn(data) or None
    except (KeyError, TypeError, ValueError, ZeroDivisionError, StopIteration):
        return None


# -- markdown tables to HTML -----------------------------------------------------------------
_CELL_NUM = re.compile(r"^-?[\d.]+(e[-+]?\d+)?$")


def md_to_html(md: str) -> str:
    """The small markdown subset the benchmarks write: tables, ``#`` headings, code fences,
    paragraphs. Everything is escaped."""
    out, table, code, para = [], [], None, []

    def flush_table():
        if not table:
            return
        head = [c.strip() for c in table[0].strip("|").split("|")]
        body = [[c.strip() for c in r.strip("|").split("|")] for r in table[2:]]
        cls = ' class="long"' if len(body) > 20 else ""
        h = ["<div class=\"tw\"><table%s><thead><tr>" % cls + "".join(f"<th>{html.escape(c)}</th>" for c in head)
             + "</tr></thead><tbody>"]
        for r in body:
            h.append("<tr>" + "".join(
                f"<td class=\"n\">{html.escape(c)}</td>" if _CELL_NUM.match(c) else f"<td>{html.escape(c)}</td>"
                for c in r) + "</tr>")
        h.append("</tbody></table></div>")
        t = "".join(h)
        if len(body) > 20:
            t = f"<details><summary>table: {len(body)} rows</summary>{t}</details>"
        out.append(t)
        table.clear()

    def flush_para():
        if para:
            text = html.escape(" ".join(para))
            out.append("<p>" + re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text) + "</p>")
            para.clear()

    for line in md.splitlines():
        if code is not None:
            if line.startswith("```"):
                out.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("```"):
            flush_table(), flush_para()
            code = []
        elif line.startswith("|"):
            flush_para()
            table.append(line)
        else:
            flush_table()
            if line.startswith("#"):
                flush_para()
                out.append(f"<h4>{html.escape(line.lstrip('#').strip())}</h4>")
            elif line.strip():
                para.append(line.strip())
            else:
                flush_para()
    flush_table(), flush_para()
    if code is not None:
        out.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
    return "\n".join(out)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9;line-height:1.45}
header{background:#1d2a44;color:#fff;padding:18px 32px}header h1{margin:0 0 4px;font-size:24px}
header p{margin:0;color:#c9d3e6;font-size:13px}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #dde2ea;padding:8px 32px;z-index:2;font-size:13px}
nav a{margin-right:12px;color:#2a5bd7;text-decoration:none;white-space:nowrap}
main{max-width:1180px;margin:0 auto;padding:12px 32px 48px}
section{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:14px 22px;margin:18px 0}
h2{margin:4px 0 6px;font-size:20px}h4{margin:14px 0 4px;font-size:14px;color:#44506a}
.lead{font-size:15px;margin:6px 0}.src{font-size:12px;color:#5a6478;margin:4px 0}
.badge{display:inline-block;font-size:11px;padding:1px 8px;border-radius:10px;margin-left:8px;vertical-align:middle}
.ok{background:#dff3e4;color:#17622d}.full{background:#e3ebfb;color:#23479b}.bad{background:#fde2e0;color:#9b1c12}
.warn{background:#fff3d6;color:#7a5200}
.tw{overflow-x:auto;margin:6px 0}table{border-collapse:collapse;font-size:12px}
th,td{border-bottom:1px solid #e6e9ef;padding:3px 8px;text-align:left;white-space:nowrap}
th{background:#f0f3f8;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:hover{background:#f7f9fc}
figure{margin:12px 0}figure img{max-width:100%;border:1px solid #eef0f4}
figcaption{font-size:12px;color:#5a6478}
.missing{background:#fff6e5;border-left:3px solid #e0a100;padding:6px 10px;font-size:13px}
.failed{background:#fdecea;border-left:3px solid #c62828;padding:6px 10px;font-size:13px}
section p{font-size:13px}section p.lead{font-size:15px}
pre{background:#f3f5f8;padding:8px;font-size:12px;overflow-x:auto}
details summary{cursor:pointer;color:#2a5bd7;font-size:13px;margin:6px 0}
"""


def _doc_link(doc: str, doc_base: str | None) -> str:
    if doc_base:
        return f'<a href="{html.escape(doc_base)}/{doc}">docs/{doc}</a>'
    return f"docs/{doc} in the source checkout"


def section_html(name: str, entry: dict, figs: list[dict], doc_base: str | None) -> str:
    """One section of the page."""
    title, doc, what, _ = SECTIONS.get(name, (name, f"{name}.md", name, None))
    quick, full, status = entry.get("quick"), entry.get("full"), entry.get("status", "")
    full_ok = isinstance(full, dict) and "_error" not in full
    hq, hf = headline(name, quick), headline(name, full if full_ok else None)
    ts = full.get("timestamp", "?") if full_ok else None
    parts = [f'<section id="{name}"><h2>{html.escape(title)}']
    if status == "ok":
        parts.append('<span class="badge ok">quick run ok</span>')
    elif status.startswith(("failed", "skipped")):
        parts.append('<span class="badge bad">quick run ' + html.escape(status.split(":")[0]) + "</span>")
    if full_ok:
        parts.append(f'<span class="badge full">full results {html.escape(ts)}</span>')
    parts.append("</h2>")
    lead = f"Measured: {what}."
    main_h = hf or hq
    if main_h:
        lead += f" Headline{' (full results)' if hf else ' (this quick run)'}: {main_h}."
    parts.append(f'<p class="lead">{html.escape(lead)} Details: {_doc_link(doc, doc_base)}.</p>')
    if hf and hq:
        parts.append(f'<p class="src">This demo\'s quick run ({_f(entry.get("seconds"), ".0f")} s, small sizes): '
                     f'{html.escape(hq)}.</p>')
    if status.startswith(("failed", "skipped")):
        parts.append(f'<p class="failed">The quick run {html.escape(status)}</p>')
    elif status != "ok":
        parts.append(f'<p class="missing">Quick run: {html.escape(status)}.</p>')
    if full_ok and full.get("table_md"):
        parts.append(f'<p class="src">Table: full results from benchmarks/results/{name}.json ({html.escape(ts)}, '
                     f'{html.escape(str((full.get("machine") or {}).get("cpu", "?")))}, '
                     f'{(full.get("machine") or {}).get("cores", "?")} cores).</p>')
        parts.append(md_to_html(full["table_md"]))
    elif quick and quick.get("table_md"):
        parts.append('<p class="src">Table: this demo\'s quick run (small sizes; no committed full results).</p>')
        parts.append(md_to_html(quick["table_md"]))
    else:
        if isinstance(full, dict) and "_error" in full:
            parts.append(f'<p class="failed">Full results: {html.escape(full["_error"])}</p>')
        parts.append('<p class="missing">No table: neither a quick run nor committed full results '
                     f'(benchmarks/results/{name}.json) are available.</p>')
    for f in figs:
        if "file" in f:
            parts.append(f'<figure><img src="{html.escape(f["file"])}" alt="{html.escape(f["figure"])}">'
                         f'<figcaption>{html.escape(f["caption"])}</figcaption></figure>')
        else:
            parts.append(f'<p class="missing">Figure {html.escape(f["figure"])} is missing: '
                         f'{html.escape(f["missing"])}.</p>')
    parts.append("</section>")
    return "\n".join(parts)


def section_md(name: str, entry: dict, figs: list[dict]) -> str:
    """The same section as markdown."""
    title, doc, what, _ = SECTIONS.get(name, (name, f"{name}.md", name, None))
    quick, full = entry.get("quick"), entry.get("full")
    full_ok = isinstance(full, dict) and "_error" not in full
    hq, hf = headline(name, quick), headline(name, full if full_ok else None)
    lines = [f"## {title}", "", f"Measured: {what}. Doc: docs/{doc}. Quick run: {entry.get('status')}."]
    if hf:
        lines.append(f"Headline (full results, {full.get('timestamp')}): {hf}.")
    if hq:
        lines.append(f"Headline (this quick run): {hq}.")
    table = (full.get("table_md") if full_ok else None) or (quick or {}).get("table_md")
    if table:
        src = f"full results ({full.get('timestamp')})" if full_ok and full.get("table_md") else "this quick run"
        lines += ["", f"Table from {src}:", "", table]
    for f in figs:
        lines.append("")
        lines.append(f"![{f['figure']}]({f['file']})  \n{f['caption']}" if "file" in f
                     else f"Figure {f['figure']} missing: {f['missing']}.")
    return "\n".join(lines) + "\n"


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` next to ``path`` and rename it into place."""
    import os

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_report(results: dict, out: Path, *, doc_base: str | None = None) -> dict:
    """Draw the figures and write ``index.html``, ``report.md`` and ``results.json`` into
    ``out``; returns ``{"figures": [file names], "missing": [...]}``."""
    import shutil

    from privcrypt.cli import dumps_strict
    from reporting.figures import draw

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    secs = results.get("sections", {})
    figs = {name: draw(name, results, out) for name in secs}
    shutil.rmtree(out / "_imaging", ignore_errors=True)
    results["figures"] = figs
    gen = results.get("generated", "")
    load = results.get("load_average")
    tot = results.get("total_seconds")
    info = f"generated {gen}" + (f" in {tot:.0f} s" if tot is not None else "") + (
        f"; load average {load[0]:.1f} on {__import__('os').cpu_count()} cores" if load else "")
    nav = "\n".join(f'<a href="#{n}">{html.escape(SECTIONS.get(n, (n,))[0])}</a>' for n in secs)
    body = "\n".join(section_html(n, e, figs[n], doc_base) for n, e in secs.items())
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>privcrypt report</title><style>{CSS}</style></head><body>"
            f"<header><h1>privcrypt report</h1><p>Every benchmark against its peer, measured in the same run. "
            f"Quick-run numbers use small sizes; tables come from the committed full results where they exist. "
            f"{html.escape(info)}.</p></header><nav>{nav}</nav><main>{body}</main></body></html>\n")
    atomic_write(out / "index.html", page)
    md = [f"# privcrypt report\n\n{info}. Open index.html for the figures.\n"]
    md += [section_md(n, e, figs[n]) for n, e in secs.items()]
    atomic_write(out / "report.md", "\n".join(md))
    atomic_write(out / "results.json", dumps_strict(results, indent=1) + "\n")
    files = [f["file"] for fs in figs.values() for f in fs if "file" in f]
    return {"figures": files, "missing": [f for fs in figs.values() for f in fs if "missing" in f]}
