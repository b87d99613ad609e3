"""Compiled (numba) kernels: the random-walk visit-count sampler and the
closure hard-negative sampler (first walk visit outside a query's two-hop importance closure).

Random numbers come from a counter-based generator (splitmix64 seeding a xorshift64* stream per
row), so results depend only on ``(seed, batch key, row id)``, never on thread count or scheduling.
A row's id is its position in the call unless the caller gives ``row_ids`` (e.g. the row's position in
a global batch split over processes, or its item id), so a row's result need not depend on which
other rows are in the same call. (The walk kernel advances the walks of several rows together, but each
row keeps its own stream and its own draws: the grouping changes the order of memory reads, not the
result.)
"""
from __future__ import annotations

import numba as nb
import numpy as np

from pinsage.sampling._prefetch import _prefetch, _prefetch_row

_GOLDEN = 0x9E3779B97F4A7C15



@nb.njit(cache=True, inline="always")
def _splitmix64(x: np.uint64) -> np.uint64:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True, inline="always")
def _next(state: np.uint64) -> tuple[np.uint64, np.uint64]:
    """xorshift64*: returns (new_state, 64 random bits)."""
    state ^= state >> np.uint64(12)
    state ^= state << np.uint64(25)
    state ^= state >> np.uint64(27)
    return state, state * np.uint64(0x2545F4914F6CDD1D)


