"""InteractionGraph: id maps, CSR both ways, duplicates, errors, save/load, exports."""
import numpy as np
import pandas as pd
import pytest

from pinsage import InputError
from pinsage.graph import InteractionGraph


@pytest.fixture
def frame():
    return pd.DataFrame({
        "user": ["u2", "u1", "u1", "u2", "u3", "u1"],
        "item": ["b", "a", "b", "c", "c", "a"],   # (u1, a) twice
        "ts": [5, 1, 2, 7, 3, 9],
        "w": [1.0, 2.0, 1.0, 0.5, 1.0, 3.0],
    })


def dense_adjacency(g):
    A = np.zeros((g.num_groups, g.num_items), dtype=int)
    rows = np.repeat(np.arange(g.num_groups), g.group_degree)
    A[rows, g.group_items] = 1
    return A


def test_id_maps_and_csr_both_directions(frame):
    g = InteractionGraph.from_pandas(frame, group_col="user", item_col="item")
    assert g.item_ids.tolist() == ["a", "b", "c"]
    assert g.group_ids.tolist() == ["u1", "u2", "u3"]
    assert (g.num_items, g.num_groups, g.num_edges) == (3, 3, 5)
    assert g.item_index(["c", "a"]).tolist() == [2, 0]
    assert g.item_index(["zz", "a"], missing="ignore").tolist() == [-1, 0]
    with pytest.raises(KeyError, match="zz"):
        g.item_index(["zz"])
    A = dense_adjacency(g)
    expected = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    assert (A == expected).all()
    # item -> group CSR is the transpose
    AT = np.zeros((g.num_items, g.num_groups), dtype=int)
    AT[np.repeat(np.arange(g.num_items), g.item_degree), g.item_groups] = 1
    assert (AT == A.T).all()
    assert g.item_groups.dtype == np.int32 and g.group_items.dtype == np.int32
    assert g.item_indptr.dtype == np.int64
    assert g.item_degree.tolist() == [1, 2, 2]
    # duplicates counted: (u1, a) appears twice
    assert g.edge_weight is not None and g.edge_weight.tolist() == [2, 1, 1, 1, 1]


def test_weights_summed_and_latest_time(frame):
    g = InteractionGraph.from_pandas(frame, "user", "item", time_col="ts", weight_col="w")
    # group-CSR order: (u1,a) (u1,b) (u2,b) (u2,c) (u3,c)
    assert g.edge_weight.tolist() == [5.0, 1.0, 1.0, 0.5, 1.0]
    assert g.edge_time.tolist() == [9, 2, 5, 7, 3]


def test_no_duplicate_no_weight_array():
    g = InteractionGraph.from_edges(np.array([0, 0, 1]), np.array([0, 1, 1]))
    assert g.edge_weight is None
    assert g.nbytes == 4 * 3 * 2 + 8 * (3 + 3)


def test_bytes_per_edge_under_nine_on_large_graph():
    rng = np.random.default_rng(0)
    key = np.unique(rng.integers(0, 5000 * 10000, 200_000))  # distinct pairs: no count array
    g = InteractionGraph.from_edges(key // 10000, key % 10000, num_groups=5000, num_items=10000)
    assert g.edge_weight is None
    assert g.nbytes / g.num_edges <= 9


@pytest.mark.parametrize("mutate,match", [
    (lambda df: df.drop(columns=["item"]), "item column 'item' not found"),
    (lambda df: df.iloc[:0], "no rows"),
    (lambda df: df.assign(item=[None, "a", "b", "c", "c", "a"]), r"empty ids.*e.g. row 1 "),
    (lambda df: df.assign(ts=["x", 1, 2, 3, 4, 5]), r"numeric times or dates.*row 1 "),
    (lambda df: df.assign(w=[1, 1, -2, 1, 1, 1]), r"negative weights, e.g. row 3 "),
])
def test_bad_input_names_column_and_row(frame, mutate, match):
    with pytest.raises(InputError, match=match):
        InteractionGraph.from_pandas(mutate(frame), "user", "item", time_col="ts", weight_col="w")


def test_from_file_csv_parquet_and_bad_format(frame, tmp_path):
    frame.to_csv(tmp_path / "x.csv", index=False)
    frame.to_parquet(tmp_path / "x.parquet")
    a = InteractionGraph.from_file(tmp_path / "x.csv", "user", "item")
    b = InteractionGraph.from_file(tmp_path / "x.parquet", "user", "item")
    assert (a.group_items == b.group_items).all()
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(InputError, match="not a CSV or Parquet"):
        InteractionGraph.from_file(tmp_path / "x.json", "user", "item")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="bad.parquet"):
        InteractionGraph.from_file(tmp_path / "bad.parquet", "user", "item")
    with pytest.raises(InputError, match="column 'nope'"):
        InteractionGraph.from_file(tmp_path / "x.csv", "user", "nope")


