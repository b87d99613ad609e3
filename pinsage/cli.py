"""The ``pinsage`` command line: ``pinsage train | embed | index | related | recommend | serve | evaluate | demo``.

Each sub-command lives in its own module under :mod:`pinsage.commands` and exposes
``add_parser(subparsers)`` which registers itself and sets ``func`` to a callable ``(args) -> int``.

Exit status: 0 done; 2 bad input (:class:`pinsage.InputError`: one line naming the file, column, row or
setting); 1 an unexpected internal error (one line; ``pinsage --debug COMMAND ...`` shows the
traceback); 130 interrupted (Ctrl-C), with nothing half-written left behind.

Output: a command's results (tables, JSON) go to stdout; progress and status messages go through
:mod:`logging` (the ``pinsage`` logger and its children ``pinsage.<module>``) to stderr. This module is
the only place that configures logging, for the length of one :func:`main` call: INFO and above by
default, ``-q/--quiet`` warnings and errors only (and no progress bars), ``-v/--verbose`` debug
messages too, ``--log-level LEVEL`` any level. Library code only creates loggers; used as a library,
pinsage prints nothing below WARNING unless the application configures logging.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from contextlib import contextmanager
from typing import Iterator

from pinsage._io import InputError
from pinsage._version import __version__

__all__ = ["main", "build_parser", "cli_logging", "log_level_of", "COMMAND_MODULES", "LOG_LEVELS"]

#: sub-command modules under pinsage.commands, in the order ``--help`` lists them
COMMAND_MODULES = ["train", "embed", "index", "related", "recommend", "serve", "evaluate", "demo"]
#: the values of ``--log-level``
LOG_LEVELS = ("debug", "info", "warning", "error")

log = logging.getLogger("pinsage.cli")  # not __name__: that is "__main__" under python -m pinsage.cli


class _CurrentStderr(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a record arrives (not the stream of the
    moment it was made), so that redirections made after :func:`main` started are followed."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass


class _CommandFormatter(logging.Formatter):
    """``pinsage COMMAND: [warning: |error: ]message``, the layout of the command line's messages.

    A record's ``label`` attribute (``extra={"label": "internal error"}``) replaces the level word
    (``""``: none); with ``verbose`` the logger's name follows the prefix.
    """

    _WORDS = {logging.DEBUG: "debug", logging.WARNING: "warning", logging.ERROR: "error", logging.CRITICAL: "error"}

    def __init__(self, command: str | None, verbose: bool = False) -> None:
        super().__init__()
        self.prefix = f"pinsage {command}: " if command else "pinsage: "
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        label = getattr(record, "label", None)
        if label is None:
            label = self._WORDS.get(record.levelno, "")
        text = self.prefix + (f"[{record.name}] " if self.verbose else "") + (f"{label}: " if label else "")
        text += record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


@contextmanager
def cli_logging(level: int = logging.INFO, command: str | None = None) -> Iterator[logging.Handler]:
    """Send the ``pinsage`` logger's records of ``level`` and above to stderr, formatted as the command
    line's messages, until the block ends (then the logger is as it was).

    Args:
        level: the lowest level shown (``logging.INFO`` by default).
        command: the sub-command, for the ``pinsage COMMAND:`` prefix.

    Yields:
        the handler (records also propagate to the root logger's handlers, if any).
    """
    logger = logging.getLogger("pinsage")
    handler = _CurrentStderr()
    handler.setFormatter(_CommandFormatter(command, verbose=level <= logging.DEBUG))
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)


def log_level_of(args: argparse.Namespace) -> int:
    """The logging level that ``--log-level``, ``-v/--verbose`` and ``-q/--quiet`` ask for (INFO by default)."""
    chosen = getattr(args, "pinsage_log_level", None)
    if chosen:
        return getattr(logging, chosen.upper())
    if getattr(args, "verbose", False):
        return logging.DEBUG
    if getattr(args, "quiet", False):
        return logging.WARNING
    return logging.INFO


def _add_output_switches(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """``-v/--verbose`` and ``-q/--quiet``, on the main parser and (defaults suppressed, so that the
    main parser's value stands when a sub-command does not repeat them) on every sub-command."""
    default = argparse.SUPPRESS if suppress else False
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="also show debug messages (each named by its logger)")
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="show warnings and errors only, and no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The ``pinsage`` argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="pinsage",
        description="PinSage item embeddings: train on an interaction log, embed, index, query related items, "
                    "recommend for histories and serve them over HTTP.",
        epilog="Results go to stdout (or --output FILE); messages go to stderr. "
               "A file option given as - reads standard input.",
    )
    parser.add_argument("--version", action="version", version=f"pinsage {__version__}",
                        help="print the version (pinsage X.Y.Z) and exit")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an unexpected error (exit status 1)")
    _add_output_switches(parser, suppress=False)
    parser.add_argument("--log-level", dest="pinsage_log_level", choices=LOG_LEVELS, default=None, metavar="LEVEL",
                        help=f"lowest level of the messages shown on stderr: {', '.join(LOG_LEVELS)} (default info; "
                             "overrides -v and -q)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"pinsage.commands.{name}").add_parser(sub)
    for name in COMMAND_MODULES:
        _add_output_switches(sub.choices[name], suppress=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = ["pinsage", *argv]  # what run.json records as the command line
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if args.verbose and args.quiet:
        parser.error("-v/--verbose and -q/--quiet contradict each other; give one (or --log-level LEVEL)")
    with cli_logging(log_level_of(args), args.command):
        try:
            return int(args.func(args) or 0)
        except InputError as exc:
            log.error("%s", exc)
            return 2
        except KeyboardInterrupt:
            log.error("interrupted; nothing half-written was left behind", extra={"label": ""})
            return 130
        except Exception as exc:  # an unexpected error: one line, the traceback on request
            if args.debug:
                raise
            first = str(exc).splitlines()[0] if str(exc) else ""
            log.error("%s: %s (run `pinsage --debug %s ...` for the traceback)", type(exc).__name__, first,
                      args.command, extra={"label": "internal error"})
            return 1


if __name__ == "__main__":
    sys.exit(main())
