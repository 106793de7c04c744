"""The masking client: one party's side of the protocol, stage by stage.

Each stage method takes the server's message bytes and returns the bytes to send back;
calling them out of order raises ``ProtocolAbort``. Whatever goes wrong in parsing raises a
:class:`~privcrypt.exceptions.PrivcryptError` (the parsers are fuzzed).

State a client keeps between stages (what a deployment must persist, e.g. across Flower
messages; all of it secret unless marked public): the stage index; its update and weight
factor (from the configuration); the round id and configuration (public); its two X25519
key pairs (``c`` for sealing shares, ``s`` for masks) and its self-mask seed ``b``; its
neighbours' public keys and the set it sent shares to (public); the shares it holds
(``owner -> (s share, b share)``); the neighbours that completed key sharing (public); in
the authenticated mode also the member list U1 and neighbour graph (public) and the
survivor set U3 it signed. Its identity key and enrolment live outside the round.
"""

from __future__ import annotations

import struct
from typing import Mapping

import numpy as np

from privcrypt import aead, shamir
from privcrypt.encoding import Quantizer
from privcrypt.exceptions import InvalidKey, MalformedInput, ProtocolAbort
from privcrypt.kex import KeyPair, agree, is_low_order
from privcrypt.rng import RandomSource, resolve_rng
from privcrypt.secagg.masking.common import (ADVERTISE, CONSISTENCY, KEY_REC, MASKED, PT,
                                             SEALED_LEN, SHARE, SIG_LEN, UNMASK, MaskExpander,
                                             advert_transcript, consistency_transcript,
                                             pair_info, records, share_ad,
                                             unpack_ids)
from privcrypt.secagg.masking.params import RoundConfig, neighbour_graph
from privcrypt.wire import SERVER, Message, pack_array

__all__ = ["MaskingClient"]


