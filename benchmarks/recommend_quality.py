"""Recommendation quality: the protocol's user variant (docs/quality.md) on the shared datasets.

The split and the training graph are those of ``benchmarks/quality.py`` (leave-last-out: the target and
the query leave the training graph); only the query changes. The query is the user's whole history:
the training items in the split's order with the query item last
(:func:`pinsage.evaluation.user_variant.user_histories`); the target is the held-out last item; the
history's items are excluded from the full-catalogue ranking. Because the training graph is the same,
the PinSage runs trained by ``benchmarks/quality.py`` (same ``--work``, split and seed) are reused as
they are, and a run trained here is one ``quality.py`` reuses.

For one dataset:

1. the baselines (popularity, item-kNN, random-walk counts, PureSVD, EASE, RP3beta) score a history by
   the sum over its rows and are tuned on the validation split of this variant over
   :data:`pinsage.evaluation.user_variant.USER_GRIDS` (the item protocol's grids, widened at three
   edges; cached per method in ``--work``);
2. PinSage's ``recommend()`` is scored in two modes: ``recency`` (the recency-weighted mean of the
   history's embeddings) and ``interests`` (PinnerSage-like clusters, per-cluster quotas). Their
   settings (half-life, clusters) are chosen on the validation split, with the validation run of
   seed ``--choice-seed``; without time (Gowalla) the history's order is arbitrary, so the half-life
   is fixed at None (every item alike);
3. the evaluated split (the test split, or ``--validation``) scores the tuned baselines and the chosen
   modes (per-user values averaged over ``--seeds``) and compares each mode with the best baseline of
   each metric by a paired bootstrap over test users.

Where the data has time, a diagnostic beside it: item-kNN, random-walk counts, EASE and RP3beta on
recency-weighted histories (row weights ``2^(-steps back / h)``, as ``recommend()`` weighs its mean),
the half-life and then the method's grid chosen on validation; PinSage is compared with the best of
those too. (The variant's baselines weigh every row alike.)

    python benchmarks/recommend_quality.py --dataset ml-100k --validation --seeds 0   # choices: validation only
    python benchmarks/recommend_quality.py --dataset gowalla-3k --validation --seeds 0
    python benchmarks/recommend_quality.py --dataset ml-100k                         # the test split (count looks)
    python benchmarks/recommend_quality.py --dataset gowalla-3k --baselines-only
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402  (benchmarks/quality.py: dataset readers, the cached PinSage runs)

from pinsage.evaluation import Split, compare_per_user, format_table, leave_last_out, make_baseline, mean_over_runs  # noqa: E402
from pinsage.evaluation.tuning import TUNED_METHODS, TuneResult, grid_points  # noqa: E402
from pinsage.evaluation.user_variant import (  # noqa: E402
    USER_GRIDS, UserHistories, embedding_history_fn, evaluate_user_lists, evaluate_user_variant, history_scorer,
    index_recommend_fn, tune_user_baselines, user_histories,
)

METRICS = ("HR@10", "NDCG@10")

#: recommend() settings searched on validation, per mode (the half-life grid only where the data has time)
HALF_LIVES = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, None]
CLUSTERS = [1, 2, 3, 5, 8]
#: baselines also measured on recency-weighted histories where the data has time (a diagnostic: the
#: variant's baselines sum the rows alike)
RECENCY_METHODS = ("itemknn", "rwc", "ease", "rp3beta")


def _load_cache(cache: Path, split_key: dict) -> dict:
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    return stored.get("results", {}) if stored.get("key") == split_key else {}


def _store(cache: Path, split_key: dict, results: dict) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp")
    tmp.write_text(json.dumps({"key": split_key, "results": results}, indent=1, default=float))
    tmp.replace(cache)


def _result(m: str, r: dict) -> TuneResult:
    return TuneResult(method=m, params=r["params"], validation=r["validation"], table=pd.DataFrame(r["table"]),
                      skipped=r["skipped"], grid=r["grid"])


def _record(t: TuneResult, **extra) -> dict:
    return {"params": t.params, "validation": t.validation, "skipped": t.skipped, "grid": t.grid,
            "table": t.table.to_dict("records"), **extra}


def _split_key(validation: Split, uh: UserHistories) -> dict:
    return json.loads(json.dumps({"variant": "user", "summary": validation.summary(), "users": len(uh),
                                  "history_entries": int(uh.histories.rows.size)}))


def tune_with_cache(validation: Split, uh: UserHistories, methods: list[str], cache: Path) -> dict[str, TuneResult]:
    """:func:`tune_user_baselines` per method, or its stored result when the method's grid and the split match."""
    split_key = _split_key(validation, uh)
    results = _load_cache(cache, split_key)
    tuned: dict[str, TuneResult] = {}
    for m in methods:
        grid = json.loads(json.dumps(USER_GRIDS.get(m, {})))
        r = results.get(m)
        if r is not None and r.get("grid") == grid:
            print(f"  tuning of {m} (user variant) reused from {cache}", flush=True)
            tuned[m] = _result(m, r)
            continue
        tuned[m] = tune_user_baselines(validation, [m], uh=uh, verbose=True)[m]
        results[m] = _record(tuned[m])
        _store(cache, split_key, results)
    return tuned


