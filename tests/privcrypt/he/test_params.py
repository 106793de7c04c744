import pytest

from privcrypt.exceptions import UnsupportedParameters
from privcrypt.he import PARAM_SETS, ParamSet, get_params
from privcrypt.he._seal import make_seal_context
from privcrypt.he.params import MAX_LOG_Q_128


def test_named_sets_are_128_bit_and_seal_agrees():
    for p in PARAM_SETS.values():
        p.check()
        assert p.log_q <= MAX_LOG_Q_128[p.poly_degree]
        assert make_seal_context(p).parameters_set()  # SEAL's own tc128 check passes too
    assert len({p.set_id for p in PARAM_SETS.values()}) == len(PARAM_SETS)


def test_default_set_is_the_measured_design():
    p = get_params()
    assert (p.poly_degree, p.coeff_bits, p.scale_bits) == (4096, (60,), 40)
    assert p.values_per_chunk == 4096 and p.compact_values_per_chunk == 8192
    assert p.max_sum == 2.0**18


def test_insecure_or_unknown_sets_are_refused():
    # 120 bits of modulus at N=4096 exceeds the HE-standard 109-bit bound.
    with pytest.raises(UnsupportedParameters, match="128-bit"):
        get_params(ParamSet("too-big", 9, 4096, (60, 60), 40))
    with pytest.raises(UnsupportedParameters):
        get_params(ParamSet("bad-n", 9, 3000, (30,), 20))
    with pytest.raises(UnsupportedParameters, match="unknown"):
        get_params("n4096-q61")
