"""Compiled (numba) kernel of time-respecting importance neighbourhoods: the random-walk visit counts of
:func:`pinsage.sampling._kernels.walk_topk_range` with every step restricted to edges older than the
seed's time bound, read from the time-ordered adjacencies of :class:`pinsage.graph.time_index.TimeIndex`.

Random streams are keyed by ``(key, row id, walk)`` (:func:`walk_topk_before_range`), so results never
depend on thread count or on the other rows of a call.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from pinsage.graph.time_index import band_of, prefix_below, record_count, record_start
from pinsage.sampling._kernels import (
    _GOLDEN, _below, _next, _rank_rows, _rank_scratch, _restart_threshold, _splitmix64,
)
from pinsage.sampling._prefetch import _prefetch, _prefetch_row

#: walks advanced together, hop level by hop level (seeds are grouped up to about this many walks)
_WALKS_PER_GROUP = 512
#: draws of a slot before the older prefix is found by binary search (on bands longer than _SEARCH_BAND)
_TRIES = 4
#: bands of at most this many edges are searched at the first miss (their ranks span a few cache lines)
_SEARCH_BAND = 64


@nb.njit(cache=True, inline="always")
def _older_slots(m, act, node, band, bound, draw, shift, wstate, records, ranks, ids, start, first, last, slot):
    """For the ``m`` walks ``act[:m]`` standing on nodes ``node[:m]``: a uniformly random edge slot of each
    node among its edges older than the walk's bound (``band[t]``, ``bound[t]``), into ``slot[:m]``.

    The node's record (:class:`pinsage.graph.time_index.TimeIndex`) says that its first ``C_band`` edges are
    older and none past ``C_{band+1}`` is; a slot is drawn uniformly below ``C_{band+1}`` from 32 bits of
    ``draw[t]`` (the high half when ``shift`` is 0, the low half when 32). A slot below ``C_band`` is kept at
    once; one in the band is kept after a rank read shows it older, else redrawn from the walk's stream
    ``wstate[act[t]]`` (after ``_TRIES`` draws, the older prefix by binary search over the band). Every path
    gives a uniform older slot. Every node here has an older edge (the seed was checked; later nodes were
    reached through one). Three passes (records, draws, band checks), so the record loads of all walks are
    in flight together; the draw pass prefetches each slot's neighbour id (``ids``, read by the caller's next
    pass) and, for a slot in the band, its rank. ``start``, ``first``, ``last``: int64 scratch of ``m``."""
    for t in range(m):
        v = node[t]
        start[t] = record_start(records, v)
        first[t] = record_count(records, v, band[t])
        last[t] = record_count(records, v, band[t] + 1)
    for t in range(m):
        u = _below(draw[t] << np.uint64(shift), last[t])
        slot[t] = start[t] + u
        first[t] = u - first[t]  # >= 0: the slot lies in the band and needs a rank read
        _prefetch(ids, slot[t])
        if first[t] >= 0:
            _prefetch(ranks, slot[t])
    for t in range(m):
        if first[t] < 0:
            continue
        b = bound[t]
        if ranks[slot[t]] < b:
            continue
        slot[t] = _redraw(ranks, start[t], last[t], b, records, node[t], band[t], wstate, act[t])


@nb.njit(cache=True)
def _redraw(ranks, start, hi, bound, records, v, band, wstate, wk):
    """The slow path of :func:`_older_slots`, after a first draw in ``[0, hi)`` fell on an edge that is not
    older: a slot drawn from the walk's stream ``wstate[wk]`` (updated). Returns the slot.

    On a band of at most ``_SEARCH_BAND`` edges (a few cache lines of ranks) the older prefix's length ``c``
    is found at once by binary search and the slot drawn in ``[0, c)``; on a longer band, up to
    ``_TRIES - 1`` more draws in ``[0, hi)`` first (each one read), then the search. Either way the slot is
    uniform over the older edges (a first draw is kept exactly when it lies below ``c``)."""
    lo = record_count(records, v, band)
    st = wstate[wk]
    tries = _TRIES - 1 if hi - lo > _SEARCH_BAND else 0
    for _t in range(tries):
        st, bits = _next(st)
        u = _below(bits, hi)
        if u < lo or ranks[start + u] < bound:
            wstate[wk] = st
            return start + u
    c = lo + prefix_below(ranks, start + lo, start + hi, bound)
    st, bits = _next(st)
    wstate[wk] = st
    return start + _below(bits, c)


@nb.njit(cache=True, nogil=True)
def walk_topk_before_range(
    seeds, bounds, cuts, item_records, item_groups, item_ranks, group_records, group_items, group_ranks, num_walks,
    walk_length, restart_prob, key, row_ids, nbr, cnt, nout, start, stop,
):
    """Time-respecting visit counts, top-T per seed, for ``seeds[start:stop]``.

    As :func:`pinsage.sampling._kernels.walk_topk_range` with uniform steps, except that every step from a
    node uses only its edges older than the seed's time: ``bounds`` ``(B,)`` int64 are rank bounds
    (:meth:`pinsage.graph.time_index.TimeIndex.rank_before`); ``cuts``, the records and the time-ordered
    adjacencies with their ranks are the fields of :class:`~pinsage.graph.time_index.TimeIndex`. A seed
    without an older edge gets an empty neighbourhood; every later item of a walk has one (the edge it was
    reached through), so walks end only by restart or after ``walk_length`` hops.

    Random streams: walk ``w`` of row ``b`` draws from its own xorshift64* stream seeded by
    ``(key, row_ids[b], w)``: per hop one 64-bit draw (high half: the group slot, low half: the item slot;
    redraws of a slot that is not older come from the same stream), then one restart draw. So a row's result
    depends only on ``(key, row_ids[b])``, never on the thread split or the other rows.

    Schedule: rows go in groups of about ``_WALKS_PER_GROUP`` walks, and all the group's walks advance hop
    level by hop level, one pass per dependent load (:func:`_older_slots` for the item's and the group's
    edges), so the loads of hundreds of walks are in flight together. Writes rows ``start..stop-1`` of
    ``nbr (B, T)`` (pre-filled with -1), ``cnt (B, T)`` and ``nout (B,)``. Releases the GIL.
    """
    always_stop, threshold = _restart_threshold(restart_prob)
    base = _splitmix64(np.uint64(key))
    L = walk_length
    max_visits = num_walks * L
    per_group = max(1, _WALKS_PER_GROUP // num_walks)
    cap = per_group * num_walks
    vis = np.empty(cap * L, dtype=np.int64)
    wstate = np.empty(cap, dtype=np.uint64)
    scratch = np.empty((9, cap), dtype=np.int64)
    act, node, origin, band, bound, s0, s1, s2, slot = (scratch[0], scratch[1], scratch[2], scratch[3], scratch[4],
                                                       scratch[5], scratch[6], scratch[7], scratch[8])
    draw = np.empty(cap, dtype=np.uint64)
    ranking = _rank_scratch(max_visits)
    for g0 in range(start, stop, per_group):
        g1 = min(stop, g0 + per_group)
        vis[:(g1 - g0) * max_visits] = -1
        m = 0  # live walks: act[:m] (walk ids), node[:m] (where they stand), origin / band / bound (their seed's)
        for sb in range(g1 - g0):
            b = g0 + sb
            s = np.int64(seeds[b])
            k = band_of(cuts, bounds[b])
            if record_count(item_records, s, k) == 0:  # no edge surely older: search the band
                st = record_start(item_records, s)
                if prefix_below(item_ranks, st, st + record_count(item_records, s, k + 1), bounds[b]) == 0:
                    continue  # no edge older than the bound: an empty neighbourhood
            row = _splitmix64(base ^ (np.uint64(row_ids[b] + 1) * np.uint64(_GOLDEN)))
            for w in range(num_walks):
                wk = sb * num_walks + w
                wstate[wk] = _splitmix64(row ^ (np.uint64(w + 1) * np.uint64(_GOLDEN))) | np.uint64(1)
                act[m] = wk
                node[m] = s
                origin[m] = s
                band[m] = k
                bound[m] = bounds[b]
                m += 1
        for h in range(L):
            if m == 0:
                break
            for t in range(m):  # the hop's draw, from each walk's own stream
                wk = act[t]
                wstate[wk], draw[t] = _next(wstate[wk])
            _older_slots(m, act, node, band, bound, draw, 0, wstate, item_records, item_ranks, item_groups,
                         s0, s1, s2, slot)
            for t in range(m):
                node[t] = item_groups[slot[t]]
                _prefetch_row(group_records, node[t])
            _older_slots(m, act, node, band, bound, draw, 32, wstate, group_records, group_ranks, group_items,
                         s0, s1, s2, slot)
            m2 = 0
            for t in range(m):
                wk = act[t]
                v = np.int64(group_items[slot[t]])
                o = origin[t]
                vis[wk * L + h] = v if v != o else np.int64(-1)
                live = h + 1 < L
                if live and not always_stop:
                    wstate[wk], x = _next(wstate[wk])
                    live = x >= threshold
                elif always_stop:
                    live = False
                act[m2] = wk
                node[m2] = v
                _prefetch_row(item_records, v)  # the next level's first pass
                origin[m2] = o
                band[m2] = band[t]
                bound[m2] = bound[t]
                m2 += np.int64(live)
            m = m2
        _rank_rows(vis, g1 - g0, g0, max_visits, ranking, nbr, cnt, nout)
