"""Leakage measurement: gradient inversion on what the server observes, and membership
inference on the trained model. See docs/leakage.md.

Threat models: :mod:`fl.leakage.inversion` (honest-but-curious server reconstructing
training images from one observed update), :mod:`fl.leakage.observe` (what that server
sees under each backend / DP / compression configuration, through the real privcrypt
backends), :mod:`fl.leakage.membership` (black-box membership inference on the final
model, and the bound (epsilon, delta)-DP puts on it).
"""

from fl.leakage.inversion import InversionResult, invert, match_and_score, model_gradient, psnr_ssim, recover_labels
from fl.leakage.membership import (
    dp_advantage_bound,
    loss_threshold_attack,
    membership_metrics,
    shadow_model_attack,
    train_classifier,
)
from fl.leakage.nets import MLP, LeNetSigmoid
from fl.leakage.observe import ObserveConfig, Observation, observe, observe_detailed, quantize_int8, topk_sparsify

__all__ = [
    "InversionResult", "invert", "match_and_score", "model_gradient", "psnr_ssim", "recover_labels",
    "dp_advantage_bound", "loss_threshold_attack", "membership_metrics", "shadow_model_attack",
    "train_classifier", "MLP", "LeNetSigmoid", "ObserveConfig", "Observation", "observe",
    "observe_detailed", "quantize_int8", "topk_sparsify",
]
