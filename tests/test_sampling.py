"""Importance sampler against exact random-walk-with-restart visits; PPR against networkx."""
import networkx as nx
import numpy as np
import pytest
import torch

from pinsage.graph import InteractionGraph
from pinsage.sampling import ImportanceSampler, personalized_pagerank, ppr_rank_window
from _walks import assert_visits_match, dense_weights, exact_weighted_visits


def small_graph(seed=0, n_groups=12, n_items=15, n_edges=45):
    rng = np.random.default_rng(seed)
    return InteractionGraph.from_edges(rng.integers(0, n_groups, n_edges), rng.integers(0, n_items, n_edges),
                                       num_groups=n_groups, num_items=n_items)


def exact_visits(g, s, L, r):
    """E[visits to j per walk] = sum_h (1-r)^(h-1) P^h[s, j], seed itself not counted."""
    return exact_weighted_visits(dense_weights(g, 1.0), s, L, r)


@pytest.mark.parametrize("L,r", [(1, 0.5), (3, 0.5), (4, 0.2)])
def test_visit_frequencies_match_exact_distribution(L, r):
    g = small_graph()
    W = 200_000
    sampler = ImportanceSampler(g, num_walks=W, walk_length=L, restart_prob=r, num_neighbors=g.num_items, seed=3)
    seeds = np.array([0, 3, 7])
    nb = sampler(torch.from_numpy(seeds))
    assert_visits_match(nb, seeds, lambda s: exact_visits(g, s, L, r), g.num_items, W, L)


def test_top_t_order_weights_and_ties():
    """Every seed's row, not just the first: top-T of all visits, ranked, weighted, seed excluded."""
    g = small_graph(1)
    T, n = 4, g.num_items
    seeds = torch.arange(n)
    sampler = ImportanceSampler(g, num_walks=500, walk_length=3, num_neighbors=T, seed=0)
    nb = sampler(seeds, key=0)
    nbr, cnt, nout = sampler.sample_arrays(seeds.numpy(), key=0)
    # the same walks (a row's stream depends on the key and the row only), every visited item kept
    full = ImportanceSampler(g, num_walks=500, walk_length=3, num_neighbors=n, seed=0)
    f_nbr, f_cnt, f_n = full.sample_arrays(seeds.numpy(), key=0)
    rows = np.arange(n)[:, None]
    valid = np.arange(T)[None, :] < nout[:, None]
    assert (nout > 0).all()
    # the CSR form is the padded one without its padding
    assert np.array_equal(nb.offsets.numpy(), np.r_[0, np.cumsum(nout)])
    assert np.array_equal(nb.indices.numpy(), nbr[valid]) and np.array_equal(nb.counts.numpy(), cnt[valid])
    assert (nbr[~valid] == -1).all() and (cnt[~valid] == 0).all()
    assert (nbr[valid] < n).all() and (cnt[valid] >= 1).all()
    assert not (nbr == rows).any() and not (f_nbr == rows).any(), "a seed is never its own neighbour"
    # top-T of everything visited: T entries unless fewer items were visited, the full ranking's prefix
    assert np.array_equal(nout, np.minimum(f_n, T))
    assert np.array_equal(nbr, f_nbr[:, :T]) and np.array_equal(cnt, f_cnt[:, :T])
    # no unselected item was visited more often than the last selected one
    last = cnt[np.arange(n), nout - 1]
    assert (f_cnt[:, T:].max(axis=1) <= last).all()
    # every row ranked by count desc, then index asc (the full visit lists too)
    for idx, c, k in ((nbr, cnt, nout), (f_nbr, f_cnt, f_n)):
        pair = np.arange(1, idx.shape[1])[None, :] < k[:, None]  # entries j-1 and j both valid
        ordered = (c[:, :-1] > c[:, 1:]) | ((c[:, :-1] == c[:, 1:]) & (idx[:, :-1] < idx[:, 1:]))
        assert ordered[pair].all(), "ranked by count desc, then index asc"
    assert (pair & (f_cnt[:, :-1] == f_cnt[:, 1:])).any(), "ties for the index order to break"
    # weights: each row's counts normalised to sum to 1
    row_of = np.repeat(np.arange(n), nout)
    w, c = nb.weights.numpy().astype(np.float64), nb.counts.numpy()
    assert np.allclose(np.bincount(row_of, weights=w, minlength=n), 1.0, atol=1e-6)
    assert np.allclose(w, c / np.bincount(row_of, weights=c, minlength=n)[row_of], atol=1e-7)


