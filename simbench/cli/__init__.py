"""The ``simbench`` command line.

Each command group lives in its own module exposing ``register(subparsers)``; heavy imports
happen inside the handlers, so ``simbench --help`` and ``simbench measures`` start fast.
Errors a user can fix print as one message without a traceback, and the exit status is 2.

One style throughout: flags are kebab-case (``--max-steps``), measure parameters included (the
snake_case spelling ``--max_steps`` is accepted too); on/off settings are switches
(``--debiased`` / ``--no-debiased``, ``--no-progress``); every command that prints results
takes ``--json`` (JSON alone on stdout; notes on stderr); ``--csv DIR`` and ``--png DIR`` name
a directory the files are written into; ``--device`` is ``auto``, ``cpu``, ``cuda`` or
``cuda:N``. Old spellings that changed (``validate``, ``--debiased true``, ``--csv FILE.csv``
in ``validity``) keep working for one release with a note on stderr.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from importlib import import_module
from typing import Any, TextIO

from simbench.errors import CoverageWarning, PluginWarning, SimbenchError, TokenCodesWarning

COMMAND_MODULES = (
    "simbench.cli.core",
    "simbench.cli.tasks",
    "simbench.cli.zoo",
    "simbench.cli.bench",
    "simbench.calibration.cli",
)


def build_parser() -> argparse.ArgumentParser:
    from simbench.version import package_version

    parser = argparse.ArgumentParser(
        prog="simbench",
        description="Do two neural systems solve a task the same way? Score causal (MAS, "
        "CLMAS, DAS, stitching) and correlative (RSA, CKA) similarity measures.",
    )
    parser.add_argument("--version", action="version", version=f"simbench {package_version()}")
    parser.add_argument("--threads", type=int, metavar="N", dest="torch_threads",
                        help="torch CPU threads (default: torch's own count while the machine "
                        "is otherwise idle, fewer while other processes use the cores)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        from simbench.runtime import configure_threads

        # before any command loads torch; `zoo train --threads N` counts as the user's choice too
        threads = args.torch_threads
        configure_threads(threads if threads is not None else getattr(args, "threads", None))
        return int(args.handler(args, extra) or 0)
    except SimbenchError as exc:
        print(f"simbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `simbench measures | head`
        return 0


_ORIGINAL_SHOWWARNING = warnings.showwarning


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None, **_: Any) -> None:
    """Print a failed plugin as one clean line (no source path, no code echo); others as usual."""
    if issubclass(category, (PluginWarning, CoverageWarning, TokenCodesWarning)):
        text = " ".join(str(message).split())
        print(f"simbench: warning: {text}", file=file or sys.stderr)
        return
    _ORIGINAL_SHOWWARNING(message, category, filename, lineno, file, line)

