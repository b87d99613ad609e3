"""Catalogue items without interactions: embedded from their content, included in the outputs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pinsage import InputError, PinSageConfig, PinSageEmbedder
from pinsage.cli import main as cli
from pinsage.datasets import make_pinboard, pinboard_features_frame
from pinsage.features import catalogue_items
from pinsage.graph import InteractionGraph

CFG = dict(train__epochs=2, train__pairs_per_epoch=2000, train__batch_size=128, train__easy_negatives=64,
           train__num_workers=0, train__warmup_steps=5, sampler__num_walks=30, sampler__num_neighbors=10,
           model__spectral_dim=8, model__hidden_channels=32, model__out_channels=16, model__id_dim=16)


@pytest.fixture(scope="module")
def catalogue(one_torch_thread):
    """Pin-board data with every 10th pin taken out of the interactions (still in the features table)."""
    data = make_pinboard(n_topics=4, pins_per_topic=30, n_boards=150, mean_board_size=8.0, seed=3)
    feats = pinboard_features_frame(data)
    cold = feats["pin"].to_numpy()[::10]
    inter = data.interactions[~data.interactions["pin"].isin(cold)]
    cold = np.array(sorted(set(cold) | (set(feats["pin"]) - set(inter["pin"]))))
    return data, inter, feats, cold


def test_catalogue_items_are_embedded_and_listed(catalogue):
    data, inter, feats, cold = catalogue
    est = PinSageEmbedder(PinSageConfig().override(**CFG), progress=False).fit(
        inter, group_col="board", item_col="pin", item_features=feats, item_key="pin")
    n_graph = est.graph_.num_items
    assert sorted(est.catalogue_ids_.tolist()) == cold.tolist()
    assert len(est.item_ids_) == n_graph + len(cold) == len(feats)
    assert est.item_embeddings_.shape == (len(feats), 16) and np.isfinite(est.item_embeddings_).all()
    assert (np.linalg.norm(est.item_embeddings_[n_graph:], axis=1) > 0).all()
    # the trained items' rows are the model's own embeddings of them
    np.testing.assert_allclose(est.item_embeddings_[:n_graph], est.embed(), rtol=1e-5, atol=1e-6)
    # a new item is embedded from its content: its nearest trained items share its topic more than chance
    z = est.item_embeddings_ / np.linalg.norm(est.item_embeddings_, axis=1, keepdims=True)
    topic = dict(zip(data.pins["pin"], data.pins["topic"]))
    warm_topics = np.array([topic[p] for p in est.item_ids_[:n_graph]])
    hits = []
    for row in range(n_graph, len(est.item_ids_)):
        nearest = np.argsort(-(z[:n_graph] @ z[row]))[:5]
        hits.append((warm_topics[nearest] == topic[est.item_ids_[row]]).mean())
    assert np.mean(hits) > 0.4, np.mean(hits)  # chance is about 0.25 (4 topics)
    got = est.transform([cold[0]])
    np.testing.assert_array_equal(got[0], est.item_embeddings_[list(est.item_ids_).index(cold[0])])
    ids, _ = est.similar_items([cold[0]], k=3)
    assert ids.shape == (1, 3) and cold[0] not in ids[0]


def test_catalogue_ids_follow_the_interactions_id_type():
    g = InteractionGraph.from_pandas(pd.DataFrame({"u": [1, 1, 2], "i": [10, 11, 10]}), "u", "i")
    feats = pd.DataFrame({"item": ["10", "11", "12", " 13 "], "x": [1.0, 2.0, 3.0, 4.0]})
    new = catalogue_items(g, feats, "item")
    assert new.tolist() == [12, 13] and new.dtype.kind == "i"
    with pytest.raises(InputError, match="not of the interactions' id type"):
        catalogue_items(g, pd.DataFrame({"item": ["10", "abc"]}), "item")


def test_train_cli_with_a_catalogue(catalogue, tmp_path):
    _, inter, feats, cold = catalogue
    inter.to_csv(tmp_path / "inter.csv", index=False)
    feats.to_csv(tmp_path / "items.csv", index=False)
    cfg = tmp_path / "cfg.yaml"
    import yaml

    nested: dict = {}
    for k, v in CFG.items():
        section, key = k.split("__")
        nested.setdefault(section, {})[key] = v
    cfg.write_text(yaml.safe_dump(nested))
    out = tmp_path / "run"
    assert cli(["train", "--interactions", str(tmp_path / "inter.csv"), "--user-col", "board", "--item-col", "pin",
                "--item-features", str(tmp_path / "items.csv"), "--item-key", "pin", "--config", str(cfg),
                "--out", str(out), "--quiet"]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["num_catalogue_items"] == len(cold) and meta["num_items"] == len(feats)
    ids = np.load(out / "item_ids.npy", allow_pickle=False)
    emb = np.load(out / "item_embeddings.npy")
    assert len(ids) == len(emb) == len(feats) and set(cold) <= set(ids.tolist())
    assert cli(["index", "--run", str(out), "--kind", "exact"]) == 0
    assert cli(["related", "--run", str(out), "--item", str(cold[0]), "--k", "3",
                "--output", str(tmp_path / "rel.json")]) == 0
    rel = json.loads((tmp_path / "rel.json").read_text())
    assert rel[0]["query"] == cold[0] and len(rel[0]["related"]) == 3
    # later the catalogue items get interactions: `pinsage embed` embeds them with the graph
    full = pd.concat([inter, pd.DataFrame({"board": ["board_0000"] * len(cold), "pin": cold, "time": 99})])
    full.to_csv(tmp_path / "full.csv", index=False)
    assert cli(["embed", "--run", str(out), "--interactions", str(tmp_path / "full.csv"),
                "--out", str(tmp_path / "z")]) == 0
    z_ids = np.load(tmp_path / "z" / "item_ids.npy", allow_pickle=False)
    assert set(cold) <= set(z_ids.tolist()) and np.isfinite(np.load(tmp_path / "z" / "item_embeddings.npy")).all()
