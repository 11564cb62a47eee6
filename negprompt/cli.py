"""The ``negprompt`` command line: thin sub-commands over the package API.

Each sub-command lives in a module of :data:`COMMANDS` (``negprompt/commands/<name>.py``) exposing
``register(subparsers)``, which adds its parser and sets ``func(args) -> int`` as the handler. The
commands that compute results are front-ends over one pipeline, `negprompt.experiments.run_experiment`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from negprompt.commands.common import UserError

COMMANDS: dict[str, str] = {
    "demo": "negprompt.commands.demo",
    "zeroshot": "negprompt.commands.zeroshot",
    "train": "negprompt.commands.train",
    "run": "negprompt.commands.run",
    "app": "negprompt.commands.app",
    "data": "negprompt.commands.data",
}
"""Sub-command name -> module, in the order ``negprompt --help`` lists them (every entry must load)."""

__all__ = ["COMMANDS", "UserError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from negprompt import __version__

    parser = argparse.ArgumentParser(
        prog="negprompt",
        description="Out-of-distribution detection with learned negative prompts on frozen CLIP models.",
    )
    parser.add_argument("--version", action="version", version=f"negprompt {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(module).register(sub)
    return parser


class _QuietDependencies(logging.Filter):
    """Hide the chatter of dependencies that log to the root logger (open_clip) below ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "open_clip" not in record.pathname


def configure_logging(verbose: bool = False) -> None:
    """Readable log lines from negprompt; dependencies only when verbose."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s")
    )
    if not verbose:
        handler.addFilter(_QuietDependencies())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("negprompt").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:  # the same warnings are logged once by negprompt itself
        warnings.filterwarnings("ignore", category=UserWarning)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError) as exc:
        print(f"negprompt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # permissions, read-only or full disk, symlink loops, missing files …
        from negprompt.io import os_error_message

        print(f"negprompt {args.command}: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # a command that can resume says how, in the exception's text
        print(str(exc) or "interrupted", flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
