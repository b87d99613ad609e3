"""Input files as people have them: each reader reads them correctly, or refuses them with one line that
names the file, the column, the row and what was expected (docs/cli.md, "Input files")."""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pinsage import InputError
from pinsage._io import read_table
from pinsage.cli import main
from pinsage.features import ItemFeatureEncoder
from pinsage.graph import InteractionGraph

TINY = {"train": {"epochs": 1, "pairs_per_epoch": 600, "batch_size": 100, "easy_negatives": 16, "num_workers": 0,
                  "warmup_steps": 2},
        "sampler": {"num_walks": 20, "num_neighbors": 5},
        "model": {"spectral_dim": 0, "hidden_channels": 16, "out_channels": 8, "id_dim": 8}}

#: ids as people have them: numbers and text in one column, quoted, accented, emoji, CJK
ODD_IDS = ["12", "A7", "café", "😀", "中文", "a,b", "a;b", "007"]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    data = text.encode(encoding)
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def lines(*rows: str) -> str:
    return "\n".join(rows) + "\n"


def graph_of(path: Path, **kw) -> InteractionGraph:
    return InteractionGraph.from_file(path, "user", "item", **kw)


def train(tmp_path: Path, interactions: Path, *extra: str) -> list[str]:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    return ["train", "--interactions", str(interactions), "--user-col", "user", "--item-col", "item",
            "--config", str(cfg), "--out", str(tmp_path / "run"), "--quiet", *extra]


