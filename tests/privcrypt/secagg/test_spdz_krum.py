"""Krum / Multi-Krum on SPDZ shares (``spdz-krum``): same selection as plaintext Krum,
exact distances, tampering detected, only the distances (and norms) opened."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fl.aggregation import krum, krum_select as fl_krum_select
from privcrypt.exceptions import MacCheckFailed, ProtocolAbort, UnsupportedParameters
from privcrypt.mpc import P, SpdzEngine, field
from privcrypt.rng import DeterministicRandom
from privcrypt.secagg import make_aggregator
from privcrypt.secagg import spdz_robust as R
from privcrypt.secagg.spdz import SpdzComputeParty
from privcrypt.wire import Message, unpack_array

F = 16


def grid_updates(k, d, seed, scale=0.1, attackers=()):
    """Updates already on the 2^-16 grid and inside clip = 1, so encoding is exact."""
    rng = DeterministicRandom(seed)
    ups = {i: np.round(np.clip(rng.normal(scale, d) + 0.05, -1, 1) * 2**F) / 2**F for i in range(k)}
    for a in attackers:
        ups[a] = np.round(np.clip(-10 * ups[a], -1, 1) * 2**F) / 2**F  # sign flip x10, clipped
    return ups


def plain_krum(ups, f, m):
    ids = sorted(ups)
    agg, sel = krum(np.array([ups[i] for i in ids]), f, m)
    return agg, [ids[i] for i in sel]


def test_matmul_mod_is_exact():
    rng = DeterministicRandom(0)
    a = field.random_elements(rng, (3, 20_000))  # > one 2^14 column chunk
    b = field.random_elements(rng, (2, 20_000))
    ref = [[sum(int(x) * int(y) for x, y in zip(a[i], b[j])) % P for j in range(2)] for i in range(3)]
    assert R.matmul_mod(a, b).tolist() == ref
    top = np.full((2, 5), P - 1, dtype=np.uint64)  # (-1)·(-1)·5 = 5
    assert R.matmul_mod(top, top).tolist() == [[5, 5], [5, 5]]
    long = np.full((1, (1 << 20) + 3), P - 1, dtype=np.uint64)  # two column blocks
    assert R.matmul_mod(long, long).tolist() == [[(1 << 20) + 3]]


def test_gram_and_distances_on_shares_are_exact():
    eng = SpdzEngine(3, F, DeterministicRandom(1), bound=1.0)
    x = np.array([[0.5, -0.25, 1.0], [0.0, 0.75, -1.0], [1.0, 1.0, 1.0]])
    rows = [eng.share(v) for v in x]
    g = R.gram_on_shares(eng, R._stack(rows))
    assert eng.open(g).tolist() == (x @ x.T).tolist()
    d = eng.open(R.sq_distances_on_shares(g))
    assert d.tolist() == ((x[:, None] - x[None]) ** 2).sum(-1).tolist()


@pytest.mark.parametrize("k,f,m,attackers", [(7, 2, 1, (0, 5)), (10, 2, 4, (3, 7)), (10, 3, 1, (1, 2, 9))])
def test_selects_exactly_what_plaintext_krum_selects(k, f, m, attackers):
    ups = grid_updates(k, 64, seed=k + f, attackers=attackers)
    res = make_aggregator("spdz-krum", f=f, m=m, clip=1.0, reveal_individual=m <= f + 1,
                          rng=DeterministicRandom(2)).aggregate(ups)
    agg, sel = plain_krum(ups, f, m)
    assert res.stats["selected"] == sel and res.survivors == frozenset(sel)
    assert res.stats["opened_mean_of"] == m  # m = 1: the output is one client's update
    assert not set(sel) & set(attackers)
    assert np.max(np.abs(res.mean - agg)) <= res.stats["atol"]
    x = np.array([ups[i] for i in res.stats["distance_clients"]])
    assert np.array_equal(res.stats["distances"], ((x[:, None] - x[None]) ** 2).sum(-1))  # exact


@settings(max_examples=8)
@given(st.integers(0, 2), st.integers(1, 3), st.integers(0, 2**32))
def test_selection_matches_plaintext_on_random_rounds(f, m, seed):
    k = 2 * f + 3 + seed % 3
    ups = grid_updates(k, 16, seed)
    res = make_aggregator("spdz-krum", f=f, m=m, clip=1.0, verify_range=False, trust_clients=True,
                          reveal_individual=True, rng=DeterministicRandom(seed)).aggregate(ups)
    assert res.stats["selected"] == plain_krum(ups, f, m)[1]
    # the privcrypt selection rule and fl's agree on the opened matrix
    assert R.krum_select(res.stats["distances"], f, m).tolist() == \
        fl_krum_select(res.stats["distances"], f, m).tolist()


def test_weights_dropout_and_abort():
    ups = grid_updates(9, 32, seed=3)
    w = {i: 1.0 + i for i in ups}
    agg = make_aggregator("spdz-krum", f=1, m=3, clip=1.0, rng=DeterministicRandom(4))
    res = agg.aggregate(ups, w, dropped=frozenset({0, 8}))
    keep = {i: ups[i] for i in ups if i not in (0, 8)}
    _, sel = plain_krum(keep, 1, 3)
    assert res.stats["selected"] == sel
    ref = sum(w[i] * ups[i] for i in sel) / sum(w[i] for i in sel)
    assert np.max(np.abs(res.mean - ref)) <= agg.atol
    with pytest.raises(ProtocolAbort) as err:  # 4 survivors < 2f + 3 = 5
        agg.aggregate(ups, dropped=frozenset(range(5)))
    assert err.value.stage == "input"
    with pytest.raises(ValueError):
        make_aggregator("spdz-krum", f=-1)


def test_norm_bound_opens_norms_and_drops_oversized_before_distances():
    ups = grid_updates(8, 32, seed=5)
    ups[6] = np.full(32, 0.75)  # norm 4.24
    res = make_aggregator("spdz-krum", f=1, clip=1.0, norm_bound=2.0, reveal_individual=True,
                          rng=DeterministicRandom(6)).aggregate(ups)
    assert res.stats["rejected_norm"] == [6] and 6 not in res.stats["distance_clients"]
    assert res.stats["norms_sq"][6] == pytest.approx(32 * 0.75**2)  # revealed, by design
    assert res.stats["selected"] == plain_krum({i: ups[i] for i in ups if i != 6}, 1, 1)[1]


def test_range_proof_stops_a_wrapping_client():
    """A client that shares a coordinate of 2^31 (its square is 2 mod p) would look close to
    everyone without the range proof; with it (the default) the client is rejected."""
    ups = grid_updates(7, 8, seed=7)
    honest = SpdzComputeParty.receive_input

    def wrap(self, msg, *, record=False, channel_sender=None):
        m = Message.decode(msg)
        if m.sender == 4:
            delta = unpack_array(m.payload, dtype=np.uint64).copy()
            delta[0] = (int(delta[0]) + 2**31 * 2**F) % P  # shift coordinate 0 by 2^31 (real)
            from privcrypt.wire import pack_array
            msg = Message(m.round_id, m.stage, m.sender, m.recipient, pack_array(delta)).encode()
        return honest(self, msg, record=record, channel_sender=channel_sender)

    SpdzComputeParty.receive_input = wrap
    try:
        res = make_aggregator("spdz-krum", f=1, m=3, clip=1.0, rng=DeterministicRandom(8)).aggregate(ups)
    finally:
        SpdzComputeParty.receive_input = honest
    assert res.stats["rejected_range"] == [4] and 4 not in res.survivors


@pytest.mark.parametrize("where", ["gram", "distances", "sum"])
def test_tampered_share_raises_mac_check_failed(monkeypatch, where):
    ups = grid_updates(7, 16, seed=9)
    if where == "gram":
        honest = R.gram_on_shares

        def cheat(engine, x, pair=None):
            g = honest(engine, x, pair)
            g.shares[1, 0, 1] = (g.shares[1, 0, 1] + np.uint64(1)) % np.uint64(P)  # party 1
            return g
        monkeypatch.setattr(R, "gram_on_shares", cheat)
    elif where == "distances":
        honest = R.sq_distances_on_shares

        def cheat(g):
            d = honest(g)
            d.shares[2, 1, 3] = (d.shares[2, 1, 3] + np.uint64(5)) % np.uint64(P)  # party 2
            return d
        monkeypatch.setattr(R, "sq_distances_on_shares", cheat)
    else:
        honest = SpdzComputeParty.weighted_sum

        def cheat(self, engine, acc, x, weight):
            out = honest(self, engine, acc, x, weight)
            out.shares[0, 2] = (out.shares[0, 2] + np.uint64(1)) % np.uint64(P)
            return out
        monkeypatch.setattr(SpdzComputeParty, "weighted_sum", cheat)
    with pytest.raises(MacCheckFailed):
        make_aggregator("spdz-krum", f=1, m=3, clip=1.0, verify_range=False, trust_clients=True,
                        rng=DeterministicRandom(10)).aggregate(ups)


def test_what_party_0_sees_is_masked():
    ups = grid_updates(5, 50, seed=11)
    res = make_aggregator("spdz-krum", f=1, m=3, clip=1.0, verify_range=False, trust_clients=True,
                          record_view=True, rng=DeterministicRandom(12)).aggregate(ups)
    for msg in res.stats["server_view"]:
        delta = unpack_array(Message.decode(msg).payload, dtype=np.uint64)
        for k in ups:
            enc = np.mod(np.rint(ups[k] * 2**F).astype(np.int64), P).astype(np.uint64)
            assert np.mean(delta == enc) < 0.05


def test_distance_overflow_is_refused_up_front():
    with pytest.raises(UnsupportedParameters, match="overflow"):
        make_aggregator("spdz-krum", f=0, m=2, clip=8.0).aggregate({i: np.zeros(2**20) for i in range(3)})
