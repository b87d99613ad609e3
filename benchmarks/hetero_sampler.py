"""Mixed-relation sampler benchmark (issue 15): seeds per second of :class:`pinsage.sampling.MetapathSampler`
on a two-relation graph beside the single-relation :class:`pinsage.ImportanceSampler`.

The graph: the power-law user-item graph of ``--sizes`` (DESIGN.md, Benchmarks: graph L = 2M items, 1M users,
36.7M edges) as relation ``click``, plus an item-tag relation ``tag`` with a fifth as many edges: pairs
(item, tag) drawn with :func:`pinsage.datasets.synthetic.powerlaw_bipartite` (items and tags both Zipf, the
generator's exponent 1/1.2, over ``num_items / 40`` tags; graph L: 50k tags), duplicates removed, the number
of draws raised once so that the distinct pairs come to a fifth of the click edges.

For batches of 512 random seeds, 3-hop walks, restart 0.5, at (walks=200, T=50) and (walks=10, T=3), three
samplers run window by window, alternating, on the same seeds:

* ``single``: :class:`~pinsage.ImportanceSampler` on the ``click`` relation alone (today's sampler);
* ``metapath 1.0``: :class:`~pinsage.sampling.MetapathSampler` with ``{"click": 1.0}`` (the kernel's own cost);
* ``mixed``: :class:`~pinsage.sampling.MetapathSampler` with ``{"click": 0.7, "tag": 0.3}``, merged
  neighbourhoods (``--per-relation``: also ``merge=False``).

Each window of a sampler is paired with the ``single`` window of the same round (same seeds, seconds apart);
the table gives the medians over ``--repeats`` rounds and the median of the per-pair ratios mixed / single,
and every pair's ratio is printed (and kept in the JSON as ``pair_ratios``).

    python benchmarks/hetero_sampler.py --sizes L
    python benchmarks/hetero_sampler.py --sizes XS --seconds 0.2 --repeats 1   # seconds
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
from pinsage.graph import HeteroGraph, InteractionGraph
from pinsage.sampling import ImportanceSampler, MetapathSampler

SIZES = {**SIZES, "XS": (2_000, 1_000, 20_000)}   # for the smoke test
CONFIGS = [(200, 50), (10, 3)]
MIX = {"click": 0.7, "tag": 0.3}


def tag_edges(n_items: int, n_tags: int, target: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(tags, items)`` int64, about ``target`` distinct Zipf-distributed (item, tag) pairs (see the module doc)."""
    draws = target
    for _ in range(2):
        tags, items = powerlaw_bipartite(n_items, n_tags, draws, seed=seed)
        if len(tags) >= 0.98 * target:
            break
        draws = int(draws * target / max(len(tags), 1) * 1.02)
    return tags, items


def seeds_per_second(sampler, n_items: int, seconds: float, seed: int, batch: int = 512) -> float:
    rng = np.random.default_rng(seed)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sampler.sample_arrays(rng.integers(0, n_items, batch))
        n += batch
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["S"], choices=sorted(SIZES))
    p.add_argument("--seconds", type=float, default=3.0, help="length of one timing window")
    p.add_argument("--repeats", type=int, default=5, help="windows per sampler and figure (medians reported)")
    p.add_argument("--threads", type=int, default=None, help="sampler threads (default: all cores)")
    p.add_argument("--per-relation", action="store_true", help="also time merge=False (per-relation neighbourhoods)")
    p.add_argument("--out", default="bench_out/hetero_sampler.json")
    args = p.parse_args(argv)

    rows = []
    for size in args.sizes:
        n_items, n_users, n_draws = SIZES[size]
        t0 = time.perf_counter()
        users, items = powerlaw_bipartite(n_items, n_users, n_draws)
        click = InteractionGraph.from_edges(users, items, num_groups=n_users, num_items=n_items)
        del users, items
        n_tags = max(50, n_items // 40)
        tags, t_items = tag_edges(n_items, n_tags, click.num_edges // 5)
        tag = InteractionGraph.from_edges(tags, t_items, num_groups=n_tags, num_items=n_items)
        del tags, t_items
        graph = HeteroGraph.from_graphs({"click": click, "tag": tag}, node_types={"click": "user", "tag": "tag"})
        del click, tag
        build_s = time.perf_counter() - t0
        deg = graph.relation_degree()
        click_g, tag_g = graph.relation("click"), graph.relation("tag")
        info = {"items": graph.num_items, "click_edges": click_g.num_edges, "tag_edges": tag_g.num_edges,
                "tags": tag_g.num_groups, "max_tag_degree": int(tag_g.group_degree.max()),
                "items_with_tags": int((deg[:, 1] > 0).sum()), "items_with_clicks": int((deg[:, 0] > 0).sum()),
                "bytes_per_edge": graph.nbytes / graph.num_edges, "build_s": build_s}
        print(f"graph {size} + tags: {info}", flush=True)
        for walks, T in CONFIGS:
            kw = dict(num_walks=walks, walk_length=3, restart_prob=0.5, num_neighbors=T, num_threads=args.threads)
            samplers = {"single": ImportanceSampler(click_g, **kw),
                        "metapath 1.0": MetapathSampler(graph, {"click": 1.0}, **kw),
                        "mixed": MetapathSampler(graph, MIX, **kw)}
            if args.per_relation:
                samplers["mixed per-relation"] = MetapathSampler(graph, MIX, merge=False, **kw)
            for s in samplers.values():   # compile, warm the caches
                s.sample_arrays(np.random.default_rng(0).integers(0, n_items, 512))
            runs: dict[str, list[float]] = {k: [] for k in samplers}
            for rep in range(args.repeats):
                for name, s in samplers.items():   # alternating, the same seeds for every sampler
                    runs[name].append(seeds_per_second(s, n_items, args.seconds, seed=100 + rep))
            pairs = {k: [a / b for a, b in zip(runs[k], runs["single"])] for k in runs}
            ratios = {k: statistics.median(v) for k, v in pairs.items()}
            med = {k: statistics.median(v) for k, v in runs.items()}
            for k in samplers:
                print(f"  walks={walks} T={T} {k:>18}: median {med[k]:,.0f} seeds/s "
                      f"(runs {', '.join(f'{r:,.0f}' for r in runs[k])}); / single {ratios[k]:.2f}x "
                      f"(pairs {', '.join(f'{r:.2f}' for r in pairs[k])})", flush=True)
            rows.append({"graph": size, "walks": walks, "T": T, "seeds_per_s": med, "runs": runs,
                         "ratio_vs_single": ratios, "pair_ratios": pairs, **info})
        del graph, click_g, tag_g, samplers

    print("\n| graph | walks | T | single seeds/s | metapath {click: 1} | mixed 0.7/0.3 | mixed / single "
          "| pairs mixed / single |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["seeds_per_s"]
        print(f"| {r['graph']} + tags | {r['walks']} | {r['T']} | {m['single']:,.0f} | {m['metapath 1.0']:,.0f} "
              f"| {m['mixed']:,.0f} | {r['ratio_vs_single']['mixed']:.2f}x "
              f"| {', '.join(f'{x:.2f}' for x in r['pair_ratios']['mixed'])} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                               "batch": 512, "walk_length": 3, "restart_prob": 0.5, "mix": MIX, "rows": rows},
                              indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
