"""``FlowerTransport``: one FL round's messages over Flower's Message API (a ``Grid``).

Per round, one message stage per protocol stage of the backend's adapter
(:mod:`fl.flower.protocols`): message type ``<category>.<stage>`` (``query.advertise_keys``,
``train.masked_input``, ...), ``group_id`` = the round number. Request content:
``ConfigRecord "pc"`` = ``{"stage": str, "round": int, "msg": bytes}`` plus, at the input
stage, ``ConfigRecord "model"`` = ``{"vec": privcrypt.wire.pack_array(float64 vector)}``.
Reply content: ``ConfigRecord "pc"`` = ``{"msg": bytes}``; ``MetricRecord "metrics"`` at
the input stage (training metrics); ``MetricRecord "timing"`` (handler seconds).

Polling: our own loop (``push_messages`` then ``pull_messages`` of the still-pending ids
every ``poll_interval`` seconds) with a per-stage deadline. A node that answers with an
error (``has_error()``; a stopped SuperNode's error comes from the SuperLink), that
leaves the federation (no longer in ``get_node_ids()``, checked every
``liveness_interval`` s: a SuperNode stopped with SIGTERM deactivates itself), whose reply
is malformed or rejected by the backend, or that has not answered by the deadline is
dropped for the rest of the round; the backend then recovers or aborts
(``ProtocolAbort``) exactly as in simulation. Replies are mapped back through
``reply_to_message_id`` and must come from the node the request went to.
"""

from __future__ import annotations

import math
import time

import numpy as np

from fl.flower.protocols import INPUT_STAGE, make_server_round
from fl.transport import RoundOutput, Transport
from privcrypt.exceptions import MalformedInput, ProtocolAbort
from privcrypt.wire import pack_array

__all__ = ["FlowerTransport", "parse_reply", "parse_hello", "request_content", "METRIC_KEYS"]

#: training metrics a client may report (all optional, finite numbers)
METRIC_KEYS = ("loss", "norm", "clipped", "compress_clipped", "n_examples", "recon_q99")
_MAX_MSG = 1 << 30


def _records():
    from flwr.app import ConfigRecord, RecordDict
    return ConfigRecord, RecordDict


def request_content(stage: str, round_no: int, payload: bytes, global_vec: np.ndarray | None = None):
    """The ``RecordDict`` of one request (see module docstring)."""
    ConfigRecord, RecordDict = _records()
    rd = RecordDict({"pc": ConfigRecord({"stage": stage, "round": int(round_no), "msg": bytes(payload)})})
    if global_vec is not None:
        rd["model"] = ConfigRecord({"vec": pack_array(np.asarray(global_vec, dtype=np.float64))})
    return rd


