"""Heterogeneous PinSage on MovieLens-100K (issue 15): ratings 4-5 and ratings 1-3 as two user-item
relations plus item-genre as a third, against the single-table default run, on the related-item protocol
(docs/quality.md), every run through ``pinsage train``.

The single-table run is ``benchmarks/quality.py``'s ``pinsage (defaults)`` (the same cached runs in
``--work``); each heterogeneous variant trains with

    pinsage train --interactions high.csv:high --interactions low.csv:low --interactions genre.csv:genre \\
        --user-col user_id --user-col genre=genre --item-col item_id --time-col timestamp --config V.yaml

on the same split's training part (``genre.csv``: one row per (genre, item) of the items in the training
part). Per-user HR@10 / NDCG@10 are averaged over the seeds; a paired bootstrap 95% interval over the users
compares each variant with the single-table run (and the best tuned baseline is printed beside them).

    python benchmarks/hetero_quality.py --validation                 # tuning: the validation split only
    python benchmarks/hetero_quality.py --validation --only "3 relations, merged"
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import DATASETS, METRICS, load_dataset, train_pinsage  # noqa: E402

from pinsage.cli import main as cli_main  # noqa: E402
from pinsage.evaluation import (  # noqa: E402
    EmbeddingScorer, compare_per_user, evaluate_per_user, leave_last_out, mean_over_runs,
)

MIX = {"high": 0.6, "low": 0.3, "genre": 0.1}
POSITIVES = {"high": 1.0, "low": 1.0}
#: variant -> config overrides (nested dict)
VARIANTS: dict[str, dict] = {
    "3 relations, merged": {"sampler": {"relation_probs": MIX}, "train": {"positive_relations": POSITIVES}},
    "3 relations, per relation (attention)": {
        "sampler": {"relation_probs": MIX, "merge_relations": False}, "model": {"relation_combine": "attention"},
        "train": {"positive_relations": POSITIVES}},
    "3 relations, per relation (mean)": {
        "sampler": {"relation_probs": MIX, "merge_relations": False}, "model": {"relation_combine": "mean"},
        "train": {"positive_relations": POSITIVES}},
    "2 relations (high, low), merged": {"sampler": {"relation_probs": {"high": 0.67, "low": 0.33, "genre": 0.0}},
                                        "train": {"positive_relations": POSITIVES}},
}


def relation_files(train: pd.DataFrame, items: pd.DataFrame, directory: Path) -> dict[str, Path]:
    """high.csv (ratings 4-5), low.csv (ratings 1-3) and genre.csv (genre, item_id) of the training part."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {r: directory / f"{r}.csv" for r in ("high", "low", "genre")}
    if not all(f.exists() for f in files.values()):
        train[train["rating"] >= 4].to_csv(files["high"], index=False)
        train[train["rating"] <= 3].to_csv(files["low"], index=False)
        known = items[items["item_id"].isin(train["item_id"].unique())]
        genre = known.assign(genre=known["genres"].str.split("|")).explode("genre")[["genre", "item_id"]]
        genre[genre["genre"].notna() & (genre["genre"] != "")].to_csv(files["genre"], index=False)
    return files


