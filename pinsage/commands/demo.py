"""``pinsage demo``: the pin-board demo (planted topics; PinSage against co-occurrence baselines).

Generates a synthetic pin-board graph, trains PinSage on it, prints related pins for a few queries
and a table of the share of top-10 related pins from the query's topic per method. ``--quick`` runs
a smaller graph with shorter training (about 20 s); ``--json FILE`` also writes the measurements.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="pin-board demo: related pins come from the query's topic",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small graph, short training (about 20 s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator and the training")
    p.add_argument("--topics", type=int, default=None, help="planted topics (default 20; 10 with --quick)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the measurements as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pinsage._io import InputError, atomic_path
    from pinsage.demo import run_demo

    if args.topics is not None and args.topics < 2:
        raise InputError(f"--topics must be at least 2, got {args.topics}")
    if args.json and Path(args.json).is_dir():
        raise InputError(f"--json {args.json}: is a directory")
    result = run_demo(n_topics=args.topics, seed=args.seed, quick=args.quick,
                      progress=not args.quiet and sys.stderr.isatty())
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=2, default=str))
        log.info("wrote %s", args.json)
    return 0
