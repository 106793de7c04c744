"""``make_attack(name, **params)``: build an attack by name."""

from __future__ import annotations

from .base import Attack
from .cw import CWL2
from .deepfool import DeepFool
from .gradient import BIM, FGSM, PGD
from .jsma import JSMA
from .simba import SimBA


def _pgd_l2(**params):
    return PGD(norm="l2", **{"eps": 1.0, **params})


ATTACKS = {
    "fgsm": FGSM,
    "bim": BIM,
    "pgd": PGD,
    "pgd_linf": PGD,
    "pgd_l2": _pgd_l2,
    "jsma": JSMA,
    "cw2": CWL2,
    "cw": CWL2,
    "cw_l2": CWL2,
    "deepfool": DeepFool,
    "simba": SimBA,
}
"""Names accepted by :func:`make_attack` (case-insensitive, ``-`` read as ``_``)."""


def attack_names() -> list[str]:
    """The canonical attack names (aliases left out)."""
    return ["fgsm", "bim", "pgd", "pgd_l2", "jsma", "cw2", "deepfool", "simba"]


def make_attack(name: str, **params) -> Attack:
    """Build the attack called ``name`` with keyword ``params`` passed to its constructor.

    Names: ``fgsm``, ``bim``, ``pgd`` (L-inf; alias ``pgd_linf``), ``pgd_l2`` (PGD with
    ``norm="l2"``, default ``eps=1.0``), ``jsma``, ``cw2`` (aliases ``cw``, ``cw_l2``),
    ``deepfool``, ``simba``. Unknown names raise ``ValueError`` listing the known ones;
    unknown parameters raise ``TypeError`` from the constructor."""
    if not isinstance(name, str):
        raise TypeError(f"attack name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join(attack_names())}")
    return ATTACKS[key](**params)
