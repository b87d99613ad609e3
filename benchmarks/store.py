"""Compressed graph store benchmark (docs/benchmarks/store.md): size, build and walk speed against the plain CSR.

For each graph size (pinsage.datasets.synthetic SIZES, power-law graphs): bytes per edge of the adjacency in
both directions, offsets and block index included (the plain ``InteractionGraph``'s figure beside it), the
renumbering permutation apart; build time and peak memory of the build, each measured in a child process;
then seeds per second of :class:`pinsage.sampling.compressed.CompressedSampler` against
:class:`pinsage.ImportanceSampler` on the same graph and seeds (batches of 512 random seeds, walks of at most
3 hops, restart 0.5) at (walks, T) = (10, 3) and (200, 50): timing windows interleaved (plain, compressed
with renumbering, compressed without, window after window), ratios taken window by window, medians reported.

``--clock cpu`` times single-thread windows by the thread's CPU time (``time.thread_time``): on a machine
shared with other jobs this is far steadier than wall-clock time, which counts the time the thread waits
for a core. ``--stream`` also builds graph L out of core (``CompressedGraph.from_edge_files``) from chunked
``.npy`` edge files and reports its time and peak memory; ``--shuffle`` also reports the sizes with item and
group ids randomly permuted (ids that say nothing about popularity, as in most real catalogues).

    python benchmarks/store.py --sizes S L --clock wall --stream --shuffle
    python benchmarks/store.py --sizes S L --clock cpu --repeats 9 --seconds 1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from pinsage.datasets.synthetic import SIZES, powerlaw_bipartite
from pinsage.graph import InteractionGraph
from pinsage.graph.compressed import CompressedGraph
from pinsage.sampling import ImportanceSampler
from pinsage.sampling.compressed import CompressedSampler

CONFIGS = [(10, 3), (200, 50)]
PLAIN_L = 8.65  # docs/benchmarks/sampler.md


# ----------------------------------------------------------------------------------------- memory
def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes (0 where there is no procfs)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakMemory:
    """Peak resident memory over a ``with`` block: ``VmHWM`` (all resident pages, file-backed ones of
    memory-mapped files included; the kernel's high-water mark, reset on entry through
    ``/proc/self/clear_refs``) and the peak of ``RssAnon`` (anonymous memory only: heap and arrays not
    backed by a file), sampled every 10 ms."""

    def __enter__(self) -> "PeakMemory":
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        self.start_rss = _status("VmRSS")
        self.start_anon = _status("RssAnon")
        self.peak_anon = self.start_anon
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_anon = max(self.peak_anon, _status("RssAnon"))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_anon = max(self.peak_anon, _status("RssAnon"))
        self.peak_rss = max(_status("VmHWM"), self.start_rss)

    def as_dict(self) -> dict[str, float]:
        mb = 1 / 2**20
        return {"start_rss_mb": self.start_rss * mb, "peak_rss_mb": self.peak_rss * mb,
                "start_anon_mb": self.start_anon * mb, "peak_anon_mb": self.peak_anon * mb}


# ----------------------------------------------------------------------------------------- children
def _graph(size: str, shuffle: bool = False) -> InteractionGraph:
    n_items, n_users, n_draws = SIZES[size]
    users, items = powerlaw_bipartite(n_items, n_users, n_draws)
    if shuffle:
        rng = np.random.default_rng(5)
        users = rng.permutation(n_users)[users]
        items = rng.permutation(n_items)[items]
    return InteractionGraph.from_edges(users, items, num_groups=n_users, num_items=n_items)


def child_build(size: str, order: str, out: str) -> dict:
    """In a fresh process: generate the edges, build the plain graph (timed, peak measured), then compress
    it (timed, peak measured from the plain graph on)."""
    n_items, n_users, n_draws = SIZES[size]
    users, items = powerlaw_bipartite(n_items, n_users, n_draws)
    with PeakMemory() as plain_mem:
        t0 = time.perf_counter()
        g = InteractionGraph.from_edges(users, items, num_groups=n_users, num_items=n_items)
        plain_s = time.perf_counter() - t0
    del users, items
    CompressedGraph.from_graph(InteractionGraph.from_edges(np.array([0, 0]), np.array([0, 1])), order=order)  # compile
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        c = CompressedGraph.from_graph(g, order=order)
        build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    c.save(out)
    save_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    CompressedGraph.load(out)  # with the checksums
    load_s = time.perf_counter() - t0
    return {"plain_build_s": plain_s, "plain_mem": plain_mem.as_dict(), "build_s": build_s, "mem": mem.as_dict(),
            "plain_graph_mb": g.nbytes / 2**20, "compressed_mb": c.nbytes / 2**20, "save_s": save_s,
            "load_verify_s": load_s}


def child_write_edges(size: str, folder: str, parts: int) -> dict:
    """Write the graph's (group, item) edges as ``parts`` int32 ``.npy`` files of shape (E_k, 2)."""
    n_items, n_users, n_draws = SIZES[size]
    users, items = powerlaw_bipartite(n_items, n_users, n_draws)
    order = np.random.default_rng(3).permutation(len(users))  # files in no particular order
    bounds = np.linspace(0, len(users), parts + 1).astype(np.int64)
    for k in range(parts):
        sel = order[bounds[k]:bounds[k + 1]]
        np.save(Path(folder) / f"edges-{k:02d}.npy", np.stack([users[sel], items[sel]], axis=1).astype(np.int32))
    return {"rows": int(len(users)), "parts": parts}


