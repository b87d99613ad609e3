"""The walk kernel of another checkout against this one, in one process, window by window (their order
alternating): the seeds/s ratio of uniform walks, so a kernel change is judged side by side.

    git worktree add /tmp/before <commit>
    python benchmarks/kernel_ab.py --before /tmp/before --sizes L

Both kernels run single-threaded on the same graph and the same seeds (batches of 512, walk length 3,
restart 0.5) at (walks, T) = (10, 3) and (200, 50). A checkout whose kernel predates weighted walks (no
``item_alias`` parameter) is called without the weight arguments.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from pinsage.datasets.synthetic import SIZES, powerlaw_bipartite
from pinsage.graph import InteractionGraph
from pinsage.sampling import _kernels as current


def load_kernels(checkout: Path):
    path = checkout / "pinsage" / "sampling" / "_kernels.py"
    if not path.is_file():
        raise SystemExit(f"--before {checkout}: no pinsage/sampling/_kernels.py there")
    spec = importlib.util.spec_from_file_location("kernels_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def uniform_args(fn) -> tuple:
    """The weight arguments a kernel takes for uniform walks (none before weighted walks existed)."""
    return (None, None, None) if "item_alias" in inspect.signature(fn.py_func).parameters else ()


def seeds_per_second(fn, graph, walks: int, T: int, seconds: float, rng, batch: int = 512) -> float:
    extra = uniform_args(fn)
    n, key, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        seeds = rng.integers(0, graph.num_items, batch)
        nbr = np.full((batch, T), -1, np.int64)
        cnt = np.zeros((batch, T), np.int32)
        nout = np.zeros(batch, np.int64)
        fn(seeds, graph.item_indptr, graph.item_groups, graph.group_indptr, graph.group_items, *extra,
           walks, 3, 0.5, key, np.arange(batch, dtype=np.int64), nbr, cnt, nout, 0, batch)
        n += batch
        key += 1
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="a checkout (e.g. a git worktree) holding the kernel to compare")
    p.add_argument("--sizes", nargs="+", default=["S"], choices=sorted(SIZES))
    p.add_argument("--seconds", type=float, default=3.0, help="length of one timing window")
    p.add_argument("--repeats", type=int, default=6, help="window pairs per configuration (median reported)")
    p.add_argument("--out", default="bench_out/kernel_ab.json")
    args = p.parse_args(argv)
    before = load_kernels(Path(args.before))
    rows = []
    for size in args.sizes:
        n_items, n_users, n_draws = SIZES[size]
        users, items = powerlaw_bipartite(n_items, n_users, n_draws)
        graph = InteractionGraph.from_edges(users, items, num_groups=n_users, num_items=n_items)
        del users, items
        rng = np.random.default_rng(1)
        for walks, T in [(10, 3), (200, 50)]:
            for fn in (before.walk_topk_range, current.walk_topk_range):  # compile and warm
                seeds_per_second(fn, graph, walks, T, 0.5, rng)
            old, new = [], []
            for k in range(args.repeats):
                pair = [(before.walk_topk_range, old), (current.walk_topk_range, new)]
                for fn, out in (pair if k % 2 == 0 else pair[::-1]):
                    out.append(seeds_per_second(fn, graph, walks, T, args.seconds, rng))
            ratios = [b / a for a, b in zip(old, new)]
            row = {"graph": size, "walks": walks, "T": T, "before_seeds_per_s": statistics.median(old),
                   "now_seeds_per_s": statistics.median(new), "now_over_before": statistics.median(ratios),
                   "windows": ratios}
            rows.append(row)
            print(f"{size} walks={walks} T={T}: before {row['before_seeds_per_s']:,.0f}, now {row['now_seeds_per_s']:,.0f} "
                  f"seeds/s (one thread); now / before median {row['now_over_before']:.2f}x "
                  f"(windows {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"before": str(Path(args.before).resolve()), "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
