"""The ``privcrypt`` command line.

Each capability registers its subcommand through a provider module with an
``add_parser(subparsers)`` function that creates the subcommand's parser and sets
``func(args) -> dict | None`` as its default. A command that reports numbers returns a
dict; with ``--json`` it is printed as one JSON object, otherwise as readable lines.

Start-up stays fast: ``privcrypt --help`` lists the subcommands from :data:`SUMMARIES`
without importing any provider, and ``privcrypt CMD ...`` imports only CMD's provider.
A provider whose module is absent is not listed; one whose optional dependency is missing
fails, when used, with one line naming the extra to install.

Errors: a user never sees a traceback. Bad input (``PrivcryptError``, ``ValueError``,
``TypeError``, ``OSError``) ends in one line ``privcrypt CMD: error: ...`` and exit code 2,
argparse usage errors also exit 2, anything unexpected in one line and exit code 1
(``PRIVCRYPT_DEBUG=1`` re-raises it with its traceback), Ctrl-C in one line and exit 130.

JSON output is strict (RFC 8259, ``allow_nan=False``): a non-finite number is written as
``null`` and its location is listed in the top-level ``"nonfinite"`` object, which maps the
dotted path of each such value (``"psnr"``, ``"rows.3.epsilon"``) to ``"inf"``, ``"-inf"``
or ``"nan"``. The key is absent when every number is finite. While a ``--json`` command
runs, file descriptor 1 points at stderr (:func:`stdout_to_stderr`): C++ warnings from
TenSEAL/SEAL never reach stdout, which carries only the one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from privcrypt import __version__
from privcrypt.exceptions import PrivcryptError

# (subcommand, provider module, extra that provides its dependencies)
PROVIDERS: list[tuple[str, str, str]] = [
    ("dp", "privcrypt.dp.cli", ""),
    ("image", "imaging.cli", "imaging"),
    ("fl", "fl.cli", "fl"),
    ("bench", "reporting.bench_cli", ""),
    ("demo", "reporting.demo", ""),
]

#: One-line help of each subcommand, shown by ``privcrypt --help`` without importing it.
SUMMARIES: dict[str, str] = {
    "dp": "differential privacy: epsilon of a run, noise for a target",
    "image": "FLEP image protection: keygen, encrypt, decrypt, metrics, train-denoiser",
    "fl": "federated learning: train across clients (simulated, or on Flower with --engine flower)",
    "bench": "run a benchmark against its peer (writes files only with --write or --out)",
    "demo": "run a quick version of every benchmark and write a report",
}

#: Exceptions that mean "bad input or environment": one line, exit code 2.
USER_ERRORS = (PrivcryptError, ValueError, TypeError, OSError, LookupError)


# -- strict JSON -----------------------------------------------------------------------------
def to_jsonable(obj: Any, nonfinite: dict[str, str] | None = None, path: str = "") -> Any:
    """``obj`` as plain JSON types: numpy scalars and arrays become numbers and lists, sets
    sorted lists, paths strings; a non-finite float becomes ``None`` and, when
    ``nonfinite`` is given, ``nonfinite[path] = "inf" | "-inf" | "nan"``."""
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.ndarray):
            obj = obj.tolist()
        elif isinstance(obj, np.generic):
            obj = obj.item()
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        if nonfinite is not None:
            nonfinite[path or "."] = "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
        return None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, nonfinite, f"{path}.{k}" if path else str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [to_jsonable(v, nonfinite, f"{path}.{i}" if path else str(i)) for i, v in enumerate(items)]
    if isinstance(obj, complex):
        raise TypeError("complex numbers have no JSON encoding")
    return str(obj)


def dumps_strict(obj: Any, **kw) -> str:
    """One strict JSON text (see the module docstring for how non-finite numbers are
    written). A dict gets the ``"nonfinite"`` key when it held any."""
    nonfinite: dict[str, str] = {}
    data = to_jsonable(obj, nonfinite)
    if nonfinite and isinstance(data, dict):
        data["nonfinite"] = nonfinite
    return json.dumps(data, allow_nan=False, **kw)


def emit(result: dict | None, as_json: bool) -> None:
    """Print a command's result: one JSON object with ``--json``, else ``key: value`` lines."""
    if result is None:
        return
    if as_json:
        print(dumps_strict(result))
        return
    for key, value in result.items():
        if isinstance(value, (dict, list)):
            value = dumps_strict(value)
        print(f"{key}: {value}")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """The ``--json`` convention: every subcommand that reports numbers takes it."""
    parser.add_argument("--json", action="store_true", help="print one strict JSON object on stdout")


