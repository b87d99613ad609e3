"""pinsage.plot from a real (tiny) training log, and ``pinsage train --plots``."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from pinsage.cli import main  # noqa: E402
from pinsage.datasets import make_pinboard  # noqa: E402
from pinsage.evaluation import (  # noqa: E402
    EmbeddingScorer, ItemKNN, evaluate_at_ks, evaluate_scores, leave_last_out,
)
from pinsage.plot import (  # noqa: E402
    plot_embedding_map, plot_metric_at_k, plot_training_curve, read_training_log,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = {
    "train": {"epochs": 2, "pairs_per_epoch": 2000, "num_workers": 0, "batch_size": 256,
              "easy_negatives": 100, "log_every": 2},
    "sampler": {"num_walks": 20},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``pinsage train --plots`` on a small pin-board split: the run dir, the split, the pins' topics."""
    import yaml

    root = tmp_path_factory.mktemp("plot")
    data = make_pinboard(n_topics=4, pins_per_topic=30, n_boards=150, seed=0)
    split = leave_last_out(data.interactions, "board", "pin", "time")
    split.train.to_csv(root / "train.csv", index=False)
    (root / "cfg.yaml").write_text(yaml.safe_dump(TINY))
    out = root / "run"
    rc = main(["train", "--interactions", str(root / "train.csv"), "--user-col", "board", "--item-col", "pin",
               "--time-col", "time", "--config", str(root / "cfg.yaml"), "--out", str(out), "--quiet", "--plots"])
    assert rc == 0
    topic = dict(zip(data.pins["pin"], data.topics))
    return {"root": root, "out": out, "split": split, "topic": topic}


def _close(fig):
    import matplotlib.pyplot as plt

    plt.close(fig)


# ------------------------------------------------------------------------------------ train --plots
def test_train_plots_writes_pngs_atomically(run):
    out = run["out"]
    for name in ("training_curve.png", "embedding_map.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    # nothing half-written beside them, and the partial directory was renamed away
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert not (out.parent / ".run.partial").exists()
    # the contract files are still there
    for name in ("item_embeddings.npy", "item_ids.npy", "config.yaml", "train_log.jsonl"):
        assert (out / name).exists()


def test_train_plots_without_matplotlib_is_one_line_error(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "matplotlib" else real(name, *a, **k))
    data = make_pinboard(n_topics=2, pins_per_topic=10, n_boards=20, seed=0)
    data.interactions.to_csv(tmp_path / "i.csv", index=False)
    out = tmp_path / "run"
    rc = main(["train", "--interactions", str(tmp_path / "i.csv"), "--user-col", "board", "--item-col", "pin",
               "--out", str(out), "--quiet", "--plots"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and 'pip install "pinsage[plot]"' in err and "matplotlib" in err
    assert not out.exists() and not (tmp_path / ".run.partial").exists()  # failed before training


def test_train_without_plots_writes_none(tmp_path):
    from pinsage.commands.train import write_plots  # noqa: F401  (importable without running)

    data = make_pinboard(n_topics=2, pins_per_topic=10, n_boards=20, seed=0)
    data.interactions.to_csv(tmp_path / "i.csv", index=False)
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"train": {"epochs": 1, "pairs_per_epoch": 256,
                                                               "num_workers": 0, "batch_size": 128,
                                                               "easy_negatives": 10}}))
    assert main(["train", "--interactions", str(tmp_path / "i.csv"), "--user-col", "board", "--item-col", "pin",
                 "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert not list((tmp_path / "run").glob("*.png"))


# ------------------------------------------------------------------------------------ training curve
def test_read_training_log_from_real_run(run):
    steps, epochs = read_training_log(run["out"])  # the run directory works as well as the file
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert [e["hard_negatives"] for e in epochs] == [0, 1]  # the curriculum
    assert len(steps) >= 4 and all(np.isfinite(s["loss"]) for s in steps)
    assert [s["step"] for s in steps] == sorted({s["step"] for s in steps})
    assert all(0.0 <= e["data_wait_share"] <= 1.0 for e in epochs)


def test_read_training_log_resumed_run_keeps_last_record(tmp_path):
    recs = [{"epoch": 1, "step": 2, "loss": 5.0, "lr": 1.0}, {"epoch": 1, "step": 4, "loss": 4.0, "lr": 1.0},
            {"epoch": 1, "step": 2, "loss": 3.0, "lr": 1.0},  # resumed: epoch 1 again
            {"epoch": 1, "step": 4, "epoch_loss": 3.5, "hard_negatives": 0, "data_wait_s": 0.0, "compute_s": 1.0}]
    path = tmp_path / "train_log.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n\n")
    steps, epochs = read_training_log(path)
    assert [(s["step"], s["loss"]) for s in steps] == [(2, 3.0), (4, 4.0)]
    assert len(epochs) == 1 and epochs[0]["epoch_loss"] == 3.5
    with pytest.raises(FileNotFoundError):
        read_training_log(tmp_path / "missing.jsonl")
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match="line 1"):
        read_training_log(path)


