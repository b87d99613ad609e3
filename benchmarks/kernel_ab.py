"""The walk kernel of another checkout against this one, in one process, window by window (their order
alternating): the seeds/s ratio of uniform (or weighted) walks, so a kernel change is judged side by side.

    git worktree add /tmp/before <commit>
    python benchmarks/kernel_ab.py --before /tmp/before --sizes L
    python benchmarks/kernel_ab.py --before /tmp/before --sizes L --weighted

Both kernels run single-threaded on the same graph and the same seeds (batches of 512, walk length 3,
restart 0.5) at (walks, T) = (10, 3) and (200, 50). A checkout whose kernel predates weighted walks (no
``item_alias`` parameter) is called without the weight arguments. With ``--weighted`` the graph carries a
rating (1-5, uniform) on every edge and both kernels take weighted steps (the same alias tables). With
``--compressed ORDER`` the kernels compared are the compressed store's (``walk_topk_range_compressed`` of
``pinsage/sampling/compressed.py``, each checkout's with its own ``_kernels.py``) on a
:class:`~pinsage.graph.compressed.CompressedGraph` of the graph built with that order.

    python benchmarks/kernel_ab.py --before /tmp/before --sizes L --compressed degree

With ``--topk`` only the counting and ranking (``_topk_one``) are compared: on the visits of the
current ``_walk_one`` for 4096 random seeds, the two checkouts' ``_topk_one`` run in turn (their outputs
checked equal), and the ratio is in rows per second.

    python benchmarks/kernel_ab.py --before /tmp/before --sizes L --topk
"""
from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import time
import types
from pathlib import Path

import numba as nb
import numpy as np

from pinsage.datasets.synthetic import SIZES, powerlaw_bipartite
from pinsage.graph import InteractionGraph
from pinsage.graph.weights import walk_weights
from pinsage.sampling import _kernels as current


def _exec_module(name: str, path: Path, src: str):
    """``src`` (the file ``path``, perhaps edited) run as module ``name``, without numba's on-disk cache: a
    cache written here would name this module, and the checkout's own import would then fail to load it."""
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    exec(compile(src.replace("cache=True", "cache=False"), str(path), "exec"), module.__dict__)
    return module


def load_kernels(checkout: Path):
    path = checkout / "pinsage" / "sampling" / "_kernels.py"
    if not path.is_file():
        raise SystemExit(f"--before {checkout}: no pinsage/sampling/_kernels.py there")
    return _exec_module("kernels_before", path, path.read_text())


def load_compressed(checkout: Path):
    """The checkout's compressed-store walk kernel, compiled against the checkout's own ``_kernels.py``
    (loaded first by :func:`load_kernels`): its source with that import redirected."""
    path = checkout / "pinsage" / "sampling" / "compressed.py"
    if not path.is_file():
        raise SystemExit(f"--before {checkout}: no pinsage/sampling/compressed.py there")
    src = path.read_text().replace("from pinsage.sampling._kernels import", "from kernels_before import")
    return _exec_module("compressed_before", path, src).walk_topk_range_compressed


def uniform_args(fn) -> tuple:
    """The weight arguments a kernel takes for uniform walks (none before weighted walks existed)."""
    return (None, None, None) if "item_alias" in inspect.signature(fn.py_func).parameters else ()


def one_word_alias(weights: tuple) -> tuple:
    """The alias tables in the layout of kernels before the 16-byte rows: one uint64 per edge (threshold and
    alias neighbour; those kernels read the slot's own neighbour from the adjacency)."""
    item_alias, group_alias, item_total = weights
    return np.ascontiguousarray(item_alias[:, 0]), np.ascontiguousarray(group_alias[:, 0]), item_total


def plain_call(graph, weights: tuple | None, before_module=None):
    """``call(fn, seeds, walks, T, key, nbr, cnt, nout)`` running the plain kernel ``fn`` on ``graph``
    (the kernels of ``before_module`` given the alias tables in their own layout)."""
    old = None
    if weights is not None and before_module is not None and "adj" in inspect.signature(
            before_module._pick.py_func).parameters:
        old = one_word_alias(weights)

    def call(fn, seeds, walks, key, nbr, cnt, nout):
        extra = uniform_args(fn) if weights is None else weights
        if old is not None and fn is before_module.walk_topk_range:
            extra = old
        fn(seeds, graph.item_indptr, graph.item_groups, graph.group_indptr, graph.group_items, *extra,
           walks, 3, 0.5, key, np.arange(len(seeds), dtype=np.int64), nbr, cnt, nout, 0, len(seeds))
    return call


