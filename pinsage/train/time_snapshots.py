r"""Time-respecting training (``train.time_respecting``): no training pair sees the graph's future.

A positive pair :math:`(q, p)` of a timed history came to be at :math:`t`, the time of its later interaction
(:func:`pinsage.train.pairs.time_window_pair_times`). Its minibatch must compute :math:`q`'s and :math:`p`'s
embeddings from edges older than :math:`t` only: the importance neighbourhoods, and the log-degree input.

The pairs are split by time into :math:`K` snapshots at the pair-time quantiles
:math:`c_0 < c_1 < \dots < c_{K-1}`: snapshot :math:`k` holds the pairs with :math:`c_k \le t < c_{k+1}`
and the graph :math:`G_k` of the edges with time :math:`< c_k \le t`, so every pair's own edge (at
:math:`t`) and everything after it is outside. Each snapshot gets its neighbourhood table from
:math:`G_k` (the run's ``sampler`` settings: exact or walks) and the log degree of :math:`G_k`, on the full
graph's scale. Minibatches are drawn within one snapshot (:class:`~pinsage.train.loader.PairBatchDataset`).

What still sees the future in this mode (docs/time.md): the spectral node inputs (factors of the whole
graph; per-snapshot factors would not share a basis), the hard negatives (ranked on the whole graph's
neighbourhoods), and the learned id embeddings (trained on pairs from all times, as in any run). The
first snapshot's pairs come before almost every edge: their neighbourhoods are empty or nearly so. Cost:
``K`` neighbourhood tables (``K`` times the neighbourhood time and memory of a plain run).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pinsage.features.structural import log_degree_feature
from pinsage.graph import InteractionGraph
from pinsage.sampling.blocks import Neighborhoods
from pinsage.sampling.importance import importance_neighborhoods

if TYPE_CHECKING:
    from pinsage.config import SamplerConfig

__all__ = ["TimeSnapshots", "graph_before", "time_snapshots"]


@dataclass
class TimeSnapshots:
    """The snapshots of time-respecting training.

    * ``cuts``: ``(K,)`` snapshot start times (the graph's time units), ascending;
    * ``pair_snapshot``: ``(P,)`` int32 the snapshot of each positive pair;
    * ``neighborhoods``: ``K`` tables, snapshot ``k``'s from the edges older than ``cuts[k]``;
    * ``log_degree``: ``K`` arrays ``(num_items,)`` float32, the standardised log degree in snapshot ``k``
      (None when the node inputs have no log-degree column, the last column when they do).
    """

    cuts: np.ndarray
    pair_snapshot: np.ndarray
    neighborhoods: list[Neighborhoods]
    log_degree: list[np.ndarray] | None

    def __len__(self) -> int:
        return len(self.cuts)


def graph_before(graph: InteractionGraph, cut: float) -> InteractionGraph:
    """The graph of the edges with time ``< cut``, in the same item and group index spaces (ids kept)."""
    t = np.asarray(graph.edge_time)
    keep = t < cut
    weight = None if graph.edge_weight is None else np.asarray(graph.edge_weight)[keep]
    return InteractionGraph.from_edges(graph.edge_groups()[keep], np.asarray(graph.group_items)[keep],
                                       num_groups=graph.num_groups, num_items=graph.num_items,
                                       item_ids=graph.item_ids, group_ids=graph.group_ids,
                                       weight=weight, time=t[keep])


def time_snapshots(graph: InteractionGraph, pair_times: np.ndarray, num_snapshots: int, sampler: SamplerConfig,
                   seed: int = 0, log_degree: bool = False) -> TimeSnapshots:
    """Split the pairs at ``pair_times`` ``(P,)`` into at most ``num_snapshots`` snapshots at their time
    quantiles (fewer where times repeat) and build each one's neighbourhoods and log degree (module doc)."""
    pair_times = np.asarray(pair_times)
    q = np.quantile(pair_times, np.arange(num_snapshots) / num_snapshots, method="lower")
    cuts = np.unique(q)
    pair_snapshot = (np.searchsorted(cuts, pair_times, side="right") - 1).astype(np.int32)
    tables, degrees = [], [] if log_degree else None
    for k, cut in enumerate(cuts):
        older = int((np.asarray(graph.edge_time) < cut).sum())
        if older == 0:  # before every edge: no neighbours, degree 0
            tables.append(Neighborhoods(np.zeros(graph.num_items + 1, dtype=np.int64), np.zeros(0, dtype=np.int32),
                                        np.zeros(0, dtype=np.float32)))
            item_degree = np.zeros(graph.num_items)
        else:
            g = graph_before(graph, cut)
            tables.append(importance_neighborhoods(g, sampler, seed=seed, key_base=k * 1_000_003))
            item_degree = g.item_degree
        if degrees is not None:
            degrees.append(log_degree_feature(item_degree, reference=graph.item_degree).ravel())
    return TimeSnapshots(cuts, pair_snapshot, tables, degrees)
