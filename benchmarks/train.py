"""Training benchmark (DESIGN.md, Benchmarks): pairs per second, seconds per 1,000 steps and the
share of step time spent waiting for data, on the power-law scale graphs, for 0, 1 and 2 loader
workers.

Each setting is a real :meth:`PinSageEmbedder.fit` with the default :class:`PinSageConfig` (whatever
the library's defaults are at the time: model, sampler, pairs, negatives, loss, loader, trainer),
limited to a bounded number of optimiser steps: ``train.epochs = --epochs`` (default 1) and
``train.pairs_per_epoch = (--warmup-steps + --steps) * batch_size``, ``train.num_workers`` set per
setting. Three things are swapped out, so that a setting costs only its training steps:
the content features are random stand-ins of the default input width (``--feature-dim``, default
``spectral_dim + 1``: the truncated-SVD columns plus the log degree; the per-step cost depends only on
the width), the importance neighbourhoods are computed once per graph and reused (the estimator's
the neighbourhoods and the node inputs are patched to return them), and the final full-graph embedding is skipped
(``benchmarks/inference.py`` measures it). The trainer's own JSONL log gives the figures: it records
the cumulative data-wait and compute seconds every ``log_every`` steps, so the measured window is
the last epoch's steps after its first ``--warmup-steps`` (worker start-up excluded). torch uses
``--threads`` (default: all cores) intra-op threads, reduced by the estimator to ``cores - workers``
when loader workers run. ``--epochs 2`` measures an epoch with hard negatives (the curriculum adds
``epoch - 1`` per pair).

Settings are interleaved (for each repeat: every size, every worker count) so that a change in the
machine's load hits all of them alike; figures are medians over ``--repeats``.

    python benchmarks/train.py --sizes S L --workers 0 1 2 --steps 200 --repeats 3
    python benchmarks/train.py --sizes L --device cuda --amp bf16 --workers 1 2 4

``--cli-rss`` instead measures the peak memory of the real command line on each graph: the graph is
written to a Parquet file (``user``, ``item``), ``--content-dim`` random float32 content features to
another (``item``, ``f0``...), a config YAML keeps the defaults but limits the run to ``--cli-epochs``
epochs of ``--cli-pairs`` pairs, and ``python -m pinsage.cli train`` runs as a child process. Reported:
the largest single-process peak RSS among the children (``getrusage(RUSAGE_CHILDREN).ru_maxrss``, what
``/usr/bin/time -v`` prints) and the peak of the summed PSS of the child's process tree (DataLoader
workers included, shared pages counted once), sampled every 0.2 s, with the run's phase timings.

    python benchmarks/train.py --sizes L --cli-rss --cli-epochs 2 --cli-pairs 25600

Writes a markdown table to stdout and JSON to ``--out`` (default ``bench_out/train.json``).
Needs numpy, torch and pinsage only (``--cli-rss`` also pandas, pyarrow and pyyaml).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

import pinsage.estimator as estimator_module
from pinsage.config import PinSageConfig
from pinsage.datasets.synthetic import SIZES, powerlaw_bipartite
from pinsage.estimator import PinSageEmbedder
from pinsage.sampling import all_neighborhoods
from pinsage.graph import InteractionGraph

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import tree_memory  # noqa: E402  (benchmarks/memory.py: /proc process-tree memory)
from pinsage.sampling.importance import ImportanceSampler

#: a tiny graph for the smoke test: 2k items, 1k users, 20k draws
SIZES = {**SIZES, "XS": (2_000, 1_000, 20_000)}


def machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "loadavg_at_start": load,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def build(size: str, cfg: PinSageConfig, feature_dim: int, seed: int = 0) -> dict:
    """Graph, importance neighbourhoods and random features for graph ``size``."""
    n_items, n_users, n_draws = SIZES[size]
    t0 = time.perf_counter()
    users, items = powerlaw_bipartite(n_items, n_users, n_draws, seed=seed)
    graph = InteractionGraph.from_edges(users, items, num_groups=n_users, num_items=n_items)
    del users, items
    t_graph = time.perf_counter() - t0
    s = cfg.sampler
    t0 = time.perf_counter()
    nb = all_neighborhoods(ImportanceSampler(graph, s.num_walks, s.walk_length, s.restart_prob,
                                             s.num_neighbors, seed=cfg.train.seed))
    t_nb = time.perf_counter() - t0
    rng = np.random.default_rng(seed + 1)
    feats = rng.standard_normal((n_items, feature_dim), dtype=np.float32) if feature_dim else None
    bpe = graph.nbytes / graph.num_edges
    print(f"graph {size}: {graph.num_items:,} items, {graph.num_groups:,} groups, {graph.num_edges:,} edges "
          f"({t_graph:.1f} s, {bpe:.2f} bytes/edge); neighbourhoods {t_nb:.1f} s ({nb.nnz:,} entries)", flush=True)
    return {"graph": graph, "nb": nb, "features": feats, "bytes_per_edge": bpe,
            "setup_s": {"graph": t_graph, "neighborhoods": t_nb}}


class _BenchEmbedder(PinSageEmbedder):
    """The real estimator with given features and no final full-graph embedding."""

    def __init__(self, config: PinSageConfig, device: str) -> None:
        super().__init__(config, device=device, progress=False)

    def embed(self, chunk_size: int = 8192):
        return None


def run_setting(data: dict, cfg: PinSageConfig, workers: int, warmup: int, steps: int, epochs: int,
                device: str, threads: int | None, log_every: int) -> dict:
    """``fit`` with ``epochs`` epochs of ``warmup + steps`` steps; figures over the last epoch's last
    ``steps`` steps, from the trainer's log."""
    b = cfg.train.batch_size
    run_cfg = cfg.override(train__epochs=epochs, train__pairs_per_epoch=(warmup + steps) * b,
                           train__num_workers=workers, train__log_every=log_every)
    before = torch.get_num_threads()
    n_threads = threads or os.cpu_count() or 1
    torch.set_num_threads(n_threads)
    try:
        with tempfile.TemporaryDirectory(prefix="pinsage-bench-") as work, \
                mock.patch.object(estimator_module, "importance_neighborhoods", lambda *a, **k: data["nb"]), \
                mock.patch.object(estimator_module, "fit_node_inputs", lambda *a, **k: (data["features"], None)):
            est = _BenchEmbedder(run_cfg, device)
            t0 = time.perf_counter()
            est.fit(data["graph"], work_dir=work)
            wall = time.perf_counter() - t0
            log = [json.loads(line) for line in (Path(work) / "train_log.jsonl").read_text().splitlines()]
    finally:
        torch.set_num_threads(before)
    per_step = [r for r in log if "loss" in r and r["epoch"] == epochs]
    epoch = [r for r in log if "epoch_loss" in r][-1]
    first = max([r["step"] for r in log if "epoch_loss" in r and r["epoch"] < epochs], default=0)
    start = max((r for r in per_step if r["step"] - first <= warmup), key=lambda r: r["step"], default=None)
    if start is None:  # no record inside the warm-up: measure the whole epoch
        s0, w0, c0 = first, 0.0, 0.0
    else:
        s0, w0, c0 = start["step"], start["data_wait_s"], start["compute_s"]
    end = per_step[-1]
    n = end["step"] - s0
    wait, compute = end["data_wait_s"] - w0, end["compute_s"] - c0
    step_s = (wait + compute) / max(n, 1)
    # what the estimator sets while training: one core left per loader worker
    used = max(1, min(n_threads, (os.cpu_count() or 1) - workers)) if device == "cpu" and workers else n_threads
    return {"workers": workers, "threads": used if device == "cpu" else None, "steps_measured": n,
            "fit_wall_s": wall, "timings": est.timings_, "s_per_1000_steps": 1000 * step_s,
            "pairs_per_s": b / step_s, "data_wait_share": wait / max(wait + compute, 1e-12),
            "epoch_data_wait_share": epoch["data_wait_share"], "final_loss": end["loss"],
            "hard_negatives": epoch.get("hard_negatives")}


