r"""The importance sampler over the compressed store (:class:`pinsage.graph.compressed.CompressedGraph`).

:class:`CompressedSampler` draws the same walks as :class:`~pinsage.sampling.ImportanceSampler` (uniform
steps): the same counter-based random stream per ``(seed, key, row)``, the same draws in the same order
(one 64-bit draw per hop, its top half picking the group slot and its bottom half the item slot, then one
draw for the restart), the same top-T by (count desc, dense item index asc). The step reads the slot's
neighbour from the compressed adjacency instead of a CSR slice. On a store built with ``order="none"``
the adjacencies list neighbours in the CSR's order, so the neighbourhoods equal the plain sampler's
exactly; with a renumbering, slot :math:`k` is another (equally uniform) neighbour, so the walks follow
the same distribution but not the same path.

The compressed read is a chain of about five dependent loads (block row, directory entry, header, chunk
entry, gaps) where the CSR read is two. The kernel hides it by reading many walks at once: a seed's draws
do not depend on the graph, so each seed's draws are replayed first
(:func:`pinsage.sampling._kernels._schedule`, shared with the plain kernel, which runs the same schedule:
which walk takes which draw, and after which hop it stops), then the walks of
a group of seeds (about 256) advance hop level by hop level, each level one :func:`_half_step` per
direction: five short loops over all live walks whose loads are independent, so they are in flight
together. The streams match the plain kernel's draw for draw; only the order of the visits differs, and
the counts do not depend on it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numba as nb
import numpy as np

from pinsage.graph._compressed_kernels import BLOCK, BLOCK_SHIFT, _field, bit_raw, bit_read, gap_sum, node_entry
from pinsage.sampling._kernels import (
    _GOLDEN, _LANES, _below, _rank_rows, _rank_scratch, _restart_threshold, _schedule, _splitmix64,
)
from pinsage.sampling._prefetch import _prefetch
from pinsage.sampling.importance import ImportanceSampler, checked_seeds

if TYPE_CHECKING:
    from pinsage.config import SamplerConfig
    from pinsage.graph.compressed import CompressedGraph

__all__ = ["CompressedSampler", "walk_topk_range_compressed"]

_NO_ORDER = np.empty(0, dtype=np.int64)

#: walks read from the graph together, level by level (seeds are grouped up to about this many walks)
_WALKS_PER_GROUP = 256


@nb.njit(cache=True, inline="always")
def _half_step(blocks, data, cs, nodes, bitsv, shift, n, s0, s1, s2, s3, s4, out):
    """``out[t]`` = neighbour ``_below(bitsv[t] << shift, degree)`` of internal node ``nodes[t]`` for
    ``t < n``: one uniform step of ``n`` walks in one direction.

    Five stages, each a loop over the walks whose loads do not depend on each other (so they are in
    flight together): the block table row, the directory entry (position and degree), the adjacency
    header (slot, chunk), the chunk entry (base, width, gap position), the gaps. ``s0..s4``: scratch
    int64 arrays of at least ``n`` entries."""
    C = 1 << cs
    for t in range(n):  # block table -> s0: directory entry position, s1: frame of the adjacency position,
        # s2: dmin, s3: wd | wo << 8 | slope << 16
        c = nodes[t]
        b = c >> BLOCK_SHIFT
        r = c & (BLOCK - 1)
        meta = blocks[b, 3]
        s0[t] = blocks[b, 0] + r * ((meta & 255) + ((meta >> 8) & 255))
        s1[t] = blocks[b, 1] + r * (meta >> 16)
        s2[t] = blocks[b, 2]
        s3[t] = meta
        _prefetch(data, s0[t] >> 6)  # the next loop's directory entry
    for t in range(n):  # directory entry -> s1: adjacency position, s2: degree
        wd = s3[t] & 255
        wo = (s3[t] >> 8) & 255
        if wd + wo <= 64:
            x = bit_raw(data, s0[t])
            s1[t] += _field(x, wd, wo)
            s2[t] += _field(x, 0, wd)
        else:
            s1[t] += np.int64(bit_read(data, s0[t] + wd, wo))
            s2[t] += np.int64(bit_read(data, s0[t], wd))
        _prefetch(data, s1[t] >> 6)  # the adjacency header
    for t in range(n):  # header -> s0: chunk entry position (-1: one chunk), s1: gaps, s2: base, s3: width(s), s4: i
        d = s2[t]
        k = _below(bitsv[t] << np.uint64(shift), d)
        p = s1[t]
        x = bit_raw(data, p)
        w = _field(x, 0, 6)
        wb = _field(x, 6, 6)
        if d <= C:
            s0[t] = -1
            s1[t] = p + 12 + wb
            s2[t] = _field(x, 12, wb) if wb <= 52 else np.int64(bit_read(data, p + 12, wb))
            s3[t] = w
            s4[t] = k
        else:
            ew = w + wb
            s0[t] = p + 12 + (k >> cs) * ew
            s1[t] = p + 12 + ((d + C - 1) >> cs) * ew + w
            s3[t] = w | (wb << 8)
            s4[t] = k & (C - 1)
            _prefetch(data, s0[t] >> 6)  # the chunk entry
    for t in range(n):  # chunk entry -> s1: the chunk's gaps, s2: base, s3: width
        e = s0[t]
        if e >= 0:
            ww = s3[t] & 255
            wb = s3[t] >> 8
            ew = ww + wb
            if ew + ww <= 64:
                y = bit_raw(data, e)
                cw = _field(y, 0, ww)
                s2[t] = _field(y, ww, wb)
                s3[t] = _field(y, ew, ww) - cw
            else:
                cw = np.int64(bit_read(data, e, ww))
                s2[t] = np.int64(bit_read(data, e + ww, wb))
                s3[t] = np.int64(bit_read(data, e + ew, ww)) - cw
            s1[t] += (C - 1) * cw
        _prefetch(data, s1[t] >> 6)  # the gaps
    for t in range(n):  # the gaps
        out[t] = gap_sum(data, s1[t], s2[t], s3[t], s4[t])


@nb.njit(cache=True, nogil=True)
def walk_topk_range_compressed(
    seeds, ib, idata, gb, gdata, cs, order, num_walks, walk_length, restart_prob, key, row_ids,
    nbr, cnt, nout, start, stop,
):
    """:func:`pinsage.sampling._kernels.walk_topk_range` (uniform steps) over a compressed store.

    ``seeds`` are internal item ids; ``(ib, idata)`` / ``(gb, gdata)`` the block index and bit stream of
    the item -> groups / group -> items directions (:class:`~pinsage.graph.compressed.CompressedAdjacency`),
    ``cs`` the chunk shift, ``order`` ``(n_items,)`` internal id -> dense index (empty: identity): visits are
    counted and ranked by dense index, so ties break as in the plain sampler. Outputs as there: rows
    ``start..stop-1`` of ``nbr (B, T)`` int64 (pre-filled with -1), ``cnt (B, T)`` int32 and ``nout (B,)``.
    Row ``b``'s stream depends only on ``(key, row_ids[b])``: the same draws, assigned to the same walks,
    as the plain kernel's.

    Seeds go in groups of about ``_WALKS_PER_GROUP`` walks: each seed's draws are replayed first
    (:func:`pinsage.sampling._kernels._schedule`), then the group's walks advance hop level by hop level,
    all walks alive at a level in one :func:`_half_step` per direction. Releases the GIL.
    """
    always_stop, threshold = _restart_threshold(restart_prob)
    key_base = _splitmix64(np.uint64(key))
    max_visits = num_walks * walk_length
    per_group = max(1, _WALKS_PER_GROUP // num_walks)
    cap = per_group * num_walks
    vis = np.empty(cap * walk_length, dtype=np.int64)  # walk w's hop h: vis[w * walk_length + h], -1 if none
    ranking = _rank_scratch(max_visits)
    bits = np.empty(cap * walk_length, dtype=np.uint64)
    hops = np.zeros(cap, dtype=np.int64)
    scratch = np.empty((10, cap), dtype=np.int64)
    act, node, origin, where, s0, s1, s2, s3, s4, out = (scratch[0], scratch[1], scratch[2], scratch[3], scratch[4],
                                                         scratch[5], scratch[6], scratch[7], scratch[8], scratch[9])
    bitsv = np.empty(cap, dtype=np.uint64)
    slot = np.empty(_LANES, dtype=np.int64)
    for g0 in range(start, stop, per_group):
        g1 = min(stop, g0 + per_group)
        vis[:(g1 - g0) * max_visits] = -1
        m = 0  # walks alive at the current level: act[:m] (walk ids), node[:m] (where they stand), origin[:m]
        for sb in range(g1 - g0):
            b = g0 + sb
            s = np.int64(seeds[b])
            w_base = sb * num_walks
            p_, sdeg = node_entry(ib, idata, s)
            if sdeg == 0:
                continue
            state = _splitmix64(key_base ^ (np.uint64(row_ids[b] + 1) * np.uint64(_GOLDEN))) | np.uint64(1)
            _schedule(state, num_walks, walk_length, threshold, always_stop, bits, hops, w_base, slot)
            for w in range(num_walks):
                act[m] = w_base + w
                node[m] = s
                origin[m] = s
                m += 1
        for h in range(walk_length):
            if m == 0:
                break
            for t in range(m):
                bitsv[t] = bits[act[t] * walk_length + h]
            _half_step(ib, idata, cs, node, bitsv, 0, m, s0, s1, s2, s3, s4, where)
            _half_step(gb, gdata, cs, where, bitsv, 32, m, s0, s1, s2, s3, s4, out)
            m2 = 0
            for t in range(m):  # record the visit (a dense index), keep the walks that go on (no branch)
                wk = act[t]
                v = out[t]
                o = origin[t]
                d = order[v] if len(order) else v
                vis[wk * walk_length + h] = d if v != o else np.int64(-1)
                act[m2] = wk
                node[m2] = v
                origin[m2] = o
                m2 += np.int64(hops[wk] > h + 1)
            m = m2
        _rank_rows(vis, g1 - g0, g0, max_visits, ranking, nbr, cnt, nout)


class CompressedSampler(ImportanceSampler):
    """:class:`~pinsage.sampling.ImportanceSampler` reading a :class:`~pinsage.graph.compressed.CompressedGraph`.

    Same arguments, semantics and outputs (dense item indices in, dense item indices out; see the module
    doc for when the walks are the plain sampler's exactly). Uniform steps only: ``weighted=True`` is
    refused (the compressed store keeps no alias tables yet).

    Example:
        >>> import numpy as np
        >>> from pinsage.graph import InteractionGraph
        >>> from pinsage.graph.compressed import CompressedGraph
        >>> g = InteractionGraph.from_edges(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 2]))
        >>> plain = ImportanceSampler(g, num_walks=100, walk_length=2, num_neighbors=2, seed=0)
        >>> packed = CompressedSampler(CompressedGraph.from_graph(g, order="none"), num_walks=100,
        ...                            walk_length=2, num_neighbors=2, seed=0)
        >>> packed(np.array([0, 2])).indices.tolist() == plain(np.array([0, 2])).indices.tolist()
        True
    """

    def __init__(self, graph: CompressedGraph, num_walks: int = 200, walk_length: int = 3, restart_prob: float = 0.5,
                 num_neighbors: int = 50, seed: int = 0, num_threads: int | None = None, weighted: bool = False,
                 weight_half_life: float | None = None) -> None:
        if weighted or weight_half_life:
            raise ValueError("CompressedSampler takes uniform steps only (weighted walks need alias tables the "
                             "compressed store does not keep); use ImportanceSampler on an InteractionGraph")
        super().__init__(graph, num_walks, walk_length, restart_prob, num_neighbors, seed, num_threads)  # type: ignore[arg-type]
        self._order = _NO_ORDER if graph.item_order is None else np.ascontiguousarray(graph.item_order)

    @classmethod
    def from_config(cls, graph: CompressedGraph, config: SamplerConfig, seed: int = 0) -> "CompressedSampler":  # type: ignore[override]
        return cls(graph, config.num_walks, config.walk_length, config.restart_prob, config.num_neighbors,
                   seed=seed, weighted=config.weighted, weight_half_life=config.weight_half_life)

    def __repr__(self) -> str:
        return "Compressed" + super().__repr__()

    def sample_arrays(self, seeds: np.ndarray, key: int | None = None, stream_ids: np.ndarray | None = None,
                      before: np.ndarray | float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`ImportanceSampler.sample_arrays`: ``(nbr (B, T) int64 dense indices with -1 padding,
        counts (B, T) int32, n (B,))``. Time-respecting walks (``before``) are not supported here."""
        if before is not None:
            raise ValueError("CompressedSampler does not take time-respecting walks (before=...): the compressed "
                             "store keeps no time index; use ImportanceSampler on an InteractionGraph")
        g: CompressedGraph = self.graph  # type: ignore[assignment]
        seeds, stream_ids = checked_seeds(seeds, stream_ids, g.num_items)
        internal = np.ascontiguousarray(g.internal_items(seeds))
        B = len(seeds)
        nbr = np.full((B, self.num_neighbors), -1, dtype=np.int64)
        cnt = np.zeros((B, self.num_neighbors), dtype=np.int32)
        nout = np.zeros(B, dtype=np.int64)
        it, gr = g.items, g.groups
        args = (internal, it.blocks, it.data, gr.blocks, gr.data, it.chunk_shift,
                self._order, self.num_walks, self.walk_length, self.restart_prob, self._key(key), stream_ids,
                nbr, cnt, nout)
        self._run_rows(walk_topk_range_compressed, args, B)
        return nbr, cnt, nout
