"""Figures for a PinSage run: training curve, metric-vs-K curves, 2-D embedding map.

Needs the ``plot`` extra (``pip install "pinsage[plot]"``: matplotlib, scikit-learn). Nothing here
is imported by ``import pinsage``; matplotlib is imported on the first call, and when no backend
has been chosen (no ``MPLBACKEND``, no ``matplotlib.use``, pyplot not yet imported) the
non-interactive ``Agg`` backend is selected, so the functions work on headless machines. In a
Jupyter kernel the inline backend is kept.

Every function draws into ``ax`` when one is given, else into a new figure, and returns the
:class:`matplotlib.figure.Figure`. Save it with ``fig.savefig("x.png")``; close figures made in a
loop with ``matplotlib.pyplot.close(fig)``.

* :func:`plot_training_curve`: loss per logged step, mean loss per epoch, learning rate, and the
  share of each epoch's time spent waiting for data, from the ``train_log.jsonl`` that training
  writes (``pinsage train`` puts it in the run directory; :class:`~pinsage.PinSageEmbedder` in its
  ``work_dir``).
* :func:`plot_metric_at_k`: HR@K and NDCG@K against K for one or several methods, from
  :func:`pinsage.evaluation.evaluate_at_ks`.
* :func:`plot_embedding_map`: a t-SNE or PCA map of (a sample of) the item embeddings, coloured
  by a label (a topic, a genre) or a number (log degree).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_training_curve", "plot_metric_at_k", "plot_embedding_map", "read_training_log", "INSTALL_HINT"]

#: what to tell a user whose environment lacks the plotting dependencies
INSTALL_HINT = 'pip install "pinsage[plot]"'

#: at most this many distinct labels get their own colour and legend entry; more are drawn as numbers
MAX_CATEGORIES = 20


def _pyplot():
    """``matplotlib.pyplot``, selecting ``Agg`` first when no backend was chosen."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - exercised through a subprocess in the tests
        raise ImportError(f"pinsage.plot needs matplotlib: {INSTALL_HINT}") from exc
    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        from matplotlib import rcsetup

        if dict.__getitem__(matplotlib.rcParams, "backend") is rcsetup._auto_backend_sentinel:
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure_and_axes(ax: "Axes | None", figsize: tuple[float, float]) -> tuple["Figure", "Axes"]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
    return fig, ax


# ----------------------------------------------------------------------------------- training log
def read_training_log(log: str | os.PathLike | Iterable[Mapping[str, Any]]) -> tuple[list[dict], list[dict]]:
    """Split a training log into ``(step_records, epoch_records)``, each sorted and de-duplicated.

    ``log`` is the path of a ``train_log.jsonl`` file (one JSON object per line), a run directory
    holding one, or the records themselves (e.g. ``PinSageEmbedder.history_``, which holds the
    epoch records only). Step records carry ``loss`` (mean over the logging window), ``lr``,
    ``data_wait_s`` and ``compute_s`` (seconds so far in the epoch); epoch records carry
    ``epoch_loss``, ``hard_negatives``, ``data_wait_s``, ``compute_s`` and ``data_wait_share``.
    A resumed run appends to the log and may repeat steps of the epoch it was interrupted in: the
    last record of each step (each epoch) wins.

    Example:
        >>> steps, epochs = read_training_log([
        ...     {"epoch": 1, "step": 20, "loss": 0.9, "lr": 0.005},
        ...     {"epoch": 1, "step": 25, "epoch_loss": 0.8, "hard_negatives": 0, "data_wait_share": 0.1}])
        >>> [s["step"] for s in steps], [e["epoch"] for e in epochs]
        ([20], [1])
    """
    if isinstance(log, (str, os.PathLike)):
        path = Path(log)
        if path.is_dir():
            path = path / "train_log.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no training log (train_log.jsonl) there")
        records = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}, line {n}: not JSON: {exc}") from exc
    else:
        records = [dict(r) for r in log]
    steps: dict[int, dict] = {}
    epochs: dict[int, dict] = {}
    for r in records:
        if "epoch_loss" in r:
            epochs[int(r["epoch"])] = r
        elif "loss" in r and "step" in r:
            steps[int(r["step"])] = r
    return [steps[k] for k in sorted(steps)], [epochs[k] for k in sorted(epochs)]


