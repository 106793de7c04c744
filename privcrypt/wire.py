"""A small, strict binary wire format for protocol messages and arrays.

Every byte string that crosses a trust boundary in privcrypt (secure-aggregation messages,
serialized shares) is parsed here with explicit length, dtype and shape checks; anything
off raises :class:`~privcrypt.exceptions.MalformedInput`. No pickle, no eval.

Array encoding: ``dtype code (1 byte) | ndim (1 byte) | ndim x uint32 dims | raw little-endian
data``. Message encoding: ``magic b"PCW1" | round_id (16 bytes) | stage (1 byte length +
ascii) | sender (uint32) | recipient (uint32) | payload length (uint32) | payload``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from privcrypt.exceptions import MalformedInput

__all__ = ["pack_array", "unpack_array", "Message", "SERVER", "BROADCAST"]

_DTYPES = {
    1: np.dtype("<u1"),
    2: np.dtype("<i8"),
    3: np.dtype("<u8"),
    4: np.dtype("<f4"),
    5: np.dtype("<f8"),
    6: np.dtype("<u4"),
    7: np.dtype("<u2"),
}
_CODES = {dt: code for code, dt in _DTYPES.items()}
_MAGIC = b"PCW1"
SERVER = 0xFFFFFFFF  # recipient/sender id of the server
BROADCAST = 0xFFFFFFFE


def pack_array(arr: np.ndarray) -> bytes:
    """Serialize a numeric array (uint8/16/32/64, int64, float32/64; up to 8 dims)."""
    arr = np.asarray(arr)
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    code = _CODES.get(np.dtype(dt).newbyteorder("<"))
    if code is None:
        raise TypeError(f"unsupported dtype {arr.dtype}")
    if arr.ndim > 8:
        raise ValueError("at most 8 dimensions")
    head = struct.pack("<BB", code, arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape)
    return head + np.ascontiguousarray(arr, dtype=_DTYPES[code]).tobytes()


def unpack_array(buf: bytes, *, dtype=None, shape: tuple[int, ...] | None = None,
                 max_elements: int | None = None) -> np.ndarray:
    """Parse :func:`pack_array` output. ``dtype``/``shape``, when given, must match exactly;
    ``max_elements`` caps the size. Raises ``MalformedInput`` on any mismatch, truncation or
    trailing bytes. Returns a read-only-safe copy."""
    mv = memoryview(buf)
    if len(mv) < 2:
        raise MalformedInput("array header truncated")
    code, ndim = struct.unpack_from("<BB", mv, 0)
    if code not in _DTYPES or ndim > 8:
        raise MalformedInput("bad array dtype code or rank")
    off = 2 + 4 * ndim
    if len(mv) < off:
        raise MalformedInput("array shape truncated")
    dims = struct.unpack_from(f"<{ndim}I", mv, 2)
    dt = _DTYPES[code]
    count = math.prod(dims)
    if max_elements is not None and count > max_elements:
        raise MalformedInput(f"array has {count} elements, at most {max_elements} allowed")
    if len(mv) != off + count * dt.itemsize:
        raise MalformedInput("array length does not match its shape")
    if dtype is not None and dt != np.dtype(dtype).newbyteorder("<"):
        raise MalformedInput(f"expected dtype {np.dtype(dtype)}, got {dt}")
    if shape is not None and tuple(dims) != tuple(shape):
        raise MalformedInput(f"expected shape {tuple(shape)}, got {tuple(dims)}")
    return np.frombuffer(mv[off:], dtype=dt).reshape(dims).copy()


@dataclass(frozen=True)
class Message:
    """One protocol message. ``round_id`` (16 bytes) and ``stage`` are bound into every
    message so a message from another round or stage is rejected by :meth:`decode`."""

    round_id: bytes
    stage: str
    sender: int
    recipient: int
    payload: bytes

    def encode(self) -> bytes:
        if len(self.round_id) != 16:
            raise ValueError("round_id must be 16 bytes")
        st = self.stage.encode("ascii")
        if not 0 < len(st) < 256:
            raise ValueError("stage name must be 1..255 ascii characters")
        return (_MAGIC + self.round_id + bytes([len(st)]) + st
                + struct.pack("<III", self.sender, self.recipient, len(self.payload)) + self.payload)

    @classmethod
    def decode(cls, buf: bytes, *, round_id: bytes | None = None, stage: str | None = None,
               max_payload: int = 1 << 31) -> "Message":
        """Parse and validate. When ``round_id``/``stage`` are given, a message for another
        round or stage raises ``MalformedInput`` (replay protection at the framing level;
        authenticated payloads must bind them too)."""
        mv = memoryview(buf)
        if len(mv) < 21 or bytes(mv[:4]) != _MAGIC:
            raise MalformedInput("not a privcrypt message")
        rid = bytes(mv[4:20])
        slen = mv[20]
        off = 21 + slen
        if len(mv) < off + 12:
            raise MalformedInput("message header truncated")
        try:
            st = bytes(mv[21:off]).decode("ascii")
        except UnicodeDecodeError:
            raise MalformedInput("bad stage name") from None
        sender, recipient, plen = struct.unpack_from("<III", mv, off)
        off += 12
        if plen > max_payload or len(mv) != off + plen:
            raise MalformedInput("message payload length mismatch")
        if round_id is not None and rid != round_id:
            raise MalformedInput("message belongs to another round")
        if stage is not None and st != stage:
            raise MalformedInput(f"expected stage {stage!r}, got {st!r}")
        return cls(rid, st, sender, recipient, bytes(mv[off:]))

    @property
    def header(self) -> bytes:
        """Bytes to bind as associated data when the payload is authenticated."""
        return self.round_id + self.stage.encode("ascii") + struct.pack("<II", self.sender, self.recipient)
