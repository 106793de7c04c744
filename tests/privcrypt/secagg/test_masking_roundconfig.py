"""Regression: ``RoundConfig.decode`` on untrusted bytes raises only ``MalformedInput``,
including when the overflow guard (``Quantizer.check_sum_fits``, a ``ValueError``) trips
(found by the fl.flower state fuzz test against the pre-split masking backend)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privcrypt.exceptions import MalformedInput
from privcrypt.secagg.masking import RoundConfig

_FMT = RoundConfig._FMT


def test_a_config_whose_sum_would_wrap_is_malformed_input():
    # 2^17 clients * (2^16 - 1) >= 2^32: every other field in range, only the guard trips
    raw = RoundConfig(8, 1 << 17, 16, 32, 1.0, 2, 1.0, 3).encode()
    with pytest.raises(MalformedInput, match="wraps"):
        RoundConfig.decode(raw)
    ok = RoundConfig(8, 1 << 15, 16, 32, 1.0, 2, 1.0, 3)  # 2^15 * 65535 < 2^32: accepted
    assert RoundConfig.decode(ok.encode()).n_clients == 1 << 15


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 255),
       st.sampled_from([0, 32, 64, 255]), st.floats(allow_nan=True), st.integers(0, 2**32 - 1),
       st.floats(allow_nan=True), st.integers(0, 2**32 - 1), st.integers(0, 255))
def test_decode_raises_only_malformed_input(dim, n, bits, mbits, clip, t, wf, k, auth):
    try:
        RoundConfig.decode(_FMT.pack(dim, n, bits, mbits, clip, t, wf, k, auth))
    except MalformedInput:
        pass


@given(st.binary(max_size=64))
def test_decode_random_bytes(buf):
    try:
        RoundConfig.decode(buf)
    except MalformedInput:
        pass
