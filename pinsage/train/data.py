"""What training draws from, built once per fit: positive pairs (with their group-balanced draw) and
the hard-negative table; and the per-epoch dataset of minibatches over them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

from pinsage._io import InputError
from pinsage.config import TrainConfig
from pinsage.train.loader import PairBatchDataset
from pinsage.train.negatives import HardNegatives, WindowWalker, curriculum_hard_count, rank_window
from pinsage.train.pairs import GroupBalancedDraw, positive_pairs, time_window_pair_times, walk_pairs

if TYPE_CHECKING:
    from pinsage.graph import InteractionGraph
    from pinsage.sampling import ImportanceSampler, Neighborhoods
    from pinsage.train.time_snapshots import TimeSnapshots

__all__ = ["TrainingData", "pairs_per_epoch"]


def pairs_per_epoch(config: TrainConfig, num_edges: int) -> int:
    """Positive pairs drawn per epoch: ``train.pairs_per_epoch``, capped at ``train.pairs_per_edge`` x the
    training edges (at least one batch) when that is set. ``train.pairs_per_epoch: 0`` means every pair
    once, uncapped.

    With the defaults (200,000 and 5) a graph of 40,000 edges or more draws 200,000 pairs per epoch;
    6,000 interactions draw 30,000.
    """
    n = config.pairs_per_epoch
    if n > 0 and config.pairs_per_edge > 0:
        n = min(n, max(config.batch_size, int(round(config.pairs_per_edge * num_edges))))
    return int(n)


@dataclass
class TrainingData:
    """Positive pairs ``(P, 2)`` of dense item indices, their optional group-balanced draw, and the
    hard-negative table (None when the curriculum adds none)."""

    pairs: np.ndarray
    balanced_draw: GroupBalancedDraw | None
    hard_negatives: HardNegatives | None
    num_edges: int = 0
    pair_times: np.ndarray | None = None  #: ``(P,)`` each pair's time, with ``train.time_respecting``

    @classmethod
    def build(cls, graph: InteractionGraph, config: TrainConfig, rng: np.random.Generator,
              neighborhoods: Neighborhoods, source: str = "interactions",
              pair_graphs: Mapping[str, tuple[InteractionGraph, float]] | None = None,
              hard_walker: Callable[[tuple[int, int]], WindowWalker] | None = None) -> "TrainingData":
        """Pairs of items engaged together (within ``pair_window`` steps of a timed history, or sharing
        a group), drawn from ``rng``; hard negatives from PPR rank windows when the curriculum needs them.

        Several relations: ``pair_graphs`` maps each positive relation to ``(its graph, its weight)``
        (``train.positive_relations``); each relation's pairs are made from its own groups as one table's are,
        and the relations' shares of the draws follow the weights (a group-balanced draw within each relation).
        ``neighborhoods`` is then the merged table of the mixed walk and ``hard_walker(window)`` its walks
        (:func:`~pinsage.train.negatives.mixed_window_sampler`); ``graph`` (all relations merged) gives the
        catalogue size and, for ``"closure"`` hard negatives, the walks."""
        if pair_graphs is not None:
            return cls._build_relations(graph, config, rng, neighborhoods, source, pair_graphs, hard_walker)
        pair_dtype = np.int32 if graph.num_items <= np.iinfo(np.int32).max else np.int64
        if config.time_respecting:
            if graph.edge_time is None:
                raise InputError(f"{source}: train.time_respecting keeps each pair's future out of its "
                                 "neighbourhoods, but the interactions have no time column: give one (--time-col) or "
                                 "set train.time_respecting: false")
            if config.pair_source != "groups":
                raise InputError("train.time_respecting needs pairs from timed histories (train.pair_source: groups), "
                                 f"got train.pair_source: {config.pair_source}")
        balanced_draw = None
        balanced = config.group_balance > 0
        if config.pair_source == "walks":
            nb = neighborhoods
            made = walk_pairs(graph, nb.indptr, nb.indices, nb.weights, rng, per_edge=max(1, config.pair_window // 2),
                              return_groups=balanced, dtype=pair_dtype)
        else:
            made = positive_pairs(graph, config.pair_window, rng, return_groups=balanced, dtype=pair_dtype,
                                  partners=config.group_partners)
        if balanced:
            pairs, pair_groups = made
            balanced_draw = GroupBalancedDraw(pair_groups, config.group_balance)
            del pair_groups
        else:
            pairs = made
        if len(pairs) == 0:
            raise InputError(f"{source}: no positive pairs: every group holds a single item")
        hard = None
        if config.hard_negatives_max > 0 and config.epochs >= 2 and graph.num_items > 3:
            window = rank_window(graph.num_items, config.hard_rank_window, config.hard_rank_min,
                                 config.hard_rank_max)
            hard = HardNegatives(graph, window, seed=config.seed, neighborhoods=neighborhoods,
                                 method=config.hard_negative_method)
        pair_times = time_window_pair_times(graph, config.pair_window) if config.time_respecting else None
        return cls(pairs, balanced_draw, hard, graph.num_edges, pair_times)

    @classmethod
    def _build_relations(cls, graph: InteractionGraph, config: TrainConfig, rng: np.random.Generator,
                         neighborhoods: Neighborhoods, source: str,
                         pair_graphs: Mapping[str, tuple[InteractionGraph, float]],
                         hard_walker: Callable[[tuple[int, int]], WindowWalker] | None) -> "TrainingData":
        """:meth:`build` over several relations (see there)."""
        if config.time_respecting:
            raise InputError(f"{source}: train.time_respecting is not built for several relations yet; set "
                             "train.time_respecting: false")
        pair_dtype = np.int32 if graph.num_items <= np.iinfo(np.int32).max else np.int64
        parts, groups, weights, base = [], [], [], 0
        for name, (g, w) in pair_graphs.items():
            if w <= 0:
                continue
            if config.pair_source == "walks":
                nb = neighborhoods
                pairs, pg = walk_pairs(g, nb.indptr, nb.indices, nb.weights, rng,
                                       per_edge=max(1, config.pair_window // 2), return_groups=True, dtype=pair_dtype)
            else:
                pairs, pg = positive_pairs(g, config.pair_window, rng, return_groups=True, dtype=pair_dtype,
                                           partners=config.group_partners)
            if len(pairs) == 0:
                continue
            parts.append(pairs)
            groups.append(np.asarray(pg, dtype=np.int64) + base)
            weights.append((base, base + g.num_groups, float(w)))
            base += g.num_groups
        if not parts:
            raise InputError(f"{source}: no positive pairs: every group of the positive relations "
                             f"{list(pair_graphs)} holds a single item")
        pairs = np.concatenate(parts)
        draw = GroupBalancedDraw(np.concatenate(groups), config.group_balance)
        probs = draw.group_probs
        total_w = sum(w for _, _, w in weights)
        for lo, hi, w in weights:  # each relation's share of the draws: its weight
            s = probs[lo:hi].sum()
            if s > 0:
                probs[lo:hi] *= (w / total_w) / s
        draw.group_probs = probs / probs.sum()
        hard = None
        if config.hard_negatives_max > 0 and config.epochs >= 2 and graph.num_items > 3:
            window = rank_window(graph.num_items, config.hard_rank_window, config.hard_rank_min,
                                 config.hard_rank_max)
            hard = HardNegatives(graph, window, seed=config.seed, neighborhoods=neighborhoods,
                                 method=config.hard_negative_method,
                                 walker=hard_walker(window) if hard_walker is not None else None)
        num_edges = sum(g.num_edges for g, w in pair_graphs.values() if w > 0)
        return cls(pairs, draw, hard, num_edges, None)

    def epoch_dataset(self, epoch: int, config: TrainConfig, num_items: int, neighborhoods: Neighborhoods,
                      num_layers: int, features: np.ndarray | None, sampler: ImportanceSampler | None = None,
                      resample: bool = False, rank: int = 0, world_size: int = 1,
                      snapshots: TimeSnapshots | None = None) -> PairBatchDataset:
        """The minibatches of ``epoch`` (1-based): ``epoch - 1`` hard negatives per pair (capped), fresh
        neighbourhoods from ``sampler`` when ``resample`` and ``epoch > 1``; with ``snapshots`` (time-respecting
        training) each batch within one snapshot, with its neighbourhoods."""
        nb = neighborhoods
        if resample and epoch > 1 and sampler is not None:
            nb = sampler.all_neighborhoods(key_base=epoch * 1_000_003)
        return PairBatchDataset(self.pairs, num_items, nb, num_layers, features, self.hard_negatives,
                                config.batch_size, config.easy_negatives,
                                curriculum_hard_count(epoch, config.hard_negatives_max), epoch,
                                seed=config.seed, pairs_per_epoch=pairs_per_epoch(config, self.num_edges), rank=rank,
                                world_size=world_size, balanced_draw=self.balanced_draw, snapshots=snapshots)