def plot_training_curve(log_path_or_records: str | os.PathLike | Iterable[Mapping[str, Any]],
                        ax: "Axes | None" = None, *, wait_ax: "Axes | None" = None,
                        show_lr: bool = True, title: str | None = "Training") -> "Figure":
    """Loss against optimiser step, with per-epoch means and the data-wait share.

    The loss panel shows the logged step losses (a line), each epoch's mean loss (a marker at
    the epoch's last step), and the epoch boundaries labelled with the number of hard negatives
    per pair of that epoch (the curriculum). A log with only epoch records (``history_``) draws
    the epoch means alone.

    Args:
        log_path_or_records: ``train_log.jsonl`` as written by training (see
            :func:`read_training_log`): a path, a run directory or an iterable of dicts.
        ax: matplotlib Axes where to draw the loss (optional). When None, a new figure with two
            panels is made: the loss (left) and the share of each epoch's wall time spent waiting
            for the next batch (right; near zero when the producers keep up).
        wait_ax: matplotlib Axes where to draw the data-wait bars when ``ax`` is given (optional;
            otherwise they are left out).
        show_lr: Draw the learning rate (warm-up then decay) on a second y axis of the loss panel.
        title: Title of the loss panel (optional).

    Returns:
        The matplotlib :class:`~matplotlib.figure.Figure`.

    Raises:
        FileNotFoundError: a path with no ``train_log.jsonl`` (see :func:`read_training_log`).
        ValueError: the training log holds no step or epoch records, or a line of it is not JSON.
    """
    steps, epochs = read_training_log(log_path_or_records)
    if not steps and not epochs:
        raise ValueError("the training log holds no step or epoch records")
    if ax is None:
        plt = _pyplot()
        fig, (ax, wait_ax) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained",
                                          gridspec_kw={"width_ratios": [2.2, 1]})
    else:
        fig = ax.figure
    if steps:
        ax.plot([s["step"] for s in steps], [s["loss"] for s in steps], color="C0", lw=1.2,
                label="loss (logged steps)")
    if epochs:
        ex = [e["step"] for e in epochs]
        ax.plot(ex, [e["epoch_loss"] for e in epochs], "o", color="C3", ms=6, label="epoch mean loss")
        for e in epochs[:-1]:
            ax.axvline(e["step"], color="0.8", lw=0.8, zorder=0)
        for e, start in zip(epochs, [0] + ex[:-1]):
            hard = e.get("hard_negatives")
            if hard is not None:
                ax.annotate(f"e{e['epoch']}: {hard} hard", xy=((start + e["step"]) / 2, 1.0),
                            xycoords=("data", "axes fraction"), ha="center", va="top", fontsize=7,
                            color="0.35")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title, loc="left")
    handles, labels = ax.get_legend_handles_labels()
    if show_lr and steps and all("lr" in s for s in steps):
        ax2 = ax.twinx()
        (line,) = ax2.plot([s["step"] for s in steps], [s["lr"] for s in steps], color="0.55", lw=1, ls="--")
        ax2.set_ylabel("learning rate", color="0.45")
        ax2.tick_params(axis="y", colors="0.45", labelsize=8)
        ax2.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        handles.append(line)
        labels.append("learning rate")
    ax.legend(handles, labels, fontsize=8, loc="upper right", bbox_to_anchor=(1.0, 0.93))
    if wait_ax is not None and epochs:
        share = [e.get("data_wait_share", _share(e)) for e in epochs]
        wait_ax.bar([e["epoch"] for e in epochs], share, color="C2")
        wait_ax.set_xlabel("epoch")
        wait_ax.set_ylabel("share of time waiting for data")
        wait_ax.set_ylim(0, max(0.1, min(1.0, max(share) * 1.25)))
        wait_ax.set_xticks([e["epoch"] for e in epochs])
        wait_ax.set_title("Data wait", loc="left")
    return fig


