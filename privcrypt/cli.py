"""The ``privcrypt`` command line.

Each capability registers its subcommand through a provider module with an
``add_parser(subparsers)`` function that creates the subcommand's parser and sets
``func(args) -> dict | None`` as its default. A command that reports numbers returns a
dict; with ``--json`` it is printed as one JSON object, otherwise as readable lines.

Only subcommands that work are listed: a provider whose module is absent is left out,
and one whose optional dependency is missing is named in the help epilog with the extra to
install.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

import numpy as np

from privcrypt import __version__
from privcrypt.exceptions import PrivcryptError

# (subcommand, provider module, extra that provides its dependencies)
PROVIDERS: list[tuple[str, str, str]] = [
    ("dp", "privcrypt.dp.cli", ""),
    ("image", "imaging.cli", "imaging"),
    ("fl", "fl.cli", "fl"),
    ("bench", "privcrypt.bench_cli", ""),
    ("demo", "privcrypt.demo", ""),
]


def _json_default(obj: Any):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    return str(obj)


def emit(result: dict | None, as_json: bool) -> None:
    """Print a command's result: one JSON object with ``--json``, else ``key: value`` lines."""
    if result is None:
        return
    if as_json:
        print(json.dumps(result, default=_json_default, indent=None))
        return
    for key, value in result.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value, default=_json_default)
        print(f"{key}: {value}")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """The ``--json`` convention: every subcommand that reports numbers takes it."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privcrypt",
        description="Cryptography-first privacy toolkit for industrial federated learning.",
    )
    parser.add_argument("--version", action="version", version=f"privcrypt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    unavailable = []
    for name, module, extra in PROVIDERS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # The provider itself is not built yet: not listed. A missing third-party
            # dependency is reported with the extra that installs it.
            if exc.name and (exc.name == module or module.startswith(exc.name + ".")):
                continue
            unavailable.append(f"{name} (needs {exc.name}: pip install 'privcrypt[{extra or 'all'}]')")
            continue
        mod.add_parser(sub)
    if unavailable:
        parser.epilog = "unavailable here: " + "; ".join(unavailable)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        result = args.func(args)
    except (PrivcryptError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"privcrypt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    emit(result, getattr(args, "json", False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
