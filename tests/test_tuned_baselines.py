"""Tests for the tuned baselines (RP3beta, item-kNN with neighbours and shrink, content-kNN), validation
tuning, per-user metrics, paired bootstrap intervals and the Gowalla reader."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pinsage import InputError
from pinsage.datasets import read_gowalla, read_user_item_lists
from pinsage.evaluation import (
    EASE, ContentKNN, ItemKNN, RandomWalkCounts, RP3beta, compare_per_user, evaluate_per_user, evaluate_scores,
    grid_points, leave_last_out, make_baseline, mean_over_runs, paired_bootstrap, tune_baseline, tune_baselines,
)

GOWALLA = Path(os.environ.get("PINSAGE_GOWALLA", Path(__file__).resolve().parents[2] / "shared/data/gowalla-3k"))


def _random_matrix(n_users: int = 40, n_items: int = 30, density: float = 0.15, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    X = (rng.random((n_users, n_items)) < density).astype(np.float32)
    X[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # every user has an item
    X[rng.integers(0, n_users, n_items), np.arange(n_items)] = 1.0  # every item has a user
    return sp.csr_matrix(X)


def _log(n_users: int = 60, n_items: int = 25, per_user: int = 6, seed: int = 0) -> pd.DataFrame:
    """A log with item clusters, so that co-occurrence predicts the next item."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        cluster = u % 5
        items = rng.choice(np.arange(cluster * 5, cluster * 5 + 5), size=4, replace=False).tolist()
        items += rng.integers(0, n_items, per_user - 4).tolist()
        rows += [(u, i, t) for t, i in enumerate(items)]
    return pd.DataFrame(rows, columns=["user", "item", "ts"])


# ---------------------------------------------------------------------------------------------- RP3beta
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, 0.3), (0.25, 0.8)])
def test_rp3beta_matches_dense_formula(alpha, beta):
    X = _random_matrix()
    D = X.toarray().astype(np.float64)
    P_ui = D / D.sum(axis=1, keepdims=True)
    P_iu = D.T / D.T.sum(axis=1, keepdims=True)
    W = (P_iu ** alpha) @ (P_ui ** alpha)
    expected = W / D.sum(axis=0)[None, :] ** beta
    q = np.arange(X.shape[1])
    np.testing.assert_allclose(RP3beta(alpha, beta).fit(X).score(q), expected, rtol=1e-9, atol=1e-12)


def test_rp3beta_alpha1_beta0_is_the_one_hop_walk():
    X = _random_matrix(seed=1)
    q = np.arange(X.shape[1])
    walk = RandomWalkCounts(restart=0.0, max_steps=1).fit(X).score(q)
    np.testing.assert_allclose(RP3beta(1.0, 0.0).fit(X).score(q), walk, rtol=1e-9)


def test_rp3beta_rejects_bad_settings():
    with pytest.raises(ValueError, match="alpha"):
        RP3beta(alpha=0.0)
    with pytest.raises(ValueError, match="beta"):
        RP3beta(beta=-0.1)
    assert isinstance(make_baseline("RP3", alpha=0.5), RP3beta)


# ----------------------------------------------------------------------------------------------- item-kNN
@pytest.mark.parametrize("neighbors,shrink", [(None, 0.0), (None, 10.0), (3, 0.0), (5, 2.0)])
def test_itemknn_matches_dense_reference(neighbors, shrink):
    X = _random_matrix(seed=2)
    D = X.toarray().astype(np.float64)
    C = D.T @ D
    deg = np.diag(C).copy()
    S = C / (np.sqrt(deg)[:, None] * np.sqrt(deg)[None, :] + shrink)  # same rounding as the scorer
    np.fill_diagonal(S, 0.0)
    if neighbors is not None:
        # column j keeps the entries of its k most similar items (k-th largest value and above)
        kth = -np.sort(-S, axis=0)[neighbors - 1]
        kth = np.where((S > 0).sum(axis=0) >= neighbors, kth, 0.0)
        S = np.where(S >= kth[None, :], S, 0.0)
    q = np.arange(X.shape[1])
    np.testing.assert_allclose(ItemKNN(neighbors=neighbors, shrink=shrink, block=7).fit(X).score(q), S,
                               rtol=1e-9, atol=1e-12)


