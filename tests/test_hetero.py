"""Heterogeneous graphs (issue 15): HeteroGraph building, errors, save/load and PyG export; the mixed-relation
walk against its exact expectation; one-relation equivalences with the homogeneous pieces; the relational
convolution."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pinsage._io import InputError
from pinsage.graph import HeteroGraph, InteractionGraph
from pinsage.nn import ImportanceConv, RelationalPinSageConv
from pinsage.sampling import (
    ImportanceSampler, MetapathSampler, build_relational_blocks, one_hop_block, relational_one_hop_block,
)
from _hetero_walks import exact_mixed_visits, relation_weights
from _walks import assert_visits_match

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def frames(seed=0, n_users=12, n_items=15, n_click=45, n_tags=5, n_tag_rows=20, weights=False):
    rng = np.random.default_rng(seed)
    clicks = pd.DataFrame({"user": rng.integers(0, n_users, n_click), "item": rng.integers(0, n_items, n_click)})
    tags = pd.DataFrame({"tag": [f"t{k}" for k in rng.integers(0, n_tags, n_tag_rows)],
                         "pin": rng.integers(0, n_items, n_tag_rows)})
    if weights:
        clicks["w"] = rng.integers(1, 6, n_click).astype(float)
        tags["w"] = rng.integers(1, 4, n_tag_rows).astype(float)
    return {"click": clicks, "tag": tags}


def two_relations(seed=0, weights=False, **kw):
    f = frames(seed, weights=weights, **kw)
    return HeteroGraph.from_pandas(f, other_col={"click": "user", "tag": "tag"},
                                   item_col={"click": "item", "tag": "pin"}, weight_col="w" if weights else None)


# ---------------------------------------------------------------------------------------------- building
def test_shared_item_ids_and_node_types():
    purchases = pd.DataFrame({"user": ["u9", "u1"], "item": ["b", "z"]})
    clicks = pd.DataFrame({"user": ["u1", "u1", "u2"], "item": ["a", "b", "b"]})
    tags = pd.DataFrame({"tag": ["red"], "item": ["a"]})
    g = HeteroGraph.from_pandas({"click": clicks, "purchase": purchases, "tag": tags},
                                other_col={"click": "user", "purchase": "user", "tag": "tag"})
    assert g.relations == ("click", "purchase", "tag")
    assert g.item_ids.tolist() == ["a", "b", "z"] and g.num_items == 3
    assert g.node_types == {"click": "user", "purchase": "user", "tag": "tag"}
    # one user id space for both user relations
    assert g.node_ids["user"].tolist() == ["u1", "u2", "u9"] and g.num_nodes("user") == 3
    assert g.relation("click").group_ids is g.relation("purchase").group_ids
    # every relation's edges are its rows, in original ids
    for name, df in (("click", clicks), ("purchase", purchases), ("tag", tags)):
        r = g.relation(name)
        other = df.columns[0]
        got = set(zip(r.group_ids[r.edge_groups()].tolist(), r.item_ids[r.group_items].tolist()))
        assert got == set(zip(df[other], df["item"]))
        assert r.num_items == 3 and r.num_edges == len(set(zip(df[other], df["item"])))
    assert g.relation_degree().tolist() == [[1, 0, 1], [2, 1, 0], [0, 1, 0]]
    assert g.item_degree.tolist() == [2, 3, 1] and g.num_edges == 6
    assert g.item_index(["z", "a"]).tolist() == [2, 0]


def test_one_relation_is_the_interaction_graph():
    f = frames(3, weights=True)["click"]
    f["t"] = np.arange(len(f))[::-1]
    ref = InteractionGraph.from_pandas(f, "user", "item", time_col="t", weight_col="w")
    hg = HeteroGraph.from_pandas({"click": f}, other_col="user", time_col="t", weight_col="w")
    g = hg.as_interaction_graph()
    for name in ("item_ids", "group_ids", *InteractionGraph._ARRAYS):
        assert np.array_equal(getattr(g, name), getattr(ref, name)), name
    assert hg.num_edges == ref.num_edges and np.array_equal(hg.item_degree, ref.item_degree)
    ours, theirs = hg.to_hetero_data(), ref.to_pyg()
    assert torch.equal(ours["user", "click", "item"].edge_index, theirs["group", "contains", "item"].edge_index)
    assert torch.equal(ours["item", "rev_click", "user"].edge_weight, theirs["item", "rev_contains", "group"].edge_weight)
    with pytest.raises(InputError, match="2 relations"):
        two_relations().as_interaction_graph()


@pytest.mark.parametrize("build, words", [
    (lambda f: HeteroGraph.from_pandas(f, other_col={"click": "user", "tag": "nope"}, item_col={"click": "item", "tag": "pin"}),
     ["relation 'tag'", "other column 'nope' not found"]),
    (lambda f: HeteroGraph.from_pandas({**f, "tag": f["tag"].iloc[:0]}, other_col={"click": "user", "tag": "tag"},
                                       item_col={"click": "item", "tag": "pin"}),
     ["relation 'tag'", "no rows"]),
    (lambda f: HeteroGraph.from_pandas(f, other_col={"click": "user", "tag": "tag", "buy": "user"},
                                       item_col={"click": "item", "tag": "pin"}),
     ["unknown relation", "buy"]),
    (lambda f: HeteroGraph.from_pandas(f, other_col={"click": "user"}, item_col={"click": "item", "tag": "pin"}),
     ["other_col", "'tag'"]),
    (lambda f: HeteroGraph.from_pandas({"click": f["click"], "tag": f["tag"].assign(pin=lambda d: "p" + d.pin.astype(str))},
                                       other_col={"click": "user", "tag": "tag"}, item_col={"click": "item", "tag": "pin"}),
     ["item ids are of different types", "'click'", "'tag'"]),
    (lambda f: HeteroGraph.from_pandas(f, other_col={"click": "user", "tag": "tag"}, item_col={"click": "item", "tag": "pin"},
                                       node_types={"tag": "item"}),
     ["relation 'tag'", "cannot be 'item'"]),
    (lambda f: HeteroGraph.from_pandas({"click": f["click"].assign(w=-1.0), "tag": f["tag"]}, other_col={"click": "user", "tag": "tag"},
                                       item_col={"click": "item", "tag": "pin"}, weight_col={"click": "w"}),
     ["relation 'click'", "'w'", "negative", "row 1"]),
    (lambda f: HeteroGraph.from_pandas({}, other_col="user"), ["non-empty mapping"]),
])
def test_bad_input_names_relation_column_and_row(build, words):
    with pytest.raises(InputError) as exc:
        build(frames())
    for w in words:
        assert w in str(exc.value), (w, str(exc.value))


def test_null_ids_name_the_row():
    f = frames()
    tags = f["tag"].astype({"tag": object})
    tags.loc[4, "tag"] = None
    with pytest.raises(InputError, match=r"relation 'tag': column 'tag' has empty ids .*row 5"):
        HeteroGraph.from_pandas({"click": f["click"], "tag": tags}, other_col={"click": "user", "tag": "tag"},
                                item_col={"click": "item", "tag": "pin"})


def test_unknown_relation_names_are_input_errors():
    g = two_relations()
    with pytest.raises(InputError, match=r"unknown relation 'buy'.*\['click', 'tag'\]"):
        g.relation("buy")
    with pytest.raises(InputError, match="unknown relation 'buy'"):
        MetapathSampler(g, {"click": 0.5, "buy": 0.5})
    with pytest.raises(InputError, match="finite number >= 0"):
        MetapathSampler(g, {"click": -1.0})
    with pytest.raises(InputError, match="probability 0"):
        MetapathSampler(g, {"click": 0.0})


def test_from_graphs_refuses_other_item_spaces():
    a = InteractionGraph.from_edges(np.array([0, 1]), np.array([0, 1]))
    b = InteractionGraph.from_edges(np.array([0, 1]), np.array([0, 2]))
    with pytest.raises(InputError, match="item ids differ"):
        HeteroGraph.from_graphs({"a": a, "b": b})
    c = InteractionGraph.from_edges(np.array([0, 0]), np.array([0, 1]))   # one group where a has two
    with pytest.raises(InputError, match="'user' ids differ"):
        HeteroGraph.from_graphs({"a": a, "c": c}, node_types={"a": "user", "c": "user"})


# ---------------------------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path, mmap):
    f = frames(1, weights=True)
    f["click"]["t"] = pd.date_range("2026-01-01", periods=len(f["click"]), freq="h")
    g = HeteroGraph.from_pandas(f, other_col={"click": "user", "tag": "tag"}, item_col={"click": "item", "tag": "pin"},
                                time_col={"click": "t"}, weight_col="w")
    g.save(tmp_path / "g")
    g.save(tmp_path / "g")   # replaces the directory whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"], "no temporary directory left behind"
    manifest = json.loads((tmp_path / "g" / "hetero.json").read_text())
    assert [r["name"] for r in manifest["relations"]] == ["click", "tag"]
    assert manifest["ids"]["tag"]["file"] == "node1_ids.npy" and set(manifest["sha256"]) >= {"item_indptr.npy", "rel0_edge_time.npy"}
    h = HeteroGraph.load(tmp_path / "g", mmap=mmap, verify=True)
    assert h.relations == g.relations and h.node_types == g.node_types
    assert np.array_equal(h.item_ids, g.item_ids) and h.item_ids.dtype == g.item_ids.dtype
    assert h.node_ids["tag"].tolist() == g.node_ids["tag"].tolist()
    for name in g.relations:
        a, b = g.relation(name), h.relation(name)
        for arr in InteractionGraph._ARRAYS:
            x, y = getattr(a, arr), getattr(b, arr)
            assert (x is None and y is None) or (np.array_equal(x, y) and x.dtype == y.dtype), (name, arr)
    assert g.relation("tag").edge_time is None and h.relation("click").edge_time.dtype == np.int64
    # the loaded graph samples as the original
    s1 = MetapathSampler(g, {"click": 0.6, "tag": 0.4}, 30, 3, 0.5, 5, seed=2)(torch.arange(g.num_items), key=0)
    s2 = MetapathSampler(h, {"click": 0.6, "tag": 0.4}, 30, 3, 0.5, 5, seed=2)(torch.arange(g.num_items), key=0)
    assert all(torch.equal(x, y) for x, y in zip(s1, s2))


def test_load_refuses_changed_or_missing_files(tmp_path):
    g = two_relations()
    g.save(tmp_path / "g")
    with pytest.raises(InputError, match="no hetero.json"):
        HeteroGraph.load(tmp_path)
    other = g.arrays.other_items.copy()
    other[0] = (other[0] + 1) % g.num_items
    np.save(tmp_path / "g" / "other_items.npy", other)
    HeteroGraph.load(tmp_path / "g")                     # sizes still agree: only the checksum sees it
    with pytest.raises(InputError, match="other_items.npy: missing or changed"):
        HeteroGraph.load(tmp_path / "g", verify=True)
    np.save(tmp_path / "g" / "other_items.npy", other[:-1])
    with pytest.raises(InputError, match="array sizes do not match"):
        HeteroGraph.load(tmp_path / "g")


def test_hetero_data_export():
    g = two_relations(weights=True)
    data = g.to_hetero_data()
    assert set(data.node_types) == {"item", "user", "tag"}
    assert data["item"].num_nodes == g.num_items and data["tag"].num_nodes == g.num_nodes("tag")
    assert set(data.edge_types) == {("user", "click", "item"), ("item", "rev_click", "user"),
                                    ("tag", "tag", "item"), ("item", "rev_tag", "tag")}
    for name, t in g.node_types.items():
        r = g.relation(name)
        fwd, rev = data[t, name, "item"], data["item", f"rev_{name}", t]
        assert fwd.edge_index.shape == (2, r.num_edges)
        assert torch.equal(fwd.edge_index.flip(0), rev.edge_index)
        assert fwd.edge_index[0].tolist() == r.edge_groups().tolist()
        assert fwd.edge_index[1].tolist() == r.group_items.tolist()
        assert torch.equal(fwd.edge_weight, torch.from_numpy(r.edge_weight)) and torch.equal(rev.edge_weight, fwd.edge_weight)
    data.validate()


# ---------------------------------------------------------------------------------------------- sampler
@pytest.mark.parametrize("weighted", [False, True])
def test_one_relation_sampler_is_importance_sampler_bit_for_bit(weighted):
    f = frames(4, weights=True, n_click=120, n_items=40)["click"]
    ref_graph = InteractionGraph.from_pandas(f, "user", "item", weight_col="w")
    hg = HeteroGraph.from_pandas({"click": f}, other_col="user", weight_col="w")
    seeds = torch.arange(hg.num_items).repeat(3)
    for key in (0, 5):
        a = ImportanceSampler(ref_graph, 40, 3, 0.4, 6, seed=9, weighted=weighted)(seeds, key=key)
        b = MetapathSampler(hg, {"click": 1.0}, 40, 3, 0.4, 6, seed=9, weighted=weighted)(seeds, key=key)
        c = MetapathSampler(hg, None, 40, 3, 0.4, 6, seed=9, weighted=weighted, merge=False)(seeds, key=key)
        assert list(c) == ["click"]
        for x in (b, c["click"]):
            assert all(torch.equal(u, v) for u, v in zip(a, x))


@pytest.mark.parametrize("weighted", [False, True])
def test_mixed_kernel_without_a_second_relation_in_reach_is_the_single_walk(weighted):
    """Through the mixed kernel (two relations of positive probability), seeds whose whole reach has no
    tag edge walk exactly as the single-relation sampler: no relation draw is made where one relation
    has edges."""
    rng = np.random.default_rng(5)
    clicks = pd.DataFrame({"user": rng.integers(0, 10, 80), "item": np.r_[np.arange(30), rng.integers(0, 30, 50)],
                           "w": rng.integers(1, 5, 80).astype(float)})
    tags = pd.DataFrame({"tag": [0, 0, 1, 1, 1], "item": [30, 31, 31, 32, 33], "w": [1.0, 2, 1, 1, 3]})
    hg = HeteroGraph.from_pandas({"click": clicks, "tag": tags}, other_col={"click": "user", "tag": "tag"},
                                 weight_col="w")
    assert (hg.relation_degree()[:30, 1] == 0).all() and (hg.relation_degree()[30:, 0] == 0).all()
    seeds = torch.arange(30)
    a = ImportanceSampler(hg.relation("click"), 30, 3, 0.5, 8, seed=1, weighted=weighted)(seeds, key=2)
    m = MetapathSampler(hg, {"click": 0.5, "tag": 0.5}, 30, 3, 0.5, 8, seed=1, weighted=weighted)
    assert all(torch.equal(u, v) for u, v in zip(a, m(seeds, key=2)))


@pytest.mark.parametrize("L,r,probs,weighted", [(1, 0.5, (0.7, 0.3), False), (3, 0.5, (0.7, 0.3), False),
                                                 (4, 0.2, (0.3, 0.7), False), (3, 0.3, (0.5, 0.5), True)])
def test_mixed_visits_match_the_exact_expectation(L, r, probs, weighted):
    g = two_relations(weights=weighted)
    As = [relation_weights(g, n, weighted) for n in g.relations]
    W = 200_000
    kw = dict(num_walks=W, walk_length=L, restart_prob=r, num_neighbors=g.num_items, seed=3, weighted=weighted)
    mix = dict(zip(g.relations, probs))
    both = np.flatnonzero((g.relation_degree() > 0).all(1))
    seeds = both[[0, len(both) // 3, len(both) // 2, -1]]
    assert len(set(seeds.tolist())) == 4, "seeds with edges in both relations"
    merged = MetapathSampler(g, mix, **kw)(torch.from_numpy(seeds), key=0)
    assert_visits_match(merged, seeds, lambda s: exact_mixed_visits(As, np.array(probs), s, L, r)[0], g.num_items, W, L)
    per = MetapathSampler(g, mix, merge=False, **kw)(torch.from_numpy(seeds), key=1)
    for k, name in enumerate(g.relations):
        assert_visits_match(per[name], seeds, lambda s: exact_mixed_visits(As, np.array(probs), s, L, r)[1][k],
                            g.num_items, W, L)
    # the mix matters: the exact expectations of the two relations' parts differ from a one-relation walk's
    only_click = exact_mixed_visits(As, np.array([1.0, 0.0]), 0, L, r)[0]
    assert np.abs(only_click - exact_mixed_visits(As, np.array(probs), 0, L, r)[0]).max() > 0.05


def test_relation_tables_pick_members_with_renormalised_probabilities():
    """The branch-free choice ``sum_k [x > cum[m, k]]`` (k < R - 1) over a draw x in [1, 2**64) gives a
    member of every mask, with the probabilities renormalised over it; the extreme draws stay in the mask."""
    from pinsage.sampling._metapath_kernels import relation_tables
    probs = np.array([0.5, 0.0, 0.2, 0.3])
    stepped, cum = relation_tables(probs)
    assert stepped == 0b1101 and cum.shape == (16, 4) and cum.dtype == np.uint64
    assert (cum[:, -1] == np.uint64(2**64 - 1)).all()
    xs = np.random.default_rng(0).integers(1, 2**63, 200_000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    for m in range(1, 16):
        mask = m & int(stepped)
        if mask == 0:
            continue
        members = [r for r in range(4) if mask >> r & 1]
        for x in (np.uint64(1), np.uint64(2**64 - 1)):
            assert sum(int(x > cum[mask, k]) for k in range(3)) in members
        r = (xs[:, None] > cum[mask, :3][None, :]).sum(1)
        freq = np.bincount(r, minlength=4) / len(xs)
        want = np.zeros(4)
        want[members] = probs[members] / probs[members].sum()
        assert np.abs(freq - want).max() < 0.005, (mask, freq, want)


@pytest.mark.parametrize("weighted", [False, True])
def test_three_relations_match_the_exact_expectation(weighted):
    rng = np.random.default_rng(11)
    n_items = 14
    def rel(n_other, n_rows, col):
        return pd.DataFrame({col: rng.integers(0, n_other, n_rows), "item": rng.integers(0, n_items, n_rows),
                             "w": rng.integers(1, 5, n_rows).astype(float)})
    f = {"click": rel(8, 40, "user"), "buy": rel(8, 15, "user"), "tag": rel(4, 14, "tag")}
    g = HeteroGraph.from_pandas(f, other_col={"click": "user", "buy": "user", "tag": "tag"},
                                weight_col="w" if weighted else None)
    As = [relation_weights(g, n, weighted) for n in g.relations]
    probs = np.array([0.5, 0.3, 0.2])
    mix = dict(zip(g.relations, probs))
    W, L, r = 200_000, 3, 0.4
    kw = dict(num_walks=W, walk_length=L, restart_prob=r, num_neighbors=g.num_items, seed=5, weighted=weighted)
    deg = g.relation_degree()
    seeds = np.array([np.flatnonzero((deg > 0).all(1))[0], np.flatnonzero((deg > 0).sum(1) == 2)[0],
                      np.flatnonzero((deg > 0).sum(1) == 1)[0]])
    merged = MetapathSampler(g, mix, **kw)(torch.from_numpy(seeds), key=0)
    assert_visits_match(merged, seeds, lambda s: exact_mixed_visits(As, probs, s, L, r)[0], g.num_items, W, L)
    per = MetapathSampler(g, mix, merge=False, **kw)(torch.from_numpy(seeds), key=1)
    for k, name in enumerate(g.relations):
        assert_visits_match(per[name], seeds, lambda s: exact_mixed_visits(As, probs, s, L, r)[1][k],
                            g.num_items, W, L)


def test_per_relation_counts_add_up_to_the_merged_ones():
    g = two_relations(2, n_items=25, n_click=80, n_tag_rows=40)
    n = g.num_items
    seeds = torch.arange(n)
    kw = dict(num_walks=300, walk_length=3, restart_prob=0.5, num_neighbors=n, seed=4)
    merged = MetapathSampler(g, {"click": 0.7, "tag": 0.3}, **kw)(seeds, key=7)
    per = MetapathSampler(g, {"click": 0.7, "tag": 0.3}, merge=False, **kw)(seeds, key=7)

    def dense(nb):
        out = np.zeros((n, n), dtype=np.int64)
        rows = np.repeat(np.arange(n), np.diff(nb.offsets.numpy()))
        out[rows, nb.indices.numpy()] = nb.counts.numpy()
        return out

    assert np.array_equal(dense(merged), dense(per["click"]) + dense(per["tag"]))
    assert dense(per["tag"]).sum() > 0 and dense(per["click"]).sum() > dense(per["tag"]).sum()
    # top-T truncation keeps the ranking's prefix in each form
    small = MetapathSampler(g, {"click": 0.7, "tag": 0.3}, merge=False, **{**kw, "num_neighbors": 3})(seeds, key=7)
    for name in ("click", "tag"):
        nbr, _, _ = MetapathSampler(g, {"click": 0.7, "tag": 0.3}, merge=False, **{**kw, "num_neighbors": 3}).sample_arrays(
            seeds.numpy(), key=7)
        k = np.diff(small[name].offsets.numpy())
        full = per[name]
        for b in range(n):
            lo, lo_full = small[name].offsets[b].item(), full.offsets[b].item()
            assert small[name].indices[lo:lo + k[b]].tolist() == full.indices[lo_full:lo_full + k[b]].tolist()
        assert nbr.shape == (2, n, 3)


def test_reproducible_and_thread_independent():
    g = two_relations(6, n_items=60, n_click=300, n_tag_rows=100)
    many = torch.arange(700) % g.num_items
    for merge in (True, False):
        kw = dict(num_walks=40, walk_length=3, restart_prob=0.5, num_neighbors=5, seed=7, merge=merge)
        one = MetapathSampler(g, {"click": 0.6, "tag": 0.4}, num_threads=1, **kw)(many, key=3)
        three = MetapathSampler(g, {"click": 0.6, "tag": 0.4}, num_threads=3, **kw)(many, key=3)
        other = MetapathSampler(g, {"click": 0.6, "tag": 0.4}, num_threads=1, **{**kw, "seed": 8})(many, key=3)
        pairs = [(one, three)] if merge else [(one[k], three[k]) for k in one]
        for a, b in pairs:
            assert all(torch.equal(u, v) for u, v in zip(a, b))
        a, c = (one, other) if merge else (one["click"], other["click"])
        assert not torch.equal(a.counts, c.counts)
    # successive calls advance the stream; stream_ids make a seed's result independent of the batch
    s = MetapathSampler(g, {"click": 0.6, "tag": 0.4}, 40, 3, 0.5, 5, seed=7)
    assert not torch.equal(s(many[:50]).counts, s(many[:50]).counts)
    ids = np.arange(50)
    x = s(np.arange(50), key=1, stream_ids=ids)
    y = s(np.arange(10, 50), key=1, stream_ids=ids[10:])
    assert torch.equal(x.indices[x.offsets[10]:], y.indices)


def test_isolated_seeds_and_all_neighborhoods():
    clicks = pd.DataFrame({"user": [0, 0, 1], "item": [0, 1, 2]})
    tags = pd.DataFrame({"tag": [5, 5], "item": [2, 3]})
    g = HeteroGraph.from_pandas({"click": clicks, "tag": tags}, other_col={"click": "user", "tag": "tag"})
    nb = MetapathSampler(g, {"click": 0.5, "tag": 0.5}, 50, 3, 0.5, 3, seed=0)(torch.tensor([0, 2, 3]))
    assert nb.indices.tolist() == [1, 3, 2]         # 2 reaches 3 through the tag only; 3 reaches 2
    only_click = MetapathSampler(g, {"click": 1.0, "tag": 0.0}, 50, 3, 0.5, 3, seed=0, merge=False)
    out = only_click(torch.tensor([3, 0]))
    assert list(out) == ["click"] and out["click"].offsets.tolist() == [0, 0, 1]   # item 3 has no click
    s = MetapathSampler(g, {"click": 0.5, "tag": 0.5}, 50, 3, 0.5, 3, seed=0, merge=False)
    table = s.all_neighborhoods(chunk=3)
    assert set(table) == {"click", "tag"} and table["tag"].indptr.tolist() == [0, 0, 0, 1, 2]
    direct = s(torch.arange(3), key=0)
    assert table["click"].indices[:table["click"].indptr[3]].tolist() == direct["click"].indices.tolist()
    merged = MetapathSampler(g, {"click": 0.5, "tag": 0.5}, 50, 3, 0.5, 3, seed=0).all_neighborhoods()
    assert merged.num_nodes == 4 and np.allclose(np.add.reduceat(merged.weights, merged.indptr[:-1]), 1.0)


# ---------------------------------------------------------------------------------------------- blocks and conv
def test_relational_block_with_one_relation_is_one_hop_block():
    g = two_relations(7, n_items=30, n_click=100, n_tag_rows=40)
    s = MetapathSampler(g, {"click": 0.7, "tag": 0.3}, 30, 3, 0.5, 4, seed=1, merge=False)
    dst = torch.tensor([3, 1, 3, 7])
    nbs = s(dst, key=0)
    block = relational_one_hop_block(dst, {"click": nbs["click"][:3]})
    ref = one_hop_block(dst, *nbs["click"][:3])
    assert torch.equal(block.src_nodes, ref.src_nodes) and torch.equal(block.edge_index["click"], ref.edge_index)
    both = relational_one_hop_block(dst, {k: v[:3] for k, v in nbs.items()})
    assert torch.equal(both.dst_nodes, dst)
    for name, nb in nbs.items():   # every relation's edges point at its neighbours
        e = both.edge_index[name]
        assert both.src_nodes[e[0]].tolist() == nb.indices.tolist()
        assert e[1].tolist() == np.repeat(np.arange(4), np.diff(nb.offsets.numpy())).tolist()
    blocks = build_relational_blocks(dst, s, 2)
    assert torch.equal(blocks[-1].dst_nodes, dst) and torch.equal(blocks[0].dst_nodes, blocks[1].src_nodes)


@pytest.mark.parametrize("combine", ["sum", "mean", "attention"])
def test_one_relation_conv_equals_importance_conv(combine):
    torch.manual_seed(0)
    block = one_hop_block(torch.tensor([0, 1, 2]), torch.tensor([0, 2, 2, 5]), torch.tensor([3, 4, 0, 3, 5]),
                          torch.tensor([0.5, 0.5, 0.2, 0.3, 0.5]))
    x = torch.randn(block.n_src, 8)
    ref = ImportanceConv(8, 6, 5)
    conv = RelationalPinSageConv(["click"], 8, 6, 5, combine=combine)
    conv.conv("click").load_state_dict(ref.state_dict())
    want = ref(x, block.edge_index, block.edge_weight, size=(block.n_src, block.n_dst))
    got = conv(x, {"click": block.edge_index}, {"click": block.edge_weight}, size=(block.n_src, block.n_dst))
    assert got.shape == (3, 5) and torch.allclose(got, want, atol=1e-6)


def test_combining_relations():
    torch.manual_seed(1)
    g = two_relations(8, n_items=30, n_click=100, n_tag_rows=8, n_tags=4)
    s = MetapathSampler(g, {"click": 0.7, "tag": 0.3}, 30, 1, 0.5, 4, seed=1, merge=False)
    seeds = torch.arange(g.num_items)
    block = relational_one_hop_block(seeds, {k: v[:3] for k, v in s(seeds, key=0).items()})
    x = torch.randn(block.n_src, 8, requires_grad=True)
    size = (block.n_src, block.n_dst)
    has = torch.stack([torch.bincount(block.edge_index[r][1], minlength=block.n_dst) > 0 for r in ("click", "tag")], 1)
    assert (has.all(1)).any() and (~has[:, 1]).any(), "nodes with both relations and nodes without tags"
    mean = RelationalPinSageConv(["click", "tag"], 8, 6, 5, combine="mean")
    z = [mean.conv(r)(x, block.edge_index[r], block.edge_weight[r], size=size) for r in ("click", "tag")]
    want = torch.nn.functional.normalize(torch.where(has.all(1, keepdim=True), (z[0] + z[1]) / 2,
                                                     torch.where(has[:, :1], z[0], z[1])), dim=-1)
    got = mean(x, block.edge_index, block.edge_weight, size=size)
    assert torch.allclose(got[has.any(1)], want[has.any(1)], atol=1e-6)
    att = RelationalPinSageConv(["click", "tag"], 8, 6, 5, combine="attention")
    h, alpha = att(x, block.edge_index, block.edge_weight, size=size, return_attention=True)
    assert alpha.shape == (block.n_dst, 2) and torch.allclose(alpha.sum(1), torch.ones(block.n_dst))
    assert (alpha[has.any(1) & ~has[:, 1], 1] == 0).all(), "no weight on a relation without neighbours"
    assert ((alpha[has.all(1)] > 0) & (alpha[has.all(1)] < 1)).all()
    norms = h.norm(dim=1)
    assert (((norms - 1).abs() < 1e-5) | (norms == 0)).all(), "unit rows (or all-zero ReLU outputs)"
    h.sum().backward()
    assert att.att_vec.grad is not None and att.conv("tag").lin_q.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="combine"):
        RelationalPinSageConv(["a"], 4, 4, 4, combine="max")


# ---------------------------------------------------------------------------------------------- benchmark
def test_benchmark_runs(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_hetero_sampler",
                                                  Path(__file__).resolve().parents[1] / "benchmarks" / "hetero_sampler.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    out = tmp_path / "h.json"
    assert mod.main(["--sizes", "XS", "--seconds", "0.05", "--repeats", "1", "--threads", "1", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["walks"], r["T"]) for r in rows] == [(200, 50), (10, 3)]
    assert all(r["seeds_per_s"]["mixed"] > 0 and 0.15 < r["tag_edges"] / r["click_edges"] < 0.25 for r in rows)