def child_stream(folder: str, order: str, out: str, chunk_edges: int) -> dict:
    """Build out of core from the edge files (timed, peak measured from the start of the build)."""
    files = sorted(Path(folder).glob("edges-*.npy"))
    tiny = Path(folder) / "tiny"
    tiny.mkdir(exist_ok=True)
    np.save(tiny / "e.npy", np.array([[0, 0], [0, 1], [1, 1]], dtype=np.int32))
    CompressedGraph.from_edge_files([tiny / "e.npy"], order=order, out=tiny / "s")  # compile
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        c = CompressedGraph.from_edge_files(files, order=order, out=out, chunk_edges=chunk_edges)
        build_s = time.perf_counter() - t0
    return {"stream_build_s": build_s, "stream_mem": mem.as_dict(), "bytes_per_edge": c.nbytes / c.num_edges,
            "num_edges": c.num_edges, "chunk_edges": chunk_edges, "input_mb": sum(f.stat().st_size for f in files) / 2**20}


def _run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------- timing
def seeds_per_second(sampler: ImportanceSampler, n_items: int, seconds: float, clock: str, batch: int = 512) -> float:
    """Seeds per second over one window of ``seconds`` (wall-clock or the thread's CPU time), the same
    seeds for every sampler."""
    now = time.perf_counter if clock == "wall" else time.thread_time
    rng = np.random.default_rng(1)
    n, start = 0, now()
    while now() - start < seconds:
        sampler.sample_arrays(rng.integers(0, n_items, batch))
        n += batch
    return n / (now() - start)


