"""ItemIndex: exactness, exclusion, ids, recall of the approximate kinds, save/load, errors."""
from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from pinsage._io import InputError
from pinsage.index import FORMAT_VERSION, ItemIndex


def clustered(n: int, d: int, centres: int = 200, sigma: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    return (c[rng.integers(0, centres, n)] + sigma * rng.standard_normal((n, d))).astype(np.float32)


def brute_force(x: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn[rows] @ xn.T
    s[np.arange(len(rows)), rows] = -np.inf  # the query itself
    return np.argsort(-s, axis=1, kind="stable")[:, :k], np.sort(s, axis=1)[:, ::-1][:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / len(b) for a, b in zip(found, truth)]))


@pytest.fixture(scope="module")
def big():
    """20k x 32 clustered vectors, exact answers for 400 query items."""
    x = clustered(20_000, 32)
    exact = ItemIndex.build(x, kind="exact")
    q = np.arange(0, 20_000, 50)
    truth, _ = exact.related(q, k=10)
    return x, q, truth


def test_exact_matches_brute_force():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 16)).astype(np.float32)
    ids = np.arange(1000, 1500)
    index = ItemIndex.build(x, ids, kind="exact", metric="cosine")
    assert (index.kind, index.dim, len(index), index.metric) == ("exact", 16, 500, "cosine")
    assert ItemIndex.build(x, ids, kind="exact").metric == "ip"  # the default: PinSage's dot-product score
    rows = np.array([0, 7, 499, 250])
    got, scores = index.related(ids[rows], k=5)
    want, want_scores = brute_force(x, rows, 5)
    assert got.shape == (4, 5) and scores.shape == (4, 5) and scores.dtype == np.float32
    np.testing.assert_array_equal(got, ids[want])
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    assert not np.isin(ids[rows][:, None], got).any(axis=1).any()  # self never returned


def test_self_excluded_even_with_duplicates_and_ip_metric():
    x = np.array([[1, 0], [1, 0], [0, 1], [0.9, 0.1]], dtype=np.float32)
    index = ItemIndex.build(x, ["a", "b", "c", "d"], kind="exact", metric="ip")
    got, scores = index.related(["a", "b"], k=2)
    assert got.tolist() == [["b", "d"], ["a", "d"]]
    np.testing.assert_allclose(scores, [[1.0, 0.9], [1.0, 0.9]], rtol=1e-6)


def test_string_ids_scalar_query_and_alias():
    x = clustered(300, 8, centres=10)
    ids = np.array([f"pin-{i}" for i in range(300)])
    index = ItemIndex.build(x, ids, kind="exact", metric="cosine")
    got, scores = index.related("pin-3", k=4)
    assert got.shape == (4,) and all(isinstance(v, str) for v in got) and "pin-3" not in got
    want, _ = brute_force(x, np.array([3]), 4)
    assert got.tolist() == ids[want[0]].tolist()
    a, b = index.similar_items(["pin-3"], N=4)
    assert a.tolist() == [got.tolist()] and np.allclose(b[0], scores)


def test_unknown_id_error_names_it():
    index = ItemIndex.build(np.eye(4, dtype=np.float32), ["a", "b", "c", "d"])
    with pytest.raises(InputError, match=r"'zz'.*'yy'|'yy'.*'zz'"):
        index.related(["a", "zz", "yy"])
    with pytest.raises(InputError, match="unknown item id"):
        ItemIndex.build(np.eye(3, dtype=np.float32), [1, 2, 3]).related([4])


def test_exclude_global_and_per_query():
    x = clustered(200, 8, centres=5, seed=3)
    index = ItemIndex.build(x, np.arange(200) * 10, kind="exact")
    base, _ = index.related([0, 10], k=5)
    drop = base[0, :2].tolist()
    got, _ = index.related([0, 10], k=5, exclude=drop)  # global
    assert not np.isin(got, drop).any()
    assert got[0].tolist() == [v for v in index.related([0], k=7)[0][0].tolist() if v not in drop][:5]
    per_q, _ = index.related([0, 10], k=5, exclude=[[base[0, 0]], None])  # per query
    assert base[0, 0] not in per_q[0] and per_q[1].tolist() == base[1].tolist()
    # unknown ids in exclude are ignored
    same, _ = index.related([0, 10], k=5, exclude=[123456789])
    assert same.tolist() == base.tolist()


def test_padding_when_catalogue_small():
    index = ItemIndex.build(np.eye(3, dtype=np.float32) + 0.1, [7, 8, 9])
    got, scores = index.related([7], k=4)
    assert got.dtype.kind == "i" and got[0, 2:].tolist() == [-1, -1]
    assert np.isnan(scores[0, 2:]).all() and not np.isnan(scores[0, :2]).any()
    sidx = ItemIndex.build(np.eye(3, dtype=np.float32) + 0.1, ["x", "y", "z"])
    got, scores = sidx.related(["x"], k=3, exclude=["y"])
    assert got[0].tolist() == ["z", None, None] and np.isnan(scores[0, 1:]).all()
    ids, sc = sidx.search(np.ones((2, 3), dtype=np.float32), k=5)
    assert ids.shape == (2, 5) and ids[0, 3] is None and np.isnan(sc[:, 3:]).all()


