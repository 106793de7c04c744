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


# -- review fixes (M1, L3, L4, L5, Info 1, Info 2) -------------------------------------------

def test_m_at_most_f_plus_1_is_refused_unless_opted_in():
    """M1: with 2 <= m <= f + 1, m - 1 colluders at the honest centre are selected with one
    honest client and recover it as m·mean - Σ colluders; m = 1 outputs one update."""
    for f, m in [(0, 1), (1, 1), (1, 2), (2, 3)]:
        with pytest.raises(ValueError, match="reveal_individual"):
            R.SpdzKrumAggregator(f=f, m=m, clip=1.0)
        R.SpdzKrumAggregator(f=f, m=m, clip=1.0, reveal_individual=True)  # explicit opt-in
    R.SpdzKrumAggregator(f=1, m=3, clip=1.0)  # m = f + 2: at least 2 honest updates averaged
    with pytest.raises(ValueError, match="trust_clients"):
        R.SpdzKrumAggregator(f=1, m=3, clip=1.0, verify_range=False)
    R.SpdzKrumAggregator(f=1, m=3, clip=1.0, verify_range=False, trust_clients=True)
    R.SpdzKrumAggregator(f=1, m=3, clip=1.0, verify_range=False, norm_bound=2.0)  # proof forced on


def test_colluder_at_the_centre_recovers_an_update_only_with_the_opt_in():
    """The attack of the review (s2_privacy (a)): one colluder (f = 1) sends the honest centre;
    with m = 2 (opt-in) the output minus its own update is one honest update exactly; with
    the default-allowed m = f + 2 = 3 the output averages two honest updates."""
    ups = grid_updates(5, 20, seed=21, scale=0.05)
    centre = np.round(np.mean([ups[i] for i in range(5)], axis=0) * 2**F) / 2**F
    ups[9] = centre
    r2 = R.SpdzKrumAggregator(f=1, m=2, clip=1.0, reveal_individual=True,
                              rng=DeterministicRandom(22)).aggregate(ups)
    assert 9 in r2.stats["selected"]
    (victim,) = set(r2.stats["selected"]) - {9}
    assert np.max(np.abs(2 * r2.mean - centre - ups[victim])) <= 2 * r2.stats["atol"]
    r3 = R.SpdzKrumAggregator(f=1, m=3, clip=1.0, rng=DeterministicRandom(22)).aggregate(ups)
    honest_sel = set(r3.stats["selected"]) - {9}
    assert len(honest_sel) >= 2 and r3.stats["opened_mean_of"] == 3


def _spy_openings(monkeypatch):
    opened = []
    honest = SpdzEngine._partial_open

    def spy(self, *a, **k):
        v = honest(self, *a, **k)
        opened.append(v.shape)
        return v
    monkeypatch.setattr(SpdzEngine, "_partial_open", spy)
    return opened


def test_weights_are_refused_before_anything_is_opened(monkeypatch):
    """L4: weights that cannot be represented for some selection fail before the distances
    (or anything else) are opened."""
    ups = grid_updates(6, 8, seed=23)
    w = {k: 1e-9 for k in ups}
    w[0] = 1.5  # the lightest selection of m = 5 weighs 5e-9/1.5 of the heaviest
    opened = _spy_openings(monkeypatch)
    with pytest.raises(UnsupportedParameters, match="weights"):
        R.SpdzKrumAggregator(f=1, m=5, clip=1.0, rng=DeterministicRandom(24)).aggregate(ups, w)
    assert opened == []
    # weights valid for every selection of m: the round runs, weights exact to atol
    w = {k: 1.0 + 0.5 * k for k in ups}
    res = R.SpdzKrumAggregator(f=1, m=4, clip=1.0, rng=DeterministicRandom(24)).aggregate(ups, w)
    sel = res.stats["selected"]
    ref = sum(w[i] * ups[i] for i in sel) / sum(w[i] for i in sel)
    assert np.max(np.abs(res.mean - ref)) <= res.stats["atol"]


def test_wrongly_shaped_pair_is_refused_before_opening(monkeypatch):
    """L5: a pre-dealt pair of the wrong shape is refused before D = X - A is opened."""
    eng = SpdzEngine(3, F, DeterministicRandom(25), bound=1.0)
    x = eng.share(np.array([[0.5, -0.25, 0.125], [0.75, 0.5, -0.5]]), bound=1.0)
    opened = _spy_openings(monkeypatch)
    for shape in [(1, 3), (2, 2), (3, 3)]:
        with pytest.raises(ValueError, match="pre-dealt Gram pair"):
            R.gram_on_shares(eng, x, R.gram_pair(eng.dealer, shape))
    assert opened == [] and eng.stats["opened_elements"] == 0


def test_selection_is_exact_above_2_53():
    """Info 1: distances 2^53 and 2^53 + 1 are equal in float64 (the tie goes to the lower
    index); on the exact integers the truly smaller score wins."""
    big = 2**53
    near = np.array([[0, big + 1, big + 8], [big + 1, 0, big], [big + 8, big, 0]], dtype=np.int64)
    # n = 3, f = 0: score = the smallest distance; row 0: 2^53 + 1, rows 1 and 2: 2^53
    assert R.krum_scores(near, 0) == [big + 1, big, big]
    assert all(type(s) is int for s in R.krum_scores(near, 0))
    assert R.krum_select(near, 0, 1).tolist() == [1]
    assert R.krum_select(near.astype(np.float64), 0, 1).tolist() == [0]  # float64 ties: wrong
    assert R.krum_select(near, 0, 2).tolist() == [1, 2]