@nb.njit(cache=True, inline="always")
def _below(bits: np.uint64, n: np.int64) -> np.int64:
    """Map 64 random bits to ``[0, n)`` by multiply-shift on the top 32 bits (bias < n / 2**32)."""
    return np.int64(((bits >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))


@nb.njit(cache=True, inline="always")
def _hop(lo, deg, state, item_groups, group_indptr, group_items):
    """One item -> uniform group -> uniform item step from an item whose groups are
    ``item_groups[lo:lo + deg]`` (``deg >= 1``): returns ``(next item, new state)``. One 64-bit
    draw: its top half picks the group, its bottom half the item."""
    state, bits = _next(state)
    g = item_groups[lo + _below(bits, deg)]
    glo = group_indptr[g]
    gdeg = group_indptr[g + 1] - glo
    return np.int64(group_items[glo + _below(bits << np.uint64(32), gdeg)]), state


@nb.njit(cache=True, inline="always")
def _pick(alias, lo, deg, bits32):
    """The neighbour of the adjacency slice ``lo:lo + deg`` that 32 random bits select with probability
    proportional to its edge's walk weight, from the alias rows ``alias[lo:lo + deg]``
    (:class:`pinsage.graph.weights.WalkWeights`): ``bits32 * deg`` gives the slot (high part) and a uniform
    32-bit fraction (low part) compared with the slot's threshold. The row holds both candidates (the
    alias neighbour and the slot's own), one 16-byte load; the choice is a select, not a branch."""
    x = bits32 * np.uint64(deg)
    k = lo + np.int64(x >> np.uint64(32))
    entry = alias[k, 0]
    own = np.int64(alias[k, 1])
    other = np.int64(entry & np.uint64(0xFFFFFFFF))
    return own if (x & np.uint64(0xFFFFFFFF)) < (entry >> np.uint64(32)) else other


@nb.njit(cache=True)
def _step(lo, deg, state, item_groups, item_alias, group_indptr, group_items, group_alias):
    """One item -> group -> item step: uniform (:func:`_hop`) when ``item_alias`` is None, else each edge
    with probability proportional to its walk weight (``item_alias`` / ``group_alias``: alias tables in
    item- and group-CSR order, :class:`pinsage.graph.weights.WalkWeights`). One 64-bit draw either way.
    ``None`` is a type to numba: the uniform call is compiled without the weighted branch."""
    if item_alias is None:
        return _hop(lo, deg, state, item_groups, group_indptr, group_items)
    state, bits = _next(state)
    g = _pick(item_alias, lo, deg, bits >> np.uint64(32))
    glo = group_indptr[g]
    gdeg = group_indptr[g + 1] - glo
    return _pick(group_alias, glo, gdeg, bits & np.uint64(0xFFFFFFFF)), state


_LANES = 16


@nb.njit(cache=True)
def _stuck(item_total, v):
    """Whether a weighted walk cannot leave item ``v`` (total walk weight 0); never for uniform walks
    (``item_total`` None)."""
    if item_total is None:
        return False
    return item_total[v] <= 0.0


@nb.njit(cache=True, nogil=True)
def _walk_one(s, state, item_indptr, item_groups, group_indptr, group_items,
              item_alias, group_alias, item_total,
              num_walks, walk_length, threshold, always_stop, visits):
    """Run the walks of one seed; write visited items (seed excluded) to ``visits``; return their count.

    Walks advance in lock-step batches of ``_LANES``; per round each live lane, in slot order, takes one
    hop draw then one restart draw, and a stopped lane's slot is refilled by the last live lane. This
    order of draws defines the random stream of a row: :func:`walk_topk_range` replays it
    (:func:`_schedule`) and walks the same paths in another order; the tests compare the two.
    """
    nv = 0
    if item_indptr[s + 1] - item_indptr[s] == 0:
        return 0
    if _stuck(item_total, s):
        return 0  # every edge of the seed has weight 0: no step can be taken
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
                c = cur[j]
                lo = item_indptr[c]
                deg = item_indptr[c + 1] - lo
                if deg == 0:
                    alive -= 1
                    cur[j] = cur[alive]
                    continue
                nxt, state = _step(lo, deg, state, item_groups, item_alias, group_indptr,
                                   group_items, group_alias)
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


#: up to this many neighbours per row, :func:`_topk_one` keeps the best ones in a sorted buffer while it
#: reads the counts (no full sort); above it, it sorts all distinct items
_SELECT_MAX = 64


@nb.njit(cache=True, nogil=True)
def _topk_one(visits, nv, table_items, table_counts, keys, nbr_row, cnt_row):
    """Count ``visits[:nv]`` and write the top ``len(nbr_row)`` items by (count desc, item asc).

    Counting uses an open-addressing hash table (``table_*``, a power-of-two size >= 2 * nv, all
    slots -1 / 0 on entry and restored on exit); each distinct item gets the key
    ``(2**31 - count) << 32 | item`` (``keys``: at least ``nv`` entries of scratch), so the top T are the
    T smallest keys. For ``T <= _SELECT_MAX`` they are kept in a sorted buffer (``keys[:T]``, filled in
    place as the table is read: a key enters only when it beats the buffer's last, so most keys cost one
    comparison); above, all distinct keys are sorted. Returns how many entries were written.
    """
    if nv == 0:
        return 0
    mask = len(table_items) - 1
    m = 0
    for i in range(nv):
        v = visits[i]
        h = (np.uint64(v) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
        slot = np.int64(h) & mask
        while True:
            t = table_items[slot]
            if t == v:
                table_counts[slot] += 1
                break
            if t == -1:
                table_items[slot] = v
                table_counts[slot] = 1
                keys[m] = slot
                m += 1
                break
            slot = (slot + 1) & mask
    k = min(len(nbr_row), m)
    if len(nbr_row) <= _SELECT_MAX:
        # keys[j] (a slot) is read before the buffer keys[:min(j + 1, k)] can be written at j
        filled = 0
        for j in range(m):
            slot = keys[j]
            key = ((np.int64(2147483647) - table_counts[slot]) << 32) | table_items[slot]
            table_items[slot] = -1
            table_counts[slot] = 0
            if filled < k:
                p = filled
                filled += 1
            elif key < keys[k - 1]:
                p = k - 1
            else:
                continue
            while p > 0 and keys[p - 1] > key:
                keys[p] = keys[p - 1]
                p -= 1
            keys[p] = key
        top = keys
    else:
        for j in range(m):
            slot = keys[j]
            keys[j] = ((np.int64(2147483647) - table_counts[slot]) << 32) | table_items[slot]
            table_items[slot] = -1
            table_counts[slot] = 0
        top = keys[:m]
        top.sort()
    for j in range(k):
        nbr_row[j] = top[j] & np.int64(0xFFFFFFFF)
        cnt_row[j] = np.int64(2147483647) - (top[j] >> 32)
    return k


@nb.njit(cache=True)
def _restart_threshold(restart_prob):
    """``(always_stop, threshold)``: a walk stops after a hop when a 64-bit draw is below ``threshold``
    (``restart_prob * 2**64``), or always when ``restart_prob >= 1``."""
    always_stop = restart_prob >= 1.0
    threshold = np.uint64(0)
    if not always_stop:
        threshold = np.uint64(restart_prob * 18446744073709549568.0)
    return always_stop, threshold


@nb.njit(cache=True)
def _rank_scratch(max_visits):
    """Scratch of :func:`_topk_one` for rows of at most ``max_visits`` visits: ``(visits, keys, table_items,
    table_counts)``, the hash table a power of two of at least ``2 * max_visits`` slots, empty."""
    visits = np.empty(max_visits, dtype=np.int64)
    keys = np.empty(max_visits, dtype=np.int64)
    table_size = 1
    while table_size < 2 * max_visits:
        table_size *= 2
    return visits, keys, np.full(table_size, -1, dtype=np.int64), np.zeros(table_size, dtype=np.int32)


@nb.njit(cache=True, inline="always")
def _rank_rows(vis, rows, first, max_visits, scratch, nbr, cnt, nout):
    """Rows ``first .. first + rows - 1`` of the outputs from the visit slots ``vis`` (row ``k`` of the group:
    ``vis[k * max_visits:(k + 1) * max_visits]``, -1 where no visit was counted): each row's visits counted
    and ranked by :func:`_topk_one` (``scratch``: :func:`_rank_scratch`)."""
    visits, keys, table_items, table_counts = scratch
    for sb in range(rows):
        nv = 0
        for i in range(sb * max_visits, (sb + 1) * max_visits):
            v = vis[i]
            visits[nv] = v
            nv += np.int64(v >= 0)
        b = first + sb
        nout[b] = _topk_one(visits, nv, table_items, table_counts, keys, nbr[b], cnt[b])


@nb.njit(cache=True, inline="always")
def _schedule(state, num_walks, walk_length, threshold, always_stop, bits, hops, w_base, slot):
    """Replay the draws of :func:`_walk_one` for one seed whose walks all can step (the seed has a group;
    every later item is reached through a group, so it has one too): walks in lock-step lanes of
    ``_LANES``; per round, each live lane in slot order takes one hop draw, then (unless ``always_stop``)
    one restart draw, and a stopped lane's slot is refilled by the last live lane. The draws do not depend
    on the graph, so the whole schedule is known before any step: walk ``w`` makes ``hops[w_base + w]``
    hops (>= 1), hop ``h`` with the draw ``bits[(w_base + w) * walk_length + h]``. ``slot``: scratch of
    ``_LANES`` entries. Returns the state after the seed's last draw. Branch-free per draw (the restart
    decisions are coin flips a branch predictor cannot learn)."""
    for w0 in range(0, num_walks, _LANES):
        lanes = min(_LANES, num_walks - w0)
        for j in range(lanes):
            slot[j] = w_base + w0 + j
        alive = lanes
        for h in range(walk_length):
            if alive == 0:
                break
            j = 0
            while j < alive:
                wk = slot[j]
                state, x = _next(state)
                bits[wk * walk_length + h] = x
                hops[wk] = h + 1
                if always_stop:
                    stop = np.int64(1)
                else:
                    state, x = _next(state)
                    stop = np.int64(x < threshold)
                alive -= stop
                slot[j] = slot[j + stop * (alive - j)]  # the last live lane when stopped (an index, not a branch)
                j += 1 - stop
    return state


@nb.njit(cache=True, inline="always")
def _level(m, h, walk_length, act, node, origin, bits, hops, vis, s0, s1,
           item_indptr, item_groups, group_indptr, group_items, item_alias, group_alias):
    """One hop of the ``m`` live walks ``act[:m]`` (walk ids), standing on ``node[:m]``, from seeds
    ``origin[:m]``: walk ``w`` takes its hop ``h`` with the draw ``bits[w * walk_length + h]`` (uniform
    steps as :func:`_hop`, weighted ones as :func:`_step`), writes the item reached to
    ``vis[w * walk_length + h]`` (-1 when it is the walk's seed) and stays live when it makes more than
    ``h + 1`` hops. Returns the number of live walks, compacted to the front of ``act``, ``node``,
    ``origin`` in their order.

    Four loops, one per dependent load of a step (item offsets, item -> group entry, group offsets,
    group -> item entry): within a loop the walks' loads are independent, so many cache misses are in
    flight at once, and each loop prefetches the address the next one reads (the last, the next level's
    item offsets), so the next loop's loads mostly hit. ``s0``, ``s1``: int64 scratch of ``m`` entries."""
    for t in range(m):
        c = node[t]
        s0[t] = item_indptr[c]
        s1[t] = item_indptr[c + 1] - s0[t]
        x = bits[act[t] * walk_length + h]
        k = s0[t] + _below(x, s1[t])  # the slot the next loop reads (a weighted step's alias row instead)
        if item_alias is None:
            _prefetch(item_groups, k)
        else:
            _prefetch_row(item_alias, k)
    if item_alias is None:
        for t in range(m):
            x = bits[act[t] * walk_length + h]
            g = item_groups[s0[t] + _below(x, s1[t])]
            s0[t] = g
            _prefetch(group_indptr, g)
    else:
        for t in range(m):
            x = bits[act[t] * walk_length + h]
            g = _pick(item_alias, s0[t], s1[t], x >> np.uint64(32))
            s0[t] = g
            _prefetch(group_indptr, g)
    for t in range(m):
        g = s0[t]
        s0[t] = group_indptr[g]
        s1[t] = group_indptr[g + 1] - s0[t]
        x = bits[act[t] * walk_length + h]
        if group_alias is None:
            _prefetch(group_items, s0[t] + _below(x << np.uint64(32), s1[t]))
        else:
            k = s0[t] + np.int64(((x & np.uint64(0xFFFFFFFF)) * np.uint64(s1[t])) >> np.uint64(32))
            _prefetch_row(group_alias, k)
    m2 = 0
    for t in range(m):
        wk = act[t]
        x = bits[wk * walk_length + h]
        if group_alias is None:
            v = np.int64(group_items[s0[t] + _below(x << np.uint64(32), s1[t])])
        else:
            v = _pick(group_alias, s0[t], s1[t], x & np.uint64(0xFFFFFFFF))
        o = origin[t]
        vis[wk * walk_length + h] = v if v != o else np.int64(-1)
        act[m2] = wk
        node[m2] = v
        origin[m2] = o
        _prefetch(item_indptr, v)  # the next level's first loop
        m2 += np.int64(hops[wk] > h + 1)
    return m2


#: walks advanced together, hop level by hop level (seeds are grouped up to about this many walks)
_WALKS_PER_GROUP = 512


@nb.njit(cache=True, nogil=True)
def walk_topk_range(
    seeds, item_indptr, item_groups, group_indptr, group_items, item_alias, group_alias, item_total,
    num_walks, walk_length, restart_prob, key, row_ids, nbr, cnt, nout, start, stop,
):
    """Visit counts of random walks with restart, top-T per seed, for ``seeds[start:stop]``.

    For each seed ``s``: ``num_walks`` walks; each hop goes item -> uniform group -> uniform item
    (weighted walks: each edge with probability proportional to its walk weight, from the alias tables
    ``item_alias`` / ``group_alias`` and the totals ``item_total`` of
    :class:`pinsage.graph.weights.WalkWeights`; uniform walks: pass None for all three), records the item when it is not ``s``, then stops with probability ``restart_prob``; at most
    ``walk_length`` hops. Neighbours are ranked by visit count, ties by smaller item index
    (item indices must be below 2**32).

    Writes rows ``start..stop-1`` of the outputs ``nbr (B, T) int64`` (pre-filled with -1),
    ``cnt (B, T) int32`` and ``nout (B,) int64`` (valid entries per row). The random stream of row
    ``b`` depends only on ``(key, row_ids[b])`` (``row_ids`` ``(B,)`` int64; ``arange(B)`` for streams
    by position), so any split of the rows over threads gives the same result.
    Releases the GIL: call it from several Python threads on disjoint ranges.

    Schedule: the rows go in groups of about ``_WALKS_PER_GROUP`` walks. Each row's draws do not depend
    on the graph, so they are replayed first (:func:`_schedule`: the draws of :func:`_walk_one`, walk by
    walk and hop by hop); then all the group's walks advance hop level by hop level (:func:`_level`), so
    the loads of hundreds of walks, from several seeds, are in flight together (with 10 walks a seed
    alone would fill few lanes). The walks, their draws and their visits are those of :func:`_walk_one`;
    only the order in which visits are recorded differs, and the counts do not depend on it. Each row's
    visits are then counted and ranked by :func:`_topk_one`.
    """
    always_stop, threshold = _restart_threshold(restart_prob)
    base = _splitmix64(np.uint64(key))
    L = walk_length
    max_visits = num_walks * L
    per_group = max(1, _WALKS_PER_GROUP // num_walks)
    cap = per_group * num_walks
    bits = np.empty(cap * L, dtype=np.uint64)
    vis = np.empty(cap * L, dtype=np.int64)
    hops = np.zeros(cap, dtype=np.int64)
    scratch = np.empty((5, cap), dtype=np.int64)
    act, node, origin, s0, s1 = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]
    slot = np.empty(_LANES, dtype=np.int64)
    ranking = _rank_scratch(max_visits)
    for g0 in range(start, stop, per_group):
        g1 = min(stop, g0 + per_group)
        vis[:(g1 - g0) * max_visits] = -1
        m = 0  # live walks: act[:m] (walk ids), node[:m] (where they stand), origin[:m] (their seed)
        for sb in range(g1 - g0):
            b = g0 + sb
            s = np.int64(seeds[b])
            if item_indptr[s + 1] - item_indptr[s] == 0 or _stuck(item_total, s):
                continue  # no step can be taken: an empty neighbourhood
            state = _splitmix64(base ^ (np.uint64(row_ids[b] + 1) * np.uint64(_GOLDEN))) | np.uint64(1)
            w_base = sb * num_walks
            _schedule(state, num_walks, L, threshold, always_stop, bits, hops, w_base, slot)
            for w in range(num_walks):
                act[m] = w_base + w
                node[m] = s
                origin[m] = s
                m += 1
        for h in range(L):
            if m == 0:
                break
            m = _level(m, h, L, act, node, origin, bits, hops, vis, s0, s1,
                       item_indptr, item_groups, group_indptr, group_items, item_alias, group_alias)
        _rank_rows(vis, g1 - g0, g0, max_visits, ranking, nbr, cnt, nout)


@nb.njit(cache=True, inline="always")
def _set_slot(table, v):
    """Slot of ``v`` in the open-addressing set ``table`` (power-of-two size, -1 = empty): where it
    is, or the empty slot where it would go (linear probing)."""
    mask = len(table) - 1
    slot = np.int64((np.uint64(v) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) & mask
    while table[slot] != -1 and table[slot] != v:
        slot = (slot + 1) & mask
    return slot


@nb.njit(cache=True, inline="always")
def _set_add(table, used, n_used, v):
    """Add ``v`` to the set; record a newly filled slot in ``used``; return the new count."""
    slot = _set_slot(table, v)
    if table[slot] == -1:
        table[slot] = v
        used[n_used] = slot
        n_used += 1
    return n_used


@nb.njit(cache=True, nogil=True)
def beyond_closure_range(
    queries, nb_indptr, nb_indices, fan_out, item_indptr, item_groups, group_indptr, group_items,
    item_alias, group_alias, item_total, walk_length, restart_prob, max_tries, key, row_ids, out, start, stop,
):
    """Hard negatives as the first walk visit outside a query's importance closure, rows ``start..stop-1``.

    For query ``q`` the closure ``H(q)`` is ``q``, its first ``fan_out`` importance neighbours and
    the first ``fan_out`` neighbours of each of those (at most ``1 + f + f**2`` items, fewer where
    the lists overlap: the items a two-hop importance walk ranks highest). Each of the
    ``out.shape[1]`` samples runs random walks with restart from ``q`` (item -> uniform group ->
    uniform item, or weighted steps as in :func:`walk_topk_range`, stop with probability ``restart_prob``
    after each hop, at most ``walk_length``
    hops) and keeps the first visited item not in ``H(q)``; after ``max_tries`` walks without one
    the entry stays ``-1``. ``out`` ``(B, H)`` int64 must be pre-filled with -1; sample ``k`` of a row
    does not depend on ``H``, so a larger ``H`` extends the row. The random stream of row ``b``
    depends only on ``(key, row_ids[b])`` (``row_ids`` ``(B,)`` int64). Releases the GIL.
    """
    threshold = np.uint64(restart_prob * 18446744073709549568.0)
    cap = 1 + fan_out + fan_out * fan_out
    size = 1
    while size < 2 * cap:
        size *= 2
    table = np.full(size, -1, dtype=np.int64)
    used = np.empty(cap, dtype=np.int64)
    base = _splitmix64(np.uint64(key))
    for b in range(start, stop):
        q = np.int64(queries[b])
        # the closure: q, its top fan_out neighbours, and theirs
        n_used = _set_add(table, used, 0, q)
        for e1 in range(nb_indptr[q], min(nb_indptr[q + 1], nb_indptr[q] + fan_out)):
            n1 = np.int64(nb_indices[e1])
            n_used = _set_add(table, used, n_used, n1)
            for e in range(nb_indptr[n1], min(nb_indptr[n1 + 1], nb_indptr[n1] + fan_out)):
                n_used = _set_add(table, used, n_used, np.int64(nb_indices[e]))
        state = _splitmix64(base ^ (np.uint64(row_ids[b] + 1) * np.uint64(_GOLDEN))) | np.uint64(1)
        for k in range(out.shape[1]):
            for _try in range(max_tries):
                cur = q
                found = np.int64(-1)
                for _h in range(walk_length):
                    lo = item_indptr[cur]
                    deg = item_indptr[cur + 1] - lo
                    if deg == 0:
                        break
                    if _stuck(item_total, cur):
                        break
                    cur, state = _step(lo, deg, state, item_groups, item_alias, group_indptr,
                                       group_items, group_alias)
                    if table[_set_slot(table, cur)] == -1:
                        found = cur
                        break
                    state, bits = _next(state)
                    if bits < threshold:
                        break
                if found >= 0:
                    out[b, k] = found
                    break
        for j in range(n_used):
            table[used[j]] = -1