def tune_recency_with_cache(validation: Split, uh: UserHistories, tuned: dict[str, TuneResult],
                            cache: Path) -> dict[str, tuple[float | None, TuneResult]]:
    """Baselines on recency-weighted histories, by a coordinate search on validation: the half-life
    (:data:`HALF_LIVES`) at the plain sum's settings, then the method's grid at that half-life.
    Returns method -> (half-life, tuning)."""
    split_key = _split_key(validation, uh)
    results = _load_cache(cache, split_key)
    out: dict[str, tuple[float | None, TuneResult]] = {}
    for m in RECENCY_METHODS:
        if m not in tuned or tuned[m].skipped:
            continue
        name = f"{m}, recency-weighted"
        grid = json.loads(json.dumps(USER_GRIDS.get(m, {})))
        r = results.get(name)
        if r is not None and r.get("grid") == grid and r.get("half_lives") == HALF_LIVES:
            print(f"  tuning of {name} reused from {cache}", flush=True)
            out[m] = (r["half_life"], _result(m, r))
            continue
        t0 = time.perf_counter()
        fixed = {k: [v] for k, v in tuned[m].params.items()}
        first = []
        for h in HALF_LIVES:
            res = tune_user_baselines(validation, [m], grids={m: fixed}, uh=uh, half_life=h)[m]
            first.append({"half_life": h, **res.validation})
        best = max(first, key=lambda row: (row["HR@10"], row["NDCG@10"]))  # first of equals: list order
        half_life = best["half_life"]
        res = tune_user_baselines(validation, [m], uh=uh, half_life=half_life)[m]
        print(f"  tuned {name}: half-life {half_life} (at {tuned[m].params}), then {res.grid_text()} "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)
        out[m] = (half_life, res)
        results[name] = _record(res, half_life=half_life, half_lives=HALF_LIVES, half_life_search=first)
        _store(cache, split_key, results)
    return out


def mode_table(mode: str, settings: dict, emb: np.ndarray, uh: UserHistories) -> pd.DataFrame:
    """Per-user metrics of ``recommend(method=mode, **settings)`` for the users of ``uh``."""
    if mode == "recency":  # the full-catalogue score of recommend(method="recency"): exact ranks, full MRR
        return evaluate_user_variant(embedding_history_fn(emb, settings["half_life"]), uh)
    return evaluate_user_lists(index_recommend_fn(emb, "interests", half_life=settings["half_life"],
                                                  clusters=settings["clusters"]), uh)


def mode_grid(mode: str, timed: bool) -> list[dict]:
    lives = HALF_LIVES if timed else [None]
    if mode == "recency":
        return grid_points({"half_life": lives})
    return grid_points({"half_life": lives, "clusters": CLUSTERS})


def choose_modes(emb: np.ndarray, uh: UserHistories, timed: bool) -> tuple[dict[str, dict], list[dict]]:
    """Each mode's settings by validation HR@10 (ties: NDCG@10, then grid order); every point's numbers."""
    chosen, log = {}, []
    for mode in ("recency", "interests"):
        best, best_key = None, None
        for point in mode_grid(mode, timed):
            t = mode_table(mode, point, emb, uh)
            hr, nd = float(t["HR@10"].mean()), float(t["NDCG@10"].mean())
            log.append({"mode": mode, **point, "HR@10": hr, "NDCG@10": nd})
            print(f"  validation: recommend({mode}, {point}): HR@10 {hr:.4f} NDCG@10 {nd:.4f}", flush=True)
            if best_key is None or (hr, nd) > best_key:
                best, best_key = point, (hr, nd)
        chosen[mode] = best
    return chosen, log


