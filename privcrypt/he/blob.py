"""The byte format of encrypted updates and aggregates, parsed strictly.

``header | n_chunks x (uint32 length | SEAL ciphertext bytes)`` with the header::

    magic b"PCHE" | version u8 | kind u8 (1 update, 2 aggregate) | set id u8 | mode u8
    (0 default, 1 compact) | key id (16) | n_values u64 | n_chunks u32 | count u32
    (contributions) | weight f64 (sum of the contributors' weights) | clip f64 | bits u8

Every field is checked against what the reader expects (:func:`parse`); any mismatch,
truncation or trailing byte raises :class:`~privcrypt.exceptions.MalformedInput`, a key id
that is not the reader's raises :class:`~privcrypt.exceptions.InvalidKey`. The SEAL bytes
of each chunk are then loaded by SEAL against the reader's context (which checks the
parameters id, sizes and coefficient ranges) and checked once more by :func:`load_chunk`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from privcrypt.exceptions import InvalidKey, MalformedInput
from privcrypt.he._seal import SealFiles, sealapi

__all__ = ["Header", "UPDATE", "AGGREGATE", "MODES", "pack", "parse", "load_chunk", "n_chunks_for"]

_MAGIC = b"PCHE"
_VERSION = 1
_HEAD = struct.Struct("<4sBBBB16sQIIddB")
UPDATE, AGGREGATE = 1, 2
MODES = {"default": 0, "compact": 1}
_MODE_NAMES = {v: k for k, v in MODES.items()}
_MAX_VALUES = 2**40


@dataclass(frozen=True)
class Header:
    kind: int
    set_id: int
    mode: str
    key_id: bytes
    n_values: int
    n_chunks: int
    count: int
    weight: float
    clip: float = 0.0
    bits: int = 0

    def pack(self) -> bytes:
        return _HEAD.pack(_MAGIC, _VERSION, self.kind, self.set_id, MODES[self.mode], self.key_id,
                          self.n_values, self.n_chunks, self.count, self.weight, self.clip, self.bits)


def n_chunks_for(n_values: int, per_chunk: int) -> int:
    return max(1, -(-int(n_values) // per_chunk))


def pack(header: Header, chunks: list[bytes]) -> bytes:
    if len(chunks) != header.n_chunks:
        raise ValueError("chunk count does not match the header")
    parts = [header.pack()]
    for c in chunks:
        parts.append(struct.pack("<I", len(c)))
        parts.append(c)
    return b"".join(parts)


def parse(data: bytes, ctx, *, kind: int | None = None, mode: str | None = None,
          n_values: int | None = None) -> tuple[Header, list[memoryview]]:
    """Split ``data`` into its header and chunk byte views, validating everything that
    can be checked without SEAL against ``ctx`` (a :class:`CkksContext`) and the expected
    ``kind``, ``mode`` and ``n_values``."""
    mv = memoryview(bytes(data) if not isinstance(data, (bytes, bytearray, memoryview)) else data)
    if len(mv) < _HEAD.size:
        raise MalformedInput("CKKS message truncated (header)")
    (magic, ver, k, set_id, mode_code, key_id, nv, nc, count, weight, clip,
     bits) = _HEAD.unpack_from(mv, 0)
    if magic != _MAGIC or ver != _VERSION:
        raise MalformedInput("not a privcrypt CKKS message (magic/version)")
    if k not in (UPDATE, AGGREGATE) or (kind is not None and k != kind):
        raise MalformedInput(f"unexpected message kind {k}")
    if set_id != ctx.params.set_id:
        raise MalformedInput(f"parameter set id {set_id}, expected {ctx.params.set_id} ({ctx.params.name})")
    if mode_code not in _MODE_NAMES or (mode is not None and _MODE_NAMES[mode_code] != mode):
        raise MalformedInput(f"unexpected mode code {mode_code}")
    m = _MODE_NAMES[mode_code]
    if key_id != ctx.key_id:
        raise InvalidKey("ciphertext was made under another key (key id mismatch)")
    if not (1 <= nv <= _MAX_VALUES) or (n_values is not None and nv != n_values):
        raise MalformedInput(f"vector length {nv}, expected {n_values}")
    per = ctx.params.values_per_chunk if m == "default" else ctx.params.compact_values_per_chunk
    if nc != n_chunks_for(nv, per):
        raise MalformedInput(f"{nc} chunks for {nv} values, expected {n_chunks_for(nv, per)}")
    if count < 1 or (k == UPDATE and count != 1):
        raise MalformedInput("bad contribution count")
    if not (math.isfinite(weight) and weight > 0):
        raise MalformedInput("weight must be positive and finite")
    if m == "compact":
        if not (math.isfinite(clip) and clip > 0) or not (1 <= bits < ctx.params.lane_bits):
            raise MalformedInput("bad compact clip/bits")
        if k == UPDATE and weight > 1.0:
            raise MalformedInput("compact-mode weights must be in (0, 1]")
    # A full 2-polynomial ciphertext is 16 N bytes per prime; allow SEAL's framing on top.
    max_chunk = 2 * 8 * ctx.params.poly_degree * len(ctx.params.coeff_bits) + 4096
    chunks, off = [], _HEAD.size
    for _ in range(nc):
        if len(mv) < off + 4:
            raise MalformedInput("CKKS message truncated (chunk length)")
        (ln,) = struct.unpack_from("<I", mv, off)
        off += 4
        if ln == 0 or ln > max_chunk or len(mv) < off + ln:
            raise MalformedInput("CKKS message truncated or chunk length out of range")
        raw = mv[off:off + ln]
        # SEAL's own header: magic 0x5EA1, 16-byte header, reserved bytes zero, and the
        # stated size equal to the chunk length (SEAL itself ignores the reserved bytes).
        if (ln < 16 or bytes(raw[:3]) != b"\x5e\xa1\x10" or bytes(raw[6:8]) != b"\0\0"
                or struct.unpack_from("<Q", raw, 8)[0] != ln):
            raise MalformedInput("chunk is not a SEAL object of the stated length")
        chunks.append(raw)
        off += ln
    if off != len(mv):
        raise MalformedInput("trailing bytes after the last chunk")
    hdr = Header(k, set_id, m, bytes(key_id), nv, nc, count, weight, clip, bits)
    return hdr, chunks


def load_chunk(files: SealFiles, ctx, raw, *, scale: float | None):
    """Load one SEAL ciphertext and check it: parameters id of the (only) level, two
    polynomials, NTT form, ring degree, modulus count, and the expected ``scale``."""
    ct = files.load(sealapi.Ciphertext(), ctx.seal, bytes(raw))
    p = ctx.params
    if (ct.parms_id() != ctx.seal.first_parms_id() or ct.size() != 2 or not ct.is_ntt_form()
            or ct.poly_modulus_degree() != p.poly_degree or ct.coeff_modulus_size() != len(p.coeff_bits)):
        raise MalformedInput("ciphertext does not match the parameter set (level, size or form)")
    if scale is not None and ct.scale != scale:
        raise MalformedInput(f"ciphertext scale {ct.scale!r}, expected {scale!r}")
    if not (math.isfinite(ct.scale) and ct.scale > 0):
        raise MalformedInput("ciphertext scale is not positive and finite")
    return ct
