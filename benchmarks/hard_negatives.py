"""Hard-negative estimators side by side: cost per training batch, and where their samples land in
exact personalised-PageRank rank.

For each graph (``pinsage.datasets.synthetic`` sizes) and ``--queries`` training-like queries (the
item end of random edges, so popular items are queried as often as training queries them):

* ``walks``: the walk estimate behind ``train.hard_negative_method: table``
  (:func:`pinsage.train.negatives.walk_window_sampler`: 2,000 walks with restart per query, the
  items ranked ``[lo, hi)`` by visit count), computed for the batch's queries as the library
  did per batch for large catalogues before ``closure`` existed;
* ``closure``: ``HardNegatives(method="closure")``: per sample, the first walk visit outside the
  query's two-hop importance closure.

Reported: seconds per 512-query batch drawing ``--count`` negatives per query (median of
``--repeats``, the two methods alternating), and, on graphs up to ``--exact-max-items`` items, the
exact PPR rank of every sample (:func:`pinsage.personalized_pagerank`, restart 0.15): quantiles and
the share inside the window ``[lo, hi)``, below ``lo`` (harder than asked: the positives' region) and
at ``10 * hi`` or beyond (barely related).

    python benchmarks/hard_negatives.py --sizes S L --queries 128 --repeats 5
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

from pinsage.config import PinSageConfig
from pinsage.datasets.synthetic import SIZES, powerlaw_bipartite
from pinsage.sampling import all_neighborhoods
from pinsage.graph import InteractionGraph
from pinsage.sampling import ImportanceSampler, personalized_pagerank
from pinsage.train.negatives import HardNegatives, rank_window, walk_window_sampler

SIZES = {**SIZES, "XS": (2_000, 1_000, 20_000)}   # for the smoke test


def exact_ranks(graph: InteractionGraph, queries: np.ndarray, chunk: int = 16) -> np.ndarray:
    """``(Q, num_items)`` 0-based exact PPR rank of every item from each query (the query itself last)."""
    n = graph.num_items
    ranks = np.empty((len(queries), n), dtype=np.int32)
    for a in range(0, len(queries), chunk):
        seeds = queries[a:a + chunk]
        scores = personalized_pagerank(graph, seeds, restart_prob=0.15, tol=1e-10)
        scores[np.arange(len(seeds)), seeds] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")
        np.put_along_axis(ranks[a:a + len(seeds)], order, np.arange(n, dtype=np.int32)[None, :], 1)
    return ranks


def closure_sizes(nb, queries: np.ndarray, fan: int) -> np.ndarray:
    """``|H(q)|`` per query: q, its first ``fan`` importance neighbours and theirs."""
    def row(v: int) -> np.ndarray:
        return nb.indices[nb.indptr[v]:nb.indptr[v + 1]][:fan]
    return np.array([len(np.unique(np.concatenate([[q], row(q), *[row(v) for v in row(q)]]))) for q in queries])


def rank_summary(neg: np.ndarray, ranks: np.ndarray, window: tuple[int, int]) -> dict:
    ok = neg >= 0
    r = np.take_along_axis(ranks, np.where(ok, neg, 0), 1)[ok]
    lo, hi = window
    return {"filled": float(ok.mean()), "rank_q10": float(np.percentile(r, 10)), "rank_median": float(np.median(r)),
            "rank_q90": float(np.percentile(r, 90)), "in_window": float(((r >= lo) & (r < hi)).mean()),
            "below_lo": float((r < lo).mean()), "beyond_10hi": float((r >= 10 * hi).mean())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["S", "L"], choices=list(SIZES))
    p.add_argument("--queries", type=int, default=128, help="queries scored against exact PPR")
    p.add_argument("--count", type=int, default=6, help="hard negatives per query (the curriculum's cap)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--exact-max-items", type=int, default=200_000, help="exact PPR ranks up to this catalogue")
    p.add_argument("--out", default="bench_out/hard_negatives.json")
    args = p.parse_args(argv)

    cfg = PinSageConfig()
    t, s = cfg.train, cfg.sampler
    print(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()}, python {platform.python_version()}", flush=True)
    results = []
    for size in args.sizes:
        n_items, n_users, n_draws = SIZES[size]
        users, items = powerlaw_bipartite(n_items, n_users, n_draws, seed=0)
        graph = InteractionGraph.from_edges(users, items, num_groups=n_users, num_items=n_items)
        del users, items
        nb = all_neighborhoods(ImportanceSampler(graph, s.num_walks, s.walk_length, s.restart_prob,
                                                 s.num_neighbors, seed=0))
        window = rank_window(graph.num_items, t.hard_rank_window, t.hard_rank_min, t.hard_rank_max)
        closure = HardNegatives(graph, window, neighborhoods=nb, method="closure")
        walks = walk_window_sampler(graph, window)
        rng = np.random.default_rng(1)
        edges = np.asarray(graph.group_items)

        def walk_batch(q: np.ndarray, key: int) -> np.ndarray:
            cand = walks.sample_arrays(q, key=key)[0][:, window[0]:window[1]]
            cols = np.random.default_rng(key).integers(0, cand.shape[1], (len(q), args.count))
            return np.take_along_axis(cand, cols, 1)

        times = {"walks": [], "closure": []}
        for r in range(args.repeats):
            q = edges[rng.integers(0, graph.num_edges, 512)].astype(np.int64)
            for name, fn in (("walks", walk_batch), ("closure", lambda q, k: closure(q, args.count, None, key=k))):
                t0 = time.perf_counter()
                fn(q, r)
                times[name].append(time.perf_counter() - t0)
        sizes = closure_sizes(nb, edges[rng.integers(0, graph.num_edges, 256)], closure.fan_out)
        row = {"graph": size, "items": graph.num_items, "edges": graph.num_edges, "window": window,
               "fan_out": closure.fan_out, "closure_size_median": float(np.median(sizes)),
               "closure_size_q10_q90": [float(np.percentile(sizes, 10)), float(np.percentile(sizes, 90))],
               "batch_s": {k: statistics.median(v) for k, v in times.items()}, "batch_s_all": times}
        row["speedup"] = row["batch_s"]["walks"] / row["batch_s"]["closure"]
        print(f"graph {size}: window {window}, closure fan-out {closure.fan_out}, |H(q)| median "
              f"{row['closure_size_median']:.0f} (10-90%: {row['closure_size_q10_q90'][0]:.0f}-"
              f"{row['closure_size_q10_q90'][1]:.0f}); per 512-query batch: walks "
              f"{row['batch_s']['walks']:.3f} s, closure {row['batch_s']['closure']:.4f} s ({row['speedup']:.0f}x)",
              flush=True)
        if graph.num_items <= args.exact_max_items:
            q = edges[rng.integers(0, graph.num_edges, args.queries)].astype(np.int64)
            ranks = exact_ranks(graph, q)
            row["exact_rank"] = {"walks": rank_summary(walk_batch(q, 99), ranks, window),
                                 "closure": rank_summary(closure(q, args.count, None, key=99), ranks, window)}
            for name, summ in row["exact_rank"].items():
                print(f"  {name:8s} exact PPR rank q10/median/q90 {summ['rank_q10']:.0f}/{summ['rank_median']:.0f}/"
                      f"{summ['rank_q90']:.0f}; in window {summ['in_window']:.0%}, below lo {summ['below_lo']:.0%}, "
                      f">= 10 hi {summ['beyond_10hi']:.0%}; filled {summ['filled']:.0%}", flush=True)
        results.append(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "load_at_end": os.getloadavg(),
                                           "python": platform.python_version()},
                               "args": vars(args), "results": results}, indent=2, default=float))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