def _share(epoch_record: Mapping[str, Any]) -> float:
    wait, compute = epoch_record.get("data_wait_s", 0.0), epoch_record.get("compute_s", 0.0)
    return float(wait / max(wait + compute, 1e-9))


# ----------------------------------------------------------------------------------- metric vs K
def plot_metric_at_k(results: "pd.DataFrame | Mapping[str, pd.DataFrame]",
                     metrics: Sequence[str] = ("HR", "NDCG"), ax: "Axes | Sequence[Axes] | None" = None,
                     *, logx: bool = True, title: str | None = None) -> "Figure":
    """HR@K and NDCG@K against K, one line per method.

    Args:
        results: Output of :func:`pinsage.evaluation.evaluate_at_ks` (columns ``k`` and the metric
            names), a DataFrame or a mapping of name -> DataFrame, for one method or several (the
            mapping's keys label the lines). A single frame with a ``method`` column is split by
            it.
        metrics: Columns to draw (a sequence of str), one panel each (default ``HR`` and
            ``NDCG``).
        ax: One axes per metric (an Axes or a sequence of Axes, optional); when None a new figure
            with ``len(metrics)`` panels is made.
        logx: Logarithmic K axis (K usually spans 1 to 100).
        title: Figure title (optional).

    Returns:
        The matplotlib :class:`~matplotlib.figure.Figure`.

    Raises:
        ValueError: ``results`` is empty, or ``ax`` does not hold one axes per metric.
        KeyError: a results frame has no column for one of ``metrics``.

    Example (not run here; ``split`` from :func:`pinsage.evaluate.leave_last_out`)::

        from pinsage.evaluation import EmbeddingScorer, evaluate_at_ks
        curves = {"pinsage": evaluate_at_ks(EmbeddingScorer(emb).score, split, item_ids=ids)}
        plot_metric_at_k(curves).savefig("metric_at_k.png")
    """
    import pandas as pd

    if isinstance(results, pd.DataFrame):
        if "method" in results.columns:
            results = {str(m): g for m, g in results.groupby("method", sort=False)}
        else:
            results = {"": results}
    if not results:
        raise ValueError("no results to plot")
    metrics = list(metrics)
    if ax is None:
        plt = _pyplot()
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), layout="constrained",
                                 squeeze=False)
        axes = list(axes[0])
    else:
        axes = [ax] if not isinstance(ax, (list, tuple, np.ndarray)) else list(np.ravel(ax))
        if len(axes) != len(metrics):
            raise ValueError(f"got {len(axes)} axes for {len(metrics)} metrics")
        fig = axes[0].figure
    for name, frame in results.items():
        frame = frame.sort_values("k")
        for a, metric in zip(axes, metrics):
            if metric not in frame.columns:
                raise KeyError(f"results for {name or 'the method'!r} have no column {metric!r}; "
                               f"columns are {list(frame.columns)}")
            a.plot(frame["k"], frame[metric], marker="o", ms=3.5, label=name or None)
    for a, metric in zip(axes, metrics):
        a.set_xlabel("K")
        a.set_ylabel(f"{metric}@K")
        if logx:
            a.set_xscale("log")
        a.grid(alpha=0.3)
        if any(results):
            a.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------------- embedding map
