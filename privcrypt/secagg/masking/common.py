"""Shared pieces of the masking protocol: stage names, wire records, the mask PRG.

Nothing here holds secrets; :mod:`.client` and :mod:`.server` build on it.
"""

from __future__ import annotations

import struct
from typing import Iterable, Mapping

import numpy as np

from privcrypt import aead, shamir
from privcrypt.exceptions import MalformedInput
from privcrypt.keystream import BACKEND as KEYSTREAM_BACKEND
from privcrypt.keystream import aes_ctr_keystream

PRG_BACKEND = KEYSTREAM_BACKEND  # which AES-CTR implementation expands masks

ADVERTISE, SHARE, MASKED, UNMASK = "advertise_keys", "share_keys", "masked_input", "unmasking"
#: The extra stage of the authenticated mode (Bonawitz et al. 2017, section 6).
CONSISTENCY = "consistency_check"
#: Stages of the semi-honest protocol, in order.
STAGES = (ADVERTISE, SHARE, MASKED, UNMASK)
#: Stages of the authenticated protocol, in order.
AUTH_STAGES = (ADVERTISE, SHARE, MASKED, CONSISTENCY, UNMASK)

MAX_ID = 0xFFFFFFFD  # wire ids 0xFFFFFFFE/0xFFFFFFFF are BROADCAST/SERVER
MAX_DIM = 1 << 28  # largest vector a client accepts in a round configuration
PT = struct.Struct("<II")  # plaintext of a sealed share starts with (sender, recipient)
SEALED_LEN = aead.OVERHEAD + PT.size + 2 * shamir.SHARE_BYTES
SIG_LEN = 64  # Ed25519 signature
KEY_REC = 4 + 64  # neighbour record: id, c public key, s public key


class MaskExpander:
    """Expands 256-bit seeds into masks of ``dim`` words mod 2^32 (or 2^64): the AES-256-CTR
    keystream under key ``seed`` (:func:`privcrypt.keystream.aes_ctr_keystream`, zero nonce,
    block counter from 0), read little-endian. Each seed keys exactly one stream."""

    def __init__(self, dim: int, dtype=np.uint32, *, backend: str | None = None):
        self.dtype = np.dtype(dtype)
        self.dim = int(dim)
        self.backend = backend or PRG_BACKEND
        self._nbytes = self.dim * self.dtype.itemsize

    def expand(self, seed: bytes) -> np.ndarray:
        """The mask for ``seed`` (a read-only view of a fresh buffer)."""
        if len(seed) != 32:
            raise ValueError("mask seeds are 32 bytes")
        return aes_ctr_keystream(seed, self._nbytes, backend=self.backend).view(self.dtype)


def expand_mask(seed: bytes, dim: int, dtype=np.uint32) -> np.ndarray:
    """A fresh copy of the mask :class:`MaskExpander` derives from ``seed``."""
    return MaskExpander(dim, dtype).expand(seed).copy()


def pair_info(label: bytes, u: int, v: int) -> bytes:
    """HKDF info binding a pairwise key to its purpose and both (unordered) client ids."""
    return b"privcrypt/secagg/" + label + PT.pack(min(u, v), max(u, v))


def share_ad(round_id: bytes, u: int, v: int) -> bytes:
    """Associated data of the share sealed by ``u`` for ``v``."""
    return round_id + SHARE.encode() + PT.pack(u, v)


def advert_transcript(round_id: bytes, cid: int, c_pk: bytes, s_pk: bytes) -> bytes:
    """What a client signs in the authenticated mode's ``advertise_keys`` stage."""
    return b"privcrypt/secagg/advertise/v1" + round_id + struct.pack("<I", cid) + c_pk + s_pk


def consistency_transcript(round_id: bytes, survivors: Iterable[int]) -> bytes:
    """What a survivor signs in the ``consistency_check`` stage: the round and the set U3
    of clients whose masked inputs the server says it summed."""
    return b"privcrypt/secagg/consistency/v1" + round_id + pack_ids(survivors)


def pack_ids(ids: Iterable[int]) -> bytes:
    """``count (uint32) || sorted ids (uint32 each)``."""
    ids = sorted(ids)
    return struct.pack(f"<I{len(ids)}I", len(ids), *ids)


def unpack_ids(buf, off: int) -> tuple[list[int], int]:
    """Parse :func:`pack_ids` at ``off``; ``MalformedInput`` on truncation or repeats."""
    if len(buf) < off + 4:
        raise MalformedInput("id list truncated")
    (cnt,) = struct.unpack_from("<I", buf, off)
    off += 4
    if len(buf) < off + 4 * cnt:
        raise MalformedInput("id list truncated")
    ids = list(struct.unpack_from(f"<{cnt}I", buf, off))
    if len(set(ids)) != cnt:
        raise MalformedInput("repeated id")
    return ids, off + 4 * cnt


def records(buf, rec_size: int, off: int = 0) -> list[memoryview]:
    """``count (uint32) || count * record`` with fixed-size records, to the end of ``buf``."""
    mv = memoryview(buf)
    if len(mv) < off + 4:
        raise MalformedInput("record list truncated")
    (cnt,) = struct.unpack_from("<I", mv, off)
    off += 4
    if len(mv) != off + cnt * rec_size:
        raise MalformedInput("record list length mismatch")
    return [mv[off + i * rec_size: off + (i + 1) * rec_size] for i in range(cnt)]


def components(nodes: frozenset[int], graph: Mapping[int, frozenset[int]]) -> list[set[int]]:
    """Connected components of the subgraph of ``graph`` induced on ``nodes``."""
    left, out = set(nodes), []
    while left:
        start = left.pop()
        comp, todo = {start}, [start]
        while todo:
            for v in graph.get(todo.pop(), frozenset()) & nodes:
                if v not in comp:
                    comp.add(v)
                    todo.append(v)
        left -= comp
        out.append(comp)
    return out


def connected(nodes: frozenset[int], graph: Mapping[int, frozenset[int]]) -> bool:
    """Whether ``nodes`` induce a connected subgraph of ``graph`` (empty: True)."""
    return len(components(nodes, graph)) <= 1
