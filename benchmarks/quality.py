"""Quality benchmark: the related-item protocol (docs/quality.md) on the shared datasets, PinSage
against baselines tuned on the validation split, every number from the same run.

For one dataset:

1. the validation split (each user's test target removed; the test query becomes the target) tunes
   every baseline over its grid (:data:`pinsage.evaluation.GRIDS`);
2. the evaluated split (the test split, or with ``--validation`` the validation split itself) scores
   the tuned baselines and PinSage; PinSage is trained by ``pinsage train`` with its defaults (or a
   listed variant) on that split's training part, once per seed, as a user with the data would run
   it (a time column only where the data has one);
3. per-user HR@10 and NDCG@10 of PinSage (averaged over the seeds) minus those of the best baseline
   give a paired bootstrap 95% interval over test users; "ahead" only where it excludes zero.
   Ranking is by dot product of ``item_embeddings.npy``; the cosine ranking is reported beside it.

    python benchmarks/quality.py --dataset ml-100k --validation            # tuning PinSage: validation only
    python benchmarks/quality.py --dataset gowalla-3k --validation
    python benchmarks/quality.py --dataset ml-100k                         # test split (count your looks)
    python benchmarks/quality.py --dataset ml-100k --only "pinsage (defaults)" "+ content features (genres, year)"
    python benchmarks/quality.py --dataset gowalla-3k --baselines-only     # tuned baselines alone

``--work DIR`` keeps the trained runs; a later invocation with the same data, split, variant and seed
reuses a run instead of training it again (its ``pinsage train`` arguments must match exactly).
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

from pinsage.cli import main as cli_main
from pinsage.datasets import read_gowalla, read_ml100k, read_ml100k_items
from pinsage.evaluation import (
    EmbeddingScorer, Split, compare_per_user, evaluate_per_user, format_table, leave_last_out, make_baseline,
    mean_over_runs, tune_baselines,
)
from pinsage.evaluation.tuning import GRIDS, TUNED_METHODS, TuneResult
from pinsage.features import ItemFeatureEncoder

#: dataset name -> default path, time column (None: a seeded random order, as the protocol says)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS: dict[str, tuple[str, str | None]] = {
    "ml-100k": (str(SHARED_DATA / "ml-100k"), "timestamp"),
    "gowalla-3k": (str(SHARED_DATA / "gowalla-3k"), None),
}

#: name -> (config overrides as nested dict, use item features)
VARIANTS: dict[str, tuple[dict, bool]] = {
    "pinsage (defaults)": ({}, False),
    "K=2 layers (the paper's)": ({"model": {"num_layers": 2}}, False),
    "unit-length embeddings (no learned length)": ({"model": {"magnitude": False}}, False),
    "every pair alike (no group balance)": ({"train": {"group_balance": 0.0}}, False),
    "pair window 10": ({"train": {"pair_window": 10}}, False),
    "+ content features": ({}, True),
    "mean pooling instead of importance": ({"model": {"aggr": "mean"}}, False),
    "no hard negatives (curriculum off)": ({"train": {"hard_negatives_max": 0}}, False),
    "closure hard negatives (large-catalogue method)": ({"train": {"hard_negative_method": "closure"}}, False),
    "T=10 neighbours": ({"sampler": {"num_neighbors": 10}}, False),
    "10 walks, T=3 (DGL example's sampler)": ({"sampler": {"num_walks": 10, "num_neighbors": 3}}, False),
    "no spectral inputs (id embedding only)": ({"model": {"spectral_dim": 0}}, False),
    "max-margin loss (margin 0.1)": ({"train": {"loss": "margin"}}, False),
    "128-d embeddings": ({"model": {"out_channels": 128}}, False),
    "20 epochs": ({"train": {"epochs": 20}}, False),
    "walk pairs": ({"train": {"pair_source": "walks"}}, False),
    "2000 walks of 4 steps": ({"sampler": {"num_walks": 2000, "walk_length": 4, "restart_prob": 0.0}}, False),
    "2000 walks of 4 steps, walk pairs": (
        {"sampler": {"num_walks": 2000, "walk_length": 4, "restart_prob": 0.0}, "train": {"pair_source": "walks"}},
        False),
    "1000 walks": ({"sampler": {"num_walks": 1000}}, False),
    "exact neighbourhoods": ({"sampler": {"method": "exact"}}, False),
    "exact neighbourhoods, 5 partners": ({"sampler": {"method": "exact"}, "train": {"group_partners": 5}}, False),
    "exact neighbourhoods, 10 partners": ({"sampler": {"method": "exact"}, "train": {"group_partners": 10}}, False),
    "10 partners": ({"train": {"group_partners": 10}}, False),
    "exact neighbourhoods, 4 steps": ({"sampler": {"method": "exact", "walk_length": 4, "restart_prob": 0.0}}, False),
    "exact neighbourhoods, walk pairs": ({"sampler": {"method": "exact"}, "train": {"pair_source": "walks"}}, False),
    "walk pairs, 5 per edge": ({"train": {"pair_source": "walks", "pair_window": 10}}, False),
    "2000 easy negatives": ({"train": {"easy_negatives": 2000}}, False),
    "id dropout 0.3": ({"model": {"id_dropout": 0.3}}, False),
    "128-d, 2000 easy negatives": ({"model": {"out_channels": 128}, "train": {"easy_negatives": 2000}}, False),
    "ratings as walk weights": ({}, False),
    "ratings as walk weights, 180-day half-life": ({"sampler": {"weight_half_life": 180 * 86400.0}}, False),
    "time-respecting neighbourhoods (8 snapshots)": ({"train": {"time_respecting": True}}, False),
}

#: variants trained with ``--weight-col`` (weighted walks): variant -> the interactions' weight column
WEIGHT_COLUMNS: dict[str, str] = {"ratings as walk weights": "rating",
                                  "ratings as walk weights, 180-day half-life": "rating"}

#: settings added after runs in ``--work`` were trained, at values that leave training unchanged: left
#: out of a run's cache key while at these values, so the earlier runs stay reusable
NEUTRAL_SETTINGS = {"sampler": {"weighted": False, "weight_half_life": 0.0, "relation_probs": {},
                                "merge_relations": True},
                    "train": {"time_respecting": False, "time_snapshots": 8, "positive_relations": {}},
                    "model": {"relation_combine": "mean"}}

METRICS = ("HR@10", "NDCG@10")


def load_dataset(name: str, path: str) -> tuple[pd.DataFrame, str | None, pd.DataFrame | None]:
    """(interactions with user_id, item_id[, timestamp]; the time column or None; item features or None)."""
    if name == "ml-100k":
        items = read_ml100k_items(path)[["item_id", "year", "genres"]]
        return read_ml100k(path), "timestamp", items
    if name == "gowalla-3k":
        return read_gowalla(path), None, None
    raise SystemExit(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")


def content_matrix(items: pd.DataFrame, item_ids: np.ndarray) -> np.ndarray:
    """The library's encoding of the items' content, rows in ``item_ids`` order: (n_items, dim)."""
    features, _ = ItemFeatureEncoder(key="item_id").fit_transform(items, item_ids)
    return features


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")[:60]


def train_pinsage(split: Split, time_col: str | None, items: pd.DataFrame | None, overrides: dict, seed: int,
                  work: Path, tag: str, weight_col: str | None = None) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """Train with ``pinsage train`` (or reuse a matching run in ``work``); returns (embeddings, ids, seconds, reused)."""
    data_dir = work / tag
    data_dir.mkdir(parents=True, exist_ok=True)
    csv = data_dir / "train.csv"
    if not csv.exists():
        split.train.to_csv(csv, index=False)
    argv = ["train", "--interactions", str(csv), "--user-col", split.user_col, "--item-col", split.item_col,
            "--quiet", "--overwrite", "--seed", str(seed)]
    if time_col is not None:
        argv += ["--time-col", time_col]
    if weight_col is not None:
        argv += ["--weight-col", weight_col]
    if items is not None:
        fcsv = data_dir / "items.csv"
        if not fcsv.exists():
            items.to_csv(fcsv, index=False)
        argv += ["--item-features", str(fcsv), "--item-key", "item_id"]
    if overrides:
        text = yaml.safe_dump(overrides, sort_keys=True)
        cfg = data_dir / f"config-{hashlib.sha1(text.encode()).hexdigest()[:10]}.yaml"
        cfg.write_text(text)
        argv += ["--config", str(cfg)]
    # the key holds every setting the run will use (the code's defaults included), so a run trained
    # under other defaults is never reused
    from pinsage.config import PinSageConfig

    effective = PinSageConfig.from_dict(overrides or {}).override(train__seed=seed).to_dict()
    for section, neutral in NEUTRAL_SETTINGS.items():
        for name, value in neutral.items():
            if effective[section].get(name) == value:
                del effective[section][name]
    key = hashlib.sha1(json.dumps([argv, effective], sort_keys=True, default=str).encode()).hexdigest()[:12]
    run = data_dir / f"run-{key}"
    argv += ["--out", str(run)]
    stamp = data_dir / f"run-{key}.json"
    if stamp.exists() and (run / "item_embeddings.npy").exists():
        info = json.loads(stamp.read_text())
        return np.load(run / "item_embeddings.npy"), np.load(run / "item_ids.npy"), info["seconds"], True
    t0 = time.perf_counter()
    if cli_main(argv) != 0:
        raise SystemExit(f"pinsage train failed: {' '.join(argv)}")
    seconds = time.perf_counter() - t0
    stamp.write_text(json.dumps({"argv": argv, "seconds": seconds}))
    return np.load(run / "item_embeddings.npy"), np.load(run / "item_ids.npy"), seconds, False


def tune_with_cache(validation: Split, methods: list[str], fixed: dict, cache: Path) -> dict[str, TuneResult]:
    """:func:`tune_baselines`, or its earlier result from ``cache`` when the grids and the split's sizes match."""
    key = {"grids": {m: GRIDS.get(m, {}) for m in methods}, "summary": validation.summary()}
    if cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("key") == json.loads(json.dumps(key)):
            print(f"baseline tuning reused from {cache}", flush=True)
            return {m: TuneResult(method=m, params=r["params"], validation=r["validation"], table=pd.DataFrame(),
                                  skipped=r["skipped"], grid=r["grid"]) for m, r in stored["results"].items()}
    tuned = tune_baselines(validation, methods, fixed=fixed, verbose=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    results = {m: {"params": r.params, "validation": r.validation, "skipped": r.skipped, "grid": r.grid,
                   "table": r.table.to_dict("records")} for m, r in tuned.items()}
    tmp = cache.with_name(cache.name + ".tmp")
    tmp.write_text(json.dumps({"key": key, "results": results}, indent=1, default=float))
    tmp.replace(cache)
    return tuned


def _row(method: str, table: pd.DataFrame, **extra) -> dict:
    return {"method": method, **{m: float(table[m].mean()) for m in (*METRICS, "MRR")},
            "n_evaluated": int(len(table)), **extra}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k", choices=sorted(DATASETS))
    p.add_argument("--data", default=None, help="the dataset's directory (default: shared/data/DATASET beside the repository)")
    p.add_argument("--validation", action="store_true",
                   help="evaluate on the validation split (for tuning PinSage) instead of the test split")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="PinSage training seeds (default 0 1 2)")
    p.add_argument("--only", nargs="*", default=None, help="PinSage variants to run (default: the defaults)")
    p.add_argument("--all-variants", action="store_true", help="run every variant of VARIANTS")
    p.add_argument("--baselines-only", action="store_true", help="tune and evaluate the baselines, train nothing")
    p.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    p.add_argument("--work", default="bench_out/quality-runs", help="where trained runs are kept and reused")
    p.add_argument("--out", default=None, help="JSON output (default bench_out/quality-DATASET-SPLIT.json)")
    args = p.parse_args(argv)

    path = args.data or DATASETS[args.dataset][0]
    split_name = "validation" if args.validation else "test"
    df, time_col, items = load_dataset(args.dataset, path)
    validation = leave_last_out(df, "user_id", "item_id", time_col=time_col, validation=True)
    evaluated = validation if args.validation else leave_last_out(df, "user_id", "item_id", time_col=time_col)
    print(f"{args.dataset}: validation split {validation.summary()}", flush=True)
    print(f"{args.dataset}: evaluated ({split_name}) split {evaluated.summary()}", flush=True)

    # 1. tune the baselines on validation
    methods = list(TUNED_METHODS) + (["contentknn"] if items is not None else [])
    fixed = {"contentknn": {"features": content_matrix(items, validation.item_ids)}} if items is not None else {}
    t0 = time.perf_counter()
    tuned = tune_with_cache(validation, methods, fixed, Path(args.work) / f"tuning-{args.dataset}.json")
    print(f"tuning took {time.perf_counter() - t0:.0f} s", flush=True)

    # 2. the tuned baselines on the evaluated split
    X, _, ids = evaluated.interaction_matrix()
    per_user: dict[str, pd.DataFrame] = {}
    rows = []
    for m, res in tuned.items():
        if res.skipped:
            rows.append({"method": make_baseline(m, **fixed.get(m, {})).name, "skipped": res.skipped})
            continue
        kw = dict(res.params)
        if m == "contentknn":
            kw["features"] = content_matrix(items, ids)
        scorer = make_baseline(m, **kw).fit(X, item_ids=ids)
        table = evaluate_per_user(scorer.score, evaluated, item_ids=ids)
        per_user[scorer.name] = table
        rows.append(_row(scorer.name, table, params=res.params, validation=res.validation))
    interaction_baselines = [r for r in rows if "skipped" not in r and r["method"] != "content-kNN"]
    best = {m: max(interaction_baselines, key=lambda r: r[m])["method"] for m in METRICS}

    # 3. PinSage, per variant and seed
    comparisons = []
    if not args.baselines_only:
        names = list(VARIANTS) if args.all_variants else (args.only or ["pinsage (defaults)"])
        unknown = sorted(set(names) - set(VARIANTS))
        if unknown:
            p.error(f"--only: unknown variant(s) {unknown}; known: {list(VARIANTS)}")
        for name in names:
            overrides, use_features = VARIANTS[name]
            if use_features and items is None:
                print(f"{name}: skipped ({args.dataset} has no item features)")
                continue
            dot_tables, cos_tables, seconds = [], [], []
            for seed in args.seeds:
                emb, run_ids, sec, reused = train_pinsage(evaluated, time_col, items if use_features else None,
                                                          overrides, seed, Path(args.work), f"{args.dataset}-{split_name}",
                                                          weight_col=WEIGHT_COLUMNS.get(name))
                dot = evaluate_per_user(EmbeddingScorer(emb).score, evaluated, item_ids=run_ids)
                cos = evaluate_per_user(EmbeddingScorer(emb, normalize=True).score, evaluated, item_ids=run_ids)
                dot_tables.append(dot)
                cos_tables.append(cos)
                seconds.append(sec)
                print(f"{name}, seed {seed}: HR@10 {dot['HR@10'].mean():.4f} NDCG@10 {dot['NDCG@10'].mean():.4f} "
                      f"(cosine {cos['HR@10'].mean():.4f} / {cos['NDCG@10'].mean():.4f}); "
                      f"{sec:.0f} s{' (reused run)' if reused else ''}", flush=True)
                rows.append(_row(f"{name}, seed {seed}", dot, train_s=sec, cosine_HR=float(cos["HR@10"].mean()),
                                 cosine_NDCG=float(cos["NDCG@10"].mean())))
            mean_dot = mean_over_runs(dot_tables, METRICS + ("MRR",))
            mean_cos = mean_over_runs(cos_tables, METRICS + ("MRR",))
            rows.append(_row(f"{name}, mean of {len(args.seeds)} seeds", mean_dot, train_s=float(np.median(seconds))))
            rows.append(_row(f"{name}, cosine ranking, mean of {len(args.seeds)} seeds", mean_cos))
            for metric in METRICS:
                res = compare_per_user(mean_dot, per_user[best[metric]], metric, n_resamples=args.bootstrap)
                comparisons.append({"variant": name, "metric": metric, "baseline": best[metric], **res.to_dict()})
                print(f"  {name} vs {best[metric]} on {metric}: {res.mean_a:.4f} vs {res.mean_b:.4f} "
                      f"({res.ratio:.2f}x), difference {res.diff:+.4f}, 95% interval [{res.low:+.4f}, {res.high:+.4f}]: "
                      f"{res.verdict()}", flush=True)

    table = pd.DataFrame([r for r in rows if "skipped" not in r])
    print()
    print(f"{args.dataset}, {split_name} split")
    print(format_table(table[[c for c in ["method", *METRICS, "MRR", "n_evaluated"] if c in table]], digits=4))
    for r in rows:
        if "skipped" in r:
            print(f"{r['method']}: skipped ({r['skipped']})")
    print("\nchosen on validation:")
    for res in tuned.values():
        print(f"  {res.grid_text()}")
    out = Path(args.out or f"bench_out/quality-{args.dataset}-{split_name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"dataset": args.dataset, "split": split_name, "date": time.strftime("%Y-%m-%d"),
               "summary": evaluated.summary(), "validation_summary": validation.summary(),
               "tuning": {m: {"grid": r.grid, "params": r.params, "validation": r.validation, "skipped": r.skipped}
                          for m, r in tuned.items()},
               "best_baseline": best, "rows": rows, "comparisons": comparisons}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