def _finite(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise MalformedInput(f"{what} must be a finite number")
    return float(v)


def parse_reply(msg, *, with_metrics: bool = False) -> tuple[bytes, dict, float | None]:
    """Validate one reply message's content: returns ``(protocol bytes, metrics,
    handler seconds or None)``. Raises only ``MalformedInput`` (an error reply included:
    call it after checking ``has_error()``)."""
    try:
        if msg.has_error() or not msg.has_content():
            raise MalformedInput("reply has no content")
        content = msg.content
        names = set(content.keys())
    except MalformedInput:
        raise
    except Exception as exc:  # a foreign object: anything off is malformed
        raise MalformedInput(f"unreadable reply: {type(exc).__name__}") from None
    if not names <= {"pc", "metrics", "timing"} or "pc" not in names:
        raise MalformedInput(f"unexpected records in reply: {sorted(names)}")
    try:
        pc = content.config_records["pc"]
    except Exception:
        raise MalformedInput("reply record 'pc' is not a ConfigRecord") from None
    if set(pc.keys()) != {"msg"} or not isinstance(pc["msg"], bytes) or len(pc["msg"]) > _MAX_MSG:
        raise MalformedInput("reply 'pc' must hold exactly one bytes value 'msg'")
    metrics: dict = {}
    if "metrics" in names:
        if not with_metrics:
            raise MalformedInput("metrics outside the input stage")
        try:
            mr = content.metric_records["metrics"]
        except Exception:
            raise MalformedInput("reply record 'metrics' is not a MetricRecord") from None
        for k in mr.keys():
            if k not in METRIC_KEYS:
                raise MalformedInput(f"unknown metric {k!r}")
            metrics[k] = _finite(mr[k], f"metric {k}")
    elif with_metrics:
        raise MalformedInput("input-stage reply without metrics")
    seconds = None
    if "timing" in names:
        try:
            tr = content.metric_records["timing"]
        except Exception:
            raise MalformedInput("reply record 'timing' is not a MetricRecord") from None
        if set(tr.keys()) != {"handler_s"}:
            raise MalformedInput("timing record must hold handler_s only")
        seconds = _finite(tr["handler_s"], "handler_s")
    return pc["msg"], metrics, seconds


def parse_hello(msg) -> tuple[int, int, int]:
    """The first (set-up) stage's reply: ``(client id, number of examples, model size)``.
    Raises only ``MalformedInput``."""
    try:
        if msg.has_error() or not msg.has_content():
            raise MalformedInput("hello reply has no content")
        content = msg.content
        if set(content.keys()) != {"hello"}:
            raise MalformedInput("hello reply must hold one record 'hello'")
        rec = content.config_records["hello"]
        keys = set(rec.keys())
        vals = {k: rec[k] for k in keys}
    except MalformedInput:
        raise
    except Exception as exc:
        raise MalformedInput(f"unreadable hello reply: {type(exc).__name__}") from None
    if keys != {"cid", "n_examples", "dim"}:
        raise MalformedInput("hello reply needs exactly cid, n_examples, dim")
    out = []
    for k, hi in (("cid", 0xFFFFFFFD), ("n_examples", 1 << 40), ("dim", 1 << 31)):
        v = vals[k]
        if isinstance(v, bool) or not isinstance(v, int) or not (0 <= v <= hi):
            raise MalformedInput(f"hello {k} out of range")
        out.append(v)
    if out[1] < 1 or out[2] < 1:
        raise MalformedInput("hello needs at least one example and a non-empty model")
    return tuple(out)


class FlowerTransport(Transport):
    """Runs rounds over a Flower ``grid`` (see module docstring).

    ``nodes``: client id -> Flower node id (learnt in the hello stage); ``backend``: the
    aggregator from :func:`fl.server.make_backend` (its parameters; its ``aggregate`` is not
    used); ``dim``: model size; ``rng``: round ids (``privcrypt.rng``); ``stage_timeout``:
    seconds a stage waits for replies; ``server_context``: ckks's provisioned public
    context; ``enrolment``: ``{client id: Ed25519 public key}`` (authenticated masking); ``after_stage(round_no, stage)``: optional hook
    (fault injection in tests). ``log`` collects per-round transport records (stage wall
    time, polls, slowest handler, failures, the aggregate and survivors)."""

    def __init__(self, grid, backend, nodes: dict[int, int], *, dim: int, rng, stage_timeout: float = 120.0,
                 poll_interval: float = 0.1, after_stage=None, record_vectors: bool = False,
                 liveness_interval: float = 1.0, server_context: bytes | None = None,
                 enrolment: dict | None = None):
        if stage_timeout <= 0 or poll_interval <= 0:
            raise ValueError("stage_timeout and poll_interval must be > 0")
        self.grid, self.backend, self.nodes = grid, backend, dict(nodes)
        self.dim, self.rng = int(dim), rng
        self.stage_timeout, self.poll_interval = float(stage_timeout), float(poll_interval)
        self.after_stage = after_stage
        self.liveness_interval = float(liveness_interval)
        self.server_context = server_context
        self.enrolment = enrolment
        self.record_vectors = bool(record_vectors)
        self.log: list[dict] = []

    def exchange(self, contents: dict[int, object], message_type: str, group_id: str) -> tuple[dict, dict, int]:
        """Push one message per client and poll for the replies until all are in or the
        stage deadline passes. Returns ``(replies by client id, failures by client id ->
        reason, number of pull calls)``."""
        from flwr.app import Message

        ids = sorted(contents)
        msgs = [Message(contents[c], dst_node_id=self.nodes[c], message_type=message_type, group_id=group_id,
                        ttl=self.stage_timeout + 30.0) for c in ids]
        mids = list(self.grid.push_messages(msgs))
        pending = {mid: c for mid, c in zip(mids, ids) if mid}
        failed = {c: "push failed" for mid, c in zip(mids, ids) if not mid}
        replies: dict = {}
        deadline = time.monotonic() + self.stage_timeout
        polls = 0
        next_check = time.monotonic() + self.liveness_interval
        while pending and time.monotonic() < deadline:
            polls += 1
            if time.monotonic() >= next_check:  # a node that left (stopped, heartbeat lost) fails now
                next_check = time.monotonic() + self.liveness_interval
                online = set(self.grid.get_node_ids())
                for mid, c in list(pending.items()):
                    if self.nodes[c] not in online:
                        del pending[mid]
                        failed[c] = "node left the federation (offline)"
            for rep in self.grid.pull_messages(list(pending)):
                mid = rep.metadata.reply_to_message_id
                c = pending.get(mid)
                if c is None:
                    continue  # not ours or already answered
                if rep.metadata.src_node_id != self.nodes[c]:
                    continue  # a reply from another node: ignore, the real one may still come
                del pending[mid]
                if rep.has_error():
                    failed[c] = f"error reply: {rep.error.reason}"[:300]
                else:
                    replies[c] = rep
            if pending:
                time.sleep(self.poll_interval)
        for c in pending.values():
            failed[c] = f"no reply within {self.stage_timeout:g} s"
        return replies, failed, polls

    def run_round(self, round_no, participants, dropped, weights, global_vec) -> RoundOutput:
        sr = make_server_round(self.backend, participants, weights, self.dim, rng=self.rng,
                               server_context=self.server_context, enrolment=self.enrolment)
        alive = set(participants)
        failures: dict[int, str] = {}
        metrics: dict[int, dict] = {}
        stage_log = []
        rec = {"round": round_no, "participants": sorted(participants), "stages": stage_log, "failures": failures}
        self.log.append(rec)
        try:
            res = self._stages(sr, round_no, dropped, global_vec, alive, failures, metrics, stage_log)
        except ProtocolAbort as exc:
            rec["aborted"] = str(exc)
            raise
        res.stats["transport_failures"] = dict(failures)
        rec["survivors"] = sorted(res.survivors)
        if self.record_vectors:
            rec["global"] = np.asarray(global_vec, dtype=np.float64).tolist()
            rec["mean"] = np.asarray(res.mean, dtype=np.float64).tolist()
            rec["weights"] = {str(c): float(weights[c]) for c in sorted(participants)}
        return RoundOutput(res, sr.updates, {c: _metrics(m) for c, m in metrics.items()})

    def _stages(self, sr, round_no, dropped, global_vec, alive, failures, metrics, stage_log):
        name = self.backend.name
        for stage, category in sr.stages:
            t0 = time.perf_counter()
            reqs = sr.requests(stage, alive)  # ProtocolAbort propagates: the round is aborted
            is_input = stage == INPUT_STAGE[name]
            if is_input:  # simulated dropouts go silent after key set-up: never asked to train
                for c in dropped:
                    reqs.pop(c, None)
                alive -= set(dropped)
            contents = {c: request_content(stage, round_no, m, global_vec if is_input else None)
                        for c, m in reqs.items()}
            replies, failed, polls = self.exchange(contents, f"{category}.{stage}", str(round_no))
            handler = []
            for c in sorted(replies):
                try:
                    payload, m, secs = parse_reply(replies[c], with_metrics=is_input)
                    sr.receive(stage, c, payload)
                except MalformedInput as exc:
                    failed[c] = f"malformed reply: {exc}"[:300]
                    continue
                if is_input:
                    metrics[c] = m
                if secs is not None:
                    handler.append(secs)
            for c, why in failed.items():
                failures[c] = f"{stage}: {why}"
                alive.discard(c)
            stage_log.append({"stage": stage, "seconds": time.perf_counter() - t0, "polls": polls,
                              "sent": len(reqs), "answered": len(reqs) - len(failed),
                              "handler_s_max": max(handler, default=None)})
            if self.after_stage is not None:
                self.after_stage(round_no, stage)
        return sr.finish()


def _metrics(m: dict) -> dict:
    out = dict(m)
    out.setdefault("loss", float("nan"))
    if "clipped" in out:
        out["clipped"] = bool(out["clipped"])
    return out