def test_itemknn_neighbors_keep_at_most_k_per_column():
    X = _random_matrix(n_users=80, n_items=40, density=0.3, seed=3)
    S = ItemKNN(neighbors=4).fit(X).score(np.arange(40))
    # ties at the threshold may keep a few more, never fewer than min(k, co-occurring items)
    assert ((S > 0).sum(axis=0) >= np.minimum(4, (ItemKNN().fit(X).score(np.arange(40)) > 0).sum(axis=0))).all()
    assert (S > 0).sum(axis=0).max() <= 6


def test_itemknn_rejects_bad_settings():
    with pytest.raises(ValueError, match="neighbors"):
        ItemKNN(neighbors=0)
    with pytest.raises(ValueError, match="shrink"):
        ItemKNN(shrink=-1)
    with pytest.raises(ValueError, match="restart"):
        RandomWalkCounts(restart=0.0, max_steps=None)


# -------------------------------------------------------------------------------------------- content-kNN
def test_content_knn_is_cosine_and_checks_shapes():
    F = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    X = _random_matrix(n_users=10, n_items=4, density=0.5)
    s = ContentKNN(F).fit(X).score(np.array([0, 2]))
    np.testing.assert_allclose(s[0], [1.0, 1.0, 0.0, np.sqrt(0.5)])
    np.testing.assert_allclose(s[1], [0.0, 0.0, 1.0, np.sqrt(0.5)])
    with pytest.raises(ValueError, match="3 feature rows for 4 items"):
        ContentKNN(F[:3]).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        ContentKNN(np.array([[np.nan, 1.0]]))


# ------------------------------------------------------------------------------------ per-user, bootstrap
def test_per_user_means_equal_the_summary_metrics():
    split = leave_last_out(_log(), "user", "item", time_col="ts")
    X, _, ids = split.interaction_matrix()
    scorer = RP3beta(0.5, 0.2).fit(X, item_ids=ids)
    table = evaluate_per_user(scorer.score, split, item_ids=ids)
    summary = evaluate_scores(scorer.score, split, item_ids=ids)
    assert len(table) == summary["n_evaluated"]
    for m in ("HR@10", "NDCG@10", "MRR"):
        assert table[m].mean() == pytest.approx(summary[m])
    assert table["test_row"].is_unique and (table["test_row"] < len(split.test)).all()


def test_paired_bootstrap_behaviour():
    rng = np.random.default_rng(0)
    b = rng.random(500)
    same = paired_bootstrap(b, b)
    assert same.diff == 0.0 and same.low == 0.0 and same.high == 0.0 and same.verdict() == "tied"
    better = paired_bootstrap(b + 0.1, b)
    assert better.ahead and better.low > 0 and better.diff == pytest.approx(0.1)
    worse = paired_bootstrap(b - 0.1 + rng.normal(0, 0.01, 500), b)
    assert worse.behind and worse.verdict() == "behind"
    noisy = paired_bootstrap(rng.integers(0, 2, 200).astype(float), rng.integers(0, 2, 200).astype(float))
    assert noisy.low < noisy.diff < noisy.high
    assert paired_bootstrap(b + 0.1, b, seed=3) == paired_bootstrap(b + 0.1, b, seed=3)
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap(b, b[:10])
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap(b, b, confidence=1.5)


def test_compare_per_user_pairs_on_test_rows_and_runs_average():
    a = pd.DataFrame({"test_row": [0, 1, 2, 3], "HR@10": [1.0, 1.0, 0.0, 1.0]})
    b = pd.DataFrame({"test_row": [3, 2, 1, 9], "HR@10": [0.0, 0.0, 1.0, 1.0]})
    res = compare_per_user(a, b, "HR@10", n_resamples=200)
    assert res.n == 3  # rows 1, 2, 3 are in both
    assert res.mean_a == pytest.approx(2 / 3) and res.mean_b == pytest.approx(1 / 3)
    avg = mean_over_runs([a, a.assign(**{"HR@10": [0.0, 0.0, 0.0, 0.0]})], ["HR@10"])
    assert avg["HR@10"].tolist() == [0.5, 0.5, 0.0, 0.5]


