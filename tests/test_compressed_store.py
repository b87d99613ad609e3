"""The compressed graph store: exact round trip and random access against the CSR, save/load with
checksums, the out-of-core builder, and the sampler over it (equal to the plain sampler without
renumbering, the exact visit distribution with it)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from pinsage._io import InputError
from pinsage.datasets.synthetic import powerlaw_bipartite
from pinsage.graph import InteractionGraph
from pinsage.graph.compressed import CompressedGraph, choose_encoding
from pinsage.sampling import ImportanceSampler
from pinsage.sampling.compressed import CompressedSampler


def skewed_graph(seed=0, n_groups=40, n_items=70, n_edges=1500, weights=False, times=False):
    """A small graph with power-law item popularity (adjacencies longer than a chunk, and isolated nodes)."""
    rng = np.random.default_rng(seed)
    items = np.minimum((rng.pareto(0.8, n_edges) * 3).astype(np.int64), n_items - 3)  # the last 2 items: isolated
    groups = rng.integers(0, n_groups - 1, n_edges)  # the last group: empty
    w = rng.integers(1, 6, n_edges).astype(np.float64) if weights else None
    t = rng.integers(0, 10**6, n_edges) if times else None
    return InteractionGraph.from_edges(groups, items, num_groups=n_groups, num_items=n_items, weight=w, time=t)


def assert_same_graph(a: InteractionGraph, b: InteractionGraph) -> None:
    for name in ("group_indptr", "group_items", "item_indptr", "item_groups"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name in ("edge_weight", "edge_time", "item_ids", "group_ids"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert np.array_equal(np.asarray(x), np.asarray(y)), name


@pytest.mark.parametrize("order", ["degree", "none"])
@pytest.mark.parametrize("chunk", [2, 4, 16, 64])
def test_round_trip_and_random_access(order, chunk):
    for seed in range(3):
        g = skewed_graph(seed)
        c = CompressedGraph.from_graph(g, order=order, chunk=chunk)
        assert_same_graph(c.to_interaction_graph(), g)
        assert np.array_equal(c.item_degree, g.item_degree) and np.array_equal(c.group_degree, g.group_degree)
        for dense in range(g.num_items):
            assert np.array_equal(c.item_neighbors(dense), g.item_groups[g.item_indptr[dense]:g.item_indptr[dense + 1]])
        for dense in range(g.num_groups):
            assert np.array_equal(c.group_neighbors(dense),
                                  g.group_items[g.group_indptr[dense]:g.group_indptr[dense + 1]])
        # every slot of every adjacency, read at random: the decoded CSR, in internal ids
        for adj in (c.items, c.groups):
            indptr, indices = adj.to_csr()
            nodes = np.repeat(np.arange(adj.num_nodes), np.diff(indptr))
            slots = np.arange(len(indices)) - indptr[nodes]
            perm = np.random.default_rng(seed).permutation(len(nodes))
            assert np.array_equal(adj.neighbor(nodes[perm], slots[perm]), indices[perm])
            assert all(np.array_equal(adj.neighbors(u), indices[indptr[u]:indptr[u + 1]]) for u in (0, adj.num_nodes - 1))


def test_renumbering_is_degree_order_and_internal():
    g = skewed_graph(1)
    c = CompressedGraph.from_graph(g, order="degree")
    internal_deg = c.items.degree()
    assert (np.diff(internal_deg) <= 0).all(), "internal ids by decreasing degree"
    assert np.array_equal(internal_deg, g.item_degree[c.item_order])
    assert np.array_equal(c.dense_items(c.internal_items(np.arange(g.num_items))), np.arange(g.num_items))
    assert CompressedGraph.from_graph(g, order="none").item_order is None


def test_extreme_shapes_and_wide_ids():
    # one group holding every item (one long adjacency), singletons, and ids far apart (wide gaps)
    n = 5000
    groups = np.r_[np.zeros(n, dtype=np.int64), [1, 2, 2]]
    items = np.r_[np.arange(n), [0, 0, n - 1]]
    g = InteractionGraph.from_edges(groups, items, num_groups=4, num_items=n)
    for order in ("degree", "none"):
        for chunk in (2, 16):
            assert_same_graph(CompressedGraph.from_graph(g, order=order, chunk=chunk).to_interaction_graph(), g)
    sparse = InteractionGraph.from_edges(np.array([0, 0, 1]), np.array([0, 3_000_000, 3_000_000]))
    assert_same_graph(CompressedGraph.from_graph(sparse, order="none").to_interaction_graph(), sparse)


def test_weights_and_times_follow_their_edges():
    g = skewed_graph(2, weights=True, times=True)
    c = CompressedGraph.from_graph(g, order="degree")
    assert_same_graph(c.to_interaction_graph(), g)
    # the stored per-edge arrays are in the compressed group -> items order
    indptr, items = c.groups.to_csr()
    dense_g = c.dense_groups(np.repeat(np.arange(c.num_groups), np.diff(indptr)))
    key = dense_g * g.num_items + c.dense_items(items)
    ref = g.edge_groups().astype(np.int64) * g.num_items + g.group_items
    pos = np.searchsorted(ref, key)
    assert np.array_equal(ref[pos], key)
    assert np.array_equal(c.edge_weight, g.edge_weight[pos]) and np.array_equal(c.edge_time, g.edge_time[pos])


def test_compresses_a_power_law_graph():
    users, items = powerlaw_bipartite(20_000, 10_000, 200_000)
    g = InteractionGraph.from_edges(users, items, num_groups=10_000, num_items=20_000)
    c = CompressedGraph.from_graph(g)
    assert c.nbytes / g.num_edges < 4.5 < g.nbytes / g.num_edges
    assert_same_graph(c.to_interaction_graph(), g)


def test_rejects_unsorted_input_and_bad_options():
    g = skewed_graph(0)
    with pytest.raises(ValueError, match="order"):
        CompressedGraph.from_graph(g, order="random")
    with pytest.raises(ValueError, match="power of two"):
        CompressedGraph.from_graph(g, chunk=12)
    bad = InteractionGraph(g.item_ids, g.group_ids, g.group_indptr, g.group_items[::-1].copy(), g.item_indptr,
                           g.item_groups)
    with pytest.raises(InputError, match="increasing order"):
        CompressedGraph.from_graph(bad)
    c = CompressedGraph.from_graph(g)
    with pytest.raises(IndexError):
        c.items.neighbor(np.array([0]), np.array([c.items.degree(np.array([0]))[0]]))
    with pytest.raises(IndexError):
        c.items.degree(np.array([g.num_items]))


def test_save_load_memory_mapped_with_checksums(tmp_path):
    g = skewed_graph(3, weights=True)
    g = InteractionGraph(np.array([f"i{k}" for k in range(g.num_items)], dtype=object), g.group_ids,
                         g.group_indptr, g.group_items, g.item_indptr, g.item_groups, g.edge_weight)
    c = CompressedGraph.from_graph(g)
    c.save(tmp_path / "store")
    header = json.loads((tmp_path / "store" / "graph.json").read_text())
    assert header["format_version"] == 2 and header["encoding"] == "compressed" and header["order"] == "degree"
    assert "item_data.npy" in header["files"] and "item_ids.parquet" in header["files"]
    back = CompressedGraph.load(tmp_path / "store")
    assert isinstance(back.items.data, np.memmap) and isinstance(back.groups.blocks, np.memmap)
    assert_same_graph(back.to_interaction_graph(), g)
    c.save(tmp_path / "store")  # saving over a store replaces it whole
    # one flipped bit in the bit stream: the checksum catches it; verify=False skips the check
    f = tmp_path / "store" / "group_data.npy"
    raw = bytearray(f.read_bytes())
    raw[-9] ^= 1
    f.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="group_data.npy: checksum mismatch"):
        CompressedGraph.load(tmp_path / "store")
    CompressedGraph.load(tmp_path / "store", verify=False)
    f.write_bytes(bytes(raw[: len(raw) // 2]))  # truncated
    with pytest.raises(InputError, match="group_data.npy"):
        CompressedGraph.load(tmp_path / "store", verify=False)
    with pytest.raises(InputError, match="no graph.json"):
        CompressedGraph.load(tmp_path)
    g.save(tmp_path / "plain")
    with pytest.raises(InputError, match="not a pinsage.CompressedGraph"):
        CompressedGraph.load(tmp_path / "plain")


def test_streaming_build_from_chunked_files(tmp_path):
    rng = np.random.default_rng(4)
    groups = rng.integers(0, 30, 3000)
    items = np.minimum((rng.pareto(0.8, 3000) * 3).astype(np.int64), 99)
    groups[0], items[0] = 30, 100  # the largest ids
    g = InteractionGraph.from_edges(groups, items, num_groups=31, num_items=101)
    np.save(tmp_path / "a.npy", np.stack([groups[:1000], items[:1000]], axis=1).astype(np.int32))
    pd.DataFrame({"user": groups[1000:2000], "pin": items[1000:2000]}).to_csv(tmp_path / "b.csv", index=False)
    pd.DataFrame({"user": groups[2000:], "pin": items[2000:]}).to_parquet(tmp_path / "c.parquet")
    files = [tmp_path / "a.npy", tmp_path / "b.csv", tmp_path / "c.parquet"]
    for order in ("degree", "none"):
        c = CompressedGraph.from_edge_files(files, "user", "pin", order=order, out=tmp_path / f"s-{order}",
                                            chunk_edges=333, chunk=4)
        assert isinstance(c.items.data, np.memmap)
        h = c.to_interaction_graph()
        for name in ("group_indptr", "group_items", "item_indptr", "item_groups"):
            assert np.array_equal(getattr(h, name), getattr(g, name)), name
        CompressedGraph.load(tmp_path / f"s-{order}")  # checksums written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "scratch and temporary files removed"
    np.save(tmp_path / "bad.npy", np.array([[0, -1]]))
    with pytest.raises(InputError, match="negative item index in data row 1"):
        CompressedGraph.from_edge_files(tmp_path / "bad.npy", out=tmp_path / "x")
    np.save(tmp_path / "bad3.npy", np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(InputError, match=r"shape \(E, 2\)"):
        CompressedGraph.from_edge_files(tmp_path / "bad3.npy", out=tmp_path / "x")
    with pytest.raises(InputError):
        CompressedGraph.from_edge_files(tmp_path / "b.csv", "user", "item", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("W,L,r,T", [(10, 3, 0.5, 3), (200, 5, 0.3, 50), (33, 2, 1.0, 7), (17, 4, 0.0, 10)])
def test_sampler_equals_plain_sampler_without_renumbering(W, L, r, T):
    g = skewed_graph(5, n_groups=60, n_items=120, n_edges=3000)
    c = CompressedGraph.from_graph(g, order="none", chunk=4)
    seeds = np.r_[np.arange(g.num_items), np.arange(g.num_items)[::-1]]  # isolated seeds included
    plain = ImportanceSampler(g, W, L, r, T, seed=9).sample_arrays(seeds, key=4)
    packed = CompressedSampler(c, W, L, r, T, seed=9).sample_arrays(seeds, key=4)
    assert all(np.array_equal(a, b) for a, b in zip(plain, packed))
    ids = np.arange(len(seeds)) * 7 + 1
    plain = ImportanceSampler(g, W, L, r, T, seed=9)(torch.from_numpy(seeds), key=2, stream_ids=ids)
    packed = CompressedSampler(c, W, L, r, T, seed=9, num_threads=3)(torch.from_numpy(seeds), key=2, stream_ids=ids)
    assert all(torch.equal(a, b) for a, b in zip(plain, packed))


def _exact_visits(g: InteractionGraph, s: int, L: int, r: float) -> np.ndarray:
    """E[visits to j per walk] = sum_h (1-r)^(h-1) P^h[s, j], the seed itself not counted."""
    A = np.zeros((g.num_groups, g.num_items))
    A[np.repeat(np.arange(g.num_groups), g.group_degree), g.group_items] = 1
    di, dg = A.sum(0), A.sum(1)
    P = (np.divide(A.T, di[:, None], out=np.zeros_like(A.T), where=di[:, None] > 0)
         @ np.divide(A, dg[:, None], out=np.zeros_like(A), where=dg[:, None] > 0))
    x, out = np.eye(g.num_items)[s], np.zeros(g.num_items)
    for h in range(1, L + 1):
        x = x @ P
        out += (1 - r) ** (h - 1) * x
    out[s] = 0
    return out


def test_sampler_with_renumbering_follows_the_exact_visit_distribution():
    g = skewed_graph(6, n_groups=12, n_items=18, n_edges=60)
    c = CompressedGraph.from_graph(g, order="degree", chunk=2)
    W, L, r = 100_000, 3, 0.5
    seeds = np.array([0, 3, 7])
    nb = CompressedSampler(c, W, L, r, g.num_items, seed=3)(seeds)
    for b, s in enumerate(seeds):
        lo, hi = nb.offsets[b].item(), nb.offsets[b + 1].item()
        freq = np.zeros(g.num_items)
        freq[nb.indices[lo:hi].numpy()] = nb.counts[lo:hi].numpy() / W
        expected = _exact_visits(g, s, L, r)
        assert (np.abs(freq - expected) <= 6 * np.sqrt(L * expected / W) + 1e-4).all()
        # ranked by count desc, then dense index asc (the plain sampler's ties)
        cnt, idx = nb.counts[lo:hi].numpy(), nb.indices[lo:hi].numpy()
        assert ((cnt[:-1] > cnt[1:]) | ((cnt[:-1] == cnt[1:]) & (idx[:-1] < idx[1:]))).all()


def test_sampler_rejects_weighted_walks_and_bad_seeds():
    c = CompressedGraph.from_graph(skewed_graph(0))
    with pytest.raises(ValueError, match="uniform steps only"):
        CompressedSampler(c, weighted=True)
    with pytest.raises(IndexError):
        CompressedSampler(c).sample_arrays(np.array([c.num_items]))


def test_choose_encoding():
    assert choose_encoding(2_000_000, 1_000_000, 36_700_000, memory_bytes=64 << 30) == "plain"
    assert choose_encoding(2_000_000, 1_000_000, 36_700_000, memory_bytes=512 << 20) == "compressed"


def test_store_benchmark_runs(tmp_path, monkeypatch):
    """benchmarks/store.py end to end on a tiny graph (no child processes), so it cannot rot."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "store.py"
    spec = importlib.util.spec_from_file_location("bench_store", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_store", mod)
    spec.loader.exec_module(mod)
    monkeypatch.setitem(mod.SIZES, "XS", (3000, 1500, 30000))
    out = tmp_path / "store.json"
    assert mod.main(["--sizes", "XS", "--no-build", "--shuffle", "--seconds", "0.02", "--repeats", "2",
                     "--clock", "cpu", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    (entry,) = res["graphs"]
    assert entry["degree_bytes_per_edge"] < entry["plain_bytes_per_edge"]
    assert [(r["walks"], r["T"]) for r in res["rows"]] == [(10, 3), (200, 50)]
    assert all(r["degree_ratio"] > 0 and r["none_ratio"] > 0 for r in res["rows"])
