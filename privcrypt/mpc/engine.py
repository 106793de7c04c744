"""SpdzEngine: SPDZ-style computation on authenticated additive shares (simulated parties).

All ``n_parties`` parties run in this process, each touching only its own row of every
:class:`~privcrypt.mpc.shares.Shared` and its own MAC-key share; values cross between
parties only through the partial openings below, each of which is folded into the batched
MAC check (:mod:`privcrypt.mpc.maccheck`) and verified before any result is output.

Threat model: a semi-honest trusted dealer (:class:`~privcrypt.mpc.dealer.TrustedDealer`);
up to ``n_parties - 1`` parties may collude and deviate arbitrarily on shares and openings
(malicious with abort): they learn nothing about inputs beyond the outputs that are opened,
and any change to a share or MAC share of an opened value makes the next :meth:`open` raise
``MacCheckFailed`` (escape chance ``<= 2/p``). Not covered: a party that refuses to
participate (abort is the only outcome), side channels, fairness of output delivery.

Fixed point: values are encoded with ``frac_bits`` fractional bits via
:class:`privcrypt.encoding.FixedPoint`. Each :class:`Shared` carries its public declared
bound; every operation propagates it and raises ``ValueError`` (overflow) if a result could
leave the range ``|x|·2^frac_bits < 2^59`` of Z_p. Truncation after multiplication is
described at :meth:`SpdzEngine.truncate`.
"""

from __future__ import annotations

import math

import numpy as np

from privcrypt.encoding import FixedPoint
from privcrypt.mpc import codec, field
from privcrypt.mpc.dealer import OneShot, TrustedDealer
from privcrypt.mpc.maccheck import MacCheck, coin_toss
from privcrypt.mpc.shares import Shared, check_fits
from privcrypt.rng import DeterministicRandom, RandomSource, resolve_rng

__all__ = ["SpdzEngine"]



def decode(residues: np.ndarray, frac_bits: int) -> np.ndarray:
    """Centered lift of residues mod p to signed values, divided by 2^frac_bits."""
    return codec.decode_centered(residues, frac_bits)


