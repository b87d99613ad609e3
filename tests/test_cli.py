"""End-to-end tests of ``pinsage index | related | embed | evaluate`` on one tiny trained run."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pinsage.cli import main
from pinsage.datasets import make_pinboard, pinboard_features_frame
from pinsage.evaluation import evaluate_embeddings, leave_last_out
from pinsage.index import ItemIndex
from pinsage.run import RunDir

TINY_CONFIG = {
    "train": {"epochs": 1, "pairs_per_epoch": 2000, "num_workers": 0, "batch_size": 256, "easy_negatives": 100},
    "sampler": {"num_walks": 20},
}
#: pins with these positions within their topic are held out of training (the "new" items)
NEW_POSITIONS = (3, 17)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A run trained on pin-board data with integer pin ids, features with titles, a leave-last-out
    test file, and a "changed" interactions file that adds new pins."""
    import yaml

    root = tmp_path_factory.mktemp("cli")
    data = make_pinboard(n_topics=4, pins_per_topic=30, n_boards=150, seed=0)
    inter = data.interactions.copy()
    inter["pin"] = inter["pin"].str[4:].astype(np.int64)  # "pin_00034" -> 34
    feats = pinboard_features_frame(data)
    feats["pin"] = feats["pin"].str[4:].astype(np.int64)
    topic = np.asarray(data.topics)  # topic of pin i
    new_pins = np.flatnonzero(np.isin(np.arange(len(topic)) % 30, NEW_POSITIONS))

    base = inter[~inter["pin"].isin(new_pins)]
    split = leave_last_out(base, "board", "pin", "time")
    train = split.train
    train.to_csv(root / "train.csv", index=False)
    split.test.to_csv(root / "test.csv", index=False)
    feats[feats["pin"].isin(train["pin"].unique())].to_csv(root / "features.csv", index=False)
    feats.to_csv(root / "features_all.csv", index=False)
    changed = pd.concat([train, inter[inter["pin"].isin(new_pins)]], ignore_index=True)
    changed.to_csv(root / "changed.csv", index=False)
    (root / "cfg.yaml").write_text(yaml.safe_dump(TINY_CONFIG))

    run = root / "run"
    rc = main(["train", "--interactions", str(root / "train.csv"), "--user-col", "board", "--item-col", "pin",
               "--time-col", "time", "--item-features", str(root / "features.csv"), "--item-key", "pin",
               "--config", str(root / "cfg.yaml"), "--out", str(run), "--quiet"])
    assert rc == 0
    return {"root": root, "run": run, "split": split, "topic": topic, "new_pins": new_pins}


