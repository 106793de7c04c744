import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from privcrypt.exceptions import MalformedInput
from privcrypt.wire import Message, pack_array, unpack_array

DTYPES = [np.uint8, np.int64, np.uint64, np.float32, np.float64, np.uint32, np.uint16]


@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_array_round_trip(data, dtype):
    arr = data.draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, max_side=5)))
    out = unpack_array(pack_array(arr))
    assert out.dtype == np.dtype(dtype) and out.shape == arr.shape
    assert np.array_equal(out, arr, equal_nan=np.issubdtype(dtype, np.floating))


def test_array_validation():
    buf = pack_array(np.arange(6, dtype=np.int64).reshape(2, 3))
    for bad in (buf[:-1], buf + b"\0", b"", b"\x09\x00", buf[:5]):
        with pytest.raises(MalformedInput):
            unpack_array(bad)
    with pytest.raises(MalformedInput):
        unpack_array(buf, dtype=np.uint64)
    with pytest.raises(MalformedInput):
        unpack_array(buf, shape=(3, 2))
    with pytest.raises(MalformedInput):
        unpack_array(buf, max_elements=5)
    with pytest.raises(TypeError):
        pack_array(np.array(["a"]))


def test_message_round_trip_and_binding():
    m = Message(b"r" * 16, "masked-input", 3, 0xFFFFFFFF, b"payload")
    raw = m.encode()
    assert Message.decode(raw) == m
    assert Message.decode(raw, round_id=b"r" * 16, stage="masked-input") == m
    with pytest.raises(MalformedInput, match="another round"):
        Message.decode(raw, round_id=b"x" * 16)
    with pytest.raises(MalformedInput, match="stage"):
        Message.decode(raw, stage="keys")
    for bad in (raw[:-1], raw + b"\0", b"XXXX" + raw[4:], raw[:10]):
        with pytest.raises(MalformedInput):
            Message.decode(bad)