def test_search_vectors():
    x = clustered(1000, 16, centres=20, seed=2)
    index = ItemIndex.build(x, kind="exact", metric="cosine")
    got, scores = index.search(x[:3], k=1)
    assert got[:, 0].tolist() == [0, 1, 2]
    np.testing.assert_allclose(scores[:, 0], 1.0, rtol=1e-5)
    with pytest.raises(InputError, match="dimension 16"):
        index.search(np.ones((2, 5)), k=1)


def test_auto_kind_and_bad_input():
    assert ItemIndex.build(np.eye(5, dtype=np.float32)).kind == "exact"
    with pytest.raises(InputError, match="duplicate"):
        ItemIndex.build(np.eye(3, dtype=np.float32), ["a", "b", "a"])
    with pytest.raises(InputError, match="3 embedding rows"):
        ItemIndex.build(np.eye(3, dtype=np.float32), [1, 2])
    with pytest.raises(InputError, match="kind"):
        ItemIndex.build(np.eye(3, dtype=np.float32), kind="lsh")
    with pytest.raises(InputError, match="non-finite"):
        ItemIndex.build(np.array([[1.0, np.nan], [0, 1]]))


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_default_recall(big, kind):
    x, q, truth = big
    index = ItemIndex.build(x, kind=kind)
    assert index.kind == kind
    got, scores = index.related(q, k=10)
    assert not (got == q[:, None]).any()
    r = recall(got, truth)
    assert r >= 0.95, f"{kind} recall@10 {r:.3f}"


def test_save_load_round_trip(tmp_path, big):
    x, q, _ = big
    ids = np.array([f"item{i}" for i in range(len(x))])
    for kind in ("exact", "hnsw"):
        index = ItemIndex.build(x, ids, kind=kind, **({"ef_search": 64} if kind == "hnsw" else {}))
        index.save(tmp_path / kind)
        meta = json.loads((tmp_path / kind / "meta.json").read_text())
        assert meta["format_version"] == FORMAT_VERSION and meta["kind"] == kind and meta["n"] == len(x)
        loaded = ItemIndex.load(tmp_path / kind)
        assert (loaded.kind, loaded.dim, len(loaded), loaded.params) == (kind, 32, len(x), index.params)
        a_ids, a_s = index.related(ids[q[:50]], k=10)
        b_ids, b_s = loaded.related(ids[q[:50]], k=10)
        assert a_ids.tolist() == b_ids.tolist()
        np.testing.assert_array_equal(a_s, b_s)
    # integer ids keep their dtype
    small = ItemIndex.build(x[:100], np.arange(100, dtype=np.int32) * 3)
    small.save(tmp_path / "ints")
    back = ItemIndex.load(tmp_path / "ints")
    assert back.ids.dtype == np.int32 and back.related([3], k=3)[0].tolist() == small.related([3], k=3)[0].tolist()


def test_save_load_ivfpq(tmp_path):
    x = clustered(3000, 16, centres=30)
    index = ItemIndex.build(x, kind="ivfpq", nlist=16, m=4, nbits=6, nprobe=4)
    index.save(tmp_path / "ivf")
    loaded = ItemIndex.load(tmp_path / "ivf")
    assert loaded.params["nprobe"] == 4
    np.testing.assert_array_equal(index.related([0, 1], k=5)[0], loaded.related([0, 1], k=5)[0])


def test_load_errors(tmp_path):
    x = clustered(500, 8, centres=10)
    ItemIndex.build(x, kind="exact").save(tmp_path / "ok")

    with pytest.raises(InputError, match="not an index directory"):
        ItemIndex.load(tmp_path / "nowhere")

    # truncated index file
    import shutil
    shutil.copytree(tmp_path / "ok", tmp_path / "trunc")
    f = tmp_path / "trunc" / "index.faiss"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(InputError, match="index.faiss"):
        ItemIndex.load(tmp_path / "trunc")

    # ids from another index: the recorded checksum names the file before numpy reads it ...
    shutil.copytree(tmp_path / "ok", tmp_path / "ids")
    np.save(tmp_path / "ids" / "ids.npy", np.arange(499))
    with pytest.raises(InputError, match=r"ids.npy: damaged"):
        ItemIndex.load(tmp_path / "ids")
    # ... and without recorded checksums (an older index) the counts disagree
    meta_path = tmp_path / "ids" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["checksums"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"499 ids.*500 vectors"):
        ItemIndex.load(tmp_path / "ids")

    # missing file
    shutil.copytree(tmp_path / "ok", tmp_path / "missing")
    (tmp_path / "missing" / "ids.npy").unlink()
    with pytest.raises(InputError, match="ids.npy"):
        ItemIndex.load(tmp_path / "missing")

    # version mismatch
    shutil.copytree(tmp_path / "ok", tmp_path / "ver")
    meta_path = tmp_path / "ver" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="format version"):
        ItemIndex.load(tmp_path / "ver")


