"""Named CKKS parameter sets, checked against the HomomorphicEncryption.org standard.

The security bound: for a ternary (uniform {-1,0,1}) secret and error of standard deviation
3.2, the HE security standard (Albrecht et al., "Homomorphic Encryption Security Standard",
HomomorphicEncryption.org, 2018, Table 1, classical 128-bit column) allows at most
``MAX_LOG_Q_128[N]`` bits of total coefficient modulus for ring degree N. These are the same
numbers SEAL enforces with ``sec_level_type.tc128``; :func:`get_params` checks them itself so
that an unsafe set fails with :class:`~privcrypt.exceptions.UnsupportedParameters` before
SEAL is touched.

Why N=4096 and one 60-bit prime (the default set ``"n4096-q60"``): secure aggregation only
*adds* ciphertexts and divides by a public total weight. Addition needs no rescaling, so a
single prime suffices (no special prime either, since no key switching is ever done: no
relinearization or Galois keys exist, and the server holds no key at all). One 60-bit prime
is 60 <= 109 bits, the 128-bit limit for N=4096. The scale 2^40 leaves 60-1-40 = 19 bits for
the magnitude of the weighted sum (see :attr:`ParamSet.max_sum`).
"""

from __future__ import annotations

from dataclasses import dataclass

from privcrypt.exceptions import UnsupportedParameters

__all__ = ["ParamSet", "PARAM_SETS", "MAX_LOG_Q_128", "get_params", "DEFAULT_PARAMS"]

#: HE standard (2018), Table 1, 128-bit classical security, ternary secret: max log2(q).
MAX_LOG_Q_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}

#: SEAL samples the encryption error from a centered binomial distribution with standard
#: deviation 3.2 (SEAL's default noise sampler): every coefficient lies in [-21, 21].
ERROR_BOUND = 21


@dataclass(frozen=True)
class ParamSet:
    """One CKKS parameter set.

    ``set_id``: the one-byte identifier carried in every ciphertext header.
    ``poly_degree``: N. ``coeff_bits``: bit sizes of the coefficient-modulus primes.
    ``scale_bits``: log2 of the encoding scale of the default mode.
    ``compact_scale_bits``: log2 of the scale of compact mode (integer lanes, see
    :mod:`privcrypt.he.client`). ``lane_bits``: width of one integer lane in compact mode.
    """

    name: str
    set_id: int
    poly_degree: int
    coeff_bits: tuple[int, ...]
    scale_bits: int
    compact_scale_bits: int = 18
    lane_bits: int = 20

    @property
    def log_q(self) -> int:
        return sum(self.coeff_bits)

    @property
    def slots(self) -> int:
        """Complex slots per ciphertext (N/2)."""
        return self.poly_degree // 2

    @property
    def values_per_chunk(self) -> int:
        """Reals per ciphertext in the default mode: two reals per complex slot."""
        return self.poly_degree

    @property
    def compact_values_per_chunk(self) -> int:
        """Quantized values per ciphertext in compact mode: two lanes per real."""
        return 2 * self.poly_degree

    @property
    def scale(self) -> float:
        return float(2**self.scale_bits)

    @property
    def compact_scale(self) -> float:
        return float(2**self.compact_scale_bits)

    @property
    def max_sum(self) -> float:
        """Largest magnitude a slot value (the weighted sum) may reach in the default mode:
        ``|sum| * 2^scale_bits`` must stay below ``q/2 = 2^(log_q - 1)``; one more bit is
        kept as headroom for noise, so ``2^(log_q - scale_bits - 2)``."""
        return float(2 ** (self.log_q - self.scale_bits - 2))

    def check(self) -> None:
        """Raise ``UnsupportedParameters`` unless the set is 128-bit secure and consistent."""
        limit = MAX_LOG_Q_128.get(self.poly_degree)
        if limit is None:
            raise UnsupportedParameters(f"ring degree {self.poly_degree} is not in the HE standard table")
        if self.log_q > limit:
            raise UnsupportedParameters(
                f"{self.name}: log q = {self.log_q} exceeds the 128-bit bound {limit} for N={self.poly_degree}"
            )
        if not (0 < self.scale_bits <= self.log_q - 2):
            raise UnsupportedParameters(f"{self.name}: scale 2^{self.scale_bits} leaves no room below q")
        # compact: a slot holds two lanes, i.e. an integer below 2^(2*lane_bits).
        if 2 * self.lane_bits + self.compact_scale_bits > self.log_q - 1:
            raise UnsupportedParameters(f"{self.name}: compact lanes do not fit below q/2")
        if not (0 <= self.set_id < 256):
            raise UnsupportedParameters("set_id must fit in one byte")


PARAM_SETS: dict[str, ParamSet] = {
    p.name: p
    for p in (
        # The default: N=4096, one 60-bit prime, scale 2^40.
        ParamSet("n4096-q60", 1, 4096, (60,), 40),
        # Twice the ring, same modulus: more security margin (60 << 218), same bytes/value.
        ParamSet("n8192-q60", 2, 8192, (60,), 40),
    )
}
DEFAULT_PARAMS = "n4096-q60"


def get_params(name: str | ParamSet = DEFAULT_PARAMS) -> ParamSet:
    """Look up a named set (or pass a :class:`ParamSet` through) and check it."""
    if isinstance(name, ParamSet):
        p = name
    else:
        try:
            p = PARAM_SETS[name]
        except KeyError:
            raise UnsupportedParameters(f"unknown parameter set {name!r}; known: {sorted(PARAM_SETS)}") from None
    p.check()
    return p


def params_by_id(set_id: int) -> ParamSet | None:
    for p in PARAM_SETS.values():
        if p.set_id == set_id:
            return p
    return None
