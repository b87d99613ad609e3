"""The ``pinsage`` command line: ``pinsage train | embed | index | related | recommend | serve | evaluate | demo``.

Each sub-command lives in its own module under :mod:`pinsage.commands` and exposes
``add_parser(subparsers)`` which registers itself and sets ``func`` to a callable ``(args) -> int``.

Exit status: 0 done; 2 bad input (:class:`pinsage.InputError`: one line naming the file, column, row or
setting); 1 an unexpected internal error (one line; ``pinsage --debug COMMAND ...`` shows the
traceback); 130 interrupted (Ctrl-C), with nothing half-written left behind.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from pinsage._io import InputError

#: sub-command modules under pinsage.commands, in the order ``--help`` lists them
COMMAND_MODULES = ["train", "embed", "index", "related", "recommend", "serve", "evaluate", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pinsage",
        description="PinSage item embeddings: train on an interaction log, embed, index, query related items, "
                    "recommend for histories and serve them over HTTP.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an unexpected error (exit status 1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"pinsage.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"pinsage {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pinsage {args.command}: interrupted; nothing half-written was left behind", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected error: one line, the traceback on request
        if args.debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"pinsage {args.command}: internal error: {type(exc).__name__}: {first} "
              f"(run `pinsage --debug {args.command} ...` for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
