"""Compiled (numba) kernel of the mixed-relation walk: random walks with restart over the packed relations of a
:class:`~pinsage.graph.HeteroGraph`, each hop through a relation drawn with per-relation probabilities.

Random streams. A row's hop and restart draws are those of :func:`pinsage.sampling._kernels.walk_topk_range`
(splitmix64 seeding one xorshift64* stream per row, consumed in the lane order of
:func:`pinsage.sampling._kernels._walk_one`): they do not depend on the graph, because every item a walk
reaches has an edge in the relation it was reached through, so only the seed can stop a walk early.
The relation of hop ``h`` of walk ``w`` is drawn from a second, counter-based stream:
``splitmix64(rel_key + (w * walk_length + h) * golden)`` with ``rel_key`` derived from the row's key
(the SplitMix64 sequence of the row, one value per (walk, hop)). That draw is made at every hop, whether
or not the item has edges in several relations; it never touches the first stream, so where a walk's
items have edges in one relation only its path is the single-relation sampler's, bit for bit. A row's
result depends only on ``(key, row id)``.

Schedule (as :func:`pinsage.sampling._kernels.walk_topk_range`): rows go in groups of about
``_WALKS_PER_GROUP`` walks whose hop and restart draws are replayed first; then all the group's walks
advance hop level by hop level, one pass per dependent memory load (the item's interleaved offsets of all
relations, read for its mask of relations; the relation choice, from cached data only; item -> other node
entry; the other node's offsets; other node -> item entry), so the cache misses of hundreds of walks are in
flight together. Each pass prefetches the address the next pass will read (``llvm.prefetch``, which never
waits for its data), so a pass's loads mostly hit and its misses do not stall it.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from pinsage.sampling._kernels import (
    _GOLDEN, _LANES, _below, _next, _pick, _rank_scratch, _restart_threshold, _schedule, _splitmix64, _topk_one,
)
from pinsage.sampling._prefetch import _prefetch, _prefetch_row

MAX_RELATIONS = 12  # the choice tables have 2**R rows
#: walks advanced together, hop level by hop level (seeds are grouped up to about this many walks)
_WALKS_PER_GROUP = 512
#: mixed into a row's key to seed its relation stream (any odd constant apart from the others)
_RELATION_SALT = 0xD1B54A32D192ED03


def relation_tables(probs: np.ndarray) -> tuple[np.int64, np.ndarray]:
    """Tables of the relation choice for probabilities ``probs`` ``(R,)`` (``R <= MAX_RELATIONS``):

    * ``stepped``: the bit mask of the relations with ``probs > 0``;
    * ``cum`` ``(2**R, R)`` uint64: for each mask, the cumulative probabilities renormalised over its relations
      as thresholds ``floor(F * 2**64)``; relations before the mask's first one have 0, the mask's last one
      and all after it ``2**64 - 1``. A draw ``x`` in ``[1, 2**64)`` picks the relation
      ``sum_r [x > cum[m, r]]`` (the first with ``x <= cum[m, r]``), a member of ``m`` with its renormalised
      probability: one 64-bit comparison per relation, no float math and no branch.
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
    cum[np.arange(R)[None, :] >= last[:, None]] = np.uint64(0xFFFFFFFFFFFFFFFF)
    return stepped, cum


@nb.njit(cache=True, inline="always")
def _edge_mask(c, item_indptr, stepped, item_total):
    """Bit ``r`` set where item ``c`` has an edge in relation ``r`` (weighted walks: of positive total walk
    weight, ``item_total`` ``(N, R)``; None for uniform walks) and ``r`` is stepped through."""
    mask = np.int64(0)
    for r in range(item_indptr.shape[1]):
        ok = item_indptr[c + 1, r] > item_indptr[c, r]
        if item_total is not None:
            ok = ok and item_total[c, r] > 0.0
        mask |= np.int64(ok) << r
    return mask & stepped


