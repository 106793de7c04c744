"""The ServerApp and ClientApp code in one process, without Flower's processes: a fake
``Grid`` hands every message to the real ClientApp (``fl.flower.client_app.app``) with one
``Context`` per node, keeps replies until pulled, and can make a node fail. Also a fuzz
test of the reply parsers (only ``MalformedInput`` may escape)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("flwr")

from flwr.app import ConfigRecord, Context, Error, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from fl.config import FLConfig  # noqa: E402
from fl.flower import client_app, server_app  # noqa: E402
from fl.flower.config import from_run_config, to_run_config  # noqa: E402
from fl.flower.transport import parse_hello, parse_reply  # noqa: E402
from privcrypt.exceptions import MalformedInput  # noqa: E402


@pytest.fixture(autouse=True)
def _task_identity():
    old = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = old


class FakeGrid:
    """Routes each message to the ClientApp of its node, synchronously. ``fail``: node ->
    stage at which it answers with an error (as the SuperLink does for a stopped node)."""

    def __init__(self, n, run_config, fail=None, leave=None, node_extra=None):
        self.ctx = {100 + i: Context(1, 100 + i, {"partition-id": i, "num-partitions": n, **(node_extra or {})},
                                     RecordDict(), run_config) for i in range(n)}
        self.fail = dict(fail or {})
        self.leave = dict(leave or {})  # node -> stage at which it silently leaves the federation
        self.gone = set()
        self.replies = {}
        self.seen_types = []

    def get_node_ids(self):
        return [n for n in self.ctx if n not in self.gone]

    def push_messages(self, messages):
        ids = []
        for m in messages:
            mid = uuid.uuid4().hex
            m.metadata.__dict__["_message_id"] = mid
            self.seen_types.append(m.metadata.message_type)
            node = m.metadata.dst_node_id
            stage = m.metadata.message_type.split(".")[1]
            if self.leave.get(node) == stage or node in self.gone:
                self.gone.add(node)  # no reply ever; it drops out of get_node_ids
                ids.append(mid)
                continue
            if self.fail.get(node) == stage:
                self.fail[node] = None
                rep = Message(Error(code=3, reason="node stopped"), reply_to=m)
            else:
                rep = client_app.app(m, self.ctx[node])
            self.replies[mid] = rep
            ids.append(mid)
        return ids

    def pull_messages(self, ids):
        return [self.replies.pop(i) for i in list(ids) if i in self.replies]


def _run_config(n=3, **kw):
    cfg = FLConfig(rounds=1, backend="masking", optimizer="adam", lr=0.005, local_epochs=1, batch_size=32,
                   backend_params={"rounding": "nearest"}, seed=0)
    return to_run_config(cfg, dataset="digits", num_clients=n, stage_timeout=5.0, node_wait=1.0,
                         poll_interval=0.01, record_vectors=True, **kw)


def test_serverapp_over_fake_grid_drops_a_failed_node_and_wipes_client_secrets():
    # 4 nodes: the hardened masking client sends its masked input only while t = 2 of its
    # other neighbours remain, so a 3-client round (k = 2, t = 2) cannot lose one; 4 (k = 3) can
    rc = _run_config(4)
    grid = FakeGrid(4, rc, fail={102: "masked_input"})
    hist, info = server_app.serve_flower(grid, Context(1, 0, {}, RecordDict(), rc))
    rec = hist["rounds"][0]
    assert rec["aborted"] is False and rec["survivors"] == [0, 1, 3] and rec["dropped"] == []
    assert "masked_input" in info["transport"][0]["failures"][2]
    assert "train.masked_input" in grid.seen_types and "query.advertise_keys" in grid.seen_types
    for node, ctx in grid.ctx.items():
        assert "pc_node" in ctx.state
        if node != 102:
            assert "pc_round" not in ctx.state  # wiped after unmasking
    # the failed node's handler raised nothing, but its round state stays until the next round
    assert "pc_round" in grid.ctx[102].state
    assert "accuracy" in rec and np.isfinite(rec["accuracy"])


def test_a_node_that_leaves_is_failed_without_waiting_for_the_stage_timeout():
    rc = _run_config()
    rc["stage_timeout"] = 600.0  # would hang the test if the liveness check did not work
    grid = FakeGrid(3, rc, leave={101: "unmasking"})
    hist, info = server_app.serve_flower(grid, Context(1, 0, {}, RecordDict(), rc))
    rec = hist["rounds"][0]
    # masking needs t = 2 shares per secret: the two other survivors answer, so it recovers
    assert rec["aborted"] is False and rec["survivors"] == [0, 1, 2]
    assert "left the federation" in info["transport"][0]["failures"][1]


def test_a_round_the_backend_cannot_finish_is_recorded_as_aborted():
    rc = _run_config()
    grid = FakeGrid(3, rc, fail={101: "masked_input", 102: "masked_input"})
    hist, info = server_app.serve_flower(grid, Context(1, 0, {}, RecordDict(), rc))
    rec = hist["rounds"][0]
    assert rec["aborted"] is True and "surviving clients" in rec["abort_reason"]
    assert "aborted" in info["transport"][0]
    assert hist["final"]["rounds_aborted"] == 1


def _auth_run_config(**kw):
    cfg = FLConfig(rounds=1, backend="masking", optimizer="adam", lr=0.005, local_epochs=1, batch_size=32,
                   backend_params={"rounding": "nearest", "authenticated": True}, seed=0)
    return to_run_config(cfg, dataset="digits", num_clients=3, stage_timeout=5.0, node_wait=1.0,
                         poll_interval=0.01, **kw)


def test_authenticated_masking_over_the_apps_with_provisioned_identities(tmp_path):
    pytest.importorskip("cryptography")
    from fl.flower.launch import provision_identities
    from privcrypt.rng import DeterministicRandom

    keys, epath = provision_identities(tmp_path, 3, rng=DeterministicRandom(2))
    assert all((k.stat().st_mode & 0o777) == 0o600 for k in keys)
    rc = _auth_run_config(enrolment_file=str(epath))
    grid = FakeGrid(3, rc)
    for i in range(3):
        grid.ctx[100 + i].node_config.update({"identity-key": str(keys[i]), "enrolment": str(epath)})
    hist, info = server_app.serve_flower(grid, Context(1, 0, {}, RecordDict(), rc))
    rec = hist["rounds"][0]
    assert rec["aborted"] is False and rec["survivors"] == [0, 1, 2]
    assert [s["stage"] for s in info["transport"][0]["stages"]] == [
        "advertise_keys", "share_keys", "masked_input", "consistency_check", "unmasking"]
    assert "query.consistency_check" in grid.seen_types
    assert all("pc_round" not in ctx.state for ctx in grid.ctx.values())
    # a node signing with another client's key (and its own forged enrolment file) is refused
    # by the server, which checks against its own enrolment: dropped, and with t = 2 of 3 the
    # round cannot go on
    from privcrypt.identity import IdentityKey, load_enrolment, save_enrolment
    forged = tmp_path / "forged.json"
    save_enrolment(forged, {**load_enrolment(epath), 2: IdentityKey(keys[0].read_bytes()).public})
    grid = FakeGrid(3, rc)
    for i in range(3):
        grid.ctx[100 + i].node_config.update({"identity-key": str(keys[i]), "enrolment": str(epath)})
    grid.ctx[102].node_config.update({"identity-key": str(keys[0]), "enrolment": str(forged)})
    hist, info = server_app.serve_flower(grid, Context(1, 0, {}, RecordDict(), rc))
    assert hist["rounds"][0]["aborted"] is True and 2 in info["transport"][0]["failures"]


def test_authenticated_masking_is_never_silently_unauthenticated(tmp_path):
    from privcrypt.exceptions import UnsupportedParameters

    rc = _auth_run_config()  # no enrolment_file
    with pytest.raises(UnsupportedParameters, match="enrolment_file"):
        server_app.serve_flower(FakeGrid(3, rc), Context(1, 0, {}, RecordDict(), rc))
    # a node without an identity-key refuses (the fake grid passes the handler's exception
    # through; a SuperNode turns it into an error reply and the server drops the node)
    from privcrypt.identity import IdentityKey, save_enrolment
    from privcrypt.rng import DeterministicRandom
    save_enrolment(tmp_path / "e.json", {i: IdentityKey.generate(rng=DeterministicRandom(i)).public for i in range(3)})
    rc = _auth_run_config(enrolment_file=str(tmp_path / "e.json"))
    with pytest.raises(UnsupportedParameters, match="identity-key"):
        server_app.serve_flower(FakeGrid(3, rc), Context(1, 0, {}, RecordDict(), rc))


def test_ckks_over_the_apps_with_provisioned_keys(tmp_path):
    pytest.importorskip("tenseal")
    from fl.flower.launch import provision_ckks
    from privcrypt.rng import DeterministicRandom

    cpath, spath = provision_ckks(tmp_path, rng=DeterministicRandom(1))
    assert (cpath.stat().st_mode & 0o777) == 0o600
    cfg = FLConfig(rounds=1, backend="ckks", optimizer="adam", lr=0.005, local_epochs=1, batch_size=32, seed=0)
    rc = to_run_config(cfg, dataset="digits", num_clients=3, stage_timeout=5.0, node_wait=1.0, poll_interval=0.01,
                       ckks_server_context=str(spath))
    grid = FakeGrid(3, rc, node_extra={"ckks-context": str(cpath)})
    hist, info = server_app.serve_flower(grid, Context(1, 0, {}, RecordDict(), rc))
    rec = hist["rounds"][0]
    assert rec["aborted"] is False and rec["survivors"] == [0, 1, 2]
    assert [s["stage"] for s in info["transport"][0]["stages"]] == ["ckks_upload", "ckks_result"]
    assert "train.ckks_upload" in grid.seen_types and "query.ckks_result" in grid.seen_types


def test_run_config_round_trip():
    cfg = FLConfig(rounds=3, backend="plain", backend_params={"min_clients": 2}, dp_epsilon=2.0)
    rc = to_run_config(cfg, dataset="digits")
    assert rc["backend_params.min_clients"] == 2 and "clients_per_round" not in rc
    back, deploy = from_run_config(rc)
    assert back == cfg and deploy["dataset"] == "digits"
    with pytest.raises(ValueError):
        from_run_config({**rc, "no_such_key": 1})
    with pytest.raises(ValueError):
        to_run_config(cfg, nope=1)


def _reply(content):
    ins = Message(RecordDict({"x": ConfigRecord({})}), dst_node_id=5, message_type="query.t", group_id="1")
    ins.metadata.__dict__["_message_id"] = "m"
    return Message(content, reply_to=ins)


def test_parse_reply_accepts_the_right_shape_only():
    ok = _reply(RecordDict({"pc": ConfigRecord({"msg": b"abc"}), "timing": MetricRecord({"handler_s": 0.5})}))
    assert parse_reply(ok) == (b"abc", {}, 0.5)
    with_m = _reply(RecordDict({"pc": ConfigRecord({"msg": b"a"}), "metrics": MetricRecord({"loss": 1.0})}))
    assert parse_reply(with_m, with_metrics=True)[1] == {"loss": 1.0}
    for bad in (RecordDict({"pc": ConfigRecord({"msg": "str"})}),
                RecordDict({"pc": ConfigRecord({"msg": b"a", "x": 1})}),
                RecordDict({"pc": MetricRecord({"msg": 1})}),
                RecordDict({"other": ConfigRecord({"msg": b"a"})}),
                RecordDict({"pc": ConfigRecord({"msg": b"a"}), "metrics": MetricRecord({"evil": 1.0})})):
        with pytest.raises(MalformedInput):
            parse_reply(_reply(bad), with_metrics=True)
    with pytest.raises(MalformedInput):  # metrics are required at the input stage
        parse_reply(_reply(RecordDict({"pc": ConfigRecord({"msg": b"a"})})), with_metrics=True)
    with pytest.raises(MalformedInput):
        parse_reply(Message(Error(code=1, reason="x"), reply_to=_reply(RecordDict({}))))


_scalars = st.one_of(st.binary(max_size=20), st.text(max_size=5), st.integers(-2**63, 2**63 - 1),
                     st.floats(allow_nan=True), st.booleans())
_cfg_rec = st.dictionaries(st.sampled_from(["msg", "cid", "n_examples", "dim", "x"]), _scalars, max_size=4)
_met_rec = st.dictionaries(st.sampled_from(["loss", "handler_s", "norm", "evil", "msg"]),
                           st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True)), max_size=3)


@given(st.dictionaries(st.sampled_from(["pc", "metrics", "timing", "hello", "junk"]),
                       st.one_of(_cfg_rec.map(ConfigRecord), _met_rec.map(MetricRecord)), max_size=4),
       st.booleans())
def test_fuzz_reply_parsers_raise_only_malformed_input(records, with_metrics):
    _task = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0
    try:
        msg = _reply(RecordDict(records))
        for parse in (lambda m: parse_reply(m, with_metrics=with_metrics), parse_hello):
            try:
                parse(msg)
            except MalformedInput:
                pass
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = _task