def test_plot_training_curve_from_log(run):
    steps, epochs = read_training_log(run["out"] / "train_log.jsonl")
    fig = plot_training_curve(run["out"] / "train_log.jsonl")
    try:
        loss_ax, wait_ax = fig.axes[0], fig.axes[1]
        lines = {ln.get_label(): ln for ln in loss_ax.get_lines()}
        step_line = lines["loss (logged steps)"]
        assert list(step_line.get_xdata()) == [s["step"] for s in steps]
        np.testing.assert_allclose(step_line.get_ydata(), [s["loss"] for s in steps])
        assert list(lines["epoch mean loss"].get_xdata()) == [e["step"] for e in epochs]
        bars = wait_ax.patches
        assert len(bars) == 2
        np.testing.assert_allclose([b.get_height() for b in bars], [e["data_wait_share"] for e in epochs])
        assert len(fig.axes) == 3  # loss, data wait, and the learning-rate twin axis
        fig.canvas.draw()
    finally:
        _close(fig)


def test_plot_training_curve_into_given_axes_and_from_history(run):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        steps, epochs = read_training_log(run["out"])
        assert plot_training_curve(steps + epochs, ax=ax, show_lr=False) is fig
        assert len(fig.axes) == 1
        # epoch records only (PinSageEmbedder.history_): the epoch means alone
        ax.clear()
        plot_training_curve(epochs, ax=ax)
        assert [ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith("_")] == \
            ["epoch mean loss"]
    finally:
        _close(fig)
    with pytest.raises(ValueError):
        plot_training_curve([])


# ------------------------------------------------------------------------------------ metric at K
def test_evaluate_at_ks_matches_evaluate_scores_and_plots(run):
    split = run["split"]
    emb = np.load(run["out"] / "item_embeddings.npy")
    ids = np.load(run["out"] / "item_ids.npy")
    score = EmbeddingScorer(emb).score
    curve = evaluate_at_ks(score, split, ks=(20, 1, 5, 10), item_ids=ids)
    assert list(curve["k"]) == [1, 5, 10, 20]
    assert (np.diff(curve["HR"]) >= 0).all() and (np.diff(curve["NDCG"]) >= 0).all()
    assert (curve["NDCG"] <= curve["HR"] + 1e-12).all()
    ref = evaluate_scores(score, split, k=10, item_ids=ids)
    row = curve[curve["k"] == 10].iloc[0]
    assert row["HR"] == pytest.approx(ref["HR@10"]) and row["NDCG"] == pytest.approx(ref["NDCG@10"])
    assert row["n_evaluated"] == ref["n_evaluated"] > 0

    knn = ItemKNN().fit(split.train, "board", "pin")
    curves = {"pinsage": curve, "item-kNN": evaluate_at_ks(knn.score, split, ks=(1, 5, 10, 20))}
    fig = plot_metric_at_k(curves, title="tiny")
    try:
        assert len(fig.axes) == 2
        for ax, metric in zip(fig.axes, ("HR", "NDCG")):
            assert ax.get_ylabel() == f"{metric}@K"
            labels = [ln.get_label() for ln in ax.get_lines()]
            assert labels == ["pinsage", "item-kNN"]
            np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), curve[metric])
    finally:
        _close(fig)
    # a long frame with a method column, one metric, into a given axes
    import matplotlib.pyplot as plt
    import pandas as pd

    long = pd.concat([c.assign(method=m) for m, c in curves.items()])
    fig, ax = plt.subplots()
    try:
        plot_metric_at_k(long, metrics=["HR"], ax=ax)
        assert len(ax.get_lines()) == 2
        with pytest.raises(KeyError):
            plot_metric_at_k(curve, metrics=["recall"], ax=ax)
    finally:
        _close(fig)


