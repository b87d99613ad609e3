"""``PinSageEmbedder``: the whole pipeline behind one scikit-learn-style estimator.

``fit`` is a short sequence of stage calls, data flowing one way:

interactions -> :class:`~pinsage.InteractionGraph` -> node inputs (:func:`~pinsage.features.fit_node_inputs`)
-> importance neighbourhoods (:class:`~pinsage.ImportanceSampler`) -> positive pairs and negatives
(:class:`~pinsage.train.data.TrainingData`) -> :class:`~pinsage.train.trainer.Trainer` -> layer-wise
full-graph embeddings (:func:`~pinsage.embed_all`). The run directory is written and read by
:class:`~pinsage.run.RunDir`.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from pinsage._io import InputError
from pinsage._version import package_versions
from pinsage.config import PinSageConfig, SamplerConfig, relation_settings
from pinsage.features import catalogue_items, catalogue_node_inputs, fit_node_inputs
from pinsage.graph import HeteroGraph, InteractionGraph
from pinsage.ids import rows_of
from pinsage.inference import embed_all
from pinsage.new_items import embed_with_new_items
from pinsage.nn.model import PinSage
from pinsage.run import RunDir
from pinsage.sampling import ImportanceSampler, importance_neighborhoods
from pinsage.sampling.relations import merge_tables, mixed_method, mixed_neighborhoods, mixed_sampler
from pinsage.train.data import TrainingData
from pinsage.train.loader import EpochLoader, make_loader
from pinsage.train.negatives import curriculum_hard_count, mixed_window_sampler
from pinsage.train.time_snapshots import time_snapshots
from pinsage.train.trainer import Trainer

__all__ = ["PinSageEmbedder", "NotFittedError"]

log = logging.getLogger(__name__)


def _neighborhood_method(graph: InteractionGraph, sampler: SamplerConfig) -> str:
    """The neighbourhoods ``sampler.method`` gives this graph: ``"exact"`` or ``"walks"`` (``auto`` resolved
    as :func:`pinsage.sampling.importance_neighborhoods` resolves it)."""
    from pinsage.sampling.exact import exact_is_affordable

    if sampler.method != "auto":
        return sampler.method
    return "exact" if exact_is_affordable(graph.num_items, graph.num_edges) else "walks"


class NotFittedError(ValueError, AttributeError):
    """An estimator method that needs a fitted model was called before ``fit`` (or ``load``)."""


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _utc_now() -> str:
    """The time now in UTC, ISO 8601 to the second (``2024-05-01T10:00:00Z``)."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _loader_workers(requested: int) -> int:
    """DataLoader worker processes: ``requested``, or -1 for one when the machine has two cores or more."""
    return requested if requested >= 0 else (1 if (os.cpu_count() or 1) >= 2 else 0)