def train_hetero(files: dict[str, Path], overrides: dict, seed: int, work: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """One ``pinsage train`` run over the three relation files (reused from ``work`` when it exists)."""
    text = yaml.safe_dump(overrides, sort_keys=True)
    cfg = work / f"config-{hashlib.sha1(text.encode()).hexdigest()[:10]}.yaml"
    cfg.write_text(text)
    argv = ["train", *sum((["--interactions", f"{f}:{r}"] for r, f in files.items()), []),
            "--user-col", "user_id", "--user-col", "genre=genre", "--item-col", "item_id", "--time-col", "timestamp",
            "--config", str(cfg), "--seed", str(seed), "--quiet", "--overwrite"]
    key = hashlib.sha1(json.dumps([argv, text]).encode()).hexdigest()[:12]
    run = work / f"hetero-run-{key}"
    stamp = work / f"hetero-run-{key}.json"
    if stamp.exists() and (run / "item_embeddings.npy").exists():
        return np.load(run / "item_embeddings.npy"), np.load(run / "item_ids.npy"), json.loads(stamp.read_text())["seconds"]
    t0 = time.perf_counter()
    if cli_main(argv + ["--out", str(run)]) != 0:
        raise SystemExit(f"pinsage train failed: {' '.join(argv)}")
    seconds = time.perf_counter() - t0
    stamp.write_text(json.dumps({"argv": argv, "seconds": seconds}))
    return np.load(run / "item_embeddings.npy"), np.load(run / "item_ids.npy"), seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DATASETS["ml-100k"][0])
    p.add_argument("--validation", action="store_true", help="evaluate on the validation split (for tuning)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", nargs="*", default=None, help=f"variants (default: all of {list(VARIANTS)})")
    p.add_argument("--bootstrap", type=int, default=10_000)
    p.add_argument("--work", default="bench_out/quality-runs")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    split_name = "validation" if args.validation else "test"
    df, time_col, items = load_dataset("ml-100k", args.data)
    evaluated = leave_last_out(df, "user_id", "item_id", time_col=time_col, validation=args.validation)
    print(f"ml-100k: evaluated ({split_name}) split {evaluated.summary()}", flush=True)
    work = Path(args.work)
    tag = f"ml-100k-{split_name}"
    files = relation_files(evaluated.train, items, work / tag / "relations")

    def evaluate(emb: np.ndarray, ids: np.ndarray) -> pd.DataFrame:
        return evaluate_per_user(EmbeddingScorer(emb).score, evaluated, item_ids=ids)

    results: dict[str, pd.DataFrame] = {}
    rows = []
    names = ["single table (defaults)", *(args.only or VARIANTS)]
    for name in names:
        tables, seconds = [], []
        for seed in args.seeds:
            if name == "single table (defaults)":
                emb, ids, sec, _ = train_pinsage(evaluated, time_col, None, {}, seed, work, tag)
            else:
                emb, ids, sec = train_hetero(files, VARIANTS[name], seed, work / tag)
            t = evaluate(emb, ids)
            tables.append(t)
            seconds.append(sec)
            print(f"{name}, seed {seed}: HR@10 {t['HR@10'].mean():.4f} NDCG@10 {t['NDCG@10'].mean():.4f}; "
                  f"{sec:.0f} s", flush=True)
        results[name] = mean_over_runs(tables, METRICS + ("MRR",))
        rows.append({"method": name, **{m: float(results[name][m].mean()) for m in METRICS},
                     "seeds": args.seeds, "train_s_median": float(np.median(seconds)),
                     "per_seed": {m: [float(t[m].mean()) for t in tables] for m in METRICS}})
        if name != names[0]:
            for metric in METRICS:
                res = compare_per_user(results[name], results[names[0]], metric, n_resamples=args.bootstrap)
                rows[-1][f"vs single {metric}"] = res.to_dict()
                print(f"  {name} vs single table on {metric}: {res.mean_a:.4f} vs {res.mean_b:.4f} "
                      f"({res.ratio:.2f}x), difference {res.diff:+.4f}, 95% interval [{res.low:+.4f}, "
                      f"{res.high:+.4f}]: {res.verdict()}", flush=True)
    print(f"\nml-100k, {split_name} split, mean of seeds {args.seeds}")
    for r in rows:
        print(f"  {r['method']:<42} HR@10 {r['HR@10']:.4f}  NDCG@10 {r['NDCG@10']:.4f}  "
              f"(train {r['train_s_median']:.0f} s)")
    out = Path(args.out or f"bench_out/hetero-quality-ml-100k-{split_name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"split": split_name, "date": time.strftime("%Y-%m-%d"), "mix": MIX,
                               "positives": POSITIVES, "rows": rows}, indent=2, default=float))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
