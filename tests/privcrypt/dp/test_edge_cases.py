"""Issue 14, item 5: DP edge cases give infinity or one clear error, and the budget and
the clipping keep their promises at the extremes."""

import math
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from privcrypt.dp import PrivacyBudget, compute_epsilon, noise_multiplier_for
from privcrypt.dp.accountants import SIGMA_ACCOUNTED_MAX, RDPAccountant
from privcrypt.dp.clip import clip_update
from privcrypt.exceptions import PrivacyBudgetExceeded


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
@pytest.mark.parametrize("sigma", [0.0, 5e-324, 1e-300, 1e-12])
def test_tiny_noise_is_infinite_epsilon(sigma, accountant):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero or overflow warnings either
        assert compute_epsilon(sigma, 0.01, 10, 1e-5, accountant) == math.inf


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
@pytest.mark.parametrize("sigma", [1e30, 1e150, 1e308])
def test_huge_noise_is_a_finite_bound(sigma, accountant):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eps = compute_epsilon(sigma, 0.01, 10, 1e-5, accountant)
    # accounted at SIGMA_ACCOUNTED_MAX: a valid upper bound, since more noise never costs more
    assert 0.0 <= eps == compute_epsilon(SIGMA_ACCOUNTED_MAX, 0.01, 10, 1e-5, accountant) < 1e-2


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan])
def test_invalid_noise_is_one_clear_error(bad):
    with pytest.raises(ValueError, match="noise_multiplier"):
        compute_epsilon(bad, 0.01, 10, 1e-5)


def test_unreachable_target_is_one_clear_error():
    with pytest.raises(ValueError, match="no noise multiplier up to"):
        noise_multiplier_for(1e-12, 1e-5, 0.5, 10**6)


def test_budget_spend_is_atomic():
    """Two threads that each fit the budget alone but not together: exactly one wins.
    Each check is computed, then held until both threads have one; without the lock both
    see the empty history and both record a step (overspending)."""
    budget = PrivacyBudget(1.0, 1e-5)
    one = budget.accountant.epsilon_after(1e-5, noise_multiplier=1.0, sample_rate=1.0, steps=1)
    budget = PrivacyBudget(one * 1.01, 1e-5)  # one step fits, two do not
    inside = threading.Barrier(2)
    real = budget.accountant.epsilon_after

    def slow_epsilon_after(*a, **k):
        value = real(*a, **k)  # computed from the history as it is now
        try:
            inside.wait(timeout=2.0)  # with the lock the second thread never arrives: time out
        except threading.BrokenBarrierError:
            pass
        return value

    budget.accountant.epsilon_after = slow_epsilon_after
    results = []

    def spend():
        try:
            budget.spend(noise_multiplier=1.0, sample_rate=1.0)
            results.append("ok")
        except PrivacyBudgetExceeded:
            results.append("refused")

    threads = [threading.Thread(target=spend) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "refused"]
    assert budget.accountant.steps == 1 and budget.spent <= budget.epsilon


def _true_norm(a) -> float:
    return math.hypot(*np.asarray(a, dtype=float).ravel().tolist())


@pytest.mark.parametrize("value,clip", [(1e-170, 1e-171), (1e-160, 1e-200), (1e-300, 1e-305), (1e300, 1.0)])
def test_clip_update_keeps_its_bound_for_extreme_scales(value, clip):
    update = np.full(5, value)
    clipped, norm = clip_update(update, clip)
    assert _true_norm(clipped) <= clip
    assert norm == pytest.approx(_true_norm(update), rel=1e-12)
    assert np.all(clipped > 0)  # the direction survives


def test_clip_update_rejects_a_subnormal_bound():
    with pytest.raises(ValueError, match="normal float"):
        clip_update(np.ones(3), 1e-310)


@given(st.lists(st.floats(min_value=-1e200, max_value=1e200, allow_nan=False).filter(lambda v: v != 0),
                min_size=1, max_size=6),
       st.floats(min_value=1e-300, max_value=1e300), st.integers(-250, 250))
def test_clip_update_bound_holds_at_every_scale(values, clip, exp):
    with np.errstate(over="ignore", under="ignore"):
        update = np.asarray(values) * 10.0 ** exp
    if not np.all(np.isfinite(update)):
        return
    clipped, _ = clip_update(update, clip)
    assert _true_norm(clipped) <= clip


def test_rdp_accountant_history_keeps_the_true_sigma():
    acc = RDPAccountant()
    acc.step(noise_multiplier=1e308, sample_rate=0.01, steps=3)
    assert acc.history == ((1e308, 0.01, 3),)
