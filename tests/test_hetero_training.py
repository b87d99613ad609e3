"""Heterogeneous training end to end (issue 15): the relation settings, the exact mixed neighbourhoods,
``PinSageEmbedder.fit`` on several relations (merged and per relation), the run directory, and
``pinsage train`` / ``pinsage embed`` with ``--interactions FILE:RELATION``."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from pinsage import InputError, PinSageConfig, PinSageEmbedder
from pinsage.cli import main as cli_main
from pinsage.config import relation_settings
from pinsage.graph import HeteroGraph
from pinsage.inference import embed_all
from pinsage.nn.model import PinSage
from pinsage.sampling import Neighborhoods, build_blocks, build_relational_blocks, exact_neighborhoods
from pinsage.sampling.exact import exact_mixed_neighborhoods
from pinsage.sampling.relations import merge_tables
from pinsage.train.data import TrainingData

from _hetero_walks import exact_mixed_visits, relation_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(train__epochs=2, sampler__num_walks=20, train__pairs_per_epoch=1024, train__batch_size=128,
            train__easy_negatives=50, model__hidden_channels=16, model__out_channels=8, model__id_dim=8,
            model__spectral_dim=4, train__num_workers=0)


def tables(seed=0, n_users=30, n_items=40, n_rows=200):
    rng = np.random.default_rng(seed)
    saves = pd.DataFrame({"board": rng.integers(0, n_users, n_rows), "pin": rng.integers(0, n_items, n_rows),
                          "t": rng.integers(0, 1000, n_rows)})
    tags = pd.DataFrame({"tag": [f"t{k}" for k in rng.integers(0, 6, 60)], "item": rng.integers(0, n_items, 60)})
    return saves, tags


def fit(frames, cfg=None, **kw):
    cfg = (cfg or PinSageConfig()).override(**FAST)
    return PinSageEmbedder(cfg, progress=False).fit(frames, **kw)


# ------------------------------------------------------------------------------------------------ settings
def test_relation_settings_validate_and_default():
    cfg = PinSageConfig()
    probs, pos = relation_settings(cfg, ["a", "b"])
    assert probs == {"a": 0.5, "b": 0.5} and pos == {"a": 1.0, "b": 0.0}  # defaults: alike; the first relation
    cfg = PinSageConfig.from_dict({"sampler": {"relation_probs": {"a": 3, "b": 1}},
                                   "train": {"positive_relations": ["a", "b"]}})
    assert cfg.train.positive_relations == {"a": 1.0, "b": 1.0}
    probs, pos = relation_settings(cfg, ["a", "b", "c"])
    assert probs == {"a": 0.75, "b": 0.25, "c": 0.0} and pos == {"a": 0.5, "b": 0.5, "c": 0.0}
    with pytest.raises(InputError, match=r"sampler.relation_probs names unknown relation\(s\) \['x'\]"):
        relation_settings(PinSageConfig().override(sampler__relation_probs={"x": 1.0}), ["a", "b"])
    with pytest.raises(InputError, match="train.positive_relations names unknown"):
        relation_settings(PinSageConfig().override(train__positive_relations={"x": 1.0}), ["a"])
    for bad, match in (({"a": -1}, r"relation_probs\['a'\] must be a finite number >= 0"),
                       ({"a": 0, "b": 0}, "gives every relation 0"), ("a", "must be a mapping"),
                       ({"a": float("nan")}, "finite")):
        with pytest.raises(InputError, match=match):
            PinSageConfig.from_dict({"sampler": {"relation_probs": bad}})
    with pytest.raises(InputError, match=r"positive_relations\['a'\] must be a finite number > 0"):
        PinSageConfig.from_dict({"train": {"positive_relations": {"a": 0}}})
    with pytest.raises(InputError, match="model.relation_combine must be one of"):
        PinSageConfig.from_dict({"model": {"relation_combine": "max"}})
    cfg = PinSageConfig().override(sampler__relation_probs={"a": 0.5}, sampler__merge_relations=False)
    assert PinSageConfig.from_dict(cfg.to_dict()) == cfg


# ------------------------------------------------------------------------------------ exact neighbourhoods
@pytest.mark.parametrize("probs,L,r", [((0.7, 0.3), 3, 0.5), ((0.2, 0.8), 2, 0.0)])
def test_exact_mixed_neighborhoods_are_the_expectation(probs, L, r):
    saves, tags = tables()
    g = HeteroGraph.from_pandas({"save": saves, "tag": tags}, other_col={"save": "board", "tag": "tag"},
                                item_col={"save": "pin", "tag": "item"})
    As = [relation_weights(g, n, False) for n in g.relations]
    mix = dict(zip(g.relations, probs))
    merged = exact_mixed_neighborhoods(g, mix, L, r, num_neighbors=g.num_items)
    per = exact_mixed_neighborhoods(g, mix, L, r, num_neighbors=g.num_items, merge=False)
    for s in (0, 7, 19):
        want, want_per = exact_mixed_visits(As, np.array(probs), s, L, r)
        got = np.zeros(g.num_items)
        lo, hi = merged.indptr[s], merged.indptr[s + 1]
        got[merged.indices[lo:hi]] = merged.weights[lo:hi]
        np.testing.assert_allclose(got, want / want.sum(), atol=1e-5)
        for k, name in enumerate(g.relations):
            t = per[name]
            got = np.zeros(g.num_items)
            got[t.indices[t.indptr[s]:t.indptr[s + 1]]] = t.weights[t.indptr[s]:t.indptr[s + 1]]
            np.testing.assert_allclose(got, want_per[k] / max(want_per[k].sum(), 1e-30), atol=1e-5)
    # one relation of positive probability: the single-relation exact neighbourhoods
    one = exact_mixed_neighborhoods(g, {"save": 1.0}, L, r, num_neighbors=10)
    ref = exact_neighborhoods(g.relation("save"), L, r, num_neighbors=10)
    np.testing.assert_array_equal(one.indptr, ref.indptr)
    np.testing.assert_array_equal(one.indices, ref.indices)
    np.testing.assert_allclose(one.weights, ref.weights, atol=1e-6)


def test_merge_tables_rows_sum_to_one():
    saves, tags = tables()
    g = HeteroGraph.from_pandas({"save": saves, "tag": tags}, other_col={"save": "board", "tag": "tag"},
                                item_col={"save": "pin", "tag": "item"})
    per = exact_mixed_neighborhoods(g, None, 2, 0.5, num_neighbors=5, merge=False)
    m = merge_tables(per)
    sums = np.add.reduceat(m.weights, m.indptr[:-1][np.diff(m.indptr) > 0])
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    assert m.nnz >= max(t.nnz for t in per.values())
    assert (np.diff(m.weights[m.indptr[3]:m.indptr[4]]) <= 1e-7).all()  # by decreasing weight


# -------------------------------------------------------------------------------------------- the model
def test_one_relation_model_is_the_homogeneous_model():
    nb = Neighborhoods(np.array([0, 2, 3, 5, 6]), np.array([1, 2, 0, 0, 3, 2]),
                       np.array([0.5, 0.5, 1, 0.3, 0.7, 1], dtype=np.float32))
    torch.manual_seed(5)
    plain = PinSage(4, id_dim=6, hidden_channels=8, out_channels=5, num_layers=2)
    rel = PinSage(4, id_dim=6, hidden_channels=8, out_channels=5, num_layers=2, relations=["r"],
                  relation_combine="mean")
    state = {(k.replace("convs.0.", "convs.0.convs.0.", 1).replace("convs.1.", "convs.1.convs.0.", 1)
              if k.startswith("convs.") else k): v for k, v in plain.state_dict().items()}
    rel.load_state_dict(state)   # the same weights, relation r's convolution holding the plain layer's
    seeds = torch.tensor([0, 1, 2, 3])
    a = plain(build_blocks(seeds, nb, 2))
    b = rel(build_relational_blocks(seeds, {"r": nb}, 2))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)   # same weights, same outputs
    torch.testing.assert_close(embed_all(rel, {"r": nb}), a, atol=1e-6, rtol=1e-5)
    cfg = rel.get_config()
    assert cfg["relations"] == ["r"] and "relations" not in plain.get_config()


@pytest.mark.parametrize("combine", ["sum", "attention"])
def test_layerwise_inference_equals_the_blocks(combine):
    saves, tags = tables()
    g = HeteroGraph.from_pandas({"save": saves, "tag": tags}, other_col={"save": "board", "tag": "tag"},
                                item_col={"save": "pin", "tag": "item"})
    per = exact_mixed_neighborhoods(g, None, 2, 0.5, num_neighbors=5, merge=False)
    torch.manual_seed(0)
    model = PinSage(g.num_items, id_dim=6, hidden_channels=8, out_channels=5, num_layers=2,
                    relations=list(per), relation_combine=combine).eval()
    seeds = torch.arange(g.num_items)
    with torch.no_grad():
        want = model(build_relational_blocks(seeds, per, 2))
    torch.testing.assert_close(embed_all(model, per, chunk_size=7), want, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------------ fit and runs
def test_one_relation_dict_is_the_single_table_run():
    saves, _ = tables()
    a = fit(saves, group_col="board", item_col="pin", time_col="t")
    b = fit({"save": saves}, group_col="board", item_col="pin", time_col="t")
    np.testing.assert_array_equal(a.item_embeddings_, b.item_embeddings_)
    np.testing.assert_array_equal(a.item_ids_, b.item_ids_)


def test_positive_relation_weights_set_the_draw_shares():
    saves, tags = tables()
    g = HeteroGraph.from_pandas({"save": saves, "tag": tags}, other_col={"save": "board", "tag": "tag"},
                                item_col={"save": "pin", "tag": "item"})
    nb = exact_mixed_neighborhoods(g, None, 2, 0.5, num_neighbors=5)
    cfg = PinSageConfig().override(train__hard_negatives_max=0).train
    data = TrainingData.build(g.merged_graph(), cfg, np.random.default_rng(0), nb,
                              pair_graphs={"save": (g.relation("save"), 0.75), "tag": (g.relation("tag"), 0.25)})
    p = data.balanced_draw.pair_probabilities()
    n_save = len(TrainingData.build(g.relation("save"), cfg, np.random.default_rng(0), nb).pairs)
    assert len(data.pairs) > n_save
    assert p[:n_save].sum() == pytest.approx(0.75) and p[n_save:].sum() == pytest.approx(0.25)


@pytest.mark.parametrize("merge,combine", [(True, "mean"), (False, "attention")])
def test_fit_on_several_relations_saves_and_loads(tmp_path, merge, combine):
    saves, tags = tables()
    feats = pd.DataFrame({"pin": list(range(41)), "size": np.arange(41.0)})  # item 40: catalogue only
    cfg = PinSageConfig().override(sampler__merge_relations=merge, model__relation_combine=combine,
                                   sampler__relation_probs={"save": 0.7, "tag": 0.3})
    m = fit({"save": saves, "tag": tags}, cfg, group_col={"save": "board", "tag": "tag"},
            item_col={"save": "pin", "tag": "item"}, time_col={"save": "t"}, item_features=feats, item_key="pin")
    assert m.hetero_graph_.relations == ("save", "tag")
    assert isinstance(m.neighborhoods_, dict) != merge
    assert (m.model_.relations is None) == merge
    assert len(m.item_ids_) == 41 and m.item_ids_[-1] == 40 and list(m.catalogue_ids_) == [40]
    assert m.neighborhood_method_ == "exact"
    run = m.save(tmp_path / "run")
    assert (tmp_path / "run" / "graph" / "hetero.json").exists()
    back = PinSageEmbedder.load(tmp_path / "run")
    assert isinstance(back.hetero_graph_, HeteroGraph) and back.hetero_graph_.relations == ("save", "tag")
    np.testing.assert_allclose(back.embed(), m.item_embeddings_[:40], atol=1e-5)
    assert run.meta()["relations"]["tag"]["step_probability"] == pytest.approx(0.3)


def test_fit_refuses_unknown_relation_names():
    saves, tags = tables()
    cfg = PinSageConfig().override(train__positive_relations={"click": 1.0})
    with pytest.raises(InputError, match=r"train.positive_relations names unknown relation\(s\) \['click'\]"):
        fit({"save": saves, "tag": tags}, cfg, group_col={"save": "board", "tag": "tag"},
            item_col={"save": "pin", "tag": "item"})


# ------------------------------------------------------------------------------------------ command line
def _write(tmp_path):
    saves, tags = tables()
    saves.to_csv(tmp_path / "saves.csv", index=False)
    tags.to_csv(tmp_path / "tags.csv", index=False)
    (tmp_path / "cfg.yaml").write_text(
        "train: {epochs: 2, pairs_per_epoch: 1024, batch_size: 128, easy_negatives: 50, num_workers: 0}\n"
        "model: {hidden_channels: 16, out_channels: 8, id_dim: 8, spectral_dim: 4}\n"
        "sampler: {num_walks: 20, merge_relations: false, relation_probs: {save: 0.8, tag: 0.2}}\n")
    return saves, tags


def test_cli_train_and_embed_a_changed_heterogeneous_graph(tmp_path):
    saves, tags = _write(tmp_path)
    base = ["train", "--interactions", f"{tmp_path}/saves.csv:save", "--interactions", f"{tmp_path}/tags.csv:tag",
            "--user-col", "board", "--user-col", "tag=tag", "--item-col", "pin", "--item-col", "tag=item",
            "--time-col", "t", "--config", str(tmp_path / "cfg.yaml"), "-q"]
    assert cli_main(base + ["--out", str(tmp_path / "run")]) == 0
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["time_col"] == {"save": "t", "tag": None} and meta["user_col"]["tag"] == "tag"
    # embed the training files: the run's embeddings
    emb = ["embed", "--run", str(tmp_path / "run"), "--interactions", f"{tmp_path}/saves.csv:save",
           "--interactions", f"{tmp_path}/tags.csv:tag", "-q"]
    assert cli_main(emb + ["--out", str(tmp_path / "same")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "same" / "item_embeddings.npy"),
                               np.load(tmp_path / "run" / "item_embeddings.npy"), atol=1e-5)
    # a changed graph: a new item 99 with saves and a tag, more edges
    saves2 = pd.concat([saves, pd.DataFrame({"board": [0, 1, 2], "pin": [99, 99, 3], "t": [5, 6, 7]})])
    tags2 = pd.concat([tags, pd.DataFrame({"tag": ["t0"], "item": [99]})])
    saves2.to_csv(tmp_path / "saves2.csv", index=False)
    tags2.to_csv(tmp_path / "tags2.csv", index=False)
    assert cli_main(["embed", "--run", str(tmp_path / "run"), "--interactions", f"{tmp_path}/saves2.csv:save",
                     "--interactions", f"{tmp_path}/tags2.csv:tag", "-q", "--out", str(tmp_path / "new")]) == 0
    ids = np.load(tmp_path / "new" / "item_ids.npy")
    z = np.load(tmp_path / "new" / "item_embeddings.npy")
    assert 99 in ids.tolist() and z.shape == (41, 8) and np.isfinite(z).all()
    assert json.loads((tmp_path / "new" / "run.json").read_text())["num_new_items"] == 1


@pytest.mark.parametrize("extra,match", [
    (["--interactions", "{d}/saves.csv:save", "--interactions", "{d}/tags.csv", "--user-col", "board",
      "--item-col", "pin"], "several relations need a name for every file"),
    (["--interactions", "{d}/saves.csv:save", "--interactions", "{d}/tags.csv:tag", "--user-col", "board",
      "--item-col", "pin", "--user-col", "tags=tag"], r"--user-col tags=tag: no relation 'tags'"),
    (["--interactions", "{d}/saves.csv:save", "--interactions", "{d}/tags.csv:tag", "--user-col", "board",
      "--user-col", "tag=tag", "--item-col", "pin"], r"tags.csv: --item-col column 'pin' not found \(relation 'tag'\)"),
])
def test_cli_errors_name_the_file_and_column(tmp_path, extra, match):
    _write(tmp_path)
    argv = ["train", *[a.format(d=tmp_path) for a in extra], "--out", str(tmp_path / "run"), "-q"]
    with pytest.raises(InputError, match=match):
        from pinsage.cli import build_parser  # noqa: F401  (the parser exists)
        args = build_parser().parse_args(argv)
        args.func(args)


def test_cli_bad_rows_name_file_and_row(tmp_path):
    saves, tags = _write(tmp_path)
    tags.loc[3, "item"] = None
    tags.to_csv(tmp_path / "tags.csv", index=False)
    from pinsage.cli import build_parser

    args = build_parser().parse_args(["train", "--interactions", f"{tmp_path}/saves.csv:save", "--interactions",
                                      f"{tmp_path}/tags.csv:tag", "--user-col", "board", "--user-col", "tag=tag",
                                      "--item-col", "pin", "--item-col", "tag=item", "--out", str(tmp_path / "r")])
    with pytest.raises(InputError, match=r"tags.csv \(relation 'tag'\).*item.*row"):
        args.func(args)
