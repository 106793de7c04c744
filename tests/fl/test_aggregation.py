"""fl.aggregation: hand-computed examples (worked out in the comments) and the breakdown
points as hypothesis invariants."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fl.aggregation import (
    AGGREGATORS,
    RobustResult,
    bulyan,
    centered_clipping,
    coordinate_median,
    krum,
    krum_scores,
    krum_select,
    norm_bound,
    robust_aggregate,
    secure_backend_for,
    trimmed_mean,
    weighted_mean,
)

LINE = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])


def test_weighted_mean_by_hand():
    # (1·1 + 3·3)/4 = 2.5, (1·2 + 3·4)/4 = 3.5
    assert weighted_mean([[1, 2], [3, 4]], [1, 3]).tolist() == [2.5, 3.5]
    assert weighted_mean([[1, 2], [3, 4]]).tolist() == [2.0, 3.0]


def test_median_and_trimmed_by_hand():
    assert coordinate_median([[1, 10], [2, 20], [100, -5]]).tolist() == [2.0, 10.0]
    assert coordinate_median([[1], [2], [3], [10]]).tolist() == [2.5]  # even n: middle pair
    # beta = 0.2 of n = 5 trims one per side: mean(2, 3, 4) = 3
    assert trimmed_mean([[1], [2], [3], [4], [100]], 0.2).tolist() == [3.0]
    assert trimmed_mean([[1], [2], [3], [4], [100]], 0.0).tolist() == [22.0]


def test_krum_by_hand():
    # n = 5, f = 1: n - f - 2 = 2 neighbours. Squared distances on the line 0,1,2,10,11:
    # 0 -> {1, 4} = 5; 1 -> {1, 1} = 2; 2 -> {1, 4} = 5; 10 -> {1, 64} = 65; 11 -> {1, 81} = 82
    assert krum_scores(LINE, 1).tolist() == [5.0, 2.0, 5.0, 65.0, 82.0]
    agg, sel = krum(LINE, 1)
    assert agg.tolist() == [1.0] and sel.tolist() == [1]
    agg, sel = krum(LINE, 1, m=3)
    assert agg.tolist() == [1.0] and sel.tolist() == [0, 1, 2]
    agg, sel = krum(LINE, 1, m=2)  # tie 0 / 2 (score 5) goes to the lower index
    assert sel.tolist() == [0, 1] and agg.tolist() == [0.5]
    agg, sel = krum(LINE, 1, m=2, weights=[3, 1, 1, 1, 1])  # (3·0 + 1·1)/4
    assert agg.tolist() == [0.25]


def test_krum_breakdown_condition():
    with pytest.raises(ValueError, match="n >= 5"):
        krum(LINE[:4], 1)
    with pytest.raises(ValueError, match="m must be"):
        krum(LINE, 1, m=5)  # m <= n - f = 4
    with pytest.raises(ValueError, match="f must be"):
        krum_scores(LINE, -1)
    assert krum_select(np.zeros((3, 3)), 0).tolist() == [0]


def test_bulyan_by_hand():
    # n = 7, f = 1: theta = 5 Krum picks, beta = 3. Picks (worked by hand): 2 (score 10 with
    # 4 neighbours), then 1 (tie with 3, lower index), 3, 0 (tie with 4), 4; the outliers
    # 100 and -50 are never picked. Median of 0..4 is 2; the 3 closest are 2, 1, 3 -> 2.
    x = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [100.0], [-50.0]])
    agg, sel = bulyan(x, 1, return_selected=True)
    assert agg.tolist() == [2.0] and sel.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="n >= 7"):
        bulyan(x[:6], 1)
    assert bulyan(x[:3], 0).tolist() == pytest.approx([1.0])  # f = 0: the mean


def test_centered_clipping_by_hand():
    # center 0, tau 1: the row at distance 10 is scaled to length 1, the row at the center
    # contributes 0, so v = (0 + [1, 0]) / 2
    assert centered_clipping([[0, 0], [10, 0]], [0, 0], 1.0).tolist() == [0.5, 0.0]
    # two iterations: from 0.5, the far row is 9.5 away -> step 1; the near row 0.5 away -> -0.5
    assert centered_clipping([[0, 0], [10, 0]], [0, 0], 1.0, iters=2).tolist() == [0.75, 0.0]
    with pytest.raises(ValueError):
        centered_clipping([[0, 0]], [0], 1.0)


def test_norm_bound_by_hand():
    # norms 5, 1, 10: median 5; the third row is scaled to length 5
    out, count = norm_bound([[3, 4], [0, 1], [6, 8]])
    assert out.tolist() == [[3, 4], [0, 1], [3, 4]] and count == 1
    out, count = norm_bound([[3, 4], [0, 1], [6, 8]], multiple=2.0)
    assert count == 0 and out[2].tolist() == [6, 8]


def test_dispatch():
    x = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [10.0, 1.0], [11.0, 1.0]])
    for name in AGGREGATORS:
        res = robust_aggregate(name, x, f=1 if name != "bulyan" else 0)
        assert isinstance(res, RobustResult) and res.mean.shape == (2,)
        assert np.all(np.diff(res.selected) > 0)
    assert robust_aggregate("krum", x, f=1).selected.tolist() == [1]
    assert robust_aggregate("multikrum", x, f=1, m=3).mean.tolist() == [1.0, 1.0]
    assert robust_aggregate("multikrum", x, f=1).selected.tolist() == [0, 1, 2, 3]  # m = n - f
    assert robust_aggregate("trimmed", x, f=1).info["trimmed_per_side"] == 1
    assert robust_aggregate("fedavg", x, [1, 1, 1, 1, 6]).mean[0] == pytest.approx((0 + 1 + 2 + 10 + 66) / 10)
    assert robust_aggregate("normbound", x).info["clipped"] == 2
    assert robust_aggregate("median", x, [1, 2, 3, 4, 5]).info["weights_ignored"]
    with pytest.raises(ValueError, match="unknown aggregator"):
        robust_aggregate("mean", x)
    with pytest.raises(ValueError, match="n >= 7"):
        robust_aggregate("krum", x, f=2)
    with pytest.raises(ValueError, match="f < n/2"):
        robust_aggregate("median", x, f=3)
    with pytest.raises(ValueError, match="no parameter"):
        robust_aggregate("krum", x, f=1, m=2)
    with pytest.raises(ValueError, match="fewer than f"):
        robust_aggregate("trimmed", x, f=2, beta=0.2)
    with pytest.raises(ValueError, match="NaN"):
        robust_aggregate("fedavg", [[np.nan]])
    with pytest.raises(ValueError, match="weights"):
        robust_aggregate("fedavg", x, [1, 1, 1, 1, 0])


# -- breakdown points: f outliers anywhere, the result stays within the honest range ------

finite = st.floats(-1.0, 1.0, allow_nan=False)
far = st.floats(1e3, 1e12) .flatmap(lambda m: st.sampled_from([m, -m]))


@st.composite
def scenario(draw, per_f, plus, outlier=far):
    f = draw(st.integers(0, 3))
    n = per_f * f + plus + draw(st.integers(0, 3))
    d = draw(st.integers(1, 4))
    honest = np.array(draw(st.lists(st.lists(finite, min_size=d, max_size=d), min_size=n - f, max_size=n - f)))
    bad = np.array(draw(st.lists(st.lists(outlier, min_size=d, max_size=d), min_size=f, max_size=f))).reshape(f, d)
    where = draw(st.permutations(range(n)))
    x = np.empty((n, d))
    x[list(where[: n - f])] = honest
    x[list(where[n - f:])] = bad
    return x, honest, f, sorted(where[n - f:])


def within(agg, honest):
    return np.all(agg >= honest.min(axis=0) - 1e-12) and np.all(agg <= honest.max(axis=0) + 1e-12)


anywhere = st.floats(-1e12, 1e12, allow_nan=False)


@given(scenario(2, 1, anywhere))
def test_median_stays_in_honest_range(case):
    x, honest, f, _ = case
    assert within(coordinate_median(x), honest)


@given(scenario(2, 1, anywhere))
def test_trimmed_mean_stays_in_honest_range(case):
    x, honest, f, _ = case
    assert within(trimmed_mean(x, f / x.shape[0]), honest)


@given(scenario(2, 3))
def test_krum_selects_honest_rows_against_far_outliers(case):
    x, honest, f, bad = case
    n = x.shape[0]
    for m in (1, n - f):
        agg, sel = krum(x, f, m)
        assert not set(sel.tolist()) & set(bad)
        assert within(agg, honest)


@given(scenario(4, 3))
def test_bulyan_stays_in_honest_range_against_far_outliers(case):
    x, honest, f, bad = case
    agg, sel = bulyan(x, f, return_selected=True)
    assert within(agg, honest)


@given(st.integers(0, 2), st.integers(0, 10_000))
def test_krum_select_on_distances_matches_krum(f, seed):
    x = np.random.default_rng(seed).normal(size=(2 * f + 4, 3))  # data, not secrets
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    assert krum_select(d2, f, 2).tolist() == krum(x, f, 2)[1].tolist()


def test_secure_backend_for():
    assert secure_backend_for("plain", "median") == "plain"
    assert secure_backend_for("masking", "fedavg") == "masking"
    assert secure_backend_for("spdz", "multikrum") == "spdz-krum"
    assert secure_backend_for("spdz", "normbound") == "spdz"
    for backend in ("masking", "ckks"):
        with pytest.raises(ValueError, match="secure alternatives: --backend spdz"):
            secure_backend_for(backend, "krum")
    with pytest.raises(ValueError, match="cannot run on SPDZ shares"):
        secure_backend_for("spdz", "median")
    with pytest.raises(ValueError, match="unknown"):
        secure_backend_for("spdz", "mean")