@pytest.mark.parametrize("ids", [["a", "b", "c"], [10, 20, 30]])
def test_save_load_roundtrip_mmap(tmp_path, ids):
    df = pd.DataFrame({"g": [0, 0, 1, 2], "i": [ids[0], ids[1], ids[1], ids[2]], "t": [1, 2, 3, 4]})
    g = InteractionGraph.from_pandas(df, "g", "i", time_col="t")
    g.save(tmp_path / "graph")
    h = InteractionGraph.load(tmp_path / "graph")
    assert isinstance(h.group_items, np.memmap)
    for name in ("group_indptr", "group_items", "item_indptr", "item_groups", "edge_time"):
        assert np.array_equal(getattr(g, name), getattr(h, name))
    assert h.item_ids.tolist() == ids
    assert h.item_index([ids[2]]).tolist() == [2]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_load_rejects_truncated_and_foreign(tmp_path):
    g = InteractionGraph.from_edges(np.array([0, 1]), np.array([1, 0]))
    g.save(tmp_path / "g")
    data = (tmp_path / "g" / "group_items.npy").read_bytes()
    (tmp_path / "g" / "group_items.npy").write_bytes(data[:-4])
    with pytest.raises(InputError, match="group_items.npy"):
        InteractionGraph.load(tmp_path / "g")
    with pytest.raises(InputError, match="no graph.json"):
        InteractionGraph.load(tmp_path)


def test_save_failure_leaves_previous_copy(tmp_path, monkeypatch):
    g = InteractionGraph.from_edges(np.array([0, 1]), np.array([1, 0]))
    g.save(tmp_path / "g")
    before = sorted(p.name for p in (tmp_path / "g").iterdir())
    import pinsage.graph.interaction as graph_mod

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(graph_mod.np, "save", boom)
    with pytest.raises(OSError):
        g.save(tmp_path / "g")
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["g"]


def test_to_pyg_and_scipy(frame):
    g = InteractionGraph.from_pandas(frame, "user", "item")
    data = g.to_pyg()
    ei = data["group", "contains", "item"].edge_index
    assert ei.shape == (2, g.num_edges)
    assert data["item"].num_nodes == 3
    assert (data["item", "rev_contains", "group"].edge_index.flip(0) == ei).all()
    X = g.to_scipy()
    assert X.shape == (3, 3) and X.nnz == 5


def test_dates_read_as_text_are_times(tmp_path):
    df = pd.DataFrame({"u": [1, 1, 2], "i": [1, 2, 1], "when": ["2020-01-02", "2020-01-01", "2021-05-01"]})
    df.to_csv(tmp_path / "d.csv", index=False)
    g = InteractionGraph.from_file(tmp_path / "d.csv", "u", "i", time_col="when")
    assert g.edge_time[0] > g.edge_time[1]  # (u1, i1) on Jan 2 is later than (u1, i2) on Jan 1


def test_from_edges_rejects_out_of_range_and_mismatched():
    with pytest.raises(InputError, match="item indices must lie in"):
        InteractionGraph.from_edges(np.array([0, 0, 1]), np.array([1, 7, 0]), num_items=5)
    with pytest.raises(InputError, match="one length"):
        InteractionGraph.from_edges(np.array([0, 1]), np.array([1]))
    with pytest.raises(InputError, match="group indices"):
        InteractionGraph.from_edges(np.array([-1, 0]), np.array([0, 1]))


def test_mixed_id_types_are_a_clear_error():
    df = pd.DataFrame({"u": [1, 2], "i": pd.Series([1, "a"], dtype=object)})
    with pytest.raises(InputError, match="mixes id types"):
        InteractionGraph.from_pandas(df, "u", "i")
