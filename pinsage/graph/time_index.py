r"""A time index on the interaction graph's CSR: every adjacency in time order, so that the edges of a node
older than a time :math:`t` are a prefix found by binary search (no scan), in both directions.

Time-respecting neighbourhoods (docs/time.md) walk only edges with :math:`t_e < t`: from a node :math:`v`
with time-ordered adjacency :math:`a_v` and times :math:`\tau_v` (ascending), a step draws uniformly from
:math:`a_v[0 : c_v(t))` (:mod:`pinsage.sampling._time_kernels`: by rejection first, the binary search when
that fails) with

.. math::
    c_v(t) = |\{ k : \tau_v[k] < t \}|.

:func:`degree_before` is :math:`c_v(t)` for many ``(v, t)`` at once: the log
degree of an item as the graph stood before :math:`t`.

The graph's own adjacency stays in id order (docs/graph_store.md says why): the index is a second,
time-ordered copy of the edges, built only when a time-restricted step is asked for: per edge and direction a
neighbour id and a 32-bit time rank (16 bytes per edge for both directions with int32 ids), per node a 64-byte
record of its offset and its edge counts below 13 global time cuts (:class:`TimeIndex`), plus the distinct
times. Built by one ``np.unique`` of the times and a sort of each adjacency.

A merged duplicate edge carries the latest time of its rows (:class:`~pinsage.graph.InteractionGraph`), so a
restricted step never takes an edge some of whose rows are at or after :math:`t`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numba as nb
import numpy as np

from pinsage._io import InputError
from pinsage.graph._csr import transpose_values

if TYPE_CHECKING:
    from pinsage.graph.interaction import InteractionGraph

__all__ = ["TimeIndex", "time_index", "degree_before"]

_ID_LIMIT = 2**32 - 1


class TimeIndex(NamedTuple):
    """Both CSR directions with each adjacency sorted by edge time (ties: smaller neighbour id first), and per
    node one 64-byte record of how many of its edges are older than each of :data:`LEVELS` - 1 time cuts.

    Times are ranks: an edge's rank is the position of its time in ``times``, the graph's distinct edge times
    ascending (the graph's time dtype; int64 microseconds for dates), so ``t_e < t`` exactly when the rank is
    below ``searchsorted(times, t, "left")`` (:meth:`rank_before`).

    * ``cuts``: ``(LEVELS + 1,)`` int64 rank cut-points ``R_0 = 0 <= R_1 <= ... <= R_LEVELS = D + 1``
      (``D = len(times)``): quantiles of all edges' ranks, so each band ``[R_k, R_{k+1})`` holds about
      ``1 / LEVELS`` of the edges;
    * ``group_records``: ``(num_groups, 16)`` uint32, 64-byte aligned rows: the group's first edge
      (int64, in columns 0-1, low half first), then ``C_1 .. C_LEVELS`` (columns 2-15): its number of edges
      with rank below ``R_k`` (``C_LEVELS`` is its degree; ``C_0 = 0``);
    * ``group_items`` ``(num_edges,)``: each group's items in time order (the graph's index dtype);
      ``group_ranks`` ``(num_edges,)`` uint32 their ranks, ascending within the group;
    * ``item_records``, ``item_groups``, ``item_ranks``: likewise for each item's groups.

    A step from node ``v`` with rank bound ``b`` in band ``k`` knows without a search that the first ``C_k``
    edges are older and that none past ``C_{k+1}`` is; only a draw that lands in between reads a rank
    (:mod:`pinsage.sampling._time_kernels`). One record read replaces the offsets read of a plain step.
    """

    times: np.ndarray
    cuts: np.ndarray
    group_records: np.ndarray
    group_items: np.ndarray
    group_ranks: np.ndarray
    item_records: np.ndarray
    item_groups: np.ndarray
    item_ranks: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self))

    def rank_before(self, before: np.ndarray | float) -> np.ndarray:
        """The rank bound of times ``before`` (any shape): an edge is older than ``before`` exactly when its
        rank is below the result (int64; ``searchsorted(times, before, "left")``)."""
        b = np.asarray(before)
        if b.ndim == 0 or b.dtype.kind not in "iu" or self.times.dtype.kind not in "iu":
            return np.searchsorted(self.times, b, side="left").astype(np.int64)
        out = np.empty(b.size, dtype=np.int64)
        _lower_bounds(self.times, np.ascontiguousarray(b.ravel(), dtype=np.int64), out)
        return out.reshape(b.shape)


@nb.njit(cache=True, nogil=True)
def _lower_bounds(times, bounds, out):
    """``out[k] = |{j : times[j] < bounds[k]}|`` for ascending ``times``: branch-free binary searches that
    advance together, one halving step for all bounds at a time, so their loads overlap (a third of
    ``np.searchsorted``'s time on 512 bounds over 10**6 times)."""
    n = len(times)
    for k in range(len(bounds)):
        out[k] = 0
    size = n
    while size > 1:
        half = size >> 1
        for k in range(len(bounds)):
            base = out[k]
            out[k] = base + half * np.int64(times[base + half - 1] < bounds[k])
        size -= half
    if n > 0:
        for k in range(len(bounds)):
            out[k] += np.int64(times[out[k]] < bounds[k])


#: time bands per node record: 2 columns of offset and 14 counts fill 64 bytes
LEVELS = 14


def _aligned_records(n: int) -> np.ndarray:
    """``(n, 16)`` uint32 zeros whose rows start on 64-byte boundaries (one cache line each)."""
    buf = np.zeros(n * 16 + 16, dtype=np.uint32)
    skip = (-buf.ctypes.data % 64) // 4
    return buf[skip:skip + n * 16].reshape(n, 16)


@nb.njit(cache=True, nogil=True)
def _time_order_rows(indptr, ids, ranks, cuts, out_ids, out_ranks, records):
    """Per row of the CSR ``(indptr, ids)`` with per-edge ``ranks``: write its ids and ranks in ascending
    (rank, id) order and its record (first edge, counts below each cut)."""
    levels = len(cuts) - 1
    for v in range(len(indptr) - 1):
        lo = indptr[v]
        hi = indptr[v + 1]
        packed = np.empty(hi - lo, dtype=np.uint64)
        for k in range(lo, hi):
            packed[k - lo] = (np.uint64(ranks[k]) << np.uint64(32)) | np.uint64(ids[k])
        packed.sort()
        for k in range(hi - lo):
            out_ids[lo + k] = packed[k] & np.uint64(0xFFFFFFFF)
            out_ranks[lo + k] = packed[k] >> np.uint64(32)
        records[v, 0] = np.uint32(np.uint64(lo) & np.uint64(0xFFFFFFFF))
        records[v, 1] = np.uint32(np.uint64(lo) >> np.uint64(32))
        for c in range(1, levels + 1):
            records[v, 1 + c] = prefix_below(out_ranks, lo, hi, cuts[c])


def time_index(graph: InteractionGraph) -> TimeIndex:
    """The :class:`TimeIndex` of ``graph``.

    Raises:
        InputError: the graph has no edge times (build it with a time column), or more than 2**32 - 1
            items, groups or distinct times.
    """
    if graph.edge_time is None:
        raise InputError("time-respecting neighbourhoods need edge times: build the graph with a time column "
                         "(--time-col)")
    if max(graph.num_items, graph.num_groups) > _ID_LIMIT:
        raise InputError(f"the time index packs ids in 32 bits: at most {_ID_LIMIT} items and groups")
    times, ranks = np.unique(np.asarray(graph.edge_time), return_inverse=True)
    if len(times) >= _ID_LIMIT:
        raise InputError(f"the time index keeps time ranks in 32 bits: fewer than {_ID_LIMIT} distinct times")
    ranks = ranks.astype(np.uint32).ravel()
    cuts = np.empty(LEVELS + 1, dtype=np.int64)
    cuts[0], cuts[-1] = 0, len(times) + 1
    if len(ranks):
        cuts[1:-1] = np.quantile(ranks, np.arange(1, LEVELS) / LEVELS, method="higher")
    else:
        cuts[1:-1] = 0
    parts = []
    for indptr, ids, edge_ranks in ((graph.group_indptr, graph.group_items, ranks), (graph.item_indptr,
                                                                                     graph.item_groups, None)):
        indptr, ids = np.asarray(indptr), np.asarray(ids)
        if edge_ranks is None:  # item direction: the ranks in item-CSR order
            edge_ranks = np.empty_like(ranks)
            transpose_values(np.asarray(graph.group_indptr), np.asarray(graph.group_items), indptr, ranks,
                             edge_ranks)
        out_ids, out_ranks = np.empty_like(ids), np.empty(len(ids), dtype=np.uint32)
        records = _aligned_records(len(indptr) - 1)
        _time_order_rows(indptr, ids, edge_ranks, cuts, out_ids, out_ranks, records)
        parts += [records, out_ids, out_ranks]
    return TimeIndex(times, cuts, *parts)


@nb.njit(cache=True, inline="always")
def prefix_below(ranks, lo, hi, bound):
    """How many of the ascending ``ranks[lo:hi]`` are below ``bound`` (binary search)."""
    a = lo
    b = hi
    while a < b:
        m = (a + b) >> 1
        if ranks[m] < bound:
            a = m + 1
        else:
            b = m
    return a - lo


@nb.njit(cache=True, inline="always")
def band_of(cuts, bound):
    """The band ``k`` with ``cuts[k] <= bound < cuts[k + 1]`` of a rank bound (``0 <= bound <= D``)."""
    k = 0
    while k + 2 < len(cuts) and cuts[k + 1] <= bound:
        k += 1
    return k


@nb.njit(cache=True, inline="always")
def record_start(records, v):
    """First edge of node ``v`` (its CSR offset) from its record."""
    return np.int64(records[v, 0]) | (np.int64(records[v, 1]) << np.int64(32))


@nb.njit(cache=True, inline="always")
def record_count(records, v, k):
    """``C_k``: edges of node ``v`` with rank below the cut ``R_k`` (``C_0 = 0``; no branch: column 1, read
    for ``k = 0``, is multiplied by 0)."""
    return np.int64(records[v, 1 + k]) * np.int64(k > 0)


@nb.njit(cache=True, nogil=True)
def _degrees_before(records, ranks, cuts, nodes, bounds, out):
    for j in range(len(nodes)):
        v = nodes[j]
        k = band_of(cuts, bounds[j])
        lo = record_count(records, v, k)
        start = record_start(records, v)
        out[j] = lo + prefix_below(ranks, start + lo, start + record_count(records, v, k + 1), bounds[j])


def degree_before(graph: InteractionGraph, index: TimeIndex, items: np.ndarray,
                  before: np.ndarray | float) -> np.ndarray:
    """``(len(items),)`` int64: the number of groups of each item with an edge older than ``before``
    (``(len(items),)`` or one time for all, in the graph's time units): the item's degree as the graph stood
    before that time."""
    items = np.ascontiguousarray(items, dtype=np.int64)
    bounds = np.ascontiguousarray(np.broadcast_to(index.rank_before(before), items.shape))
    out = np.empty(len(items), dtype=np.int64)
    _degrees_before(index.item_records, index.item_ranks, index.cuts, items, bounds, out)
    return out