class SpdzEngine:
    """Arithmetic on authenticated shares among ``n_parties`` simulated parties.

    ``frac_bits``: fixed-point fractional bits (default 16). ``bound``: default declared
    range of :meth:`share` inputs (``|x| <= bound``; larger inputs raise ``ValueError``).
    ``rng``: a ``privcrypt.rng.RandomSource`` for the dealer and the parties' coins (default
    a fresh OS-seeded ``SystemRandom``; in deployment each party has its own).
    ``dealer``: an existing :class:`TrustedDealer` (default: a new one).

    Counters in ``self.stats``: elements partially opened, triples consumed, truncation
    retries, MAC checks run.
    """

    def __init__(self, n_parties: int = 3, frac_bits: int = 16, rng: RandomSource | None = None,
                 *, bound: float = 64.0, dealer: TrustedDealer | None = None):
        self.n_parties = int(n_parties)
        if not 0 <= int(frac_bits) <= 28:
            raise ValueError("frac_bits must be in [0, 28] (products need 2·frac_bits < 59)")
        self.frac_bits = int(frac_bits)
        self.bound = float(bound)
        check_fits(self.bound, self.frac_bits, "the default input bound")
        self._rng = resolve_rng(rng)
        self.dealer = dealer if dealer is not None else TrustedDealer(self.n_parties, rng=self._rng)
        if self.dealer.n_parties != self.n_parties:
            raise ValueError("dealer was set up for a different number of parties")
        alpha = [self.dealer.mac_key_share(i) for i in range(self.n_parties)]
        self._alpha = alpha
        self._alpha_split = [field.split(a) for a in alpha]
        self._mac_check = MacCheck(np.array(alpha, dtype=np.uint64), rng=self._rng)
        self.stats = {"opened_elements": 0, "triples": 0, "truncation_retries": 0, "mac_checks": 0}

    def __repr__(self) -> str:
        return f"SpdzEngine(n_parties={self.n_parties}, frac_bits={self.frac_bits}, <keys redacted>)"

    # -- local helpers (each party on its own row) -----------------------------------------
    @staticmethod
    def _offset_sum(a: np.ndarray | None, b: np.ndarray | None, *, subtract: bool = False) -> np.ndarray | None:
        """Public offsets ``a + b`` (or ``a - b``), None meaning 0; inputs are not modified."""
        if b is None:
            return a
        if a is None:
            return field.negmod(b) if subtract else b
        return field.submod(a, b) if subtract else field.addmod(a, b)

    def _plus_public(self, x: Shared, pub, *, inplace: bool = False) -> Shared:
        """[x + pub] for public residues ``pub`` (x's shape or a scalar): party 0 adds pub to
        its share and the public offset grows by pub. No MAC share changes: ``Σ m_i = α·(x - o)``
        still holds with x and o both larger by pub (SPDZ-2012's public modifier; saves every
        party the multiplication ``α_i·pub``). ``inplace`` reuses x's share array (for consumed
        preprocessing material)."""
        shares = x.shares if inplace else x.shares.copy()
        field.addmod(shares[:1], pub, out=shares[:1])  # slices keep 0-d secrets arrays
        pub = np.broadcast_to(np.asarray(pub, dtype=np.uint64), x.shape)
        off = np.array(pub, order="C") if x.offset is None else field.addmod(x.offset, pub)
        return Shared(shares, x.macs, x.frac_bits, x.bound, off)

    def _partial_open(self, x: Shared, minus: Shared | None = None) -> np.ndarray:
        """Partially open ``x`` (or ``x - minus``): every party broadcasts its share; the sum
        ``v`` is public *but unchecked* until the next :meth:`check`. ``v - offset`` (what the
        MAC shares authenticate) is folded into the batched MAC check right away. A difference
        is opened chunk by chunk, without materializing its shares or MAC shares."""
        offset = x.offset if minus is None else self._offset_sum(x.offset, minus.offset, subtract=True)
        if 2 <= self.n_parties <= 7:
            res = field.sum_rows(x.shares, minus=offset, sub=None if minus is None else minus.shares)
            values, checked = (res, res) if offset is None else res
        else:
            shares = x.shares if minus is None else field.submod(x.shares, minus.shares)
            values = field.sum_mod(shares, axis=0)
            checked = values if offset is None else field.submod(values, offset)
        self._mac_check.fold(checked, x.macs if minus is None else (x.macs, minus.macs))
        self.stats["opened_elements"] += values.size
        return values

    def _encode(self, values, frac_bits: int, bound: float, *, rounding: str = "nearest", rng=None) -> np.ndarray:
        """FixedPoint encoding into Z_p (raises ValueError outside ±bound or on NaN/Inf).

        ``rounding="nearest"`` takes a fused path with the same output as
        ``FixedPoint.encode`` (tested bit for bit): :func:`codec.encode_nearest`, whose
        chunked pass also returns the range that is checked here."""
        fp = FixedPoint(frac_bits=frac_bits, modulus=field.P, bound=max(float(bound), 2.0**-frac_bits))
        arr = np.asarray(values, dtype=np.float64)
        flat = arr.reshape(-1)  # FixedPoint.encode and numpy scalars: keep 0-d inputs arrays
        if rounding != "nearest":
            return fp.encode(flat, rounding=rounding, rng=rng).reshape(arr.shape)
        enc, lo, hi = codec.encode_nearest(field._contig(flat), fp.scale)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("x contains NaN or Inf")
        if max(-lo, hi) > fp.bound:
            raise ValueError(f"value {max(-lo, hi)!r} outside declared range ±{fp.bound}")
        return enc.reshape(arr.shape)

    @staticmethod
    def _same_shape(x: Shared, y: Shared) -> None:
        if x.shares.shape != y.shares.shape:
            raise ValueError(f"shape mismatch: {x.shape} vs {y.shape}")

    # -- input -------------------------------------------------------------------------
    def share(self, x, *, bound: float | None = None, rounding: str = "nearest") -> Shared:
        """Secret-share the float array ``x`` held by an input owner.

        SPDZ input protocol: the dealer gives the parties ``[r]`` and the owner alone ``r``;
        the owner broadcasts ``δ = encode(x) - r`` (uniform, so it reveals nothing) and the
        parties set ``[x] = [r] + δ``. The owner never needs the MAC key. Raises
        ``ValueError`` if any ``|x| > bound`` (default ``self.bound``) or x is not finite."""
        bound = self.bound if bound is None else float(bound)
        check_fits(bound, self.frac_bits, "input")
        enc = self._encode(x, self.frac_bits, bound, rounding=rounding, rng=self._rng)
        batch, r = self.dealer.input_masks(enc.shape)
        (rs,) = batch.consume()
        # Both sides of from_masked_input in one pass: the owner's δ = enc - r (broadcast),
        # party 0's share r_0 + δ, and δ as the public MAC offset (rs is consumed).
        delta = codec.mask_input(enc, r, rs.shares[:1].reshape(enc.shape))
        return Shared(rs.shares, rs.macs, self.frac_bits, bound, delta)

    def from_masked_input(self, masks: OneShot, delta: np.ndarray, *, frac_bits: int, bound: float) -> Shared:
        """Parties' side of the input protocol: ``[x] = [r] + δ`` for the broadcast
        ``δ = x - r`` (residues). ``masks`` is the dealer's single-use ``[r]`` batch."""
        (r,) = masks.consume()
        delta = np.asarray(delta, dtype=np.uint64)
        if r.shape != delta.shape:
            raise ValueError(f"masked input has shape {delta.shape}, masks {r.shape}")
        if delta.size and int(delta.max()) >= field.P:
            raise ValueError("masked input is not a residue mod p")
        out = self._plus_public(r, delta, inplace=True)  # r is consumed
        return Shared(out.shares, out.macs, int(frac_bits), float(bound), out.offset)

    # -- linear operations (local, no communication) -------------------------------------
    def add(self, x: Shared, y: Shared) -> Shared:
        """[x + y]. Scales must match; the declared bounds add."""
        return self._add_or_sub(x, y, subtract=False)

    def sub(self, x: Shared, y: Shared) -> Shared:
        """[x - y]. Scales must match; the declared bounds add."""
        return self._add_or_sub(x, y, subtract=True)

    def _add_or_sub(self, x: Shared, y: Shared, *, subtract: bool) -> Shared:
        self._same_shape(x, y)
        if x.frac_bits != y.frac_bits:
            raise ValueError(f"fixed-point scales differ: {x.frac_bits} vs {y.frac_bits}")
        bound = x.bound + y.bound
        check_fits(bound, x.frac_bits, "sub" if subtract else "add")
        op = field.submod if subtract else field.addmod
        return Shared(op(x.shares, y.shares), op(x.macs, y.macs), x.frac_bits, bound,
                      self._offset_sum(x.offset, y.offset, subtract=subtract))

    def add_public(self, x: Shared, c) -> Shared:
        """[x + c] for a public float scalar or array of x's shape."""
        c = np.broadcast_to(np.asarray(c, dtype=np.float64), x.shape)
        cmax = float(np.max(np.abs(c))) if c.size else 0.0
        bound = x.bound + cmax
        check_fits(bound, x.frac_bits, "add_public")
        pub = self._encode(c, x.frac_bits, cmax)
        out = self._plus_public(x, pub)
        return Shared(out.shares, out.macs, x.frac_bits, bound, out.offset)

    def mul_public(self, x: Shared, c, *, truncate: bool = True) -> Shared:
        """[c·x] for a public scalar or array of x's shape.

        Integer ``c`` (|c| < 2^53) is exact and keeps the scale. Otherwise ``c`` is encoded
        with ``frac_bits`` bits, the product has scale ``x.frac_bits + frac_bits``, and with
        ``truncate`` (default) it is truncated back (see :meth:`truncate`)."""
        c = np.broadcast_to(np.asarray(c, dtype=np.float64), x.shape)
        cmax = float(np.max(np.abs(c))) if c.size else 0.0
        if np.all(c == np.round(c)) and cmax < 2**53:
            pub, fb = field.to_field(c.astype(np.int64)), x.frac_bits
        else:
            pub, fb = self._encode(c, self.frac_bits, cmax), x.frac_bits + self.frac_bits
        bound = x.bound * cmax
        check_fits(bound, fb, "mul_public")
        ps = field.split(pub)
        off = None if x.offset is None else field.mulmod(x.offset, pub, b_split=ps)
        out = Shared(field.mulmod(x.shares, pub, b_split=ps), field.mulmod(x.macs, pub, b_split=ps), fb, bound, off)
        return self.truncate(out, fb - x.frac_bits) if truncate and fb > x.frac_bits else out

    def sum(self, x: Shared, axis: int | None = None) -> Shared:
        """[Σ x] over all elements (axis=None, a 0-d result) or along ``axis``."""
        count = x.size if axis is None else x.shape[axis]
        bound = x.bound * count
        check_fits(bound, x.frac_bits, "sum")
        off = x.offset
        if axis is None:
            sh, mc = (field.sum_mod(a.reshape(self.n_parties, -1), axis=1) for a in (x.shares, x.macs))
            off = None if off is None else np.array(field.sum_mod(off), dtype=np.uint64)
        else:
            ax = axis % len(x.shape) + 1
            sh, mc = field.sum_mod(x.shares, axis=ax), field.sum_mod(x.macs, axis=ax)
            off = None if off is None else np.array(field.sum_mod(off, axis=ax - 1), dtype=np.uint64, order="C")
        return Shared(np.ascontiguousarray(sh), np.ascontiguousarray(mc), x.frac_bits, bound, off)

    def combine_public(self, terms, constant: int = 0) -> Shared:
        """``[Σ_k ⟨c_k, x_k⟩ + constant]`` as a 0-d secret of raw residues (scale 0, bound
        the whole field): each ``(x_k, c_k)`` pairs a :class:`Shared` with public residues
        ``c_k`` of its shape; ``constant`` is a public integer. Local (no communication):
        each party combines its own share row and MAC-share row; the public offsets combine
        alike. For random-linear-combination checks whose result is opened with
        :meth:`open_residues` and compared with 0, so no fixed-point bound applies."""
        n = self.n_parties
        sh, mc, off = [0] * n, [0] * n, 0
        for x, c in terms:
            c = field.to_field(np.broadcast_to(np.asarray(c, dtype=np.uint64), x.shape)).reshape(-1)
            rows = field.dot_mod(c, x.shares.reshape(n, -1), x.macs.reshape(n, -1))
            sh = [a + b for a, b in zip(sh, rows[:n])]
            mc = [a + b for a, b in zip(mc, rows[n:])]
            if x.offset is not None:
                off += field.dot_mod(c, x.offset.reshape(-1))[0]
        k = int(constant) % field.P
        sh[0] += k  # a public constant: party 0's share and the public offset (no MAC work)
        out = Shared(np.array([v % field.P for v in sh], dtype=np.uint64),
                     np.array([v % field.P for v in mc], dtype=np.uint64), 0, float(field.P),
                     np.array((off + k) % field.P, dtype=np.uint64))
        return out

    def public_coins(self, label: bytes, size: int) -> np.ndarray:
        """``size`` public uniform elements of Z_p from a joint coin toss (commit-then-open,
        as in the MAC check): unpredictable to any coalition lacking one honest party. Call it
        only after everything the coins must be independent of is fixed (e.g. inputs)."""
        coins = DeterministicRandom(coin_toss(self.n_parties, b"public-coins/" + bytes(label), rng=self._rng))
        return field.random_elements(coins, int(size))

    # -- multiplication ------------------------------------------------------------------
    def mul(self, x: Shared, y: Shared, *, truncate: bool = True, triples: OneShot | None = None) -> Shared:
        """[x·y] elementwise with one authenticated Beaver triple per element.

        Opens ``d = x - a`` and ``e = y - b`` (uniform, folded into the MAC check), then
        locally ``z = c + d·b + e·a + d·e``. The product has scale
        ``x.frac_bits + y.frac_bits``; with ``truncate`` (default) it is truncated back to
        ``frac_bits``. ``triples``: a pre-dealt ``dealer.triples(shape)`` batch (default:
        dealt now). Raises ``ValueError`` if the declared bounds could overflow and
        ``ProtocolAbort`` if the triple batch was used before."""
        self._same_shape(x, y)
        fb, bound = x.frac_bits + y.frac_bits, x.bound * y.bound
        check_fits(bound, fb, "mul")
        a, b, c = (triples if triples is not None else self.dealer.triples(x.shape)).consume()
        if a.shares.shape != x.shares.shape:
            raise ValueError(f"triples have shape {a.shape}, operands {x.shape}")
        self.stats["triples"] += x.size
        d, e = self._partial_open(x, a), self._partial_open(y, b)
        zs, zm = c.shares, c.macs  # consumed batch: safe to update in place
        off = np.empty(d.shape, dtype=np.uint64)  # the public d·e
        # c_i + d·b_i + e·a_i on every party's shares and MAC shares, and d·e, in one pass
        field.beaver_combine([(zs, b.shares, a.shares, zs), (zm, b.macs, a.macs, zm)], d, e, de_out=off)
        # the public d·e goes to party 0's share and to the public offset (no MAC work)
        field.addmod(zs[:1], off, out=zs[:1])
        for coeff, tri in ((None, c), (d, b), (e, a)):  # dealt triples have no offsets
            if tri.offset is not None:
                off = field.addmod(off, tri.offset if coeff is None else field.mulmod(tri.offset, coeff))
        out = Shared(zs, zm, fb, bound, off)
        if truncate and fb > self.frac_bits:
            out = self.truncate(out, fb - self.frac_bits)
        return out

    def truncate(self, x: Shared, bits: int | None = None) -> Shared:
        """[x / 2^bits] (default: back to ``frac_bits``), exact up to stochastic rounding.

        Scheme (a rejection variant of Catrina–Saxena's probabilistic truncation, chosen
        because in a 61-bit field the usual statistically-hiding mask leaves almost no room
        for a 2f-bit product): let ``L`` be the bit length of the declared bound, so
        ``x' = x + 2^L`` lies in ``[0, 2^(L+1))``. The dealer gives ``([r], [r >> bits])``
        with ``r`` uniform in Z_p; the parties open ``c = x' + r mod p``, which is uniform and
        independent of ``x`` (perfect hiding). If ``c >= 2^(L+1)`` no wrap-around happened,
        so ``x' = c - r`` over the integers and ``(c >> bits) - (r >> bits)`` equals
        ``floor(x'/2^bits)`` or one more (the borrow of the low bits). Elements with
        ``c < 2^(L+1)`` (probability ``2^(L+1)/p``, decided by the public uniform ``c``
        alone, so retrying leaks nothing) are redone with fresh pairs.
        Error: the result differs from ``x / 2^bits`` by less than one unit of the new scale
        (``< 2^-(frac_bits - bits)``), with rounding up happening with probability equal to
        the dropped fraction (close to unbiased)."""
        bits = x.frac_bits - self.frac_bits if bits is None else int(bits)
        if bits == 0:
            return x
        if not 0 < bits <= x.frac_bits:
            raise ValueError(f"cannot truncate {bits} bits of a value with {x.frac_bits} fractional bits")
        n, shape = self.n_parties, x.shape
        L = max(check_fits(x.bound, x.frac_bits, "truncate"), bits)
        shift = 1 << L
        flat = x.reshape(-1)
        xs, xm, xo = flat.shares, flat.macs, flat.offset

        def open_shifted(idx, pair: Shared) -> np.ndarray:
            """c = x + 2^L + r mod p: open [x + r] and add the public 2^L to the opening."""
            sel = slice(None) if idx is None else idx
            masked = Shared(field.addmod(xs[:, sel], pair.shares), field.addmod(xm[:, sel], pair.macs),
                            0, 0.0, None if xo is None else np.ascontiguousarray(xo[sel]))
            return field.addmod(self._partial_open(masked), np.uint64(shift))

        r, rh = self.dealer.trunc_pairs(xs.shape[1:], bits).consume()
        c = open_shifted(None, r)
        rh_sh, rh_mac = rh.shares, rh.macs
        limit = np.uint64(2 * shift)
        redo = np.flatnonzero(c < limit)
        while redo.size:
            self.stats["truncation_retries"] += redo.size
            r2, rh2 = self.dealer.trunc_pairs(redo.size, bits).consume()
            c2 = open_shifted(redo, r2)
            c[redo], rh_sh[:, redo], rh_mac[:, redo] = c2, rh2.shares, rh2.macs
            redo = redo[c2 < limit]
        pub = field.submod(c >> np.uint64(bits), np.uint64(shift >> bits))
        zs = field.negmod(rh_sh)
        field.addmod(zs[:1], pub, out=zs[:1])
        zm = field.negmod(rh_mac)  # [pub - (r >> bits)]: pub is public, so it is the offset
        fb = x.frac_bits - bits
        return Shared(zs.reshape(n, *shape), zm.reshape(n, *shape), fb, x.bound + 2.0**-fb, pub.reshape(shape))

    def dot(self, x: Shared, y: Shared, *, truncate: bool = False, triples: OneShot | None = None) -> Shared:
        """[Σ_j x_j·y_j] over all elements (a 0-d result). Default: exact, at scale
        ``x.frac_bits + y.frac_bits`` (opens correctly; no truncation error, one truncation
        with ``truncate=True``). ``triples``: a pre-dealt batch of shape ``(x.size,)``."""
        prod = self.mul(x.reshape(-1), y.reshape(-1), truncate=False, triples=triples)
        s = self.sum(prod)
        return self.truncate(s) if truncate else s

    def norm2(self, x: Shared, *, truncate: bool = False, triples: OneShot | None = None) -> Shared:
        """[‖x‖²] = dot(x, x): used to validate an update's norm without revealing it."""
        return self.dot(x, x, truncate=truncate, triples=triples)

    # -- output ------------------------------------------------------------------------
    def check(self) -> None:
        """Run the batched MAC check over everything partially opened so far (commit-then-
        open, see :mod:`privcrypt.mpc.maccheck`). Raises ``MacCheckFailed``."""
        if self._mac_check.pending:
            self.stats["mac_checks"] += 1
            self._mac_check.verify()

    def open_residues(self, x: Shared) -> np.ndarray:
        """Open ``x`` to everyone as residues, after the MAC check passes."""
        values = self._partial_open(x)
        self.check()
        return values.reshape(x.shape)

    def open(self, x: Shared) -> np.ndarray:
        """Open ``x`` to every party and decode it to float64, but only after the MAC check of
        this and every earlier partial opening passes; raises ``MacCheckFailed`` otherwise
        (the value is discarded)."""
        return decode(self.open_residues(x), x.frac_bits)

    def open_to(self, x: Shared, party: int) -> np.ndarray:
        """Open ``x`` to party ``party`` only: the dealer gives ``[r]`` to all and ``r`` to
        ``party``; ``x - r`` is opened (uniform, MAC-checked) and only ``party`` can add
        ``r``. Returns what ``party`` learns; the others learn nothing about ``x``."""
        if not 0 <= int(party) < self.n_parties:
            raise ValueError(f"no party {party}")
        batch, r = self.dealer.input_masks(x.shape)
        (rs,) = batch.consume()
        masked = self._partial_open(x, rs).reshape(x.shape)
        self.check()
        return decode(field.addmod(masked, r), x.frac_bits)  # only `party` holds r
