"""Protocol behaviour of the masking backend: graph, thresholds, quantization, weights."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privcrypt.encoding import Quantizer
from privcrypt.exceptions import ProtocolAbort
from privcrypt.rng import DeterministicRandom
from privcrypt.secagg import make_aggregator
from privcrypt.secagg.masking import (MASKED, UNMASK, MaskingClient, MaskingServer,
                                     default_degree, default_threshold, neighbour_graph,
                                     run_round, secagg_plus_parameters)


def data(n, dim, seed=0):
    rng = DeterministicRandom(seed)
    return {i: rng.uniform(dim) * 2 - 1 for i in range(n)}


@pytest.mark.parametrize("n,k", [(5, 4), (10, 9), (40, 6), (41, 6), (100, 14), (30, 5)])
def test_neighbour_graph_is_regular_and_symmetric(n, k):
    g = neighbour_graph(range(n), k, b"r" * 16)
    kk = min(n - 1, k + (k % 2) if k < n - 1 else k)
    for i, nb in g.items():
        assert i not in nb and len(nb) == kk
        assert all(i in g[j] for j in nb)
    assert g != neighbour_graph(range(n), k, b"s" * 16) or k >= n - 1  # depends on round id


def test_default_parameters():
    # SecAgg+ choice (params.py): complete graph while no sparser one meets corruption 5 %,
    # dropout 30 %, sigma 40, eta 20; then the smallest degree that does
    assert default_degree(20) == 19 and default_degree(100) == 66 and default_degree(1000) == 72
    assert default_threshold(20) == 8 and default_threshold(10) == 4 and default_threshold(2) == 1
    p = secagg_plus_parameters(100)
    assert p.p_security <= 2**-40 and p.p_failure <= 2**-20
    agg = make_aggregator("masking")
    assert agg.round_parameters(100) == (66, 24)
    assert make_aggregator("masking", threshold=0.5).round_parameters(20) == (19, 10)
    with pytest.raises(ValueError):
        make_aggregator("masking", threshold=30).round_parameters(20)


@pytest.mark.parametrize("dropped", [frozenset(), frozenset(range(0, 60, 3))])
def test_sparse_graph_with_dropouts(dropped):
    ups = data(60, 200, seed=4)
    # a third of the clients drop: threshold 3 of 13 holders keeps every neighbourhood alive
    res = make_aggregator("masking", degree=12, threshold=3,
                          rng=DeterministicRandom(1)).aggregate(ups, dropped=dropped)
    assert res.stats["degree"] == 12
    surv = [i for i in ups if i not in dropped]
    np.testing.assert_allclose(res.mean, np.mean([ups[i] for i in surv], axis=0), atol=res.stats["atol"])


def _round(ups, degree, threshold, round_id=b"G" * 16):
    ids = sorted(ups)
    server = MaskingServer(round_id, ids, len(ups[0]), clip=1.0, bits=16, modulus_bits=32,
                           degree=degree, threshold=threshold, weights={i: 1.0 for i in ids})
    clients = {i: MaskingClient(i, ups[i], rng=DeterministicRandom(i), min_threshold=1)
               for i in ids}
    return server, clients


def test_neighbourhood_below_threshold_aborts_at_unmasking():
    ups = data(30, 8)
    g = neighbour_graph(range(30), 4, b"G" * 16)
    victim = 0
    dropped = frozenset(sorted(g[victim])[:3])  # 3 of its 4 neighbours: 2 of 5 holders left
    server, clients = _round(ups, degree=4, threshold=3)
    with pytest.raises(ProtocolAbort) as exc:
        run_round(server, clients, dropped)
        server.finish()
    assert exc.value.stage in (UNMASK, MASKED)


def test_too_few_survivors_abort_names_masked_input():
    ups = data(10, 4)
    agg = make_aggregator("masking", threshold=6)
    with pytest.raises(ProtocolAbort) as exc:
        agg.aggregate(ups, dropped=frozenset(range(5)))
    assert exc.value.stage == MASKED
    # each survivor needs t = 6 surviving *other* neighbours (issue 13 finding 1): 7 survive
    res = agg.aggregate(ups, dropped=frozenset(range(3)))
    assert len(res.survivors) == 7


def test_overflow_guard_checked_before_the_round():
    ups = {i: np.zeros(1) for i in range(300)}
    agg = make_aggregator("masking", bits=24)  # 300 * (2^24 - 1) >= 2^32
    with pytest.raises(ValueError, match="wraps"):
        agg.aggregate(ups)
    res = make_aggregator("masking", bits=24, modulus_bits=64, degree=8).aggregate(ups)
    np.testing.assert_allclose(res.mean, 0.0, atol=1e-6)


def test_more_bits_less_error_and_modulus_64():
    ups = data(12, 500, seed=5)
    exact = np.mean(list(ups.values()), axis=0)
    err = {}
    for bits, mod in ((8, 32), (16, 32), (30, 64)):
        agg = make_aggregator("masking", bits=bits, modulus_bits=mod, rounding="nearest")
        res = agg.aggregate(ups)
        err[bits] = float(np.abs(res.mean - exact).max())
        assert err[bits] <= agg.atol + 1e-12
    assert err[30] < err[16] < err[8]


def test_weights_scale_before_quantization():
    ups = data(6, 100, seed=6)
    w = {i: float(i + 1) for i in range(6)}  # integer sample counts
    res = make_aggregator("masking", rounding="nearest").aggregate(ups, w, frozenset({5}))
    expect = sum(w[i] * ups[i] for i in range(5)) / sum(w[i] for i in range(5))
    np.testing.assert_allclose(res.mean, expect, atol=res.stats["atol"])
    assert res.stats["atol"] > make_aggregator("masking", rounding="nearest").atol


def test_clipping_is_counted_not_wrapped():
    ups = {0: np.array([5.0, 0.0]), 1: np.array([-5.0, 0.5])}
    res = make_aggregator("masking", clip=1.0, rounding="nearest").aggregate(ups)
    assert res.stats["clipped"] == 2
    np.testing.assert_allclose(res.mean, [0.0, 0.25], atol=1e-4)


def test_bytes_and_upload_overhead():
    d = 10_000
    res = make_aggregator("masking").aggregate(data(10, d))
    # masked vector is 4 bytes per value; set-up and unmasking add little
    assert res.stats["bytes_up_max_client"] <= 1.3 * 4 * d
    assert res.bytes_up >= 10 * 4 * d and res.bytes_down > 0


def test_dropped_clients_receive_shares_but_send_no_input():
    ups = data(5, 4)
    server, clients = _round(ups, degree=4, threshold=2)
    seen = []
    run_round(server, clients, {2}, intercept=lambda s, d, c, m: seen.append((s, d, c)) or m)
    assert (MASKED, "down", 2) in seen and (MASKED, "up", 2) not in seen
    assert all(c != 2 for s, d, c in seen if s == UNMASK)
    server.finish()


def test_invalid_parameters():
    for kw in ({"modulus_bits": 48}, {"bits": 32}, {"rounding": "up"}, {"degree": 0},
               {"min_clients": 0}, {"clip": -1.0}):
        with pytest.raises(ValueError):
            make_aggregator("masking", **kw)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(3, 12), data_=st.data())
def test_recovered_sum_is_exactly_the_survivors_quantized_sum(n, data_):
    """Invariant: whatever the tolerated dropout set, the server recovers sum q_u mod R
    exactly (masks cancel bit for bit)."""
    t = data_.draw(st.integers(2, max(2, n // 2)))
    # tolerated: every survivor keeps t surviving other neighbours, so n - t - 1 may drop
    dropped = frozenset(data_.draw(st.lists(st.integers(0, n - 1), max_size=n - t - 1, unique=True)))
    ups = data(n, 16, seed=n)
    ids = list(range(n))
    server = MaskingServer(b"H" * 16, ids, 16, clip=1.0, bits=16, modulus_bits=32,
                           degree=n - 1, threshold=t, weights={i: 1.0 for i in ids})
    clients = {i: MaskingClient(i, ups[i], rng=DeterministicRandom(i), rounding="nearest")
               for i in ids}
    run_round(server, clients, dropped)
    q = Quantizer(1.0, 16)
    expect = sum(q.quantize(ups[i], rounding="nearest")[0] for i in ids if i not in dropped)
    assert np.array_equal(server.finish(), (expect % 2**32).astype(np.uint32))


def test_disconnected_survivor_graph_aborts_before_unmasking():
    """On a ring (degree 2), two dropped clients far apart split the survivors in two arcs;
    unmasking would give the server each arc's sum, so the round stops."""
    n = 30
    g = neighbour_graph(range(n), 2, b"G" * 16)
    ring, prev = [0], None
    while len(ring) < n:
        nxt = next(v for v in g[ring[-1]] if v != prev)
        prev = ring[-1]
        ring.append(nxt)
    ups = data(n, 4)
    # threshold 1 (clients accept it here): each survivor keeps one surviving neighbour
    server, clients = _round(ups, degree=2, threshold=1)
    seen = []
    with pytest.raises(ProtocolAbort) as exc:
        run_round(server, clients, {ring[0], ring[15]},
                  intercept=lambda s, d, c, m: seen.append(s) or m)
    assert exc.value.stage == MASKED and UNMASK not in seen
    # one dropped client leaves a connected path: fine
    server, clients = _round(ups, degree=2, threshold=1)
    run_round(server, clients, {ring[0]})
    server.finish()
