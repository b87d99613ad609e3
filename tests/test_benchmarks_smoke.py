"""The scale benchmarks run end to end on a tiny graph (so they cannot rot), and ``embed_all`` works
out of core: memory-mapped features in, a memory-mapped output, per-layer tables in scratch files."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pinsage.inference import embed_all
from pinsage.sampling.blocks import Neighborhoods
from pinsage.nn.model import PinSage

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_train_benchmark_runs(tmp_path):
    out = tmp_path / "train.json"
    rc = _load("train").main(["--sizes", "XS", "--workers", "0", "--steps", "4", "--warmup-steps", "2",
                              "--num-walks", "20", "--num-neighbors", "5", "--batch-size", "64",
                              "--threads", "1", "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    (row,) = res["rows"]
    assert row["graph"] == "XS" and row["workers"] == 0 and row["runs"][0]["steps_measured"] == 4
    assert row["pairs_per_s"] > 0 and 0 <= row["data_wait_share"] <= 1


def test_inference_benchmark_runs(tmp_path):
    out = tmp_path / "inference.json"
    rc = _load("inference").main(["--sizes", "XS", "--sample", "200", "--repeats", "1", "--threads", "1",
                                  "--out-memmap", str(tmp_path), "--out", str(out)])
    assert rc == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["embed_all_items_per_s"] > 0 and row["embed_sampled_items_per_s"] > 0
    assert row["max_abs_diff"] < 1e-4  # both methods compute the same embeddings


def test_train_benchmark_cli_rss_mode_runs(tmp_path):
    """``--cli-rss`` runs the real ``pinsage train`` in a child process and reads its peak memory."""
    out = tmp_path / "rss.json"
    rc = _load("train").main(["--sizes", "XS", "--cli-rss", "--cli-epochs", "1", "--cli-pairs", "512",
                              "--content-dim", "2", "--cli-set", "sampler.num_walks=20",
                              "--cli-set", "train.num_workers=0", "--workdir", str(tmp_path), "--out", str(out)])
    assert rc == 0
    (row,) = json.loads(out.read_text())["cli_rss"]
    assert row["peak_rss_gib"] > 0 and row["embeddings_shape"][1] == 64


def test_hard_negatives_benchmark_runs(tmp_path):
    out = tmp_path / "hn.json"
    assert _load("hard_negatives").main(["--sizes", "XS", "--queries", "16", "--repeats", "1",
                                         "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["graph"] == "XS" and row["batch_s"]["closure"] > 0 and row["batch_s"]["walks"] > 0
    for summary in row["exact_rank"].values():
        assert 0 <= summary["in_window"] <= 1 and summary["rank_q10"] <= summary["rank_median"] <= summary["rank_q90"]


def test_conv_benchmark_runs(tmp_path):
    out = tmp_path / "conv.json"
    assert _load("conv").main(["--scale", "0.005", "--repeats", "1", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {r["impl"] for r in rows} >= {"library (CSR)", "sparse.mm COO", "index_add"}


def test_embed_all_out_of_core(tmp_path):
    """Memory-mapped features, output and scratch tables give the in-memory result, and the scratch
    files are removed."""
    rng = np.random.default_rng(0)
    n, f = 50, 6
    counts = rng.integers(0, 5, n)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    idx = rng.integers(0, n, indptr[-1])
    w = rng.random(indptr[-1]).astype(np.float32)
    nb = Neighborhoods(indptr, idx, w)
    np.save(tmp_path / "feats.npy", rng.standard_normal((n, f)).astype(np.float32))
    feats = np.load(tmp_path / "feats.npy", mmap_mode="r")
    torch.manual_seed(0)
    model = PinSage(n, feature_dim=f, id_dim=4, hidden_channels=16, out_channels=8, num_layers=2)
    want = embed_all(model, nb, np.asarray(feats), chunk_size=7)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = np.lib.format.open_memmap(tmp_path / "emb.npy", mode="w+", dtype=np.float32, shape=(n, 8))
    got = embed_all(model, nb, feats, chunk_size=7, out=out, scratch_dir=scratch)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    out.flush()
    np.testing.assert_allclose(np.load(tmp_path / "emb.npy"), want.numpy(), atol=1e-6)
    assert list(scratch.iterdir()) == []
    # an in-memory output array works too, and a wrong shape is refused
    buf = np.empty((n, 8), dtype=np.float32)
    embed_all(model, nb, feats, out=buf)
    np.testing.assert_allclose(buf, want.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="out must be"):
        embed_all(model, nb, feats, out=np.empty((n, 7), dtype=np.float32))


# ------------------------------------------------------------------ sparse id-embedding gradients
def _tiny(**kw):
    from pinsage.config import PinSageConfig

    base = dict(train__epochs=2, train__pairs_per_epoch=3000, train__batch_size=256, train__easy_negatives=64,
                train__num_workers=0, train__warmup_steps=0, train__final_lr_ratio=1.0, sampler__num_walks=30)
    return PinSageConfig().override(**{**base, **kw})


def test_sparse_id_gradients_train_and_resume(tmp_path):
    """From ``model.sparse_id_min_items`` items on, the id table gets sparse gradients and
    SparseAdam; training works, small catalogues stay dense, and a resumed run equals an
    uninterrupted one."""
    from pinsage.datasets import make_pinboard
    from pinsage.estimator import PinSageEmbedder
    from pinsage.train.trainer import DenseSparseAdam

    data = make_pinboard(n_topics=4, pins_per_topic=25, n_boards=120, seed=0)
    fit = dict(group_col="board", item_col="pin", time_col="time")
    dense = PinSageEmbedder(_tiny(), progress=False).fit(data.interactions, **fit)
    assert not dense.model_.id_embedding.sparse and isinstance(dense.trainer_.optimizer, torch.optim.Adam)
    full = PinSageEmbedder(_tiny(model__sparse_id_min_items=0), progress=False).fit(data.interactions, **fit)
    assert full.model_.id_embedding.sparse and isinstance(full.trainer_.optimizer, DenseSparseAdam)
    z = full.item_embeddings_
    assert np.isfinite(z).all() and z.shape == dense.item_embeddings_.shape
    assert all(np.isfinite(h["epoch_loss"]) for h in full.history_)
    PinSageEmbedder(_tiny(model__sparse_id_min_items=0, train__epochs=1), progress=False).fit(
        data.interactions, work_dir=tmp_path, **fit)
    resumed = PinSageEmbedder(_tiny(model__sparse_id_min_items=0), progress=False).fit(
        data.interactions, work_dir=tmp_path, resume=True, **fit)
    np.testing.assert_allclose(resumed.item_embeddings_, z, atol=1e-6)


def test_clip_grad_norm_matches_torch_on_sparse_gradients():
    from pinsage.train.trainer import clip_grad_norm

    torch.manual_seed(0)
    grads = {}
    for sparse in (False, True):
        emb = torch.nn.Embedding(20, 4, sparse=sparse)
        torch.nn.init.constant_(emb.weight, 0.5)
        lin = torch.nn.Linear(4, 1)
        torch.nn.init.constant_(lin.weight, 1.0)
        torch.nn.init.constant_(lin.bias, 0.1)
        lin(emb(torch.tensor([1, 3, 3, 7]))).pow(2).sum().backward()
        total = clip_grad_norm(list(emb.parameters()) + list(lin.parameters()), 0.1)
        g = emb.weight.grad.to_dense() if sparse else emb.weight.grad
        grads[sparse] = (float(total), g.clone(), lin.weight.grad.clone())
    assert grads[True][0] == pytest.approx(grads[False][0], rel=1e-5)
    torch.testing.assert_close(grads[True][1], grads[False][1])
    torch.testing.assert_close(grads[True][2], grads[False][2])


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_index_benchmark_runs(tmp_path, metric):
    out = tmp_path / "index.json"
    assert _load("index").main(["--sizes", "3000x8", "--dists", "clustered", "--queries", "50",
                                "--repeats", "1", "--metric", metric, "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {r["kind"] for r in rows} == {"exact", "hnsw", "ivfpq"} and {r["metric"] for r in rows} == {metric}
    assert all(r["recall"] >= 0.95 for r in rows if r["setting"] != "not reached")


def test_quality_benchmark_runs_on_a_small_gowalla_format_file(tmp_path):
    """The quality harness end to end: tuning on validation, PinSage with the defaults, the bootstrap."""
    rng = np.random.default_rng(0)
    data = tmp_path / "gw"
    data.mkdir()
    lines = []
    for u in range(60):
        cluster = u % 4
        items = sorted(set((cluster * 15 + rng.integers(0, 15, 8)).tolist() + rng.integers(0, 60, 2).tolist()))
        lines.append(" ".join(map(str, [u, *items])))
    (data / "train.txt").write_text("\n".join(lines[:50]) + "\n")
    (data / "test.txt").write_text("\n".join(lines[50:]) + "\n")
    out = tmp_path / "q.json"
    rc = _load("quality").main(["--dataset", "gowalla-3k", "--data", str(data), "--seeds", "0", "--bootstrap", "200",
                                "--work", str(tmp_path / "work"), "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    methods = [r["method"] for r in res["rows"]]
    assert "RP3beta" in methods and any(m.startswith("pinsage (defaults), mean") for m in methods)
    assert {c["metric"] for c in res["comparisons"]} == {"HR@10", "NDCG@10"}
    assert all(c["low"] <= c["diff"] <= c["high"] for c in res["comparisons"])
    assert res["tuning"]["rp3beta"]["params"]["alpha"] in (0.1, 0.25, 0.5, 0.75, 1.0)
