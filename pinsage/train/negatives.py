"""Negatives: a shared pool of easy negatives, and hard negatives from a PPR rank window."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pinsage.sampling.importance import ImportanceSampler

if TYPE_CHECKING:
    from pinsage.graph import InteractionGraph

__all__ = ["HardNegatives", "curriculum_hard_count", "rank_window"]

#: catalogues up to this size get a precomputed candidate table; larger ones sample per batch
TABLE_MAX_ITEMS = 200_000


def rank_window(num_items: int, fractions: tuple[float, float], minimum: tuple[int, int],
                maximum: tuple[int, int] = (2000, 5000)) -> tuple[int, int]:
    """The PPR rank window ``[lo, hi)`` scaled to the catalogue: ``fractions`` of ``num_items``,
    at least ``minimum``, at most ``maximum`` (the paper's 2000-5000, for web-scale catalogues) and
    ``num_items - 1``. On small dense catalogues the window must sit past the ranks where true
    positives concentrate, or "hard negatives" are mostly positives (MovieLens-100K: ranks 251-670
    of 1676 help, ranks 33-167 hurt badly; docs/quality.md).

    >>> rank_window(1676, (0.15, 0.40), (10, 50))           # MovieLens-100K's catalogue
    (251, 670)
    >>> rank_window(10_000_000, (0.15, 0.40), (10, 50))     # web scale: the paper's 2000-5000
    (2000, 5000)
    """
    lo = min(max(int(fractions[0] * num_items), minimum[0]), maximum[0])
    hi = min(max(int(fractions[1] * num_items), minimum[1], lo + 1), maximum[1])
    hi = min(hi, num_items - 1)
    lo = min(lo, max(hi - 1, 0))
    return lo, hi


class HardNegatives:
    r"""Items ranked moderately high by personalised PageRank from a query.

    PPR is estimated by random walks with restart (``restart_prob`` 0.15, up to ``walk_length``
    item -> group -> item hops, ``num_walks`` walks): the visit counts rank the catalogue from the
    query, and the items ranked ``window = [lo, hi)`` are the candidates. Exact PPR
    (:func:`pinsage.sampling.personalized_pagerank`) costs a sparse power iteration per query;
    the walk estimate costs ``O(num_walks * walk_length)`` per query and needs no dense state.

    For catalogues up to :data:`TABLE_MAX_ITEMS` all candidates are computed once into a
    ``(num_items, hi - lo)`` table; larger catalogues are sampled per batch for the batch's queries.
    """

    def __init__(self, graph: "InteractionGraph", window: tuple[int, int], num_walks: int = 0,
                 walk_length: int = 10, restart_prob: float = 0.15, seed: int = 0) -> None:
        self.window = window
        lo, hi = window
        # enough walks that ranks up to hi are visited several times on average
        num_walks = num_walks or int(min(2000, max(200, 3 * hi)))
        self.sampler = ImportanceSampler(graph, num_walks=num_walks, walk_length=walk_length,
                                         restart_prob=restart_prob, num_neighbors=hi, seed=seed + 7919)
        self.table: np.ndarray | None = None
        if graph.num_items <= TABLE_MAX_ITEMS:
            self.table = np.concatenate([
                self._window(np.arange(a, min(a + 4096, graph.num_items)), key=a)
                for a in range(0, graph.num_items, 4096)]).astype(np.int32)

    def _window(self, items: np.ndarray, key: int) -> np.ndarray:
        nbr, _cnt, _n = self.sampler.sample_arrays(items, key=key)
        return nbr[:, self.window[0]:self.window[1]]                  # -1 where fewer were visited

    def __call__(self, queries: np.ndarray, count: int, rng: np.random.Generator, key: int = 0) -> np.ndarray:
        """``(B, count)`` hard negatives for ``queries`` (``-1`` where a query has too few candidates)."""
        cand = self.table[queries] if self.table is not None else self._window(queries, key=key)
        cols = rng.integers(0, cand.shape[1], (len(queries), count))
        return np.take_along_axis(cand, cols, 1)


def curriculum_hard_count(epoch: int, cap: int) -> int:
    """Hard negatives per pair at 1-based ``epoch``: ``min(epoch - 1, cap)`` (the paper's curriculum).

    >>> [curriculum_hard_count(epoch, cap=3) for epoch in range(1, 7)]
    [0, 1, 2, 3, 3, 3]
    """
    return max(0, min(epoch - 1, cap))