def _stream(entry: dict, size: str, scratch: Path, chunk_edges: int) -> None:
    """Write the graph's edges as 8 ``.npy`` files (a child process), then build out of core from them
    (another child process, its time and peak memory measured)."""
    folder = scratch / "edges"
    folder.mkdir()
    entry["edge_files"] = _run_child("edges", size, str(folder), "8")
    entry["stream_degree"] = st = _run_child("stream", str(folder), "degree", str(scratch / "stream"), str(chunk_edges))
    shutil.rmtree(scratch / "stream", ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    m = st["stream_mem"]
    print(f"  out-of-core build (order=degree, {entry['edge_files']['parts']} .npy files, {st['input_mb']:.0f} MB, "
          f"chunks of {st['chunk_edges']} edges): {st['stream_build_s']:.1f} s, peak RSS {m['peak_rss_mb']:.0f} MB "
          f"from {m['start_rss_mb']:.0f} MB (memory-mapped pages included), peak anonymous {m['peak_anon_mb']:.0f} MB "
          f"from {m['start_anon_mb']:.0f} MB; {st['bytes_per_edge']:.2f} B/edge", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        kind, rest = argv[1], argv[2:]
        fn = {"build": child_build, "edges": child_write_edges, "stream": child_stream}[kind]
        conv = {"edges": (str, str, int), "stream": (str, str, str, int)}.get(kind, (str, str, str))
        print(json.dumps(fn(*(c(a) for c, a in zip(conv, rest)))))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["S"], choices=sorted(SIZES))
    p.add_argument("--seconds", type=float, default=2.0, help="length of one timing window")
    p.add_argument("--repeats", type=int, default=5, help="timing windows per sampler and figure (median reported)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: wall-clock windows on --threads threads; cpu: one thread, its CPU time")
    p.add_argument("--threads", type=int, default=None, help="sampler threads with --clock wall (default: all cores)")
    p.add_argument("--stream", action="store_true", help="also build graph L out of core from chunked .npy files")
    p.add_argument("--chunk-edges", type=int, default=1 << 22, help="edges per chunk of the out-of-core build")
    p.add_argument("--shuffle", action="store_true", help="also report sizes with randomly permuted ids")
    p.add_argument("--no-build", action="store_true", help="skip the child-process build measurements")
    p.add_argument("--stream-only", action="store_true", help="only the out-of-core build of graph L (implies --stream)")
    p.add_argument("--scratch", default=None, help="where stores and edge files go (default: a temp dir)")
    p.add_argument("--out", default="bench_out/store.json")
    args = p.parse_args(argv)
    if args.stream_only:
        args.stream, args.sizes = True, ["L"]
    threads = 1 if args.clock == "cpu" else args.threads
    scratch = Path(tempfile.mkdtemp(prefix="pinsage-store-bench.", dir=args.scratch))
    results: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                 "load_avg_start": os.getloadavg()},
                     "clock": args.clock, "threads": threads, "batch": 512, "walk_length": 3, "restart_prob": 0.5,
                     "seconds": args.seconds, "repeats": args.repeats, "graphs": [], "rows": []}
    try:
        for size in args.sizes:
            entry: dict = {"graph": size}
            if args.stream_only:
                _stream(entry, size, scratch, args.chunk_edges)
                results["graphs"].append(entry)
                continue
            if not args.no_build:
                for order in ("degree", "none"):
                    entry[f"build_{order}"] = b = _run_child("build", size, order, str(scratch / f"{size}-{order}"))
                    shutil.rmtree(scratch / f"{size}-{order}", ignore_errors=True)
                    print(f"graph {size} order={order}: plain build {b['plain_build_s']:.1f} s (peak RSS "
                          f"{b['plain_mem']['peak_rss_mb']:.0f} MB); compressed build {b['build_s']:.1f} s, peak RSS "
                          f"{b['mem']['peak_rss_mb']:.0f} MB from {b['mem']['start_rss_mb']:.0f} MB (peak anonymous "
                          f"{b['mem']['peak_anon_mb']:.0f} MB); save {b['save_s']:.1f} s, load+verify "
                          f"{b['load_verify_s']:.1f} s", flush=True)
            t0 = time.perf_counter()
            g = _graph(size)
            gen_s = time.perf_counter() - t0
            stores = {order: CompressedGraph.from_graph(g, order=order) for order in ("degree", "none")}
            E = g.num_edges
            entry.update({"items": g.num_items, "groups": g.num_groups, "edges": E, "gen_build_s": gen_s,
                          "plain_bytes_per_edge": g.nbytes / E})
            for order, c in stores.items():
                entry[f"{order}_bytes_per_edge"] = c.nbytes / E
                entry[f"{order}_perm_bytes_per_edge"] = c.perm_nbytes / E
                entry[f"{order}_block_index_bytes_per_edge"] = (c.items.blocks.nbytes + c.groups.blocks.nbytes) / E
            print(f"graph {size}: {g.num_items} items, {g.num_groups} groups, {E} edges; plain "
                  f"{g.nbytes / E:.2f} B/edge; compressed (degree order) {stores['degree'].nbytes / E:.2f} B/edge "
                  f"+ permutation {stores['degree'].perm_nbytes / E:.2f}; compressed (no renumbering) "
                  f"{stores['none'].nbytes / E:.2f} B/edge", flush=True)
            if args.shuffle:
                gs = _graph(size, shuffle=True)
                for order in ("degree", "none"):
                    cs = CompressedGraph.from_graph(gs, order=order)
                    entry[f"shuffled_{order}_bytes_per_edge"] = cs.nbytes / E
                    entry[f"shuffled_{order}_perm_bytes_per_edge"] = cs.perm_nbytes / E
                    del cs
                del gs
                print(f"  shuffled ids: degree order {entry['shuffled_degree_bytes_per_edge']:.2f} B/edge "
                      f"(+{entry['shuffled_degree_perm_bytes_per_edge']:.2f}), no renumbering "
                      f"{entry['shuffled_none_bytes_per_edge']:.2f} B/edge", flush=True)
            for walks, T in CONFIGS:
                samplers = {"plain": ImportanceSampler(g, walks, 3, 0.5, T, num_threads=threads)}
                for order, c in stores.items():
                    samplers[order] = CompressedSampler(c, walks, 3, 0.5, T, num_threads=threads)
                for s in samplers.values():
                    s.sample_arrays(np.arange(512) % g.num_items)  # compile / warm caches
                runs: dict[str, list[float]] = {k: [] for k in samplers}
                for _ in range(args.repeats):  # interleaved: plain, degree, none; window after window
                    for k, s in samplers.items():
                        runs[k].append(seeds_per_second(s, g.num_items, args.seconds, args.clock))
                row = {"graph": size, "walks": walks, "T": T, "edges": E}
                for k in samplers:
                    ratios = [a / b for a, b in zip(runs[k], runs["plain"])]
                    row[f"{k}_seeds_per_s"] = statistics.median(runs[k])
                    row[f"{k}_runs"] = runs[k]
                    if k != "plain":
                        row[f"{k}_ratio"] = statistics.median(ratios)
                        row[f"{k}_ratios"] = ratios
                results["rows"].append(row)
                print(f"  walks={walks} T={T}: plain {row['plain_seeds_per_s']:,.0f} seeds/s; compressed "
                      f"{row['degree_seeds_per_s']:,.0f} (degree order, {row['degree_ratio']:.2f}x; windows "
                      f"{', '.join(f'{r:.2f}' for r in row['degree_ratios'])}), {row['none_seeds_per_s']:,.0f} "
                      f"(no renumbering, {row['none_ratio']:.2f}x; windows "
                      f"{', '.join(f'{r:.2f}' for r in row['none_ratios'])})", flush=True)
            del g, stores, samplers
            if args.stream and size == "L":
                _stream(entry, size, scratch, args.chunk_edges)
            results["graphs"].append(entry)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["machine"]["load_avg_end"] = os.getloadavg()

    if args.stream_only:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"wrote {out}")
        return 0
    print("\n| graph | plain B/edge | compressed B/edge (degree order) | + permutation | no renumbering | "
          "build (degree) | peak RSS of the build |")
    print("|---|---|---|---|---|---|---|")
    for e in results["graphs"]:
        b = e.get("build_degree")
        build = f"{b['build_s']:.1f} s" if b else "-"
        peak = f"{b['mem']['peak_rss_mb']:.0f} MB (from {b['mem']['start_rss_mb']:.0f})" if b else "-"
        print(f"| {e['graph']} | {e['plain_bytes_per_edge']:.2f} | {e['degree_bytes_per_edge']:.2f} | "
              f"{e['degree_perm_bytes_per_edge']:.2f} | {e['none_bytes_per_edge']:.2f} | {build} | {peak} |")
    print(f"\n| graph | walks | T | plain seeds/s | compressed seeds/s | ratio | compressed, no renumbering | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        print(f"| {r['graph']} | {r['walks']} | {r['T']} | {r['plain_seeds_per_s']:,.0f} | {r['degree_seeds_per_s']:,.0f} "
              f"| {r['degree_ratio']:.2f}x | {r['none_seeds_per_s']:,.0f} | {r['none_ratio']:.2f}x |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
