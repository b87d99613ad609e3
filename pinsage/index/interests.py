"""A history's several interests, in the manner of PinnerSage (Pal et al., KDD 2020).

One mean vector blurs a user who follows several topics into a point between them. PinnerSage clusters
the user's item embeddings instead, represents every cluster by its *medoid* (the member closest to the
cluster's centre: a real item, so the query stays on the manifold of item embeddings) and queries the
index once per cluster. This module does the clustering for a whole batch of histories at once:

* every history gets :math:`c_u = \\min(\\text{clusters}, L_u)` clusters, by spherical k-means on the
  directions :math:`\\hat e_j = e_j / \\lVert e_j \\rVert` (cosine similarity; the learned lengths say how
  engaging an item is, not what it is about), seeded deterministically by farthest-point seeding from
  the most recent item, then ``iters`` Lloyd steps;
* a cluster's importance is the recency weight of its members,
  :math:`I_c = \\sum_{j \\in c} w_j / \\sum_j w_j` (:func:`~pinsage.index.histories.recency_weights`);
* :func:`quotas` splits the :math:`N` results among a history's clusters in proportion to :math:`I_c`
  (largest remainders).

Histories are padded to a dense ``(histories, longest, d)`` block, a chunk of similar lengths at a time,
so the whole batch runs as a few batched matrix products per step: the only Python loops are over the
clusters (seeding), the Lloyd steps and the chunks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pinsage.index.histories import Histories

__all__ = ["Interests", "cluster_histories", "quotas"]

#: padded entries (histories x longest history) per chunk of :func:`cluster_histories`
CHUNK_ENTRIES = 1 << 16


@dataclass(frozen=True)
class Interests:
    """The non-empty clusters of a batch of histories, sorted by history.

    Args:
        owner: the history of each interest.
        medoid: the position in ``histories.rows`` of its medoid.
        importance: its share of its history's recency weight (summing to 1 per history).
        size: its number of members.

    Shapes:
        - **owner, medoid, size:** :math:`(m,)` int64.
        - **importance:** :math:`(m,)` float64.
    """

    owner: np.ndarray
    medoid: np.ndarray
    importance: np.ndarray
    size: np.ndarray


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _chunks(lengths_sorted: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` over histories sorted by length, each chunk's ``count x longest <= budget``
    (a chunk holds at least one history)."""
    out, start, q = [], 0, len(lengths_sorted)
    while start < q:
        cost = (np.arange(start, q) - start + 1) * lengths_sorted[start:]  # increasing: lengths sorted
        end = start + max(1, int(np.searchsorted(cost, budget, side="right")))
        out.append((start, end))
        start = end
    return out


