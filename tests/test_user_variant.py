"""The protocol's user variant (pinsage.evaluation.user_variant): histories, exclusions, the sum-over-history
baselines, their tuning, PinSage's recommend() scored by it, and the benchmark end to end, on small generated data."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pinsage.evaluation import compare_per_user, leave_last_out, make_baseline
from pinsage.evaluation.user_variant import (
    embedding_history_fn, evaluate_user_lists, evaluate_user_variant, history_scorer, index_recommend_fn,
    itemknn_similarity, sum_of_rows, tune_user_baselines, user_histories,
)
from pinsage.index.histories import Histories

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _log(n_users=120, n_blocks=6, block=20, per_user=9, seed=0, timed=True) -> pd.DataFrame:
    """Users who each draw items from one block of the catalogue (a planted co-occurrence structure)
    after one random item; times increasing per user, in a shuffled file order. The target (the last
    item) is always in the user's block."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        b = u % n_blocks
        items = [int(rng.integers(0, n_blocks * block))] + list(b * block + rng.choice(block, per_user, replace=False))
        for t, i in enumerate(items):
            rows.append((u, int(i), 1000 * u + t if timed else 0))
    df = pd.DataFrame(rows, columns=["user", "item", "ts"]).sample(frac=1.0, random_state=seed)
    return df.reset_index(drop=True)


@pytest.fixture(scope="module")
def split():
    return leave_last_out(_log(), "user", "item", time_col="ts")


def _lists(uh):
    h = uh.histories
    return [h.rows[a:b] for a, b in zip(h.indptr[:-1], h.indptr[1:])]


def test_histories_hold_the_training_items_and_the_query_last_never_the_target(split):
    uh = user_histories(split)
    assert len(uh) == len(split.test) and uh.n_skipped == 0
    train = split.train
    for row, hist, target in zip(uh.test_rows, _lists(uh), uh.targets):
        user, query, tgt = split.test.loc[row, ["user", "query", "target"]]
        ids = uh.item_ids[hist]
        mine = train[train["user"] == user].sort_values("ts")["item"].to_numpy()
        assert ids.tolist() == mine.tolist() + [query]  # time order, then the query
        assert uh.item_ids[target] == tgt and tgt not in set(ids.tolist())
    # without the query the history is the training items alone
    no_q = user_histories(split, include_query=False)
    assert no_q.histories.rows.size == uh.histories.rows.size - len(uh)


def test_histories_without_time_follow_file_order_and_skip_targets_outside_the_catalogue():
    df = pd.DataFrame({"u": ["a"] * 4 + ["b"] * 3, "i": [5, 3, 9, 7, 3, 5, 11]})
    s = leave_last_out(df, "u", "i", seed=1)
    uh = user_histories(s)
    # b's target (11 or one of its items) may lie outside the catalogue: then it is skipped, never scored
    assert len(uh) + uh.n_skipped == len(s.test)
    for row, hist in zip(uh.test_rows, _lists(uh)):
        user, query = s.test.loc[row, ["user", "query"]]
        train_items = s.train[s.train["u"] == user]["i"].tolist()
        assert uh.item_ids[hist].tolist() == [i for i in train_items if i in set(uh.item_ids)] + [query]


def test_history_items_are_never_candidates(split):
    """A scorer that puts the history on top: the target's rank must not see those items."""
    uh = user_histories(split)

    def history_first(h):
        s = np.zeros((len(h), uh.n_items))
        s[h.owner(), h.rows] = 100.0
        return s
    res = evaluate_user_variant(history_first, uh)
    # every other item ties with the target at 0: expected rank = the middle of the non-history items
    n_candidates = uh.n_items - np.diff(uh.histories.indptr)
    np.testing.assert_allclose(res["rank"].to_numpy(), 1 + (n_candidates - 1) / 2)

    def history_then_target(h):  # one batch of every user: the history on top, then the target
        s = history_first(h)
        s[np.arange(len(h)), uh.targets] = 50.0
        return s
    res = evaluate_user_variant(history_then_target, uh, batch_size=len(uh))
    assert (res["HR@10"] == 1.0).all() and (res["rank"] == 1.0).all()


@pytest.mark.parametrize("method,params", [
    ("popularity", {}), ("itemknn", {}), ("itemknn", {"neighbors": 5, "shrink": 10.0}),
    ("rp3beta", {"alpha": 0.5, "beta": 0.3}), ("ease", {"l2": 20.0}), ("rwc", {"max_steps": 3, "restart": 0.3}),
    ("puresvd", {"factors": 8}),
])
@pytest.mark.parametrize("half_life", [None, 3.0])
def test_fast_history_scorers_are_the_sum_over_the_history_rows(split, method, params, half_life):
    uh = user_histories(split)
    X, _, ids = split.interaction_matrix()
    scorer = make_baseline(method, **params).fit(X, item_ids=ids)
    h = uh.batch(0, 40)
    fast, slow = history_scorer(scorer, half_life)(h), sum_of_rows(scorer, half_life)(h)
    assert fast.shape == (40, uh.n_items)
    np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-9)
    if half_life is not None and method != "popularity":  # the weights change the scores
        assert not np.allclose(fast, sum_of_rows(scorer)(h))


def test_itemknn_similarity_is_itemknn_row_by_row(split):
    X, _, ids = split.interaction_matrix()
    cache: dict = {}  # shared across points, as the tuning shares it (one shrink at a time)
    for neighbors, shrink in [(None, 0.0), (3, 0.0), (7, 0.0), (7, 50.0), (None, 50.0), (2, 50.0)]:
        ref = make_baseline("itemknn", neighbors=neighbors, shrink=shrink).fit(X).score(np.arange(X.shape[1]))
        for c in (None, cache):
            S = itemknn_similarity(X, neighbors, shrink, cache=c).toarray()
            np.testing.assert_allclose(S, ref, rtol=1e-9, atol=1e-12)


