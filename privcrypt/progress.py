"""One progress-bar helper for long work (benchmarks, training, FL rounds).

Uses tqdm when it is installed and the output is a terminal; otherwise it is a silent
pass-through, so library code can always wrap its loops in :func:`progress` and scripts
that pipe ``--json`` output never see bar noise on stdout (bars go to stderr).
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

__all__ = ["progress"]


def _enabled(disable: bool | None) -> bool:
    if disable is not None:
        return not disable
    if os.environ.get("PRIVCRYPT_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], *, desc: str = "", total: int | None = None,
             disable: bool | None = None) -> Iterator[T]:
    """Iterate ``iterable`` with a progress bar on stderr when interactive.

    ``disable=None`` (default) shows the bar only on a TTY and when the environment
    variable ``PRIVCRYPT_NO_PROGRESS`` is unset."""
    if _enabled(disable):
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is optional
            pass
        else:
            yield from tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False)
            return
    yield from iterable