def _row(method: str, table: pd.DataFrame, **extra) -> dict:
    mrr = "MRR" if "MRR" in table else "MRR@10"
    return {"method": method, **{m: float(table[m].mean()) for m in METRICS}, mrr: float(table[mrr].mean()),
            "n_evaluated": int(len(table)), **extra}


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in settings.items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k", choices=sorted(quality.DATASETS))
    p.add_argument("--data", default=None, help="the dataset's directory (default: shared/data/DATASET beside the repository)")
    p.add_argument("--validation", action="store_true", help="evaluate on the validation split instead of the test split")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="PinSage training seeds (default 0 1 2)")
    p.add_argument("--choice-seed", type=int, default=0, help="the validation run that chooses recommend()'s settings")
    p.add_argument("--baselines-only", action="store_true", help="tune and evaluate the baselines, train nothing")
    p.add_argument("--no-recency-baselines", action="store_true",
                   help="skip the diagnostic rows of baselines on recency-weighted histories (data with time only)")
    p.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    p.add_argument("--work", default="bench_out/quality-runs",
                   help="where trained runs are kept and reused (the quality benchmark's cache)")
    p.add_argument("--out", default=None, help="JSON output (default bench_out/recommend-quality-DATASET-SPLIT.json)")
    args = p.parse_args(argv)

    work = Path(args.work).resolve()  # the quality benchmark's runs were keyed with absolute paths
    path = args.data or quality.DATASETS[args.dataset][0]
    split_name = "validation" if args.validation else "test"
    df, time_col, _items = quality.load_dataset(args.dataset, path)
    validation = leave_last_out(df, "user_id", "item_id", time_col=time_col, validation=True)
    evaluated = validation if args.validation else leave_last_out(df, "user_id", "item_id", time_col=time_col)
    uh_val, uh_eval = user_histories(validation), user_histories(evaluated)
    for name, s, uh in (("validation", validation, uh_val),) + (((split_name, evaluated, uh_eval),) if not args.validation else ()):
        lens = np.diff(uh.histories.indptr)
        print(f"{args.dataset}: {name} split {s.summary()}; user variant: {len(uh)} users, "
              f"history length median {np.median(lens):.0f} (max {lens.max()})", flush=True)

    # 1. the baselines, tuned on this variant's validation split
    methods = list(TUNED_METHODS)
    t0 = time.perf_counter()
    tuned = tune_with_cache(validation, uh_val, methods, work / f"tuning-user-{args.dataset}.json")
    print(f"tuning took {time.perf_counter() - t0:.0f} s", flush=True)
    X, _, ids = evaluated.interaction_matrix()
    per_user: dict[str, pd.DataFrame] = {}
    rows = []
    for m, res in tuned.items():
        if res.skipped:
            rows.append({"method": make_baseline(m).name, "skipped": res.skipped})
            continue
        scorer = make_baseline(m, **res.params).fit(X, item_ids=ids)
        table = evaluate_user_variant(history_scorer(scorer), uh_eval)
        per_user[scorer.name] = table
        rows.append(_row(scorer.name, table, params=res.params, validation=res.validation))
        print(f"{scorer.name} ({res.params}): HR@10 {rows[-1]['HR@10']:.4f} NDCG@10 {rows[-1]['NDCG@10']:.4f}",
              flush=True)
    scored = [r for r in rows if "skipped" not in r]
    best = {m: max(scored, key=lambda r: r[m])["method"] for m in METRICS}
    # the diagnostic: the same baselines on recency-weighted histories (only where the data has time)
    best_recency: dict[str, str] = {}
    if time_col is not None and not args.no_recency_baselines:
        recency = tune_recency_with_cache(validation, uh_val, tuned, work / f"tuning-user-{args.dataset}.json")
        rec_rows = []
        for m, (half_life, res) in recency.items():
            scorer = make_baseline(m, **res.params).fit(X, item_ids=ids)
            name = f"{scorer.name}, recency-weighted"
            table = evaluate_user_variant(history_scorer(scorer, half_life), uh_eval)
            per_user[name] = table
            rec_rows.append(_row(name, table, params=res.params, half_life=half_life, validation=res.validation))
            print(f"{name} (half-life {half_life}, {res.params}): HR@10 {rec_rows[-1]['HR@10']:.4f} "
                  f"NDCG@10 {rec_rows[-1]['NDCG@10']:.4f}", flush=True)
        rows += rec_rows
        if rec_rows:
            best_recency = {m: max(rec_rows, key=lambda r: r[m])["method"] for m in METRICS}

    # 2. PinSage's recommend(), settings chosen on validation
    comparisons, choice_log, chosen = [], [], {}
    if not args.baselines_only:
        tag_val = f"{args.dataset}-validation"
        emb_v, ids_v, _, reused = quality.train_pinsage(validation, time_col, None, {}, args.choice_seed, work, tag_val)
        print(f"validation run, seed {args.choice_seed}{' (reused)' if reused else ''}: choosing recommend() settings",
              flush=True)
        chosen, choice_log = choose_modes(emb_v, user_histories(validation, item_ids=ids_v), time_col is not None)
        print(f"chosen on validation: {chosen}", flush=True)
        tables: dict[str, list[pd.DataFrame]] = {m: [] for m in chosen}
        for seed in args.seeds:
            emb, run_ids, sec, reused = quality.train_pinsage(evaluated, time_col, None, {}, seed, work,
                                                              f"{args.dataset}-{split_name}")
            uh_run = uh_eval if np.array_equal(run_ids, uh_eval.item_ids) else user_histories(evaluated, item_ids=run_ids)
            for mode, settings in chosen.items():
                t = mode_table(mode, settings, emb, uh_run)
                tables[mode].append(t)
                rows.append(_row(f"pinsage recommend({mode}), seed {seed}", t, settings=settings, train_s=sec,
                                 reused_run=reused))
                print(f"recommend({mode}, {_settings_text(settings)}), seed {seed}: HR@10 {t['HR@10'].mean():.4f} "
                      f"NDCG@10 {t['NDCG@10'].mean():.4f}; run {sec:.0f} s{' (reused)' if reused else ''}", flush=True)
            if "recency" in chosen:  # the full-score ranking is what recommend() returns: check it on this run
                lists = evaluate_user_lists(index_recommend_fn(emb, "recency", half_life=chosen["recency"]["half_life"]),
                                            uh_run)
                agree = float((lists["HR@10"].to_numpy() == tables["recency"][-1]["HR@10"].to_numpy()).mean())
                print(f"  recommend(recency) lists agree with the full-score ranking for {agree:.4%} of users",
                      flush=True)
        for mode, ts in tables.items():
            mean = mean_over_runs(ts, METRICS + (("MRR",) if mode == "recency" else ("MRR@10",)))
            rows.append(_row(f"pinsage recommend({mode}), mean of {len(ts)} seeds", mean, settings=chosen[mode]))
            for against, bests in (("best baseline", best), ("best recency-weighted baseline", best_recency)):
                for metric, baseline in bests.items():
                    res = compare_per_user(mean, per_user[baseline], metric, n_resamples=args.bootstrap)
                    comparisons.append({"mode": mode, "settings": chosen[mode], "metric": metric, "against": against,
                                        "baseline": baseline, **res.to_dict()})
                    print(f"  recommend({mode}) vs {baseline} on {metric}: {res.mean_a:.4f} vs {res.mean_b:.4f} "
                          f"({res.ratio:.2f}x), difference {res.diff:+.4f}, 95% interval "
                          f"[{res.low:+.4f}, {res.high:+.4f}]: {res.verdict()}", flush=True)

    table = pd.DataFrame([r for r in rows if "skipped" not in r])
    print()
    print(f"{args.dataset}, {split_name} split, user variant (history -> held-out last item)")
    columns = [c for c in ["method", *METRICS, "MRR", "MRR@10", "n_evaluated"] if c in table]
    print(format_table(table[columns], columns=columns, digits=4).replace("| nan ", "|  "))
    for r in rows:
        if "skipped" in r:
            print(f"{r['method']}: skipped ({r['skipped']})")
    print("\nchosen on validation:")
    for res in tuned.values():
        print(f"  {res.grid_text()}")
    out = Path(args.out or f"bench_out/recommend-quality-{args.dataset}-{split_name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"dataset": args.dataset, "split": split_name, "variant": "user", "date": time.strftime("%Y-%m-%d"),
               "seeds": args.seeds, "summary": evaluated.summary(), "users": len(uh_eval),
               "tuning": {m: {"grid": r.grid, "params": r.params, "validation": r.validation, "skipped": r.skipped}
                          for m, r in tuned.items()},
               "recommend_choice": {"seed": args.choice_seed, "chosen": chosen, "grid": choice_log},
               "best_baseline": best, "best_recency_weighted_baseline": best_recency, "rows": rows, "comparisons": comparisons}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
