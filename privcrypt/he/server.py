"""Server side: validate each client's ciphertexts and add them, streaming.

The server holds only a public :class:`~privcrypt.he.context.CkksContext` (no key of any
kind). :class:`Accumulator` keeps one running sum per chunk, so its memory is one aggregate
(plus one client's update while it is being validated), independent of the number of
clients. A client's message is validated completely (header against the expected
parameter set, key id, mode and length; chunk count and framing; every SEAL ciphertext
loaded against the server's context and checked for level, size, NTT form and scale) before
any of it is added, so a rejected message leaves the sum untouched.

Division: in the default mode clients encrypt ``w_i x_i``; the server adds them and then
sets the scale of the sum to ``Δ * sum_i w_i``, so that decoding yields the weighted mean
with no ciphertext multiplication (no rescale, no second prime). The weights travel in the
clear in the message headers: the server learns them (as FedAvg servers do).
"""

from __future__ import annotations

import math

from privcrypt.encoding import Quantizer
from privcrypt.exceptions import MalformedInput, ProtocolAbort
from privcrypt.he import blob
from privcrypt.he._seal import seal_files
from privcrypt.he.context import CkksContext

__all__ = ["Accumulator"]


class Accumulator:
    """Adds validated encrypted updates of ``n_values`` values in ``mode``.

    Compact mode: the first update fixes ``clip`` and ``bits``; later ones must match.
    Before each addition the overflow guard ``(count + 1) * (2^bits - 1) < 2^lane_bits``
    (:meth:`Quantizer.check_sum_fits`) is checked; in the default mode the count is capped by
    the context's ``max_clients``. A contribution beyond either raises ``ProtocolAbort``.
    """

    def __init__(self, ctx: CkksContext, n_values: int, mode: str = "default"):
        if mode not in blob.MODES:
            raise ValueError(f"mode must be one of {sorted(blob.MODES)}")
        # The server side never keeps a key, even when handed a key holder's context.
        self.ctx = ctx.public() if ctx.has_secret else ctx
        self.n_values = int(n_values)
        self.mode = mode
        self.count = 0
        self.weight = 0.0
        self._acc: list | None = None
        self._clip = self._bits = None

    def add(self, data: bytes) -> None:
        """Validate one client's update and add it. Raises ``MalformedInput`` (and
        ``InvalidKey`` for another key's ciphertexts) without changing the sum."""
        ctx = self.ctx
        hdr, raws = blob.parse(data, ctx, kind=blob.UPDATE, mode=self.mode, n_values=self.n_values)
        if self.mode == "compact":
            if self._clip is not None and (hdr.clip != self._clip or hdr.bits != self._bits):
                raise MalformedInput("compact clip/bits differ from the first contribution")
            try:
                Quantizer(hdr.clip, hdr.bits).check_sum_fits(self.count + 1, 2**ctx.params.lane_bits)
            except ValueError as exc:
                raise ProtocolAbort(f"one more contribution could overflow a lane: {exc}",
                                    stage="aggregate") from None
            scale = ctx.params.compact_scale
        else:
            if self.count + 1 > ctx.max_clients:
                raise ProtocolAbort(f"more than max_clients={ctx.max_clients} contributions",
                                    stage="aggregate")
            scale = ctx.params.scale
        with seal_files() as files:
            cts = [blob.load_chunk(files, ctx, raw, scale=scale) for raw in raws]
        if self._acc is None:
            self._acc = cts
        else:
            ev = ctx.evaluator
            for a, c in zip(self._acc, cts):
                ev.add_inplace(a, c)
        if self.mode == "compact" and self._clip is None:
            self._clip, self._bits = hdr.clip, hdr.bits
        self.count += 1
        self.weight += hdr.weight

    def finish(self) -> bytes:
        """The aggregate as bytes (full two-polynomial ciphertexts, about 16 bytes per value
        in the default mode). Default mode: the scale is set to ``Δ * total weight``."""
        if self._acc is None:
            raise ProtocolAbort("no contributions to aggregate", stage="aggregate")
        p = self.ctx.params
        if self.mode == "default":
            new_scale = p.scale * self.weight
            if not (math.isfinite(new_scale) and math.log2(new_scale) < p.log_q - 1):
                raise ValueError("total weight too large for the scale; normalize the weights")
            for a in self._acc:
                a.scale = new_scale
        with seal_files() as files:
            chunks = [files.save(a) for a in self._acc]
        hdr = blob.Header(blob.AGGREGATE, p.set_id, self.mode, self.ctx.key_id, self.n_values,
                          len(chunks), self.count, self.weight, self._clip or 0.0, self._bits or 0)
        return blob.pack(hdr, chunks)