# ----------------------------------------------------------------------------------------------- tuning
def test_grid_points_order():
    assert grid_points({}) == [{}]
    assert grid_points({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]


def test_tune_baseline_picks_the_best_validation_point():
    df = _log(n_users=120)
    validation = leave_last_out(df, "user", "item", time_col="ts", validation=True)
    grid = {"alpha": [0.25, 1.0], "beta": [0.0, 0.5, 0.9]}
    res = tune_baseline("rp3beta", validation, grid)
    table = res.table
    best = table.sort_values(["HR@10", "NDCG@10"], ascending=False, kind="mergesort").iloc[0]
    assert res.params == {"alpha": best["alpha"], "beta": best["beta"]}
    assert res.validation["HR@10"] == pytest.approx(table["HR@10"].max())
    assert len(table) == 6 and "grid" in res.grid_text()
    with pytest.raises(ValueError, match="metric"):
        tune_baseline("rp3beta", validation, grid, metric="AUC")


def test_tune_baselines_skips_what_cannot_run():
    validation = leave_last_out(_log(), "user", "item", time_col="ts", validation=True)
    tuned = tune_baselines(validation, ["popularity", "ease"], grids={"ease": {"l2": [10.0], "max_items": [5]}})
    assert tuned["popularity"].params == {} and tuned["popularity"].skipped is None
    assert tuned["ease"].skipped and "max_items" in tuned["ease"].skipped
    assert "skipped" in tuned["ease"].grid_text()


# ---------------------------------------------------------------------------------------------- Gowalla
def test_read_user_item_lists(tmp_path):
    f = tmp_path / "train.txt"
    f.write_text("0 5 6 7\n1 5\n\n2\n3 8 9\n")
    df = read_user_item_lists(f)
    assert df["user_id"].tolist() == [0, 0, 0, 1, 3, 3]
    assert df["item_id"].tolist() == [5, 6, 7, 5, 8, 9]
    assert df.dtypes.tolist() == [np.int64, np.int64]
    (tmp_path / "test.txt").write_text("0 9\n")
    both = read_gowalla(tmp_path)
    assert len(both) == 7 and both.iloc[-1].tolist() == [0, 9]


@pytest.mark.parametrize("text,message", [
    ("0 1 2\n1 3 x4\n", "line 2, field 3"),
    ("0 1\nu 3\n", "line 2: the user id"),
    ("0 1 -2\n", "line 1, field 3"),
])
def test_read_user_item_lists_names_the_bad_field(tmp_path, text, message):
    f = tmp_path / "train.txt"
    f.write_text(text)
    with pytest.raises(InputError, match=message):
        read_user_item_lists(f)


def test_read_gowalla_missing_files(tmp_path):
    (tmp_path / "train.txt").write_text("0 1\n")
    with pytest.raises(InputError, match="test.txt"):
        read_gowalla(tmp_path)
    with pytest.raises(InputError, match="not found"):
        read_gowalla(tmp_path / "nowhere")


@pytest.mark.skipif(not (GOWALLA / "train.txt").exists(), reason=f"Gowalla-3k not found at {GOWALLA} (set PINSAGE_GOWALLA)")
def test_gowalla_3k_protocol_counts():
    df = read_gowalla(GOWALLA)
    split = leave_last_out(df, "user_id", "item_id")
    s = split.summary()
    # the counts of the data's README: 178,917 training pairs over 3,001 users and 35,182 items
    assert (s["users"], s["train_rows"], s["train_items"]) == (3001, 178917, 35182)


def test_the_old_evaluate_module_is_a_deprecated_alias():
    import importlib
    import sys

    sys.modules.pop("pinsage.evaluate", None)
    with pytest.warns(DeprecationWarning, match="pinsage.evaluation"):
        old = importlib.import_module("pinsage.evaluate")
    assert old.RP3beta is RP3beta
