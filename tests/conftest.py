"""Shared test settings: one torch thread (two threads on two shared cores run slower),
a bounded hypothesis profile so the suite stays fast, and no progress bars."""

import os

from hypothesis import HealthCheck, settings

os.environ.setdefault("PRIVCRYPT_NO_PROGRESS", "1")

try:  # torch is optional for the core package
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

# Opacus installs an unrelated top-level package named ``benchmarks``; make sure tests that
# import ``benchmarks.harness`` or a bench script get this checkout's folder.
from reporting.bench_cli import ensure_benchmarks_package  # noqa: E402

ensure_benchmarks_package()

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