@nb.njit(cache=True, inline="always")
def _level(m, h, L, act, node, origin, rel, bits, hops, rkey, vis, vrel, per_relation, s0, s1,
           item_indptr, item_others, edge_base, other_indptr, other_base, other_items,
           item_alias, other_alias, item_total, stepped, cum):
    """Hop ``h`` of the ``m`` live walks ``act[:m]`` standing on ``node[:m]``, from seeds ``origin[:m]``:
    the relation from the walk's relation draw ``splitmix64(rkey[w] + h * golden)`` and the item's mask of
    relations (:func:`relation_tables`), then item -> other node -> item with the draw
    ``bits[w * L + h]`` (high half: the other node, low half: the item; by the alias tables when
    ``item_alias`` is given). Writes the item reached to ``vis[w * L + h]`` (-1 when it is the seed) and,
    when ``per_relation``, the relation to ``vrel[w * L + h]``. Returns the live walks' count, compacted
    to the front of ``act``, ``node``, ``origin`` in their order.

    One pass per dependent load (the item's offsets in every relation, read for its mask; the relation
    choice; item -> other node entry; the other node's offsets; other node -> item entry). Each pass that
    knows the address the next pass will read prefetches it (the last one, the next level's item offsets),
    so a pass's own loads mostly hit the cache and its misses, started by the pass before without waiting,
    are in flight for all the walks at once."""
    R = item_indptr.shape[1]
    golden = np.uint64(_GOLDEN)
    hh = np.uint64(h) * golden
    for t in range(m):  # the item's offsets in every relation (one cache line): its mask of relations
        s1[t] = _edge_mask(node[t], item_indptr, stepped, item_total)
    for t in range(m):  # the relation choice (cached reads only, so the pass above keeps many misses in flight)
        c = node[t]
        mask = s1[t]
        x = _splitmix64(rkey[act[t]] + hh) | np.uint64(1)
        r = np.int64(0)
        for k in range(R - 1):  # cum[mask, R - 1] is 2**64 - 1 for every mask
            r += np.int64(x > cum[mask, k])
        lo = item_indptr[c, r]
        deg = item_indptr[c + 1, r] - lo
        lo += edge_base[r]
        s0[t] = lo
        s1[t] = deg
        rel[t] = r
        x = bits[act[t] * L + h]
        if item_alias is None:
            _prefetch(item_others, lo + _below(x, deg))
        else:
            e = lo + np.int64(((x >> np.uint64(32)) * np.uint64(deg)) >> np.uint64(32))  # _pick's slot
            _prefetch_row(item_alias, e)
    for t in range(m):  # item -> other node
        x = bits[act[t] * L + h]
        if item_alias is None:
            g = np.int64(item_others[s0[t] + _below(x, s1[t])])
        else:
            g = _pick(item_alias, s0[t], s1[t], x >> np.uint64(32))
        s0[t] = other_base[rel[t]] + g
        _prefetch(other_indptr, s0[t])
    for t in range(m):  # the other node's offsets
        gi = s0[t]
        lo = edge_base[rel[t]] + other_indptr[gi]
        deg = other_indptr[gi + 1] - other_indptr[gi]
        s0[t] = lo
        s1[t] = deg
        x = bits[act[t] * L + h]
        if other_alias is None:
            _prefetch(other_items, lo + _below(x << np.uint64(32), deg))
        else:
            e = lo + np.int64(((x & np.uint64(0xFFFFFFFF)) * np.uint64(deg)) >> np.uint64(32))
            _prefetch_row(other_alias, e)
    m2 = 0
    for t in range(m):  # other node -> item
        wk = act[t]
        x = bits[wk * L + h]
        if other_alias is None:
            v = np.int64(other_items[s0[t] + _below(x << np.uint64(32), s1[t])])
        else:
            v = _pick(other_alias, s0[t], s1[t], x & np.uint64(0xFFFFFFFF))
        o = origin[t]
        vis[wk * L + h] = v if v != o else np.int64(-1)
        if per_relation:
            vrel[wk * L + h] = rel[t]
        act[m2] = wk
        node[m2] = v
        origin[m2] = o
        _prefetch_row(item_indptr, v)  # for the next level's first pass
        if item_total is not None:
            _prefetch_row(item_total, v)
        m2 += np.int64(hops[wk] > h + 1)
    return m2