def compressed_call(store):
    """The same for a compressed-store kernel on the :class:`CompressedGraph` ``store``."""
    it, gr = store.items, store.groups
    order = np.empty(0, np.int64) if store.item_order is None else np.ascontiguousarray(store.item_order)

    def call(fn, seeds, walks, key, nbr, cnt, nout):
        fn(np.ascontiguousarray(store.internal_items(seeds)), it.blocks, it.data, gr.blocks, gr.data,
           it.chunk_shift, order, walks, 3, 0.5, key, np.arange(len(seeds), dtype=np.int64), nbr, cnt, nout,
           0, len(seeds))
    return call


def topk_visits(graph, walks: int, rng, rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Visits of the current ``_walk_one`` (uniform, length 3, restart 0.5) from ``rows`` random seeds:
    ``(visits (rows * walks * 3,), count per row)``."""
    visits = np.zeros(rows * walks * 3, np.int64)
    nv = np.zeros(rows, np.int64)
    _walk_rows(rng.integers(0, graph.num_items, rows), graph.item_indptr, graph.item_groups, graph.group_indptr,
               graph.group_items, walks, visits, nv)
    return visits, nv


@nb.njit(cache=True)
def _walk_rows(seeds, ip, ig, gp, gi, walks, visits, nv):
    threshold = np.uint64(0.5 * 18446744073709549568.0)
    mv = walks * 3
    for b in range(len(seeds)):
        state = current._splitmix64(np.uint64(b + 1) * np.uint64(current._GOLDEN)) | np.uint64(1)
        nv[b] = current._walk_one(seeds[b], state, ip, ig, gp, gi, None, None, None, walks, 3, threshold, False,
                                  visits[b * mv:(b + 1) * mv])


def _topk_rows(topk):
    @nb.njit
    def run(visits, nv, mv, nbr, cnt, nout):
        size = 1
        while size < 2 * mv:
            size *= 2
        items = np.full(size, -1, np.int64)
        counts = np.zeros(size, np.int32)
        keys = np.empty(mv, np.int64)
        for b in range(len(nv)):
            nout[b] = topk(visits[b * mv:(b + 1) * mv], nv[b], items, counts, keys, nbr[b], cnt[b])
    return run


def topk_rows_per_second(run, visits, nv, mv: int, T: int, seconds: float) -> tuple[float, tuple]:
    nbr = np.full((len(nv), T), -1, np.int64)
    cnt = np.zeros((len(nv), T), np.int32)
    nout = np.zeros(len(nv), np.int64)
    n, t0 = 0, time.perf_counter()
    while True:
        run(visits, nv, mv, nbr, cnt, nout)
        n += len(nv)
        if time.perf_counter() - t0 >= seconds:
            return n / (time.perf_counter() - t0), (nbr, cnt, nout)


def seeds_per_second(call, fn, num_items: int, walks: int, T: int, seconds: float, rng, batch: int = 512) -> float:
    n, key, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        seeds = rng.integers(0, num_items, batch)
        nbr = np.full((batch, T), -1, np.int64)
        cnt = np.zeros((batch, T), np.int32)
        nout = np.zeros(batch, np.int64)
        call(fn, seeds, walks, key, nbr, cnt, nout)
        n += batch
        key += 1
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="a checkout (e.g. a git worktree) holding the kernel to compare")
    p.add_argument("--sizes", nargs="+", default=["S"], choices=sorted(SIZES))
    p.add_argument("--seconds", type=float, default=3.0, help="length of one timing window")
    p.add_argument("--repeats", type=int, default=6, help="window pairs per configuration (median reported)")
    p.add_argument("--weighted", action="store_true", help="weighted steps (ratings 1-5 on every edge) in both kernels")
    p.add_argument("--compressed", choices=["degree", "none"], default=None,
                   help="compare the compressed-store kernels, on a store with this order")
    p.add_argument("--topk", action="store_true", help="compare only the counting and ranking (_topk_one)")
    p.add_argument("--out", default="bench_out/kernel_ab.json")
    args = p.parse_args(argv)
    if args.topk:
        return main_topk(args)
    if args.weighted and args.compressed:
        raise SystemExit("--weighted and --compressed: the compressed store walks uniformly only")
    before = load_kernels(Path(args.before))
    if args.weighted and not uniform_args(before.walk_topk_range):
        raise SystemExit(f"--weighted: the kernel in {args.before} predates weighted walks")
    fns = (before.walk_topk_range, current.walk_topk_range)
    if args.compressed:
        from pinsage.sampling.compressed import walk_topk_range_compressed
        fns = (load_compressed(Path(args.before)), walk_topk_range_compressed)
    label = " weighted" if args.weighted else f" compressed ({args.compressed} order)" if args.compressed else ""
    rows = []
    for size in args.sizes:
        n_items, n_users, n_draws = SIZES[size]
        users, items = powerlaw_bipartite(n_items, n_users, n_draws)
        ratings = np.random.default_rng(2).integers(1, 6, len(users)).astype(np.float32) if args.weighted else None
        graph = InteractionGraph.from_edges(users, items, num_groups=n_users, num_items=n_items, weight=ratings)
        del users, items, ratings
        weights = None
        if args.weighted:
            w = walk_weights(graph)
            weights = (w.item_alias, w.group_alias, w.item_total)
        if args.compressed:
            from pinsage.graph.compressed import CompressedGraph
            call = compressed_call(CompressedGraph.from_graph(graph, order=args.compressed))
            del graph
        else:
            call = plain_call(graph, weights, before)
        rng = np.random.default_rng(1)
        for walks, T in [(10, 3), (200, 50)]:
            for fn in fns:  # compile and warm
                seeds_per_second(call, fn, n_items, walks, T, 0.5, rng)
            old, new = [], []
            for k in range(args.repeats):
                pair = [(fns[0], old), (fns[1], new)]
                for fn, out in (pair if k % 2 == 0 else pair[::-1]):
                    out.append(seeds_per_second(call, fn, n_items, walks, T, args.seconds, rng))
            ratios = [b / a for a, b in zip(old, new)]
            row = {"graph": size, "weighted": args.weighted, "compressed": args.compressed, "walks": walks, "T": T,
                   "before_seeds_per_s": statistics.median(old), "now_seeds_per_s": statistics.median(new),
                   "now_over_before": statistics.median(ratios), "windows": ratios}
            rows.append(row)
            windows = ", ".join(f"{r:.2f}" for r in ratios)
            print(f"{size}{label} walks={walks} T={T}: before {row['before_seeds_per_s']:,.0f}, "
                  f"now {row['now_seeds_per_s']:,.0f} seeds/s (one thread); "
                  f"now / before median {row['now_over_before']:.2f}x (windows {windows})", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"before": str(Path(args.before).resolve()), "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


def main_topk(args) -> int:
    before = load_kernels(Path(args.before))
    runs = (_topk_rows(before._topk_one), _topk_rows(current._topk_one))
    rows = []
    for size in args.sizes:
        n_items, n_users, n_draws = SIZES[size]
        users, items = powerlaw_bipartite(n_items, n_users, n_draws)
        graph = InteractionGraph.from_edges(users, items, num_groups=n_users, num_items=n_items)
        del users, items
        for walks, T in [(10, 3), (200, 50)]:
            visits, nv = topk_visits(graph, walks, np.random.default_rng(1))
            outs = [topk_rows_per_second(run, visits, nv, walks * 3, T, 0.2)[1] for run in runs]
            if not all(np.array_equal(a, b) for a, b in zip(*outs)):
                raise SystemExit(f"{size} walks={walks} T={T}: the two _topk_one disagree")
            old, new = [], []
            for k in range(args.repeats):
                pair = [(runs[0], old), (runs[1], new)]
                for run, out in (pair if k % 2 == 0 else pair[::-1]):
                    out.append(topk_rows_per_second(run, visits, nv, walks * 3, T, args.seconds)[0])
            ratios = [b / a for a, b in zip(old, new)]
            row = {"graph": size, "topk": True, "walks": walks, "T": T, "before_rows_per_s": statistics.median(old),
                   "now_rows_per_s": statistics.median(new), "now_over_before": statistics.median(ratios),
                   "windows": ratios}
            rows.append(row)
            print(f"{size} _topk_one walks={walks} T={T}: before {row['before_rows_per_s']:,.0f}, now "
                  f"{row['now_rows_per_s']:,.0f} rows/s (one thread, outputs equal); now / before median "
                  f"{row['now_over_before']:.2f}x (windows {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"before": str(Path(args.before).resolve()), "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
