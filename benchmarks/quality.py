"""Quality benchmark: DESIGN.md's related-item protocol on MovieLens-100K, PinSage against the
baselines, every number from the same run.

PinSage is trained by the ``pinsage train`` command with its defaults on the training part of the
leave-last-out split (query and target of each user removed), then every method ranks the full
catalogue for each test user's query.

    python benchmarks/quality.py --data ../shared/data/ml-100k              # test split, defaults
    python benchmarks/quality.py --data ../shared/data/ml-100k --validation # for tuning
    python benchmarks/quality.py --data ../shared/data/ml-100k --ablations  # + config variants
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pinsage.cli import main as cli_main
from pinsage.datasets import read_ml100k, read_ml100k_items
from pinsage.evaluate import evaluate_embeddings, format_table, leave_last_out, run_baselines

#: name -> (config overrides as nested dict, use item features)
ABLATIONS: dict[str, tuple[dict, bool]] = {
    "pinsage (defaults)": ({}, False),
    "defaults, seed 1": ({"train": {"seed": 1}}, False),
    "defaults, seed 2": ({"train": {"seed": 2}}, False),
    "previous defaults (K=2, unit length, pairs alike, window 10)": (
        {"model": {"num_layers": 2, "magnitude": False}, "train": {"group_balance": 0.0, "pair_window": 10}}, False),
    "K=2 layers (the paper's)": ({"model": {"num_layers": 2}}, False),
    "unit-length embeddings (no learned length)": ({"model": {"magnitude": False}}, False),
    "every pair alike (no group balance)": ({"train": {"group_balance": 0.0}}, False),
    "pair window 10": ({"train": {"pair_window": 10}}, False),
    "+ content features (genres, year)": ({}, True),
    "mean pooling instead of importance": ({"model": {"aggr": "mean"}}, False),
    "no hard negatives (curriculum off)": ({"train": {"hard_negatives_max": 0}}, False),
    "closure hard negatives (large-catalogue method)": ({"train": {"hard_negative_method": "closure"}}, False),
    "closure hard negatives, seed 1": ({"train": {"hard_negative_method": "closure", "seed": 1}}, False),
    "T=10 neighbours": ({"sampler": {"num_neighbors": 10}}, False),
    "10 walks, T=3 (DGL example's sampler)": ({"sampler": {"num_walks": 10, "num_neighbors": 3}}, False),
    "no spectral inputs (id embedding only)": ({"model": {"spectral_dim": 0}}, False),
    "max-margin loss (margin 0.1)": ({"train": {"loss": "margin"}}, False),
}


def train_pinsage(train: pd.DataFrame, items: pd.DataFrame | None, overrides: dict, work: Path,
                  name: str) -> tuple[np.ndarray, np.ndarray, float]:
    run = work / name.replace(" ", "_").replace("/", "_")
    csv = work / "train.csv"
    if not csv.exists():
        train.to_csv(csv, index=False)
    argv = ["train", "--interactions", str(csv), "--user-col", "user_id", "--item-col", "item_id",
            "--time-col", "timestamp", "--out", str(run), "--quiet", "--overwrite"]
    if items is not None:
        fcsv = work / "items.csv"
        items.to_csv(fcsv, index=False)
        argv += ["--item-features", str(fcsv), "--item-key", "item_id"]
    if overrides:
        cfg = work / f"{run.name}.yaml"
        cfg.write_text(yaml.safe_dump(overrides))
        argv += ["--config", str(cfg)]
    t0 = time.perf_counter()
    if cli_main(argv) != 0:
        raise SystemExit(f"pinsage train failed for {name}")
    seconds = time.perf_counter() - t0
    return np.load(run / "item_embeddings.npy"), np.load(run / "item_ids.npy"), seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/ml-100k", help="MovieLens-100K directory (u.data, u.item)")
    p.add_argument("--validation", action="store_true", help="validation split (targets dropped; for tuning)")
    p.add_argument("--ablations", action="store_true", help="also train the ablation variants")
    p.add_argument("--only", nargs="*", default=None, help="names of ablations to run")
    p.add_argument("--out", default="bench_out/quality.json")
    args = p.parse_args(argv)

    df = read_ml100k(args.data)
    split = leave_last_out(df, "user_id", "item_id", time_col="timestamp", validation=args.validation)
    items = read_ml100k_items(args.data)
    items = items[items["item_id"].isin(split.train["item_id"].unique())][["item_id", "year", "genres"]]
    print(f"split: {split.summary()}", flush=True)

    rows = []
    base = run_baselines(split)
    for rec in base.to_dict("records"):
        rows.append(rec)
    names = list(ABLATIONS) if args.ablations else ["pinsage (defaults)"]
    if args.only:
        unknown = sorted(set(args.only) - set(ABLATIONS))
        if unknown:
            p.error(f"--only: unknown variant(s) {unknown}; known: {list(ABLATIONS)}")
        names = [n for n in ABLATIONS if n in args.only]
    with tempfile.TemporaryDirectory(prefix="pinsage-quality-") as tmp:
        for name in names:
            overrides, use_features = ABLATIONS[name]
            emb, ids, seconds = train_pinsage(split.train, items if use_features else None, overrides, Path(tmp), name)
            metrics = evaluate_embeddings(emb, split, item_ids=ids)
            rows.append({"method": name, **metrics, "train_s": seconds})
            print(f"{name}: HR@10 {metrics['HR@10']:.3f} NDCG@10 {metrics['NDCG@10']:.3f} "
                  f"MRR {metrics['MRR']:.3f} ({seconds:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    cols = [c for c in ["method", "HR@10", "NDCG@10", "MRR", "MRR_scaled", "n_evaluated", "train_s"] if c in table]
    print()
    print(f"MovieLens-100K, {'validation' if args.validation else 'test'} split")
    print(format_table(table[cols]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"split": "validation" if args.validation else "test",
                               "summary": split.summary(), "rows": rows}, indent=2, default=float))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