def test_atomic_save_leaves_nothing_on_failure(tmp_path, monkeypatch):
    x = clustered(200, 8, centres=5)
    index = ItemIndex.build(x)
    index.save(tmp_path / "idx")
    before = {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir()}

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        index.save(tmp_path / "new")
    with pytest.raises(RuntimeError, match="disk full"):
        ItemIndex.build(x[:50]).save(tmp_path / "idx")  # would replace an existing index
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temporary leftovers
    assert {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir()} == before
    monkeypatch.undo()
    assert len(ItemIndex.load(tmp_path / "idx")) == 200


# ---------------------------------------------------------------------------------------------- factory strings
@pytest.fixture(scope="module")
def small():
    """2,000 x 16 gaussian vectors, string ids, and exact top-10 of 100 query items."""
    x = np.random.default_rng(5).standard_normal((2000, 16)).astype(np.float32)
    ids = np.array([f"item{i}" for i in range(2000)])
    exact = ItemIndex.build(x, ids, kind="exact")
    q = ids[::20]
    truth, truth_scores = exact.related(q, k=10)
    return x, ids, q, truth, truth_scores


def test_factory_flat_is_exact(small):
    x, ids, q, truth, truth_scores = small
    index = ItemIndex.build(x, ids, kind="Flat")
    assert (index.kind, len(index), index.params) == ("Flat", 2000, {})
    got, scores = index.related(q, k=10)
    assert got.tolist() == truth.tolist() and isinstance(got[0, 0], str)
    np.testing.assert_allclose(scores, truth_scores, rtol=1e-5, atol=1e-5)


def test_factory_hnsw_recall(small):
    x, ids, q, truth, _ = small
    index = ItemIndex.build(x, ids, kind="HNSW16,Flat", ef_search=64)
    assert index.params["ef_search"] == 64 and faiss.downcast_index(index.faiss_index).hnsw.efSearch == 64
    got, _ = index.related(q, k=10)
    assert np.isin(got, ids).all() and not (got == q[:, None]).any()
    assert recall(got, truth) >= 0.9
    index.set_search_params(ef_search=128)
    assert faiss.downcast_index(index.faiss_index).hnsw.efSearch == 128
    with pytest.raises(InputError, match="nprobe"):
        index.set_search_params(nprobe=4)


def test_factory_ivf_all_lists_is_exact(small):
    x, ids, q, truth, truth_scores = small
    index = ItemIndex.build(x, ids, kind="IVF16,Flat", nprobe=16)
    assert index.params == {"nprobe": 16, "train_size": 2000, "seed": 1234}
    assert faiss.extract_index_ivf(index.faiss_index).nprobe == 16
    got, scores = index.related(q, k=10)
    assert got.tolist() == truth.tolist()
    np.testing.assert_allclose(scores, truth_scores, rtol=1e-5, atol=1e-5)
    # trained on a sample when asked; fewer lists probed, lower (but non-zero) recall
    sampled = ItemIndex.build(x, ids, kind="IVF16,Flat", train_size=500, seed=7, nprobe=2)
    assert sampled.params == {"nprobe": 2, "train_size": 500, "seed": 7}
    assert 0.2 < recall(sampled.related(q, k=10)[0], truth) < 1.0


def test_factory_save_load_round_trip(tmp_path, small):
    x, ids, q, _, _ = small
    for kind, params in (("Flat", {}), ("HNSW16,Flat", {"ef_search": 64}), ("IVF16,Flat", {"nprobe": 4}),
                         ("IVF16,PQ4", {"nprobe": 8})):
        index = ItemIndex.build(x, ids, kind=kind, metric="cosine", **params)
        index.save(tmp_path / "idx")
        meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
        assert meta["kind"] == kind and meta["params"] == index.params
        loaded = ItemIndex.load(tmp_path / "idx")
        assert (loaded.kind, loaded.metric, loaded.params) == (kind, "cosine", index.params)
        a_ids, a_s = index.related(q, k=10, exclude=ids[:50])
        b_ids, b_s = loaded.related(q, k=10, exclude=ids[:50])
        assert a_ids.tolist() == b_ids.tolist()
        np.testing.assert_array_equal(a_s, b_s)
        np.testing.assert_array_equal(index.search(x[:5], k=3)[1], loaded.search(x[:5], k=3)[1])


def test_factory_errors(small):
    x, ids, _, _, _ = small
    with pytest.raises(InputError, match=r"NotAnIndex12.*'exact'.*'hnsw'.*'ivfpq'.*HNSW32,Flat"):
        ItemIndex.build(x, ids, kind="NotAnIndex12")
    with pytest.raises(InputError, match=r"'Flat'.*unknown parameter.*nprobe"):
        ItemIndex.build(x, ids, kind="Flat", nprobe=4)
    with pytest.raises(InputError, match="train_size"):
        ItemIndex.build(x, ids, kind="HNSW16,Flat", train_size=100)
    with pytest.raises(InputError, match=r"IVF4096,Flat.*2000"):
        ItemIndex.build(x, ids, kind="IVF4096,Flat")
    with pytest.raises(InputError, match="positive integer"):
        ItemIndex.build(x, ids, kind="IVF16,Flat", nprobe=0)
