"""The Flower ClientApp: one handler per protocol stage (``query.hello``, then per round
``query.advertise_keys``, ``query.share_keys``, ``train.masked_input``,
``query.unmasking`` for masking, with ``query.consistency_check`` before unmasking in its
authenticated mode, ``train.plain_input`` for plain).

The SuperNode may start a fresh ClientApp process for every message, so everything a
client needs between stages lives in ``context.state`` (which the SuperNode keeps in its
memory for the run and hands to each ClientApp process):

* ``pc_node`` (ConfigRecord, whole run): ``cid`` (= ``partition-id``), ``dim`` (model
  size), ``n_examples``. Not secret.
* ``pc_round`` (ConfigRecord, one round only): ``round``, ``stage`` and ``state``, the
  backend's client state as explicit bytes (:func:`fl.flower.protocols.dump_masking_state`:
  the round's two X25519 secret keys, the self-mask seed, the neighbours' public keys,
  the Shamir shares this client holds and the round's public id sets). SECRET. It is written after ``advertise_keys``,
  replaced after each stage, and deleted after the ``unmasking`` reply, when a handler
  fails, and when a new round starts. If the SuperLink aborts a round after key set-up, the
  record stays in the SuperNode's memory until the next round's first stage or the end of
  the run (the SuperNode process ends). The update itself is never stored: it is computed
  (local training, clip, local noise, compression: :meth:`fl.client.ClientPipeline.run`,
  the same call the simulation makes) inside the input stage's handler and used there.

Data: ``partition-id`` / ``num-partitions`` of the node config pick this node's part of
the built-in data set named by the run config (:class:`fl.flower.config.Scenario`).
Torch is imported only in the input stage, so the key-agreement stages start fast.
``ckks``: the node's provisioned secret context is read from the file named by the node
config key ``ckks-context`` (:func:`fl.flower.launch.provision_ckks` writes them).
Authenticated ``masking``: the node's Ed25519 identity is read from the file named by the
node config key ``identity-key`` (32 raw bytes, SECRET) and the enrolment (every client's
public key) from ``enrolment`` (:func:`privcrypt.identity.save_enrolment` format;
:func:`fl.flower.launch.provision_identities` writes both). A node with an ``identity-key``
always runs the authenticated mode: it refuses a round the server announces as
unauthenticated, whatever the run config says.
"""

from __future__ import annotations

import time

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fl.flower.config import Scenario, from_run_config
from fl.flower.protocols import INPUT_STAGE, MASKING_AUTH_STAGES, STAGES, client_handle
from privcrypt.exceptions import MalformedInput
from privcrypt.rng import resolve_rng
from privcrypt.wire import unpack_array

__all__ = ["app"]

app = ClientApp()


def _partition(context: Context) -> tuple[int, int]:
    nc = context.node_config
    try:
        pid, n = int(nc["partition-id"]), int(nc["num-partitions"])
    except (KeyError, TypeError, ValueError):
        raise ValueError("the SuperNode needs --node-config 'partition-id=I num-partitions=N'") from None
    if not 0 <= pid < n:
        raise ValueError(f"partition-id {pid} must be in [0, num-partitions={n})")
    return pid, n


def _my_data(context: Context):
    cfg, deploy = from_run_config(context.run_config)
    pid, n = _partition(context)
    sc = Scenario(cfg, deploy)
    X, y = sc.clients(n)[pid]
    return cfg, sc, pid, n, X, y


@app.query("hello")
def hello(msg: Message, context: Context) -> Message:
    """Set-up stage: the server sends the model size; the node answers with its client id
    (``partition-id``) and example count (no torch import here: it is slow to start)."""
    content = msg.content
    if set(content.keys()) != {"hello"}:
        raise MalformedInput("hello request must hold one record 'hello'")
    rec = content.config_records["hello"]
    dim = rec["dim"] if set(rec.keys()) == {"dim"} else None
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim < 1 << 31:
        raise MalformedInput("hello request needs the model size 'dim'")
    _, _, pid, _, X, _ = _my_data(context)
    context.state["pc_node"] = ConfigRecord({"cid": pid, "dim": dim, "n_examples": int(len(X))})
    if "pc_round" in context.state:
        del context.state["pc_round"]
    return Message(RecordDict({"hello": ConfigRecord({"cid": pid, "n_examples": int(len(X)), "dim": dim})}),
                   reply_to=msg)


def _train(context: Context, cid: int, global_vec: np.ndarray, round_no: int, rng):
    """The client's whole round before secure aggregation, as in simulation."""
    import torch

    from fl.client import ClientPipeline, LocalTrainer
    from fl.compression import make_compressor
    from fl.privacy import make_privacy
    from fl.server import round_bound, sampling_rate

    cfg, sc, pid, n, X, y = _my_data(context)
    if pid != cid:
        raise ValueError("node configuration changed during the run")
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    model_fn = sc.model_fn()
    # example unit: this client's own DP-SGD calibration; client unit: N and q as the server
    sizes = {cid: len(X)} if cfg.dp_unit == "example" else {i: 1 for i in range(n)}
    privacy = make_privacy(cfg, sizes, sampling_rate(cfg, n))
    compressor = make_compressor(cfg.compression, topk_fraction=cfg.topk_fraction, rng=rng)
    pipeline = ClientPipeline(LocalTrainer(model_fn, sc.dataset.task, cfg), cfg, privacy=privacy,
                              compressor=compressor, bound=round_bound(cfg, privacy))
    return pipeline.run(cid, X, y, global_vec, round_no, rng=rng)


