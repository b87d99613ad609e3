"""Walks by edge weight: prefix sums, the visit distribution against the exact weighted walk with restart,
the age decay, the exact neighbourhoods, and the settings that switch them on."""
import numpy as np
import pandas as pd
import pytest
import torch

from pinsage import InputError, PinSageConfig
from pinsage.graph import InteractionGraph
from pinsage.graph.weights import edge_walk_weights, walk_weights
from pinsage.sampling import ImportanceSampler
from pinsage.sampling.exact import exact_neighborhoods
from _walks import assert_visits_match, dense_weights, exact_weighted_visits


def weighted_graph(seed=0, n_groups=12, n_items=15, n_edges=45, times=False, zero_share=0.0):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n_edges)
    items = rng.integers(0, n_items, n_edges)
    weight = rng.choice([0.5, 1.0, 4.0, 20.0], n_edges)  # spread so that weighted and uniform walks differ
    if zero_share:
        weight[rng.random(n_edges) < zero_share] = 0.0
    time = rng.integers(0, 1000, n_edges) if times else None
    return InteractionGraph.from_edges(groups, items, num_groups=n_groups, num_items=n_items,
                                       weight=weight, time=time)


def alias_distribution(indptr, adj, alias, v, n_other):
    """The step distribution over neighbours that node ``v``'s alias entries encode."""
    lo, hi = indptr[v], indptr[v + 1]
    np.testing.assert_array_equal(alias[lo:hi, 1], adj[lo:hi])  # each row's own neighbour
    thr = (alias[lo:hi, 0] >> np.uint64(32)).astype(np.float64) / 2.0**32
    other = (alias[lo:hi, 0] & np.uint64(0xFFFFFFFF)).astype(np.int64)
    p = np.zeros(n_other)
    np.add.at(p, np.asarray(adj[lo:hi], dtype=np.int64), thr / (hi - lo))
    np.add.at(p, other, (1 - thr) / (hi - lo))
    return p


def test_alias_tables_encode_the_weights_in_both_directions():
    g = weighted_graph(1, times=True, zero_share=0.2)
    w = edge_walk_weights(g, half_life=300.0)
    ww = walk_weights(g, half_life=300.0)
    A = dense_weights(g, w)
    for v in range(g.num_groups):
        if A[v].sum() > 0:
            np.testing.assert_allclose(alias_distribution(g.group_indptr, g.group_items, ww.group_alias, v,
                                                          g.num_items), A[v] / A[v].sum(), atol=1e-8)
    for i in range(g.num_items):
        assert ww.item_total[i] == pytest.approx(A[:, i].sum(), rel=1e-6)
        if A[:, i].sum() > 0:
            np.testing.assert_allclose(alias_distribution(g.item_indptr, g.item_groups, ww.item_alias, i,
                                                          g.num_groups), A[:, i] / A[:, i].sum(), atol=1e-8)
    assert ww.nbytes == 32 * g.num_edges + 4 * g.num_items


def test_half_life_decay_and_its_errors():
    g = weighted_graph(2, times=True)
    w = edge_walk_weights(g, half_life=100.0)
    age = g.edge_time.max() - g.edge_time
    np.testing.assert_allclose(w, g.edge_weight * 0.5 ** (age / 100.0))
    newest = np.argmax(g.edge_time)
    assert w[newest] == g.edge_weight[newest], "the newest edge keeps its weight"
    np.testing.assert_array_equal(edge_walk_weights(g), g.edge_weight)
    with pytest.raises(InputError, match="no times"):
        edge_walk_weights(weighted_graph(2), half_life=10.0)
    with pytest.raises(InputError, match="positive"):
        edge_walk_weights(g, half_life=-1.0)


@pytest.mark.parametrize("L,r,half_life", [(1, 0.5, None), (3, 0.5, None), (4, 0.2, 250.0)])
def test_weighted_visit_frequencies_match_exact_distribution(L, r, half_life):
    g = weighted_graph(3, times=half_life is not None)
    W = 200_000
    sampler = ImportanceSampler(g, num_walks=W, walk_length=L, restart_prob=r, num_neighbors=g.num_items,
                                seed=5, weighted=True, weight_half_life=half_life)
    A = dense_weights(g, edge_walk_weights(g, half_life))
    uniform = dense_weights(g, np.ones(g.num_edges))
    seeds = np.array([0, 4, 9])
    nb = sampler(torch.from_numpy(seeds))
    assert_visits_match(nb, seeds, lambda s: exact_weighted_visits(A, s, L, r), g.num_items, W, L)
    differs = max(np.abs(exact_weighted_visits(A, s, L, r) - exact_weighted_visits(uniform, s, L, r)).max()
                  for s in seeds)
    assert differs > 0.05, "the test graph's weights must change the distribution, or the test proves nothing"


def test_zero_weight_edges_are_never_walked():
    g = weighted_graph(4, n_edges=80, zero_share=0.3)
    w = edge_walk_weights(g)
    assert (w == 0).any()
    sampler = ImportanceSampler(g, num_walks=3000, walk_length=1, restart_prob=1.0,
                                num_neighbors=g.num_items, seed=1, weighted=True)
    A = dense_weights(g, w)
    nbr, cnt, n = sampler.sample_arrays(np.arange(g.num_items), key=0)
    # one hop reaches j from s only through a group where both edges have positive weight
    reach = (A.T > 0).astype(float) @ (A > 0).astype(float)
    for s in range(g.num_items):
        visited = nbr[s, :n[s]]
        assert (reach[s, visited] > 0).all(), s
        if A[:, s].sum() == 0:
            assert n[s] == 0, "a seed whose edges all weigh 0 takes no step"


