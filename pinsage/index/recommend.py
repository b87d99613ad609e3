"""Recommendations for item histories: what :meth:`~pinsage.index.ItemIndex.recommend` computes.

Two ways to turn a history (oldest first) into results, both batched over many histories:

``method="recency"`` (default)
    One query per history, the recency-weighted mean of its items' embeddings
    (:mod:`pinsage.index.histories`: weight :math:`2^{-\\text{steps back} / h}`, ``half_life`` :math:`h`).
    An item's score is its recency-weighted mean score against the history.
``method="interests"``
    PinnerSage's multi-interest queries (:mod:`pinsage.index.interests`): up to ``clusters`` clusters
    per history, one index query per cluster medoid, and the results merged by score with per-cluster
    quotas: cluster :math:`c` contributes its best :math:`\\approx N I_c` items (:math:`I_c` its share
    of the recency weight), any shortfall (clusters that found the same items) is filled with the best
    remaining candidates of any cluster, and the :math:`N` chosen are returned by score. An item's score
    is its similarity to the medoid of the cluster that found it.

The history's own items are left out of the results by default (``filter_already_liked_items``), and
so are any ``filter_items``; the index is searched once for ``N + 1 + (most items left out of one
history)`` neighbours per query so that ``N`` remain (:class:`~pinsage.index.exclusions.Exclusions`).
In a batch, each history reads its clusters' results only as deep as it would searched alone
(``N + 1 +`` its own exclusions), so its results do not depend on the other histories of the batch.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from pinsage._io import InputError
from pinsage.index.exclusions import Exclusions, first_kept
from pinsage.index.histories import Histories, recency_weights, weighted_means
from pinsage.index.interests import cluster_histories, quotas

__all__ = ["METHODS", "history_exclusions", "recommend_rows", "merge_by_quota"]

METHODS = ("recency", "interests")

Search = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def history_exclusions(histories: Histories, n: int, filter_already_liked_items: bool = True,
                       filter_rows: np.ndarray | None = None) -> Exclusions:
    """The rows each history's results leave out: its own items (when ``filter_already_liked_items``)
    and ``filter_rows`` (for every history).

    Args:
        histories: the batch.
        n: rows of the index.
        filter_already_liked_items: leave each history's own items out.
        filter_rows: rows left out of every history's results.

    Returns:
        Exclusions over ``len(histories)`` queries.
    """
    shared = np.unique(np.asarray(filter_rows, dtype=np.int64)) if filter_rows is not None else np.zeros(0, np.int64)
    if not filter_already_liked_items or histories.rows.size == 0:
        return Exclusions(n, shared, np.zeros(0, dtype=np.int64), int(shared.size))
    pairs = np.unique(histories.owner() * n + histories.rows)
    per_query = np.bincount(pairs // n, minlength=len(histories))
    return Exclusions(n, shared, pairs, int(per_query.max()) + int(shared.size))


def merge_by_quota(found: np.ndarray, scores: np.ndarray, owner: np.ndarray, quota: np.ndarray,
                   n_histories: int, N: int, exclusions: Exclusions) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-cluster results into ``N`` per history (see the module docstring).

    Args:
        found: rows found for each cluster query, best first (``-1``: none).
        scores: their scores.
        owner: the history of each cluster query (sorted).
        quota: how many results each cluster query is owed (:func:`~pinsage.index.interests.quotas`).
        n_histories: :math:`q`.
        N: results per history.
        exclusions: rows to leave out, per history.

    Returns:
        rows: int64, best first; ``-1`` where fewer than ``N`` remain.
        scores: float32; ``NaN`` for padding.

    Shapes:
        - **found, scores:** :math:`(m, kk)`; **owner, quota:** :math:`(m,)`.
        - **rows, scores (returned):** :math:`(q, N)`.
    """
    m, kk = found.shape
    q, n = n_histories, exclusions.n
    starts = np.searchsorted(owner, np.arange(q))
    slot = np.arange(m) - starts[owner]
    c = int(slot.max()) + 1 if m else 1
    rows = np.full((q, c, kk), -1, dtype=np.int64)
    sc = np.full((q, c, kk), np.nan, dtype=np.float32)
    owed = np.zeros((q, c), dtype=np.int64)
    rows[owner, slot], sc[owner, slot], owed[owner, slot] = found, scores, quota
    # each history looks as deep as it would searched alone, so a result does not depend on the batch
    own = np.bincount(exclusions.pairs // n, minlength=q) if exclusions.pairs.size else np.zeros(q, np.int64)
    depth = np.minimum(N + 1 + own + exclusions.shared.size, n)
    beyond = np.broadcast_to(np.arange(kk)[None, None, :] >= depth[:, None, None], (q, c, kk))
    flat_rows, flat_sc = rows.reshape(q, c * kk), sc.reshape(q, c * kk)
    drop = (exclusions.mask(flat_rows, np.full(q, -1, dtype=np.int64)) | ~np.isfinite(flat_sc)
            | beyond.reshape(q, c * kk))
    ranked = np.where(drop, -np.inf, flat_sc)
    # an item several clusters found counts once, for the cluster that scored it highest
    key = np.where(drop, -1, np.arange(q, dtype=np.int64)[:, None] * n + flat_rows).ravel()
    by_score = np.argsort(-ranked.ravel(), kind="stable")
    _, first = np.unique(key[by_score], return_index=True)
    unique = np.zeros(key.size, dtype=bool)
    unique[by_score[first]] = True
    drop |= ~unique.reshape(q, c * kk)
    kept = ~drop.reshape(q, c, kk)
    within = np.cumsum(kept, axis=2) - 1  # rank among the cluster's kept results
    tier = np.where(kept & (within < owed[:, :, None]), 0, np.where(kept, 1, 2)).reshape(q, c * kk)
    ranked = np.where(drop, -np.inf, flat_sc)
    order = np.argsort(-ranked, axis=1, kind="stable")
    order = np.take_along_axis(order, np.argsort(np.take_along_axis(tier, order, axis=1), axis=1, kind="stable"),
                               axis=1)[:, :N]  # quota picks first, then the best of the rest
    chosen = np.take_along_axis(ranked, order, axis=1)
    order = np.take_along_axis(order, np.argsort(-chosen, axis=1, kind="stable"), axis=1)  # by score
    out_drop = np.take_along_axis(tier, order, axis=1) == 2
    out_rows = np.where(out_drop, -1, np.take_along_axis(flat_rows, order, axis=1))
    out_sc = np.where(out_drop, np.float32(np.nan), np.take_along_axis(flat_sc, order, axis=1)).astype(np.float32)
    if out_rows.shape[1] < N:  # fewer candidates than N (a tiny catalogue)
        pad = N - out_rows.shape[1]
        out_rows = np.pad(out_rows, ((0, 0), (0, pad)), constant_values=-1)
        out_sc = np.pad(out_sc, ((0, 0), (0, pad)), constant_values=np.nan)
    return out_rows, out_sc


def recommend_rows(search: Search, reconstruct: Callable[[np.ndarray], np.ndarray], n: int,
                   histories: Histories, N: int = 10, method: str = "recency",
                   half_life: float | None = 10.0, clusters: int = 3, filter_already_liked_items: bool = True,
                   filter_rows: np.ndarray | None = None, iters: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The ``N`` best rows for each history.

    Args:
        search: ``search(vectors, kk) -> (scores, rows)`` of the index, padded to ``kk`` columns.
        reconstruct: the stored vectors of given rows.
        n: rows of the index.
        histories: the batch (no empty history).
        N: results per history.
        method: ``"recency"`` or ``"interests"`` (see the module docstring).
        half_life: recency half-life in items (``None``: all items weigh alike).
        clusters: the most clusters per history (``"interests"``).
        filter_already_liked_items: leave each history's own items out.
        filter_rows: rows left out of every history's results.
        iters: k-means steps (``"interests"``).

    Returns:
        rows: int64, best first; ``-1`` where fewer than ``N`` remain.
        scores: float32; ``NaN`` for padding.

    Shapes:
        - **rows, scores:** :math:`(q, N)`.

    Raises:
        InputError: an unknown method, ``N`` or ``clusters`` not a positive integer, a bad ``half_life``.
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {list(METHODS)}, got {method!r}")
    for name, value in (("N", N), ("clusters", clusters)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    N, q = int(N), len(histories)
    weights = recency_weights(histories, half_life)
    exclusions = history_exclusions(histories, n, filter_already_liked_items, filter_rows)
    if q == 0:
        return np.zeros((0, N), dtype=np.int64), np.zeros((0, N), dtype=np.float32)
    if (histories.lengths == 0).any():
        raise InputError(f"history {int(np.argmax(histories.lengths == 0))}: empty; a history needs at least one item")
    vectors = reconstruct(histories.rows)
    kk = exclusions.fetch_size(N)
    if method == "recency":
        scores, found = search(weighted_means(vectors, histories, weights), kk)
        drop = exclusions.mask(found, np.full(q, -1, dtype=np.int64))
        return first_kept(found, scores, drop, N)
    interests = cluster_histories(vectors, histories, weights, int(clusters), iters=iters)
    scores, found = search(np.ascontiguousarray(vectors[interests.medoid]), kk)
    return merge_by_quota(found, scores, interests.owner, quotas(interests, q, N), q, N, exclusions)
