"""The Flower run configuration: FLConfig's keys plus the deployment keys, in one flat
TOML-friendly dict (``[tool.flwr.app.config]`` of the app's pyproject.toml, or
``flwr run --run-config``), and the scenario both apps rebuild from it.

FLConfig keys keep their names (``rounds``, ``backend``, ``clip_norm``, ...); tables are
flattened by Flower, so ``backend_params.rounding = "nearest"`` is FLConfig's
``backend_params = {"rounding": "nearest"}``. ``None`` values are left out (TOML has no
null). Deployment keys (:data:`DEPLOY_DEFAULTS`): ``dataset``, ``partition`` (``""``: ``unit``
for data sets with groups, else ``iid``), ``alpha``,
``model`` (``""``: the data set's default), ``num_clients`` (SuperNodes the ServerApp waits
for), ``node_wait`` (seconds to wait for them), ``stage_timeout`` (seconds per message
stage), ``poll_interval``, ``result_file`` (History JSON written by the ServerApp; ``""``:
none), ``record_vectors`` (write each round's global vector and aggregate into it, for
tests), ``hold_after`` / ``hold_dir`` (fault injection: after stage ``"R.stage"`` the
ServerApp writes ``hold_dir/held`` and waits up to ``node_wait`` s for
``hold_dir/release``); ``ckks_server_context`` (ckks: path of the provisioned public
context on the SuperLink's machine); ``enrolment_file`` (authenticated masking: path of the
enrolment, every client's Ed25519 public key, on the SuperLink's machine).
"""

from __future__ import annotations

from fl.config import FLConfig

__all__ = ["DEPLOY_DEFAULTS", "to_run_config", "from_run_config", "Scenario"]

DEPLOY_DEFAULTS = {
    "dataset": "digits", "partition": "", "alpha": 0.5, "model": "", "num_clients": 3,
    "node_wait": 120.0, "stage_timeout": 120.0, "poll_interval": 0.1, "result_file": "",
    "record_vectors": False, "hold_after": "", "hold_dir": "", "ckks_server_context": "",
    "enrolment_file": "",
}
import dataclasses as _dc

#: FLConfig's table fields (dicts), flattened as ``name.key`` in the run config
_NESTED = tuple(f.name for f in _dc.fields(FLConfig)
                if f.default_factory is dict or f.type in (dict, "dict"))


def to_run_config(cfg: FLConfig, **deploy) -> dict:
    """Flat run config for ``cfg`` and deployment keys (unknown deployment keys raise
    ``ValueError``)."""
    unknown = set(deploy) - set(DEPLOY_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown deployment keys: {sorted(unknown)}")
    out = {}
    for k, v in cfg.to_dict().items():
        if v is None:
            continue
        if k in _NESTED:
            for kk, vv in v.items():
                if vv is not None:
                    out[f"{k}.{kk}"] = vv
            continue
        out[k] = v
    out.update({**DEPLOY_DEFAULTS, **deploy})
    return out


def from_run_config(rc) -> tuple[FLConfig, dict]:
    """``(FLConfig, deployment dict)`` from a flat run config (Flower's
    ``context.run_config``). Unknown keys raise ``ValueError``."""
    data: dict = {}
    deploy = dict(DEPLOY_DEFAULTS)
    for k, v in dict(rc).items():
        head, _, tail = k.partition(".")
        if tail and head in _NESTED:
            data.setdefault(head, {})[tail] = v
        elif k in DEPLOY_DEFAULTS:
            deploy[k] = v
        else:
            data[k] = v
    return FLConfig.from_dict(data), deploy


class Scenario:
    """The data set, this party's data and the model, rebuilt identically by the ServerApp
    (test set, model), each ClientApp (its partition) and the in-process comparison.
    Imports torch and loads data lazily."""

    def __init__(self, cfg: FLConfig, deploy: dict):
        self.cfg, self.deploy = cfg, deploy
        self._ds = None

    @property
    def dataset(self):
        if self._ds is None:
            from fl.data import load_dataset
            self._ds = load_dataset(self.deploy["dataset"], seed=self.cfg.seed)
        return self._ds

    def _scheme(self):
        ds = self.dataset
        p = self.deploy["partition"]
        return p or ("unit" if ds.groups_train is not None else "iid")

    def clients(self, n_clients: int):
        """All ``n_clients`` partitions, in the scale the model trains on."""
        from fl.cli import training_view
        from fl.data import split_clients
        ds = self.dataset
        parts = split_clients(ds, int(n_clients), scheme=self._scheme(), alpha=float(self.deploy["alpha"]),
                              seed=self.cfg.seed)
        return training_view(ds, parts)[0]

    def test_set(self):
        """``(test, target_scale)``."""
        from fl.cli import training_view
        _, test, scale = training_view(self.dataset, [])
        return test, scale

    def model_fn(self):
        from fl.models import default_model_fn
        ds = self.dataset
        return default_model_fn(ds.input_shape, ds.task, ds.n_classes, self.deploy["model"] or None)
