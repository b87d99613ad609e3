"""Graph XL (issue 16): ten times graph L (20M items, 10M users, 400M draws), built out of core into the
compressed store and sampled, on this machine; each stage in its own process with its peak memory.

Stages (each a child process, so its peak RSS is its own):

1. ``edges``: the draws of DESIGN.md's power-law generator (item ``i`` with probability proportional to
   ``(i + 1)^(-1/a)``, users likewise, ``a = 1.2``), made chunk by chunk (``--parts`` chunks, each its item
   draws then its user draws from one seeded generator), written as int32 ``(E_k, 2)`` ``.npy`` files.
   The distribution is the generator's; the stream is not ``powerlaw_bipartite``'s (that one draws all items
   first and deduplicates in memory, which would hold 400M int64 keys). Duplicates stay in the files.
2. ``build``: ``CompressedGraph.from_edge_files`` (degree-order renumbering; duplicates merged), timed, peak
   RSS and peak anonymous memory measured; bytes per edge of the store.
3. ``sample``: the store loaded memory-mapped, ``CompressedSampler`` seeds/s at (10 walks, T = 3) and
   (200, 50), batches of 512 random seeds, 3 hops, restart 0.5, median of ``--repeats`` windows; peak RSS.

    python benchmarks/scale_xl.py --dir /tmp/xl                      # graph XL
    python benchmarks/scale_xl.py --dir /tmp/xl-small --scale 0.01   # a hundredth of it, for a quick check

Training for an epoch on graph XL is not part of this script (docs/benchmarks/scale.md says what is left).
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
import time
from pathlib import Path

import numpy as np

#: graph XL: 10 x graph L's items, users and draws (DESIGN.md's graph L: 2M, 1M, 40M)
XL = (20_000_000, 10_000_000, 400_000_000)
CONFIGS = [(10, 3), (200, 50)]


def child_edges(folder: str, n_items: int, n_users: int, n_draws: int, parts: int) -> dict:
    from pinsage.datasets.synthetic import _cdf, _sample_into

    rng = np.random.default_rng(0)
    item_cdf, user_cdf = _cdf(n_items, 1.2), _cdf(n_users, 1.2)
    bounds = np.linspace(0, n_draws, parts + 1).astype(np.int64)
    t0 = time.perf_counter()
    for k in range(parts):
        n = int(bounds[k + 1] - bounds[k])
        items = np.zeros(n, dtype=np.int64)
        _sample_into(rng, item_cdf, items)
        users = np.zeros(n, dtype=np.int64)
        _sample_into(rng, user_cdf, users)
        edges = np.empty((n, 2), dtype=np.int32)
        edges[:, 0], edges[:, 1] = users, items
        del users, items
        tmp = Path(folder) / f".edges-{k:03d}.npy"
        np.save(tmp, edges)
        os.replace(tmp, Path(folder) / f"edges-{k:03d}.npy")
    return {"edges_s": time.perf_counter() - t0, "rows": int(n_draws), "parts": parts,
            "input_mb": sum(f.stat().st_size for f in Path(folder).glob("edges-*.npy")) / 2**20}


def child_build(folder: str, out: str, chunk_edges: int) -> dict:
    from store import PeakMemory  # benchmarks/store.py: VmHWM and peak anonymous memory

    from pinsage.graph.compressed import CompressedGraph

    files = sorted(Path(folder).glob("edges-*.npy"))
    tiny = Path(folder) / "tiny"
    tiny.mkdir(exist_ok=True)
    np.save(tiny / "e.npy", np.array([[0, 0], [0, 1], [1, 1]], dtype=np.int32))
    CompressedGraph.from_edge_files([tiny / "e.npy"], order="degree", out=tiny / "s")  # compile
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        c = CompressedGraph.from_edge_files(files, order="degree", out=out, scratch=folder, chunk_edges=chunk_edges)
        build_s = time.perf_counter() - t0
    return {"build_s": build_s, "mem": mem.as_dict(), "num_items": c.num_items, "num_groups": c.num_groups,
            "num_edges": int(c.num_edges), "bytes_per_edge": c.nbytes / c.num_edges,
            "store_mb": sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file()) / 2**20}


def child_sample(store: str, seconds: float, repeats: int) -> dict:
    from store import PeakMemory

    from pinsage.graph.compressed import CompressedGraph
    from pinsage.sampling.compressed import CompressedSampler

    out = {}
    with PeakMemory() as mem:
        g = CompressedGraph.load(store)
        for walks, T in CONFIGS:
            sampler = CompressedSampler(g, num_walks=walks, walk_length=3, restart_prob=0.5, num_neighbors=T)
            rng = np.random.default_rng(1)
            sampler.sample_arrays(rng.integers(0, g.num_items, 512))  # compile, warm
            runs = []
            for _ in range(repeats):
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    sampler.sample_arrays(rng.integers(0, g.num_items, 512))
                    n += 512
                runs.append(n / (time.perf_counter() - t0))
            out[f"{walks},{T}"] = {"median": statistics.median(runs), "runs": runs}
    return {"seeds_per_s": out, "mem": mem.as_dict()}


def child_train(folder: str, n_items: int, n_users: int, pairs: int, feature_dim: int) -> dict:
    """One epoch of ``pairs`` positive pairs on the plain graph built from the edge files: content-only node
    inputs (a fixed random ``feature_dim``-d vector per item standing in for content features, plus the log
    degree; no id table), neighbourhoods sampled per batch by ``ImportanceSampler`` (10 walks, T = 10),
    the default model otherwise (K = 1, hidden 128, 64-d), sampled softmax over 500 shared easy negatives,
    batches of 512 built by one DataLoader worker. Reports build time, pairs/s and the process tree's
    peak RSS (sampled every 0.5 s; the worker included)."""
    import threading

    import torch

    from memory import tree_memory  # benchmarks/memory.py: RSS of the process tree
    from pinsage.config import ModelConfig, TrainConfig
    from pinsage.features.structural import log_degree_feature
    from pinsage.graph import InteractionGraph
    from pinsage.nn.model import PinSage
    from pinsage.sampling import ImportanceSampler
    from pinsage.train.loader import PairBatchDataset, make_loader
    from pinsage.train.trainer import make_optimizer, pair_batch_loss

    peak = {"rss": 0}
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.5):
            peak["rss"] = max(peak["rss"], tree_memory(os.getpid())[0])

    threading.Thread(target=poll, daemon=True).start()
    t0 = time.perf_counter()
    files = sorted(Path(folder).glob("edges-*.npy"))
    total = sum(np.load(f, mmap_mode="r").shape[0] for f in files)
    users = np.empty(total, dtype=np.int32)
    items = np.empty(total, dtype=np.int32)
    at = 0
    for f in files:
        e = np.load(f, mmap_mode="r")
        users[at:at + len(e)], items[at:at + len(e)] = e[:, 0], e[:, 1]
        at += len(e)
    g = InteractionGraph.from_edges(users, items, num_groups=n_users, num_items=n_items)
    del users, items
    graph_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    # positive pairs: a random edge's item and another random item of its group (the untimed pairs)
    e = rng.integers(0, g.num_edges, pairs)
    grp = np.searchsorted(g.group_indptr, e, side="right") - 1
    lo, deg = g.group_indptr[grp], np.diff(g.group_indptr)[grp]
    other = g.group_items[lo + rng.integers(0, deg)]
    keep = other != g.group_items[e]
    pair_arr = np.stack([g.group_items[e][keep], other[keep]], 1).astype(np.int32)
    features = np.empty((n_items, feature_dim + 1), dtype=np.float32)
    for a in range(0, n_items, 1 << 22):
        b = min(n_items, a + (1 << 22))
        features[a:b, :feature_dim] = np.random.default_rng([1, a]).standard_normal((b - a, feature_dim))
    features[:, feature_dim] = log_degree_feature(g.item_degree).ravel()
    sampler = ImportanceSampler(g, num_walks=10, walk_length=3, restart_prob=0.5, num_neighbors=10, num_threads=1)
    cfg = TrainConfig()
    ds = PairBatchDataset(pair_arr, n_items, sampler, 1, features, None, 512, cfg.easy_negatives, 0, 1,
                          pairs_per_epoch=len(pair_arr))
    model = PinSage.from_settings(n_items, feature_dim + 1, ModelConfig(id_dim=0, spectral_dim=0))
    opt = make_optimizer(model, cfg.lr)
    torch.set_num_threads(1)
    setup_s = time.perf_counter() - t0 - graph_s
    t1 = time.perf_counter()
    n_pairs, steps, last = 0, 0, float("nan")
    for batch in make_loader(ds, 1):
        loss = pair_batch_loss(model(batch.blocks, batch.features), batch, cfg, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n_pairs += int(batch.query.numel())
        steps += 1
        last = float(loss.detach())
    train_s = time.perf_counter() - t1
    stop.set()
    peak["rss"] = max(peak["rss"], tree_memory(os.getpid())[0])
    return {"graph_build_s": graph_s, "setup_s": setup_s, "graph_mb": g.nbytes / 2**20, "train_s": train_s,
            "pairs": n_pairs, "steps": steps, "pairs_per_s": n_pairs / train_s, "last_loss": last,
            "peak_tree_rss_mb": peak["rss"] / 2**20}


def _run_child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                                        os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        kind, rest = argv[1], argv[2:]
        if kind == "edges":
            result = child_edges(rest[0], *map(int, rest[1:]))
        elif kind == "build":
            result = child_build(rest[0], rest[1], int(rest[2]))
        elif kind == "train":
            result = child_train(rest[0], *map(int, rest[1:]))
        else:
            result = child_sample(rest[0], float(rest[1]), int(rest[2]))
        print(json.dumps(result))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True, help="working directory for the edge files and the store (removed after)")
    p.add_argument("--scale", type=float, default=1.0, help="fraction of graph XL (items, users and draws)")
    p.add_argument("--parts", type=int, default=20, help="edge files")
    p.add_argument("--chunk-edges", type=int, default=1 << 22, help="edges per chunk of the out-of-core build")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the store and the edge files")
    p.add_argument("--train", type=int, default=0, metavar="PAIRS",
                   help="also train one epoch of this many pairs on the plain graph (content-only inputs)")
    p.add_argument("--out", default="bench_out/scale_xl.json")
    args = p.parse_args(argv)
    n_items, n_users, n_draws = (max(2, int(round(x * args.scale))) for x in XL)
    work = Path(args.dir)
    edges, store = work / "edges", work / "store"
    if work.exists():
        shutil.rmtree(work)
    edges.mkdir(parents=True)
    report: dict = {"items": n_items, "users": n_users, "draws": n_draws,
                    "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    try:
        report["edges"] = e = _run_child("edges", str(edges), str(n_items), str(n_users), str(n_draws), str(args.parts))
        print(f"edges: {n_draws:,} draws in {e['parts']} files ({e['input_mb']:,.0f} MB) in {e['edges_s']:.0f} s", flush=True)
        report["build"] = b = _run_child("build", str(edges), str(store), str(args.chunk_edges))
        m = b["mem"]
        print(f"build: {b['num_edges']:,} edges over {b['num_items']:,} items and {b['num_groups']:,} groups in "
              f"{b['build_s']:.0f} s; {b['bytes_per_edge']:.2f} B/edge ({b['store_mb']:,.0f} MB on disk); peak RSS "
              f"{m['peak_rss_mb']:,.0f} MB (memory-mapped pages included), peak anonymous {m['peak_anon_mb']:,.0f} MB",
              flush=True)
        if args.train:
            report["train"] = t = _run_child("train", str(edges), str(n_items), str(n_users), str(args.train), "16")
            print(f"train: plain graph ({t['graph_mb']:,.0f} MB) built in {t['graph_build_s']:.0f} s, inputs in "
                  f"{t['setup_s']:.0f} s; {t['pairs']:,} pairs in {t['steps']} steps, {t['train_s']:.0f} s: "
                  f"{t['pairs_per_s']:,.0f} pairs/s; peak RSS of the process tree {t['peak_tree_rss_mb']:,.0f} MB",
                  flush=True)
        if not args.keep:
            shutil.rmtree(edges)
        report["sample"] = s = _run_child("sample", str(store), str(args.seconds), str(args.repeats))
        for c, v in s["seeds_per_s"].items():
            print(f"sample ({c}): {v['median']:,.0f} seeds/s (runs {', '.join(f'{r:,.0f}' for r in v['runs'])})",
                  flush=True)
        print(f"sample: peak RSS {s['mem']['peak_rss_mb']:,.0f} MB, peak anonymous {s['mem']['peak_anon_mb']:,.0f} MB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
