"""Time-restricted sampler benchmark (issue 15): seeds per second of time-respecting neighbourhoods
(``ImportanceSampler(...)(seeds, before=t)``) beside unrestricted ones, on DESIGN.md's power-law graphs with
a uniformly random integer time in ``[0, 10**6)`` on every edge.

Three samplers run window by window on the same graph and random seeds (batches of 512, 3-hop walks,
restart 0.5, at (walks=10, T=3) and (walks=200, T=50)):

* ``unrestricted``: the plain sampler;
* ``bound = newest``: every seed's bound above the newest edge, so the walks take the same steps as the plain
  ones and the ratio is the cost of the time index alone (two binary searches per hop);
* ``bound = random``: each seed's bound uniform in ``[0, 10**6)`` (a pair at a random time: on average half the
  edges are older).

Ratios are per window (restricted / the unrestricted window just before), medians reported. The build time and
bytes per edge of the time index are printed.

    python benchmarks/time_sampler.py --sizes L
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from pinsage.datasets.synthetic import SIZES, powerlaw_bipartite
from pinsage.graph import InteractionGraph
from pinsage.sampling import ImportanceSampler

CONFIGS = [(10, 3), (200, 50)]
TIME_RANGE = 1_000_000
BATCH = 512
POOL_BATCHES = 4096


def seeds_per_second(sampler: ImportanceSampler, n_items: int, seconds: float, bound: str | None) -> float:
    """Seeds per second over batches drawn before the clock starts: the same seeds and bounds for every
    kind, so drawing them costs no kind anything, and enough of them (2M seeds) that a window rarely
    repeats a seed, as fresh random seeds would not (a small pool cycled keeps its rows in cache)."""
    rng = np.random.default_rng(1)
    pool = [(rng.integers(0, n_items, BATCH), rng.integers(0, TIME_RANGE, BATCH)) for _ in range(POOL_BATCHES)]

    def call(k: int) -> None:
        seeds, random_bounds = pool[k % len(pool)]
        before = {"newest": TIME_RANGE, "random": random_bounds}.get(bound)
        sampler.sample_arrays(seeds, before=before)

    call(0)  # compile / warm caches
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call(n // BATCH)
        n += BATCH
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["S"], choices=sorted(SIZES))
    p.add_argument("--seconds", type=float, default=2.0, help="length of one timing window")
    p.add_argument("--repeats", type=int, default=5, help="timing windows per figure (median reported)")
    p.add_argument("--threads", type=int, default=None, help="sampler threads (default: all cores)")
    p.add_argument("--out", default="bench_out/time_sampler.json")
    args = p.parse_args(argv)

    rows = []
    for size in args.sizes:
        n_items, n_users, n_draws = SIZES[size]
        users, items = powerlaw_bipartite(n_items, n_users, n_draws)
        times = np.random.default_rng(3).integers(0, TIME_RANGE, len(users))
        graph = InteractionGraph.from_edges(users, items, num_groups=n_users, num_items=n_items, time=times)
        del users, items, times
        for walks, T in CONFIGS:
            sampler = ImportanceSampler(graph, num_walks=walks, walk_length=3, restart_prob=0.5,
                                        num_neighbors=T, num_threads=args.threads)
            t0 = time.perf_counter()
            sampler._time_index()
            index_s = time.perf_counter() - t0
            runs: dict[str, list[float]] = {"unrestricted": [], "newest": [], "random": []}
            for _ in range(args.repeats):  # interleaved, window by window
                for kind in runs:
                    runs[kind].append(seeds_per_second(sampler, n_items, args.seconds,
                                                       None if kind == "unrestricted" else kind))
            row = {"graph": size, "edges": graph.num_edges, "walks": walks, "T": T,
                   "index_build_s": index_s, "index_bytes_per_edge": sampler.time_index.nbytes / graph.num_edges,
                   "runs": runs, **{f"{k}_seeds_per_s": statistics.median(v) for k, v in runs.items()}}
            for kind in ("newest", "random"):
                row[f"{kind}_over_unrestricted"] = statistics.median(
                    [r / u for r, u in zip(runs[kind], runs["unrestricted"])])
            rows.append(row)
            print(f"graph {size} walks={walks} T={T}: unrestricted {row['unrestricted_seeds_per_s']:,.0f}, "
                  f"bound=newest {row['newest_seeds_per_s']:,.0f} ({row['newest_over_unrestricted']:.2f}x), "
                  f"bound=random {row['random_seeds_per_s']:,.0f} ({row['random_over_unrestricted']:.2f}x) seeds/s; "
                  f"index {row['index_bytes_per_edge']:.0f} B/edge built in {index_s:.1f} s", flush=True)
        del graph

    print("\n| graph | walks | T | unrestricted seeds/s | bound = newest | ratio | bound = random | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['graph']} | {r['walks']} | {r['T']} | {r['unrestricted_seeds_per_s']:,.0f} "
              f"| {r['newest_seeds_per_s']:,.0f} | {r['newest_over_unrestricted']:.2f}x "
              f"| {r['random_seeds_per_s']:,.0f} | {r['random_over_unrestricted']:.2f}x |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                               "batch": BATCH, "walk_length": 3, "restart_prob": 0.5, "rows": rows}, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