def _ckks_extra(context: Context, cfg) -> dict:
    """ckks: this node's provisioned secret context (file named by the node config key
    ``ckks-context``) and the client parameters the server's backend uses."""
    from fl.privacy import make_privacy
    from fl.server import round_bound, sampling_rate

    path = context.node_config.get("ckks-context")
    if not path:
        raise ValueError("ckks needs --node-config 'ckks-context=\"/path/to/client.ctx\"' (provisioned key)")
    with open(str(path), "rb") as fh:
        secret = fh.read()
    bp = cfg.backend_params
    _, n = _partition(context)
    clip = bp.get("clip")
    if clip is None and bp.get("mode") == "compact":  # as fl.server.make_backend derives it
        local = cfg.dp and cfg.dp_unit == "client"  # only client-level DP widens the bound
        clip = round_bound(cfg, make_privacy(cfg, {i: 1 for i in range(n)}, sampling_rate(cfg, n)) if local else None)
    return {"secret_context": secret, "params": {"mode": bp.get("mode", "default"), "clip": clip,
                                                 "bits": bp.get("bits", 16)}}


def _masking_extra(context: Context, cfg, cid: int) -> dict:
    """masking: ``strict`` from the run config and, when the node config names an
    ``identity-key``, this node's identity and the enrolment (authenticated mode)."""
    from privcrypt.exceptions import UnsupportedParameters

    bp = cfg.backend_params
    out = {"strict": bool(bp.get("strict", False))}
    key_path = context.node_config.get("identity-key")
    if not key_path:
        if bp.get("authenticated"):
            raise UnsupportedParameters("authenticated masking needs this node's Ed25519 identity: --node-config "
                                        "'identity-key=\"/path/key\" enrolment=\"/path/enrolment.json\"'")
        return out
    from privcrypt.identity import IdentityKey, load_enrolment
    enrol_path = context.node_config.get("enrolment")
    if not enrol_path:
        raise UnsupportedParameters("node config names an identity-key but no enrolment file")
    with open(str(key_path), "rb") as fh:
        seed = fh.read()
    if len(seed) != 32:
        raise ValueError(f"identity key file {key_path} must hold 32 raw bytes")
    identity = IdentityKey(seed)
    enrolment = load_enrolment(str(enrol_path))
    if enrolment.get(cid) != identity.public:
        raise ValueError(f"the enrolment does not list this node's identity for client {cid}")
    out.update(identity=identity, enrolment=enrolment)
    return out


def _parse_request(msg: Message, stage: str, dim: int, with_model: bool):
    content = msg.content
    names = set(content.keys())
    if names != ({"pc", "model"} if with_model else {"pc"}):
        raise MalformedInput(f"unexpected records in request: {sorted(names)}")
    pc = content.config_records["pc"]
    if set(pc.keys()) != {"stage", "round", "msg"} or pc["stage"] != stage or not isinstance(pc["msg"], bytes):
        raise MalformedInput("bad request record")
    r = pc["round"]
    if isinstance(r, bool) or not isinstance(r, int) or r < 1 or str(r) != msg.metadata.group_id:
        raise MalformedInput("bad round number")
    vec = None
    if with_model:
        mr = content.config_records["model"]
        if set(mr.keys()) != {"vec"} or not isinstance(mr["vec"], bytes):
            raise MalformedInput("bad model record")
        vec = unpack_array(mr["vec"], dtype=np.float64, shape=(dim,))
        if not np.all(np.isfinite(vec)):
            raise MalformedInput("global model has NaN or Inf")
    return r, pc["msg"], vec


def _stage_handler(backend: str, stage: str):
    def handler(msg: Message, context: Context) -> Message:
        t0 = time.perf_counter()
        try:
            if "pc_node" not in context.state:
                raise ValueError("no hello stage ran on this node for this run")
            node = context.state.config_records["pc_node"]
            cid, dim = int(node["cid"]), int(node["dim"])
            is_input = stage == INPUT_STAGE[backend]
            round_no, payload, global_vec = _parse_request(msg, stage, dim, is_input)
            state = None
            if "pc_round" in context.state:
                prev = context.state.config_records["pc_round"]
                if prev["round"] == round_no:
                    state = prev["state"]
            rng = resolve_rng(None)  # OS CSPRNG: keys, masks, shares, noise
            cfg, _ = from_run_config(context.run_config)
            update, metrics = None, None
            if is_input:
                update, metrics = _train(context, cid, global_vec, round_no, rng)
            extra = (_ckks_extra(context, cfg) if backend == "ckks"
                     else _masking_extra(context, cfg, cid) if backend == "masking" else {})
            reply, new_state = client_handle(backend, stage, state, payload, cid=cid, dim=dim, update=update,
                                             rounding=cfg.backend_params.get("rounding", "stochastic"), rng=rng,
                                             **extra)
        except BaseException:
            if "pc_round" in context.state:  # never leave a failed round's secrets behind
                del context.state["pc_round"]
            raise
        if new_state is None:
            if "pc_round" in context.state:
                del context.state["pc_round"]
        else:
            context.state["pc_round"] = ConfigRecord({"round": round_no, "stage": stage, "state": new_state})
        rd = RecordDict({"pc": ConfigRecord({"msg": reply}),
                         "timing": MetricRecord({"handler_s": time.perf_counter() - t0})})
        if metrics is not None:
            rd["metrics"] = MetricRecord({k: float(v) for k, v in metrics.items()
                                          if k in ("loss", "norm", "clipped", "compress_clipped", "n_examples",
                                                   "recon_q99") and np.isfinite(float(v))})
        return Message(rd, reply_to=msg)

    handler.__name__ = f"{backend}_{stage}"
    return handler


_seen: set = set()
for _backend, _stages in (*STAGES.items(), ("masking", MASKING_AUTH_STAGES)):
    for _stage, _category in _stages:
        if _stage in _seen:
            continue
        _seen.add(_stage)
        getattr(app, _category)(_stage)(_stage_handler(_backend, _stage))