def test_exact_neighborhoods_follow_the_weights():
    g = weighted_graph(5, n_groups=20, n_items=30, n_edges=150)
    A = dense_weights(g, edge_walk_weights(g))
    nb = exact_neighborhoods(g, walk_length=3, restart_prob=0.5, num_neighbors=5, weighted=True)
    plain = exact_neighborhoods(g, walk_length=3, restart_prob=0.5, num_neighbors=5)
    changed = 0
    for s in range(g.num_items):
        expected = exact_weighted_visits(A, s, 3, 0.5)
        row = nb.indices[nb.indptr[s]:nb.indptr[s + 1]]
        top = np.lexsort((np.arange(g.num_items), -expected))[:len(row)]
        np.testing.assert_array_equal(row, top[expected[top] > 0])
        np.testing.assert_allclose(nb.weights[nb.indptr[s]:nb.indptr[s + 1]],
                                   expected[row] / expected[row].sum(), rtol=1e-4)
        changed += not np.array_equal(row, plain.indices[plain.indptr[s]:plain.indptr[s + 1]])
    assert changed > 0


def test_weighted_walks_need_the_switch_and_the_config_checks():
    g = weighted_graph(6)
    with pytest.raises(ValueError, match="weighted=True"):
        ImportanceSampler(g, weight_half_life=5.0)
    a = ImportanceSampler(g, num_walks=50, seed=0)(torch.arange(g.num_items), key=0)
    b = ImportanceSampler(g, num_walks=50, seed=0, weighted=True)(torch.arange(g.num_items), key=0)
    assert not torch.equal(a.indices, b.indices) or not torch.equal(a.counts, b.counts)
    cfg = PinSageConfig().override(sampler__weighted=True, sampler__weight_half_life=86400.0)
    s = ImportanceSampler.from_config(weighted_graph(6, times=True), cfg.sampler)
    assert s.weighted and s.weight_half_life == 86400.0 and "weighted=True" in repr(s)
    with pytest.raises(InputError, match="not weighted"):
        from pinsage import PinSageEmbedder
        PinSageEmbedder(PinSageConfig().override(sampler__weight_half_life=10.0)).fit(
            pd.DataFrame({"u": [0, 1], "i": [0, 1], "t": [0, 1]}), "u", "i", "t")
    with pytest.raises(InputError, match="weight_half_life"):
        PinSageConfig().override(sampler__weighted=True, sampler__weight_half_life=-1.0)


def test_fit_with_a_weight_column_walks_by_weight():
    from pinsage import PinSageEmbedder

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"u": rng.integers(0, 40, 600), "i": rng.integers(0, 60, 600),
                       "plays": rng.integers(1, 50, 600)})
    cfg = PinSageConfig().override(train__epochs=1, sampler__method="walks", sampler__num_walks=20)
    model = PinSageEmbedder(cfg).fit(df, group_col="u", item_col="i", weight_col="plays")
    assert model.config_.sampler.weighted and not cfg.sampler.weighted
    assert model.graph_.edge_weight is not None
    assert model.sampler_.walk_weights is not None
    assert model.item_embeddings_.shape[0] == df["i"].nunique()


def test_train_weight_col_then_embed_reproduces_and_needs_the_column(tmp_path, capsys):
    import json

    import yaml

    from pinsage.cli import main
    from pinsage.datasets import make_pinboard

    data = make_pinboard(n_topics=3, pins_per_topic=20, n_boards=80, seed=1)
    inter = data.interactions.copy()
    inter["dwell"] = np.random.default_rng(0).integers(1, 30, len(inter))
    inter.to_csv(tmp_path / "train.csv", index=False)
    inter.drop(columns="dwell").to_csv(tmp_path / "no_weights.csv", index=False)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({
        "train": {"epochs": 1, "pairs_per_epoch": 1000, "num_workers": 0, "batch_size": 128, "easy_negatives": 50},
        "sampler": {"weight_half_life": 50.0}}))
    run = tmp_path / "run"
    assert main(["train", "--interactions", str(tmp_path / "train.csv"), "--user-col", "board", "--item-col", "pin",
                 "--time-col", "time", "--weight-col", "dwell", "--config", str(tmp_path / "cfg.yaml"),
                 "--out", str(run), "--quiet"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["sampler"]["weighted"] is True
    assert json.loads((run / "run.json").read_text())["weight_col"] == "dwell"
    out = tmp_path / "e"
    assert main(["embed", "--run", str(run), "--interactions", str(tmp_path / "train.csv"), "--out", str(out)]) == 0
    np.testing.assert_allclose(np.load(out / "item_embeddings.npy"), np.load(run / "item_embeddings.npy"),
                               rtol=1e-4, atol=1e-5)
    capsys.readouterr()
    assert main(["embed", "--run", str(run), "--interactions", str(tmp_path / "no_weights.csv"),
                 "--out", str(tmp_path / "e2")]) == 2
    assert "dwell" in capsys.readouterr().err
