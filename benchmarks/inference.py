"""Inference benchmark (DESIGN.md, Benchmarks): items embedded per second, layer-wise full-graph
inference (:func:`pinsage.inference.embed_all`, the paper's MapReduce job) against per-item sampled
inference (:func:`pinsage.inference.embed_sampled`: a fresh K-hop tree per batch of items).

Both run the same model on the same fixed importance neighbourhoods (default sampler settings:
200 walks, T = 50) and the same features, so they compute the same embeddings (checked: the
sampled rows must match the full-graph rows). The model is **randomly initialised** (the cost does
not depend on the weights) with the default architecture: 64-d id embeddings plus ``--feature-dim``
random content features (default 65: the 64 spectral columns plus the log degree), hidden 128,
2 layers, 64-d output. ``embed_all`` embeds every item; ``embed_sampled`` embeds ``--sample``
random items (batches of ``--batch-size``) and its time for the whole catalogue is extrapolated
linearly. Median of ``--repeats`` runs, the two methods alternating.

    python benchmarks/inference.py --sizes S L --sample 20000 --repeats 3 --num-layers 1 2

``--out-memmap DIR`` makes ``embed_all`` write the embeddings into a ``.npy`` memory map in DIR
and keep its per-layer tables there (the larger-than-RAM path).

Writes a markdown table to stdout and JSON to ``--out`` (default ``bench_out/inference.json``).
Needs numpy, torch and pinsage only.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pinsage.config import PinSageConfig
from pinsage.datasets.synthetic import SIZES, powerlaw_bipartite
from pinsage.sampling import all_neighborhoods
from pinsage.graph import InteractionGraph
from pinsage.inference import embed_all, embed_sampled
from pinsage.nn.model import PinSage
from pinsage.sampling.importance import ImportanceSampler

SIZES = {**SIZES, "XS": (2_000, 1_000, 20_000)}


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "loadavg_at_start": os.getloadavg(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["S"], choices=sorted(SIZES))
    p.add_argument("--sample", type=int, default=20_000, help="items embedded by the sampled method")
    p.add_argument("--batch-size", type=int, default=1024, help="seeds per embed_sampled batch")
    p.add_argument("--chunk-size", type=int, default=8192, help="rows per embed_all chunk")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--feature-dim", type=int, default=None, help="random content features (default 65)")
    p.add_argument("--num-layers", nargs="+", type=int, default=None,
                   help="model depths K to compare (default: the config's model.num_layers)")
    p.add_argument("--out-memmap", default=None, help="directory for embed_all's memory-mapped output")
    p.add_argument("--out", default="bench_out/inference.json")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    cfg = PinSageConfig()
    m, s = cfg.model, cfg.sampler
    feature_dim = args.feature_dim if args.feature_dim is not None else m.spectral_dim + int(m.log_degree)
    info = machine()
    print(f"machine: {info}", flush=True)
    rows = []
    for size in args.sizes:
        n_items, n_users, n_draws = SIZES[size]
        users, items = powerlaw_bipartite(n_items, n_users, n_draws)
        graph = InteractionGraph.from_edges(users, items, num_groups=n_users, num_items=n_items)
        del users, items
        t0 = time.perf_counter()
        nb = all_neighborhoods(ImportanceSampler(graph, s.num_walks, s.walk_length, s.restart_prob,
                                                 s.num_neighbors, seed=0))
        nb_s = time.perf_counter() - t0
        del graph
        rng = np.random.default_rng(0)
        feats = rng.standard_normal((n_items, feature_dim), dtype=np.float32) if feature_dim else None
        sample = np.sort(rng.choice(n_items, min(args.sample, n_items), replace=False))
        print(f"graph {size}: {n_items:,} items, {nb.nnz:,} neighbourhood entries ({nb_s:.1f} s)", flush=True)
        for layers in args.num_layers or [m.num_layers]:
            torch.manual_seed(0)
            kw = {k: v for k, v in vars(m).items() if k in inspect.signature(PinSage).parameters}
            kw.update(num_layers=layers, feature_dim=feature_dim)
            model = PinSage(n_items, **kw)
            rows.append(measure(size, layers, model, nb, feats, sample, args))
            del model
        del nb, feats

    print("\n| graph | K | items | embed_all items/s | embed_all s | sampled items/s | sampled s (extrapolated) "
          "| speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['graph']} | {r['num_layers']} | {r['items']:,} | {r['embed_all_items_per_s']:,.0f} | "
              f"{r['embed_all_s']:.1f} | {r['embed_sampled_items_per_s']:,.0f} | "
              f"{r['embed_sampled_extrapolated_s']:,.0f} | {r['speedup']:.1f}x |")
    info["loadavg_at_end"] = os.getloadavg()
    info["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "args": vars(args), "feature_dim": feature_dim,
                               "model": "randomly initialised, default architecture", "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


def measure(size: str, layers: int, model: PinSage, nb, feats, sample: np.ndarray, args) -> dict:
    """Median timings of embed_all (every item) and embed_sampled (``sample``), alternating."""
    n_items = nb.num_nodes
    full_t, samp_t, max_err = [], [], 0.0
    for rep in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="pinsage-embed-", dir=args.out_memmap) as tmp:
            kw = {}
            if args.out_memmap:
                kw = dict(out=np.lib.format.open_memmap(Path(tmp) / "emb.npy", mode="w+", dtype=np.float32,
                                                        shape=(n_items, model.out_channels)), scratch_dir=tmp)
            t0 = time.perf_counter()
            z = embed_all(model, nb, feats, chunk_size=args.chunk_size, device=args.device, **kw)
            _sync(args.device)
            full_t.append(time.perf_counter() - t0)
            z_sample = torch.as_tensor(np.asarray(z[sample])).float().cpu()
            del z, kw
        t0 = time.perf_counter()
        zs = embed_sampled(model, sample, nb, feats, batch_size=args.batch_size, device=args.device)
        _sync(args.device)
        samp_t.append(time.perf_counter() - t0)
        err = float((zs.cpu() - z_sample).abs().max())
        max_err = max(max_err, err if err == err else float("inf"))  # NaN counts as a mismatch
        print(f"  [{rep + 1}/{args.repeats}] K={layers} embed_all {n_items / full_t[-1]:,.0f} items/s "
              f"({full_t[-1]:.1f} s); embed_sampled {len(sample) / samp_t[-1]:,.0f} items/s ({samp_t[-1]:.1f} s "
              f"for {len(sample):,}); max |diff| {max_err:.1e} (load {os.getloadavg()[0]:.1f})", flush=True)
    full_rate = n_items / statistics.median(full_t)
    samp_rate = len(sample) / statistics.median(samp_t)
    return {"graph": size, "num_layers": layers, "items": n_items, "neighborhood_entries": nb.nnz,
            "embed_all_s": statistics.median(full_t), "embed_all_items_per_s": full_rate,
            "sampled_items": len(sample), "embed_sampled_s": statistics.median(samp_t),
            "embed_sampled_items_per_s": samp_rate, "embed_sampled_extrapolated_s": n_items / samp_rate,
            "speedup": full_rate / samp_rate, "max_abs_diff": max_err, "runs_all_s": full_t,
            "runs_sampled_s": samp_t}


if __name__ == "__main__":
    sys.exit(main())
