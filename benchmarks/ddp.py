"""Data-parallel training check: ``pinsage train`` under ``torchrun --nproc_per_node=N`` (gloo on CPU)
against one process, at the same global batch (``train.batch_size`` is global: each of N ranks takes
``batch_size / N`` pairs of every batch), on MovieLens-100K with DESIGN.md's protocol.

For each process count the real command line trains on the training part of the leave-last-out
split (``--validation`` for the validation split) with the default config (``--set`` overrides),
then the embeddings are scored like ``benchmarks/quality.py`` does. Reported: HR@10, NDCG@10, MRR,
training seconds, pairs per second (pairs per epoch x epochs / training seconds) and the share of
step time waiting for data, from rank 0's ``train_log.jsonl``. ``--seeds`` repeats each setting
with other seeds (run-to-run spread, to tell a real difference from noise).

    python benchmarks/ddp.py --data ../shared/data/ml-100k --procs 1 2 --seeds 0 1

The data is read from ``--data`` and the training CSV is written to a temporary directory
(never into the repository).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from pinsage.datasets import read_ml100k
from pinsage.evaluation import evaluate_embeddings, leave_last_out


def train(csv: Path, out: Path, procs: int, seed: int, config: Path | None) -> tuple[float, dict]:
    cli = ["-m", "pinsage.cli", "train", "--interactions", str(csv), "--user-col", "user_id", "--item-col",
           "item_id", "--time-col", "timestamp", "--out", str(out), "--quiet", "--overwrite", "--seed", str(seed)]
    if config:
        cli += ["--config", str(config)]
    if procs == 1:
        cmd = [sys.executable] + cli
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"] + cli
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # what torchrun sets for N > 1; the same for one process
    print("running: " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0
    return wall, json.loads((out / "run.json").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/ml-100k", help="MovieLens-100K directory (u.data)")
    p.add_argument("--procs", nargs="+", type=int, default=[1, 2])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--validation", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="config override")
    p.add_argument("--out", default="bench_out/ddp.json")
    args = p.parse_args(argv)

    df = read_ml100k(args.data)
    split = leave_last_out(df, "user_id", "item_id", time_col="timestamp", validation=args.validation)
    overrides: dict = {}
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        overrides.setdefault(section, {})[name] = yaml.safe_load(value)
    info = {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_at_start": os.getloadavg()}
    print(f"machine: {info}; split: {split.summary()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pinsage-ddp-") as tmp:
        tmp = Path(tmp)
        csv = tmp / "train.csv"
        split.train.to_csv(csv, index=False)
        config = None
        if overrides:
            config = tmp / "config.yaml"
            config.write_text(yaml.safe_dump(overrides))
        for seed in args.seeds:
            for n in args.procs:
                run = tmp / f"run_{n}_{seed}"
                wall, meta = train(csv, run, n, seed, config)
                cfg = yaml.safe_load((run / "config.yaml").read_text())
                log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
                epochs = [r for r in log if "epoch_loss" in r]
                steps = epochs[-1]["step"]
                train_s = meta["timings"]["train_s"]
                wait = sum(r["data_wait_s"] for r in epochs)
                busy = sum(r["data_wait_s"] + r["compute_s"] for r in epochs)
                emb = np.load(run / "item_embeddings.npy")
                ids = np.load(run / "item_ids.npy")
                m = evaluate_embeddings(emb, split, item_ids=ids)
                row = {"procs": n, "seed": seed, **{k: m[k] for k in ("HR@10", "NDCG@10", "MRR")},
                       "train_s": train_s, "wall_s": wall, "steps": steps,
                       "pairs_per_s": steps * cfg["train"]["batch_size"] / train_s,
                       "data_wait_share": wait / max(busy, 1e-9), "final_loss": epochs[-1]["epoch_loss"]}
                rows.append(row)
                print(f"procs={n} seed={seed}: HR@10 {row['HR@10']:.3f} NDCG@10 {row['NDCG@10']:.3f} "
                      f"MRR {row['MRR']:.3f}; train {train_s:.0f} s, {row['pairs_per_s']:,.0f} pairs/s, "
                      f"data wait {100 * row['data_wait_share']:.1f}% (load {os.getloadavg()[0]:.1f})", flush=True)

    print("\n| processes | seed | HR@10 | NDCG@10 | MRR | train s | pairs/s | data wait |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['procs']} | {r['seed']} | {r['HR@10']:.3f} | {r['NDCG@10']:.3f} | {r['MRR']:.3f} | "
              f"{r['train_s']:.0f} | {r['pairs_per_s']:,.0f} | {100 * r['data_wait_share']:.1f}% |")
    for n in args.procs:
        sel = [r for r in rows if r["procs"] == n]
        print(f"procs={n}: median HR@10 {statistics.median(r['HR@10'] for r in sel):.3f}, "
              f"median pairs/s {statistics.median(r['pairs_per_s'] for r in sel):,.0f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info["loadavg_at_end"] = os.getloadavg()
    out.write_text(json.dumps({"machine": info, "args": vars(args), "rows": rows}, indent=2, default=float))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