# ------------------------------------------------------------------------------------ embedding map
def test_plot_embedding_map_topics_and_sampling(run):
    emb = np.load(run["out"] / "item_embeddings.npy")
    ids = np.load(run["out"] / "item_ids.npy")
    topics = np.array([f"topic {run['topic'][i]}" for i in ids])
    fig = plot_embedding_map(emb, topics, method="tsne", label_name="topic")
    try:
        ax = fig.axes[0]
        assert sum(len(c.get_offsets()) for c in ax.collections) == len(emb)
        assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == sorted(set(topics))
        fig.canvas.draw()
    finally:
        _close(fig)
    # PCA, numeric labels (a colour bar), at most max_points drawn
    fig = plot_embedding_map(emb, np.linspace(0, 1, len(emb)), method="pca", max_points=50)
    try:
        assert len(fig.axes) == 2  # the map and its colour bar
        assert len(fig.axes[0].collections[0].get_offsets()) == 50
    finally:
        _close(fig)
    with pytest.raises(ValueError):
        plot_embedding_map(emb, method="umap")
    with pytest.raises(ValueError):
        plot_embedding_map(emb, labels=topics[:3])


def test_tsne_map_separates_planted_topics(run):
    """The t-SNE coordinates keep the topics apart: each point's nearest map neighbour shares its topic."""
    from pinsage.plot import _project

    emb = np.load(run["out"] / "item_embeddings.npy")
    ids = np.load(run["out"] / "item_ids.npy")
    topic = np.array([run["topic"][i] for i in ids])
    xy = _project(emb, "tsne", 0, 30.0)
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (topic[d.argmin(1)] == topic).mean() > 0.8


# ------------------------------------------------------------------------------------ imports, backend
def test_import_pinsage_needs_no_matplotlib_and_plot_picks_agg(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["OMP_NUM_THREADS"] = "1"
    code = (
        "import sys, pinsage, pinsage.plot\n"
        "assert 'matplotlib' not in sys.modules and 'sklearn' not in sys.modules\n"
        "fig = pinsage.plot.plot_training_curve([{'epoch': 1, 'step': 3, 'epoch_loss': 1.0}])\n"
        "import matplotlib\n"
        "print(matplotlib.get_backend().lower())\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "agg"


def test_write_plots_survives_a_failing_figure(tmp_path, caplog):
    """A figure that cannot be drawn (here: no training log) is a warning; the other is still written."""
    from types import SimpleNamespace

    from pinsage.commands.train import write_plots

    rng = np.random.default_rng(0)
    model = SimpleNamespace(item_embeddings_=rng.standard_normal((40, 8)).astype(np.float32),
                            graph_=SimpleNamespace(item_degree=rng.integers(1, 9, 40)),
                            config_=SimpleNamespace(train=SimpleNamespace(seed=0)))
    written = write_plots(model, tmp_path)
    assert [p.name for p in written] == ["embedding_map.png"]
    assert (tmp_path / "embedding_map.png").read_bytes().startswith(PNG_MAGIC)
    assert not (tmp_path / "training_curve.png").exists()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
    warned = [r for r in caplog.records if r.name == "pinsage.commands.train" and r.levelname == "WARNING"]
    assert any("could not write training_curve.png" in r.getMessage() for r in warned), caplog.text
