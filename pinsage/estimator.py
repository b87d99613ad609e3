"""``PinSageEmbedder``: the whole pipeline behind one scikit-learn-like object.

interactions -> :class:`InteractionGraph` -> item features -> importance neighbourhoods ->
positive pairs + negatives -> :class:`Trainer` -> layer-wise full-graph embeddings.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from pinsage._arrays import shrink_rows
from pinsage._io import InputError, atomic_path, save_npy_atomic
from pinsage.config import PinSageConfig
from pinsage.features import ItemFeatureEncoder, check_unknown, log_degree_feature
from pinsage.graph import InteractionGraph
from pinsage.inference import embed_all
from pinsage.nn.block import Neighborhoods
from pinsage.nn.model import PinSage
from pinsage.sampling.importance import ImportanceSampler
from pinsage.spectral import spectral_item_features
from pinsage.train.loader import PairBatchDataset, make_loader
from pinsage.train.negatives import HardNegatives, curriculum_hard_count, rank_window
from pinsage.train.pairs import GroupBalancedDraw, positive_pairs
from pinsage.train.trainer import Trainer

__all__ = ["PinSageEmbedder", "all_neighborhoods"]


def all_neighborhoods(sampler: ImportanceSampler, chunk: int = 16384, key_base: int = 0) -> Neighborhoods:
    """Importance neighbourhoods of every item, sampled once (chunk ``c`` uses key ``key_base + c``).

    Indices are stored as int32 (the catalogue fits): written chunk by chunk into arrays sized for
    ``num_items * num_neighbors`` entries, then shrunk in place, so the peak is the result's size
    (graph L: 0.8 GB instead of 2.4 GB for int64 parts plus their concatenation).
    """
    n = sampler.graph.num_items
    cap = n * sampler.num_neighbors
    index_dtype = np.int32 if n <= np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n + 1, dtype=np.int64)
    indices = np.empty(cap, dtype=index_dtype)
    weights = np.empty(cap, dtype=np.float32)
    total = 0
    for c, lo in enumerate(range(0, n, chunk)):
        hi = min(n, lo + chunk)
        nb = sampler(np.arange(lo, hi), key=key_base + c)
        k = len(nb.indices)
        indices[total:total + k] = nb.indices.numpy()
        weights[total:total + k] = nb.weights.numpy()
        indptr[lo + 1:hi + 1] = nb.offsets.numpy()[1:] + total
        total += k
    return Neighborhoods(indptr, shrink_rows(indices, total), shrink_rows(weights, total))


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class PinSageEmbedder:
    """Learn item embeddings with PinSage; ``fit`` then read ``item_embeddings_`` / ``transform``.

    Example:
        >>> from pinsage.datasets import make_pinboard
        >>> data = make_pinboard(n_topics=3, pins_per_topic=20, n_boards=60, seed=0)
        >>> cfg = PinSageConfig().override(train__epochs=1, sampler__num_walks=20)
        >>> emb = PinSageEmbedder(cfg, progress=False).fit(
        ...     data.interactions, group_col="board", item_col="pin")
        >>> emb.item_embeddings_.shape
        (60, 64)
    """

    def __init__(self, config: PinSageConfig | None = None, device: str | torch.device = "cpu",
                 progress: bool = True) -> None:
        self.config = config or PinSageConfig()
        self.device = torch.device(device)
        self.progress = progress

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        interactions: pd.DataFrame | InteractionGraph,
        group_col: str | None = None,
        item_col: str | None = None,
        time_col: str | None = None,
        item_features: pd.DataFrame | None = None,
        item_key: str | None = None,
        work_dir: str | os.PathLike | None = None,
        resume: bool = False,
        source: str = "interactions",
    ) -> "PinSageEmbedder":
        """Train on ``interactions`` (a DataFrame with the named columns, or a built graph).

        ``item_features``: optional DataFrame keyed by ``item_key`` (numeric, multi-hot "a|b",
        categorical and text columns; see :class:`~pinsage.features.ItemFeatureEncoder`).
        ``work_dir`` holds the checkpoint and the JSONL log (a temporary directory when None).
        """
        cfg = self.config
        t_start = time.perf_counter()
        rank, world = _dist_info()
        torch.manual_seed(cfg.train.seed)
        rng = np.random.default_rng(cfg.train.seed)
        if isinstance(interactions, InteractionGraph):
            graph = interactions
        else:
            if group_col is None or item_col is None:
                raise InputError(f"{source}: group_col and item_col are required")
            graph = InteractionGraph.from_pandas(interactions, group_col, item_col, time_col=time_col, source=source)
        self.graph_ = graph
        self.item_ids_ = graph.item_ids
        self.features_ = self._features(graph, item_features, item_key)

        s = cfg.sampler
        self.sampler_ = ImportanceSampler(graph, s.num_walks, s.walk_length, s.restart_prob, s.num_neighbors,
                                          seed=cfg.train.seed)
        t0 = time.perf_counter()
        self.neighborhoods_ = all_neighborhoods(self.sampler_)
        self.timings_ = {"neighborhoods_s": time.perf_counter() - t0}

        t0 = time.perf_counter()
        balanced_draw = None
        pair_dtype = np.int32 if graph.num_items <= np.iinfo(np.int32).max else np.int64
        if cfg.train.group_balance > 0:
            pairs, pair_groups = positive_pairs(graph, cfg.train.pair_window, rng, return_groups=True,
                                                dtype=pair_dtype)
            balanced_draw = GroupBalancedDraw(pair_groups, cfg.train.group_balance)
            del pair_groups
        else:
            pairs = positive_pairs(graph, cfg.train.pair_window, rng, dtype=pair_dtype)
        if len(pairs) == 0:
            raise InputError(f"{source}: no positive pairs: every group holds a single item")
        hard_table = None
        if cfg.train.hard_negatives_max > 0 and cfg.train.epochs >= 2 and graph.num_items > 3:
            window = rank_window(graph.num_items, cfg.train.hard_rank_window, cfg.train.hard_rank_min,
                                 cfg.train.hard_rank_max)
            hard_table = HardNegatives(graph, window, seed=cfg.train.seed, neighborhoods=self.neighborhoods_,
                                       method=cfg.train.hard_negative_method)
        self.timings_["pairs_negatives_s"] = time.perf_counter() - t0

        m = cfg.model
        feature_dim = 0 if self.features_ is None else self.features_.shape[1]
        self.model_ = PinSage(graph.num_items, feature_dim=feature_dim, id_dim=m.id_dim,
                              hidden_channels=m.hidden_channels, out_channels=m.out_channels,
                              num_layers=m.num_layers, aggr=m.aggr, dropout=m.dropout,
                              magnitude=m.magnitude, sparse=self._sparse_ids(graph.num_items, world))
        t = cfg.train
        workers = t.num_workers if t.num_workers >= 0 else (1 if (os.cpu_count() or 1) >= 2 else 0)

        def dataset(epoch: int) -> PairBatchDataset:
            nb = self.neighborhoods_
            if s.resample_every_epoch and epoch > 1:
                nb = all_neighborhoods(self.sampler_, key_base=epoch * 1_000_003)
            return PairBatchDataset(pairs, graph.num_items, nb, m.num_layers, self.features_, hard_table,
                                    t.batch_size, t.easy_negatives,
                                    curriculum_hard_count(epoch, t.hard_negatives_max), epoch,
                                    seed=t.seed, pairs_per_epoch=t.pairs_per_epoch, rank=rank, world_size=world,
                                    balanced_draw=balanced_draw)

        if t.batch_size < world:
            raise InputError(f"train.batch_size {t.batch_size} is smaller than the {world} processes")
        steps = len(dataset(1))
        tmp_dir = None
        if work_dir is None:
            import tempfile
            tmp_dir = tempfile.TemporaryDirectory(prefix="pinsage-")
            work_dir = tmp_dir.name
        sig_cfg = cfg.to_dict()
        sig_cfg["train"].pop("epochs")  # extending a finished run with more epochs is allowed
        signature = {"num_items": graph.num_items, "num_groups": graph.num_groups, "num_edges": graph.num_edges,
                     "feature_dim": feature_dim, "config": sig_cfg}
        self.trainer_ = Trainer(self.model_, t, lambda e: make_loader(dataset(e), workers), steps, work_dir,
                                device=self.device, progress=self.progress, signature=signature)
        # leave one core per loader worker: an OpenMP team that shares its cores with the producers
        # spins at every barrier (measured: 30x slower steps on a loaded 2-core machine)
        threads = torch.get_num_threads()
        if self.device.type == "cpu" and workers:
            torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - workers)))
        t0 = time.perf_counter()
        try:
            self.trainer_.fit(resume=resume,
                              hard_count_for_epoch=lambda e: curriculum_hard_count(e, t.hard_negatives_max))
        finally:
            torch.set_num_threads(threads)
            if tmp_dir is not None:
                tmp_dir.cleanup()
        self.timings_["train_s"] = time.perf_counter() - t0
        self.history_ = self.trainer_.state.history
        # free what only training needed before the full-graph pass (graph L: pairs 2.9 GB, Adam 1 GB)
        del pairs, balanced_draw, hard_table
        self.trainer_.optimizer.state.clear()
        if hasattr(self.trainer_.optimizer, "dense"):  # DenseSparseAdam keeps the state in its parts
            for part in self.trainer_.optimizer._parts():
                part.state.clear()
        t0 = time.perf_counter()
        self.item_embeddings_ = self.embed()
        self.timings_["inference_s"] = time.perf_counter() - t0
        self.timings_["total_s"] = time.perf_counter() - t_start
        return self

    def _sparse_ids(self, num_items: int, world: int) -> bool:
        """Sparse id-embedding gradients (optimised by SparseAdam) from ``model.sparse_id_min_items``
        items on: dense Adam over the table costs O(items) per step. Not under multi-GPU data
        parallelism (NCCL all-reduces dense gradients only)."""
        m = self.config.model
        if m.id_dim == 0 or num_items < m.sparse_id_min_items:
            return False
        return not (world > 1 and self.device.type == "cuda")

    def _features(self, graph: InteractionGraph, item_features: pd.DataFrame | None,
                  item_key: str | None) -> np.ndarray | None:
        parts = []
        self.feature_encoder_ = None
        if item_features is not None and self.config.model.use_features:
            if item_key is None:
                raise InputError("item features: item_key (the column holding item ids) is required")
            check_unknown(item_features, graph.item_ids, item_key)
            enc = ItemFeatureEncoder(key=item_key)
            x, _missing = enc.fit_transform(item_features, graph.item_ids)
            self.feature_encoder_ = enc
            parts.append(x)
        if self.config.model.spectral_dim > 0:
            parts.append(spectral_item_features(graph, self.config.model.spectral_dim, seed=self.config.train.seed))
        if self.config.model.log_degree:
            parts.append(log_degree_feature(graph.item_degree))
        return np.ascontiguousarray(np.concatenate(parts, 1), dtype=np.float32) if parts else None

    # ------------------------------------------------------------------ inference
    def embed(self, chunk_size: int = 8192) -> np.ndarray:
        """``(num_items, out_channels)`` float32 embeddings of every item, layer-wise over the whole graph."""
        rank, world = _dist_info()
        z = embed_all(self.model_, self.neighborhoods_, self.features_, chunk_size=chunk_size,
                      device=self.device, rank=rank, world_size=world)
        return np.asarray(z.cpu().numpy(), dtype=np.float32)  # no copy when already float32

    def transform(self, item_ids: Any = None) -> np.ndarray:
        """Embeddings of the given original item ids (all items when None), ``(n, d)``."""
        if item_ids is None:
            return self.item_embeddings_
        return self.item_embeddings_[self.graph_.item_index(item_ids)]

    def similar_items(self, item_ids: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Related items by dot product, the model's score (exact search): ``(ids (n, k), scores (n, k))``."""
        from pinsage.index import ItemIndex

        if getattr(self, "_index", None) is None:
            self._index = ItemIndex.build(self.item_embeddings_, self.item_ids_, kind="exact")
        return self._index.related(np.atleast_1d(np.asarray(item_ids)), k=k)

    # ------------------------------------------------------------------ persistence
    def save_outputs(self, run_dir: str | os.PathLike, extra: dict | None = None) -> None:
        """Write the run contract into ``run_dir`` (which should be a fresh temp dir renamed on success):
        item_embeddings.npy, item_ids.npy, config.yaml, model.pt, graph/, neighborhoods.npz,
        item_features.npy, feature_encoder.json, run.json."""
        run_dir = Path(run_dir)
        save_npy_atomic(run_dir / "item_embeddings.npy", self.item_embeddings_.astype(np.float32))
        save_npy_atomic(run_dir / "item_ids.npy", np.asarray(self.item_ids_))
        self.config.to_yaml(run_dir / "config.yaml")
        m = self.model_
        with atomic_path(run_dir / "model.pt") as tmp:
            torch.save({"state_dict": m.state_dict(), "kwargs": dict(
                num_items=m.num_items, feature_dim=m.feature_dim, id_dim=m.id_dim,
                hidden_channels=m.hidden_channels, out_channels=m.out_channels, num_layers=m.num_layers,
                aggr=m.aggr, dropout=m.dropout, magnitude=m.magnitude)}, tmp)
        self.graph_.save(run_dir / "graph")
        nb = self.neighborhoods_
        with atomic_path(run_dir / "neighborhoods.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, indptr=nb.indptr, indices=nb.indices, weights=nb.weights)
        if self.features_ is not None:
            save_npy_atomic(run_dir / "item_features.npy", self.features_)
        if self.feature_encoder_ is not None:
            with atomic_path(run_dir / "feature_encoder.json") as tmp:
                Path(tmp).write_text(json.dumps(self.feature_encoder_.to_dict()))
        meta = {"num_items": self.graph_.num_items, "num_groups": self.graph_.num_groups,
                "num_edges": self.graph_.num_edges, "timings": self.timings_, **(extra or {})}
        with atomic_path(run_dir / "run.json") as tmp:
            Path(tmp).write_text(json.dumps(meta, indent=2, default=str))

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> "PinSageEmbedder":
        """Load a run written by ``pinsage train`` / :meth:`save_outputs`."""
        run_dir = Path(run_dir)
        for name in ("item_embeddings.npy", "item_ids.npy", "config.yaml", "model.pt"):
            if not (run_dir / name).exists():
                raise InputError(f"{run_dir}: not a pinsage run ({name} missing)")
        self = cls(PinSageConfig.from_yaml(run_dir / "config.yaml"), progress=False)
        self.item_embeddings_ = np.load(run_dir / "item_embeddings.npy")
        self.item_ids_ = np.load(run_dir / "item_ids.npy", allow_pickle=False)
        ckpt = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=False)
        self.model_ = PinSage(**ckpt["kwargs"])
        self.model_.load_state_dict(ckpt["state_dict"])
        self.graph_ = InteractionGraph.load(run_dir / "graph")
        z = np.load(run_dir / "neighborhoods.npz")
        self.neighborhoods_ = Neighborhoods(z["indptr"], z["indices"], z["weights"])
        f = run_dir / "item_features.npy"
        self.features_ = np.load(f, mmap_mode="r") if f.exists() else None
        enc = run_dir / "feature_encoder.json"
        self.feature_encoder_ = ItemFeatureEncoder.from_dict(json.loads(enc.read_text())) if enc.exists() else None
        self.run_meta_ = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
        return self
