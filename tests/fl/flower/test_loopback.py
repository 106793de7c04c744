"""A real Flower federation on 127.0.0.1: one SuperLink and 4 SuperNodes, 2 FL rounds of
digits with ``masking``; one SuperNode is stopped (SIGTERM to its process group, by PID)
after key agreement (``share_keys``) in round 2 (4 nodes: the hardened masking client
sends its masked input only while t = 2 of its other neighbours remain, so a 3-client
round, k = 2 and t = 2, cannot lose a client and would abort). The aggregates must equal the in-process
simulation's for the same survivors.

How the comparison is exact: the ServerApp records each round's global vector, weights,
survivors and aggregate (``record_vectors``). The test rebuilds the same clients in
process (:class:`fl.flower.config.Scenario`), runs the same client pipeline
(:meth:`fl.client.ClientPipeline.run`: deterministic training from ``seed``, no DP) from
the recorded global vector, and aggregates with the masking backend in process with the
stopped client in ``dropped``. With ``rounding = "nearest"`` masking's quantization is
deterministic and the masks cancel exactly mod 2^32, so the two means must be identical
bit for bit (keys, masks and shares differ: SystemRandom on the nodes). The plaintext
weighted mean of the survivors must be within the backend's declared ``atol``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("flwr")

from fl.client import ClientPipeline, LocalTrainer  # noqa: E402
from fl.compression import make_compressor  # noqa: E402
from fl.config import FLConfig  # noqa: E402
from fl.flower.config import Scenario, from_run_config, to_run_config  # noqa: E402
from fl.flower.launch import LocalFederation, group_alive  # noqa: E402
from fl.server import make_backend, round_bound  # noqa: E402
from privcrypt.rng import DeterministicRandom  # noqa: E402

pytestmark = pytest.mark.flower


def _alive(pid: int) -> bool:
    """Whether any live process remains in the group we started as ``pid``."""
    return bool(group_alive(pid))


def _wait_file(path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.1)
    return False


def test_masking_two_rounds_one_node_stopped_after_key_agreement(tmp_path):
    cfg = FLConfig(rounds=2, backend="masking", optimizer="adam", lr=0.005, local_epochs=1, batch_size=16,
                   backend_params={"rounding": "nearest"}, seed=0)
    rc = to_run_config(cfg, dataset="digits", num_clients=4, stage_timeout=90.0, node_wait=120.0,
                       record_vectors=True, hold_after="2.share_keys", hold_dir=str(tmp_path))
    t0 = time.monotonic()
    with LocalFederation(4, workdir=tmp_path / "fed") as fed:
        pids = [p.pid for p in fed.procs.values()]
        result = fed.submit(rc)
        assert _wait_file(tmp_path / "held", 300), f"round 2 never reached share_keys; logs in {fed.dir}"
        victim = fed.pid("supernode-3")
        fed.stop("supernode-3")
        assert not _alive(victim)
        (tmp_path / "release").write_text("")
        res = fed.wait_result(result, 300)
    for pid in pids:  # everything the launcher started is gone, by PID
        assert not _alive(pid)
    assert res["status"] == "ok", res.get("error")

    rounds = res["rounds"]
    assert [r["aborted"] for r in rounds] == [False, False]
    assert rounds[0]["survivors"] == [0, 1, 2, 3]
    assert rounds[1]["survivors"] == [0, 1, 2]
    log = res["flower"]["transport"]
    assert "masked_input" in log[1]["failures"]["3"]
    print("\nflower loopback:", {"failure": log[1]["failures"]["3"], "wall_s": round(time.monotonic() - t0, 1),
                                 "stages": [(r["round"], s["stage"], round(s["seconds"], 1), s["polls"],
                                             s["handler_s_max"] and round(s["handler_s_max"], 2))
                                            for r in log for s in r["stages"]],
                                 "hello_s": res["flower"]["hello_s"], "rounds_s": [r["seconds"] for r in rounds]})
    assert [s["stage"] for s in log[1]["stages"]] == ["advertise_keys", "share_keys", "masked_input", "unmasking"]

    # in-process recomputation from the recorded global vectors
    cfg2, deploy = from_run_config(rc)
    sc = Scenario(cfg2, deploy)
    clients = sc.clients(4)
    import torch
    torch.manual_seed(cfg2.seed)
    bound = round_bound(cfg2, None)
    pipeline = ClientPipeline(LocalTrainer(sc.model_fn(), sc.dataset.task, cfg2), cfg2, privacy=None,
                              compressor=make_compressor("none"), bound=bound)
    for r, rec in enumerate(log, start=1):
        g = np.asarray(rec["global"])
        weights = {int(c): w for c, w in rec["weights"].items()}
        surv = rec["survivors"]
        updates = {c: (pipeline.run(c, *clients[c], g, r, rng=DeterministicRandom(r))[0] if c in surv
                       else np.zeros_like(g)) for c in weights}
        backend = make_backend(cfg2, bound, DeterministicRandom(100 + r),
                               weight_ratio=max(weights.values()) / min(weights.values()))
        sim = backend.aggregate(updates, weights, dropped=frozenset(set(weights) - set(surv)))
        assert sorted(sim.survivors) == surv
        flower_mean = np.asarray(rec["mean"])
        assert np.array_equal(flower_mean, sim.mean), np.max(np.abs(flower_mean - sim.mean))
        exact = sum(weights[c] * updates[c] for c in surv) / sum(weights[c] for c in surv)
        assert np.max(np.abs(flower_mean - exact)) <= sim.stats["atol"]
        if r > 1:  # FedAvg with server_lr 1: the next global model is the old one plus the mean
            prev = log[r - 2]
            np.testing.assert_allclose(g, np.asarray(prev["global"]) + np.asarray(prev["mean"]), rtol=0, atol=1e-12)
