"""A synthetic multi-sensor industrial-IoT generator for federated anomaly detection.

Each *machine* (one factory's asset, one natural FL client) carries ``n_sensors`` sensors
sampled every step. The clean signal of sensor ``s`` on machine ``m`` at step ``t`` is::

    x[m, t, s] = base[m, s]                                   # machine-specific offset
               + wear[m] * gain[s] * (t / n_steps) ** degradation_exponent   # degradation
               + amp[s] * sin(2 pi t / steps_per_day + phase[m] + lag[s])    # daily cycle
               + noise_std * N(0, 1)                          # sensor noise, i.i.d.

with ``base ~ N(0, machine_heterogeneity)``, ``wear ~ U(0.5, 1.5)``,
``gain = degradation_strength * U(0.5, 1.5) * (+1 or -1)``,
``amp = seasonality_amplitude * U(0.5, 1.5)``, ``phase ~ U(0, 2 pi)`` (shift-work timing
differs between plants) and ``lag ~ U(0, pi/4)``. All values are in arbitrary signal units.

Anomalies are then injected, one event at a time, on one random sensor of one machine,
until at least ``anomaly_rate`` of each machine's steps are anomalous:

* ``spike``: 1 to 3 steps offset by ``+-spike_magnitude`` (an electrical glitch);
* ``drift``: a linear ramp from 0 to ``+-drift_magnitude`` over the event (calibration
  drift; the sensor is recalibrated afterwards);
* ``stuck``: the sensor repeats its reading from the event's first step (frozen sensor;
  the noise vanishes, the level does not jump).

Event lengths (drift, stuck) are drawn uniformly from ``anomaly_length`` (inclusive). A step
is labelled anomalous if any sensor is inside an event. The generator uses
``numpy.random.default_rng(seed)``: this is data, not secret material.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Dataset

__all__ = ["IIoTSeries", "make_iiot", "load_iiot", "ANOMALY_KINDS"]

ANOMALY_KINDS = ("spike", "drift", "stuck")
_KIND_CODE = {"spike": 1, "drift": 2, "stuck": 3}


@dataclass(frozen=True)
class IIoTSeries:
    """Output of :func:`make_iiot`.

    Attributes:
        signals: float32 ``(n_machines, n_steps, n_sensors)``, with anomalies injected.
        labels: int64 ``(n_machines, n_steps)``; 1 where any sensor is anomalous.
        kinds: int8 ``(n_machines, n_steps, n_sensors)``; 0 normal, 1 spike, 2 drift,
            3 stuck (the last event written wins where events overlap).
        events: one dict per injected event: machine, sensor, kind, start, length.
        params: every generator parameter, JSON-friendly.
    """

    signals: np.ndarray
    labels: np.ndarray
    kinds: np.ndarray
    events: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)


def _check_int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return int(value)


def make_iiot(
    n_machines: int = 10,
    n_steps: int = 2880,
    n_sensors: int = 4,
    *,
    anomaly_rate: float = 0.02,
    seed: int = 0,
    steps_per_day: int = 96,
    noise_std: float = 0.1,
    seasonality_amplitude: float = 0.5,
    degradation_strength: float = 0.3,
    degradation_exponent: float = 2.0,
    machine_heterogeneity: float = 0.3,
    spike_magnitude: float = 1.5,
    drift_magnitude: float = 1.0,
    anomaly_kinds: tuple[str, ...] = ANOMALY_KINDS,
    anomaly_length: tuple[int, int] = (8, 32),
) -> IIoTSeries:
    """Generate multi-sensor machine time series with degradation, seasonality, noise and
    labelled anomalies (see the module docstring for the exact model).

    Args:
        n_machines: machines (clients), >= 1.
        n_steps: time steps per machine, >= 2 (default 2880 = 30 days at 15-minute steps).
        n_sensors: sensors per machine, >= 1.
        anomaly_rate: target fraction of anomalous steps per machine, in ``[0, 0.5]``;
            events are added until it is reached (it may be exceeded by up to one event).
        seed: seed of the numpy generator (data, not a secret).
        steps_per_day: period of the daily seasonality in steps, >= 2.
        noise_std: standard deviation of the i.i.d. Gaussian sensor noise, >= 0.
        seasonality_amplitude: mean amplitude of the daily cycle, >= 0.
        degradation_strength: mean size of the wear trend reached at the last step, >= 0.
        degradation_exponent: shape of the wear trend ``(t / n_steps) ** exponent``, > 0
            (1 linear, 2 accelerating).
        machine_heterogeneity: standard deviation of the per-machine, per-sensor offset,
            >= 0 (makes clients non-IID).
        spike_magnitude: absolute offset of a spike, > 0.
        drift_magnitude: final offset of a drift ramp, > 0.
        anomaly_kinds: non-empty subset of ``("spike", "drift", "stuck")``.
        anomaly_length: inclusive ``(min, max)`` length of drift and stuck events, with
            ``1 <= min <= max <= n_steps``.

    Raises ``ValueError``/``TypeError`` naming the bad argument.
    """
    n_machines = _check_int("n_machines", n_machines, 1)
    n_steps = _check_int("n_steps", n_steps, 2)
    n_sensors = _check_int("n_sensors", n_sensors, 1)
    steps_per_day = _check_int("steps_per_day", steps_per_day, 2)
    if not 0.0 <= anomaly_rate <= 0.5:
        raise ValueError(f"anomaly_rate must be in [0, 0.5], got {anomaly_rate}")
    for name, v in (
        ("noise_std", noise_std),
        ("seasonality_amplitude", seasonality_amplitude),
        ("degradation_strength", degradation_strength),
        ("machine_heterogeneity", machine_heterogeneity),
    ):
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {v}")
    for name, v in (
        ("degradation_exponent", degradation_exponent),
        ("spike_magnitude", spike_magnitude),
        ("drift_magnitude", drift_magnitude),
    ):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be finite and > 0, got {v}")
    kinds_list = tuple(anomaly_kinds)
    if not kinds_list or any(k not in ANOMALY_KINDS for k in kinds_list):
        raise ValueError(f"anomaly_kinds must be a non-empty subset of {ANOMALY_KINDS}")
    lo, hi = (int(v) for v in anomaly_length)
    if not 1 <= lo <= hi <= n_steps:
        raise ValueError(f"anomaly_length must satisfy 1 <= min <= max <= n_steps, got {anomaly_length}")

    rng = np.random.default_rng(seed)
    t = np.arange(n_steps, dtype=np.float64)
    base = rng.normal(0.0, machine_heterogeneity, size=(n_machines, 1, n_sensors))
    wear = rng.uniform(0.5, 1.5, size=(n_machines, 1, 1))
    gain = degradation_strength * rng.uniform(0.5, 1.5, n_sensors) * rng.choice([-1.0, 1.0], n_sensors)
    amp = seasonality_amplitude * rng.uniform(0.5, 1.5, n_sensors)
    phase = rng.uniform(0.0, 2 * np.pi, size=(n_machines, 1, 1))
    lag = rng.uniform(0.0, np.pi / 4, n_sensors)
    trend = (t / n_steps)[None, :, None] ** degradation_exponent
    season = np.sin(2 * np.pi * t[None, :, None] / steps_per_day + phase + lag)
    x = base + wear * gain * trend + amp * season
    x = x + noise_std * rng.standard_normal(x.shape)

    kinds = np.zeros(x.shape, dtype=np.int8)
    labels = np.zeros((n_machines, n_steps), dtype=np.int64)
    events: list[dict[str, Any]] = []
    target = int(np.ceil(anomaly_rate * n_steps))
    for m in range(n_machines):
        guard = 0
        while labels[m].sum() < target:
            guard += 1
            if guard > 100 * n_steps:  # pragma: no cover - impossible with rate <= 0.5
                raise RuntimeError("anomaly injection did not reach anomaly_rate")
            kind = kinds_list[rng.integers(len(kinds_list))]
            length = int(rng.integers(1, 4)) if kind == "spike" else int(rng.integers(lo, hi + 1))
            length = min(length, n_steps)
            start = int(rng.integers(0, n_steps - length + 1))
            s = int(rng.integers(n_sensors))
            sl = slice(start, start + length)
            sign = rng.choice([-1.0, 1.0])
            if kind == "spike":
                x[m, sl, s] += sign * spike_magnitude
            elif kind == "drift":
                x[m, sl, s] += sign * drift_magnitude * np.linspace(1.0 / length, 1.0, length)
            else:
                x[m, sl, s] = x[m, start, s]
            kinds[m, sl, s] = _KIND_CODE[kind]
            labels[m, sl] = 1
            events.append({"machine": m, "sensor": s, "kind": kind, "start": start, "length": length})

    params = {
        "n_machines": n_machines, "n_steps": n_steps, "n_sensors": n_sensors,
        "anomaly_rate": float(anomaly_rate), "seed": int(seed), "steps_per_day": steps_per_day,
        "noise_std": float(noise_std), "seasonality_amplitude": float(seasonality_amplitude),
        "degradation_strength": float(degradation_strength),
        "degradation_exponent": float(degradation_exponent),
        "machine_heterogeneity": float(machine_heterogeneity),
        "spike_magnitude": float(spike_magnitude), "drift_magnitude": float(drift_magnitude),
        "anomaly_kinds": list(kinds_list), "anomaly_length": [lo, hi],
    }  # fmt: skip
    return IIoTSeries(x.astype(np.float32), labels, kinds, events, params)


def _window_starts(n: int, window_length: int, stride: int) -> np.ndarray:
    return np.arange(0, n - window_length + 1, stride)


def load_iiot(
    *,
    seed: int = 0,
    n_machines: int = 10,
    n_steps: int = 2880,
    n_sensors: int = 4,
    anomaly_rate: float = 0.02,
    window_length: int = 32,
    stride: int | None = None,
    train_fraction: float = 0.7,
    **generator_kw: Any,
) -> Dataset:
    """The :func:`make_iiot` series cut into labelled windows ``(N, window_length, n_sensors)``.

    Each machine's series is split in time: the first ``train_fraction`` of its steps is
    training data, the rest test data (no window straddles the cut, so no overlap leaks).
    Each sensor is standardised per machine with that machine's training-part mean and
    standard deviation, which a client can compute alone. Windows of ``window_length``
    steps every ``stride`` steps (default ``window_length // 2``); a window is labelled 1
    (anomalous) if any of its steps is anomalous, else 0. ``groups_train`` holds the machine
    id. Extra keyword arguments go to :func:`make_iiot`. The training windows include
    anomalous ones; an autoencoder that must learn "normal" can keep ``y_train == 0`` only.
    """
    window_length = _check_int("window_length", window_length, 2)
    stride = window_length // 2 if stride is None else _check_int("stride", stride, 1)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    series = make_iiot(
        n_machines, n_steps, n_sensors, anomaly_rate=anomaly_rate, seed=seed, **generator_kw
    )
    cut = int(round(train_fraction * series.params["n_steps"]))
    if cut < window_length or series.params["n_steps"] - cut < window_length:
        raise ValueError(
            f"train ({cut} steps) and test ({series.params['n_steps'] - cut} steps) parts must "
            f"each hold at least one window of {window_length} steps"
        )
    parts: dict[str, list[list[np.ndarray]]] = {"train": [[], [], []], "test": [[], [], []]}
    for m in range(series.signals.shape[0]):
        sig = series.signals[m].astype(np.float64)
        mu = sig[:cut].mean(axis=0)
        sd = sig[:cut].std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)  # a constant sensor stays 0 after centring
        z = (sig - mu) / sd
        for split, lo, hi in (("train", 0, cut), ("test", cut, sig.shape[0])):
            starts = lo + _window_starts(hi - lo, window_length, stride)
            idx = starts[:, None] + np.arange(window_length)[None, :]
            parts[split][0].append(z[idx])
            parts[split][1].append(series.labels[m][idx].max(axis=1))
            parts[split][2].append(np.full(len(starts), m, dtype=np.int64))
    arr = {k: [np.concatenate(v) for v in parts[k]] for k in parts}
    p = series.params
    return Dataset(
        X_train=arr["train"][0].astype(np.float32),
        y_train=arr["train"][1].astype(np.int64),
        X_test=arr["test"][0].astype(np.float32),
        y_test=arr["test"][1].astype(np.int64),
        task="anomaly",
        n_classes=2,
        input_shape=(window_length, p["n_sensors"]),
        groups_train=arr["train"][2],
        groups_test=arr["test"][2],
        name="iiot",
        description=(
            f"Synthetic IIoT: {p['n_machines']} machines x {p['n_steps']} steps x "
            f"{p['n_sensors']} sensors (degradation, daily seasonality, noise; spikes, drifts, "
            f"stuck sensors on {p['anomaly_rate']:.1%} of steps). Windows of {window_length} "
            f"steps, stride {stride}, standardised per machine with its training part; "
            f"first {train_fraction:.0%} of each machine's time is train. Label 1 = window "
            "contains an anomalous step."
        ),
        meta={"generator": p, "window_length": window_length, "stride": stride,
              "train_fraction": float(train_fraction), "n_events": len(series.events)},
    )  # fmt: skip
