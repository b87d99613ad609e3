"""Tests for pinsage.evaluate: split, metrics, baselines (generated data + one MovieLens-100K check)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pinsage.evaluation import (
    EASE, EmbeddingScorer, ItemKNN, Popularity, PureSVD, RandomWalkCounts, evaluate_embeddings,
    evaluate_scores, format_table, interaction_matrix, leave_last_out, metrics_from_ranks, run_baselines,
)

ML100K = Path(os.environ.get("PINSAGE_ML100K", Path(__file__).resolve().parents[2] / "shared/data/ml-100k/u.data"))


# ----------------------------------------------------------------------------------------------- split
def _hand_frame() -> pd.DataFrame:
    rows = [
        ("a", "i1", 1), ("a", "i3", 2), ("b", "j1", 1), ("a", "i2", 2),  # a: i3 before i2 in file, same time
        ("c", "x", 1), ("c", "y", 2), ("b", "j2", 2), ("a", "i4", 3),
        ("c", "x", 5),  # duplicate (c, x): the earliest occurrence (t=1) is kept
        ("c", "z", 3),
    ]
    return pd.DataFrame(rows, columns=["user", "item", "ts"])


def test_split_hand_made():
    s = leave_last_out(_hand_frame(), "user", "item", time_col="ts")
    test = s.test.set_index("user")
    assert set(test.index) == {"a", "c"}  # b has 2 items: not a test user
    # a: order i1, i3, i2 (tie at t=2 broken by file order), i4
    assert test.loc["a", "query"] == "i2" and test.loc["a", "target"] == "i4"
    # c: x (t=1, duplicate at t=5 dropped), y, z
    assert test.loc["c", "query"] == "y" and test.loc["c", "target"] == "z"
    train_pairs = set(map(tuple, s.train[["user", "item"]].to_numpy()))
    assert train_pairs == {("a", "i1"), ("a", "i3"), ("b", "j1"), ("b", "j2"), ("c", "x")}
    assert s.n_dropped_duplicates == 1
    assert s.n_users == 3
    assert list(s.train.columns) == ["user", "item", "ts"]
    assert (s.train.loc[s.train.item == "x", "ts"] == 1).all()
    # query and target never left in the training graph
    for u, r in test.iterrows():
        assert (u, r["query"]) not in train_pairs and (u, r["target"]) not in train_pairs


def test_validation_split():
    v = leave_last_out(_hand_frame(), "user", "item", time_col="ts", validation=True)
    test = v.test.set_index("user")
    # a: target i4 dropped; i1, i3, i2 left -> query i3, target i2 (the test query)
    assert list(test.index) == ["a"]
    assert test.loc["a", "query"] == "i3" and test.loc["a", "target"] == "i2"
    train_pairs = set(map(tuple, v.train[["user", "item"]].to_numpy()))
    # c (3 items) keeps x, y for training; its test target z is gone everywhere
    assert train_pairs == {("a", "i1"), ("b", "j1"), ("b", "j2"), ("c", "x"), ("c", "y")}
    assert "i4" not in set(v.train.item) and "z" not in set(v.train.item)


def test_split_random_order_seeded():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"u": rng.integers(0, 50, 2000), "i": rng.integers(0, 200, 2000)})
    s1 = leave_last_out(df, "u", "i", seed=3)
    s2 = leave_last_out(df, "u", "i", seed=3)
    s3 = leave_last_out(df, "u", "i", seed=4)
    pd.testing.assert_frame_equal(s1.test, s2.test)
    assert not s1.test.equals(s3.test)
    pairs = set(map(tuple, df.drop_duplicates().to_numpy()))
    train = set(map(tuple, s1.train[["u", "i"]].to_numpy()))
    for u, q, t in s1.test.itertuples(index=False):
        assert (u, q) in pairs and (u, t) in pairs and q != t
        assert (u, q) not in train and (u, t) not in train
    assert len(s1.train) + 2 * len(s1.test) == len(pairs)


# --------------------------------------------------------------------------------------------- metrics
def _metric_split():
    rows = [("u1", i, t) for t, i in enumerate([0, 1, 2, 3])]
    rows += [("u2", i, t) for t, i in enumerate([0, 4, 1, 5])]
    rows += [("u3", i, t) for t, i in enumerate([0, 1, 2, 3, 4, 5, 6, 7])]  # query 6, target 7: unseen
    return leave_last_out(pd.DataFrame(rows, columns=["user", "item", "ts"]), "user", "item", "ts")


def test_metrics_known_ranks():
    s = _metric_split()
    assert list(s.item_ids) == [0, 1, 2, 3, 4, 5]
    base = np.array([5.0, 4, 3, 2, 1, 0])
    fn = lambda q: np.tile(base, (len(q), 1))  # noqa: E731
    # u1: excluded {0, 1} + query 2 -> candidates 3, 4, 5: target 3 ranks 1
    # u2: excluded {0, 4} + query 1 -> candidates 2, 3, 5: target 5 ranks 3
    r = evaluate_scores(fn, s, k=3)
    assert r["n_evaluated"] == 2 and r["n_skipped"] == 1
    assert r["HR@3"] == pytest.approx(1.0)
    assert r["NDCG@3"] == pytest.approx((1 + 1 / np.log2(4)) / 2)
    assert r["MRR"] == pytest.approx((1 + 1 / 3) / 2)
    assert r["MRR_scaled"] == pytest.approx(1.0)
    assert r["mean_rank"] == pytest.approx(2.0)
    r1 = evaluate_scores(fn, s, k=1, batch_size=1)
    assert r1["HR@1"] == pytest.approx(0.5) and r1["NDCG@1"] == pytest.approx(0.5)


def test_metrics_ties_expected():
    s = _metric_split()
    fn = lambda q: np.zeros((len(q), 6))  # noqa: E731  all tied: 3 candidates per user
    r = evaluate_scores(fn, s, k=1)
    assert r["HR@1"] == pytest.approx(1 / 3)
    assert r["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert evaluate_scores(fn, s, k=1, ties="optimistic")["HR@1"] == pytest.approx(1.0)
    assert evaluate_scores(fn, s, k=1, ties="pessimistic")["MRR"] == pytest.approx(1 / 3)


def test_metrics_from_ranks_scaled_mrr():
    r = metrics_from_ranks(np.array([0, 99, 100, 250]), np.zeros(4, np.int64), n_items=1000, k=10)
    assert r["MRR_scaled"] == pytest.approx((1 + 1 + 1 / 2 + 1 / 3) / 4)
    assert r["HR@10"] == pytest.approx(0.25)


def test_training_items_and_query_excluded():
    s = _metric_split()
    # items the user trained on and the query get the top scores; the target still ranks first
    train_items = {2: [0, 1], 1: [0, 4]}  # u1 (query 2) trained on 0, 1; u2 (query 1) on 0, 4
    target = {2: 3, 1: 5}

    def fn(q):
        out = np.zeros((len(q), 6))
        for b, qi in enumerate(q):
            out[b, train_items[int(qi)]] = 100.0
            out[b, qi] = 1000.0
            out[b, target[int(qi)]] = 50.0
        return out
    r = evaluate_scores(fn, s, k=1)
    assert r["HR@1"] == pytest.approx(1.0) and r["MRR"] == pytest.approx(1.0)


def test_bad_shape_raises():
    s = _metric_split()
    with pytest.raises(ValueError, match="shape"):
        evaluate_scores(lambda q: np.zeros((len(q), 5)), s)


# ------------------------------------------------------------------------------------------- baselines
def _random_X(n_users=30, n_items=12, p=0.3, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    D = (rng.random((n_users, n_items)) < p).astype(np.float32)
    D[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1  # no empty users
    D[rng.integers(0, n_users, n_items), np.arange(n_items)] = 1  # no empty items
    return sp.csr_matrix(D)


def test_interaction_matrix():
    df = pd.DataFrame({"u": ["a", "a", "b", "a"], "i": [10, 20, 20, 10]})
    X, users, items = interaction_matrix(df, "u", "i")
    assert list(users) == ["a", "b"] and list(items) == [10, 20]
    np.testing.assert_array_equal(X.toarray(), [[1, 1], [0, 1]])
    X2, _, items2 = interaction_matrix(df, "u", "i", item_ids=np.array([20, 99]))
    np.testing.assert_array_equal(X2.toarray(), [[1, 0], [1, 0]])


def test_popularity():
    X = _random_X()
    pop = Popularity().fit(X)
    np.testing.assert_allclose(pop.score(np.array([0, 3])), np.tile(X.toarray().sum(0), (2, 1)))


def test_itemknn_matches_dense():
    X = _random_X()
    D = X.toarray().astype(np.float64)
    C = D.T @ D
    deg = D.sum(0)
    cos = C / np.sqrt(np.outer(deg, deg))
    np.fill_diagonal(cos, 0.0)  # an item is not its own neighbour
    q = np.array([0, 5, 11, 5])
    np.testing.assert_allclose(ItemKNN().fit(X).score(q), cos[q], rtol=1e-6)


def _dense_walk_counts(D: np.ndarray, restart: float, steps: int) -> np.ndarray:
    P = (D.T / D.sum(0)[:, None]) @ (D / D.sum(1)[:, None])  # item -> user -> item
    out, M = np.zeros_like(P), np.eye(P.shape[0])
    for t in range(1, steps + 1):
        M = M @ P
        out += (1 - restart) ** t * M
    return out


def test_random_walk_counts_dense_formula():
    X = _random_X(seed=2)
    D = X.toarray().astype(np.float64)
    q = np.arange(X.shape[1])
    for steps in (1, 3):
        got = RandomWalkCounts(restart=0.5, max_steps=steps).fit(X).score(q)
        np.testing.assert_allclose(got, _dense_walk_counts(D, 0.5, steps), rtol=1e-10, atol=1e-12)
    got = RandomWalkCounts(restart=0.5, max_steps=None, tol=1e-9).fit(X).score(q)
    np.testing.assert_allclose(got, _dense_walk_counts(D, 0.5, 40), atol=1e-8)


def test_random_walk_counts_monte_carlo():
    X = _random_X(n_users=10, n_items=6, p=0.4, seed=3)
    Xt = X.T.tocsr()
    rng = np.random.default_rng(0)
    n_walks, restart, steps, q = 200_000, 0.5, 3, 2
    cur = np.full(n_walks, q)
    alive = np.ones(n_walks, bool)
    counts = np.zeros(X.shape[1])
    for _ in range(steps):
        alive &= rng.random(n_walks) >= restart  # the walk may end before each step
        dg = np.diff(Xt.indptr)[cur]
        users = Xt.indices[Xt.indptr[cur] + (rng.random(n_walks) * dg).astype(int)]
        du = np.diff(X.indptr)[users]
        cur = X.indices[X.indptr[users] + (rng.random(n_walks) * du).astype(int)]
        counts += np.bincount(cur[alive], minlength=X.shape[1])
    exact = RandomWalkCounts(restart, steps).fit(X).score(np.array([q]))[0]
    np.testing.assert_allclose(counts / n_walks, exact, atol=5e-3)


def test_puresvd_shapes():
    X = _random_X(n_users=40, n_items=20)
    m = PureSVD(factors=5).fit(X)
    assert m.embeddings.shape == (20, 5)
    np.testing.assert_allclose(np.linalg.norm(m.embeddings, axis=1), 1.0, rtol=1e-6)
    s = m.score(np.array([1, 2, 3]))
    assert s.shape == (3, 20)
    np.testing.assert_allclose(s[np.arange(3), [1, 2, 3]], 1.0, rtol=1e-6)
    assert PureSVD(factors=64).fit(X).embeddings.shape == (20, 19)  # capped by min(shape) - 1


def test_ease_and_limit():
    X = _random_X()
    m = EASE(l2=10.0).fit(X)
    s = m.score(np.array([0, 1]))
    assert s.shape == (2, X.shape[1]) and s[0, 0] == 0 and s[1, 1] == 0
    with pytest.raises(ValueError, match="max_items"):
        EASE(max_items=5).fit(X)


def test_embedding_scorer_and_item_order():
    s = _metric_split()
    rng = np.random.default_rng(0)
    E = rng.standard_normal((6, 4)).astype(np.float32)
    np.testing.assert_allclose(EmbeddingScorer(E).score(np.array([2])), E[[2]] @ E.T, rtol=1e-6)
    base = evaluate_embeddings(E, s, k=3)
    perm = rng.permutation(6)  # rows given in another order, with matching item_ids
    other = evaluate_embeddings(E[perm], s, item_ids=s.item_ids[perm], k=3)
    for key in ("HR@3", "NDCG@3", "MRR"):
        assert base[key] == pytest.approx(other[key])


def test_run_baselines_and_table():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"u": rng.integers(0, 60, 3000), "i": rng.integers(0, 80, 3000), "t": rng.random(3000)})
    s = leave_last_out(df, "u", "i", "t")
    tab = run_baselines(s, params={"puresvd": {"factors": 8}, "ease": {"l2": 50.0}})
    assert len(tab) == 6 and tab["n_evaluated"].nunique() == 1
    md = format_table(tab)
    assert md.startswith("| method | HR@10 | NDCG@10 | MRR |") and md.count("\n") == 7


# ---------------------------------------------------------------------------------------- MovieLens 100K
@pytest.mark.skipif(not ML100K.exists(), reason=f"MovieLens-100K not found at {ML100K} (set PINSAGE_ML100K)")
def test_movielens_100k_protocol_and_baselines():
    df = pd.read_csv(ML100K, sep="\t", header=None, names=["user", "item", "rating", "ts"])
    s = leave_last_out(df, "user", "item", time_col="ts")
    summ = s.summary()
    assert summ["users"] == 943 and summ["train_items"] == 1678
    assert summ["test_users"] == 943 and summ["test_users_evaluable"] == 940
    tab = run_baselines(s, methods=("popularity", "itemknn", "puresvd")).set_index("method")
    assert (tab["n_evaluated"] == 940).all() and (tab["n_skipped"] == 3).all()
    expected = {"popularity": 0.086, "item-kNN": 0.154, "PureSVD": 0.175}  # DESIGN.md's table
    for method, hr in expected.items():
        assert tab.loc[method, "HR@10"] == pytest.approx(hr, abs=0.02), (method, tab.loc[method].to_dict())
