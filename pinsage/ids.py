"""Item and group ids: one place for coercing, aligning and quoting them.

Ids come from users' files and keep their type through a run (``item_ids.npy`` has the dtype of the
input column). Everywhere they are compared, they go through these helpers:

* :func:`lookup_keys` makes an id array safe for :class:`pandas.Index` lookups (fixed-width numpy
  strings become Python strings, so ``"a"`` of a ``<U1`` array matches ``"a"`` of an object array);
* :func:`positions` maps ids to their rows in a catalogue (-1 when absent), vectorised;
* :func:`coerce_ids` turns typed-in strings (``"42"``) into the catalogue's id type, vectorised;
* :func:`comparable` puts two id arrays of different kinds (numbers in one file, strings in another)
  on a common footing: both as strings;
* :func:`head` and :func:`py_scalar` quote ids in error messages (``[7, 9] and 3 more``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from pinsage._io import InputError

__all__ = ["py_scalar", "head", "lookup_keys", "positions", "coerce_ids", "rows_of", "comparable",
           "whole_floats_as_int", "sorted_unique"]

_INT_PATTERN = r"[+-]?\d+"


def py_scalar(value: Any) -> Any:
    """numpy scalars as plain Python values, so messages read ``7`` rather than ``np.int64(7)``."""
    return value.item() if isinstance(value, np.generic) else value


def head(values: Sequence[Any] | np.ndarray, limit: int = 5) -> str:
    """The first ``limit`` values for a message: ``"['a', 'b'] and 3 more"``."""
    vals = list(values)
    shown = ", ".join(repr(py_scalar(v)) for v in vals[:limit])
    more = f" and {len(vals) - limit} more" if len(vals) > limit else ""
    return f"[{shown}]{more}"


def lookup_keys(ids: Any) -> np.ndarray:
    """``ids`` as a 1-d array usable as :class:`pandas.Index` keys: numpy strings become objects."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    return arr.astype(str).astype(object) if arr.dtype.kind in "US" else arr


def positions(values: Any, ids: Any) -> np.ndarray:
    """Row of each of ``values`` in the catalogue ``ids`` (shape of ``values``, int64; -1 when absent)."""
    vals = np.asarray(values)
    out = pd.Index(lookup_keys(ids)).get_indexer(pd.Index(lookup_keys(vals)))
    return np.asarray(out, dtype=np.int64).reshape(vals.shape)


def coerce_ids(values: Sequence[Any] | np.ndarray, like: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert ``values`` (typically strings read from a file or typed in) to the id type of ``like``.

    Integer catalogues accept ``"42"``, ``" 42 "``, ``42`` and ``"42.0"``; float catalogues any number;
    other catalogues compare as strings. Returns ``(converted, bad)``: ``converted`` has one entry per
    value (a placeholder where ``bad``), ``bad`` is a bool mask of the values that cannot be of that type
    (``"abc"`` or ``"4.5"`` for integer ids, missing values). Vectorised: no Python loop per id.
    """
    vals = np.asarray(values, dtype=object).reshape(-1)
    kind = np.asarray(like).dtype.kind
    if kind not in "iuf":
        return np.asarray([v if isinstance(v, str) else str(py_scalar(v)) for v in vals.tolist()],
                          dtype=object), np.zeros(len(vals), dtype=bool)
    series = pd.Series(vals, dtype=object)
    missing = series.isna().to_numpy()
    text = series.astype(str).str.strip()
    if kind == "f":
        num = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(np.float64)
        bad = np.isnan(num) & ~(text.str.lower() == "nan").to_numpy()
        bad |= missing
        return np.where(bad, 0.0, num), bad
    out = np.zeros(len(vals), dtype=np.int64)
    exact = text.str.fullmatch(_INT_PATTERN).to_numpy(dtype=bool) & ~missing
    if exact.any():
        try:
            out[exact] = text[exact].astype(np.int64).to_numpy()
        except OverflowError:  # beyond int64: go one by one only for these rare values
            big = [int(t) for t in text[exact]]
            ok = np.array([-2**63 <= b < 2**63 for b in big])
            idx = np.flatnonzero(exact)
            out[idx[ok]] = np.asarray(big, dtype=object)[ok].astype(np.int64)
            exact[idx[~ok]] = False
            missing[idx[~ok]] = True
    rest = ~exact & ~missing
    if rest.any():
        num = pd.to_numeric(text[rest], errors="coerce").to_numpy(np.float64)
        whole = np.isfinite(num) & (num == np.round(num)) & (np.abs(num) < 2.0**63)
        idx = np.flatnonzero(rest)
        out[idx[whole]] = num[whole].astype(np.int64)
        rest[idx[whole]] = False
    bad = rest | missing
    if kind == "u":
        bad |= out < 0
    return out, bad


def rows_of(values: Sequence[Any] | np.ndarray, ids: np.ndarray, where: str, what: str = "the run's") -> np.ndarray:
    """Rows in the catalogue ``ids`` of ``values`` (strings or ids, coerced with :func:`coerce_ids`), int64.

    Raises :class:`~pinsage.InputError` starting with ``where`` and naming the unknown ids.
    """
    vals = np.asarray(values, dtype=object).reshape(-1)
    conv, bad = coerce_ids(vals, ids)
    rows = positions(conv, ids)
    rows[bad] = -1
    missing = rows < 0
    if missing.any():
        unknown = list(pd.unique(np.asarray([str(py_scalar(v)) for v in vals[missing]], dtype=object)))
        raise InputError(f"{where}: unknown item id(s) {head(unknown)}: not among {what} {len(ids)} items")
    return rows


def comparable(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` ready to compare: when one is numeric and the other not, both as strings (a CSV's
    ``1`` and a catalogue's ``"1"`` are the same item); else unchanged (numpy strings as objects)."""
    a, b = np.asarray(a), np.asarray(b)
    if (a.dtype.kind in "iufb") != (b.dtype.kind in "iufb"):
        return a.astype(str).astype(object), b.astype(str).astype(object)
    return lookup_keys(a), lookup_keys(b)


def whole_floats_as_int(values: Any) -> np.ndarray:
    """Ids as a 1-d array; floats that are all finite whole numbers become int64 (a column with blanks
    read as float)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.dtype.kind == "f" and len(arr) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    return arr


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Unique values, sorted when they are mutually comparable, else in order of appearance."""
    uniq = pd.unique(np.asarray(values))
    try:
        return np.sort(np.asarray(uniq))
    except TypeError:
        return np.asarray(uniq)
