"""What :meth:`~pinsage.index.ItemIndex.related` leaves out: the query item itself and the ``exclude`` ids.

The index is searched once, over-fetching ``k + 1 + (most ids excluded for one query)`` neighbours, so
that dropping the query item and its exclusions still leaves ``k`` results whenever the index returns
that many (an exact index always does). Exclusions are kept as index rows: one sorted array shared by
all queries (global), or sorted keys ``query * n + row`` (per query), so a whole batch is filtered with
a few vectorised numpy operations.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

__all__ = ["Exclusions", "is_id_list", "related_rows"]


def is_id_list(x: Any) -> bool:
    """Whether ``x`` is a list of ids (as opposed to one id)."""
    return isinstance(x, (list, tuple, set, frozenset, np.ndarray, pd.Index, pd.Series))


@dataclass(frozen=True)
class Exclusions:
    """Rows to leave out of each query's results.

    Args:
        n: number of rows of the index.
        shared: rows excluded from every query, sorted, distinct.
        pairs: sorted keys ``query * n + row`` of the rows excluded from one query only.
        extra: the most rows excluded for any one query (how far to over-fetch).

    Shapes:
        - **shared:** :math:`(e,)` int64.
        - **pairs:** :math:`(p,)` int64.
    """

    n: int
    shared: np.ndarray
    pairs: np.ndarray
    extra: int

    @classmethod
    def none(cls, n: int) -> "Exclusions":
        """Nothing excluded but the query items themselves."""
        empty = np.zeros(0, dtype=np.int64)
        return cls(n, empty, empty, 0)

    @classmethod
    def parse(cls, exclude: Any, n_queries: int, n: int,
              known_rows: Callable[[Any], np.ndarray]) -> "Exclusions":
        """Read ``exclude`` as :meth:`~pinsage.index.ItemIndex.related` takes it.

        Args:
            exclude: ``None``; one flat list of ids applied to every query (global); or a list of
                ``n_queries`` lists, one per query (``None`` entries allowed). A set is always global.
            n_queries: number of queries.
            n: number of rows of the index.
            known_rows: maps ids to the distinct, sorted rows of those in the index (unknown ids
                ignored), as :meth:`~pinsage.index.idmap.IdMap.known_rows`.

        Returns:
            The exclusions as rows.
        """
        if exclude is None:
            return cls.none(n)
        per_query = (
            is_id_list(exclude)
            and len(exclude) == n_queries
            and len(exclude) > 0
            and not isinstance(exclude, (set, frozenset))
            and all(e is None or is_id_list(e) for e in exclude)
        )
        empty = np.zeros(0, dtype=np.int64)
        if not per_query:
            shared = known_rows(list(exclude) if isinstance(exclude, (set, frozenset)) else exclude)
            return cls(n, shared, empty, int(shared.size))
        chunks = []
        for e in exclude:
            r = empty
            if e is not None and len(e):
                r = known_rows(list(e) if isinstance(e, (set, frozenset)) else e)
            chunks.append(r)
        counts = np.asarray([c.size for c in chunks], dtype=np.int64)
        owner = np.repeat(np.arange(n_queries, dtype=np.int64), counts)
        pairs = np.sort(owner * n + np.concatenate(chunks))
        return cls(n, empty, pairs, int(counts.max()))

    def fetch_size(self, k: int) -> int:
        """Neighbours to search for so that ``k`` remain after the drops (at most ``n``)."""
        return min(k + 1 + self.extra, self.n)

    def mask(self, found: np.ndarray, query_rows: np.ndarray) -> np.ndarray:
        """Which search results to leave out.

        Args:
            found: rows returned by the search (``-1``: no result).
            query_rows: rows of the query items.

        Returns:
            True where a result is to be dropped: no result, the query item itself, or excluded.

        Shapes:
            - **found:** :math:`(q, kk)` int64 rows returned by the search.
            - **query_rows:** :math:`(q,)` int64 rows of the query items.
            - **output:** :math:`(q, kk)` bool.
        """
        drop = (found < 0) | (found == query_rows[:, None])
        if self.shared.size:
            drop |= np.isin(found, self.shared)
        if self.pairs.size:
            keys = np.arange(found.shape[0], dtype=np.int64)[:, None] * self.n + found
            pos = np.searchsorted(self.pairs, keys)
            pos[pos >= self.pairs.size] = 0
            drop |= self.pairs[pos] == keys
        return drop


def first_kept(found: np.ndarray, scores: np.ndarray, drop: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` results of each row that are not dropped, order kept.

    Args:
        found: rows returned by the search.
        scores: their scores.
        drop: True where a result is to be left out (see :meth:`Exclusions.mask`).
        k: results to keep per row.

    Returns:
        rows: int64 rows kept; ``-1`` where fewer than ``k`` remain.
        scores: their float32 scores; ``NaN`` for padding.

    Shapes:
        - **found, scores, drop:** :math:`(q, kk)`.
        - **rows, scores (returned):** :math:`(q, k)` each.
    """
    order = np.argsort(drop, axis=1, kind="stable")[:, :k]
    kept_rows = np.take_along_axis(found, order, axis=1)
    kept_scores = np.take_along_axis(scores, order, axis=1).astype(np.float32, copy=False)
    kept_drop = np.take_along_axis(drop, order, axis=1)
    if kept_rows.shape[1] < k:  # catalogue smaller than k
        pad = k - kept_rows.shape[1]
        kept_rows = np.pad(kept_rows, ((0, 0), (0, pad)), constant_values=-1)
        kept_scores = np.pad(kept_scores, ((0, 0), (0, pad)), constant_values=np.nan)
        kept_drop = np.pad(kept_drop, ((0, 0), (0, pad)), constant_values=True)
    kept_rows = np.where(kept_drop, -1, kept_rows)
    kept_scores = np.where(kept_drop, np.float32(np.nan), kept_scores).astype(np.float32)
    return kept_rows, kept_scores


def related_rows(
    search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
    query_vectors: np.ndarray,
    query_rows: np.ndarray,
    k: int,
    exclusions: Exclusions,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best rows for each query item, the item itself and its exclusions left out.

    Args:
        search: ``search(vectors, kk) -> (scores, rows)`` of the index, padded to ``kk`` columns.
        query_vectors: the stored vectors of the query items.
        query_rows: their rows.
        k: results per query.
        exclusions: what else to leave out.

    Returns:
        rows: int64 rows, best first; ``-1`` where fewer than ``k`` results remain.
        scores: their float32 scores; ``NaN`` for padding.

    Shapes:
        - **query_vectors:** :math:`(q, d)` float32.
        - **query_rows:** :math:`(q,)` int64.
        - **rows, scores:** :math:`(q, k)` each.
    """
    scores, found = search(query_vectors, exclusions.fetch_size(k))
    drop = exclusions.mask(found, query_rows)
    return first_kept(found, scores, drop, k)
