"""The ``negprompt`` command line: thin sub-commands over the package API.

Each sub-command lives in a module of :data:`COMMANDS` (``negprompt/commands/<name>.py``) exposing
``register(subparsers)``, which adds its parser and sets ``func(args) -> int`` as the handler. The
commands that compute results are front-ends over one pipeline, `negprompt.experiments.run_experiment`.
"""

from __future__ import annotations

import argparse
import difflib
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
    "detect": "negprompt.commands.detect",
    "app": "negprompt.commands.app",
    "data": "negprompt.commands.data",
}
"""Sub-command name -> module, in the order ``negprompt --help`` lists them (every entry must load)."""

__all__ = ["COMMANDS", "UserError", "build_parser", "main", "suggest_option"]

# Parsing imports no torch: the command modules import the heavy packages inside their handlers, so
# ``negprompt --help``, ``negprompt COMMAND --help`` and every argument error answer at once
# (tests/commands/test_cli_startup.py checks it; benchmarks/bench_cli.py times it).


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


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a line is logged, not as it was when the handler was
    made: a caller that swaps stderr (a test's capture, a notebook) may close the earlier one."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the property decides
        pass


def configure_logging(verbose: bool = False) -> None:
    """Readable log lines from negprompt; dependencies only when verbose."""
    handler = _StderrHandler()
    handler.setFormatter(
        logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s")
    )
    if not verbose:
        handler.addFilter(_QuietDependencies())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("negprompt").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:  # the same warnings are logged once by negprompt itself
        warnings.filterwarnings("ignore", category=UserWarning)


def suggest_option(given: str, parser: argparse.ArgumentParser) -> str | None:
    """The option of ``parser`` closest to the mistyped ``given`` (``--epocs`` -> ``--epochs``), or None."""
    name = given.split("=", 1)[0]
    options = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return close[0] if close else None


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; an unknown option is an error of its sub-command (its usage is shown)
    naming the closest valid option."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        owner = _subparser(parser, getattr(args, "command", None))
        unknown = [e for e in extra if e.startswith("-")]
        message = f"unrecognized arguments: {' '.join(extra)}"
        hints = [(u, suggest_option(u, owner)) for u in unknown]
        hints = [f"{u.split('=', 1)[0]}: did you mean {h}?" for u, h in hints if h]
        owner.error(message + ("\n" + "\n".join(hints) if hints else ""))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    configure_logging(args.verbose)
    if not getattr(args, "func", None):
        build_parser().print_help()
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
