"""A batch of item histories as index rows, and the recency-weighted mean that scores them.

:class:`Histories` holds :math:`q` histories in CSR form (``indptr``, ``rows``), each oldest first, so
its last row is the most recent item. A history of length :math:`L` gives its item at position
:math:`j \\in \\{0, \\dots, L - 1\\}` the weight

.. math::

    w_j = 2^{-(L - 1 - j) / h}

(1 for the most recent item, 1/2 for the one ``h`` = ``half_life`` items before it; ``half_life=None``
weighs all alike), and the history's query vector is the weighted mean of its items' embeddings
:math:`q = \\sum_j w_j e_j / \\sum_j w_j`. With the inner-product metric an item :math:`v` then scores
:math:`\\langle q, x_v \\rangle = \\sum_j w_j \\langle e_j, x_v \\rangle / \\sum_j w_j`: the recency-weighted
mean of its scores against the history's items.
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Any, Callable

import numpy as np

from pinsage._io import InputError
from pinsage.index.exclusions import is_id_list

__all__ = ["Histories", "recency_weights", "weighted_means"]


@dataclass(frozen=True)
class Histories:
    """:math:`q` item histories as rows of an index, each oldest first.

    Args:
        indptr: offsets; history ``u`` is ``rows[indptr[u]:indptr[u + 1]]``.
        rows: index rows of the items.

    Shapes:
        - **indptr:** :math:`(q + 1,)` int64.
        - **rows:** :math:`(\\text{nnz},)` int64.
    """

    indptr: np.ndarray
    rows: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "indptr", np.asarray(self.indptr, dtype=np.int64))
        object.__setattr__(self, "rows", np.asarray(self.rows, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def lengths(self) -> np.ndarray:
        """``(q,)`` int64: items per history."""
        return np.diff(self.indptr)

    def owner(self) -> np.ndarray:
        """``(nnz,)`` int64: the history of every entry of :attr:`rows`."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def last(self, max_len: int | None) -> "Histories":
        """The ``max_len`` most recent items of each history (itself when None or all are shorter)."""
        if max_len is None or not len(self) or int(self.lengths.max()) <= max_len:
            return self
        owner = self.owner()
        back = self.indptr[owner + 1] - 1 - np.arange(self.rows.size, dtype=np.int64)
        keep = back < int(max_len)
        indptr = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(np.minimum(self.lengths, int(max_len)), out=indptr[1:])
        return Histories(indptr, self.rows[keep])

    @classmethod
    def from_ids(cls, histories: Any, rows_of: Callable[[Any], np.ndarray]) -> tuple["Histories", bool]:
        """Read histories of item ids.

        Args:
            histories: one history (a flat list of ids, oldest first) or a list of them.
            rows_of: maps a 1-d list of ids to their rows, raising on unknown ids
                (:meth:`pinsage.ItemIndex.rows_of`).

        Returns:
            The histories, and whether one flat history was given (the caller's results are then 1-d).

        Raises:
            InputError: an empty history, or ids that ``rows_of`` refuses.
        """
        if isinstance(histories, Histories):
            return histories, False
        if not is_id_list(histories):
            raise InputError("history: expected a list of item ids (oldest first) or a list of such lists, "
                             f"got {type(histories).__name__}")
        nested = len(histories) > 0 and all(is_id_list(h) for h in histories)
        batch = list(histories) if nested else [histories]
        lens = np.asarray([len(h) for h in batch], dtype=np.int64)  # one step per history, not per item
        if (lens == 0).any():
            raise InputError(f"history {int(np.argmax(lens == 0))}: empty; a history needs at least one item")
        flat = np.concatenate([np.asarray(h, dtype=object).reshape(-1) for h in batch])
        indptr = np.zeros(len(batch) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        return cls(indptr, rows_of(flat)), not nested


def recency_weights(histories: Histories, half_life: float | None) -> np.ndarray:
    """Every entry's weight :math:`w_j = 2^{-(L - 1 - j) / h}` (see the module docstring).

    Args:
        histories: the batch.
        half_life: :math:`h`, in items; ``None`` (or infinity) gives every item weight 1.

    Returns:
        float64 weights, 1 for each history's most recent item.

    Shapes:
        - **output:** :math:`(\\text{nnz},)`.

    Raises:
        InputError: ``half_life`` not a positive number.
    """
    nnz = histories.rows.size
    if half_life is None or half_life == float("inf"):
        return np.ones(nnz, dtype=np.float64)
    if not isinstance(half_life, Real) or isinstance(half_life, bool) or not half_life > 0:
        raise InputError(f"half_life must be a positive number of items, got {half_life!r}")
    owner = histories.owner()
    back = histories.indptr[owner + 1] - 1 - np.arange(nnz, dtype=np.int64)
    return np.exp2(-back / float(half_life))


def weighted_means(vectors: np.ndarray, histories: Histories, weights: np.ndarray) -> np.ndarray:
    """Each history's weighted mean vector :math:`\\sum_j w_j e_j / \\sum_j w_j`.

    Args:
        vectors: the items' embeddings, one row per entry of ``histories.rows``.
        histories: the batch (no empty history).
        weights: one weight per entry (:func:`recency_weights`).

    Returns:
        float32 query vectors.

    Shapes:
        - **vectors:** :math:`(\\text{nnz}, d)`.
        - **weights:** :math:`(\\text{nnz},)`.
        - **output:** :math:`(q, d)`.
    """
    starts = histories.indptr[:-1]
    sums = np.add.reduceat(vectors.astype(np.float64) * weights[:, None], starts, axis=0)
    totals = np.add.reduceat(weights, starts)
    return np.ascontiguousarray(sums / totals[:, None], dtype=np.float32)
