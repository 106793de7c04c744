import numpy as np
import pytest

pytest.importorskip("tenseal")

from privcrypt.exceptions import MalformedInput, ProtocolAbort, UnsupportedParameters  # noqa: E402
from privcrypt.rng import DeterministicRandom  # noqa: E402
from privcrypt.secagg import available_backends, make_aggregator  # noqa: E402
from privcrypt.secagg.ckks import CkksAggregator, CkksClient, CkksKeyDealer, CkksServer  # noqa: E402
from privcrypt.wire import Message  # noqa: E402

DIM = 3000


def _updates(n, seed=0, lo=-1.0, hi=1.0):
    rng = np.random.default_rng(seed)
    return {i: rng.uniform(lo, hi, DIM) for i in range(n)}


def _ref(upd, w, survivors):
    ids = sorted(survivors)
    return np.average(np.stack([upd[i] for i in ids]), axis=0, weights=[w[i] for i in ids])


def test_registered():
    assert "ckks" in available_backends()
    assert isinstance(make_aggregator("ckks"), CkksAggregator)


@pytest.mark.parametrize("mode", ["default", "compact"])
def test_mean_with_dropouts(mode):
    agg = make_aggregator("ckks", mode=mode, min_clients=2, rng=DeterministicRandom(mode))
    upd = _updates(20, 1)
    ones = {i: 1.0 for i in upd} if mode == "default" else None
    dropped = frozenset({0, 3, 5, 8, 13, 19})  # 6 of 20
    if mode == "compact":  # lanes hold at most 16 contributions: use 16 clients
        upd = {i: upd[i] for i in range(16)}
        dropped = frozenset({0, 3, 5, 8, 13})
    res = agg.aggregate(upd, ones, dropped=dropped)
    surv = set(upd) - dropped
    assert res.survivors == frozenset(surv)
    err = np.max(np.abs(res.mean - _ref(upd, {i: 1.0 for i in upd}, surv)))
    assert err <= agg.atol
    assert res.stats["atol"] <= agg.atol * (1 + 1e-12)
    # One ciphertext chunk per client (4096 values default, 8192 compact): about 33 kB.
    assert res.bytes_up / len(surv) < 8.1 * 4096
    assert res.bytes_down > 0


def test_unequal_weights_report_their_bound():
    agg = make_aggregator("ckks", rng=DeterministicRandom(5))
    upd = _updates(5, 2, -10, 10)
    w = {i: float(i + 1) for i in upd}
    res = agg.aggregate(upd, w, dropped=frozenset({4}))
    err = np.max(np.abs(res.mean - _ref(upd, w, {0, 1, 2, 3})))
    assert err <= res.stats["atol"] < 1e-6


def test_too_few_survivors_abort():
    agg = make_aggregator("ckks", min_clients=3, rng=DeterministicRandom(6))
    upd = _updates(4, 3)
    with pytest.raises(ProtocolAbort) as exc:
        agg.aggregate(upd, dropped=frozenset({0, 1}))
    assert exc.value.stage == "ckks_aggregate"


def test_compact_overflow_guard_up_front():
    agg = make_aggregator("ckks", mode="compact", rng=DeterministicRandom(7))
    with pytest.raises(UnsupportedParameters, match="wraps"):
        agg.aggregate(_updates(17, 4))


def test_server_view_holds_only_ciphertexts():
    agg = make_aggregator("ckks", record_view=True, rng=DeterministicRandom(8))
    upd = _updates(3, 5)
    agg.aggregate(upd)
    assert len(agg.server_view) == 3
    for msg in agg.server_view:
        for x in upd.values():
            for enc in (x.astype("<f8").tobytes(), x.astype("<f4").tobytes()):
                assert enc[:64] not in msg


def test_parties_exchange_bytes_and_reject_replays_and_keys():
    dealer = CkksKeyDealer(rng=DeterministicRandom(9))
    with pytest.raises(ValueError, match="secret"):
        CkksServer(b"r" * 16, dealer.client_context(), {0: 1.0}, 10)
    a, b = CkksClient(0, dealer.client_context()), CkksClient(1, dealer.client_context())
    r1, r2 = b"1" * 16, b"2" * 16
    server = CkksServer(r1, dealer.server_context(), {0: 1.0, 1: 1.0}, 10, min_clients=2)
    server.receive(a.upload(r1, np.ones(10), 1.0))
    with pytest.raises(MalformedInput):  # replayed from another round
        server.receive(b.upload(r2, np.ones(10), 1.0))
    with pytest.raises(MalformedInput):  # repeated sender
        server.receive(a.upload(r1, np.ones(10), 1.0))
    with pytest.raises(MalformedInput):  # weight other than announced
        server.receive(b.upload(r1, np.ones(10), 0.5))
    server.receive(b.upload(r1, np.full(10, 3.0), 1.0))
    out = server.finish()
    assert Message.decode(out).stage == "ckks_result"
    mean, info = a.receive_result(r1, out)
    np.testing.assert_allclose(mean, 2.0, atol=info["error_bound"])
