r"""Importance neighbourhoods from the exact expected visit counts of the walks, for small catalogues.

:class:`~pinsage.ImportanceSampler` estimates, by Monte Carlo, the expected number of visits to item
:math:`j` of a walk from item :math:`s`,

.. math::
    \mathbb{E}[c_{sj}] = \sum_{h=1}^{L} (1-r)^{h-1} (P^h)_{sj}, \qquad P = D_I^{-1} A^\top D_G^{-1} A,

(:math:`A` the group x item adjacency, :math:`L` the walk length, :math:`r` the restart probability)
and keeps the top-T items. With a few hundred walks the estimate is noisy past the first few items
(many candidates are visited once, and ties are broken by index). For a catalogue of up to some
hundred thousand items (:func:`exact_is_affordable`) the expectation itself is cheap: :math:`L` sparse products per block of seeds,
no N x N matrix. :func:`exact_neighborhoods` computes it and keeps the top-T, so the neighbourhoods
(and the weights the convolution pools with) carry no sampling noise.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from pinsage._arrays import shrink_rows
from pinsage.graph.weights import edge_walk_weights
from pinsage.sampling.blocks import Neighborhoods

if TYPE_CHECKING:
    from pinsage.graph import HeteroGraph, InteractionGraph

__all__ = ["exact_neighborhoods", "exact_mixed_neighborhoods", "exact_is_affordable", "EXACT_MAX_WORK"]

#: ``sampler.method: auto`` uses the exact expectation while ``num_items * num_edges`` stays under this:
#: the cost is about ``2 * walk_length * num_items * num_edges`` multiply-adds (Gowalla-3k's 35k items
#: and 179k edges, 6.3e9: about a minute on 2 cores); Monte Carlo walks above
EXACT_MAX_WORK = 1e10


def exact_is_affordable(num_items: int, num_edges: int) -> bool:
    """Whether ``sampler.method: auto`` computes the exact neighbourhoods for a graph of this size."""
    return float(num_items) * float(num_edges) <= EXACT_MAX_WORK


def _transitions(graph: InteractionGraph, weighted: bool = False,
                 weight_half_life: float | None = None) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``(item -> group, group -> item)`` row-stochastic CSR matrices of the walk steps: uniform, or
    proportional to :func:`~pinsage.graph.weights.edge_walk_weights` when ``weighted``."""
    A = graph.to_scipy().astype(np.float32).tocsr()  # (groups, items), edges in group-CSR order
    A.data[:] = edge_walk_weights(graph, weight_half_life) if weighted else 1.0
    deg_i = np.asarray(A.sum(axis=0)).ravel()
    deg_g = np.asarray(A.sum(axis=1)).ravel()
    inv_i = np.divide(1.0, deg_i, out=np.zeros_like(deg_i), where=deg_i > 0)  # total weight 0: no step
    inv_g = np.divide(1.0, deg_g, out=np.zeros_like(deg_g), where=deg_g > 0)
    to_group = (sp.diags(inv_i.astype(np.float32)) @ A.T).tocsr()
    to_item = (sp.diags(inv_g.astype(np.float32)) @ A).tocsr()
    return to_group, to_item


