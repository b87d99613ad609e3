"""Compiled (numba) kernels: the random-walk visit-count sampler and the
closure hard-negative sampler (first walk visit outside a query's two-hop importance closure).

Random numbers come from a counter-based generator (splitmix64 seeding a xorshift64* stream per
row), so results depend only on ``(seed, batch key, row id)``, never on thread count or scheduling.
A row's id is its position in the call unless the caller gives ``row_ids`` (e.g. the row's position in
a global batch split over processes, or its item id), so a row's result need not depend on which
other rows are in the same call.
"""
from __future__ import annotations

import numba as nb
import numpy as np

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
def _pick(adj, alias, lo, deg, bits32):
    """The neighbour of the adjacency ``adj[lo:lo + deg]`` that 32 random bits select with probability
    proportional to its edge's walk weight, from the alias entries ``alias[lo:lo + deg]``
    (:class:`pinsage.graph.weights.WalkWeights`): ``bits32 * deg`` gives the slot (high part) and a uniform
    32-bit fraction (low part) compared with the slot's threshold."""
    x = bits32 * np.uint64(deg)
    k = lo + np.int64(x >> np.uint64(32))
    entry = alias[k]
    if (x & np.uint64(0xFFFFFFFF)) < (entry >> np.uint64(32)):
        return np.int64(adj[k])
    return np.int64(entry & np.uint64(0xFFFFFFFF))


@nb.njit(cache=True)
def _step(lo, deg, state, item_groups, item_alias, group_indptr, group_items, group_alias):
    """One item -> group -> item step: uniform (:func:`_hop`) when ``item_alias`` is None, else each edge
    with probability proportional to its walk weight (``item_alias`` / ``group_alias``: alias tables in
    item- and group-CSR order, :class:`pinsage.graph.weights.WalkWeights`). One 64-bit draw either way.
    ``None`` is a type to numba: the uniform call is compiled without the weighted branch."""
    if item_alias is None:
        return _hop(lo, deg, state, item_groups, group_indptr, group_items)
    state, bits = _next(state)
    g = _pick(item_groups, item_alias, lo, deg, bits >> np.uint64(32))
    glo = group_indptr[g]
    gdeg = group_indptr[g + 1] - glo
    return _pick(group_items, group_alias, glo, gdeg, bits & np.uint64(0xFFFFFFFF)), state


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

    Walks advance in lock-step batches of ``_LANES``: the lanes' memory loads are independent, so
    the CPU overlaps their cache misses instead of waiting on one pointer chase at a time.
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


@nb.njit(cache=True, nogil=True)
def _topk_one(visits, nv, table_items, table_counts, keys, nbr_row, cnt_row):
    """Count ``visits[:nv]`` and write the top ``len(nbr_row)`` items by (count desc, item asc).

    Counting uses an open-addressing hash table (``table_*``, a power-of-two size >= 2 * nv, all
    slots -1 / 0 on entry and restored on exit), then sorts only the distinct items by the key
    ``(2**31 - count) << 32 | item``. Returns how many entries were written.
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
    for j in range(m):
        slot = keys[j]
        keys[j] = ((np.int64(2147483647) - table_counts[slot]) << 32) | table_items[slot]
        table_items[slot] = -1
        table_counts[slot] = 0
    top = keys[:m]
    top.sort()
    k = min(len(nbr_row), m)
    for j in range(k):
        nbr_row[j] = top[j] & np.int64(0xFFFFFFFF)
        cnt_row[j] = np.int64(2147483647) - (top[j] >> 32)
    return k


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
        nv = _walk_one(seeds[b], state, item_indptr, item_groups, group_indptr, group_items,
                       item_alias, group_alias, item_total, num_walks, walk_length, threshold,
                       always_stop, visits)
        nout[b] = _topk_one(visits, nv, table_items, table_counts, keys, nbr[b], cnt[b])


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
