"""``FLConfig``: every knob of a federated run with its default, validated in one place.

The same keys are accepted from a TOML file (:meth:`FLConfig.from_toml`) and, with dashes
instead of underscores, as ``privcrypt fl run`` flags. Validation happens in
``__post_init__`` so that a bad value is refused before any data is touched or any round
runs; combinations that cannot be honest (a robust rule on top of masking or CKKS, DP on
the example level with a model that has batch statistics, ...) are refused by
:func:`fl.checks.check_run` once the model and data are known.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["FLConfig", "BACKENDS", "STRATEGIES", "DP_MODES", "DP_UNITS", "TASKS", "ROBUST_RULES"]

BACKENDS = ("plain", "masking", "spdz", "ckks")
STRATEGIES = ("fedavg", "fedavgm", "fedadam")
#: Aggregation rules. ``fedavg`` is the weighted mean every backend computes; the others
#: need individual updates (plaintext) or, for ``krum``/``multikrum``, SPDZ shares.
ROBUST_RULES = ("median", "trimmed", "krum", "multikrum", "bulyan", "centered_clip", "normbound")
AGGREGATORS = ("fedavg",) + ROBUST_RULES
DP_MODES = ("central", "local", "distributed")
DP_UNITS = ("example", "client")
TASKS = ("classification", "regression", "anomaly")
OPTIMIZERS = ("sgd", "adam")
COMPRESSION = ("none", "q8", "q16", "topk")


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be finite and {'>=' if allow_zero else '>'} 0, got {value!r}")
    return v


def _choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(options)}")
    return value


@dataclass
class FLConfig:
    """Configuration of one federated run (``fl.run``). Every field has a default.

    Training: ``rounds``, ``local_epochs``, ``batch_size``, ``lr``, ``optimizer``
    (``"sgd"`` | ``"adam"``), ``momentum`` (SGD).

    Sampling: ``clients_per_round`` (fixed count; ``None`` = all) or ``sample_rate``
    (Poisson: each client joins a round independently with this probability).

    Privacy pipeline (order: train -> clip -> DP noise -> compression -> secure aggregation):
    ``clip_norm`` C bounds each client's update in L2 (always applied; the secure
    backends' declared ranges are derived from it, so they never clip a value that passed
    this stage except DP noise tails, which are counted); ``dp_epsilon`` (``None``: no DP) and
    ``dp_delta``; ``dp_unit`` ``"example"`` (DP-SGD inside each client; protects every
    training record against everyone who sees updates or models) or ``"client"``
    (DP-FedAvg; protects a client's whole data set); ``dp_mode`` for the client unit:
    ``"central"`` (server adds the noise: it is trusted with the un-noised sum),
    ``"local"`` (each client adds the full noise: trusts no one), ``"distributed"``;
    ``dp_noise_multiplier``: an explicit noise multiplier instead of calibrating it to
    ``dp_epsilon`` (the budget guard then refuses the round that would overspend);
    ``dp_example_clip``: per-example gradient clip for the example unit;
    ``dp_accountant``: ``"rdp"`` | ``"pld"``. Distributed mode: ``dp_min_survivors``
    (fewest survivors a round accepts; the noise is calibrated for them; default 70 % of
    the clients per round) and ``dp_bits`` (the integer encoding's modulus 2^bits, lowered
    automatically so that the sum of n clients fits the backend's 32-bit words).

    ``compression``: ``"none"``, ``"q8"``/``"q16"`` (stochastic quantization of each
    coordinate to 8/16 bits over ``[-C, C]``) or ``"topk"`` (keep the ``topk_fraction``
    largest coordinates, with error feedback). ``backend``: secure aggregation
    (``plain`` | ``masking`` | ``spdz`` | ``ckks``) and ``backend_params`` passed to
    :func:`privcrypt.secagg.make_aggregator`. ``dropout``: probability that a sampled
    client goes silent after key set-up. ``aggregator``: ``fedavg`` or a robust rule;
    ``byzantine_f``: the number of Byzantine clients a robust rule must tolerate.
    ``reputation``: score clients every round against the robust aggregate
    (``fl.reputation.Reputation(**reputation_params)``), down-weight and then exclude
    those below its thresholds (needs individual updates: ``plain``, or the distances that
    ``spdz`` Krum opens). ``byzantine`` K clients (chosen with ``seed``) run ``attack`` (``fl.attacks``) at
    ``attack_scale``, to measure robustness. ``strategy``: server optimizer ``fedavg`` | ``fedavgm`` | ``fedadam`` with
    ``server_lr``, ``server_momentum``, ``adam_beta1``, ``adam_beta2``, ``adam_tau``.

    Adversarial training (classification): ``adv_train`` names an attack of
    ``fl.adversarial`` (``fgsm``, ``pgd``, ...) that every client trains against, or
    ``"fda3"`` (each client faces its own attack, FDA³'s schedule); the local loss is
    ``(1 - adv_alpha) L_nat + adv_alpha L_adv``; ``adv_eps`` overrides the attack's budget.

    ``seed`` fixes data order, model initialisation, client sampling and dropouts; secrets
    and DP noise always come from ``privcrypt.rng`` (pass ``rng=`` to :func:`fl.run` for a
    deterministic source in tests). ``torch_threads``: threads torch may use (1 default).
    ``eval_every``: evaluate every this many rounds (the last round always).
    """

    rounds: int = 10
    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.0
    clients_per_round: int | None = None
    sample_rate: float | None = None
    clip_norm: float = 5.0
    backend: str = "masking"
    backend_params: dict = field(default_factory=dict)
    aggregator: str = "fedavg"
    byzantine_f: int = 0
    aggregator_params: dict = field(default_factory=dict)
    reputation: bool = False
    reputation_params: dict = field(default_factory=dict)
    byzantine: int = 0
    attack: str | None = None
    attack_scale: float | None = None
    strategy: str = "fedavg"
    server_lr: float = 1.0
    server_momentum: float = 0.9
    adam_beta1: float = 0.9
    adam_beta2: float = 0.99
    adam_tau: float = 1e-3
    dp_epsilon: float | None = None
    dp_delta: float = 1e-5
    dp_unit: str = "example"
    dp_mode: str = "central"
    dp_noise_multiplier: float | None = None
    dp_example_clip: float = 1.0
    dp_accountant: str = "rdp"
    dp_min_survivors: int | None = None
    dp_bits: int = 20
    compression: str = "none"
    topk_fraction: float = 0.1
    dropout: float = 0.0
    adv_train: str | None = None
    adv_alpha: float = 0.5
    adv_eps: float | None = None
    seed: int = 0
    torch_threads: int = 1
    eval_every: int = 1

    def __post_init__(self) -> None:
        for name in ("rounds", "local_epochs", "batch_size", "torch_threads", "eval_every"):
            _positive_int(name, getattr(self, name))
        self.lr = _positive_float("lr", self.lr)
        self.momentum = _positive_float("momentum", self.momentum, allow_zero=True)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.clients_per_round is not None:
            _positive_int("clients_per_round", self.clients_per_round)
        if self.sample_rate is not None:
            q = _positive_float("sample_rate", self.sample_rate)
            if q > 1:
                raise ValueError(f"sample_rate must be in (0, 1], got {q}")
            if self.clients_per_round is not None:
                raise ValueError("give clients_per_round (fixed count) or sample_rate (Poisson), not both")
        self.clip_norm = _positive_float("clip_norm", self.clip_norm)
        _choice("backend", self.backend, BACKENDS)
        if not isinstance(self.backend_params, dict):
            raise ValueError("backend_params must be a table/dict")
        _choice("aggregator", self.aggregator, AGGREGATORS)
        if isinstance(self.byzantine_f, bool) or not isinstance(self.byzantine_f, int) or self.byzantine_f < 0:
            raise ValueError(f"byzantine_f must be an integer >= 0, got {self.byzantine_f!r}")
        if not isinstance(self.aggregator_params, dict) or not isinstance(self.reputation_params, dict):
            raise ValueError("aggregator_params and reputation_params must be tables/dicts")
        if self.dp and self.dp_unit == "client" and self.aggregator != "fedavg":
            raise ValueError(f"client-level DP calibrates its noise to the sum's sensitivity (clip_norm); "
                             f"aggregator {self.aggregator!r} has another one. Use aggregator='fedavg', "
                             f"or dp_unit='example' (the noise is inside each client's update)")
        if self.reputation and self.dp and self.dp_unit == "client":
            raise ValueError("reputation re-weights clients, which client-level DP's equal weights forbid")
        if isinstance(self.byzantine, bool) or not isinstance(self.byzantine, int) or self.byzantine < 0:
            raise ValueError(f"byzantine must be an integer >= 0, got {self.byzantine!r}")
        if self.byzantine and self.attack is None:
            raise ValueError("byzantine clients need an attack name (attack=...)")
        if self.attack is not None and not isinstance(self.attack, str):
            raise ValueError(f"attack must be a name, got {self.attack!r}")
        if self.attack_scale is not None:
            self.attack_scale = _positive_float("attack_scale", self.attack_scale)
        _choice("strategy", self.strategy, STRATEGIES)
        self.server_lr = _positive_float("server_lr", self.server_lr)
        for name in ("server_momentum", "adam_beta1", "adam_beta2"):
            v = _positive_float(name, getattr(self, name), allow_zero=True)
            if v >= 1:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        self.adam_tau = _positive_float("adam_tau", self.adam_tau)
        if self.dp_epsilon is not None:
            self.dp_epsilon = _positive_float("dp_epsilon", self.dp_epsilon)
        d = _positive_float("dp_delta", self.dp_delta)
        if d >= 1:
            raise ValueError(f"dp_delta must be in (0, 1), got {d}")
        _choice("dp_unit", self.dp_unit, DP_UNITS)
        _choice("dp_mode", self.dp_mode, DP_MODES)
        if self.dp_noise_multiplier is not None:
            self.dp_noise_multiplier = _positive_float("dp_noise_multiplier", self.dp_noise_multiplier)
            if self.dp_epsilon is None:
                raise ValueError("dp_noise_multiplier needs dp_epsilon (the budget the run may not exceed)")
        self.dp_example_clip = _positive_float("dp_example_clip", self.dp_example_clip)
        _choice("dp_accountant", self.dp_accountant, ("rdp", "pld"))
        if self.dp_min_survivors is not None:
            _positive_int("dp_min_survivors", self.dp_min_survivors)
        if isinstance(self.dp_bits, bool) or not isinstance(self.dp_bits, int) or not 8 <= self.dp_bits <= 30:
            raise ValueError(f"dp_bits must be an integer in [8, 30], got {self.dp_bits!r}")
        if self.dp_epsilon is not None and self.dp_unit == "example" and self.dp_mode != "central":
            raise ValueError("dp_mode applies to dp_unit='client' only; the example unit adds its "
                             "noise inside each client's DP-SGD")
        _choice("compression", self.compression, COMPRESSION)
        tf = _positive_float("topk_fraction", self.topk_fraction)
        if tf > 1:
            raise ValueError(f"topk_fraction must be in (0, 1], got {tf}")
        dr = _positive_float("dropout", self.dropout, allow_zero=True)
        if dr >= 1:
            raise ValueError(f"dropout must be in [0, 1), got {dr}")
        if self.adv_train is not None and (not isinstance(self.adv_train, str) or not self.adv_train):
            raise ValueError(f"adv_train must be an attack name or 'fda3', got {self.adv_train!r}")
        a = _positive_float("adv_alpha", self.adv_alpha, allow_zero=True)
        if a > 1:
            raise ValueError(f"adv_alpha must be in [0, 1], got {a}")
        if self.adv_eps is not None:
            self.adv_eps = _positive_float("adv_eps", self.adv_eps)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")

    @property
    def dp(self) -> bool:
        """Whether the run is differentially private."""
        return self.dp_epsilon is not None

    def to_dict(self) -> dict:
        """JSON-friendly dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FLConfig":
        """Build from a dict with the same keys; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown FLConfig keys: {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_toml(cls, path, **overrides) -> "FLConfig":
        """Read a TOML file whose top-level keys are FLConfig fields (``[backend_params]``
        and ``[aggregator_params]`` as tables). ``overrides`` win over the file."""
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {str(p)!r} does not exist or is not a file")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
        data.update(overrides)
        return cls.from_dict(data)