@contextmanager
def _cores_left_to_workers(device: torch.device, workers: int) -> Iterator[None]:
    """Leave one core per loader worker while training: an OpenMP team that shares its cores with the
    producers spins at every barrier (measured: 30x slower steps on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    if device.type == "cpu" and workers:
        torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - workers)))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def _work_directory(work_dir: str | os.PathLike | None) -> Iterator[str]:
    """``work_dir``, or a temporary directory removed afterwards."""
    if work_dir is not None:
        yield str(work_dir)
        return
    with tempfile.TemporaryDirectory(prefix="pinsage-") as tmp:
        yield tmp


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

    #: the constructor parameters (scikit-learn's ``get_params`` / ``set_params``)
    _PARAMS = ("config", "device", "progress")
    #: what ``fit`` / ``load`` set; cleared by every ``fit``
    _FITTED = ("config_", "graph_", "item_ids_", "features_", "feature_encoder_", "sampler_", "neighborhoods_",
               "model_", "trainer_", "history_", "item_embeddings_", "timings_", "run_meta_", "_index",
               "catalogue_ids_", "catalogue_features_", "neighborhood_method_", "train_steps_", "positive_pairs_",
               "trained_at_", "hetero_graph_", "relation_probs_", "positive_relations_")

    def __init__(self, config: PinSageConfig | None = None, device: str | torch.device = "cpu",
                 progress: bool = True) -> None:
        self.config = config
        self.device = device
        self.progress = progress

    # ------------------------------------------------------------------ scikit-learn conventions
    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The constructor parameters, as given."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params: Any) -> "PinSageEmbedder":
        """Set constructor parameters; they take effect at the next ``fit``."""
        unknown = sorted(set(params) - set(self._PARAMS))
        if unknown:
            raise ValueError(f"PinSageEmbedder.set_params: unknown parameter(s) {unknown}; "
                             f"valid: {list(self._PARAMS)}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        return f"PinSageEmbedder(config={self.config!r}, device={self.device!r}, progress={self.progress!r})"

    def _check_fitted(self) -> None:
        if getattr(self, "item_embeddings_", None) is None:
            raise NotFittedError("This PinSageEmbedder is not fitted yet: call fit(...) or "
                                 "PinSageEmbedder.load(run_dir) first")

    def _reset(self) -> None:
        for name in self._FITTED:
            self.__dict__.pop(name, None)

    @property
    def device_(self) -> torch.device:
        return torch.device(self.device)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        interactions: pd.DataFrame | InteractionGraph | dict[str, pd.DataFrame] | HeteroGraph,
        group_col: str | dict[str, str] | None = None,
        item_col: str | dict[str, str] | None = None,
        time_col: str | dict[str, str | None] | None = None,
        item_features: pd.DataFrame | None = None,
        item_key: str | None = None,
        work_dir: str | os.PathLike | None = None,
        resume: bool = False,
        source: str = "interactions",
        weight_col: str | dict[str, str | None] | None = None,
        node_types: dict[str, str] | None = None,
    ) -> "PinSageEmbedder":
        """Train on ``interactions`` (a DataFrame with the named columns, or a built graph).

        **Several relations** (docs/guide.md, "Several relations"): a dict ``{relation: DataFrame}`` of
        ``(other node, item[, time][, weight])`` rows, or a :class:`~pinsage.graph.HeteroGraph`. The column
        options are then one name for every relation or a dict relation -> name (``time_col`` / ``weight_col``
        may leave relations out); ``node_types`` names each relation's other node type (default: its other
        column's name, so two relations with a ``user`` column share their users). Walks mix the relations
        (``sampler.relation_probs``); neighbourhoods are merged or per relation (``sampler.merge_relations``,
        ``model.relation_combine``); positive pairs come from ``train.positive_relations``; hard negatives from
        the mixed walk. ``hetero_graph_`` holds the graph and ``graph_`` all relations merged
        (:meth:`HeteroGraph.merged_graph`). A one-relation dict or graph is exactly the single-table run on its
        table (same results for the same seed).

        ``weight_col``: a column of non-negative edge weights (ratings, play counts, dwell time); it
        switches weighted walks on (``sampler.weighted``, recorded in ``config_``): walk steps follow the
        weights, optionally decayed by ``sampler.weight_half_life``. ``sampler.weighted`` without a weight
        column walks by the number of times each (group, item) pair occurs.

        ``item_features``: optional DataFrame keyed by ``item_key`` (numeric, multi-hot "a|b",
        categorical and text columns; see :class:`~pinsage.features.ItemFeatureEncoder`). It may list
        items nobody has interacted with yet (a catalogue): they are embedded from their content after
        training and appended to ``item_embeddings_`` / ``item_ids_`` (``catalogue_ids_`` lists them).
        ``work_dir`` holds the checkpoint and the JSONL log (a temporary directory when None).
        """
        self._reset()
        cfg = self.config if self.config is not None else PinSageConfig()
        if weight_col is not None and not cfg.sampler.weighted:
            cfg = cfg.override(sampler__weighted=True)
        if cfg.sampler.weight_half_life and not cfg.sampler.weighted:
            raise InputError("sampler.weight_half_life decays the weights of weighted walks, but walks are not "
                             "weighted: give a weight column (weight_col, --weight-col) or set sampler.weighted: true")
        self.config_ = cfg
        device = self.device_
        t_start = time.perf_counter()
        rank, world = _dist_info()
        torch.manual_seed(cfg.train.seed)
        rng = np.random.default_rng(cfg.train.seed)
        hetero = self._hetero(interactions, group_col, item_col, time_col, weight_col, node_types)
        if hetero is not None and hetero.num_relations == 1:
            interactions, hetero = hetero.as_interaction_graph(), None  # one relation: today's run, exactly
        self.hetero_graph_ = hetero
        if hetero is not None:
            graph = self.graph_ = hetero.merged_graph()
            self.relation_probs_, self.positive_relations_ = relation_settings(cfg, hetero.relations, source)
            if cfg.train.time_respecting:
                raise InputError("train.time_respecting is not built for several relations yet; set "
                                 "train.time_respecting: false")
        else:
            graph = self.graph_ = self._graph(interactions, group_col, item_col, time_col, source, weight_col)
            self.relation_probs_ = self.positive_relations_ = None
        self.item_ids_ = graph.item_ids
        self.features_, self.feature_encoder_ = fit_node_inputs(graph, cfg.model, cfg.train.seed, item_features,
                                                                item_key)
        self._catalogue(graph, item_features, item_key)
        say = log.info if rank == 0 else log.debug
        say("graph: %d items, %d groups, %d edges%s", graph.num_items, graph.num_groups, graph.num_edges,
            f" (+ {len(self.catalogue_ids_)} catalogue items)" if len(self.catalogue_ids_) else "")
        t0 = time.perf_counter()
        if hetero is None:
            self.sampler_ = ImportanceSampler.from_config(graph, cfg.sampler, seed=cfg.train.seed)
            self.neighborhood_method_ = _neighborhood_method(graph, cfg.sampler)
            self.neighborhoods_ = importance_neighborhoods(graph, cfg.sampler, seed=cfg.train.seed)
        else:
            say("relations %s: walk mix %s, positive pairs %s", list(hetero.relations),
                {r: round(p, 4) for r, p in self.relation_probs_.items()},
                {r: round(w, 4) for r, w in self.positive_relations_.items() if w > 0})
            self.sampler_ = mixed_sampler(hetero, cfg.sampler, self.relation_probs_, seed=cfg.train.seed)
            self.neighborhood_method_ = mixed_method(hetero, cfg.sampler)
            self.neighborhoods_ = mixed_neighborhoods(hetero, cfg.sampler, self.relation_probs_, seed=cfg.train.seed)
        self.timings_ = {"neighborhoods_s": time.perf_counter() - t0}
        say("importance neighbourhoods (%s) in %.1f s", self.neighborhood_method_, self.timings_["neighborhoods_s"])
        t0 = time.perf_counter()
        if hetero is None:
            data = TrainingData.build(graph, cfg.train, rng, self.neighborhoods_, source)
        else:
            probs = self.relation_probs_
            data = TrainingData.build(
                graph, cfg.train, rng, merge_tables(self.neighborhoods_), source,
                pair_graphs={r: (hetero.relation(r), w) for r, w in self.positive_relations_.items() if w > 0},
                hard_walker=lambda window: mixed_window_sampler(hetero, probs, window, seed=cfg.train.seed))
        self.timings_["pairs_negatives_s"] = time.perf_counter() - t0
        self.positive_pairs_ = len(data.pairs)
        say("%d positive pairs and the hard negatives in %.1f s", self.positive_pairs_, self.timings_["pairs_negatives_s"])
        snapshots = None
        if cfg.train.time_respecting:
            if cfg.sampler.resample_every_epoch:
                raise InputError("train.time_respecting draws each time snapshot's neighbourhoods once: set "
                                 "sampler.resample_every_epoch: false")
            t0 = time.perf_counter()
            snapshots = time_snapshots(graph, data.pair_times, cfg.train.time_snapshots, cfg.sampler,
                                       seed=cfg.train.seed,
                                       log_degree=cfg.model.log_degree and self.features_ is not None)
            self.timings_["time_snapshots_s"] = time.perf_counter() - t0
            say("%d time snapshots (neighbourhoods of the edges before each) in %.1f s", len(snapshots),
                self.timings_["time_snapshots_s"])

        feature_dim = 0 if self.features_ is None else self.features_.shape[1]
        if feature_dim == 0 and cfg.model.id_dim == 0:
            raise InputError("model.id_dim is 0 and there are no node inputs (model.spectral_dim 0, model.log_degree "
                             "false, no item features): the model would have nothing to embed; set model.id_dim > 0 "
                             "or give inputs")
        t = cfg.train
        if t.batch_size < world:
            raise InputError(f"train.batch_size {t.batch_size} is smaller than the {world} processes")
        workers = _loader_workers(t.num_workers)

        def dataset(epoch: int):
            return data.epoch_dataset(epoch, t, graph.num_items, self.neighborhoods_, cfg.model.num_layers,
                                      self.features_, self.sampler_, cfg.sampler.resample_every_epoch, rank, world,
                                      snapshots)

        # the loader's workers are forked once, before the model and the optimiser exist, so they never
        # map (and copy-on-write never duplicates) the id table or the Adam moments; with neighbourhoods
        # redrawn per epoch a fresh loader per epoch instead
        resampled = cfg.sampler.resample_every_epoch and self.sampler_ is not None
        epoch_loader = None if resampled else EpochLoader(dataset, workers)
        loader_for_epoch = (lambda e: make_loader(dataset(e), workers)) if resampled else epoch_loader
        try:
            if epoch_loader is not None:
                epoch_loader.start()
            self.model_ = PinSage.from_settings(graph.num_items, feature_dim, cfg.model,
                                                sparse=self._sparse_ids(graph.num_items, world),
                                                relations=self._model_relations())
            t0 = time.perf_counter()
            with _work_directory(work_dir) as wd, _cores_left_to_workers(device, workers):
                self.train_steps_ = len(dataset(1))
                self.trainer_ = Trainer(self.model_, t, loader_for_epoch, self.train_steps_, wd,
                                        device=device, progress=self.progress,
                                        signature=self._signature(graph, feature_dim))
                self.trainer_.fit(resume=resume,
                                  hard_count_for_epoch=lambda e: curriculum_hard_count(e, t.hard_negatives_max))
        finally:
            if epoch_loader is not None:
                epoch_loader.close()
        self.timings_["train_s"] = time.perf_counter() - t0
        self.history_ = self.trainer_.state.history
        say("trained %d epochs of %d steps (%d pairs each) in %.1f s", t.epochs, self.train_steps_,
            self.train_steps_ * t.batch_size, self.timings_["train_s"])
        # free what only training needed before the full-graph pass (graph L: pairs 2.9 GB, Adam 1 GB)
        del data
        self.trainer_.release_state()
        t0 = time.perf_counter()
        if len(self.catalogue_ids_):
            self.item_embeddings_ = embed_with_new_items(self.model_, self.neighborhoods_, self.features_,
                                                         self.catalogue_features_, device=self.device_)
            self.item_ids_ = np.concatenate([np.asarray(graph.item_ids), self.catalogue_ids_])
        else:
            self.item_embeddings_ = self.embed()
        self.timings_["inference_s"] = time.perf_counter() - t0
        self.timings_["total_s"] = time.perf_counter() - t_start
        self.trained_at_ = _utc_now()
        say("embedded %d items in %.1f s", len(self.item_ids_), self.timings_["inference_s"])
        return self

    def _catalogue(self, graph: InteractionGraph, item_features: pd.DataFrame | None, item_key: str | None) -> None:
        """The features table's items without interactions, and their node inputs."""
        self.catalogue_ids_ = np.asarray(graph.item_ids)[:0]
        self.catalogue_features_ = None
        if self.feature_encoder_ is None or item_features is None:
            return
        new = catalogue_items(graph, item_features, item_key)
        if len(new):
            self.catalogue_ids_ = new
            self.catalogue_features_ = catalogue_node_inputs(graph, self.config_.model, self.feature_encoder_,
                                                             item_features, new)

    def _model_relations(self) -> list[str] | None:
        """The relations of per-relation model layers: those the walks step (``sampler.merge_relations: false``
        over several relations), else None (one neighbourhood table, the homogeneous model)."""
        if getattr(self, "hetero_graph_", None) is None or self.config_.sampler.merge_relations:
            return None
        return [r for r, p in self.relation_probs_.items() if p > 0]

    @staticmethod
    def _hetero(interactions: Any, group_col: Any, item_col: Any, time_col: Any, weight_col: Any,
                node_types: dict[str, str] | None) -> HeteroGraph | None:
        """The graph of several relations given as a dict of DataFrames or a HeteroGraph; None for one table."""
        if isinstance(interactions, HeteroGraph):
            return interactions
        if isinstance(interactions, dict):
            if group_col is None or item_col is None:
                raise InputError("several relations: group_col (the other node's column) and item_col are required, "
                                 "one name for every relation or a dict relation -> column")
            return HeteroGraph.from_pandas(interactions, other_col=group_col, item_col=item_col, time_col=time_col,
                                           weight_col=weight_col, node_types=node_types)
        if node_types is not None:
            raise InputError("node_types names the other node types of several relations: give a dict "
                             "{relation: DataFrame} or a HeteroGraph")
        return None

    @staticmethod
    def _graph(interactions: pd.DataFrame | InteractionGraph, group_col: str | None, item_col: str | None,
               time_col: str | None, source: str, weight_col: str | None = None) -> InteractionGraph:
        if isinstance(interactions, InteractionGraph):
            return interactions
        if group_col is None or item_col is None:
            raise InputError(f"{source}: group_col and item_col are required")
        return InteractionGraph.from_pandas(interactions, group_col, item_col, time_col=time_col,
                                            weight_col=weight_col, source=source)

    def _signature(self, graph: InteractionGraph, feature_dim: int) -> dict[str, Any]:
        """What a checkpoint must match to be resumed (extending a finished run with more epochs is allowed)."""
        sig_cfg = self.config_.to_dict()
        sig_cfg["train"].pop("epochs")
        sig = {"num_items": graph.num_items, "num_groups": graph.num_groups, "num_edges": graph.num_edges,
               "feature_dim": feature_dim, "config": sig_cfg}
        if getattr(self, "hetero_graph_", None) is not None:
            sig["relations"] = list(self.hetero_graph_.relations)
        return sig

    def _sparse_ids(self, num_items: int, world: int) -> bool:
        """Sparse id-embedding gradients (optimised by SparseAdam) from ``model.sparse_id_min_items``
        items on: dense Adam over the table costs O(items) per step. Not under multi-GPU data
        parallelism (NCCL all-reduces dense gradients only)."""
        m = self.config_.model
        if m.id_dim == 0 or num_items < m.sparse_id_min_items:
            return False
        return not (world > 1 and self.device_.type == "cuda")

    # ------------------------------------------------------------------ inference
    def embed(self, chunk_size: int = 8192) -> np.ndarray:
        """``(num_items, out_channels)`` float32 embeddings of every item, layer-wise over the whole graph."""
        if getattr(self, "model_", None) is None:
            raise NotFittedError("This PinSageEmbedder is not fitted yet: call fit(...) first")
        rank, world = _dist_info()
        z = embed_all(self.model_, self.neighborhoods_, self.features_, chunk_size=chunk_size,
                      device=self.device_, rank=rank, world_size=world)
        return np.asarray(z.cpu().numpy(), dtype=np.float32)  # no copy when already float32

    def transform(self, item_ids: Any = None) -> np.ndarray:
        """Embeddings of the given original item ids (all items when None), ``(n, d)``."""
        self._check_fitted()
        if item_ids is None:
            return self.item_embeddings_
        return self.item_embeddings_[rows_of(np.atleast_1d(np.asarray(item_ids, dtype=object)), self.item_ids_,
                                             "transform", "the model's")]

    def similar_items(self, item_ids: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Related items by dot product, the model's score (exact search): ``(ids (n, k), scores (n, k))``.

        The exact index is built on first use and dropped by the next ``fit``.
        """
        from pinsage.index import ItemIndex

        self._check_fitted()
        if getattr(self, "_index", None) is None:
            self._index = ItemIndex.build(self.item_embeddings_, self.item_ids_, kind="exact")
        return self._index.related(np.atleast_1d(np.asarray(item_ids)), k=k)

    def recommend(self, userid: Any = None, user_items: Any = None, N: int = 10,
                  filter_already_liked_items: bool = True, filter_items: Any = None, *, method: str = "recency",
                  half_life: float | None = 10.0, clusters: int = 3,
                  max_history: int | None = 500) -> tuple[np.ndarray, np.ndarray]:
        """Items for users of the fitted graph, or for given histories, in the manner of ``implicit``'s
        ``recommend`` (exact search over the embeddings; the scores are those of
        :meth:`pinsage.ItemIndex.recommend`).

        Args:
            userid: one user (group) id of the fitted graph, or a 1-d list of them (a batch). A user's
                history is their items in time order when the graph has times (the most recent last,
                weighted most); without times the graph keeps no order, and every item weighs alike.
            user_items: instead of ``userid``, one history (a flat list of item ids, oldest first) or a
                list of histories.
            N: results per user.
            filter_already_liked_items: leave the user's own items out of the results.
            filter_items: item ids never to return.
            method: ``"recency"`` (recency-weighted mean of the history's embeddings) or ``"interests"``
                (PinnerSage-style clusters, one query per cluster medoid, merged with quotas).
            half_life: recency half-life in items (``None``: all items alike).
            clusters: the most interests per user (``"interests"``).
            max_history: use each user's ``max_history`` most recent items (all when None).

        Returns:
            ids: item ids, best first; scores: float32.

        Shapes:
            - **ids, scores:** :math:`(N,)` for one user id or one history, :math:`(q, N)` for a batch.

        Raises:
            InputError: neither or both of ``userid`` and ``user_items``, unknown users or items.
        """
        from pinsage.graph.histories import group_histories, group_rows, has_order
        from pinsage.index import ItemIndex
        from pinsage.index.histories import Histories

        self._check_fitted()
        if (userid is None) == (user_items is None):
            raise InputError("recommend: give either userid (users of the fitted graph) or user_items "
                             "(histories of item ids)")
        if getattr(self, "_index", None) is None:
            self._index = ItemIndex.build(self.item_embeddings_, self.item_ids_, kind="exact")
        kwargs = dict(N=N, filter_already_liked_items=filter_already_liked_items, filter_items=filter_items,
                      method=method, clusters=clusters, max_history=max_history)
        if user_items is not None:
            return self._index.recommend(user_items, half_life=half_life, **kwargs)
        one = np.ndim(userid) == 0
        indptr, items = group_histories(self.graph_, group_rows(self.graph_, np.atleast_1d(userid)), max_history)
        ids, scores = self._index.recommend(Histories(indptr, items),  # graph item j is embedding row j
                                            half_life=half_life if has_order(self.graph_) else None, **kwargs)
        return (ids[0], scores[0]) if one else (ids, scores)

    # ------------------------------------------------------------------ persistence
    def save(self, run_dir: str | os.PathLike, extra: dict | None = None) -> RunDir:
        """Write the run into ``run_dir`` (a fresh directory, renamed into place by the caller):
        embeddings and ids, config, model, graph, neighbourhoods, node inputs, encoder, run.json
        (see :mod:`pinsage.run`).

        run.json records the sizes, the timings, the seed, the package versions (``versions``), the
        neighbourhood method used, the positive pairs and the steps and pairs trained per epoch, and when
        training ended, then ``extra`` (the command line's columns, input paths and checksums)."""
        self._check_fitted()
        run = RunDir(run_dir)
        run.write_embeddings(self.item_embeddings_, self.item_ids_)
        run.write_config(self.config_)
        run.write_model(self.model_)
        hetero = getattr(self, "hetero_graph_", None)
        run.write_graph(hetero if hetero is not None else self.graph_)
        run.write_neighborhoods(self.neighborhoods_)
        if self.features_ is not None:
            run.write_item_features(self.features_)
        if self.feature_encoder_ is not None:
            run.write_feature_encoder(self.feature_encoder_)
        n_catalogue = len(getattr(self, "catalogue_ids_", ()))
        steps = getattr(self, "train_steps_", None)
        run.write_meta({"num_items": len(self.item_ids_), "num_graph_items": self.graph_.num_items,
                        "num_catalogue_items": n_catalogue, "num_groups": self.graph_.num_groups,
                        "num_edges": self.graph_.num_edges, "timings": getattr(self, "timings_", {}),
                        "seed": self.config_.train.seed, "versions": package_versions(),
                        "neighborhood_method": getattr(self, "neighborhood_method_", None),
                        "num_positive_pairs": getattr(self, "positive_pairs_", None),
                        "steps_per_epoch": steps,
                        "pairs_per_epoch": steps * self.config_.train.batch_size if steps is not None else None,
                        "trained_at": getattr(self, "trained_at_", None) or _utc_now(),
                        **self._relations_meta(), **(extra or {})})
        return run

    def _relations_meta(self) -> dict[str, Any]:
        """run.json's record of a run over several relations (nothing for one table)."""
        hetero = getattr(self, "hetero_graph_", None)
        if hetero is None:
            return {}
        return {"relations": {r: {"node_type": hetero.node_types[r], "num_edges": hetero.relation(r).num_edges,
                                  "step_probability": self.relation_probs_[r],
                                  "positive_weight": self.positive_relations_[r]} for r in hetero.relations},
                "merge_relations": self.config_.sampler.merge_relations}

    #: the name of :meth:`save` before the run module existed
    save_outputs = save

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> "PinSageEmbedder":
        """Load a run written by ``pinsage train`` / :meth:`save` (nothing in it is unpickled)."""
        run = RunDir.open(run_dir, require=("embeddings", "ids", "config", "model"), flag="")
        self = cls(run.config(), progress=False)
        self.config_ = self.config
        self.item_embeddings_, self.item_ids_ = run.embeddings_and_ids()
        self.model_ = run.model()
        graph = run.graph()
        self.hetero_graph_ = graph if isinstance(graph, HeteroGraph) else None
        self.graph_ = graph.merged_graph() if isinstance(graph, HeteroGraph) else graph
        if self.hetero_graph_ is not None:
            self.relation_probs_, self.positive_relations_ = relation_settings(self.config_, graph.relations)
        self.neighborhoods_ = run.neighborhoods()
        self.features_ = run.item_features()
        self.feature_encoder_ = run.feature_encoder()
        self.run_meta_ = run.meta()
        n_graph = self.graph_.num_items
        self.catalogue_ids_ = self.item_ids_[n_graph:]  # items embedded from content alone come last
        return self
