import numpy as np
import pytest

from privcrypt.secagg import make_aggregator, validate_round_inputs


def test_validate_round_inputs():
    u, w, d = validate_round_inputs({0: [1, 2], 1: [3, 4]}, None, frozenset({1}))
    assert w == {0: 1.0, 1: 1.0} and d == frozenset({1})
    assert u[0].dtype == np.float64
    for bad in ({}, {0: [1, 2], 1: [3]}, {0: [[1.0]]}, {0: [np.nan]}):
        with pytest.raises(ValueError):
            validate_round_inputs(bad, None, frozenset())
    with pytest.raises(ValueError):
        validate_round_inputs({0: [1.0]}, {0: -1.0}, frozenset())
    with pytest.raises(ValueError):
        validate_round_inputs({0: [1.0]}, {1: 1.0}, frozenset())
    with pytest.raises(ValueError):
        validate_round_inputs({0: [1.0]}, None, frozenset({3}))


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        make_aggregator("nope")