@contextlib.contextmanager
def stdout_to_stderr():
    """Send file descriptor 1 (and ``sys.stdout``) to stderr inside the block, restoring it
    after. C++ libraries (TenSEAL/SEAL) print warnings straight to fd 1; every ``--json``
    command runs inside this block so that stdout carries only its one JSON object."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# -- parser ----------------------------------------------------------------------------------
class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default after its help, unless the default is None/False or
    the help already names it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and "default" not in text
            and default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def _provider_present(module: str) -> bool:
    """Whether ``module`` exists, found without importing it (nor its package)."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if not rest:
        return True
    for loc in spec.submodule_search_locations or []:
        p = Path(loc, *rest)
        if p.with_suffix(".py").is_file() or (p / "__init__.py").is_file():
            return True
    return False


class ProviderUnavailable(Exception):
    """A provider's optional dependency is missing."""


def _load_provider(name: str, module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module or module.startswith(exc.name + ".")):
            raise ProviderUnavailable(f"'{name}' is not part of this installation") from None
        raise ProviderUnavailable(
            f"'{name}' needs {exc.name}: pip install 'privcrypt[{extra or 'all'}]'") from None


def _finish_tree(parser: argparse.ArgumentParser) -> None:
    """Every (sub)parser shows defaults, and every group of subcommands is required (a
    bare ``privcrypt dp`` prints its usage and exits 2)."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:  # argparse keeps no public accessor for these
        if isinstance(action, argparse._SubParsersAction):
            action.required = True
            for child in set(action.choices.values()):
                _finish_tree(child)


def build_parser(only: str | None = None, *, full: bool = True) -> argparse.ArgumentParser:
    """The argument parser. ``full=True`` imports every provider (for tests and docs);
    otherwise only the provider of subcommand ``only`` is imported and the others are
    listed from :data:`SUMMARIES`."""
    parser = argparse.ArgumentParser(
        prog="privcrypt",
        description="Cryptography-first privacy toolkit for industrial federated learning.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"privcrypt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module, extra in PROVIDERS:
        if not _provider_present(module):
            continue
        if full or name == only:
            try:
                mod = _load_provider(name, module, extra)
            except ProviderUnavailable as exc:
                if not full:
                    raise
                sub.add_parser(name, help=f"(unavailable: {exc})", add_help=False)
                continue
            mod.add_parser(sub)
            if name not in sub.choices:  # e.g. bench without a source checkout
                continue
        else:
            sub.add_parser(name, help=SUMMARIES.get(name, ""), add_help=False)
    _finish_tree(parser)
    return parser


def _command_of(argv: list[str]) -> str | None:
    for a in argv:
        if not a.startswith("-"):
            return a
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _label(args) -> str:
    """``privcrypt CMD [ACTION]`` for error lines."""
    words = ["privcrypt", str(args.command)]
    for dest in ("dp_command", "image_command", "bench", "fl_command"):
        value = getattr(args, dest, None)
        if isinstance(value, str):
            words.append(value)
    return " ".join(words)


def _run(argv: list[str]) -> int:
    cmd = _command_of(argv)
    known = {name for name, _, _ in PROVIDERS}
    try:
        parser = build_parser(cmd if cmd in known else None, full=False)
    except ProviderUnavailable as exc:
        print(f"privcrypt: error: {exc}", file=sys.stderr)
        return 2
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:  # a group whose provider did not set one
        parser.print_usage(sys.stderr)
        return 2
    try:
        if getattr(args, "json", False):
            with stdout_to_stderr():
                result = func(args)
        else:
            result = func(args)
    except USER_ERRORS as exc:
        print(f"{_label(args)}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    emit(result, getattr(args, "json", False))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 unexpected failure, 2 bad
    usage or input, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _run(argv)
    except KeyboardInterrupt:
        print("privcrypt: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except BrokenPipeError:  # the reader went away (e.g. `| head`): nothing more to say
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the exit flush
        except OSError:
            pass
        return 1
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into one line
        if os.environ.get("PRIVCRYPT_DEBUG"):
            raise
        print(f"privcrypt: unexpected error: {type(exc).__name__}: {_one_line(exc)} "
              "(set PRIVCRYPT_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