@nb.njit(cache=True, nogil=True)
def metapath_topk_range(
    seeds, item_indptr, item_others, edge_base, other_indptr, other_base, other_items,
    item_alias, other_alias, item_total, stepped, cum,
    num_walks, walk_length, restart_prob, key, row_ids, nbr, cnt, nout, start, stop,
):
    """Visit counts of mixed-relation walks with restart, top-T per seed (and relation), rows ``start..stop-1``.

    Args:
        seeds: ``(B,)`` int64 item indices.
        item_indptr ... other_items: the packed relations (:class:`pinsage.graph.hetero.RelationArrays`):
            ``item_indptr`` ``(N + 1, R)`` int64, ``edge_base`` / ``other_base`` ``(R + 1,)`` int64.
        item_alias, other_alias: ``(E, 2)`` uint64 alias tables of every relation, packed like ``item_others``
            and ``other_items`` (weighted steps), ``item_total`` ``(N, R)`` float32; three Nones for uniform steps.
        stepped, cum: the relation-choice tables of :func:`relation_tables`.
        num_walks, walk_length, restart_prob: as :func:`pinsage.sampling._kernels.walk_topk_range`.
        key, row_ids: row ``b``'s streams depend only on ``(key, row_ids[b])`` (see the module doc).
        nbr: ``(R', B, T)`` int64 pre-filled with -1 (``R' = 1``: visits merged over the relations;
            ``R' = R``: counted per relation of the hop that reached the item); ``cnt`` ``(R', B, T)`` int32 zeros; ``nout`` ``(R', B)``
            int64: the top-T items by (count desc, index asc), their counts, and how many per row.

    Releases the GIL: call it from several Python threads on disjoint ranges.
    """
    always_stop, threshold = _restart_threshold(restart_prob)
    base = _splitmix64(np.uint64(key))
    golden = np.uint64(_GOLDEN)
    rows = nbr.shape[0]
    per_relation = rows > 1
    L = walk_length
    max_visits = num_walks * L
    per_group = max(1, _WALKS_PER_GROUP // num_walks)
    cap = per_group * num_walks
    bits = np.empty(cap * L, dtype=np.uint64)
    rkey = np.empty(cap, dtype=np.uint64)
    vis = np.empty(cap * L, dtype=np.int64)
    vrel = np.zeros(cap * L if per_relation else 0, dtype=np.int8)
    hops = np.zeros(cap, dtype=np.int64)
    scratch = np.empty((6, cap), dtype=np.int64)
    act, node, origin, rel, s0, s1 = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4], scratch[5]
    slot = np.empty(_LANES, dtype=np.int64)
    visits, keys, table_items, table_counts = _rank_scratch(max_visits)
    vr = np.empty(max_visits if per_relation else 0, dtype=np.int8)
    split = np.empty(max_visits if per_relation else 0, dtype=np.int64)
    starts = np.zeros(rows + 1, dtype=np.int64)
    for g0 in range(start, stop, per_group):
        g1 = min(stop, g0 + per_group)
        vis[:(g1 - g0) * max_visits] = -1
        m = 0  # live walks: act[:m] (walk ids), node[:m] (where they stand), origin[:m] (their seed)
        for sb in range(g1 - g0):
            b = g0 + sb
            s = np.int64(seeds[b])
            if _edge_mask(s, item_indptr, stepped, item_total) == 0:
                continue  # no step can be taken: an empty neighbourhood
            row = _splitmix64(base ^ (np.uint64(row_ids[b] + 1) * golden))
            w_base = sb * num_walks
            _schedule(row | np.uint64(1), num_walks, L, threshold, always_stop, bits, hops, w_base, slot)
            rk = _splitmix64(row ^ np.uint64(_RELATION_SALT))
            for w in range(num_walks):
                rkey[w_base + w] = rk + np.uint64(w * L) * golden
                act[m] = w_base + w
                node[m] = s
                origin[m] = s
                m += 1
        for h in range(L):
            if m == 0:
                break
            m = _level(m, h, L, act, node, origin, rel, bits, hops, rkey, vis, vrel, per_relation, s0, s1,
                       item_indptr, item_others, edge_base, other_indptr, other_base, other_items,
                       item_alias, other_alias, item_total, stepped, cum)
        for sb in range(g1 - g0):
            b = g0 + sb
            nv = 0
            for i in range(sb * max_visits, (sb + 1) * max_visits):
                v = vis[i]
                visits[nv] = v
                if per_relation:
                    vr[nv] = vrel[i]
                nv += np.int64(v >= 0)
            if not per_relation:
                nout[0, b] = _topk_one(visits, nv, table_items, table_counts, keys, nbr[0, b], cnt[0, b])
                continue
            # per relation: a counting sort of the visits by relation, then top-T of each part
            starts[:] = 0
            for i in range(nv):
                starts[vr[i] + 1] += 1
            for r in range(rows):
                starts[r + 1] += starts[r]
            for i in range(nv):
                r = vr[i]
                split[starts[r]] = visits[i]
                starts[r] += 1
            lo = 0
            for r in range(rows):
                hi = starts[r]
                nout[r, b] = _topk_one(split[lo:hi], hi - lo, table_items, table_counts, keys, nbr[r, b], cnt[r, b])
                lo = hi