def test_the_sum_over_the_history_finds_the_planted_target(split):
    """Each user's items come from one block: summing the history's rows ranks the block's other items
    first (12 candidates left in the block, so HR@10 near 10/12); popularity cannot tell blocks apart."""
    uh = user_histories(split)
    X, _, ids = split.interaction_matrix()
    knn = make_baseline("itemknn").fit(X, item_ids=ids)
    full = evaluate_user_variant(history_scorer(knn), uh)
    pop = evaluate_user_variant(history_scorer(make_baseline("popularity").fit(X, item_ids=ids)), uh)
    assert full["HR@10"].mean() > 0.6
    assert pop["HR@10"].mean() < 0.25
    assert full["HR@10"].mean() > pop["HR@10"].mean() + 0.4
    # the paired bootstrap from intervals.py takes the per-user tables
    res = compare_per_user(full, pop, "HR@10", n_resamples=500)
    assert res.ahead and res.n == len(uh)


def test_tuning_on_validation_chooses_the_best_grid_point_and_skips_what_cannot_fit():
    val = leave_last_out(_log(seed=1), "user", "item", time_col="ts", validation=True)
    tuned = tune_user_baselines(val, ["itemknn", "rp3beta", "ease"],
                                grids={"itemknn": {"neighbors": [1, None], "shrink": [0.0]},
                                       "rp3beta": {"alpha": [0.5, 1.0], "beta": [0.0, 0.5]},
                                       "ease": {"l2": [10.0], "max_items": [5]}})
    assert tuned["ease"].skipped and "max_items" in tuned["ease"].skipped
    for m in ("itemknn", "rp3beta"):
        t = tuned[m]
        best = t.table["HR@10"].max()
        assert t.validation["HR@10"] == best
        points = [{k: (None if pd.isna(r[k]) else r[k]) for k in t.grid} for r in t.table.to_dict("records")
                  if r["HR@10"] == best]
        assert t.params in points and len(t.table) == 2 * (1 if m == "itemknn" else 2)
    # one neighbour per item cannot cover a block; all of them can
    assert tuned["itemknn"].params["neighbors"] is None


def test_recency_scores_give_recommend_s_lists(split):
    """The full-catalogue score of the recency mode ranks exactly as ItemIndex.recommend() lists."""
    uh = user_histories(split)
    rng = np.random.default_rng(3)
    E = rng.standard_normal((uh.n_items, 8)).astype(np.float32)
    for half_life in (None, 3.0):
        by_score = evaluate_user_variant(embedding_history_fn(E, half_life), uh)
        by_list = evaluate_user_lists(index_recommend_fn(E, "recency", half_life=half_life), uh)
        np.testing.assert_allclose(by_score["HR@10"], by_list["HR@10"])
        np.testing.assert_allclose(by_score["NDCG@10"], by_list["NDCG@10"], rtol=1e-6)
    # and the weights matter: a half-life of 1 differs from the plain mean somewhere
    a = embedding_history_fn(E, 1.0)(uh.batch(0, 30))
    b = embedding_history_fn(E, None)(uh.batch(0, 30))
    assert not np.allclose(a, b)


def test_interest_lists_exclude_the_history_and_a_list_that_does_not_is_refused(split):
    uh = user_histories(split)
    E = np.random.default_rng(4).standard_normal((uh.n_items, 8)).astype(np.float32)
    res = evaluate_user_lists(index_recommend_fn(E, "interests", half_life=None, clusters=2), uh)
    assert len(res) == len(uh) and res["HR@10"].between(0, 1).all()
    assert ((res["rank"] <= 10) | res["rank"].isna()).all()

    def leaky(h: Histories, k: int) -> np.ndarray:
        out = np.full((len(h), k), -1, dtype=np.int64)
        out[:, 0] = h.rows[h.indptr[:-1]]  # each history's first item
        return out
    with pytest.raises(ValueError, match="history"):
        evaluate_user_lists(leaky, uh)


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_recommend_quality", BENCH / "recommend_quality.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_recommend_quality_benchmark_runs_on_a_small_gowalla_format_file(tmp_path):
    """End to end with baselines only (PinSage training is covered by the quality benchmark's smoke test)."""
    rng = np.random.default_rng(0)
    data = tmp_path / "gw"
    data.mkdir()
    lines = []
    for u in range(60):
        cluster = u % 4
        items = sorted(set((cluster * 15 + rng.integers(0, 15, 8)).tolist() + rng.integers(0, 60, 2).tolist()))
        lines.append(" ".join(map(str, [u, *items])))
    (data / "train.txt").write_text("\n".join(lines[:50]) + "\n")
    (data / "test.txt").write_text("\n".join(lines[50:]) + "\n")
    out = tmp_path / "r.json"
    rc = _load_benchmark().main(["--dataset", "gowalla-3k", "--data", str(data), "--baselines-only",
                                 "--bootstrap", "200", "--work", str(tmp_path / "work"), "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    methods = {r["method"] for r in res["rows"]}
    assert {"popularity", "item-kNN", "RP3beta", "EASE"} <= methods
    assert res["variant"] == "user" and res["split"] == "test"
    assert all(0.0 <= r["HR@10"] <= 1.0 for r in res["rows"])
    assert (tmp_path / "work" / "tuning-user-gowalla-3k.json").exists()