def test_deterministic_and_thread_independent():
    g = small_graph(2, 30, 60, 300)
    seeds = torch.arange(60)
    a = ImportanceSampler(g, 50, 3, 0.5, 5, seed=7)(seeds, key=11)
    b = ImportanceSampler(g, 50, 3, 0.5, 5, seed=7)(seeds, key=11)
    c = ImportanceSampler(g, 50, 3, 0.5, 5, seed=8)(seeds, key=11)
    d = ImportanceSampler(g, 50, 3, 0.5, 5, seed=7, num_threads=1)(seeds, key=11)
    many = torch.arange(600) % 60  # enough seeds to be split over threads
    one = ImportanceSampler(g, 50, 3, 0.5, 5, seed=7, num_threads=1)(many, key=3)
    three = ImportanceSampler(g, 50, 3, 0.5, 5, seed=7, num_threads=3)(many, key=3)
    assert all(torch.equal(u, v) for u, v in zip(one, three))
    for x in (b, d):
        assert all(torch.equal(u, v) for u, v in zip(a, x))
    assert not torch.equal(a.indices, c.indices) or not torch.equal(a.counts, c.counts)
    # successive calls without a key advance the stream
    s = ImportanceSampler(g, 50, 3, 0.5, 5, seed=7)
    first, second = s(seeds), s(seeds)
    assert not torch.equal(first.counts, second.counts)


def test_empty_neighbourhoods():
    # item 2 is alone in group 1; item 3 has no group at all
    g = InteractionGraph.from_edges(np.array([0, 0, 1]), np.array([0, 1, 2]), num_groups=2, num_items=4)
    nb = ImportanceSampler(g, 20, 3, 0.5, 3)(torch.tensor([0, 2, 3, 1]))
    assert nb.offsets.tolist() == [0, 1, 1, 1, 2]
    assert nb.indices.tolist() == [1, 0]
    assert nb.weights.tolist() == [1.0, 1.0]
    empty = ImportanceSampler(g, 20, 3, 0.5, 3)(torch.tensor([], dtype=torch.int64))
    assert empty.offsets.tolist() == [0] and len(empty.indices) == 0


def test_bad_seeds_and_parameters():
    g = small_graph()
    with pytest.raises(IndexError):
        ImportanceSampler(g)(torch.tensor([g.num_items]))
    with pytest.raises(ValueError):
        ImportanceSampler(g, restart_prob=1.5)


def test_ppr_matches_networkx():
    g = small_graph(4, 10, 14, 40)
    G = nx.Graph()
    G.add_nodes_from(("i", i) for i in range(g.num_items))
    G.add_nodes_from(("g", j) for j in range(g.num_groups))
    rows = np.repeat(np.arange(g.num_groups), g.group_degree)
    G.add_edges_from((("g", int(a)), ("i", int(b))) for a, b in zip(rows, g.group_items))
    seeds = np.array([0, 5, 9])
    ours = personalized_pagerank(g, seeds, restart_prob=0.15, tol=1e-12, max_iter=1000)
    for b, s in enumerate(seeds):
        pr = nx.pagerank(G, alpha=0.85, personalization={("i", int(s)): 1.0}, tol=1e-12, max_iter=1000)
        ref = np.array([pr[("i", i)] for i in range(g.num_items)])
        assert np.allclose(ours[b], ref, atol=1e-8)
        ref_rank = sorted((i for i in range(g.num_items) if i != s), key=lambda i: (-ref[i], i))
        window = ppr_rank_window(g, np.array([s]), 1, 5, restart_prob=0.15, tol=1e-12, max_iter=1000)[0]
        assert window.tolist() == ref_rank[1:5]
