"""Issue 14 (secure-aggregation items): clipping is never silent, atol is a true bound,
secure backends refuse one-client rounds, stats share core keys, and careless inputs get
one clear error naming the client."""

import importlib.util
import warnings

import numpy as np
import pytest

import privcrypt.secagg as secagg
from privcrypt.exceptions import AccuracyWarning, ClippingWarning, PrecisionWarning, ProtocolAbort
from privcrypt.rng import DeterministicRandom
from privcrypt.secagg import CORE_STATS, make_aggregator

HAVE_TENSEAL = importlib.util.find_spec("tenseal") is not None
BACKENDS = ["plain", "masking", "spdz"] + (["ckks"] if HAVE_TENSEAL else [])
SECURE = [b for b in BACKENDS if b != "plain"]


def arange_updates(n=5):
    return {i: np.arange(10, dtype=float) for i in range(n)}


@pytest.mark.parametrize("name", BACKENDS)
def test_core_stats_in_every_backend(name):
    res = make_aggregator(name).aggregate({i: np.full(4, 0.1 * i) for i in range(4)},
                                          dropped=frozenset({3}))
    for key in CORE_STATS:
        assert key in res.stats, key
    assert res.stats["dropped"] == [3] and res.stats["n_survivors"] == 3


@pytest.mark.parametrize("name", ["masking", "spdz"] + (["ckks"] if HAVE_TENSEAL else []))
def test_a_round_that_clips_warns_and_strict_raises(name):
    """Issue 14, item 2: five clients sending arange(10) got [0, 1, 1, ...] from masking
    (clip 1) and values capped at 8 from spdz (clip 8), silently."""
    kw = {"mode": "compact"} if name == "ckks" else {}
    agg = make_aggregator(name, **kw)
    with pytest.warns(ClippingWarning, match="clipped"):
        res = agg.aggregate(arange_updates())
    assert res.stats["clipped"] > 0 and res.stats["clipped_clients"] == list(range(5))
    with pytest.raises(ValueError, match="clients \\[0, 1, 2, 3, 4\\]"):
        make_aggregator(name, strict=True, **kw).aggregate(arange_updates())


@pytest.mark.parametrize("name", BACKENDS)
def test_no_warning_inside_the_declared_range(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        res = make_aggregator(name).aggregate({i: np.full(6, 0.2) for i in range(4)})
    assert res.stats["clipped"] == 0


def test_masking_atol_is_a_true_bound_for_unequal_weights():
    """Issue 14, item 2: masking's error 3.61e-5 exceeded its atol 3.05e-5 with unequal
    weights. agg.atol now covers weights within max_weight_ratio; beyond it, a warning."""
    rng = DeterministicRandom(4)  # test data only
    ups = {i: rng.uniform(2000) * 2 - 1 for i in range(8)}
    w = {i: 1.0 + i for i in range(8)}  # spread 8
    expect = sum(w[i] * ups[i] for i in ups) / sum(w.values())
    agg = make_aggregator("masking", max_weight_ratio=8.0, rng=DeterministicRandom(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        res = agg.aggregate(ups, w)
    err = np.abs(res.mean - expect).max()
    assert err <= res.stats["atol"] <= agg.atol
    with pytest.warns(AccuracyWarning):
        make_aggregator("masking").aggregate(ups, w)  # declared ratio 1: warns


@pytest.mark.parametrize("name", SECURE)
def test_secure_backends_refuse_one_client_rounds(name):
    """Issue 14, item 3: min_clients defaulted to 1, so a one-client "secure" round
    returned that client's update exactly."""
    agg = make_aggregator(name)
    assert agg.min_clients >= 2
    with pytest.raises((ValueError, ProtocolAbort)):
        agg.aggregate({0: np.full(3, 0.5)})
    with pytest.raises(ValueError, match="min_clients"):
        make_aggregator(name, min_clients=1)


def test_backend_classes_are_exported():
    assert secagg.MaskingAggregator.name == "masking" and secagg.PlainAggregator.name == "plain"
    assert secagg.SpdzAggregator.name == "spdz"
    for n in ("plain", "masking", "spdz", "ckks"):
        assert n in make_aggregator.__doc__
    with pytest.raises(AttributeError):
        secagg.NoSuchAggregator


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("bad,err,match", [
    ({0: [], 1: []}, ValueError, "client 0 is empty"),
    ({0: np.array([1j, 2j]), 1: np.zeros(2)}, TypeError, "client 0"),
    ({0: np.zeros(2), 1: np.array(["1", "2"])}, TypeError, "client 1"),
    ([np.zeros(2), np.zeros(2)], TypeError, "dict"),
])
def test_careless_inputs_get_one_clear_error(name, bad, err, match):
    with pytest.raises(err, match=match):
        make_aggregator(name).aggregate(bad)


@pytest.mark.parametrize("name", BACKENDS)
def test_weights_for_unknown_clients_are_named(name):
    with pytest.raises(ValueError, match="unknown clients \\[7\\]"):
        make_aggregator(name).aggregate({0: np.zeros(2), 1: np.zeros(2)}, {0: 1.0, 1: 1.0, 7: 2.0})


def test_plain_accepts_clip_and_then_agrees_with_the_secure_backends():
    ups = arange_updates()
    plain = make_aggregator("plain").aggregate(ups)
    np.testing.assert_array_equal(plain.mean, np.arange(10.0))
    with pytest.warns(ClippingWarning):
        clipped = make_aggregator("plain", clip=8.0).aggregate(ups)
    with pytest.warns(ClippingWarning):
        spdz = make_aggregator("spdz", clip=8.0).aggregate(ups)
    np.testing.assert_allclose(clipped.mean, spdz.mean, atol=spdz.stats["atol"])
    assert clipped.stats["clipped"] == spdz.stats["clipped"] == 5