def exact_neighborhoods(graph: InteractionGraph, walk_length: int = 3, restart_prob: float = 0.5,
                        num_neighbors: int = 50, block: int | None = None, weighted: bool = False,
                        weight_half_life: float | None = None) -> Neighborhoods:
    """Every item's top-``num_neighbors`` items by exact expected walk visits (the item itself excluded).

    Args:
        graph: the interaction graph.
        walk_length: hops per walk, :math:`L`.
        restart_prob: probability that a walk ends after each hop, :math:`r`.
        num_neighbors: T, the neighbourhood size; items reached by no walk are left out, so a row may
            be shorter.
        weighted: steps proportional to the edge weights (decayed by ``weight_half_life``), as
            :class:`~pinsage.ImportanceSampler` with ``weighted=True`` walks.
        weight_half_life: see :func:`~pinsage.graph.weights.edge_walk_weights`.
        block: seeds per block (memory: two ``(num_items, block)`` float32 arrays); default: as many as
            keep them under 64 MB each, at most 512.

    Returns:
        :class:`~pinsage.Neighborhoods` with int32 indices (int64 above 2**31 items), rows ordered by
        decreasing expected visits (ties: smaller index), weights normalised to sum to 1 per row.
    """
    n = graph.num_items
    if block is None:
        block = int(max(8, min(512, (1 << 24) // max(n, 1))))
    to_group, to_item = _transitions(graph, weighted, weight_half_life if weighted else None)
    group_t, item_t = to_group.T.tocsr(), to_item.T.tocsr()  # column-vector products: v <- P^T v
    T = int(num_neighbors)
    index_dtype = np.int32 if n <= np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n + 1, dtype=np.int64)
    indices = np.empty(n * min(T, max(n - 1, 0)), dtype=index_dtype)
    weights = np.empty(len(indices), dtype=np.float32)
    total = 0
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        b = hi - lo
        v = np.zeros((n, b), dtype=np.float32)
        v[np.arange(lo, hi), np.arange(b)] = 1.0
        acc = np.zeros_like(v)
        keep = 1.0
        for h in range(int(walk_length)):
            v = item_t @ (group_t @ v)  # (n, b): the distribution after h + 1 hops
            acc += keep * v
            keep *= 1.0 - restart_prob
            if keep == 0.0:
                break
        scores = acc.T  # (b, n)
        scores[np.arange(b), np.arange(lo, hi)] = 0.0  # a walk's visits to its own start do not count
        k = min(T, n - 1) if n > 1 else 0
        if k == 0:
            indptr[lo + 1:hi + 1] = total
            continue
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # k <= n - 1: always a real partition
        vals = np.take_along_axis(scores, top, 1)
        order = np.lexsort((top, -vals), axis=1)  # by value descending, then index
        top = np.take_along_axis(top, order, 1)
        vals = np.take_along_axis(vals, order, 1)
        valid = vals > 0
        counts = valid.sum(axis=1)
        row_sum = np.where(valid, vals, 0.0).sum(axis=1, keepdims=True)
        w = (vals / np.maximum(row_sum, 1e-30)).astype(np.float32)
        m = int(counts.sum())
        indices[total:total + m] = top[valid]
        weights[total:total + m] = w[valid]
        indptr[lo + 1:hi + 1] = total + np.cumsum(counts)
        total += m
    return Neighborhoods(indptr, shrink_rows(indices, total), shrink_rows(weights, total))


def _top_rows(scores: np.ndarray, lo: int, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top-``T`` columns of each row of ``scores`` ``(b, n)`` (rows are seeds ``lo..lo+b-1``, whose own
    column is zeroed first): ``(indices (m,), weights (m,) float32 summing to 1 per row, counts (b,))`` in the
    order of :func:`exact_neighborhoods` (decreasing score, ties by index; zero scores left out)."""
    b, n = scores.shape
    scores[np.arange(b), np.arange(lo, lo + b)] = 0.0
    k = min(T, n - 1) if n > 1 else 0
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(b, np.int64)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, top, 1)
    order = np.lexsort((top, -vals), axis=1)
    top = np.take_along_axis(top, order, 1)
    vals = np.take_along_axis(vals, order, 1)
    valid = vals > 0
    row_sum = np.where(valid, vals, 0.0).sum(axis=1, keepdims=True)
    w = (vals / np.maximum(row_sum, 1e-30)).astype(np.float32)
    return top[valid], w[valid], valid.sum(axis=1)


def exact_mixed_neighborhoods(graph: "HeteroGraph", relation_probs: dict[str, float] | None = None,
                              walk_length: int = 3, restart_prob: float = 0.5, num_neighbors: int = 50,
                              merge: bool = True, weighted: bool = False, weight_half_life: float | None = None,
                              block: int | None = None) -> Neighborhoods | dict[str, Neighborhoods]:
    r"""Every item's top-``num_neighbors`` items by the exact expected visits of the mixed-relation walk of
    :class:`~pinsage.sampling.MetapathSampler` (the item itself excluded): its expectation, without sampling noise.

    With :math:`P_r` relation :math:`r`'s one-relation step matrix (item -> node of :math:`r` -> item, uniform or
    by walk weight), :math:`q_r(i) = p_r [i \text{ has edges in } r] / \sum_{r'} p_{r'} [\dots]` and
    :math:`P = \sum_r \mathrm{diag}(q_r) P_r`, the expected visits of a walk from :math:`s` are
    :math:`\sum_h (1-r)^{h-1} (P^h)_{sj}` (``merge=True``) and relation :math:`r`'s part
    :math:`\sum_h (1-r)^{h-1} (P^{h-1} \mathrm{diag}(q_r) P_r)_{sj}` (``merge=False``: the visits reached by a hop
    through :math:`r`). :math:`P` is never formed: each hop is ``R`` pairs of sparse products per block of seeds.
    With one relation of positive probability this is :func:`exact_neighborhoods` of that relation.

    Args:
        graph: the :class:`~pinsage.graph.HeteroGraph`.
        relation_probs: relation -> step probability :math:`p_r` (normalised; None: every relation alike).
        walk_length, restart_prob, num_neighbors, weighted, weight_half_life, block: as :func:`exact_neighborhoods`.
        merge: one table by all visits, or a dict relation -> table for the relations of positive probability.

    Returns:
        :class:`~pinsage.Neighborhoods` (``merge=True``) or a dict of them, rows as :func:`exact_neighborhoods`'.
    """
    from pinsage.sampling.metapath import _relation_probs

    probs = _relation_probs(graph, relation_probs)
    n = graph.num_items
    if block is None:
        block = int(max(8, min(512, (1 << 24) // max(n, 1))))
    stepped = [r for r in range(graph.num_relations) if probs[r] > 0]
    steps, has = [], []
    for r in stepped:
        rel = graph.relation(graph.relations[r])
        to_group, to_item = _transitions(rel, weighted, weight_half_life if weighted else None)
        steps.append((to_group.T.tocsr(), to_item.T.tocsr()))
        has.append(np.diff(to_group.indptr) > 0)      # the item can step in r (an edge of positive weight)
    mass = np.stack([probs[r] * h for r, h in zip(stepped, has)])            # (R', n)
    total = mass.sum(axis=0)
    q = np.divide(mass, total[None, :], out=np.zeros_like(mass), where=total[None, :] > 0).astype(np.float32)
    T = int(num_neighbors)
    rows = [None] if merge else stepped
    index_dtype = np.int32 if n <= np.iinfo(np.int32).max else np.int64
    parts: dict = {r: ([], [], np.zeros(n + 1, dtype=np.int64)) for r in rows}
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        b = hi - lo
        v = np.zeros((n, b), dtype=np.float32)
        v[np.arange(lo, hi), np.arange(b)] = 1.0
        acc = {r: np.zeros_like(v) for r in rows}
        keep = 1.0
        for _ in range(int(walk_length)):
            nxt = np.zeros_like(v)
            for k, (group_t, item_t) in enumerate(steps):
                part = item_t @ (group_t @ (q[k][:, None] * v))              # (n, b): hops through relation k
                nxt += part
                if not merge:
                    acc[stepped[k]] += keep * part
            if merge:
                acc[None] += keep * nxt
            v = nxt
            keep *= 1.0 - restart_prob
            if keep == 0.0:
                break
        for r in rows:
            idx, w, counts = _top_rows(np.ascontiguousarray(acc[r].T), lo, T)
            ind, wts, indptr = parts[r]
            ind.append(idx.astype(index_dtype))
            wts.append(w)
            indptr[lo + 1:hi + 1] = indptr[lo] + np.cumsum(counts)
    out = {r: Neighborhoods(parts[r][2], np.concatenate(parts[r][0]) if parts[r][0] else np.zeros(0, index_dtype),
                            np.concatenate(parts[r][1]) if parts[r][1] else np.zeros(0, np.float32)) for r in rows}
    return out[None] if merge else {graph.relations[r]: out[r] for r in rows}
