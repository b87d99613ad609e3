"""Convolution micro-benchmark: the importance-weighted neighbour sum of ``ImportanceConv``
(:math:`n_v = \\sum_u w_{uv} m_u`), forward + backward, by four implementations, side by side:

* ``library (CSR)``: ``ImportanceConv.weighted_sum``: on CPU one sparse-CSR x dense product built
  from the destination counts (edges are grouped by destination);
* ``sparse.mm COO``: one sparse-COO x dense product (the library's path before, and on CUDA);
* ``index_add``: gather, multiply, scatter with torch's ``index_add_`` (PyG's CPU path);
* ``torch_scatter.scatter``: gather, multiply, ``torch_scatter.scatter(reduce="sum")``;
* ``torch_scatter.segment_csr``: gather, multiply, ``segment_csr`` over the destination-sorted edges
  (blocks and full-graph chunks list each node's neighbours contiguously).

The last two need the optional ``torch-scatter`` package and are skipped without it. Shapes are
those of a training step and of a full-graph inference chunk on the benchmark graphs (T = 50
neighbours per destination, 128 channels). Median of ``--repeats`` timings per implementation,
interleaved; ``--threads`` torch threads (default 1: one core for the model, one for the loader).

    python benchmarks/conv.py --repeats 7
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

import torch

from pinsage.nn.conv import ImportanceConv

try:  # optional
    import torch_scatter
except ImportError:  # pragma: no cover - depends on the environment
    torch_scatter = None

#: name -> (n_dst, n_src, neighbours per destination)
SHAPES = {
    "train block K=1 (graph L)": (1_524, 30_000, 50),
    "train block 0 of K=2 (graph L)": (30_000, 200_000, 50),
    "inference chunk (graph S)": (8_192, 100_000, 50),
}


def make(n_dst: int, n_src: int, t: int, h: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n_src, (n_dst * t,), generator=g)
    dst = torch.arange(n_dst).repeat_interleave(t)
    w = torch.rand(n_dst * t, generator=g)
    m = torch.randn(n_src, h, generator=g)
    return torch.stack([src, dst]), w, m


def impl_library(m, edge_index, w, n_dst):
    return ImportanceConv.weighted_sum(m, edge_index, w, n_dst)


def impl_sparse_coo(m, edge_index, w, n_dst):
    adj = torch.sparse_coo_tensor(edge_index.flip(0), w, (n_dst, m.size(0)), check_invariants=False)
    return torch.sparse.mm(adj, m)


def impl_index_add(m, edge_index, w, n_dst):
    msg = m.index_select(0, edge_index[0]) * w.unsqueeze(1)
    return m.new_zeros(n_dst, m.size(1)).index_add_(0, edge_index[1], msg)


def impl_scatter(m, edge_index, w, n_dst):
    msg = m.index_select(0, edge_index[0]) * w.unsqueeze(1)
    return torch_scatter.scatter(msg, edge_index[1], dim=0, dim_size=n_dst, reduce="sum")


def impl_segment_csr(m, edge_index, w, n_dst):
    msg = m.index_select(0, edge_index[0]) * w.unsqueeze(1)
    ptr = torch.zeros(n_dst + 1, dtype=torch.long)
    ptr[1:] = torch.bincount(edge_index[1], minlength=n_dst).cumsum(0)
    return torch_scatter.segment_csr(msg, ptr, reduce="sum")


IMPLS = {"library (CSR)": impl_library, "sparse.mm COO": impl_sparse_coo, "index_add": impl_index_add}
if torch_scatter is not None:
    IMPLS.update({"torch_scatter.scatter": impl_scatter, "torch_scatter.segment_csr": impl_segment_csr})


def time_once(fn, m, edge_index, w, n_dst) -> float:
    x = m.clone().requires_grad_(True)
    t0 = time.perf_counter()
    out = fn(x, edge_index, w, n_dst)
    out.square().sum().backward()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every shape (the smoke test uses 0.01)")
    p.add_argument("--out", default="bench_out/conv.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
            "torch_scatter": getattr(torch_scatter, "__version__", None), "threads": args.threads,
            "loadavg_at_start": os.getloadavg()}
    print(f"machine: {info}", flush=True)
    rows = []
    for name, (n_dst, n_src, t) in SHAPES.items():
        n_dst, n_src = max(1, int(n_dst * args.scale)), max(1, int(n_src * args.scale))
        edge_index, w, m = make(n_dst, n_src, t, args.hidden)
        ref = impl_library(m, edge_index, w, n_dst)
        times: dict[str, list[float]] = {k: [] for k in IMPLS}
        for k, fn in IMPLS.items():  # check and warm up
            torch.testing.assert_close(fn(m, edge_index, w, n_dst), ref, atol=1e-4, rtol=1e-4)
            time_once(fn, m, edge_index, w, n_dst)
        for _ in range(args.repeats):
            for k, fn in IMPLS.items():
                times[k].append(time_once(fn, m, edge_index, w, n_dst))
        base = statistics.median(times["library (CSR)"])
        for k, ts in times.items():
            med = statistics.median(ts)
            rows.append({"shape": name, "n_dst": n_dst, "n_src": n_src, "edges": n_dst * t, "impl": k,
                         "ms": 1000 * med, "vs_library": med / base, "runs_ms": [1000 * x for x in ts]})
            print(f"{name}: {k} {1000 * med:.1f} ms ({med / base:.2f}x the library)", flush=True)
    print("\n| shape | edges | implementation | fwd+bwd ms | vs the library |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['shape']} | {r['edges']:,} | {r['impl']} | {r['ms']:.1f} | {r['vs_library']:.2f}x |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info["loadavg_at_end"] = os.getloadavg()
    out.write_text(json.dumps({"machine": info, "args": vars(args), "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
