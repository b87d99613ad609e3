"""Negatives: a shared pool of easy negatives, and hard negatives from a PPR rank window."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping

import numpy as np

from pinsage.sampling._kernels import beyond_closure_range
from pinsage.sampling.importance import ImportanceSampler, stream_key

if TYPE_CHECKING:
    from pinsage.graph import HeteroGraph, InteractionGraph
    from pinsage.sampling.blocks import Neighborhoods

__all__ = ["HardNegatives", "curriculum_hard_count", "rank_window", "walk_window_sampler", "window_table",
           "mixed_window_sampler", "WindowWalker",
           "HARD_NEGATIVE_METHODS"]

#: with ``method="auto"``, catalogues up to this size get the precomputed table, larger ones ``"closure"``
TABLE_MAX_ITEMS = 200_000

#: the estimators :class:`HardNegatives` offers
HARD_NEGATIVE_METHODS = ("auto", "table", "closure")


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

    Two estimators of the PPR rank window ``[lo, hi)`` (``method``):

    * ``"table"``: PPR is estimated by random walks with restart (``restart_prob`` 0.15, up to
      ``walk_length`` item -> group -> item hops, ``num_walks`` walks, by default enough that ranks
      up to ``hi`` are visited: 2,000 for the paper's window); the visit counts rank the catalogue
      from each item and the items ranked ``[lo, hi)`` are stored once in a ``(num_items, hi - lo)``
      int32 table (:func:`window_table`: 4 bytes per entry, 2.4 GB at 200k items with the paper's
      3,000-wide window, and nothing else kept). Costs ``num_walks`` x ~5 hops per item before
      training: right for catalogues up to :data:`TABLE_MAX_ITEMS` (MovieLens-100K: well under a second).
    * ``"closure"``: nothing precomputed; per batch, for each query :math:`q` the closure
      :math:`H(q)` = :math:`q`, its first :math:`f` importance neighbours and their first :math:`f`
      (:math:`f = \lceil\sqrt{lo}\,\rceil`: at most :math:`1 + f + f^2` items, in practice fewer
      because neighbourhoods overlap: a median of 546 / 752 on graphs S / L for the paper's window; the items a short walk ranks
      highest), and each hard negative is the first item outside :math:`H(q)` visited by a walk
      with restart from :math:`q`: items just past the top of :math:`q`'s PPR ranking, weighted by
      how often walks leave the closure through them. About a dozen walk hops per sample instead of
      ~10,000 per query: 0.026 s per 512-query batch on graph L against 0.83 s for the walk estimate
      (32x; ``benchmarks/hard_negatives.py``, which also scores both against exact PPR ranks).
      A query whose walks never leave its closure within ``max_tries`` walks gets -1 (masked).
      Needs the importance ``neighborhoods``.
    * ``"auto"`` (default): ``"table"`` up to :data:`TABLE_MAX_ITEMS` items, else ``"closure"``.

    Exact PPR (:func:`pinsage.sampling.personalized_pagerank`) costs a sparse power iteration per
    query; both estimators need no dense state.

    Args:
        graph: the interaction graph.
        window: ``(lo, hi)`` PPR ranks (see :func:`rank_window`).
        neighborhoods: importance neighbourhoods of every item (required by ``"closure"``).
        method: ``"auto"``, ``"table"`` or ``"closure"``.
        walker: the walks behind ``"table"`` (default: :func:`walk_window_sampler` on ``graph``); a graph of
            several relations passes :func:`mixed_window_sampler`'s, so hard negatives come from the mixed walk.
            (``"closure"`` walks ``graph`` uniformly.)
    """

    def __init__(self, graph: "InteractionGraph", window: tuple[int, int], num_walks: int = 0,
                 walk_length: int = 10, restart_prob: float = 0.15, seed: int = 0,
                 neighborhoods: "Neighborhoods | None" = None, method: str = "auto",
                 max_tries: int = 20, walker: "WindowWalker | None" = None) -> None:
        if method not in HARD_NEGATIVE_METHODS:
            raise ValueError(f"method must be one of {HARD_NEGATIVE_METHODS}, got {method!r}")
        if method == "auto":
            method = "table" if graph.num_items <= TABLE_MAX_ITEMS else "closure"
        if method == "closure" and neighborhoods is None:
            raise ValueError("method='closure' needs the importance neighborhoods")
        if neighborhoods is not None and neighborhoods.num_nodes != graph.num_items:
            raise ValueError(f"neighborhoods cover {neighborhoods.num_nodes} items, the graph has {graph.num_items}")
        self.window = window
        self.method = method
        self.graph = graph
        self.restart_prob = restart_prob
        self.walk_length = walk_length
        self.max_tries = max_tries
        self.seed = seed
        self.neighborhoods = neighborhoods
        self.fan_out = max(1, math.ceil(math.sqrt(window[0])))
        self.table: np.ndarray | None = None
        if method == "table":
            self.table = window_table(graph, window, num_walks, walk_length, restart_prob, seed, walker=walker)

    def __call__(self, queries: np.ndarray, count: int, rng: np.random.Generator, key: int = 0,
                 positions: np.ndarray | None = None, num_positions: int | None = None) -> np.ndarray:
        """``(B, count)`` hard negatives for ``queries`` ``(B,)`` (``-1`` where a query has too few
        candidates).

        The queries may be a subset of a larger (global) batch of ``num_positions`` queries, query
        ``b`` sitting at ``positions[b]`` there (default: ``arange(B)`` of ``B``). A query's negatives
        depend only on its position, never on which other positions are asked for, so a batch split
        over processes gets the negatives the whole batch would get:

        * ``"table"``: column draws ``rng.integers(0, hi - lo, (num_positions, count))`` are made once
          for every position of the batch, and ``B`` rows ``positions`` of them pick from the stored
          windows (the ``(B, count)`` draws of a call without ``positions``: the same stream);
        * ``"closure"``: the walks of query ``b`` use the stream of ``(seed, key, positions[b])``.
        """
        queries = np.asarray(queries)
        if positions is None:
            positions = np.arange(len(queries), dtype=np.int64)
        positions = np.asarray(positions, dtype=np.int64)
        if num_positions is None:
            num_positions = len(queries)
        if positions.shape != queries.shape or (len(positions) and (positions.min() < 0 or positions.max() >= num_positions)):
            raise ValueError(f"positions must be {queries.shape} indices below num_positions {num_positions}")
        if self.table is not None:
            cand = self.table[queries]                                          # (B, hi - lo)
            cols = rng.integers(0, cand.shape[1], (num_positions, count))[positions]  # (B, count)
            return np.take_along_axis(cand, cols, 1)
        g, nb = self.graph, self.neighborhoods
        out = np.full((len(queries), count), -1, dtype=np.int64)
        beyond_closure_range(queries.astype(np.int64), nb.indptr, nb.indices, self.fan_out,
                             g.item_indptr, g.item_groups, g.group_indptr, g.group_items,
                             None, None, None,  # hard negatives walk uniformly
                             self.walk_length, self.restart_prob, self.max_tries,
                             stream_key(self.seed + 7919, key), positions, out, 0, len(queries))
        return out