def _cluster_block(x: np.ndarray, mask: np.ndarray, lens: np.ndarray, clusters: int,
                   iters: int) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means of a padded block of histories.

    Args:
        x: unit directions, zero where padded.
        mask: True at real entries.
        lens: history lengths.
        clusters: the most clusters per history.
        iters: Lloyd steps.

    Returns:
        assign: the cluster of every entry (meaningful where ``mask``).
        sims: every entry's cosine similarity to its cluster's centre.

    Shapes:
        - **x:** :math:`(b, L, d)`; **mask:** :math:`(b, L)`; **lens:** :math:`(b,)`.
        - **assign, sims:** :math:`(b, L)`.
    """
    b, L, _ = x.shape
    c = max(1, min(clusters, L))
    rows = np.arange(b)
    active = np.arange(c)[None, :] < np.minimum(clusters, lens)[:, None]  # (b, c)
    centres = np.zeros((b, c, x.shape[2]), dtype=x.dtype)
    centres[:, 0] = x[rows, lens - 1]  # the most recent item
    nearest = np.einsum("bld,bd->bl", x, centres[:, 0])
    for t in range(1, c):  # farthest-point seeding: the entry least like any centre so far
        pick = np.argmin(np.where(mask, nearest, np.inf), axis=1)
        centres[:, t] = x[rows, pick]
        nearest = np.maximum(nearest, np.einsum("bld,bd->bl", x, centres[:, t]))
    assign = np.zeros((b, L), dtype=np.int64)
    for step in range(iters + 1):
        sims = np.matmul(x, centres.transpose(0, 2, 1))  # (b, L, c)
        sims[~np.broadcast_to(active[:, None, :], sims.shape)] = -np.inf
        new = np.argmax(sims, axis=2)
        if step and np.array_equal(new[mask], assign[mask]):
            break
        assign = new
        if step == iters:
            break
        onehot = (assign[:, :, None] == np.arange(c)) & mask[:, :, None]  # (b, L, c)
        summed = np.matmul(onehot.transpose(0, 2, 1).astype(x.dtype), x)  # (b, c, d)
        filled = onehot.any(axis=1)
        centres = np.where(filled[:, :, None], _unit(summed), centres)  # an empty cluster keeps its centre
    return assign, np.take_along_axis(sims, assign[:, :, None], axis=2)[:, :, 0]


def cluster_histories(vectors: np.ndarray, histories: Histories, weights: np.ndarray, clusters: int,
                      iters: int = 10, chunk_entries: int = CHUNK_ENTRIES) -> Interests:
    """Cluster every history of a batch and pick each cluster's medoid (see the module docstring).

    Args:
        vectors: the embeddings of ``histories.rows``, one row per entry.
        histories: the batch (no empty history).
        weights: the entries' recency weights (:func:`~pinsage.index.histories.recency_weights`).
        clusters: the most clusters per history (each history gets ``min(clusters, its length)``).
        iters: the most Lloyd steps (it stops early when no assignment changes).
        chunk_entries: padded entries per chunk (bounds the memory: about ``chunk_entries * (d + clusters)``
            floats).

    Returns:
        The non-empty clusters, sorted by history (then by cluster).

    Shapes:
        - **vectors:** :math:`(\\text{nnz}, d)`; **weights:** :math:`(\\text{nnz},)`.
    """
    q, d = len(histories), vectors.shape[1]
    lens = histories.lengths
    order = np.argsort(lens, kind="stable")
    parts: list[tuple[np.ndarray, ...]] = []
    for start, end in _chunks(lens[order], chunk_entries):
        members = order[start:end]
        blens = lens[members]
        b, L = len(members), int(blens.max())
        entry_owner = np.repeat(np.arange(b), blens)
        entry_slot = np.arange(int(blens.sum())) - np.repeat(np.cumsum(blens) - blens, blens)
        entry_pos = histories.indptr[members][entry_owner] + entry_slot  # positions in histories.rows
        x = np.zeros((b, L, d), dtype=np.float32)
        x[entry_owner, entry_slot] = _unit(np.asarray(vectors[entry_pos], dtype=np.float32))
        mask = np.zeros((b, L), dtype=bool)
        mask[entry_owner, entry_slot] = True
        w = np.zeros((b, L), dtype=np.float64)
        w[entry_owner, entry_slot] = weights[entry_pos]
        pos = np.full((b, L), -1, dtype=np.int64)
        pos[entry_owner, entry_slot] = entry_pos

        assign, sims = _cluster_block(x, mask, blens, clusters, iters)
        c = max(1, min(clusters, L))
        onehot = (assign[:, :, None] == np.arange(c)) & mask[:, :, None]  # (b, L, c)
        size = onehot.sum(axis=1)  # (b, c)
        weight = np.einsum("blc,bl->bc", onehot, w)
        medoid_slot = np.argmax(np.where(onehot, sims[:, :, None], -np.inf), axis=1)  # (b, c)
        hb, hc = np.nonzero(size > 0)
        parts.append((members[hb], hc, pos[hb, medoid_slot[hb, hc]], weight[hb, hc], size[hb, hc]))
    owner, slot, medoid, weight, size = (np.concatenate(p) for p in zip(*parts)) if parts else \
        (np.zeros(0, dtype=np.int64),) * 5
    by = np.lexsort((slot, owner))
    owner, medoid, weight, size = owner[by], medoid[by], weight[by].astype(np.float64), size[by]
    total = np.bincount(owner, weights=weight, minlength=q)
    return Interests(owner.astype(np.int64), medoid.astype(np.int64), weight / total[owner], size.astype(np.int64))


def quotas(interests: Interests, n_histories: int, N: int) -> np.ndarray:
    """How many of a history's :math:`N` results each of its clusters gets: :math:`N I_c` rounded by
    largest remainders, so that they add up to :math:`N` per history.

    Args:
        interests: the clusters (sorted by history).
        n_histories: :math:`q`.
        N: results per history.

    Returns:
        int64 quotas, one per interest.

    Shapes:
        - **output:** :math:`(m,)`.
    """
    share = N * interests.importance
    base = np.floor(share).astype(np.int64)
    owner = interests.owner
    left = N - np.bincount(owner, weights=base, minlength=n_histories).astype(np.int64)
    frac = share - base
    order = np.lexsort((-frac, owner))  # by history, then largest remainder first
    starts = np.searchsorted(owner, np.arange(n_histories))
    rank = np.empty(len(owner), dtype=np.int64)
    rank[order] = np.arange(len(owner)) - starts[owner[order]]
    return base + (rank < left[owner])
