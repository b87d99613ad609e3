"""Recommendations for histories: ``ItemIndex.recommend`` against brute force, the PinnerSage-style
interests, histories from the graph, ``PinSageEmbedder.recommend`` and ``pinsage recommend``."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _tiny_run import write_tiny_run

from pinsage import InputError, PinSageEmbedder
from pinsage.cli import main
from pinsage.graph import InteractionGraph
from pinsage.graph.histories import group_histories, group_rows
from pinsage.index import ItemIndex
from pinsage.index.histories import Histories, recency_weights
from pinsage.index.interests import cluster_histories, quotas


def _clustered(n: int = 3000, d: int = 16, topics: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, d)).astype(np.float32)
    topic = rng.integers(0, topics, n)
    emb = centres[topic] + 0.3 * rng.standard_normal((n, d)).astype(np.float32)
    return emb, topic, rng


@pytest.fixture(scope="module")
def catalogue():
    emb, topic, rng = _clustered()
    ids = np.asarray([f"i{j}" for j in range(len(emb))])
    return {"emb": emb, "topic": topic, "rng": rng, "ids": ids,
            "index": ItemIndex.build(emb, ids, kind="exact")}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return write_tiny_run(tmp_path_factory.mktemp("rec") / "run")


# -------------------------------------------------------------------------------- the recency mean
def test_recency_matches_brute_force(catalogue):
    emb, ids, index = catalogue["emb"], catalogue["ids"], catalogue["index"]
    rows = catalogue["rng"].choice(len(ids), 12, replace=False)
    for half_life in (3.0, None):
        got_ids, got_scores = index.recommend(ids[rows].tolist(), N=8, half_life=half_life)
        back = len(rows) - 1 - np.arange(len(rows))
        w = np.ones(len(rows)) if half_life is None else 2.0 ** (-back / half_life)
        scores = emb @ ((w[:, None] * emb[rows]).sum(0) / w.sum())
        scores[rows] = -np.inf  # the history's own items are left out
        top = np.argsort(-scores)[:8]
        assert got_ids.tolist() == ids[top].tolist()
        np.testing.assert_allclose(got_scores, scores[top], rtol=1e-4, atol=1e-4)
    kept, _ = index.recommend(ids[rows[:2]].tolist(), N=3, filter_already_liked_items=False, half_life=None)
    assert kept.tolist() == ids[np.argsort(-(emb @ emb[rows[:2]].mean(0)))[:3]].tolist()  # own items may come back


def test_recency_weights_halve_every_half_life():
    h = Histories(np.array([0, 3, 4]), np.array([5, 6, 7, 8]))
    np.testing.assert_allclose(recency_weights(h, 2.0), [0.5, 2 ** -0.5, 1.0, 1.0])
    np.testing.assert_allclose(recency_weights(h, None), 1.0)
    with pytest.raises(InputError, match="half_life"):
        recency_weights(h, 0)


def test_batch_equals_one_at_a_time_and_filters(catalogue):
    ids, index, rng = catalogue["ids"], catalogue["index"], catalogue["rng"]
    histories = [ids[rng.choice(len(ids), rng.integers(1, 30), replace=False)].tolist() for _ in range(60)]
    banned = ids[:500].tolist()
    for method in ("recency", "interests"):
        batch, scores = index.recommend(histories, N=10, method=method, filter_items=banned)
        assert batch.shape == (60, 10) and np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
        for i, h in enumerate(histories):
            one, _ = index.recommend(h, N=10, method=method, filter_items=banned)
            assert one.tolist() == batch[i].tolist()
            assert len(set(one.tolist())) == 10 and not set(one.tolist()) & (set(h) | set(banned))


def test_interests_cover_each_topic_of_a_history(catalogue):
    ids, index, topic = catalogue["ids"], catalogue["index"], catalogue["topic"]
    a, b = np.flatnonzero(topic == 0), np.flatnonzero(topic == 1)
    history = ids[np.concatenate([a[:12], b[:3]])].tolist()  # mostly topic 0, some topic 1, oldest first
    got, _ = index.recommend(history, N=10, method="interests", clusters=2, half_life=None)
    counts = np.bincount(topic[index.rows_of(got)], minlength=2)[:2]
    assert counts.tolist() == [8, 2]  # quotas in proportion to the clusters' weights: 12:3 of 10
    mean, _ = index.recommend(history, N=10, half_life=None)
    assert np.bincount(topic[index.rows_of(mean)], minlength=2)[1] < 2  # one mean vector leans to topic 0


def test_cluster_histories_and_quotas():
    x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [1, 0.05]], dtype=np.float32)
    h = Histories(np.array([0, 5, 6]), np.array([0, 1, 2, 3, 4, 0]))
    interests = cluster_histories(x[h.rows], h, np.ones(6), clusters=2)
    assert interests.owner.tolist() == [0, 0, 1]  # a one-item history has one cluster
    assert sorted(interests.size[:2].tolist()) == [2, 3]
    np.testing.assert_allclose(np.bincount(interests.owner, weights=interests.importance), 1.0)
    medoids = set(h.rows[interests.medoid[:2]].tolist())
    assert medoids & {0, 1, 4} and medoids & {2, 3}
    q = quotas(interests, 2, 10)
    assert q.tolist() == [6, 4, 10] or q.tolist() == [4, 6, 10]


def test_bad_histories_are_refused(catalogue):
    index = catalogue["index"]
    with pytest.raises(InputError, match="unknown item id"):
        index.recommend(["i1", "nope"])
    with pytest.raises(InputError, match="empty"):
        index.recommend([["i1"], []])
    with pytest.raises(InputError, match="method"):
        index.recommend(["i1"], method="magic")
    with pytest.raises(InputError, match="N must be"):
        index.recommend(["i1"], N=0)


# -------------------------------------------------------------------------------- graph histories
def test_group_histories_in_time_order_and_cut():
    df = pd.DataFrame({"u": ["a", "a", "a", "b", "b"], "i": [3, 1, 2, 1, 3], "t": [30, 10, 20, 5, 1]})
    g = InteractionGraph.from_pandas(df, "u", "i", time_col="t")
    indptr, items = group_histories(g, group_rows(g, ["b", "a"]))
    assert indptr.tolist() == [0, 2, 5]
    assert g.item_ids[items].tolist() == [3, 1, 1, 2, 3]  # by time within each user
    indptr, items = group_histories(g, group_rows(g, ["a"]), max_len=2)
    assert g.item_ids[items].tolist() == [2, 3]  # the two most recent
    with pytest.raises(InputError, match="unknown user id 'zz'"):
        group_rows(g, ["a", "zz"])


# -------------------------------------------------------------------------------- the estimator
def test_estimator_recommend_for_users_and_histories(tiny_run):
    run = tiny_run
    model = PinSageEmbedder()
    # the fitted state recommend() reads (a fit would take longer than the test needs)
    model.item_embeddings_, model.item_ids_, model.graph_ = run["emb"], run["ids"], run["graph"]
    index = ItemIndex.build(run["emb"], run["ids"], kind="exact")
    users = run["graph"].group_ids[:4]
    ids, scores = model.recommend(users, N=5)
    indptr, items = group_histories(run["graph"], np.arange(4), 500)
    want, want_scores = index.recommend(Histories(indptr, items), N=5)
    assert ids.tolist() == want.tolist() and np.allclose(scores, want_scores)
    one, _ = model.recommend(users[0], N=5, method="interests")
    assert one.shape == (5,)
    hist = run["ids"][[2, 50]].tolist()
    assert model.recommend(user_items=hist, N=3)[0].tolist() == index.recommend(hist, N=3)[0].tolist()
    with pytest.raises(InputError, match="either userid"):
        model.recommend()


# -------------------------------------------------------------------------------- the command
def test_recommend_command(tiny_run, tmp_path, capsys):
    run = tiny_run
    user = run["graph"].group_ids[3]
    assert main(["recommend", "--run", str(run["path"]), "--user", str(user), "--n", "4"]) == 0
    out = capsys.readouterr().out
    indptr, items = group_histories(run["graph"], np.array([3]), 500)
    want, _ = ItemIndex.build(run["emb"], run["ids"], kind="exact").recommend(Histories(indptr, items), N=4)
    assert f"user {user}" in out and all(i in out for i in want[0].tolist()) and "topic" in out

    out_file = tmp_path / "rec.json"
    assert main(["recommend", "--run", str(run["path"]), "--items", ",".join(run["ids"][[1, 60]]),
                 "--method", "interests", "--clusters", "2", "--n", "6", "--output", str(out_file)]) == 0
    (entry,) = json.loads(out_file.read_text())
    assert entry["method"] == "interests" and len(entry["items"]) == 6 and entry["items"][0]["rank"] == 1
    assert {"item", "score", "title"} <= set(entry["items"][0])

    assert main(["recommend", "--run", str(run["path"]), "--user", "nobody"]) == 2
    assert "unknown --user id 'nobody'" in capsys.readouterr().err
    assert main(["recommend", "--run", str(run["path"]), "--items", "pin_00001,ghost"]) == 2
    assert "ghost" in capsys.readouterr().err
