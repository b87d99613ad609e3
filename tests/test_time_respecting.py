"""Time-respecting neighbourhoods: the time index, degrees before a time, and walks over older edges only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from _walks import assert_visits_match, dense_weights, exact_weighted_visits

from pinsage._io import InputError
from pinsage.graph import InteractionGraph
from pinsage.graph.time_index import degree_before, time_index
from pinsage.sampling import ImportanceSampler


def timed_graph(n_groups=40, n_items=30, n_edges=400, seed=0, dates=False) -> InteractionGraph:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"u": rng.integers(0, n_groups, n_edges), "i": rng.integers(0, n_items, n_edges),
                       "t": rng.integers(0, 1000, n_edges)})
    if dates:
        df["t"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(df["t"], unit="h")
    return InteractionGraph.from_pandas(df, "u", "i", time_col="t")


def test_index_orders_each_adjacency_by_time_with_the_same_edges():
    g = timed_graph()
    ti = time_index(g)
    edges = {(int(u), int(i)): t for u, i, t in zip(g.edge_groups(), g.group_items, g.edge_time)}
    for indptr, ids, ranks, records, group_side in (
            (g.group_indptr, ti.group_items, ti.group_ranks, ti.group_records, True),
            (g.item_indptr, ti.item_groups, ti.item_ranks, ti.item_records, False)):
        times = ti.times[ranks.astype(np.int64)]
        assert records.ctypes.data % 64 == 0
        for v in range(len(indptr) - 1):
            lo, hi = indptr[v], indptr[v + 1]
            assert (np.diff(times[lo:hi]) >= 0).all()
            key = ranks[lo:hi].astype(np.int64) * 10**6 + ids[lo:hi]
            assert (np.diff(key) > 0).all()  # ties by id
            assert int(records[v, 0]) | (int(records[v, 1]) << 32) == lo
            counts = [int((ranks[lo:hi] < c).sum()) for c in ti.cuts[1:]]
            assert records[v, 2:].tolist() == counts and counts[-1] == hi - lo
            for k in range(lo, hi):
                key = (v, int(ids[k])) if group_side else (int(ids[k]), v)
                assert edges[key] == times[k]
            native = g.group_items if group_side else g.item_groups
            assert sorted(ids[lo:hi].tolist()) == sorted(native[lo:hi].tolist())


def test_degree_before_counts_older_edges():
    g = timed_graph()
    ti = time_index(g)
    items = np.arange(g.num_items)
    t_item = np.asarray(g.edge_time)
    for bound in (0, 1, 500, 999, 10_000):
        got = degree_before(g, ti, items, bound)
        want = np.bincount(g.group_items[t_item < bound], minlength=g.num_items)
        assert got.tolist() == want.tolist()
    per_item = np.linspace(0, 1000, g.num_items).astype(np.int64)
    got = degree_before(g, ti, items, per_item)
    want = [int(((g.group_items == j) & (t_item < per_item[j])).sum()) for j in items]
    assert got.tolist() == want


def test_time_index_needs_times():
    g = InteractionGraph.from_pandas(pd.DataFrame({"u": [0, 1], "i": [0, 0]}), "u", "i")
    with pytest.raises(InputError, match="time column"):
        time_index(g)
    with pytest.raises(InputError, match="time column"):
        ImportanceSampler(g, num_walks=4)(np.array([0]), before=1.0)


@pytest.mark.parametrize("bound", [300, 700])
def test_restricted_visits_match_the_exact_walk_on_older_edges(bound):
    g = timed_graph()
    W, L, r = 4000, 3, 0.5
    sampler = ImportanceSampler(g, num_walks=W, walk_length=L, restart_prob=r, num_neighbors=g.num_items, seed=1)
    seeds = np.arange(g.num_items)
    nb = sampler(seeds, before=bound)
    A = dense_weights(g, (np.asarray(g.edge_time) < bound).astype(float))
    assert_visits_match(nb, seeds, lambda s: exact_weighted_visits(A, s, L, r), g.num_items, W, L)


def test_no_neighbour_is_reached_through_an_edge_at_or_after_the_bound():
    """Per-seed bounds: every neighbour lies within L hops of its seed on the edges older than the seed's own
    time (the pair's own edge, at the bound, excluded); seeds with no older edge get none."""
    g = timed_graph(n_groups=60, n_items=50, n_edges=300, seed=4)
    L = 4
    seeds = np.arange(g.num_items)
    bounds = np.random.default_rng(0).integers(0, 1000, g.num_items)
    nb = ImportanceSampler(g, num_walks=300, walk_length=L, restart_prob=0.3, num_neighbors=g.num_items,
                           seed=2)(seeds, before=bounds)
    t = np.asarray(g.edge_time)
    for b, s in enumerate(seeds):
        keep = t < bounds[b]
        X = sp.csr_matrix((np.ones(keep.sum()), (g.edge_groups()[keep], g.group_items[keep])),
                          shape=(g.num_groups, g.num_items))
        P = (X.T @ X).astype(bool).astype(np.int64)
        reach = np.zeros(g.num_items, dtype=bool)
        frontier = np.zeros(g.num_items)
        frontier[s] = 1
        for _ in range(L):
            frontier = (P.T @ frontier > 0).astype(float)
            reach |= frontier > 0
        got = nb.indices[nb.offsets[b]:nb.offsets[b + 1]].numpy()
        assert reach[got].all(), (s, got[~reach[got]])
        if not keep[g.group_items == s].any():
            assert len(got) == 0


def test_restricted_sampling_is_reproducible_and_thread_independent():
    g = timed_graph(n_items=200, n_groups=150, n_edges=3000, seed=3)
    seeds = np.arange(g.num_items)
    bounds = np.random.default_rng(1).integers(0, 1000, g.num_items)
    a = ImportanceSampler(g, num_walks=50, walk_length=3, num_neighbors=10, seed=5, num_threads=1)
    b = ImportanceSampler(g, num_walks=50, walk_length=3, num_neighbors=10, seed=5, num_threads=3)
    x = a.sample_arrays(seeds, key=7, before=bounds)
    y = b.sample_arrays(seeds, key=7, before=bounds)
    for u, v in zip(x, y):
        np.testing.assert_array_equal(u, v)
    # a seed's result depends on its stream id, not on the other seeds of the call
    half = a.sample_arrays(seeds[::2], key=7, stream_ids=seeds[::2], before=bounds[::2])
    full = a.sample_arrays(seeds, key=7, stream_ids=seeds, before=bounds)
    np.testing.assert_array_equal(half[0], full[0][::2])


def test_fractional_bounds_on_integer_times():
    """An edge at time 5 is older than 5.5 and not older than 5: ranks compare times exactly."""
    g = InteractionGraph.from_pandas(pd.DataFrame({"u": [0, 0, 1, 1], "i": [0, 1, 1, 2], "t": [1, 5, 2, 9]}),
                                     "u", "i", time_col="t")
    ti = time_index(g)
    assert degree_before(g, ti, np.array([0, 1, 2]), 5).tolist() == [1, 1, 0]
    assert degree_before(g, ti, np.array([0, 1, 2]), 5.5).tolist() == [1, 2, 0]
    assert degree_before(g, ti, np.array([0, 1, 2]), 9.0001).tolist() == [1, 2, 1]


def test_dates_take_bounds_in_microseconds():
    g = timed_graph(dates=True)
    cut = pd.Timestamp("2024-01-01") + pd.Timedelta(hours=500)
    bound = cut.value // 1000  # int64 microseconds, as the graph keeps dates
    sampler = ImportanceSampler(g, num_walks=2000, walk_length=2, num_neighbors=g.num_items, seed=0)
    nb = sampler(np.arange(g.num_items), before=bound)
    A = dense_weights(g, (np.asarray(g.edge_time) < bound).astype(float))
    assert_visits_match(nb, np.arange(g.num_items), lambda s: exact_weighted_visits(A, s, 2, 0.5),
                        g.num_items, 2000, 2)


def test_bad_bounds_and_weighted_walks_are_refused():
    g = timed_graph()
    s = ImportanceSampler(g, num_walks=4)
    with pytest.raises(ValueError, match="one per seed"):
        s(np.arange(3), before=np.arange(4))
    with pytest.raises(ValueError, match="NaN"):
        s(np.arange(3), before=np.nan)
    with pytest.raises(ValueError, match="numeric"):
        s(np.arange(3), before=np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="uniform steps"):
        ImportanceSampler(g, num_walks=4, weighted=True)(np.arange(3), before=10)


def test_few_distinct_times_and_bounds_on_the_cuts():
    """Three distinct times: the 13 cuts repeat; every bound (below, on and between the times, past the newest)
    gives the exact older degrees and walks that use older edges only."""
    rng = np.random.default_rng(9)
    df = pd.DataFrame({"u": rng.integers(0, 30, 300), "i": rng.integers(0, 25, 300),
                       "t": rng.choice([10, 20, 30], 300, p=[0.8, 0.15, 0.05])})
    g = InteractionGraph.from_pandas(df, "u", "i", time_col="t")
    ti = time_index(g)
    t = np.asarray(g.edge_time)
    sampler = ImportanceSampler(g, num_walks=3000, walk_length=2, num_neighbors=g.num_items, seed=4)
    for bound in (5, 10, 15, 20, 30, 31):
        want = np.bincount(g.group_items[t < bound], minlength=g.num_items)
        assert degree_before(g, ti, np.arange(g.num_items), bound).tolist() == want.tolist()
        nb = sampler(np.arange(g.num_items), before=bound)
        A = dense_weights(g, (t < bound).astype(float))
        assert_visits_match(nb, np.arange(g.num_items), lambda s: exact_weighted_visits(A, s, 2, 0.5),
                            g.num_items, 3000, 2)


# ---------------------------------------------------------------- time-respecting training

def _reach(g: InteractionGraph, keep: np.ndarray, hops: int) -> np.ndarray:
    """Boolean (items x items): j reachable from v in 1..hops item->group->item steps on the kept edges."""
    X = sp.csr_matrix((np.ones(int(keep.sum())), (g.edge_groups()[keep], g.group_items[keep])),
                      shape=(g.num_groups, g.num_items))
    P = ((X.T @ X) > 0).astype(np.int64)
    R, frontier = P.copy(), P.copy()
    for _ in range(hops - 1):
        frontier = ((frontier @ P) > 0).astype(np.int64)
        R = ((R + frontier) > 0).astype(np.int64)
    return R.toarray() > 0


def test_time_respecting_batches_never_see_a_pairs_future():
    """Every batch's pairs are at or after its snapshot's cut; every neighbour in its blocks is reachable from
    its node over edges older than the earliest pair of the batch; its log-degree input counts only those."""
    from pinsage.config import SamplerConfig, TrainConfig
    from pinsage.features.structural import log_degree_feature
    from pinsage.train.data import TrainingData
    from pinsage.train.time_snapshots import time_snapshots

    g = timed_graph(n_groups=60, n_items=80, n_edges=900, seed=7)
    cfg = TrainConfig(time_respecting=True, time_snapshots=5, batch_size=64, hard_negatives_max=0, epochs=1)
    sampler_cfg = SamplerConfig(num_neighbors=10, walk_length=3, method="exact")
    data = TrainingData.build(g, cfg, np.random.default_rng(0), None)
    assert data.pair_times is not None and len(data.pair_times) == len(data.pairs)
    snaps = time_snapshots(g, data.pair_times, cfg.time_snapshots, sampler_cfg, log_degree=True)
    assert len(snaps) == 5 and (np.diff(snaps.cuts) > 0).all()
    assert (data.pair_times >= snaps.cuts[snaps.pair_snapshot]).all()
    features = np.random.default_rng(1).standard_normal((g.num_items, 4)).astype(np.float32)
    ds = data.epoch_dataset(1, cfg, g.num_items, snaps.neighborhoods[-1], 2, features, snapshots=snaps)
    batches = ds.batches()
    assert sum(len(rows) for _, rows in batches) == len(ds.order())
    t = np.asarray(g.edge_time)
    seen = set()
    for b, (k, rows) in enumerate(batches):
        assert (snaps.pair_snapshot[rows] == k).all()
        earliest = data.pair_times[rows].min()
        keep = t < earliest
        reach = _reach(g, keep, sampler_cfg.walk_length)
        batch = ds.make_batch(data.pairs[rows], b, k)
        for block in batch.blocks:
            src, dst = block.edge_index.numpy()
            v, j = block.src_nodes.numpy()[dst], block.src_nodes.numpy()[src]
            assert reach[v, j].all()
        older_degree = np.bincount(g.group_items[t < snaps.cuts[k]], minlength=g.num_items)
        want = log_degree_feature(older_degree, reference=g.item_degree).ravel()
        src0 = batch.blocks[0].src_nodes.numpy()
        np.testing.assert_allclose(batch.features[:, -1].numpy(), want[src0], rtol=1e-6)
        np.testing.assert_array_equal(batch.features[:, :-1].numpy(), features[src0, :-1])
        seen.add(k)
    assert seen == set(range(5))


def test_time_respecting_fit_and_its_errors():
    from pinsage import PinSageConfig, PinSageEmbedder

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"u": rng.integers(0, 60, 1500), "i": rng.integers(0, 90, 1500),
                       "t": rng.integers(0, 10_000, 1500)})
    base = PinSageConfig().override(train__epochs=2, model__hidden_channels=16, model__out_channels=8,
                                    model__spectral_dim=4)
    cfg = base.override(train__time_respecting=True, train__time_snapshots=4)
    timed = PinSageEmbedder(cfg, progress=False).fit(df, "u", "i", "t")
    plain = PinSageEmbedder(base, progress=False).fit(df, "u", "i", "t")
    assert np.isfinite(timed.item_embeddings_).all() and timed.item_embeddings_.shape == (90, 8)
    assert not np.allclose(timed.item_embeddings_, plain.item_embeddings_)
    with pytest.raises(InputError, match="no time column"):
        PinSageEmbedder(cfg, progress=False).fit(df, "u", "i")
    with pytest.raises(InputError, match="resample_every_epoch"):
        PinSageEmbedder(cfg.override(sampler__resample_every_epoch=True), progress=False).fit(df, "u", "i", "t")
    with pytest.raises(InputError, match="pair_source"):
        PinSageEmbedder(cfg.override(train__pair_source="walks"), progress=False).fit(df, "u", "i", "t")


def test_rank_bounds_equal_searchsorted():
    from pinsage.graph.time_index import TimeIndex

    rng = np.random.default_rng(3)
    for n in (0, 1, 2, 7, 1000):
        times = np.unique(rng.integers(0, 50 * max(n, 1), n))
        ti = TimeIndex(times, *(np.zeros(0),) * 7)
        bounds = rng.integers(-5, 50 * max(n, 1) + 5, 300)
        np.testing.assert_array_equal(ti.rank_before(bounds), np.searchsorted(times, bounds, side="left"))
        np.testing.assert_array_equal(ti.rank_before(bounds.reshape(3, 100)),
                                      np.searchsorted(times, bounds, side="left").reshape(3, 100))
        if n:
            assert ti.rank_before(times[0]) == 0 and ti.rank_before(times[-1] + 1) == len(times)
