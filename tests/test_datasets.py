"""Tests for pinsage.datasets: synthetic graphs, the pin-board generator, MovieLens readers."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pinsage._io import InputError
from pinsage.datasets import (
    SIZES,
    make_pinboard,
    pinboard_features_frame,
    powerlaw_bipartite,
    read_ml100k,
    read_ml100k_items,
    read_movielens_movies,
    read_movielens_ratings,
    scale_graph,
)
from pinsage.datasets import synthetic

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "bench" / "dgl_anchor" / "synth.py"
ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
if not REFERENCE.is_file():
    REFERENCE = Path("/work/shared/bench/dgl_anchor/synth.py")
if not ML100K.is_dir():
    ML100K = Path("/work/shared/data/ml-100k")


# --------------------------------------------------------------------------- synthetic


def _reference():
    if not REFERENCE.is_file():
        pytest.skip(f"reference generator {REFERENCE} not present")
    spec = importlib.util.spec_from_file_location("dgl_anchor_synth", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.powerlaw_bipartite


@pytest.mark.parametrize(
    "args",
    [(1, 1, 5), (3, 2, 10), (1000, 700, 50_000), (5000, 3000, 200_000), (7, 1000, 12_345), (10, 10, 0)],
)
@pytest.mark.parametrize("seed,a", [(0, 1.2), (5, 0.7), (1, 3.0)])
def test_synthetic_matches_reference(args, seed, a):
    ref = _reference()
    want_u, want_i = ref(*args, seed=seed, a=a)
    got_u, got_i = powerlaw_bipartite(*args, seed=seed, a=a)
    assert got_u.dtype == np.int64 and got_i.dtype == np.int64
    np.testing.assert_array_equal(got_u, want_u)
    np.testing.assert_array_equal(got_i, want_i)


def test_synthetic_matches_reference_across_chunks(monkeypatch):
    """Chunk boundaries (sampling, compaction, item recovery) do not change the edges."""
    ref = _reference()
    want = ref(2000, 1500, 30_000, seed=3)
    monkeypatch.setattr(synthetic, "_CHUNK", 777)
    got = powerlaw_bipartite(2000, 1500, 30_000, seed=3)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_synthetic_matches_reference_size_s():
    ref = _reference()
    want = ref(*SIZES["S"])
    users, items = scale_graph("S")
    np.testing.assert_array_equal(users, want[0])
    np.testing.assert_array_equal(items, want[1])
    assert 1_700_000 < len(users) < 1_800_000  # DESIGN.md: 1.75M edges


def test_synthetic_no_duplicates_sorted_and_powerlaw():
    n_items, n_users = 20_000, 10_000
    users, items = powerlaw_bipartite(n_items, n_users, 300_000, seed=11)
    key = users * n_items + items
    assert np.all(np.diff(key) > 0)  # strictly increasing: sorted by (user, item), no repeats
    assert users.min() >= 0 and users.max() < n_users and items.min() >= 0 and items.max() < n_items
    deg = np.bincount(items, minlength=n_items)
    assert deg.max() > 50 * max(np.median(deg), 1)
    assert deg[:10].mean() > deg[-1000:].mean() * 20  # low ranks are the popular ones


def test_scale_graph_unknown_size():
    with pytest.raises(ValueError, match="unknown size"):
        scale_graph("XL")


# --------------------------------------------------------------------------- pin boards


def _board_and_pin_topics(data):
    board_idx = data.interactions["board"].str.slice(6).astype(int).to_numpy()
    pin_idx = data.interactions["pin"].str.slice(4).astype(int).to_numpy()
    return data.board_topics[board_idx], data.topics[pin_idx]


@pytest.mark.parametrize("noise", [0.0, 0.1, 0.3])
def test_pinboard_main_topic_share(noise):
    data = make_pinboard(noise=noise, seed=1)
    main, topic = _board_and_pin_topics(data)
    assert abs((main == topic).mean() - (1 - noise)) < 0.02


def test_pinboard_structure():
    data = make_pinboard(n_topics=10, pins_per_topic=200, n_boards=1000, feature_dim=16, seed=2)
    inter = data.interactions
    assert list(inter.columns) == ["board", "pin", "time"]
    assert inter["pin"].str.fullmatch(r"pin_\d{5}").all()
    assert inter["board"].str.fullmatch(r"board_\d{4}").all()
    assert not inter.duplicated(["board", "pin"]).any()
    sizes = inter.groupby("board").size()
    assert sizes.min() >= 3 and sizes.max() > 4 * sizes.median()  # heavy tail, minimum 3
    assert 15 < sizes.mean() < 25
    # time counts 0, 1, 2, ... within each board
    np.testing.assert_array_equal(inter["time"].to_numpy(), inter.groupby("board").cumcount().to_numpy())
    # pins: aligned ids, topics and features
    assert len(data.pins) == 2000 and data.features.shape == (2000, 16) and data.features.dtype == np.float32
    assert data.pins["pin"].iloc[42] == "pin_00042" and data.pins["title"].iloc[207] == "topic 1 pin 7"
    np.testing.assert_array_equal(data.pins["topic"].to_numpy(), data.topics)
    # topic popularity and within-topic pin popularity are skewed
    assert np.bincount(data.board_topics, minlength=10)[0] > 3 * np.bincount(data.board_topics, minlength=10)[-1]
    rank = inter["pin"].str.slice(4).astype(int).to_numpy() % 200
    counts = np.bincount(rank, minlength=200)
    assert counts[0] > 3 * counts[-1]


def test_pinboard_features_follow_topics():
    data = make_pinboard(seed=4)
    dist = ((data.features[:, None, :] - data.centroids[None]) ** 2).sum(-1)
    accuracy = (dist.argmin(1) == data.topics).mean()
    assert 0.75 < accuracy < 1.0  # correlated with the topic, not a perfect label


def test_pinboard_deterministic():
    a, b, c = make_pinboard(seed=7), make_pinboard(seed=7), make_pinboard(seed=8)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    np.testing.assert_array_equal(a.features, b.features)
    assert not a.interactions.equals(c.interactions)
    pd.testing.assert_frame_equal(pinboard_features_frame(a), pinboard_features_frame(b))


def test_pinboard_features_frame():
    data = make_pinboard(n_topics=12, pins_per_topic=30, n_boards=200, feature_dim=8, seed=3)
    frame = pinboard_features_frame(data)
    assert list(frame.columns) == ["pin", "title", "topic_name", "tags"] + [f"f{j}" for j in range(8)]
    assert len(frame) == 360
    assert isinstance(frame["topic_name"].dtype, pd.CategoricalDtype)
    assert frame["topic_name"].iloc[35] == "topic_01"
    np.testing.assert_array_equal(frame[[f"f{j}" for j in range(8)]].to_numpy(), data.features)
    tags = frame["tags"].str.split("|")
    assert tags.map(len).min() >= 1
    own = [all(t.startswith(f"t{topic}_") for t in row) for row, topic in zip(tags, data.topics)]
    assert all(own)


# --------------------------------------------------------------------------- MovieLens


def test_read_ml100k_small(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t3\t881250949\n2\t20\t5\t891717742\n")
    for path in (tmp_path, tmp_path / "u.data"):
        df = read_ml100k(path)
        assert list(df.columns) == ["user_id", "item_id", "rating", "timestamp"]
        assert df["user_id"].tolist() == [1, 2] and df["item_id"].tolist() == [10, 20]
        assert df["rating"].tolist() == [3.0, 5.0] and df["timestamp"].dtype == np.int64


def test_read_ml100k_errors(tmp_path):
    with pytest.raises(InputError, match="u.data"):
        read_ml100k(tmp_path)
    bad = tmp_path / "u.data"
    bad.write_text("1\t10\t3\t881250949\n2\t20\tfive\t891717742\n")
    with pytest.raises(InputError, match=r"line 2: column 'rating' must be a number, got 'five'"):
        read_ml100k(bad)
    bad.write_text("1\t10\t3\t881250949\n2\t20\t5\n3\t30\t4\t1\n")
    with pytest.raises(InputError, match=r"line 2: expected 4 tab-separated fields .*got 3"):
        read_ml100k(bad)
    bad.write_text("1\t10\t3\t881250949\n2\t20\t5\t891717742\t9\n")
    with pytest.raises(InputError, match=r"line 2: expected 4 .*got 5"):
        read_ml100k(bad)
    bad.write_text("1,10,3,881250949\n")
    with pytest.raises(InputError, match=r"line 1: expected 4 tab-separated fields"):
        read_ml100k(bad)


def test_read_ml100k_items_small(tmp_path):
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
              "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
              "Romance", "Sci-Fi", "Thriller", "War", "Western"]
    (tmp_path / "u.genre").write_text("".join(f"{g}|{j}\n" for j, g in enumerate(genres)) + "\n")
    flags = lambda on: "|".join("1" if j in on else "0" for j in range(19))  # noqa: E731
    lines = [
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{flags({3, 4, 5})}",
        f"2|Caf\xe9 (1996)|||http://y|{flags({1})}",
        f"3|unknown||||{flags({0})}",
    ]
    (tmp_path / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    df = read_ml100k_items(tmp_path)
    assert list(df.columns) == ["item_id", "title", "year", "genres"]
    assert df["title"].tolist() == ["Toy Story (1995)", "Caf\xe9 (1996)", "unknown"]
    assert str(df["year"].dtype) == "Int64"
    assert df["year"].iloc[0] == 1995 and df["year"].iloc[1] == 1996 and pd.isna(df["year"].iloc[2])
    assert df["genres"].tolist() == ["Animation|Children's|Comedy", "Action", "unknown"]
    (tmp_path / "u.item").write_text(f"1|Toy Story (1995)|01-Jan-1995||http://x|{flags({3})}\nx|y|||z|{flags({})}\n")
    with pytest.raises(InputError, match=r"u.item, line 2: column 'item_id' must be an integer"):
        read_ml100k_items(tmp_path / "u.item")


def test_read_movielens_latest(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n")
    (tmp_path / "movies.csv").write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        '11,"American President, The (1995)",Comedy|Drama|Romance\n'
        "99,Untitled,(no genres listed)\n"
    )
    ratings = read_movielens_ratings(tmp_path)
    assert list(ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert ratings["rating"].tolist() == [4.0, 4.5] and ratings["item_id"].tolist() == [1, 3]
    movies = read_movielens_movies(tmp_path / "movies.csv")
    assert movies["title"].tolist()[1] == "American President, The (1995)"
    assert movies["year"].tolist()[:2] == [1995, 1995] and pd.isna(movies["year"].iloc[2])
    assert movies["genres"].tolist()[2] == ""
    (tmp_path / "ratings.csv").write_text("user,movie,rating,timestamp\n1,1,4.0,964982703\n")
    with pytest.raises(InputError, match="expected the header"):
        read_movielens_ratings(tmp_path)
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,x,4.0,1\n")
    with pytest.raises(InputError, match=r"ratings.csv, line 3: column 'item_id' must be an integer, got 'x'"):
        read_movielens_ratings(tmp_path)
    with pytest.raises(InputError, match="movies.csv"):
        read_movielens_movies(tmp_path / "nope")


def test_real_ml100k():
    if not (ML100K / "u.data").is_file():
        pytest.skip(f"ML-100K not found at {ML100K} (expected u.data and u.item there)")
    ratings = read_ml100k(ML100K)
    assert ratings.shape == (100_000, 4)
    assert ratings["user_id"].nunique() == 943 and ratings["item_id"].nunique() == 1682
    assert ratings["rating"].between(1, 5).all()
    items = read_ml100k_items(ML100K)
    assert len(items) == 1682 and items["item_id"].is_unique
    assert items["title"].iloc[0] == "Toy Story (1995)"
    assert items["genres"].iloc[0] == "Animation|Children's|Comedy"
    assert items["year"].isna().sum() == 1  # item 267, "unknown"
