"""The Flower ServerApp: waits for the SuperNodes, learns each one's client id, example
count and model size in a ``query.hello`` stage, then calls :func:`fl.server.serve` (the
round loop the simulation runs) with a :class:`fl.flower.transport.FlowerTransport`:
sampling, the DP budget guard, central noise, accounting, robust rules, the strategy and
evaluation on the server-held test set run exactly as in simulation.

The History (plus the transport's per-stage log) is written as JSON to the run config's
``result_file`` with ``"status": "ok"`` or ``"error"`` — ``flwr run --stream`` exits 0
even when the ServerApp fails, so callers check this file.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from fl.flower.config import Scenario, from_run_config
from fl.flower.transport import FlowerTransport, parse_hello
from privcrypt.exceptions import MalformedInput, UnsupportedParameters
from privcrypt.rng import resolve_rng

__all__ = ["app", "serve_flower"]

app = ServerApp()


def _write(path: str, obj: dict) -> None:
    if not path:
        return
    from fl.history import json_safe
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(json_safe(obj), allow_nan=False), encoding="utf-8")
    os.replace(tmp, p)


def _wait_nodes(grid: Grid, want: int, wait_s: float) -> list[int]:
    deadline = time.monotonic() + wait_s
    ids = sorted(grid.get_node_ids())
    while len(ids) < want and time.monotonic() < deadline:
        time.sleep(0.2)
        ids = sorted(grid.get_node_ids())
    return ids


def _hello(grid: Grid, node_ids: list[int], dim: int, timeout: float, poll: float):
    """The set-up stage. Returns ``(client id -> node id, sizes, dims, failures)``."""
    probe = FlowerTransport(grid, None, {i: i for i in node_ids}, dim=1, rng=None, stage_timeout=timeout,
                            poll_interval=poll)
    contents = {i: RecordDict({"hello": ConfigRecord({"dim": int(dim)})}) for i in node_ids}
    replies, failed, _ = probe.exchange(contents, "query.hello", "0")
    nodes, sizes, dims = {}, {}, {}
    for node, rep in replies.items():
        try:
            cid, n, dim = parse_hello(rep)
            if cid in nodes:
                raise MalformedInput(f"client id {cid} claimed by two nodes")
        except MalformedInput as exc:
            failed[node] = str(exc)
            continue
        nodes[cid], sizes[cid], dims[cid] = node, n, dim
    return nodes, sizes, dims, failed


def serve_flower(grid: Grid, context: Context) -> tuple[dict, dict]:
    """The ServerApp's work: returns ``(History dict, transport info)``."""
    import torch

    from fl.checks import check_combination
    from fl.client import get_vector
    from fl.privacy import make_privacy
    from fl.server import make_backend, round_bound, sampling_rate, serve

    t_start = time.perf_counter()
    cfg, deploy = from_run_config(context.run_config)
    if cfg.backend not in ("plain", "masking", "ckks"):
        raise UnsupportedParameters(f"backend {cfg.backend!r} has no Flower adapter yet (plain, masking, ckks)")
    server_context = None
    if cfg.backend == "ckks":
        if not deploy["ckks_server_context"]:
            raise ValueError("ckks needs run config ckks_server_context = path of the provisioned public context")
        server_context = Path(str(deploy["ckks_server_context"])).read_bytes()
    enrolment = None
    if cfg.backend == "masking" and cfg.backend_params.get("authenticated"):
        if not deploy["enrolment_file"]:
            raise UnsupportedParameters("authenticated masking needs run config enrolment_file = path of the "
                                        "enrolment (every client's Ed25519 public key)")
        from privcrypt.identity import load_enrolment
        enrolment = load_enrolment(str(deploy["enrolment_file"]))
    if cfg.byzantine:
        raise UnsupportedParameters("simulated Byzantine clients exist in simulation only")
    if cfg.dp and cfg.dp_unit == "client" and cfg.dp_mode == "distributed":
        raise UnsupportedParameters("distributed DP needs each round's public rotation seed on the clients; "
                                    "not carried over Flower yet (use it in simulation)")
    if cfg.adv_train is not None:
        raise UnsupportedParameters("adversarial training runs in simulation only for now")
    if cfg.compression == "topk":
        raise UnsupportedParameters("top-k compression keeps error feedback across rounds; not on Flower yet")
    torch.set_num_threads(cfg.torch_threads)
    sc = Scenario(cfg, deploy)
    test, scale = sc.test_set()
    torch.manual_seed(cfg.seed)
    model = sc.model_fn()()
    dim = int(get_vector(model).size)
    want = int(deploy["num_clients"])
    t_ready = time.perf_counter()
    node_ids = _wait_nodes(grid, want, float(deploy["node_wait"]))
    t_nodes = time.perf_counter()
    nodes, sizes, dims, hello_failed = _hello(grid, node_ids, dim, float(deploy["stage_timeout"]),
                                             float(deploy["poll_interval"]))
    t_hello = time.perf_counter()
    if not nodes:
        raise RuntimeError(f"no SuperNode answered the hello stage ({len(node_ids)} connected): {hello_failed}")
    bad = {c: d for c, d in dims.items() if d != dim}
    if bad:
        raise MalformedInput(f"clients {sorted(bad)} echoed another model size than the server's ({dim})")
    check_combination(cfg, model, len(sizes))
    rng = resolve_rng(None)
    privacy = make_privacy(cfg, sizes, sampling_rate(cfg, len(sizes)), dim=dim)
    equal = privacy is not None and privacy.unit == "client"
    ratio = 1.0 if equal else max(sizes.values()) / min(sizes.values())
    per_round = cfg.clients_per_round or len(sizes)
    backend = make_backend(cfg, round_bound(cfg, privacy), rng, per_round, privacy, ratio)
    transport = FlowerTransport(grid, backend, nodes, dim=dim, rng=rng, stage_timeout=float(deploy["stage_timeout"]),
                                poll_interval=float(deploy["poll_interval"]), after_stage=_hold_hook(deploy),
                                record_vectors=bool(deploy["record_vectors"]), server_context=server_context,
                                enrolment=enrolment)
    hist = serve(model, sizes, test, cfg, sc.dataset.task, transport, privacy=privacy, rng=rng, atol=backend.atol,
                 show_progress=False, target_scale=scale)
    info = {"nodes": {str(c): str(n) for c, n in nodes.items()}, "sizes": sizes, "hello_failed": hello_failed,
            "setup_s": t_ready - t_start, "wait_nodes_s": t_nodes - t_ready, "hello_s": t_hello - t_nodes, "dim": dim,
            "transport": transport.log, "total_s": time.perf_counter() - t_start}
    return hist.to_dict(), info


def _hold_hook(deploy: dict):
    """Fault injection (tests): after stage ``hold_after`` = ``"R.stage"`` write
    ``hold_dir/held`` and wait (at most ``node_wait`` s) for ``hold_dir/release``."""
    spec, d = str(deploy["hold_after"]), str(deploy["hold_dir"])
    if not spec or not d:
        return None
    r, _, stage = spec.partition(".")
    wait_s = float(deploy["node_wait"])

    def hook(round_no: int, st: str) -> None:
        if str(round_no) != r or st != stage:
            return
        Path(d, "held").write_text(f"{round_no}.{st}\n")
        deadline = time.monotonic() + wait_s
        while not Path(d, "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    return hook


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point Flower calls in the ServerApp process."""
    path = str(context.run_config.get("result_file", ""))
    _write(path, {"status": "running"})
    try:
        hist, info = serve_flower(grid, context)
    except BaseException as exc:
        _write(path, {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc()[-4000:]})
        raise
    _write(path, {"status": "ok", **hist, "flower": info})