def test_opened_distances_are_exact_integers_beyond_float64():
    """Info 1: stats["distances_int"] holds the exact opened integers (scale 2^32) even
    where float64 loses the last bit (the review's s4_float case)."""
    d = 10_000
    base = np.full(d, 8.0)
    ups = {0: base, 1: -base, 2: base.copy(), 3: -base.copy(), 4: base.copy()}
    ups[1][0] = -8.0 + 2.0**-16
    res = R.SpdzKrumAggregator(f=1, m=3, clip=8.0, verify_range=False, trust_clients=True,
                               rng=DeterministicRandom(26)).aggregate(ups)
    ids = res.stats["distance_clients"]
    enc = {c: [int(round(v * 2**F)) for v in ups[c]] for c in ids}
    i, j = ids.index(0), ids.index(1)
    exact = sum((a - b) ** 2 for a, b in zip(enc[0], enc[1]))
    assert exact > 2**53 and int(float(exact)) != exact
    assert int(res.stats["distances_int"][i, j]) == exact


def test_lying_party_digest_aborts_instead_of_excluding(monkeypatch):
    """L3: a party reporting a wrong digest for an honest client cannot steer Krum's input
    set: the disagreement is not attributable, so the round aborts at stage "input"."""
    ups = grid_updates(6, 8, seed=27)
    honest = SpdzComputeParty.receive_input

    def lie(self, msg, **kw):
        honest(self, msg, **kw)
        if self.j == 1 and 2 in self.digests:
            self.digests[2] = b"\0" * 32
    monkeypatch.setattr(SpdzComputeParty, "receive_input", lie)
    with pytest.raises(ProtocolAbort, match="client 2") as err:
        R.SpdzKrumAggregator(f=1, m=3, clip=1.0, rng=DeterministicRandom(28)).aggregate(ups)
    assert err.value.stage == "input"


def test_equivocating_client_aborts_and_garbage_everywhere_excludes(monkeypatch):
    """L3: a client sending different inputs to different parties aborts the round (it cannot
    be told apart from a lying party); one whose messages are malformed at every party is
    excluded (every party saw it, so at least one honest party did)."""
    import privcrypt.secagg.spdz as S
    ups = grid_updates(6, 8, seed=29)
    honest = S.SpdzClient.input_messages
    mode = {}

    def evil(self, n):
        msgs = honest(self, n)
        if self.cid != 3:
            return msgs
        if mode["m"] == "equivocate":
            m0 = Message.decode(msgs[0])
            delta = unpack_array(m0.payload, dtype=np.uint64).copy()
            delta[0] = (int(delta[0]) + 1) % P
            from privcrypt.wire import pack_array
            msgs[0] = Message(m0.round_id, m0.stage, m0.sender, m0.recipient, pack_array(delta)).encode()
            return msgs
        return [b"garbage"] * n
    monkeypatch.setattr(S.SpdzClient, "input_messages", evil)
    mode["m"] = "equivocate"
    with pytest.raises(ProtocolAbort) as err:
        R.SpdzKrumAggregator(f=1, m=3, clip=1.0, rng=DeterministicRandom(30)).aggregate(ups)
    assert err.value.stage == "input"
    mode["m"] = "garbage"
    res = R.SpdzKrumAggregator(f=1, m=3, clip=1.0, rng=DeterministicRandom(30)).aggregate(ups)
    assert res.stats["malformed_clients"] == [3] and 3 not in res.stats["distance_clients"]


def test_matmul_mod_refuses_non_canonical_residues():
    """Info 2: values >= p would silently give a wrong product."""
    ok = np.ones((1, 3), dtype=np.uint64)
    for bad in (np.full((1, 3), P, dtype=np.uint64), np.full((1, 3), 2**64 - 1, dtype=np.uint64)):
        with pytest.raises(ValueError, match="canonical"):
            R.matmul_mod(bad, ok)
        with pytest.raises(ValueError, match="canonical"):
            R.matmul_mod(ok, bad)


@settings(max_examples=30)
@given(st.integers(0, 2), st.integers(0, 3), st.integers(0, 2**32), st.integers(1, 50))
def test_integer_selection_agrees_with_float_where_float_is_exact(f, extra, seed, bits):
    """Info 1: the exact-integer path is the same rule as fl's float rule whenever float64
    represents every score exactly (entries < 2^50, at most 8 summed)."""
    k = 2 * f + 3 + extra
    d = np.triu(DeterministicRandom(seed).integers(2**bits, (k, k)), 1)
    d = d + d.T  # symmetric, zero diagonal; small ``bits`` make ties (lower index wins)
    for m in range(1, k - f + 1):
        assert R.krum_select(d, f, m).tolist() == fl_krum_select(d.astype(np.float64), f, m).tolist()