def window_table(graph: "InteractionGraph", window: tuple[int, int], num_walks: int = 0, walk_length: int = 10,
                 restart_prob: float = 0.15, seed: int = 0, chunk: int = 4096,
                 walker: "WindowWalker | None" = None) -> np.ndarray:
    """The ``(num_items, hi - lo)`` table of ``method="table"``: row ``v`` holds the items ranked
    ``[lo, hi)`` by :func:`walk_window_sampler`'s visit counts from ``v`` (-1 where fewer were visited).

    Int32 when the ids fit (else int64), allocated once and filled ``chunk`` items at a time (chunk
    ``c`` starting at item ``a`` uses key ``a``): each chunk's kernel output, ``(chunk, hi)`` int64
    ids and int32 counts (~250 MB for the paper's ``hi`` = 5000), is copied from and freed before the
    next, so the peak is the table plus one chunk. (Slicing the chunks and concatenating them kept
    every chunk's whole buffer alive: ~15 GB at 200k items before training started.)
    """
    lo, hi = window
    n = graph.num_items
    dtype = np.int32 if n <= np.iinfo(np.int32).max else np.int64
    table = np.empty((n, hi - lo), dtype=dtype)
    sampler = walker if walker is not None else walk_window_sampler(graph, window, num_walks, walk_length,
                                                                     restart_prob, seed)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        nbr = sampler.sample_arrays(np.arange(a, b), key=a)[0]                # (b - a, hi) int64
        table[a:b] = nbr[:, lo:hi]                                            # copy (and narrow)
        del nbr
    return table


def walk_window_sampler(graph: "InteractionGraph", window: tuple[int, int], num_walks: int = 0,
                        walk_length: int = 10, restart_prob: float = 0.15, seed: int = 0) -> ImportanceSampler:
    """The walk estimate of PPR behind ``method="table"``: ``sampler.sample_arrays(items)[0][:, lo:hi]``
    are the items ranked ``[lo, hi)`` by visit count from each item (-1 where fewer were visited).
    ``num_walks`` 0: enough that ranks up to ``hi`` are visited (``min(2000, max(200, 3 * hi))``)."""
    num_walks = num_walks or int(min(2000, max(200, 3 * window[1])))
    return ImportanceSampler(graph, num_walks=num_walks, walk_length=walk_length, restart_prob=restart_prob,
                             num_neighbors=window[1], seed=seed + 7919)


class WindowWalker:
    """A merged :class:`~pinsage.sampling.MetapathSampler` seen as :func:`window_table` reads an
    :class:`~pinsage.sampling.ImportanceSampler`: ``sample_arrays(seeds, key)[0]`` is ``(B, hi)`` items by visits."""

    def __init__(self, sampler) -> None:
        self.sampler = sampler

    def sample_arrays(self, seeds: np.ndarray, key: int | None = None):
        nbr, cnt, n = self.sampler.sample_arrays(seeds, key=key)
        return nbr[0], cnt[0], n[0]


def mixed_window_sampler(graph: "HeteroGraph", relation_probs: Mapping[str, float], window: tuple[int, int], num_walks: int = 0, walk_length: int = 10,
                         restart_prob: float = 0.15, seed: int = 0) -> WindowWalker:
    """:func:`walk_window_sampler` for a :class:`~pinsage.graph.HeteroGraph`: walks with restart that mix the
    relations with the step probabilities ``relation_probs`` (uniform steps), counting visits up to rank ``hi``."""
    from pinsage.sampling.metapath import MetapathSampler

    num_walks = num_walks or int(min(2000, max(200, 3 * window[1])))
    return WindowWalker(MetapathSampler(graph, dict(relation_probs), num_walks=num_walks, walk_length=walk_length,
                                        restart_prob=restart_prob, num_neighbors=window[1], seed=seed + 7919,
                                        merge=True))


def curriculum_hard_count(epoch: int, cap: int) -> int:
    """Hard negatives per pair at 1-based ``epoch``: ``min(epoch - 1, cap)`` (the paper's curriculum).

    >>> [curriculum_hard_count(epoch, cap=3) for epoch in range(1, 7)]
    [0, 1, 2, 3, 3, 3]
    """
    return max(0, min(epoch - 1, cap))
