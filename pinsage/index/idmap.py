"""The id map of an index: the items' original ids in row order, and lookups both ways.

faiss knows items only by row (``0 .. n-1``, ``-1`` for "no result"); :class:`IdMap` turns the
caller's ids into rows and rows back into ids, and writes / reads the ids of a saved index without
pickle (strings as a fixed-width numpy unicode array).
"""
from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd

from pinsage._io import InputError
from pinsage.ids import head, lookup_keys

__all__ = ["IdMap"]


def _canonical_ids(ids: Any, n: int) -> np.ndarray:
    """Ids as a 1-d array: signed integers stay integer (int64 for unsigned that fit), floats stay
    float, strings and everything else become an object array of Python objects.

    Args:
        ids: the ids, one per row.
        n: the number of rows they must match.

    Returns:
        The canonical id array.

    Shapes:
        - **ids:** :math:`(n,)`.

    Raises:
        InputError: not 1-d, not ``n`` of them, or unsigned ids above ``2**63 - 1``.
    """
    arr = np.asarray(ids)
    if arr.dtype == object:
        vals = arr.ravel().tolist()
        if vals and all(isinstance(v, Integral) and not isinstance(v, bool) for v in vals):
            arr = np.asarray(vals, dtype=np.int64)
        elif vals and all(isinstance(v, str) for v in vals):
            arr = np.asarray(vals, dtype=object)
    if arr.ndim != 1:
        raise InputError(f"ids: expected a 1-d array of {n} ids, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise InputError(f"ids: {arr.shape[0]} ids for {n} embedding rows; they must match one to one")
    kind = arr.dtype.kind
    if kind == "u":
        if arr.size and arr.max() > np.iinfo(np.int64).max:
            raise InputError("ids: unsigned ids above 2**63-1 are not supported")
        arr = arr.astype(np.int64)
    elif kind in ("U", "S"):
        arr = arr.astype(str).astype(object)
    elif kind not in ("i", "f", "O"):
        arr = arr.astype(object)
    return arr


def _fill_value(ids: np.ndarray) -> Any:
    """The "no result" sentinel for ids of this dtype: ``-1`` (integers), ``NaN`` (floats), ``None``."""
    k = ids.dtype.kind
    if k == "i":
        return -1
    if k == "f":
        return np.nan
    return None


class IdMap:
    """Original item ids <-> rows of the faiss index.

    Args:
        ids: canonical ids (see :meth:`from_ids`), row order of the index.
        lookup: a :class:`pandas.Index` over ``ids`` when one is at hand (built on first use otherwise).

    Shapes:
        - **ids:** :math:`(n,)`.
    """

    def __init__(self, ids: np.ndarray, lookup: pd.Index | None = None):
        self.ids = ids
        self.fill = _fill_value(ids)
        self._lookup = lookup

    @classmethod
    def from_ids(cls, ids: Any, n: int) -> "IdMap":
        """The id map of ``n`` new rows: ``ids`` canonicalised (``arange(n)`` when ``None``), all distinct.

        Raises:
            InputError: see :func:`_canonical_ids`, or duplicate ids (the message names them).
        """
        arr = _canonical_ids(np.arange(n) if ids is None else ids, n)
        lookup = pd.Index(arr)
        if not lookup.is_unique:
            dup = lookup[lookup.duplicated()].unique()
            raise InputError(f"ids: duplicate item id(s) {head(dup)}; every row needs its own id")
        return cls(arr, lookup)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def lookup(self) -> pd.Index:
        """:class:`pandas.Index` over the ids (row ``i`` holds ``ids[i]``)."""
        if self._lookup is None:
            self._lookup = pd.Index(self.ids)
        return self._lookup

    def rows_of(self, ids: Any) -> np.ndarray:
        """Rows of ``ids``, every one of which must be in the index.

        Args:
            ids: one id or a 1-d list of ids.

        Returns:
            int64 row positions.

        Shapes:
            - **ids:** :math:`(q,)` or a scalar (then :math:`q = 1`).
            - **output:** :math:`(q,)`.

        Raises:
            InputError: not 1-d, or ids not in the index (the message names the first few).
        """
        q = np.asarray(ids)
        if q.ndim == 0:
            q = q[None]
        if q.ndim != 1:
            raise InputError(f"ids: expected a 1-d list of item ids, got shape {q.shape}")
        q = lookup_keys(q)
        rows = np.asarray(self.lookup.get_indexer(q), dtype=np.int64)
        missing = rows < 0
        if missing.any():
            bad = pd.unique(q[missing])
            raise InputError(
                f"unknown item id(s) {head(bad)}: not among the {len(self)} items in the index"
            )
        return rows

    def known_rows(self, ids: Any) -> np.ndarray:
        """Rows of those of ``ids`` that are in the index; the others are ignored.

        Args:
            ids: any number of ids (flattened), or one id.

        Returns:
            Distinct int64 rows, sorted.

        Shapes:
            - **ids:** any shape (flattened); a scalar is one id.
            - **output:** :math:`(r,)` int64, :math:`r \\le` the number of ids.
        """
        arr = np.asarray(ids)
        if arr.ndim == 0:
            arr = arr[None]
        rows = np.asarray(self.lookup.get_indexer(lookup_keys(arr)), dtype=np.int64)
        return np.unique(rows[rows >= 0])

    def rows_to_ids(self, rows: np.ndarray) -> np.ndarray:
        """Original ids of faiss rows.

        Args:
            rows: rows from a faiss search; ``-1`` ("no result") becomes the sentinel :attr:`fill`.

        Returns:
            The ids (object array for string ids).

        Shapes:
            - **rows:** any shape, int64.
            - **output:** the shape of ``rows``, the dtype of the ids (object for strings).
        """
        valid = rows >= 0
        if self.ids.dtype == object:
            out = np.full(rows.shape, None, dtype=object)
        else:
            out = np.full(rows.shape, self.fill, dtype=self.ids.dtype)
        out[valid] = self.ids[rows[valid]]
        return out

    # -- persistence ------------------------------------------------------------------------
    def to_saved(self) -> tuple[np.ndarray, str]:
        """``(array, id_type)`` to write: integers and floats as they are, strings as a numpy unicode
        array (``id_type="str"``), so that ``np.save(..., allow_pickle=False)`` accepts it.

        Raises:
            InputError: object ids that are not all strings.
        """
        ids = self.ids
        if ids.dtype == object:
            if not all(isinstance(v, str) for v in ids.tolist()):
                raise InputError(
                    "save: ids must be all integers, all floats or all strings to be saved "
                    "(mixed or other object ids are not supported)"
                )
            return (ids.astype(str) if ids.size else np.zeros(0, dtype="<U1")), "str"
        return ids, str(ids.dtype)

    @classmethod
    def from_saved(cls, ids: np.ndarray, id_type: str) -> "IdMap":
        """The id map of an array written by :meth:`to_saved` (read with ``allow_pickle=False``)."""
        if id_type == "str":
            ids = ids.astype(object) if ids.dtype.kind == "U" else ids.astype(str).astype(object)
        return cls(_canonical_ids(ids, ids.shape[0]))
