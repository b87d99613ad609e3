"""The pin-board demo as a script: ``python examples/pinboard_demo.py [--quick] [--seed N]``.

Same as ``pinsage demo``; see :mod:`pinsage.demo` for what it does.
"""
import argparse

from pinsage.demo import run_demo

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small graph, short training (about 20 s)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    run_demo(seed=args.seed, quick=args.quick)
