"""Tests for pinsage.features: ItemFeatureEncoder, check_unknown, log_degree_feature."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pandas as pd
import pytest

from pinsage._io import InputError
from pinsage.features import ItemFeatureEncoder, check_unknown, hash_token, log_degree_feature


def _expected_text(text: str, dim: int, ngram_range=(1, 2), seed: int = 0) -> np.ndarray:
    """An independent re-implementation of the documented text hashing."""
    import re

    words = re.findall(r"\w+", text.lower())
    v = np.zeros(dim)
    for n in range(ngram_range[0], ngram_range[1] + 1):
        for i in range(len(words) - n + 1):
            h = zlib.crc32(" ".join(words[i:i + n]).encode(), seed)
            v[h % dim] += -1.0 if h & 0x80000000 else 1.0
    norm = np.linalg.norm(v)
    return v / norm if norm else v


# ------------------------------------------------------------------ numeric
def test_numeric_standardised_nan_to_zero():
    df = pd.DataFrame({"id": [10, 11, 12, 13], "x": [1.0, 2.0, 3.0, np.nan]})
    enc = ItemFeatureEncoder("id", numeric=["x"])
    X, missing = enc.fit_transform(df, [10, 11, 12, 13])
    s = np.sqrt(2 / 3)
    assert X.dtype == np.float32 and X.shape == (4, 2)
    np.testing.assert_allclose(X[:, 0], [-1 / s, 0, 1 / s, 0], rtol=1e-6)
    assert enc.feature_names_ == ["x", "missing"]
    assert enc.dim == 2
    assert not missing.any()
    # new data uses the fitted mean/std
    X2, _ = enc.transform(pd.DataFrame({"id": [1], "x": [4.0]}), [1])
    np.testing.assert_allclose(X2[0, 0], 2 / s, rtol=1e-6)


def test_numeric_constant_column_and_string_numbers():
    df = pd.DataFrame({"id": ["a", "b", "c"], "c": [5, 5, 5], "s": ["1", " 3 ", ""]})
    enc = ItemFeatureEncoder("id", numeric=["c", "s"])
    X, _ = enc.fit_transform(df, ["a", "b", "c"])
    np.testing.assert_array_equal(X[:, 0], [0, 0, 0])  # std 0 -> taken as 1
    np.testing.assert_allclose(X[:, 1], [-1, 1, 0])  # mean 2, std 1; empty -> 0


# ------------------------------------------------------------------ multi-hot
def test_multi_hot_vocab_top_k_and_unknown_tokens():
    df = pd.DataFrame({"id": [1, 2, 3, 4], "g": ["a|b", "b|c", "b", None]})
    enc = ItemFeatureEncoder("id", multi_hot=["g"], max_categories=2)
    X, _ = enc.fit_transform(df, [1, 2, 3, 4])
    # b:3, then a and c tie at 1 -> a (ties by token)
    assert enc.feature_names_ == ["g=b", "g=a", "missing"]
    np.testing.assert_array_equal(X[:, :2], [[1, 1], [1, 0], [1, 0], [0, 0]])
    new = pd.DataFrame({"id": [7], "g": ["z | a|a"]})
    X2, _ = enc.transform(new, [7])
    np.testing.assert_array_equal(X2, [[0, 1, 0]])


def test_multi_hot_custom_sep():
    df = pd.DataFrame({"id": [1, 2], "tags": ["x;y", "y"]})
    enc = ItemFeatureEncoder("id", multi_hot=["tags"], sep=";")
    X, _ = enc.fit_transform(df, [2, 1])
    assert enc.feature_names_ == ["tags=y", "tags=x", "missing"]
    np.testing.assert_array_equal(X, [[1, 0, 0], [1, 1, 0]])


# ------------------------------------------------------------------ categorical
def test_categorical_one_hot_other_and_unseen():
    df = pd.DataFrame({"id": [1, 2, 3, 4, 5], "c": ["x", "y", "x", None, "z"]})
    enc = ItemFeatureEncoder("id", categorical=["c"], max_categories=2)
    X, _ = enc.fit_transform(df, [1, 2, 3, 4, 5])
    assert enc.feature_names_ == ["c=x", "c=y", "c=<other>", "missing"]
    np.testing.assert_array_equal(
        X[:, :3], [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1]]
    )
    X2, _ = enc.transform(pd.DataFrame({"id": [9, 8], "c": ["never-seen", "y"]}), [8, 9])
    np.testing.assert_array_equal(X2, [[0, 1, 0, 0], [0, 0, 1, 0]])


def test_categorical_int_values_compared_as_strings():
    df = pd.DataFrame({"id": [1, 2], "c": [3, 4]})
    enc = ItemFeatureEncoder("id", categorical=["c"])
    enc.fit(df)
    X, _ = enc.transform(pd.DataFrame({"id": [1], "c": ["4"]}), [1])
    np.testing.assert_array_equal(X, [[0, 1, 0, 0]])


# ------------------------------------------------------------------ text
def test_text_hashing_exact():
    df = pd.DataFrame({"id": [1, 2, 3, 4], "t": ["Hello, World hello", "", None, "Hello, World hello"]})
    enc = ItemFeatureEncoder("id", text=["t"], text_dim=8)
    X, _ = enc.fit_transform(df, [1, 2, 3, 4])
    assert X.shape == (4, 9)
    np.testing.assert_allclose(X[0, :8], _expected_text("hello world hello", 8), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(X[0, :8]), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(X[1], 0)
    np.testing.assert_array_equal(X[2], 0)
    np.testing.assert_array_equal(X[3], X[0])
    assert enc.feature_names_[:2] == ["t#0", "t#1"]


def test_text_ngram_range_and_seed():
    df = pd.DataFrame({"id": [1], "t": ["toy story two"]})
    uni = ItemFeatureEncoder("id", text=["t"], text_dim=16, ngram_range=(1, 1)).fit_transform(df, [1])[0]
    np.testing.assert_allclose(uni[0, :16], _expected_text("toy story two", 16, (1, 1)), rtol=1e-6)
    seeded = ItemFeatureEncoder("id", text=["t"], text_dim=16, seed=7).fit_transform(df, [1])[0]
    np.testing.assert_allclose(seeded[0, :16], _expected_text("toy story two", 16, (1, 2), 7), rtol=1e-6)


def test_hash_is_stable_across_processes():
    # fixed value: standard CRC-32 of the UTF-8 bytes; independent of PYTHONHASHSEED
    assert hash_token("toy story") == 296048523 == zlib.crc32(b"toy story")
    code = (
        "import pandas as pd\n"
        "from pinsage.features import ItemFeatureEncoder, hash_token\n"
        "df = pd.DataFrame({'id': [1], 't': ['Toy Story (1995)']})\n"
        "X, _ = ItemFeatureEncoder('id', text=['t'], text_dim=16).fit_transform(df, [1])\n"
        "print(hash_token('toy story'), ','.join(f'{v:.6f}' for v in X[0]))\n"
    )
    outs = set()
    for hash_seed in ("1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outs.add(res.stdout.strip())
    assert len(outs) == 1
    assert outs.pop().startswith("296048523 ")


# ------------------------------------------------------------------ inference
def test_type_inference():
    n = 100
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "item": np.arange(n),
            "Item": np.arange(n),  # named like the key: skipped
            "title": [f"movie {i}" for i in range(n)],
            "price": rng.random(n),
            "flag": rng.random(n) > 0.5,
            "numstr": [str(i) for i in range(n)],  # strings that all parse as numbers
            "tags": ["a|b" if i % 3 else "c" for i in range(n)],
            "colour": [["red", "green", "blue"][i % 3] for i in range(n)],
            "desc": [f"a long unique description number {i}" for i in range(n)],
            "empty": [None] * n,
            "secret": rng.random(n),
        }
    )
    enc = ItemFeatureEncoder("item", exclude=["secret"]).fit(df)
    assert enc.columns_ == [
        ("title", "text"),
        ("price", "numeric"),
        ("flag", "numeric"),
        ("numstr", "numeric"),
        ("tags", "multi_hot"),
        ("colour", "categorical"),
        ("desc", "text"),
    ]


def test_inference_few_values_many_rows_is_categorical():
    # more distinct values than max_categories, but < 50% unique -> categorical
    vals = [f"v{i % 10}" for i in range(40)]
    df = pd.DataFrame({"id": range(40), "c": vals})
    enc = ItemFeatureEncoder("id", max_categories=4).fit(df)
    assert enc.columns_ == [("c", "categorical")]
    assert enc.dim == 4 + 1 + 1


def test_explicit_lists_use_only_listed_columns():
    df = pd.DataFrame({"id": [1, 2], "a": [1.0, 2.0], "b": ["x", "y"]})
    enc = ItemFeatureEncoder("id", categorical=["b"]).fit(df)
    assert enc.columns_ == [("b", "categorical")]


# ------------------------------------------------------------------ alignment / missing
def test_missing_items_zero_and_flagged():
    df = pd.DataFrame({"id": [5, 6, 99], "x": [1.0, 3.0, 100.0], "c": ["p", "q", "p"]})
    enc = ItemFeatureEncoder("id", numeric=["x"], categorical=["c"]).fit(df)
    X, missing = enc.transform(df, np.array([6, 7, 5, 8]))
    np.testing.assert_array_equal(missing, [False, True, False, True])
    assert missing.dtype == bool
    np.testing.assert_array_equal(X[:, -1], missing.astype(np.float32))
    np.testing.assert_array_equal(X[[1, 3], :-1], 0)
    assert enc.feature_names_[-1] == "missing"
    # item 6 has c=q; item 5 c=p
    names = enc.feature_names_
    assert X[0, names.index("c=q")] == 1 and X[2, names.index("c=p")] == 1


def test_string_graph_ids_match_integer_keys():
    df = pd.DataFrame({"id": [1, 2], "x": [0.0, 2.0]})
    enc = ItemFeatureEncoder("id", numeric=["x"]).fit(df)
    X, missing = enc.transform(df, np.array(["2", "1", "3"], dtype=object))
    np.testing.assert_array_equal(missing, [False, False, True])
    np.testing.assert_allclose(X[:2, 0], [1, -1])


# ------------------------------------------------------------------ errors
def test_error_key_missing():
    df = pd.DataFrame({"a": [1], "b": [2]})
    with pytest.raises(InputError, match=r"'movie_id'.*\['a', 'b'\]"):
        ItemFeatureEncoder("movie_id").fit(df)


def test_error_duplicate_keys():
    df = pd.DataFrame({"id": [1, 7, 3, 7], "x": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(InputError) as ei:
        ItemFeatureEncoder("id").fit(df)
    msg = str(ei.value)
    assert "duplicate" in msg and "7" in msg and "[2, 4]" in msg


def test_error_non_numeric_value_names_column_row_value():
    df = pd.DataFrame({"id": [1, 2, 3], "year": ["1995", "1996", "abc"]})
    with pytest.raises(InputError) as ei:
        ItemFeatureEncoder("id", numeric=["year"]).fit(df)
    msg = str(ei.value)
    assert "'year'" in msg and "row 3" in msg and "'abc'" in msg
    # also at transform time
    enc = ItemFeatureEncoder("id", numeric=["year"]).fit(df.iloc[:2])
    with pytest.raises(InputError, match=r"'year'.*row 2.*'x'"):
        enc.transform(pd.DataFrame({"id": [1, 2], "year": ["1", "x"]}), [1, 2])


def test_error_infinite_numeric():
    df = pd.DataFrame({"id": [1, 2], "x": [1.0, np.inf]})
    with pytest.raises(InputError, match=r"'x'.*row 2"):
        ItemFeatureEncoder("id", numeric=["x"]).fit(df)


def test_error_named_columns_missing():
    df = pd.DataFrame({"id": [1], "a": [1.0]})
    with pytest.raises(InputError, match=r"\['nope', 'gone'\].*\['id', 'a'\]"):
        ItemFeatureEncoder("id", numeric=["a", "nope"], text=["gone"]).fit(df)
    enc = ItemFeatureEncoder("id", numeric=["a"]).fit(df)
    with pytest.raises(InputError, match=r"\['a'\]"):
        enc.transform(pd.DataFrame({"id": [1]}), [1])


def test_error_column_in_two_lists():
    df = pd.DataFrame({"id": [1], "a": ["x"]})
    with pytest.raises(InputError, match="'a'"):
        ItemFeatureEncoder("id", categorical=["a"], text=["a"]).fit(df)


def test_check_unknown():
    df = pd.DataFrame({"id": [1, 2, 100, 101, 102, 103, 104, 105], "x": range(8)})
    check_unknown(df.iloc[:2], [1, 2, 3], "id")  # all known: no error
    with pytest.raises(InputError) as ei:
        ItemFeatureEncoder("id").check_unknown(df, [1, 2, 3])
    msg = str(ei.value)
    assert "6 id(s)" in msg and "[100, 101, 102, 103, 104]" in msg and "105" not in msg


def test_unfitted_raises():
    with pytest.raises(RuntimeError):
        ItemFeatureEncoder("id").transform(pd.DataFrame({"id": [1]}), [1])


# ------------------------------------------------------------------ persistence
def test_to_dict_round_trip_identical():
    df = pd.DataFrame(
        {
            "id": ["m1", "m2", "m3", "m4"],
            "title": ["Toy Story (1995)", "Heat (1995)", "Up", None],
            "year": [1995, 1995, 2009, np.nan],
            "genres": ["Animation|Comedy", "Action|Crime", "Animation", "Drama"],
            "lang": ["en", "en", "en", "fr"],
        }
    )
    enc = ItemFeatureEncoder("id", text_dim=16, seed=3, max_categories=3).fit(df)
    payload = json.dumps(enc.to_dict())
    enc2 = ItemFeatureEncoder.from_dict(json.loads(payload))
    new = pd.DataFrame(
        {"id": ["m9", "m1"], "title": ["Toy Story 2", "x"], "year": [1999, 2000],
         "genres": ["Animation|Sci-Fi", "Drama"], "lang": ["de", "en"]}
    )
    ids = ["m1", "m9", "m0"]
    for frame in (df, new):
        a, ma = enc.transform(frame, ids)
        b, mb = enc2.transform(frame, ids)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ma, mb)
    assert enc2.feature_names_ == enc.feature_names_ and enc2.dim == enc.dim
    assert enc2.columns_ == enc.columns_


# ------------------------------------------------------------------ MovieLens-like
def test_movielens_like_frame():
    df = pd.DataFrame(
        {
            "movie_id": [1, 2, 3, 4],
            "title": ["Toy Story (1995)", "GoldenEye (1995)", "Four Rooms (1995)", "Get Shorty (1995)"],
            "year": [1995, 1995, 1995, 1994],
            "genres": ["Animation|Children's|Comedy", "Action|Adventure|Thriller", "Thriller",
                       "Action|Comedy|Drama"],
        }
    )
    enc = ItemFeatureEncoder("movie_id", text_dim=32)
    X, missing = enc.fit_transform(df, np.array([4, 3, 2, 1, 5]))
    assert enc.columns_ == [("title", "text"), ("year", "numeric"), ("genres", "multi_hot")]
    genre_names = [n for n in enc.feature_names_ if n.startswith("genres=")]
    # by frequency, ties alphabetically
    assert genre_names == ["genres=Action", "genres=Comedy", "genres=Thriller", "genres=Adventure",
                           "genres=Animation", "genres=Children's", "genres=Drama"]
    assert X.shape == (5, 32 + 1 + 7 + 1) == (5, enc.dim)
    np.testing.assert_array_equal(missing, [False, False, False, False, True])
    toy = X[3]
    np.testing.assert_allclose(toy[:32], _expected_text("Toy Story (1995)", 32), rtol=1e-6)
    year = enc.feature_names_.index("year")
    np.testing.assert_allclose(X[:4, year], [-np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(3)], rtol=1e-5)
    on = {n.split("=", 1)[1] for n, v in zip(enc.feature_names_, toy) if n.startswith("genres=") and v == 1}
    assert on == {"Animation", "Children's", "Comedy"}
    np.testing.assert_array_equal(X[4], np.r_[np.zeros(enc.dim - 1), 1.0])


# ------------------------------------------------------------------ log degree
def test_log_degree_feature():
    deg = np.array([0, 1, 3, 7])
    f = log_degree_feature(deg)
    assert f.shape == (4, 1) and f.dtype == np.float32
    x = np.log1p(deg)
    np.testing.assert_allclose(f[:, 0], (x - x.mean()) / x.std(), rtol=1e-6)
    np.testing.assert_allclose([f.mean(), f.std()], [0, 1], atol=1e-6)
    np.testing.assert_array_equal(log_degree_feature([5, 5, 5]), np.zeros((3, 1), np.float32))
    assert log_degree_feature([]).shape == (0, 1)
    with pytest.raises(ValueError):
        log_degree_feature([1, -1])


@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 2), (2, 2), (1, 3), (2, 3)])
def test_text_ngrams_match_reference(ngram_range):
    texts = ["Toy Story (1995)", "Up", "", "Amélie — Café crème", "a b a b a b", "x", "Heat (1995)"]
    df = pd.DataFrame({"id": range(len(texts)), "t": texts})
    enc = ItemFeatureEncoder("id", text=["t"], text_dim=16, ngram_range=ngram_range)
    X, _ = enc.fit_transform(df, list(range(len(texts))))
    for i, t in enumerate(texts):
        np.testing.assert_allclose(X[i, :16], _expected_text(t, 16, ngram_range), rtol=1e-6, atol=1e-7)


def test_text_column_of_only_missing_or_punctuation():
    df = pd.DataFrame({"id": [1, 2, 3], "t": [None, "!!", ""]})
    X, _ = ItemFeatureEncoder("id", text=["t"], text_dim=4).fit_transform(df, [1, 2, 3])
    np.testing.assert_array_equal(X, 0)