def copy_run(tiny, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(tiny["run"], dst)
    return dst


def run_arrays(run):
    return np.load(run / "item_embeddings.npy"), np.load(run / "item_ids.npy")


# --------------------------------------------------------------------------------------------- help
def test_help_lists_all_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ("train", "embed", "index", "related", "evaluate"):
        assert name in out


# --------------------------------------------------------------------------------------------- index
def test_index_builds_and_related_uses_it(tiny, tmp_path, capsys):
    run = copy_run(tiny, tmp_path)
    assert main(["index", "--run", str(run), "--kind", "hnsw", "--param", "M=16", "--param", "ef_search=200"]) == 0
    err = capsys.readouterr().err  # a status message: stderr (the logging of pinsage.cli)
    assert "pinsage index: kind=hnsw" in err and "n=" in err and "dim=64" in err
    index = ItemIndex.load(run / "index")
    emb, ids = run_arrays(run)
    assert index.kind == "hnsw" and len(index) == len(ids)
    assert index.params["M"] == 16

    # related with the saved index; the integer id typed as a string
    q = int(ids[5])
    assert main(["related", "--run", str(run), "--item", str(q), "--k", "5"]) == 0
    out = capsys.readouterr().out
    assert f"related to {q}" in out and "title" in out and "topic" in out
    exact_ids, _ = ItemIndex.build(emb, ids, kind="exact").related(q, k=5)
    for i in exact_ids[:3]:
        assert str(i) in out


def test_index_bad_param(tiny, tmp_path, capsys):
    run = copy_run(tiny, tmp_path)
    assert main(["index", "--run", str(run), "--kind", "exact", "--param", "M=16"]) == 2
    assert main(["index", "--run", str(run), "--param", "oops"]) == 2
    err = capsys.readouterr().err
    assert "oops" in err
    assert not (run / "index").exists()


# --------------------------------------------------------------------------------------------- related
def test_related_items_file_to_csv_and_json(tiny, tmp_path, capsys):
    run = tiny["run"]
    emb, ids = run_arrays(run)
    queries = [int(ids[0]), int(ids[40]), int(ids[90])]
    exact_ids, exact_scores = ItemIndex.build(emb, ids, kind="exact").related(queries, k=4)

    plain = tmp_path / "q.txt"
    plain.write_text("\n".join(map(str, queries)) + "\n\n")
    csv_in = tmp_path / "q.csv"
    pd.DataFrame({"item": queries, "note": ["a", "b", "c"]}).to_csv(csv_in, index=False)

    out_csv = tmp_path / "rel.csv"
    assert main(["related", "--run", str(run), "--items", str(plain), "--k", "4", "--output", str(out_csv)]) == 0
    df = pd.read_csv(out_csv)
    assert list(df.columns) == ["query", "rank", "item", "score", "title"]
    assert len(df) == 12
    for j, q in enumerate(queries):
        g = df[df["query"] == q].sort_values("rank")
        assert g["item"].tolist() == exact_ids[j].tolist()
        np.testing.assert_allclose(g["score"].to_numpy(), exact_scores[j], rtol=1e-5, atol=1e-6)
    assert df["title"].str.startswith("topic").all()

    out_json = tmp_path / "rel.json"
    assert main(["related", "--run", str(run), "--items", str(csv_in), "--k", "4", "--output", str(out_json)]) == 0
    res = json.loads(out_json.read_text())
    assert [r["query"] for r in res] == queries
    assert [x["item"] for x in res[1]["related"]] == exact_ids[1].tolist()
    assert res[0]["title"].startswith("topic")

    # default: CSV on stdout
    capsys.readouterr()
    assert main(["related", "--run", str(run), "--items", str(plain), "--k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "query,rank,item,score,title" and len(lines) == 7


def test_related_unknown_ids_are_named(tiny, capsys):
    run = tiny["run"]
    _, ids = run_arrays(run)
    rc = main(["related", "--run", str(run), "--item", str(ids[0]), "--item", "999999", "--item", "abc"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "999999" in err and "abc" in err and "unknown item" in err


def test_related_items_file_missing_column(tiny, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("pin,score\n1,0.5\n")
    assert main(["related", "--run", str(tiny["run"]), "--items", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "'item'" in err


def test_related_without_features_file_omits_titles(tiny, tmp_path, capsys):
    run = copy_run(tiny, tmp_path)
    meta = json.loads((run / "run.json").read_text())
    meta["item_features"] = str(tmp_path / "gone.csv")
    (run / "run.json").write_text(json.dumps(meta))
    _, ids = run_arrays(run)
    out_csv = tmp_path / "r.csv"
    assert main(["related", "--run", str(run), "--item", str(ids[1]), "--k", "3", "--output", str(out_csv)]) == 0
    df = pd.read_csv(out_csv)
    assert list(df.columns) == ["query", "rank", "item", "score"] and len(df) == 3


def test_not_a_run_directory(tmp_path, capsys):
    empty = tmp_path / "nothing"
    empty.mkdir()
    for argv in (["index", "--run", str(empty)],
                 ["related", "--run", str(empty), "--item", "1"],
                 ["evaluate", "--run", str(empty), "--test", str(tmp_path / "t.csv")],
                 ["embed", "--run", str(empty), "--interactions", str(tmp_path / "i.csv"),
                  "--out", str(tmp_path / "e")]):
        assert main(argv) == 2, argv
        assert "not a pinsage run" in capsys.readouterr().err
    assert main(["index", "--run", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- embed
def test_embed_unchanged_graph_reproduces_the_run(tiny, tmp_path):
    run, root = tiny["run"], tiny["root"]
    out = tmp_path / "e"
    assert main(["embed", "--run", str(run), "--interactions", str(root / "train.csv"), "--out", str(out)]) == 0
    emb, ids = run_arrays(run)
    new_emb, new_ids = run_arrays(out)
    assert new_ids.tolist() == ids.tolist()
    np.testing.assert_allclose(new_emb, emb, rtol=1e-4, atol=1e-5)
    assert json.loads((out / "run.json").read_text())["num_new_items"] == 0
    # the output is one unit with checksums, and a run directory for `pinsage index`
    assert set(RunDir(out).meta()["checksums"]) == {"item_embeddings.npy", "item_ids.npy"}
    assert main(["index", "--run", str(out)]) == 0


def test_embed_output_is_a_directory_written_once(tiny, tmp_path, capsys):
    run, root = tiny["run"], tiny["root"]
    base = ["embed", "--run", str(run), "--interactions", str(root / "train.csv"), "--out"]
    assert main(base + [str(tmp_path / "e.npy")]) == 2  # the old two-file form names the new one
    assert "writes a directory" in capsys.readouterr().err and not (tmp_path / "e.npy").exists()
    out = tmp_path / "e"
    assert main(base + [str(out)]) == 0
    assert main(base + [str(out)]) == 2 and "--overwrite" in capsys.readouterr().err
    assert main(base + [str(out), "--overwrite"]) == 0
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    assert main(base + [str(other), "--overwrite"]) == 2  # never replaces a directory it did not write
    assert (other / "keep.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries left


def test_embed_new_items_land_near_their_topic(tiny, tmp_path):
    run, root, topic, new_pins = tiny["run"], tiny["root"], tiny["topic"], tiny["new_pins"]
    out = tmp_path / "e"
    assert main(["embed", "--run", str(run), "--interactions", str(root / "changed.csv"),
                 "--item-features", str(root / "features_all.csv"), "--item-key", "pin",
                 "--out", str(out)]) == 0
    z, ids = run_arrays(out)
    assert json.loads((out / "run.json").read_text())["num_new_items"] == len(new_pins)
    assert z.shape == (len(ids), 64) and z.dtype == np.float32 and np.isfinite(z).all()
    _, train_ids = run_arrays(run)
    assert set(new_pins.tolist()) <= set(ids.tolist())
    assert not set(new_pins.tolist()) & set(train_ids.tolist())

    index = ItemIndex.build(z, ids, kind="exact")
    nbrs, _ = index.related(new_pins, k=5)
    same = topic[nbrs.astype(np.int64)] == topic[new_pins][:, None]
    assert same.mean() > 0.5, same.mean()  # chance is 0.25
    assert (same.mean(axis=1) > 0.5).mean() >= 0.5


def test_embed_missing_column(tiny, tmp_path, capsys):
    rc = main(["embed", "--run", str(tiny["run"]), "--interactions", str(tiny["root"] / "train.csv"),
               "--user-col", "user", "--out", str(tmp_path / "e")])
    assert rc == 2
    assert "'user'" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


# --------------------------------------------------------------------------------------------- evaluate
def test_evaluate_matches_the_library(tiny, tmp_path, capsys):
    run, root, split = tiny["run"], tiny["root"], tiny["split"]
    emb, ids = run_arrays(run)
    expected = evaluate_embeddings(emb, split, item_ids=ids, k=10)

    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--test", str(root / "test.csv"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    for key in ("HR@10", "NDCG@10", "MRR", "n_evaluated", "n_skipped"):
        assert got[key] == pytest.approx(expected[key]), key
    assert got["n_evaluated"] > 100

    assert main(["evaluate", "--run", str(run), "--test", str(root / "test.csv"), "--k", "5"]) == 0
    out = capsys.readouterr().out
    assert "HR@5" in out and "NDCG@5" in out and "MRR" in out

    # without a user column only the query is excluded: the user's other items may outrank the target
    no_user = tmp_path / "t.csv"
    split.test[["query", "target"]].to_csv(no_user, index=False)
    assert main(["evaluate", "--run", str(run), "--test", str(no_user), "--json"]) == 0
    loose = json.loads(capsys.readouterr().out)
    assert loose["n_evaluated"] == got["n_evaluated"] and loose["mean_rank"] >= got["mean_rank"]


def test_evaluate_missing_columns(tiny, tmp_path, capsys):
    bad = tmp_path / "t.csv"
    pd.DataFrame({"user": ["b"], "q": [1], "target": [2]}).to_csv(bad, index=False)
    assert main(["evaluate", "--run", str(tiny["run"]), "--test", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "t.csv" in err and "query" in err


# --------------------------------------------------------------------------------------------- embed --as-of
def test_embed_as_of_newest_time_is_the_plain_embedding_and_earlier_drops_later_rows(tiny, tmp_path, capsys):
    run, root = tiny["run"], tiny["root"]
    plain, at_newest, earlier = tmp_path / "plain", tmp_path / "newest", tmp_path / "earlier"
    assert main(["embed", "--run", str(run), "--interactions", str(root / "changed.csv"), "--out", str(plain)]) == 0
    changed = pd.read_csv(root / "changed.csv")
    assert main(["embed", "--run", str(run), "--interactions", str(root / "changed.csv"), "--out", str(at_newest),
                 "--as-of", str(int(changed["time"].max()))]) == 0
    emb, ids = run_arrays(plain)
    emb_n, ids_n = run_arrays(at_newest)
    assert ids_n.tolist() == ids.tolist()
    np.testing.assert_array_equal(emb_n, emb)
    cut = int(np.quantile(changed["time"], 0.5))
    assert main(["embed", "--run", str(run), "--interactions", str(root / "changed.csv"), "--out", str(earlier),
                 "--as-of", str(cut)]) == 0
    emb_e, ids_e = run_arrays(earlier)
    seen_by_cut = set(changed.loc[changed["time"] <= cut, "pin"].tolist())
    assert set(ids_e.tolist()) == seen_by_cut and len(seen_by_cut) < len(ids)
    meta = json.loads((earlier / "run.json").read_text())
    assert meta["as_of"] == str(cut) and meta["num_edges"] < json.loads((plain / "run.json").read_text())["num_edges"]
    # refused: a date for a numeric time column, a time before every row
    capsys.readouterr()
    assert main(["embed", "--run", str(run), "--interactions", str(root / "changed.csv"), "--out",
                 str(tmp_path / "x"), "--as-of", "2024-05-01"]) == 2
    assert "holds numbers" in capsys.readouterr().err
    assert main(["embed", "--run", str(run), "--interactions", str(root / "changed.csv"), "--out",
                 str(tmp_path / "y"), "--as-of", str(int(changed["time"].min()) - 1)]) == 2
    assert "no interaction" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_rows_as_of_reads_dates_as_the_graph_does():
    from pinsage import InputError
    from pinsage.graph.as_of import rows_as_of

    df = pd.DataFrame({"t": ["2024-01-01", "2024-03-01T10:00:00Z", "2024-06-01"]})
    assert rows_as_of(df, "t", "2024-03-01T10:00:00Z").tolist() == [True, True, False]
    assert rows_as_of(df, "t", "2024-12-31").tolist() == [True, True, True]
    with pytest.raises(InputError, match="holds dates"):
        rows_as_of(df, "t", 5)
    with pytest.raises(InputError, match="needs the time column"):
        rows_as_of(df, "when", "2024-01-01")
