"""Evasion attacks and federated adversarial training (FDA³, seeds 000 and 003).

One interface: ``x_adv = attack(model, x, y)`` (see :class:`Attack`); attacks FGSM, BIM,
PGD (L-inf / L2), JSMA, CW-L2, DeepFool (white-box) and SimBA (black-box, query-only),
built by name with :func:`make_attack`. The defense: :func:`adversarial_loss` (FDA³ loss
``(1 - alpha) L_nat + alpha L_adv``), :func:`adversarial_train_epoch`, and
:func:`client_attack_schedule` (each FL client faces its own attack). Evaluation:
:func:`evaluate_robustness`. See ``docs/adversarial.md``.
"""

from .base import Attack, batch_norms, eval_mode, project_l2
from .cw import CWL2
from .deepfool import DeepFool
from .evaluate import evaluate_robustness, generate_adversarial, predict
from .gradient import BIM, FGSM, PGD
from .jsma import JSMA
from .registry import ATTACKS, attack_names, make_attack
from .simba import SimBA
from .training import (FDA3_ATTACKS, adversarial_loss, adversarial_train_epoch,
                       client_attack_schedule)

__all__ = [
    "Attack", "FGSM", "BIM", "PGD", "JSMA", "CWL2", "DeepFool", "SimBA",
    "ATTACKS", "attack_names", "make_attack", "eval_mode", "batch_norms", "project_l2",
    "adversarial_loss", "adversarial_train_epoch", "client_attack_schedule", "FDA3_ATTACKS",
    "evaluate_robustness", "generate_adversarial", "predict",
]
