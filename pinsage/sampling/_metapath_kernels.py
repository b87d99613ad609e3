"""Compiled (numba) kernel of the mixed-relation walk: random walks with restart over the packed relations of a
:class:`~pinsage.graph.HeteroGraph`, each hop through a relation drawn with per-relation probabilities.

The random stream is the one of :func:`pinsage.sampling._kernels.walk_topk_range` (splitmix64 seeding a
xorshift64* stream per row; the same draws for the hop and the restart), plus one draw for the relation at
hops where the current item has edges in more than one relation. Where it has edges in one relation only
(always, in a one-relation graph) no draw is made, so a one-relation walk is bit for bit the
single-relation sampler's.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from pinsage.sampling._kernels import _GOLDEN, _below, _next, _splitmix64, _topk_one

_LANES = 16  # as the single-relation kernel: the lanes' order of draws is part of the stream
MAX_RELATIONS = 12  # the choice tables have 2**R rows


def relation_tables(probs: np.ndarray) -> tuple[np.int64, np.ndarray, np.ndarray]:
    """Tables of the relation choice for probabilities ``probs`` ``(R,)`` (``R <= MAX_RELATIONS``):

    * ``stepped``: the bit mask of the relations with ``probs > 0``;
    * ``only`` ``(2**R,)`` int64: for a mask of relations with one bit, that relation; else -1;
    * ``cum`` ``(2**R, R)`` uint64: for each mask, the cumulative probabilities renormalised over its relations
      as thresholds ``floor(F * 2**64)`` (relations outside the mask repeat the previous value; the mask's
      last relation takes the rest), so a relation is one 64-bit comparison per candidate, no float math.
    """
    R = len(probs)
    if R > MAX_RELATIONS:
        raise ValueError(f"at most {MAX_RELATIONS} relations can be mixed in one walk, got {R}")
    stepped = np.int64(sum(1 << r for r in range(R) if probs[r] > 0))
    masks = np.arange(1 << R)
    member = ((masks[:, None] >> np.arange(R)[None, :]) & 1).astype(bool)
    p = np.where(member, np.asarray(probs, dtype=np.float64)[None, :], 0.0)
    total = p.sum(1, keepdims=True)
    frac = np.cumsum(np.divide(p, total, out=np.zeros_like(p), where=total > 0), axis=1)
    cum = np.minimum(np.floor(frac * 18446744073709551616.0), 18446744073709549568.0).astype(np.uint64)
    last = np.where(member.any(1), R - 1 - np.argmax(member[:, ::-1], axis=1), 0)
    cum[member.any(1), last[member.any(1)]] = np.uint64(0xFFFFFFFFFFFFFFFF)
    counts = member.sum(1)
    only = np.where(counts == 1, np.argmax(member, axis=1), -1).astype(np.int64)
    return stepped, only, cum


@nb.njit(cache=True, inline="always")
def _pick_alias(adj, alias, lo, deg, bits32):
    """As :func:`pinsage.sampling._kernels._pick`: a neighbour of ``adj[lo:lo + deg]`` by the alias table
    ``alias[lo:lo + deg]`` and 32 random bits."""
    x = bits32 * np.uint64(deg)
    k = lo + np.int64(x >> np.uint64(32))
    entry = alias[k]
    if (x & np.uint64(0xFFFFFFFF)) < (entry >> np.uint64(32)):
        return np.int64(adj[k])
    return np.int64(entry & np.uint64(0xFFFFFFFF))


@nb.njit(cache=True, inline="always")
def _usable(item_total, r, c):
    """Whether a weighted walk can leave item ``c`` through relation ``r`` (positive total walk weight);
    always for uniform walks (``item_total`` None)."""
    if item_total is None:
        return True
    return item_total[c, r] > 0.0


@nb.njit(cache=True, inline="always")
def _edge_mask(c, item_indptr, stepped, item_total):
    """Bit ``r`` set where item ``c`` has a (usable) edge in relation ``r`` and ``r`` is stepped through."""
    mask = np.int64(0)
    for r in range(item_indptr.shape[1]):
        if item_indptr[c + 1, r] > item_indptr[c, r] and _usable(item_total, r, c):
            mask |= np.int64(1) << r
    return mask & stepped


@nb.njit(cache=True, inline="always")
def _choose(c, state, item_indptr, stepped, only, cum, item_total):
    """The relation of the next hop from item ``c``: ``(r, lo, deg, new state)`` with ``c``'s edges in
    ``r`` at ``lo..lo + deg`` (relation-local), or ``r = -1`` when no stepped relation has a usable edge.

    The relations where ``c`` has edges form a bit mask ``m``; ``only[m]`` is the relation when ``m`` has one
    bit (no draw then), else -1, and ``r`` is drawn by the cumulative
    probabilities renormalised over ``m``, as 64-bit thresholds; see :func:`relation_tables`): the first with
    ``bits <= cum[m, r]``."""
    m = _edge_mask(c, item_indptr, stepped, item_total)
    if m == 0:
        return np.int64(-1), np.int64(0), np.int64(0), state
    r = only[m]
    if r < 0:
        state, bits = _next(state)
        r = np.int64(0)
        # xorshift64* never outputs 0 (a nonzero state times an odd constant), so ``bits <= 0`` never picks a
        # relation before the mask's first one, and the mask's last one (threshold 2**64 - 1) always ends the scan
        while bits > cum[m, r]:
            r += 1
    lo = item_indptr[c, r]
    return r, lo, item_indptr[c + 1, r] - lo, state


@nb.njit(cache=True, inline="always")
def _hop_rel(r, lo, deg, state, item_others, edge_base, other_indptr, other_base, other_items,
             item_alias, other_alias):
    """One item -> other node -> item step through relation ``r`` from an item whose edges there are
    ``lo..lo + deg`` (``deg >= 1``), with the draws of :func:`pinsage.sampling._kernels._step`: one 64-bit
    draw, its top half for the other node, its bottom half for the item (uniform, or by the alias tables
    when ``item_alias`` is given)."""
    eb = edge_base[r]
    state, bits = _next(state)
    if item_alias is None:
        g = np.int64(item_others[eb + lo + _below(bits, deg)])
    else:
        g = _pick_alias(item_others, item_alias, eb + lo, deg, bits >> np.uint64(32))
    gi = other_base[r] + g
    glo = other_indptr[gi]
    gdeg = other_indptr[gi + 1] - glo
    if item_alias is None:
        return np.int64(other_items[eb + glo + _below(bits << np.uint64(32), gdeg)]), state
    return _pick_alias(other_items, other_alias, eb + glo, gdeg, bits & np.uint64(0xFFFFFFFF)), state


@nb.njit(cache=True, nogil=True)
def _walk_one_mixed(s, state, item_indptr, item_others, edge_base, other_indptr, other_base, other_items,
                    item_alias, other_alias, item_total, stepped, only, cum, per_relation,
                    num_walks, walk_length, threshold, always_stop, visits, vrel):
    """Run the walks of seed ``s``; write the visited items (seed excluded) to ``visits`` and, when
    ``per_relation``, the relation of the hop that reached each to ``vrel``; return their count."""
    nv = 0
    if _edge_mask(s, item_indptr, stepped, item_total) == 0:
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
                c = cur[j]
                r, lo, deg, state = _choose(c, state, item_indptr, stepped, only, cum, item_total)
                if r < 0:
                    alive -= 1
                    cur[j] = cur[alive]
                    continue
                nxt, state = _hop_rel(r, lo, deg, state, item_others, edge_base, other_indptr,
                                      other_base, other_items, item_alias, other_alias)
                if nxt != s:
                    visits[nv] = nxt
                    if per_relation:
                        vrel[nv] = r
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
def metapath_topk_range(
    seeds, item_indptr, item_others, edge_base, other_indptr, other_base, other_items,
    item_alias, other_alias, item_total, stepped, only, cum,
    num_walks, walk_length, restart_prob, key, row_ids, nbr, cnt, nout, start, stop,
):
    """Visit counts of mixed-relation walks with restart, top-T per seed (and relation), rows ``start..stop-1``.

    Args:
        seeds: ``(B,)`` int64 item indices.
        item_indptr ... other_items: the packed relations (:class:`pinsage.graph.hetero.RelationArrays`):
            ``item_indptr`` ``(N + 1, R)`` int64, ``edge_base`` / ``other_base`` ``(R + 1,)`` int64.
        item_alias, other_alias: ``(E,)`` uint64 alias tables of every relation, packed like ``item_others``
            and ``other_items`` (weighted steps), ``item_total`` ``(N, R)`` float32; three Nones for uniform steps.
        stepped, only, cum: the relation-choice tables of :func:`relation_tables`.
        num_walks, walk_length, restart_prob: as :func:`pinsage.sampling._kernels.walk_topk_range`.
        key, row_ids: row ``b``'s stream depends only on ``(key, row_ids[b])``.
        nbr: ``(R', B, T)`` int64 pre-filled with -1 (``R' = 1``: visits merged over the relations;
            ``R' = R``: counted per relation of the hop that reached the item); ``cnt`` ``(R', B, T)`` int32 zeros; ``nout`` ``(R', B)``
            int64: the top-T items by (count desc, index asc), their counts, and how many per row.

    Releases the GIL: call it from several Python threads on disjoint ranges.
    """
    always_stop = restart_prob >= 1.0
    threshold = np.uint64(0)
    if not always_stop:
        threshold = np.uint64(restart_prob * 18446744073709549568.0)
    base = _splitmix64(np.uint64(key))
    rows = nbr.shape[0]
    max_visits = num_walks * walk_length
    visits = np.empty(max_visits, dtype=np.int64)
    vrel = np.empty(max_visits if rows > 1 else 0, dtype=np.int8)
    split = np.empty(max_visits if rows > 1 else 0, dtype=np.int64)
    starts = np.zeros(rows + 1, dtype=np.int64)
    keys = np.empty(max_visits, dtype=np.int64)
    table_size = 1
    while table_size < 2 * max_visits:
        table_size *= 2
    table_items = np.full(table_size, -1, dtype=np.int64)
    table_counts = np.zeros(table_size, dtype=np.int32)
    for b in range(start, stop):
        state = _splitmix64(base ^ (np.uint64(row_ids[b] + 1) * np.uint64(_GOLDEN))) | np.uint64(1)
        nv = _walk_one_mixed(seeds[b], state, item_indptr, item_others, edge_base, other_indptr, other_base,
                             other_items, item_alias, other_alias, item_total, stepped, only, cum, rows > 1,
                             num_walks, walk_length, threshold, always_stop, visits, vrel)
        if rows == 1:
            nout[0, b] = _topk_one(visits, nv, table_items, table_counts, keys, nbr[0, b], cnt[0, b])
            continue
        # per relation: a counting sort of the visits by relation, then top-T of each part
        starts[:] = 0
        for i in range(nv):
            starts[vrel[i] + 1] += 1
        for r in range(rows):
            starts[r + 1] += starts[r]
        for i in range(nv):
            r = vrel[i]
            split[starts[r]] = visits[i]
            starts[r] += 1
        lo = 0
        for r in range(rows):
            hi = starts[r]
            nout[r, b] = _topk_one(split[lo:hi], hi - lo, table_items, table_counts, keys, nbr[r, b], cnt[r, b])
            lo = hi
