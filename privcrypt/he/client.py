"""Key-holder side: encode + encrypt a flat float vector to bytes; decrypt + decode an
aggregate (rounding before anything leaves the key holder).

Default mode (``mode="default"``): the vector ``weight * x`` is cut into chunks of N reals;
a chunk fills the N/2 complex slots with two reals each (``x[j] + i x[j + N/2]``), is encoded
at scale 2^40 and encrypted *symmetrically with a seed* (SEAL's ``encrypt_symmetric``
serializable: the uniform polynomial ``a`` is replaced by the 64-byte seed it was expanded
from), so a chunk costs one polynomial, 8 N bytes, i.e. about 8 bytes per value.

Compact mode (``mode="compact"``): ``weight * x`` (weights in (0, 1]) is clipped to
``[-clip, clip]`` and quantized to ``bits`` (16) bits with unbiased stochastic rounding from
``privcrypt.rng``; two quantized values share one real as integer lanes
``q_lo + 2^20 q_hi``, and two reals share a complex slot, so a chunk holds 2N values
(about 4 bytes per value). Sums of integers are recovered exactly by rounding, as long as
no lane overflows: ``count * (2^bits - 1) < 2^20`` (:meth:`Quantizer.check_sum_fits`), i.e.
at most 16 clients with 16-bit values.

Decryption and Li–Micciancio (Eurocrypt 2021, "On the security of homomorphic encryption
on approximate numbers", ePrint 2020/1533): a raw CKKS decryption ``m + e`` exposes the
error ``e``, a linear function of the secret key, and enough of them recover the key. So
:func:`decrypt` never returns raw decodings: the default mode rounds every value to a grid
of step ``2^ceil(log2(2 E))`` where E is the derived worst-case noise bound
(:func:`noise_bound`), and the compact mode rounds to exact integers (no noise remains).
"""

from __future__ import annotations

import math

import numpy as np

from privcrypt.encoding import Quantizer
from privcrypt.exceptions import MalformedInput
from privcrypt.he import blob
from privcrypt.he._seal import seal_files, sealapi
from privcrypt.he.context import CkksContext
from privcrypt.he.params import ERROR_BOUND, ParamSet
from privcrypt.rng import RandomSource

__all__ = ["encrypt", "decrypt", "noise_bound", "DecryptInfo"]


def noise_bound(params: ParamSet, count: int, weight_sum: float, *, compact: bool = False) -> float:
    """Worst-case absolute error of each decoded slot value of an aggregate of ``count``
    fresh ciphertexts whose decoded scale is ``Δ * weight_sum``.

    Each contribution adds, per coefficient, its fresh encryption error (|e_j| <= 21: SEAL's
    centered binomial sampler, sd 3.2) and its encoding rounding (<= 1/2). A decoded slot is
    ``sum_j c_j ζ^j / scale`` with |ζ| = 1, so its error is at most the l1 norm:
    ``count * N * 21.5 / (Δ * weight_sum)``. For N=4096, Δ=2^40 that is 8.0e-8 per unit of
    ``count / weight_sum`` (e.g. the mean of equally weighted clients). Double-precision
    encoding/decoding adds a relative error of about N log N 2^-53 (~1e-11 of the values'
    magnitude), not included here.
    """
    scale = params.compact_scale if compact else params.scale
    return count * params.poly_degree * (ERROR_BOUND + 0.5) / (scale * weight_sum)


#: Relative error of double-precision CKKS encoding + decoding (FFT of length N/2 in
#: float64): about N log2(N) 2^-53 = 5.5e-12 for N=4096; declared with a factor 2 margin.
FLOAT_REL_ERROR = 1e-11


def _rounding_step(bound: float) -> float:
    """Smallest power of two >= 2 * bound (the Li–Micciancio rounding grid)."""
    return 2.0 ** math.ceil(math.log2(2.0 * bound))


class DecryptInfo(dict):
    """What :func:`decrypt` reports besides the values: ``count``, ``weight``, ``mode``,
    ``error_bound`` (absolute, per value), ``rounding_step``."""


def _check_vector(x) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("empty vector")
    if not np.all(np.isfinite(arr)):
        raise ValueError("vector contains NaN or Inf")
    return arr


