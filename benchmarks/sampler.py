"""Sampler benchmark (DESIGN.md, Benchmarks): neighbourhoods per second on the power-law graphs.

For each graph size: build time and bytes per edge of the InteractionGraph, then seeds per second
of :class:`pinsage.ImportanceSampler` for batches of 512 random seeds, 3-hop walks, restart 0.5, at
(walks=10, T=3) and (walks=200, T=50): the median over ``--repeats`` timing windows. When a DGL
anchor venv is given (``bash ../shared/bench/dgl_anchor/setup.sh``), DGL's ``PinSAGESampler`` runs
in the same invocation on the same graph, round by round (our window of each configuration, then one
DGL run of both), and the table shows the ratio of the medians; the per-round ratios are printed and
saved too (on a shared machine the load drifts: a round's two figures are closest in time).

With ``--weighted`` the graph carries a rating (1-5, uniform) on every edge and each timing window of
the uniform sampler is followed by one of the weighted sampler (``weighted=True``: steps in proportion
to the ratings) on the same graph and seeds, so the ratio weighted / uniform is measured side by side.

    python benchmarks/sampler.py --sizes S L --dgl-python /tmp/dgl-anchor/bin/python
    python benchmarks/sampler.py --sizes L --weighted
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pinsage.datasets.synthetic import SIZES, powerlaw_bipartite
from pinsage.graph import InteractionGraph
from pinsage.sampling import ImportanceSampler

CONFIGS = [(10, 3), (200, 50)]
DGL_SCRIPT = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "dgl_anchor" / "dgl_sampler.py"


def seeds_per_second(sampler: ImportanceSampler, n_items: int, seconds: float, batch: int = 512) -> float:
    rng = np.random.default_rng(1)
    sampler.sample_arrays(rng.integers(0, n_items, batch))  # compile / warm caches
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sampler.sample_arrays(rng.integers(0, n_items, batch))
        n += batch
    return n / (time.perf_counter() - start)


def run_dgl(python: str, size: str, seconds: float) -> dict[tuple[int, int], float]:
    out = subprocess.run([python, str(DGL_SCRIPT), size, str(seconds)], capture_output=True, text=True,
                         cwd=DGL_SCRIPT.parent, check=True).stdout
    found = re.findall(r"dgl walks=(\d+) T=(\d+): (\d+) seeds/s", out)
    return {(int(w), int(t)): float(v) for w, t, v in found}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["S"], choices=sorted(SIZES))
    p.add_argument("--seconds", type=float, default=4.0, help="length of one timing window")
    p.add_argument("--repeats", type=int, default=3, help="timing windows per figure (median reported)")
    p.add_argument("--threads", type=int, default=None, help="sampler threads (default: all cores)")
    p.add_argument("--dgl-python", default=None, help="python of a venv with DGL 2.1 (the anchor)")
    p.add_argument("--weighted", action="store_true",
                   help="also time weighted walks (ratings 1-5 on every edge), window by window beside the uniform ones")
    p.add_argument("--out", default="bench_out/sampler.json")
    args = p.parse_args(argv)

    rows = []
    for size in args.sizes:
        n_items, n_users, n_draws = SIZES[size]
        t0 = time.perf_counter()
        users, items = powerlaw_bipartite(n_items, n_users, n_draws)
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ratings = np.random.default_rng(2).integers(1, 6, len(users)).astype(np.float32) if args.weighted else None
        graph = InteractionGraph.from_edges(users, items, num_groups=n_users, num_items=n_items, weight=ratings)
        build_s = time.perf_counter() - t0
        del ratings
        del users, items
        print(f"graph {size}: {graph.num_items} items, {graph.num_groups} groups, {graph.num_edges} edges; "
              f"generated in {gen_s:.1f} s, built in {build_s:.1f} s, {graph.nbytes / graph.num_edges:.2f} B/edge",
              flush=True)
        bytes_per_edge = graph.nbytes / graph.num_edges
        samplers, w_samplers = {}, {}
        for walks, T in CONFIGS:
            samplers[(walks, T)] = ImportanceSampler(graph, num_walks=walks, walk_length=3, restart_prob=0.5,
                                                     num_neighbors=T, num_threads=args.threads)
            if args.weighted:
                t0 = time.perf_counter()
                w_samplers[(walks, T)] = ImportanceSampler(graph, num_walks=walks, walk_length=3, restart_prob=0.5,
                                                           num_neighbors=T, num_threads=args.threads, weighted=True)
                print(f"  walk weights: {w_samplers[(walks, T)].walk_weights.nbytes / graph.num_edges:.1f} B/edge, "
                      f"built in {time.perf_counter() - t0:.1f} s", flush=True)
        ours: dict[tuple[int, int], list[float]] = {c: [] for c in CONFIGS}
        weighted: dict[tuple[int, int], list[float]] = {c: [] for c in w_samplers}
        dgl_runs: dict[tuple[int, int], list[float]] = {c: [] for c in CONFIGS}
        for _ in range(args.repeats):
            # one round: each configuration's window (uniform, then weighted), then one DGL run of both
            # configurations, so that our windows and DGL's see about the same machine load
            for c in CONFIGS:
                ours[c].append(seeds_per_second(samplers[c], n_items, args.seconds))
                if c in w_samplers:
                    weighted[c].append(seeds_per_second(w_samplers[c], n_items, args.seconds))
            if args.dgl_python:
                for c, v in run_dgl(args.dgl_python, size, args.seconds).items():
                    dgl_runs[c].append(v)
        del samplers, w_samplers, graph
        for c in CONFIGS:
            runs = ours[c]
            print(f"  pinsage walks={c[0]} T={c[1]}: median {statistics.median(runs):,.0f} seeds/s "
                  f"(runs {', '.join(f'{r:,.0f}' for r in runs)})", flush=True)
            if weighted.get(c):
                w_runs = weighted[c]
                ratios = [w / u for w, u in zip(w_runs, runs)]
                print(f"  weighted walks={c[0]} T={c[1]}: median {statistics.median(w_runs):,.0f} seeds/s "
                      f"(runs {', '.join(f'{r:,.0f}' for r in w_runs)}); weighted / uniform median "
                      f"{statistics.median(ratios):.2f}x (windows {', '.join(f'{r:.2f}' for r in ratios)})",
                      flush=True)
        dgl = {c: statistics.median(v) for c, v in dgl_runs.items() if v}
        dgl_round_ratios = {c: [o / d for o, d in zip(ours[c], v)] for c, v in dgl_runs.items() if v}
        for c, v in dgl.items():
            print(f"  dgl     walks={c[0]} T={c[1]}: median {v:,.0f} seeds/s (runs {dgl_runs[c]}); pinsage / dgl "
                  f"per round {', '.join(f'{r:.1f}' for r in dgl_round_ratios[c])}", flush=True)
        for c in CONFIGS:
            med = statistics.median(ours[c])
            rows.append({
                "graph": size, "edges": int(n_draws), "walks": c[0], "T": c[1],
                "pinsage_seeds_per_s": med, "pinsage_runs": ours[c],
                "dgl_seeds_per_s": dgl.get(c), "ratio_vs_dgl": med / dgl[c] if c in dgl else None,
                "dgl_runs": dgl_runs[c], "ratio_vs_dgl_per_round": dgl_round_ratios.get(c),
                "ratio_vs_dgl_round_median": (statistics.median(dgl_round_ratios[c])
                                              if c in dgl_round_ratios else None),
                "gen_s": gen_s, "build_s": build_s, "bytes_per_edge": bytes_per_edge,
            })
            if weighted.get(c):
                rows[-1].update({"weighted_seeds_per_s": statistics.median(weighted[c]), "weighted_runs": weighted[c],
                                 "weighted_over_uniform": statistics.median(
                                     [w / u for w, u in zip(weighted[c], ours[c])])})

    print("\n| graph | walks | T | pinsage seeds/s | DGL seeds/s | ratio | ratio per round, median "
          "| weighted seeds/s | weighted / uniform |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        dgl_s = f"{r['dgl_seeds_per_s']:,.0f}" if r["dgl_seeds_per_s"] else "-"
        ratio = f"{r['ratio_vs_dgl']:.1f}x" if r["ratio_vs_dgl"] else "-"
        if r["ratio_vs_dgl_round_median"]:
            ratio += (f" | {r['ratio_vs_dgl_round_median']:.1f}x "
                      f"({', '.join(f'{x:.1f}' for x in r['ratio_vs_dgl_per_round'])})")
        else:
            ratio += " | -"
        w_s = f"{r['weighted_seeds_per_s']:,.0f}" if "weighted_seeds_per_s" in r else "-"
        w_r = f"{r['weighted_over_uniform']:.2f}x" if "weighted_over_uniform" in r else "-"
        print(f"| {r['graph']} | {r['walks']} | {r['T']} | {r['pinsage_seeds_per_s']:,.0f} | {dgl_s} | {ratio} "
              f"| {w_s} | {w_r} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                               "batch": 512, "walk_length": 3, "restart_prob": 0.5, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
