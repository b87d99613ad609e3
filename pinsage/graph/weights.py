r"""Walk weights of an :class:`~pinsage.graph.InteractionGraph`: per-edge step weights, optionally decayed
with the edge's age, and their per-adjacency prefix sums in both CSR directions (docs/graph_store.md).

A weighted walk step from a node :math:`v` picks the edge :math:`e` of :math:`v`'s adjacency with
probability

.. math::
    p(e \mid v) = \frac{w_e}{\sum_{e' \ni v} w_{e'}}, \qquad
    w_e = x_e \cdot 2^{-(t_{\max} - t_e) / h},

where :math:`x_e` is the edge's weight (the weight column summed over merged duplicates, the number of
merged duplicates without one, 1 where the graph has neither), :math:`t_e` its time, :math:`t_{\max}` the
newest edge time and :math:`h` the half-life (no decay when it is not given). The same :math:`w_e` serves
both directions (item -> group and group -> item), so the walk is a reversible Markov chain on the
weighted bipartite graph.

:class:`WalkWeights` holds alias tables: a weighted step reads one 16-byte entry at a uniformly random slot
of the adjacency (no search, no scan, and not the adjacency itself: the entry holds both candidates). Per-adjacency prefix sums with a binary search per step (the first
design, docs/graph_store.md) ran at 0.38x the uniform sampler's seeds/s on graph S, alias tables at
the figure in docs/benchmarks/sampler.md.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numba as nb
import numpy as np

from pinsage._io import InputError
from pinsage.graph._csr import transpose_values

if TYPE_CHECKING:
    from pinsage.graph.interaction import InteractionGraph

__all__ = ["WalkWeights", "edge_walk_weights", "walk_weights"]


class WalkWeights(NamedTuple):
    r"""Alias tables (Walker 1977, Vose 1991) of the walk weights :math:`w_e` for both CSR directions, so that a
    weighted step costs one random slot and one comparison, like a uniform one.

    * ``group_alias``: ``(num_edges, 2)`` uint64 in group-CSR order; ``item_alias``: likewise in item-CSR order.
      Row ``e`` of node ``v``'s slice holds a 32-bit threshold (high half of column 0), the alias neighbour
      (low half of column 0) and the slot's own neighbour (column 1, a copy of the adjacency entry, so that
      a step makes one 16-byte load instead of two in separate arrays): a step draws a slot :math:`k` of
      :math:`v`'s :math:`d` slots uniformly and a fraction :math:`f` in :math:`[0, 2^{32})`; it takes the
      slot's own neighbour when :math:`f` is below the threshold, the alias neighbour otherwise. The thresholds are the probabilities quantised to 32 bits (an error
      below :math:`2^{-32}` per step); zero-weight edges have threshold 0 and are never taken.
    * ``item_total``: ``(num_items,)`` float32, each item's total walk weight (a seed with total 0 takes no
      step).
    """

    group_alias: np.ndarray
    item_alias: np.ndarray
    item_total: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.group_alias.nbytes + self.item_alias.nbytes + self.item_total.nbytes)


def edge_walk_weights(graph: InteractionGraph, half_life: float | None = None) -> np.ndarray:
    """The step weight :math:`w_e` of every edge, ``(num_edges,)`` float64 in group-CSR order (see the
    module doc).

    Args:
        graph: the interaction graph; its ``edge_weight`` (or ones) is :math:`x_e`.
        half_life: the age at which an edge's weight halves, in the units of the graph's times (datetime
            columns are kept as microseconds); None or 0: no decay.

    Raises:
        InputError: a half-life on a graph without times, or one that is not a positive finite number.
    """
    x = (np.ones(graph.num_edges) if graph.edge_weight is None
         else np.asarray(graph.edge_weight, dtype=np.float64))
    if not half_life:
        return x
    if not (np.isfinite(half_life) and half_life > 0):
        raise InputError(f"sampler.weight_half_life must be a positive number (in the time column's units), "
                         f"got {half_life!r}")
    if graph.edge_time is None:
        raise InputError("sampler.weight_half_life decays edges by their age, but the graph has no times: "
                         "give a time column (--time-col) or set the half-life to 0")
    t = np.asarray(graph.edge_time, dtype=np.float64)
    age = t.max() - t
    return x * np.exp2(-age / float(half_life))


@nb.njit(cache=True, nogil=True)
def _build_alias(indptr, adj, w, out, totals):
    """Vose's alias method per adjacency: fill ``out`` (``(E, 2)`` uint64 per edge: threshold << 32 | alias
    neighbour, then the edge's own neighbour) and
    ``totals`` (per node) from the CSR ``(indptr, adj)`` and per-edge weights ``w`` (float64). O(degree) per node."""
    max_deg = 0
    for v in range(len(indptr) - 1):
        max_deg = max(max_deg, indptr[v + 1] - indptr[v])
    prob = np.empty(max_deg, dtype=np.float64)
    alias = np.empty(max_deg, dtype=np.int64)
    small = np.empty(max_deg, dtype=np.int64)
    large = np.empty(max_deg, dtype=np.int64)
    scale = 4294967296.0
    top = np.uint64(0xFFFFFFFF)
    for v in range(len(indptr) - 1):
        lo = indptr[v]
        d = indptr[v + 1] - lo
        tot = 0.0
        for k in range(d):
            tot += w[lo + k]
        totals[v] = tot
        if d == 0:
            continue
        if tot <= 0.0:  # no step leaves this node; the entries are never read
            for k in range(d):
                out[lo + k, 0] = np.uint64(adj[lo + k])
                out[lo + k, 1] = np.uint64(adj[lo + k])
            continue
        ns = 0
        nl = 0
        for k in range(d):
            prob[k] = w[lo + k] * d / tot
            alias[k] = k
            if prob[k] < 1.0:
                small[ns] = k
                ns += 1
            else:
                large[nl] = k
                nl += 1
        while ns > 0 and nl > 0:
            ns -= 1
            a = small[ns]
            b = large[nl - 1]
            alias[a] = b
            prob[b] = prob[b] + prob[a] - 1.0
            if prob[b] < 1.0:
                nl -= 1
                small[ns] = b
                ns += 1
        for j in range(ns):  # left over by rounding: full slots
            prob[small[j]] = 1.0
            alias[small[j]] = small[j]
        for j in range(nl):
            prob[large[j]] = 1.0
            alias[large[j]] = large[j]
        for k in range(d):
            thr = top if prob[k] >= 1.0 else np.uint64(min(prob[k] * scale, scale - 1.0))
            out[lo + k, 0] = (thr << np.uint64(32)) | np.uint64(adj[lo + alias[k]])
            out[lo + k, 1] = np.uint64(adj[lo + k])


def walk_weights(graph: InteractionGraph, half_life: float | None = None) -> WalkWeights:
    """Alias tables of :func:`edge_walk_weights` per adjacency, in both CSR directions.

    Memory: 32 bytes per edge for the result (two uint64 per edge and direction) and 4 per item, plus two
    float64 arrays of ``num_edges`` while building. Linear time.
    """
    w = edge_walk_weights(graph, half_life)
    group_alias = np.empty((graph.num_edges, 2), dtype=np.uint64)
    group_total = np.empty(graph.num_groups, dtype=np.float64)
    _build_alias(np.asarray(graph.group_indptr), np.asarray(graph.group_items), w, group_alias, group_total)
    w_item = np.empty(graph.num_edges, dtype=np.float64)
    transpose_values(np.asarray(graph.group_indptr), np.asarray(graph.group_items),
                      np.asarray(graph.item_indptr), w, w_item)
    del w, group_total
    item_alias = np.empty((graph.num_edges, 2), dtype=np.uint64)
    item_total = np.empty(graph.num_items, dtype=np.float64)
    _build_alias(np.asarray(graph.item_indptr), np.asarray(graph.item_groups), w_item, item_alias, item_total)
    return WalkWeights(group_alias, item_alias, item_total.astype(np.float32))