def encrypt(ctx: CkksContext, x, *, weight: float = 1.0, mode: str = "default", clip: float | None = None,
            bits: int = 16, rng: RandomSource | None = None) -> bytes:
    """Encrypt ``weight * x`` (any length, flattened) under ``ctx``'s secret key.

    Default mode: ``|weight * x|`` must stay within ``ctx.value_bound`` (``ValueError``
    otherwise), so that ``max_clients`` contributions cannot overflow the modulus.
    Compact mode: ``clip`` is required, ``0 < weight <= 1``; values of ``weight * x`` outside
    ±clip are clipped to it (the declared range; ``np.count_nonzero(np.abs(x) > clip)``
    counts them beforehand). ``rng`` feeds the stochastic rounding of compact mode.
    """
    if mode not in blob.MODES:
        raise ValueError(f"mode must be one of {sorted(blob.MODES)}")
    weight = float(weight)
    if not (math.isfinite(weight) and weight > 0):
        raise ValueError("weight must be positive and finite")
    arr = _check_vector(x)
    p = ctx.params
    enc, encoder = ctx.encryptor, ctx.encoder
    half = p.slots
    n = arr.size
    if mode == "default":
        y = arr * weight
        peak = float(np.max(np.abs(y)))
        if peak > ctx.value_bound:
            raise ValueError(f"|weight * x| reaches {peak:.4g} > value bound {ctx.value_bound:.4g} "
                             f"(max_sum / max_clients for {p.name})")
        per, scale, clip_v, bits_v = p.values_per_chunk, p.scale, 0.0, 0
        lanes = None
    else:
        if clip is None:
            raise ValueError("compact mode needs clip")
        if weight > 1.0:
            raise ValueError("compact mode needs 0 < weight <= 1")
        q = Quantizer(float(clip), int(bits))
        if not (1 <= q.bits < p.lane_bits):
            raise ValueError(f"bits must be in [1, {p.lane_bits})")
        qv, _ = q.quantize(arr * weight, rounding="stochastic", rng=rng, clip=True)
        lanes = qv.astype(np.float64)
        per, scale, clip_v, bits_v = p.compact_values_per_chunk, p.compact_scale, float(clip), q.bits
        y = None
    n_chunks = blob.n_chunks_for(n, per)
    chunks = []
    lane_mul = float(2**p.lane_bits)
    with seal_files() as files:
        for c in range(n_chunks):
            src = y if mode == "default" else lanes
            seg = src[c * per:(c + 1) * per]
            buf = np.zeros(per)  # the last chunk is zero-padded
            buf[:seg.size] = seg
            if mode == "compact":  # two integer lanes per real: q_lo + 2^20 q_hi
                buf = buf[:p.poly_degree] + lane_mul * buf[p.poly_degree:]
            z = buf[:half] + 1j * buf[half:]  # two reals per complex slot
            pt = sealapi.Plaintext()
            encoder.encode(z, scale, pt)
            chunks.append(files.save(enc.encrypt_symmetric(pt)))
    hdr = blob.Header(blob.UPDATE, p.set_id, mode, ctx.key_id, n, n_chunks, 1, weight, clip_v, bits_v)
    return blob.pack(hdr, chunks)


def decrypt(ctx: CkksContext, data: bytes, *, dtype=np.float32, with_info: bool = False):
    """Decrypt an aggregate (or a single update) made under ``ctx``'s key.

    Returns the weighted mean ``sum_i w_i x_i / sum_i w_i`` as ``dtype`` (float32 by
    default), rounded as described in the module doc; with ``with_info=True`` returns
    ``(values, DecryptInfo)``. Raises ``InvalidKey`` when ``ctx`` has no secret key or the
    key id differs, ``MalformedInput`` for malformed bytes.
    """
    ctx.require_secret()
    hdr, raws = blob.parse(data, ctx)
    p = ctx.params
    compact = hdr.mode == "compact"
    dec, encoder = ctx.decryptor, ctx.encoder
    if compact:
        expect_scale = p.compact_scale
    elif hdr.kind == blob.AGGREGATE:
        expect_scale = p.scale * hdr.weight
    else:
        expect_scale = p.scale
    out = []
    max_resid = 0.0
    with seal_files() as files:
        for raw in raws:
            ct = blob.load_chunk(files, ctx, raw, scale=expect_scale)
            pt = sealapi.Plaintext()
            dec.decrypt(ct, pt)
            z = np.asarray(encoder.decode_complex(pt))
            r = np.concatenate([z.real, z.imag])
            if compact:
                rr = np.rint(r)
                max_resid = max(max_resid, float(np.max(np.abs(r - rr))))
                ints = rr.astype(np.int64)
                lo = ints & ((1 << p.lane_bits) - 1)
                hi = ints >> p.lane_bits
                out.append(np.concatenate([lo, hi]))
            else:
                out.append(r)
    vals = np.concatenate(out)[:hdr.n_values]
    info = DecryptInfo(count=hdr.count, weight=hdr.weight, mode=hdr.mode)
    if compact:
        lane_cap = 2**p.lane_bits
        # Correct aggregates sit within ~0.01 of integers (docs/he.md); > 0.25 means the
        # ciphertext was altered or lanes overflowed: refuse rather than return garbage.
        if max_resid > 0.25 or np.any(vals < 0) or np.any(vals >= lane_cap):
            raise MalformedInput("compact aggregate does not decode to in-range integers "
                                 "(altered ciphertext or lane overflow)")
        q = Quantizer(hdr.clip, hdr.bits)
        mean = q.dequantize_sum(vals, hdr.count) / hdr.weight
        # Stochastic rounding: each contribution is off by < one step (before / weight).
        # The residual distance to the integers is a function of the raw decryption noise
        # (Li-Micciancio): it is checked above and never returned.
        info.update(error_bound=hdr.count * q.step / hdr.weight, rounding_step=1.0)
    else:
        weight = hdr.weight if hdr.kind == blob.AGGREGATE else 1.0
        if hdr.kind == blob.UPDATE:  # a single update decodes to weight * x
            vals = vals / hdr.weight
            weight = hdr.weight
        e = noise_bound(p, hdr.count, weight)
        step = _rounding_step(e)
        mean = np.rint(vals / step) * step
        float_err = FLOAT_REL_ERROR * float(np.max(np.abs(vals)))
        info.update(error_bound=e + step / 2 + float_err, rounding_step=step)
    mean = mean.astype(dtype)
    if np.dtype(dtype) != np.float64 and mean.size:  # the cast's own rounding, half an ulp
        info["error_bound"] += float(np.max(np.abs(mean))) * float(np.finfo(dtype).eps) / 2
    return (mean, info) if with_info else mean