class MaskingClient:
    """One client of a masking round.

    ``update``: its 1-D float vector. ``rng``: keys, seeds, shares, nonces, rounding.
    ``rounding``: ``"stochastic"`` or ``"nearest"``. ``min_threshold``: the smallest Shamir
    threshold this client accepts from the server (default 2, or 1 when it has a single
    neighbour); in the authenticated mode it also requires ``2t > degree + 1`` (a majority
    of each neighbourhood must sign one survivor set). ``identity`` (an
    :class:`privcrypt.identity.IdentityKey`) and ``enrolment`` (``{client id: Ed25519
    public key}``, received out of band) switch on the authenticated mode: the client then
    refuses unauthenticated rounds. ``strict``: raise ``ValueError`` instead of clipping
    values outside ±clip.

    Its own safety checks (finding 1 of issue 13): it sends its masked input, signs the
    survivor set and answers unmasking only while at least t of its *other* neighbours are
    still in the round, so a server that makes its honest neighbours drop cannot leave it
    masked only against colluders.
    """

    def __init__(self, cid: int, update, *, rng: RandomSource | None = None,
                 rounding: str = "stochastic", min_threshold: int | None = None,
                 identity=None, enrolment: Mapping[int, bytes] | None = None,
                 strict: bool = False):
        self.cid = int(cid)
        self._x = np.asarray(update, dtype=np.float64)
        self._rng = resolve_rng(rng)
        self._rounding = rounding
        self._min_t = None if min_threshold is None else int(min_threshold)
        if (identity is None) != (enrolment is None):
            raise ValueError("the authenticated mode needs both identity and enrolment")
        self._identity = identity
        self._enrol = None if enrolment is None else {int(k): bytes(v) for k, v in enrolment.items()}
        self.authenticated = identity is not None
        self.strict = bool(strict)
        self._stage = 0
        self.n_clipped = 0
        self.excluded: set[int] = set()  # neighbours left out for unusable keys

    def __repr__(self) -> str:
        return f"MaskingClient(id={self.cid}, stage={self._stage}, secrets=<redacted>)"

    def _enter(self, expected: int, name: str) -> None:
        if self._stage != expected:
            raise ProtocolAbort(f"client {self.cid}: stage out of order", stage=name)
        self._stage = expected + 1

    def _decode(self, msg: bytes, stage: str) -> Message:
        m = Message.decode(msg, round_id=getattr(self, "round_id", None), stage=stage)
        if m.sender != SERVER or m.recipient != self.cid:
            raise MalformedInput("message not from the server to this client")
        return m

    def _send(self, stage: str, payload: bytes) -> bytes:
        return Message(self.round_id, stage, self.cid, SERVER, payload).encode()

    # stage 1 ------------------------------------------------------------------------
    def advertise_keys(self, config_msg: bytes) -> bytes:
        """Check the round configuration; answer with two fresh X25519 public keys (and,
        authenticated, their Ed25519 signature)."""
        self._enter(0, ADVERTISE)
        m = self._decode(config_msg, ADVERTISE)
        cfg = RoundConfig.decode(m.payload)
        if self._x.shape != (cfg.dim,):
            raise MalformedInput(f"round configuration announces {cfg.dim} values; client "
                                 f"{self.cid} holds {self._x.size}")
        if cfg.authenticated != self.authenticated:
            raise ProtocolAbort(f"client {self.cid} runs the "
                                f"{'authenticated' if self.authenticated else 'unauthenticated'}"
                                " mode; the server announced the other", stage=ADVERTISE)
        t, holders = cfg.threshold, cfg.degree + 1
        min_t = self._min_t if self._min_t is not None else min(2, cfg.degree)
        if t < min_t or (self.authenticated and 2 * t <= holders):
            raise ProtocolAbort(f"client {self.cid}: threshold {t} below this client's minimum "
                                f"({min_t}{', and a majority of ' + str(holders) + ' holders' if self.authenticated else ''})",
                                stage=ADVERTISE)
        self.round_id, self.cfg = m.round_id, cfg
        self._c = KeyPair.generate(rng=self._rng)
        self._s = KeyPair.generate(rng=self._rng)
        payload = self._c.public + self._s.public
        if self.authenticated:
            payload += self._identity.sign(advert_transcript(self.round_id, self.cid,
                                                             self._c.public, self._s.public))
        return self._send(ADVERTISE, payload)

    # stage 2 ------------------------------------------------------------------------
    def _parse_neighbours(self, payload: bytes) -> dict[int, tuple[bytes, bytes]]:
        off, members = 0, None
        if self.authenticated:
            members, off = unpack_ids(payload, 0)
            if self.cid not in members or len(members) > self.cfg.n_clients:
                raise ProtocolAbort("member list omits this client or is too long", stage=ADVERTISE)
        rec = KEY_REC + (SIG_LEN if self.authenticated else 0)
        out: dict[int, tuple[bytes, bytes]] = {}
        for r in records(payload, rec, off):
            (vid,) = struct.unpack_from("<I", r, 0)
            if vid == self.cid or vid in out:
                raise MalformedInput("neighbour list names this client or repeats one")
            c_pk, s_pk = bytes(r[4:36]), bytes(r[36:68])
            if self.authenticated:
                from privcrypt.identity import verify
                pk = self._enrol.get(vid)
                if pk is None or not verify(pk, bytes(r[68:]), advert_transcript(
                        self.round_id, vid, c_pk, s_pk)):
                    raise ProtocolAbort(f"client {self.cid}: the key advertisement of client "
                                        f"{vid} is not signed by its enrolled identity",
                                        stage=ADVERTISE)
            out[vid] = (c_pk, s_pk)
        if self.authenticated:
            self.members = frozenset(members)
            self.graph = neighbour_graph(members, self.cfg.degree, self.round_id)
            if set(out) != set(self.graph[self.cid]):
                raise ProtocolAbort(f"client {self.cid}: neighbour set differs from the public "
                                    "graph of the member list", stage=ADVERTISE)
        return out

    def share_keys(self, neighbours_msg: bytes) -> bytes:
        """Shamir-share ``b`` and the mask secret key t-of-(k+1) among the neighbours with
        usable keys and seal each neighbour's shares. A neighbour whose key is of small
        order, repeats another key, or fails agreement is excluded (no shares, no mask)."""
        self._enter(1, SHARE)
        m = self._decode(neighbours_msg, ADVERTISE)
        nbrs = self._parse_neighbours(m.payload)
        t = self.cfg.threshold
        seen: dict[bytes, int] = {self._c.public: 2, self._s.public: 2}
        for c_pk, s_pk in nbrs.values():
            for pk in (c_pk, s_pk):
                seen[pk] = seen.get(pk, 0) + 1
        self.c_pk, self.s_pk, share_keys = {}, {}, {}
        for vid, (c_pk, s_pk) in sorted(nbrs.items()):
            if seen[c_pk] > 1 or seen[s_pk] > 1 or c_pk == s_pk or is_low_order(c_pk) or is_low_order(s_pk):
                self.excluded.add(vid)
                continue
            try:
                share_keys[vid] = agree(self._c, c_pk, salt=self.round_id,
                                        info=pair_info(b"share-key", self.cid, vid))
            except InvalidKey:
                self.excluded.add(vid)
                continue
            self.c_pk[vid], self.s_pk[vid] = c_pk, s_pk
        if len(self.c_pk) < t:
            raise ProtocolAbort(f"client {self.cid}: {len(self.c_pk)} usable neighbours, "
                                f"threshold {t} (needs t other share holders)", stage=ADVERTISE)
        self._b = self._rng.bytes(32)
        holders = [self.cid, *sorted(self.c_pk)]
        xs = [h + 1 for h in holders]
        s_sh = shamir.split(self._s.private_bytes(), t, xs, rng=self._rng)
        b_sh = shamir.split(self._b, t, xs, rng=self._rng)
        self.held = {self.cid: (s_sh[self.cid + 1], b_sh[self.cid + 1])}
        self._share_keys = share_keys
        out = [struct.pack("<I", len(holders) - 1)]
        for v in holders[1:]:
            pt = (PT.pack(self.cid, v) + s_sh[v + 1].to_bytes(shamir.SHARE_BYTES, "big")
                  + b_sh[v + 1].to_bytes(shamir.SHARE_BYTES, "big"))
            out.append(struct.pack("<I", v) + aead.seal(share_keys[v], pt,
                                                         share_ad(self.round_id, self.cid, v),
                                                         rng=self._rng))
        return self._send(SHARE, b"".join(out))

    # stage 3 ------------------------------------------------------------------------
    def masked_input(self, routed_msg: bytes) -> bytes:
        """Open the shares relayed to this client; refuse (``ProtocolAbort``) unless at
        least t other neighbours completed key sharing; send ``y = q + PRG(b) ± masks``."""
        self._enter(2, MASKED)
        m = self._decode(routed_msg, SHARE)
        t, cfg = self.cfg.threshold, self.cfg
        for r in records(m.payload, 4 + SEALED_LEN):
            (u,) = struct.unpack_from("<I", r, 0)
            if u not in self.c_pk or u in self.held:
                raise ProtocolAbort(f"share from non-neighbour or repeated sender {u}", stage=SHARE)
            key = agree(self._c, self.c_pk[u], salt=self.round_id,
                        info=pair_info(b"share-key", u, self.cid))
            pt = aead.open(key, bytes(r[4:]), share_ad(self.round_id, u, self.cid))  # InvalidTag
            if len(pt) != PT.size + 66 or PT.unpack_from(pt, 0) != (u, self.cid):
                raise ProtocolAbort("sealed share names other parties", stage=SHARE)
            o = PT.size
            self.held[u] = (int.from_bytes(pt[o:o + 33], "big"), int.from_bytes(pt[o + 33:o + 66], "big"))
        self._share_keys = None
        self.u2 = frozenset(self.held) - {self.cid}  # neighbours that completed key sharing
        if len(self.u2) < t:
            raise ProtocolAbort(f"client {self.cid}: only {len(self.u2)} other neighbours completed "
                                f"key sharing, threshold {t}; not sending a masked input",
                                stage=MASKED)
        q, self.n_clipped = Quantizer(cfg.clip, cfg.bits).quantize(
            cfg.weight_factor * self._x, rounding=self._rounding, rng=self._rng,
            clip=not self.strict)
        y = q.astype(cfg.dtype)
        prg = MaskExpander(cfg.dim, cfg.dtype)
        y += prg.expand(self._b)
        for v in sorted(self.u2):
            seed = agree(self._s, self.s_pk[v], salt=self.round_id, info=pair_info(b"mask", self.cid, v))
            mask = prg.expand(seed)
            if self.cid < v:
                y += mask
            else:
                y -= mask
        self._x = None
        return self._send(MASKED, pack_array(y))

    # stage 3b (authenticated) ---------------------------------------------------------
    def consistency_check(self, survivors_msg: bytes) -> bytes:
        """Authenticated mode: sign the survivor set U3 the server announces (once per
        round), after checking it holds this client and at least t of its neighbours."""
        if not self.authenticated:
            raise ProtocolAbort("consistency check in an unauthenticated round", stage=CONSISTENCY)
        self._enter(3, CONSISTENCY)
        m = self._decode(survivors_msg, MASKED)
        u3, off = unpack_ids(m.payload, 0)
        if off != len(m.payload):
            raise MalformedInput("trailing bytes in the survivor set")
        u3 = frozenset(u3)
        if self.cid not in u3 or not u3 <= self.members:
            raise ProtocolAbort("survivor set omits this client or names non-members",
                                stage=CONSISTENCY)
        if len(u3 & self.u2) < self.cfg.threshold:
            raise ProtocolAbort(f"client {self.cid}: {len(u3 & self.u2)} surviving other "
                                f"neighbours, threshold {self.cfg.threshold}", stage=CONSISTENCY)
        self.u3 = u3
        self._u3_transcript = consistency_transcript(self.round_id, u3)
        return self._send(CONSISTENCY, self._identity.sign(self._u3_transcript))

    # stage 4 ------------------------------------------------------------------------
    def _auth_partition(self, payload: bytes) -> tuple[set[int], set[int]]:
        u3, off = unpack_ids(payload, 0)
        if consistency_transcript(self.round_id, u3) != self._u3_transcript:
            raise ProtocolAbort(f"client {self.cid}: the survivor set in the unmasking request "
                                "differs from the one this client signed", stage=UNMASK)
        from privcrypt.identity import verify
        signers = set()
        for r in records(payload, 4 + SIG_LEN, off):
            (sid,) = struct.unpack_from("<I", r, 0)
            pk = self._enrol.get(sid)
            if sid in signers or sid not in self.u3 or pk is None:
                raise ProtocolAbort(f"signature from client {sid}, not a survivor or repeated",
                                    stage=UNMASK)
            if not verify(pk, bytes(r[4:]), self._u3_transcript):
                raise ProtocolAbort(f"invalid consistency signature of client {sid}", stage=UNMASK)
            signers.add(sid)
        t = self.cfg.threshold
        for u in sorted(self.u2 | {self.cid}):
            got = len(signers & (self.graph[u] | {u}))
            if got < t:
                raise ProtocolAbort(f"client {self.cid}: only {got} of client {u}'s share holders "
                                    f"signed this survivor set, threshold {t} (inconsistent views)",
                                    stage=UNMASK)
        surv = set(self.u2 & self.u3) | {self.cid}
        return surv, set(self.u2 - self.u3)

    def unmask(self, request_msg: bytes) -> bytes:
        """Reveal, for each neighbour, the share of ``b`` (it survived) or of the mask key
        (it dropped), never both; only while at least t other neighbours survive. In the
        authenticated mode the partition comes from the signed survivor set, checked
        against at least t signatures from each affected neighbourhood."""
        self._enter(4 if self.authenticated else 3, UNMASK)
        m = self._decode(request_msg, CONSISTENCY if self.authenticated else MASKED)
        mv = memoryview(m.payload)
        if self.authenticated:
            surv, drop = self._auth_partition(mv)
        else:
            survivors, off = unpack_ids(mv, 0)
            dropped, off = unpack_ids(mv, off)
            if off != len(mv):
                raise MalformedInput("trailing bytes in unmasking request")
            surv, drop = set(survivors), set(dropped)
        if surv & drop:
            raise ProtocolAbort("a client is named both survivor and dropped", stage=UNMASK)
        if self.cid not in surv or not (surv | drop) <= set(self.held):
            raise ProtocolAbort("unmasking request names clients this one holds no shares of",
                                stage=UNMASK)
        if len(surv - {self.cid}) < self.cfg.threshold:
            raise ProtocolAbort(f"client {self.cid}: {len(surv) - 1} surviving other neighbours, "
                                f"threshold {self.cfg.threshold}; refusing to unmask",
                                stage=UNMASK)
        out = [struct.pack("<I", len(surv) + len(drop))]
        for u in sorted(surv):
            out.append(struct.pack("<IB", u, 0) + self.held[u][1].to_bytes(33, "big"))
        for u in sorted(drop):
            out.append(struct.pack("<IB", u, 1) + self.held[u][0].to_bytes(33, "big"))
        self._b = self._s = self._c = None  # this round is over for the client
        return self._send(UNMASK, b"".join(out))