def _tree_pss_bytes(root: int) -> int:
    """Summed proportional set size of ``root`` and its descendants (Linux ``/proc``), 0 if gone."""
    return tree_memory(root)[1]


def cli_rss(size: str, content_dim: int, epochs: int, pairs: int, workdir: Path, extra: dict | None = None) -> dict:
    """Peak memory of ``pinsage train`` on graph ``size`` (see the module doc)."""
    import pandas as pd
    import yaml

    n_items, n_users, n_draws = SIZES[size]
    users, items = powerlaw_bipartite(n_items, n_users, n_draws)
    inter = workdir / f"{size}.parquet"
    pd.DataFrame({"user": users, "item": items}).to_parquet(inter, index=False)
    n_edges = len(users)
    present = np.flatnonzero(np.bincount(items, minlength=n_items))  # items with at least one edge
    del users, items
    feats_file = None
    if content_dim:
        feats_file = workdir / f"{size}_features.parquet"
        rng = np.random.default_rng(1)
        cols = {"item": present}
        cols.update({f"f{j}": rng.standard_normal(len(present), dtype=np.float32) for j in range(content_dim)})
        pd.DataFrame(cols).to_parquet(feats_file, index=False)
        del cols
    cfg_file = workdir / "config.yaml"
    cfg = {"train": {"epochs": epochs, "pairs_per_epoch": pairs}}
    for key, value in (extra or {}).items():  # "section__key" -> value
        section, _, name = key.partition("__")
        cfg.setdefault(section, {})[name] = value
    cfg_file.write_text(yaml.safe_dump(cfg))
    out = workdir / f"run_{size}"
    cmd = [sys.executable, "-m", "pinsage.cli", "train", "--interactions", str(inter), "--user-col", "user",
           "--item-col", "item", "--config", str(cfg_file), "--out", str(out), "--overwrite", "--quiet"]
    if feats_file:
        cmd += ["--item-features", str(feats_file), "--item-key", "item"]
    print("running: " + " ".join(cmd), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak_pss, samples = 0, []
    while proc.poll() is None:
        pss = _tree_pss_bytes(proc.pid)
        peak_pss = max(peak_pss, pss)
        samples.append((round(time.perf_counter() - t0, 1), pss))
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"pinsage train failed with exit code {proc.returncode}")
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kB on Linux
    run = json.loads((out / "run.json").read_text())
    emb = np.load(out / "item_embeddings.npy", mmap_mode="r")
    res = {"graph": size, "edges": n_edges, "content_dim": content_dim, "epochs": epochs, "pairs_per_epoch": pairs,
           "config": cfg,
           "wall_s": wall, "peak_rss_bytes": maxrss, "peak_rss_gib": maxrss / 2**30,
           "rss_measure_valid": maxrss > before * 1024, "peak_tree_pss_gib": peak_pss / 2**30,
           "timings": run.get("timings"), "embeddings_shape": list(emb.shape), "command": " ".join(cmd),
           "pss_trace_gib": [(t, round(b / 2**30, 3)) for t, b in samples[:: max(1, len(samples) // 200)]]}
    print(f"{size}: pinsage train peak RSS {res['peak_rss_gib']:.2f} GiB, peak tree PSS "
          f"{res['peak_tree_pss_gib']:.2f} GiB, {wall:.0f} s; timings {res['timings']}", flush=True)
    return res


def parse_variant(text: str) -> tuple[str, dict]:
    """``"name:section.key=value,..."`` -> ``(name, {"section__key": value})`` (values parsed as YAML)."""
    import yaml

    name, _, rest = text.partition(":")
    over = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        over[key.strip().replace(".", "__")] = yaml.safe_load(value)
    return name or "default", over


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["S"], choices=sorted(SIZES))
    p.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2], help="loader worker counts to compare")
    p.add_argument("--steps", type=int, default=200, help="measured optimiser steps per setting")
    p.add_argument("--warmup-steps", type=int, default=20, help="steps before the measured window")
    p.add_argument("--repeats", type=int, default=1, help="runs per setting (median reported)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--amp", default="off", choices=["auto", "bf16", "off"], help="train.amp")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: all cores; the estimator lowers it to cores - workers "
                        "while loader workers run)")
    p.add_argument("--feature-dim", type=int, default=None,
                   help="width of the random content features (default: model.spectral_dim + 1)")
    p.add_argument("--epochs", type=int, default=1,
                   help="epochs per setting; the last is measured (2: with hard negatives)")
    p.add_argument("--batch-size", type=int, default=None, help="override train.batch_size")
    p.add_argument("--num-walks", type=int, default=None, help="override sampler.num_walks")
    p.add_argument("--num-neighbors", type=int, default=None, help="override sampler.num_neighbors (T)")
    p.add_argument("--variant", action="append", default=None, metavar="NAME:SECTION.KEY=VALUE,...",
                   help="config variants compared side by side (default: one, the defaults), e.g. "
                        "'dense ids:model.sparse_id_min_items=1000000000'")
    p.add_argument("--cli-rss", action="store_true", help="measure the peak memory of `pinsage train` instead")
    p.add_argument("--content-dim", type=int, default=32, help="--cli-rss: random content feature columns")
    p.add_argument("--cli-epochs", type=int, default=2, help="--cli-rss: train.epochs")
    p.add_argument("--cli-pairs", type=int, default=25_600, help="--cli-rss: train.pairs_per_epoch")
    p.add_argument("--cli-set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="--cli-rss: more config settings for the run")
    p.add_argument("--workdir", default=None, help="--cli-rss: where the data files go (default: a temp dir)")
    p.add_argument("--out", default="bench_out/train.json")
    args = p.parse_args(argv)

    if args.cli_rss:
        info = machine()
        print(f"machine: {info}", flush=True)
        with tempfile.TemporaryDirectory(prefix="pinsage-rss-", dir=args.workdir) as tmp:
            extra = parse_variant("cli:" + ",".join(args.cli_set))[1]
            rows = [cli_rss(size, args.content_dim, args.cli_epochs, args.cli_pairs, Path(tmp), extra)
                    for size in args.sizes]
        print("\n| graph | edges | peak RSS (GiB) | peak tree PSS (GiB) | wall (s) |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['graph']} | {r['edges']:,} | {r['peak_rss_gib']:.2f} | {r['peak_tree_pss_gib']:.2f} | "
                  f"{r['wall_s']:.0f} |")
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        info["loadavg_at_end"] = os.getloadavg()
        out.write_text(json.dumps({"machine": info, "args": vars(args), "cli_rss": rows}, indent=2))
        print(f"wrote {out}")
        return 0

    over: dict = {"train__amp": args.amp}
    if args.batch_size:
        over["train__batch_size"] = args.batch_size
    if args.num_walks:
        over["sampler__num_walks"] = args.num_walks
    if args.num_neighbors:
        over["sampler__num_neighbors"] = args.num_neighbors
    cfg = PinSageConfig().override(**over)
    feature_dim = args.feature_dim
    if feature_dim is None:
        feature_dim = cfg.model.spectral_dim + int(cfg.model.log_degree)
    log_every = max(1, min(10, args.warmup_steps or 10, args.steps))
    info = machine()
    print(f"machine: {info}", flush=True)
    data = {size: build(size, cfg, feature_dim) for size in args.sizes}

    variants = [parse_variant(v) for v in (args.variant or ["default:"])]
    if any(k.startswith("sampler__") or k in ("model__spectral_dim", "model__log_degree")
           for _, o in variants for k in o):
        p.error("variants cannot change the sampler or the input width (neighbourhoods and features are built "
                "once per graph); use --num-walks / --num-neighbors / --feature-dim")
    runs: dict[tuple[str, str, int], list[dict]] = {}
    for rep in range(args.repeats):
        for size in args.sizes:
            for name, over_v in variants:
                vcfg = cfg.override(**over_v) if over_v else cfg
                for w in args.workers:
                    r = run_setting(data[size], vcfg, w, args.warmup_steps, args.steps, args.epochs, args.device,
                                    args.threads, log_every)
                    runs.setdefault((size, name, w), []).append(r)
                    print(f"  [{rep + 1}/{args.repeats}] {size} {name} workers={w}: {r['pairs_per_s']:,.0f} pairs/s, "
                          f"{r['s_per_1000_steps']:.0f} s/1000 steps, data wait {100 * r['data_wait_share']:.1f}% "
                          f"(load {os.getloadavg()[0]:.1f})", flush=True)

    rows = []
    for (size, name, w), rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs)
               for k in ("pairs_per_s", "s_per_1000_steps", "data_wait_share")}
        rows.append({"graph": size, "variant": name, "edges": data[size]["graph"].num_edges, "workers": w,
                     "threads": rs[0]["threads"], **med, "runs": rs})
    # step time against the first size: ratio of the medians, and the median of the per-repeat ratios
    # (each repeat runs the sizes back to back, so a load change between repeats cancels out)
    first = {(r["variant"], r["workers"]): r for r in rows if r["graph"] == args.sizes[0]}
    print(f"\n| graph | variant | workers | torch threads | pairs/s | s / 1000 steps | data wait | vs {args.sizes[0]} "
          f"(per-repeat) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        b = first.get((r["variant"], r["workers"]))
        r["ratio_vs_first_size"] = r["s_per_1000_steps"] / b["s_per_1000_steps"] if b else None
        r["paired_ratio_vs_first_size"] = statistics.median(
            x["s_per_1000_steps"] / y["s_per_1000_steps"] for x, y in zip(r["runs"], b["runs"])) if b else None
        thr = r["threads"] if r["threads"] is not None else "-"
        print(f"| {r['graph']} | {r['variant']} | {r['workers']} | {thr} | {r['pairs_per_s']:,.0f} | "
              f"{r['s_per_1000_steps']:.0f} | {100 * r['data_wait_share']:.1f}% | {r['ratio_vs_first_size']:.2f}x "
              f"({r['paired_ratio_vs_first_size']:.2f}x) |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info["loadavg_at_end"] = os.getloadavg()
    out.write_text(json.dumps({
        "machine": info, "args": vars(args), "config": cfg.to_dict(), "feature_dim": feature_dim,
        "setup_s": {size: d["setup_s"] for size, d in data.items()},
        "bytes_per_edge": {size: d["bytes_per_edge"] for size, d in data.items()}, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