def refused(capsys, argv: list[str], *words: str) -> str:
    """``main(argv)`` exits 2 with one stderr line holding every one of ``words``."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)
    return err


def interactions_text(ids: list[str], sep: str = ",", n_users: int = 60, per_user: int = 6, seed: int = 0) -> str:
    """Users picking ``per_user`` of ``ids`` each (every id at least once), ids quoted where needed."""
    rng = np.random.default_rng(seed)
    rows = ["user" + sep + "item"]
    for u in range(n_users):
        picks = (rng.choice(len(ids), min(per_user, len(ids)), replace=False) if u >= len(ids)
                 else [u, (u + 1) % len(ids)])
        for k in picks:
            v = ids[k]
            rows.append(f"u{u}{sep}" + (f'"{v}"' if any(c in v for c in ",;\t|") or u % 3 == 0 else v))
    return lines(*rows)


# --------------------------------------------------------------------------------------------- encodings
@pytest.mark.parametrize("name", ["x.csv", "x.csv.gz", "x.tsv", "x.txt"])
def test_utf8_byte_order_mark_is_skipped(tmp_path, name):
    sep = "\t" if ".tsv" in name else ","
    path = write(tmp_path / name, "\ufeff" + lines(f'"user"{sep}item', f"u1{sep}10", f"u2{sep}11"))
    assert list(read_table(path).columns) == ["user", "item"]
    assert graph_of(path).item_ids.tolist() == [10, 11]


def test_utf16_with_byte_order_mark_is_read(tmp_path):
    path = write(tmp_path / "excel.txt", lines("user\titem", "u1\tcafé", "u2\t中文"), encoding="utf-16")
    assert graph_of(path).item_ids.tolist() == ["café", "中文"]


def test_other_encodings_are_refused_naming_the_line(tmp_path, capsys):
    path = write(tmp_path / "latin.csv", lines("user,item", "u1,abc", "u2,caf\xe9"), encoding="latin-1")
    with pytest.raises(InputError, match=r"latin.csv, line 3 .*not UTF-8"):
        read_table(path)
    refused(capsys, train(tmp_path, path), "latin.csv", "line 3", "UTF-8")


# --------------------------------------------------------------------------------------------- separators
@pytest.mark.parametrize("suffix", [".csv", ".txt", ".csv.gz"])
@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_separator_is_sniffed_from_the_header(tmp_path, sep, suffix):
    other = ";" if sep == "," else ","  # the other separators may appear inside values
    path = write(tmp_path / f"x{suffix}", lines(f"user{sep}item{sep}time", f"u1{sep}a{other}b{sep}1",
                                                f"u1{sep}c{sep}2", f"u2{sep}c{sep}3"))
    g = graph_of(path, time_col="time")
    assert g.item_ids.tolist() == [f"a{other}b", "c"] and g.num_edges == 3


def test_tsv_stays_tab_separated(tmp_path):
    path = write(tmp_path / "x.tsv", lines("user\titem;kind", "u1\ta,b;c", "u2\td"))
    assert list(read_table(path).columns) == ["user", "item;kind"]


def test_spaces_after_separators_are_skipped(tmp_path):
    path = write(tmp_path / "x.csv", lines("user, item", 'u1, "a b"', "u2, c"))
    assert graph_of(path).item_ids.tolist() == ["a b", "c"]


# --------------------------------------------------------------------------------------------- ids
def test_quoted_and_unquoted_numeric_ids_are_one_item(tmp_path):
    path = write(tmp_path / "x.csv", lines("user,item", 'u1,"123"', "u2,123", 'u2,"7"'))
    g = graph_of(path)
    assert g.item_ids.dtype.kind == "i" and g.item_ids.tolist() == [7, 123]
    assert g.item_degree.tolist() == [1, 2]


def test_quoted_ids_in_a_text_column(tmp_path):
    path = write(tmp_path / "x.csv", lines("user,item", 'u1,"a,b"', "u2,a", 'u3,"123"', "u3,123"))
    g = graph_of(path)
    assert g.item_ids.tolist() == ["123", "a", "a,b"]
    assert g.item_degree.tolist() == [1, 1, 1]  # "123" twice, quoted and not, for one user: one edge


def test_mixed_and_unicode_ids_are_read_consistently(tmp_path):
    path = write(tmp_path / "x.csv", interactions_text(ODD_IDS))
    g = graph_of(path)
    assert sorted(g.item_ids.tolist()) == sorted(ODD_IDS) and g.item_ids.dtype.kind == "U"
    assert g.item_index(["12", "café", "😀", "007"]).min() >= 0


def test_numbers_and_text_in_different_blocks_of_a_long_file_are_one_id(tmp_path):
    # pandas types a long column block by block: 12 would be a number in the first block and text in the last
    n = 270_000
    items = [str(i) for i in range(n)] + ["A7", "12"]
    users = [f"u{i % 1000}" for i in range(n + 2)]
    path = tmp_path / "long.csv"
    pd.DataFrame({"user": users, "item": items}).to_csv(path, index=False)
    g = graph_of(path)
    assert g.num_items == n + 1  # "12" twice is one item
    assert g.item_degree[g.item_index(["12"])[0]] == 2


def test_mixed_id_types_in_a_dataframe_name_the_row():
    df = pd.DataFrame({"user": [1, 2, 3], "item": pd.Series([5, 6, "x"], dtype=object)})
    with pytest.raises(InputError, match=r"column 'item' mixes id types \['int', 'str'\].*row 3"):
        InteractionGraph.from_pandas(df, "user", "item")


@pytest.mark.parametrize("empty_col,row", [("user", 2), ("item", 3)])
def test_empty_ids_are_refused_naming_file_column_row(tmp_path, capsys, empty_col, row):
    rows = [["u1", "a"], ["u2", "b"], ["u3", "c"]]
    rows[row - 1][0 if empty_col == "user" else 1] = ""
    path = write(tmp_path / "x.csv", lines("user,item", *(",".join(r) for r in rows)))
    refused(capsys, train(tmp_path, path), "x.csv", f"column {empty_col!r}", f"row {row} ", "empty ids")


# --------------------------------------------------------------------------------------------- headers
def test_duplicated_header_names_are_refused(tmp_path, capsys):
    path = write(tmp_path / "x.csv", lines("user,item,item", "u1,a,b"))
    with pytest.raises(InputError, match=r"x.csv, line 1 .*'item' appears twice"):
        read_table(path)
    refused(capsys, train(tmp_path, path), "x.csv", "'item'", "line 1", "unique column names")


def test_duplicated_parquet_columns_are_refused(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array(["u1"]), pa.array(["a"]), pa.array(["b"])],
                                        names=["user", "item", "item"]), path)
    with pytest.raises(InputError, match=r"x.parquet: column 'item' appears twice \(columns 2 and 3\)"):
        read_table(path)


# --------------------------------------------------------------------------------------------- parquet types
def parquet(tmp_path: Path, **columns) -> Path:
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize("item,words", [
    (pa.array([[1], [2], [3]]), ["column 'item'", "list values", "row 1 "]),
    (pa.array([{"a": 1}, {"a": 2}, {"a": 3}]), ["column 'item'", "struct values", "row 1 "]),
    (pa.array([b"a", b"b", b"\xff"], pa.binary()), ["column 'item'", "not UTF-8", "row 3 "]),
], ids=["list", "struct", "raw-binary"])
def test_parquet_ids_of_the_wrong_type_are_refused(tmp_path, capsys, item, words):
    path = parquet(tmp_path, user=["u1", "u1", "u2"], item=item)
    refused(capsys, train(tmp_path, path), "x.parquet", *words)


def test_binary_parquet_ids_holding_text_are_text(tmp_path):
    path = parquet(tmp_path, user=["u1", "u1", "u2"], item=pa.array(["café".encode(), b"b", b"b"], pa.binary()))
    assert graph_of(path).item_ids.tolist() == ["b", "café"]


def test_float_time_with_nan_is_refused(tmp_path, capsys):
    path = parquet(tmp_path, user=["u1", "u1", "u2"], item=[1, 2, 3], time=[1.0, None, 3.0])
    refused(capsys, train(tmp_path, path, "--time-col", "time"), "x.parquet", "column 'time'", "row 2 ",
            "missing times")


def test_infinite_time_is_refused(tmp_path):
    path = parquet(tmp_path, user=["u1", "u1", "u2"], item=[1, 2, 3], time=[1.0, 2.0, float("inf")])
    with pytest.raises(InputError, match=r"column 'time' must hold finite times, e.g. row 3 "):
        graph_of(path, time_col="time")


@pytest.mark.parametrize("time", [
    pa.array([3, 1, 2], pa.timestamp("s")),
    pa.array([3000, 1000, 2000], pa.timestamp("ms", tz="Europe/Paris")),
    pa.array([3_000_000_000, 1_000_000_000, 2_000_000_000], pa.timestamp("ns")),
    pa.array([3, 1, 2], pa.date32()),
], ids=["s", "ms-tz", "ns", "date"])
def test_timestamp_times_become_microseconds(tmp_path, time):
    path = parquet(tmp_path, user=["u1", "u1", "u1"], item=[10, 20, 30], time=time)
    g = graph_of(path, time_col="time")
    assert g.edge_time.dtype == np.int64
    unit = 86_400 * 10**6 if pa.types.is_date(time.type) else 10**6  # days or seconds, in microseconds
    assert g.edge_time.tolist() == [3 * unit, 1 * unit, 2 * unit]  # items 10, 20, 30 in that order


def test_date_text_times_become_microseconds(tmp_path):
    path = write(tmp_path / "x.csv", lines("user,item,time", "u1,a,1970-01-01T00:00:01", "u1,b,1970-01-02"))
    assert graph_of(path, time_col="time").edge_time.tolist() == [10**6, 86_400 * 10**6]


def test_text_that_is_no_time_is_refused_naming_the_row(tmp_path):
    path = write(tmp_path / "x.csv", lines("user,item,time", "u1,a,2020-01-01", "u1,b,2020-01-02", "u2,c,soon"))
    with pytest.raises(InputError, match=r"x.csv: column 'time' must hold numeric times or dates, e.g. row 3 "):
        graph_of(path, time_col="time")


# --------------------------------------------------------------------------------------------- empty files
@pytest.mark.parametrize("content", ["", "\n\n", "user,item\n"], ids=["0-bytes", "blank", "header-only"])
@pytest.mark.parametrize("role", ["interactions", "item-features"])
def test_empty_files_are_refused(tmp_path, capsys, content, role):
    good = write(tmp_path / "good.csv", interactions_text(["a", "b", "c"]))
    empty = write(tmp_path / "empty.csv", content)
    if role == "interactions":
        argv = train(tmp_path, empty)
    else:
        argv = train(tmp_path, good, "--item-features", str(empty), "--item-key", "item")
    refused(capsys, argv, "empty.csv", "no rows")


def test_empty_parquet_is_refused(tmp_path, capsys):
    path = parquet(tmp_path, user=pa.array([], pa.string()), item=pa.array([], pa.int64()))
    refused(capsys, train(tmp_path, path), "x.parquet", "no rows")


# --------------------------------------------------------------------------------------------- item features
def test_features_with_a_repeated_id_are_refused_naming_id_and_rows(tmp_path, capsys):
    inter = write(tmp_path / "x.csv", interactions_text(["a", "b", "c"]))
    feats = write(tmp_path / "feats.csv", lines("item,price", "a,1", "b,2", "a,3"))
    refused(capsys, train(tmp_path, inter, "--item-features", str(feats), "--item-key", "item"),
            "feats.csv", "column 'item'", "duplicate ids", "'a'", "rows [1, 3]")


def test_nan_in_a_numeric_feature_is_a_missing_value(tmp_path):
    feats = write(tmp_path / "feats.csv", lines("item,price", "a,1", "b,", "c,NaN", "d,3"))
    x, missing = ItemFeatureEncoder(key="item").fit_transform(read_table(feats), np.array(["a", "b", "c", "d"]))
    assert not missing.any()
    assert x[1, 0] == 0.0 and x[2, 0] == 0.0  # the fitted mean, standardised
    assert x[0, 0] < 0 < x[3, 0]


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity"])
def test_infinite_feature_values_are_refused(tmp_path, capsys, value):
    inter = write(tmp_path / "x.csv", interactions_text(["a", "b", "c"]))
    feats = write(tmp_path / "feats.csv", lines("item,price", "a,1", f"b,{value}", "c,3"))
    refused(capsys, train(tmp_path, inter, "--item-features", str(feats), "--item-key", "item"),
            "feats.csv", "column 'price'", "row 2 ", "not a finite number")


def test_empty_feature_key_is_refused_naming_the_row(tmp_path):
    feats = write(tmp_path / "feats.csv", lines("item,price", "a,1", ",2"))
    with pytest.raises(InputError, match=r"item features .*feats.csv: key column 'item' is empty at row\(s\) \[2\]"):
        ItemFeatureEncoder(key="item").fit(read_table(feats))


# --------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def odd_run(tmp_path_factory, one_torch_thread):
    """A run trained on a file as a spreadsheet may save it: a BOM, ``;`` separators, quoted values and
    ids that mix numbers, text, accents, emoji and CJK in one column."""
    root = tmp_path_factory.mktemp("odd")
    ids = ODD_IDS + [f"pin_{k}" for k in range(30)]
    inter = write(root / "inter.csv", "\ufeff" + interactions_text(ids, sep=";"))
    assert main(train(root, inter)) == 0
    return root / "run", ids


def test_odd_ids_survive_the_run_directory(odd_run):
    run, ids = odd_run
    saved = np.load(run / "item_ids.npy", allow_pickle=False)
    assert saved.dtype.kind == "U" and sorted(saved.tolist()) == sorted(ids)


@pytest.mark.parametrize("item", ["12", "A7", "café", "😀", "中文", "a,b", "007"])
def test_related_finds_odd_ids(odd_run, capsys, item):
    run, _ = odd_run
    assert main(["related", "--run", str(run), "--item", item, "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert f"related to {item}:" in out


def test_related_reads_a_semicolon_items_file(odd_run, tmp_path, capsys):
    run, _ = odd_run
    queries = write(tmp_path / "q.csv", "\ufeff" + lines("item;note", '"a;b";x', "café;y", "12;z"))
    assert main(["related", "--run", str(run), "--items", str(queries), "--k", "2"]) == 0
    out = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str)
    assert sorted(out["query"].unique()) == sorted(["a;b", "café", "12"])