def plot_embedding_map(embeddings: np.ndarray, labels: Sequence[Any] | np.ndarray | None = None,
                       method: str = "tsne", *, max_points: int = 2000, seed: int = 0,
                       ax: "Axes | None" = None, perplexity: float = 30.0, label_name: str | None = None,
                       title: str | None = None, point_size: float | None = None) -> "Figure":
    """A 2-D map of item embeddings by t-SNE or PCA (scikit-learn), coloured by ``labels``.

    Args:
        embeddings: Item embeddings (e.g. ``item_embeddings.npy``).
        labels: A colour per item (optional): categories (strings, or at most
            :data:`MAX_CATEGORIES` distinct integers: a legend) or numbers (a colour bar), e.g.
            topics or ``log1p(degree)``.
        method: ``"tsne"`` or ``"pca"``: t-SNE (cosine metric, PCA initialisation; inputs wider
            than 50 are first reduced to 50 dimensions by PCA) or a plain 2-component PCA (fast,
            linear).
        max_points: At most this many items are drawn, a uniform random sample (``seed``) when
            there are more: t-SNE costs O(n log n) per iteration.
        seed: Seed of the sample and of t-SNE.
        ax: Axes where to draw (optional); a new figure when None.
        perplexity: t-SNE perplexity (lowered to ``(n - 1) / 3`` for small samples).
        label_name: Legend title or colour-bar label (optional).
        title: Axes title (default: the method and the number of points).
        point_size: Marker size (default: smaller for more points).

    Returns:
        The matplotlib :class:`~matplotlib.figure.Figure`.

    Raises:
        ValueError: ``embeddings`` is not a 2-D array with at least 2 rows, ``method`` is neither
            ``"tsne"`` nor ``"pca"``, or ``labels`` does not have one entry per embedding.

    Shapes:
        - **embeddings:** :math:`(n, d)`.
        - **labels:** :math:`(n,)` *(optional)*.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"embeddings must be a 2-D array with at least 2 rows, got shape {x.shape}")
    if method not in ("tsne", "pca"):
        raise ValueError(f"method must be 'tsne' or 'pca', got {method!r}")
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != len(x):
            raise ValueError(f"labels has {len(labels)} entries for {len(x)} embeddings")
    rows = np.arange(len(x))
    if len(x) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(len(x), max_points, replace=False))
    xy = _project(x[rows], method, seed, perplexity)
    fig, ax = _figure_and_axes(ax, (6.0, 5.2))
    size = point_size if point_size is not None else float(np.clip(3000 / len(rows), 3, 30))
    lab = labels[rows] if labels is not None else None
    if lab is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, color="C0", alpha=0.8, linewidths=0)
    elif _is_categorical(lab):
        cats = list(dict.fromkeys(lab.tolist()))
        try:
            cats = sorted(cats)
        except TypeError:
            pass
        cmap = _pyplot().get_cmap("tab10" if len(cats) <= 10 else "tab20")
        for i, c in enumerate(cats):
            m = lab == c
            ax.scatter(xy[m, 0], xy[m, 1], s=size, color=cmap(i % cmap.N), alpha=0.85, linewidths=0, label=str(c))
        ax.legend(title=label_name, fontsize=7, title_fontsize=8, markerscale=max(1.0, 16 / size) ** 0.5,
                  loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    else:
        sc = ax.scatter(xy[:, 0], xy[:, 1], s=size, c=lab.astype(np.float64), cmap="viridis", alpha=0.85,
                        linewidths=0)
        fig.colorbar(sc, ax=ax, label=label_name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if title is not None else
                 f"{'t-SNE' if method == 'tsne' else 'PCA'} map of {len(rows)} of {len(x)} items", loc="left")
    return fig


def _is_categorical(labels: np.ndarray) -> bool:
    if labels.dtype.kind in "OUSb":
        return True
    return labels.dtype.kind in "iu" and len(np.unique(labels)) <= MAX_CATEGORIES


def _project(x: np.ndarray, method: str, seed: int, perplexity: float) -> np.ndarray:
    """(n, 2) coordinates of the rows of ``x``."""
    try:
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE
    except ImportError as exc:
        raise ImportError(f"plot_embedding_map needs scikit-learn: {INSTALL_HINT}") from exc
    n, d = x.shape
    if method == "pca" or n < 5:
        k = min(2, d, n)
        out = PCA(n_components=k, random_state=seed).fit_transform(x) if k > 0 else np.zeros((n, 0))
        return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    if d > 50:
        x = PCA(n_components=min(50, n), random_state=seed).fit_transform(x)
    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", metric="cosine", random_state=seed)
    return tsne.fit_transform(np.ascontiguousarray(x, dtype=np.float32))
