"""Compiled (numba) kernel of time-respecting importance neighbourhoods: the random-walk visit counts of
:func:`pinsage.sampling._kernels.walk_topk_range` with every step restricted to edges older than the
seed's time bound, read from the time-ordered adjacencies of :class:`pinsage.graph.time_index.TimeIndex`.

Random streams are keyed as in ``walk_topk_range`` (``(key, row id)``), so results never depend on thread
count or on the other rows of a call.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from pinsage.graph.time_index import band_of, prefix_below, record_count, record_start
from pinsage.sampling._kernels import _GOLDEN, _below, _next, _splitmix64, _topk_one

_LANES = 16


_TRIES = 4


@nb.njit(cache=True)
def _slot_search(ranks, start, lo, hi, bound, state):
    """The slow path of :func:`_slot_before`: ``_TRIES - 1`` more rejection draws, then the older prefix's
    length by binary search over the band and a uniform draw in it."""
    for _t in range(_TRIES - 1):
        state, bits = _next(state)
        u = _below(bits, hi)
        if u < lo or ranks[start + u] < bound:
            return start + u, state
    c = lo + prefix_below(ranks, start + lo, start + hi, bound)
    if c == 0:
        return np.int64(-1), state
    state, bits = _next(state)
    return start + _below(bits, c), state


@nb.njit(cache=True, inline="always")
def _slot_before(records, ranks, v, band, bound, bits, state):
    """A uniformly random edge slot of node ``v`` among its edges with time rank below ``bound`` (in band
    ``band`` of the cuts), or -1 when there is none; returns ``(slot, new state)``.

    ``v``'s record (:class:`pinsage.graph.time_index.TimeIndex`) says that its first ``lo = C_band`` edges
    are older and none past ``hi = C_{band+1}`` is: a uniform draw in ``[0, hi)`` (from the high 32 bits of
    ``bits``) is kept at once below ``lo``, after one rank read in ``[lo, hi)`` when that edge is older, and
    otherwise redrawn (:func:`_slot_search`). Every path returns a uniform older edge, so the result is
    exactly uniform over them."""
    start = record_start(records, v)
    lo = record_count(records, v, band)
    hi = record_count(records, v, band + 1)
    if hi == 0:
        return np.int64(-1), state
    u = _below(bits, hi)
    if u < lo or ranks[start + u] < bound:
        return start + u, state
    return _slot_search(ranks, start, lo, hi, bound, state)


@nb.njit(cache=True, inline="always")
def _hop_before(c, band, bound, state, item_records, item_groups, item_ranks, group_records, group_items,
                group_ranks):
    """One time-restricted hop from item ``c``: a uniform group among ``c``'s edges older than the bound,
    then a uniform item among that group's older edges (:func:`_slot_before`). Returns ``(next item, or -1
    when ``c`` has no older edge, new state)``. The first draws of both sides share one 64-bit draw (top
    half: the group; bottom half: the item)."""
    state, bits = _next(state)
    k, state = _slot_before(item_records, item_ranks, c, band, bound, bits, state)
    if k < 0:
        return np.int64(-1), state
    g = np.int64(item_groups[k])
    # the group has at least one older edge: (g, c) itself
    j, state = _slot_before(group_records, group_ranks, g, band, bound, bits << np.uint64(32), state)
    return np.int64(group_items[j]), state


@nb.njit(cache=True, nogil=True)
def _walk_one_before(s, bound, cuts, state, item_records, item_groups, item_ranks, group_records, group_items,
                     group_ranks, num_walks, walk_length, threshold, always_stop, visits):
    """The walks of seed ``s`` over edges older than ``bound`` in lock-step lanes (as ``_walk_one``):
    visited items (seed excluded) into ``visits``; returns their count."""
    nv = 0
    band = band_of(cuts, bound)
    lo = record_count(item_records, s, band)
    start = record_start(item_records, s)
    if lo + prefix_below(item_ranks, start + lo, start + record_count(item_records, s, band + 1), bound) == 0:
        return 0
    cur = np.empty(_LANES, dtype=np.int64)
    for w0 in range(0, num_walks, _LANES):
        lanes = min(_LANES, num_walks - w0)
        for j in range(lanes):
            cur[j] = s
        alive = lanes
        for _h in range(walk_length):
            if alive == 0:
                break
            j = 0
            while j < alive:
                nxt, state = _hop_before(cur[j], band, bound, state, item_records, item_groups, item_ranks,
                                         group_records, group_items, group_ranks)
                if nxt < 0:
                    alive -= 1
                    cur[j] = cur[alive]
                    continue
                if nxt != s:
                    visits[nv] = nxt
                    nv += 1
                stop = always_stop
                if not stop:
                    state, bits = _next(state)
                    stop = bits < threshold
                if stop:
                    alive -= 1
                    cur[j] = cur[alive]
                else:
                    cur[j] = nxt
                    j += 1
    return nv


@nb.njit(cache=True, nogil=True)
def walk_topk_before_range(
    seeds, bounds, cuts, item_records, item_groups, item_ranks, group_records, group_items, group_ranks, num_walks, walk_length, restart_prob, key, row_ids, nbr, cnt, nout, start, stop,
):
    """Time-respecting visit counts, top-T per seed, for ``seeds[start:stop]``.

    As :func:`pinsage.sampling._kernels.walk_topk_range` with uniform steps, except that every step from a
    node uses only its edges older than the seed's time: ``bounds`` ``(B,)`` int64 are rank bounds
    (:meth:`pinsage.graph.time_index.TimeIndex.rank_before`); ``cuts``, the records and the time-ordered
    adjacencies with their ranks are the fields of :class:`~pinsage.graph.time_index.TimeIndex`. A walk ends
    at an item with no older edge.
    Writes rows ``start..stop-1`` of ``nbr (B, T)`` (pre-filled with -1), ``cnt (B, T)`` and ``nout (B,)``.
    Releases the GIL.
    """
    always_stop = restart_prob >= 1.0
    threshold = np.uint64(0)
    if not always_stop:
        threshold = np.uint64(restart_prob * 18446744073709549568.0)
    base = _splitmix64(np.uint64(key))
    max_visits = num_walks * walk_length
    visits = np.empty(max_visits, dtype=np.int64)
    keys = np.empty(max_visits, dtype=np.int64)
    table_size = 1
    while table_size < 2 * max_visits:
        table_size *= 2
    table_items = np.full(table_size, -1, dtype=np.int64)
    table_counts = np.zeros(table_size, dtype=np.int32)
    for b in range(start, stop):
        state = _splitmix64(base ^ (np.uint64(row_ids[b] + 1) * np.uint64(_GOLDEN))) | np.uint64(1)
        nv = _walk_one_before(seeds[b], bounds[b], cuts, state, item_records, item_groups, item_ranks,
                              group_records, group_items, group_ranks, num_walks, walk_length, threshold,
                              always_stop, visits)
        nout[b] = _topk_one(visits, nv, table_items, table_counts, keys, nbr[b], cnt[b])
