"""The bipartite interaction graph every other part of pinsage stands on.

Groups (users, boards) collect items (pins, movies). :class:`InteractionGraph` keeps

* dense id maps: original ids of any hashable dtype <-> ``0..num_items-1`` / ``0..num_groups-1``;
* CSR adjacency in both directions, with ``int64`` offsets and ``int32`` neighbour indices where the
  counts fit (``int64`` otherwise):

  - group -> items: ``group_indptr`` ``(num_groups + 1,)``, ``group_items`` ``(num_edges,)``;
  - item -> groups: ``item_indptr`` ``(num_items + 1,)``, ``item_groups`` ``(num_edges,)``;

* optional per-edge arrays in group-CSR order: ``edge_weight`` (float32; the summed weight, or the
  number of duplicates merged when they were not all 1) and ``edge_time`` (int64 or float64; the
  latest time of the merged duplicates).

Storage is ``8 + 16 (num_items + num_groups) / num_edges`` bytes per edge for both directions with
int32 indices and no weights or times: under 9 bytes per edge on any graph with more edges than
twice its nodes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Hashable, Iterable

import numpy as np
import pandas as pd

from pinsage._io import InputError, atomic_dir, read_table
from pinsage.graph._csr import fill_transpose
from pinsage.graph._store_files import load_arrays, load_id_maps, save_id_maps
from pinsage.ids import py_scalar

__all__ = ["InteractionGraph", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_INT32_MAX = np.iinfo(np.int32).max


def _index_dtype(n: int) -> np.dtype:
    return np.dtype(np.int32) if n <= _INT32_MAX else np.dtype(np.int64)


#: :func:`pandas.api.types.infer_dtype` kinds of an object column that are ids of one type
_ID_KINDS = frozenset({"string", "integer", "floating", "decimal", "boolean", "empty"})
_NESTED = (list, tuple, dict, set, np.ndarray)


def _example_row(df: pd.DataFrame, mask: np.ndarray) -> str:
    """Describe the first row where ``mask`` holds: its 1-based data row (line ``r + 1`` of a CSV file
    with a header), its values (first 8 columns), and how many rows are alike."""
    pos = int(np.flatnonzero(mask)[0])
    row = {c: py_scalar(df[c].iloc[pos]) for c in list(df.columns)[:8]}
    return f"row {pos + 1} ({row}); {int(mask.sum())} such row(s) in all"


def _microseconds(s: pd.Series) -> np.ndarray:
    """A datetime column (any unit; time-zone aware ones converted to UTC) as int64 microseconds
    since 1970-01-01."""
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.dt.as_unit("us").to_numpy().view(np.int64).copy()


class InteractionGraph:
    """A bipartite group x item interaction graph stored as CSR in both directions.

    Build it with :meth:`from_pandas`, :meth:`from_file` or :meth:`from_edges`; save and load with
    :meth:`save` / :meth:`load` (a directory of memory-mappable ``.npy`` files).

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"user": ["u1", "u1", "u2"], "item": [10, 20, 20]})
        >>> g = InteractionGraph.from_pandas(df, group_col="user", item_col="item")
        >>> g.num_items, g.num_groups, g.num_edges
        (2, 2, 3)
        >>> g.item_index([20, 10]).tolist()
        [1, 0]
        >>> g.item_degree.tolist()
        [1, 2]
    """

    def __init__(
        self,
        item_ids: np.ndarray,
        group_ids: np.ndarray,
        group_indptr: np.ndarray,
        group_items: np.ndarray,
        item_indptr: np.ndarray,
        item_groups: np.ndarray,
        edge_weight: np.ndarray | None = None,
        edge_time: np.ndarray | None = None,
    ) -> None:
        self.item_ids = item_ids
        self.group_ids = group_ids
        self.group_indptr = group_indptr
        self.group_items = group_items
        self.item_indptr = item_indptr
        self.item_groups = item_groups
        self.edge_weight = edge_weight
        self.edge_time = edge_time
        self._item_lookup: pd.Index | None = None
        self._group_lookup: pd.Index | None = None

    # ------------------------------------------------------------------ sizes
    @property
    def num_items(self) -> int:
        return len(self.item_indptr) - 1

    @property
    def num_groups(self) -> int:
        return len(self.group_indptr) - 1

    @property
    def num_edges(self) -> int:
        return len(self.group_items)

    @property
    def item_degree(self) -> np.ndarray:
        """``(num_items,)`` int64: distinct groups per item."""
        return np.diff(self.item_indptr)

    @property
    def group_degree(self) -> np.ndarray:
        """``(num_groups,)`` int64: distinct items per group."""
        return np.diff(self.group_indptr)

    @property
    def nbytes(self) -> int:
        """Bytes held by the adjacency (both directions) and the optional edge arrays; id maps excluded."""
        arrays = [self.group_indptr, self.group_items, self.item_indptr, self.item_groups,
                  self.edge_weight, self.edge_time]
        return int(sum(a.nbytes for a in arrays if a is not None))

    def edge_groups(self) -> np.ndarray:
        """``(num_edges,)`` group index of every edge, in group-CSR order."""
        return np.repeat(np.arange(self.num_groups, dtype=self.group_items.dtype), self.group_degree)

    def __repr__(self) -> str:
        return (f"InteractionGraph(num_items={self.num_items}, num_groups={self.num_groups}, "
                f"num_edges={self.num_edges}, weights={self.edge_weight is not None}, "
                f"time={self.edge_time is not None})")

    # ------------------------------------------------------------------ id maps
    def item_index(self, original_ids: Iterable[Hashable] | np.ndarray, missing: str = "raise") -> np.ndarray:
        """Dense indices ``(n,)`` int64 of original item ids.

        ``missing="raise"`` raises :class:`KeyError` naming unknown ids; ``missing="ignore"`` gives -1.
        """
        if self._item_lookup is None:
            self._item_lookup = pd.Index(self.item_ids)
        return self._lookup(self._item_lookup, original_ids, "item", missing)

    def group_index(self, original_ids: Iterable[Hashable] | np.ndarray, missing: str = "raise") -> np.ndarray:
        """Dense indices ``(n,)`` int64 of original group ids (see :meth:`item_index`)."""
        if self._group_lookup is None:
            self._group_lookup = pd.Index(self.group_ids)
        return self._lookup(self._group_lookup, original_ids, "group", missing)

    @staticmethod
    def _lookup(index: pd.Index, ids: Any, what: str, missing: str) -> np.ndarray:
        ids = np.asarray(ids if not np.isscalar(ids) else [ids])
        pos = index.get_indexer(ids).astype(np.int64)
        if missing == "raise" and (pos < 0).any():
            unknown = ids[pos < 0]
            raise KeyError(f"{len(unknown)} unknown {what} id(s), e.g. {unknown[:5].tolist()}")
        return pos

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_edges(
        cls,
        groups: np.ndarray,
        items: np.ndarray,
        num_groups: int | None = None,
        num_items: int | None = None,
        weight: np.ndarray | None = None,
        time: np.ndarray | None = None,
        item_ids: np.ndarray | None = None,
        group_ids: np.ndarray | None = None,
    ) -> "InteractionGraph":
        """Build from dense edge arrays ``groups``, ``items`` ``(E,)`` of non-negative integers.

        Duplicate (group, item) pairs are merged: weights summed (or counted when ``weight`` is None;
        the count array is kept only when some pair repeats), time = the latest. ``item_ids`` /
        ``group_ids`` default to ``arange``. Cost: one sort of ``E`` int64 keys plus linear passes.

        Example:
            >>> g = InteractionGraph.from_edges(groups=np.array([0, 0, 1, 1, 1]), items=np.array([0, 1, 1, 2, 2]))
            >>> g.num_groups, g.num_items, g.num_edges       # the repeated (1, 2) edge is merged
            (2, 3, 4)
            >>> g.item_degree.tolist(), g.edge_weight.tolist()
            ([1, 2, 1], [1.0, 1.0, 1.0, 2.0])
        """
        groups = np.asarray(groups)
        items = np.asarray(items)
        if groups.ndim != 1 or groups.shape != items.shape or len(groups) == 0:
            raise InputError(f"groups and items must be non-empty 1-D arrays of one length, got shapes "
                             f"{groups.shape} and {items.shape}")
        if groups.dtype.kind not in "iu" or items.dtype.kind not in "iu":
            raise InputError(f"groups and items must hold integer indices, got {groups.dtype} and {items.dtype}")
        num_groups = int(groups.max()) + 1 if num_groups is None else int(num_groups)
        num_items = int(items.max()) + 1 if num_items is None else int(num_items)
        for name, arr, n in (("group", groups, num_groups), ("item", items, num_items)):
            if arr.min() < 0 or arr.max() >= n:
                raise InputError(f"{name} indices must lie in [0, {n}), got [{arr.min()}, {arr.max()}]")
        key = groups.astype(np.int64) * num_items + items.astype(np.int64)
        if weight is None and time is None:
            key_sorted = np.sort(key, kind="stable")
            first = np.empty(len(key_sorted), dtype=bool)
            if len(first):
                first[0] = True
                np.not_equal(key_sorted[1:], key_sorted[:-1], out=first[1:])
            uniq = key_sorted[first]
            edge_weight = None
            if len(uniq) < len(key):
                starts = np.flatnonzero(first)
                edge_weight = np.diff(np.append(starts, len(key_sorted))).astype(np.float32)
            edge_time = None
        else:
            order = np.argsort(key, kind="stable")
            key_sorted = key[order]
            first = np.ones(len(key_sorted), dtype=bool)
            first[1:] = key_sorted[1:] != key_sorted[:-1]
            starts = np.flatnonzero(first)
            uniq = key_sorted[starts]
            if weight is not None:
                w = np.asarray(weight, dtype=np.float64)[order]
                edge_weight = np.add.reduceat(w, starts).astype(np.float32) if len(w) else w.astype(np.float32)
            else:
                edge_weight = np.diff(np.append(starts, len(key_sorted))).astype(np.float32)
                if (edge_weight == 1).all():
                    edge_weight = None
            edge_time = None
            if time is not None:
                t = np.asarray(time)[order]
                edge_time = np.maximum.reduceat(t, starts) if len(t) else t
        del key, key_sorted
        e_groups = uniq // num_items
        e_items = (uniq - e_groups * num_items).astype(_index_dtype(num_items))
        del uniq
        group_indptr = np.zeros(num_groups + 1, dtype=np.int64)
        np.cumsum(np.bincount(e_groups, minlength=num_groups), out=group_indptr[1:])
        del e_groups
        item_indptr = np.zeros(num_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(e_items, minlength=num_items), out=item_indptr[1:])
        item_groups = np.empty(len(e_items), dtype=_index_dtype(num_groups))
        fill_transpose(group_indptr, e_items, item_indptr, item_groups)
        return cls(
            item_ids=np.arange(num_items) if item_ids is None else np.asarray(item_ids),
            group_ids=np.arange(num_groups) if group_ids is None else np.asarray(group_ids),
            group_indptr=group_indptr,
            group_items=e_items,
            item_indptr=item_indptr,
            item_groups=item_groups,
            edge_weight=edge_weight,
            edge_time=edge_time,
        )

    @classmethod
    def from_pandas(
        cls,
        df: pd.DataFrame,
        group_col: str,
        item_col: str,
        time_col: str | None = None,
        weight_col: str | None = None,
        source: str = "DataFrame",
    ) -> "InteractionGraph":
        """Build from a DataFrame of ``(group, item[, time][, weight])`` rows.

        Original ids may be of any hashable dtype; dense indices follow sorted order of the ids where
        they sort, first appearance otherwise. Raises :class:`~pinsage.InputError` naming the column and
        the first offending row (1-based) for: a missing column, an empty frame, empty ids, ids that are
        lists, structs, non-UTF-8 bytes or of mixed types (see :meth:`_id_column`), a missing, infinite
        or non-numeric time (datetimes become int64 microseconds, see :meth:`_numeric_time`), a
        negative or non-numeric weight. ``source`` names the input in messages (a file path).
        """
        if not isinstance(df, pd.DataFrame):
            raise InputError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
        for role, col in (("group", group_col), ("item", item_col), ("time", time_col), ("weight", weight_col)):
            if col is not None and col not in df.columns:
                raise InputError(f"{source}: {role} column {col!r} not found; columns are {list(df.columns)}")
        if len(df) == 0:
            raise InputError(f"{source}: no rows; expected at least one ({group_col}, {item_col}) interaction")
        groups = cls._id_column(df, group_col, source)
        items = cls._id_column(df, item_col, source)
        time = None
        if time_col is not None:
            time = cls._numeric_time(df, time_col, source)
        weight = None
        if weight_col is not None:
            w = pd.to_numeric(df[weight_col], errors="coerce")
            bad = w.isna().to_numpy() | ~np.isfinite(w.to_numpy(dtype=float, na_value=np.nan))
            if bad.any():
                raise InputError(f"{source}: column {weight_col!r} must be a finite number (a weight on every "
                                 f"row), e.g. {_example_row(df, bad)}")
            neg = (w < 0).to_numpy()
            if neg.any():
                raise InputError(f"{source}: column {weight_col!r} has negative weights, "
                                 f"e.g. {_example_row(df, neg)}")
            weight = w.to_numpy(dtype=np.float64)
        g_codes, g_uniques = cls._factorize(groups, source)
        i_codes, i_uniques = cls._factorize(items, source)
        return cls.from_edges(
            g_codes, i_codes, num_groups=len(g_uniques), num_items=len(i_uniques),
            weight=weight, time=time, item_ids=i_uniques, group_ids=g_uniques,
        )

    @staticmethod
    def _id_column(df: pd.DataFrame, col: str, source: str) -> pd.Series:
        """The ids of ``col``, checked: no empty cell, and values of one scalar type (numbers, text,
        decimals or booleans). Binary values holding UTF-8 become text. Raises InputError naming the
        column and the first offending row for: empty cells; lists or structs (nested Parquet types);
        binary values that are not UTF-8; a mix of types (numbers and text in a DataFrame built by
        hand; :func:`~pinsage._io.read_table` reads such a file column as text). Vectorised; a
        per-row pass only to word an error."""
        s = df[col]
        null = s.isna().to_numpy()
        if null.any():
            raise InputError(f"{source}: column {col!r} has empty ids (expected an id on every row), "
                             f"e.g. {_example_row(df, null)}")
        if s.dtype != object:
            return s
        kind = pd.api.types.infer_dtype(s, skipna=False)
        if kind in _ID_KINDS:
            return s
        if kind == "bytes":
            try:
                return s.str.decode("utf-8")
            except UnicodeDecodeError:
                bad = s.map(lambda b: b.decode("utf-8", errors="replace").encode("utf-8") != b).to_numpy(dtype=bool)
                raise InputError(f"{source}: column {col!r} holds binary values that are not UTF-8 text, "
                                 f"e.g. {_example_row(df, bad)}; expected ids that are numbers or text") from None
        types = s.map(type)
        nested = types.map(lambda t: issubclass(t, _NESTED)).to_numpy(dtype=bool)
        if nested.any():
            first = types.iloc[int(np.flatnonzero(nested)[0])]
            what = "struct" if issubclass(first, dict) else "list"
            raise InputError(f"{source}: column {col!r} holds {what} values, e.g. {_example_row(df, nested)}; "
                             f"expected one id (a number or a text) per row")
        other = (types != types.iloc[0]).to_numpy()
        kinds = sorted({t.__name__ for t in types.unique()})
        raise InputError(f"{source}: column {col!r} mixes id types {kinds}: row 1 holds a {types.iloc[0].__name__}, "
                         f"{_example_row(df, other)}; convert it to one type (e.g. all strings) first")

    @staticmethod
    def _factorize(col: pd.Series, source: str = "DataFrame") -> tuple[np.ndarray, np.ndarray]:
        """Dense codes (int64) and the sorted unique ids of a column checked by :meth:`_id_column`."""
        try:
            codes, uniques = pd.factorize(col, sort=True)
        except TypeError as exc:  # values of one kind that still do not sort
            kinds = sorted({type(v).__name__ for v in col.iloc[:100000]})
            raise InputError(f"{source}: column {col.name!r} mixes id types {kinds}; convert it to one type "
                             f"(e.g. all strings) first") from exc
        uniques = np.asarray(uniques)
        if uniques.dtype == object and len(uniques) and all(isinstance(u, str) for u in uniques[:1000]):
            try:
                uniques = uniques.astype(str)
            except (TypeError, ValueError):
                pass
        return codes.astype(np.int64), uniques

    @staticmethod
    def _numeric_time(df: pd.DataFrame, col: str, source: str) -> np.ndarray:
        """Edge times: numbers as they are (int64 or float64); datetimes (``datetime64`` of any unit,
        time-zone aware ones in UTC, dates, date text read from a CSV) as int64 microseconds since
        1970-01-01 UTC. Raises InputError naming the first row of: a missing time (empty cell, NaN,
        NaT), an infinite one, a value that is neither a number nor a date."""
        s = df[col]
        missing = s.isna().to_numpy()
        if missing.any():
            raise InputError(f"{source}: column {col!r} has missing times (expected a time on every row), "
                             f"e.g. {_example_row(df, missing)}")
        if pd.api.types.is_datetime64_any_dtype(s):
            return _microseconds(s)
        t = pd.to_numeric(s, errors="coerce")
        bad = t.isna().to_numpy()
        if bad.any():
            d = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")  # dates read from CSV as text
            bad_date = d.isna().to_numpy()
            if not bad_date.any():
                return _microseconds(d)
            neither = bad & bad_date
            raise InputError(f"{source}: column {col!r} must hold numeric times or dates, "
                             f"e.g. {_example_row(df, neither if neither.any() else bad)}")
        t = t.to_numpy()
        if t.dtype.kind == "f":
            inf = ~np.isfinite(t)
            if inf.any():
                raise InputError(f"{source}: column {col!r} must hold finite times, e.g. {_example_row(df, inf)}")
        return t

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        group_col: str,
        item_col: str,
        time_col: str | None = None,
        weight_col: str | None = None,
    ) -> "InteractionGraph":
        """Build from a CSV or Parquet file (see :func:`pinsage._io.read_table`, :meth:`from_pandas`)."""
        df = read_table(path)
        return cls.from_pandas(df, group_col, item_col, time_col, weight_col, source=str(path))

    # ------------------------------------------------------------------ persistence
    _ARRAYS = ("group_indptr", "group_items", "item_indptr", "item_groups", "edge_weight", "edge_time")

    def save(self, path: str | os.PathLike) -> None:
        """Write a directory of ``.npy`` files plus ``graph.json`` (format version, sizes, id dtypes).

        The directory is written beside its destination and renamed into place: never half-written.
        """
        with atomic_dir(path) as tmp:
            header: dict[str, Any] = {
                "format": "pinsage.InteractionGraph", "format_version": FORMAT_VERSION,
                "num_items": self.num_items, "num_groups": self.num_groups, "num_edges": self.num_edges,
                "arrays": [],
            }
            for name in self._ARRAYS:
                arr = getattr(self, name)
                if arr is not None:
                    np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr))
                    header["arrays"].append(name)
            save_id_maps(tmp, header, self.item_ids, self.group_ids)
            (tmp / "graph.json").write_text(json.dumps(header, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> "InteractionGraph":
        """Load a graph written by :meth:`save`; ``mmap=True`` memory-maps the adjacency arrays."""
        path = Path(path)
        header_file = path / "graph.json"
        if not header_file.exists():
            raise InputError(f"{path}: not a saved InteractionGraph (no graph.json)")
        try:
            header = json.loads(header_file.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{header_file}: not valid JSON: {exc}") from exc
        if header.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{header_file}: format version {header.get('format_version')} "
                             f"is not the supported {FORMAT_VERSION}")
        arrays = load_arrays(path, cls._ARRAYS, set(header["arrays"]), mmap)
        ids = load_id_maps(path, header)
        g = cls(item_ids=ids["item_ids"], group_ids=ids["group_ids"], **arrays)
        if (g.num_items, g.num_groups, g.num_edges) != (header["num_items"], header["num_groups"], header["num_edges"]):
            raise InputError(f"{path}: array sizes do not match graph.json (a truncated or mixed save)")
        return g

    # ------------------------------------------------------------------ exports
    def to_scipy(self):
        """``scipy.sparse.csr_matrix`` of shape ``(num_groups, num_items)`` with edge weights (or ones)."""
        import scipy.sparse as sp

        data = self.edge_weight if self.edge_weight is not None else np.ones(self.num_edges, dtype=np.float32)
        return sp.csr_matrix((data, self.group_items, self.group_indptr), shape=(self.num_groups, self.num_items))

    def to_pyg(self):
        """A PyG ``HeteroData`` with node types ``item`` and ``group`` and edges both ways.

        Edge types: ``('group', 'contains', 'item')`` and ``('item', 'rev_contains', 'group')``, with
        ``edge_weight`` / ``edge_time`` attributes where the graph has them.
        """
        import torch
        from torch_geometric.data import HeteroData

        data = HeteroData()
        data["item"].num_nodes = self.num_items
        data["group"].num_nodes = self.num_groups
        src = torch.from_numpy(self.edge_groups().astype(np.int64))
        dst = torch.from_numpy(np.asarray(self.group_items, dtype=np.int64))
        fwd = data["group", "contains", "item"]
        rev = data["item", "rev_contains", "group"]
        fwd.edge_index = torch.stack([src, dst])
        rev.edge_index = torch.stack([dst, src])
        for name in ("edge_weight", "edge_time"):
            arr = getattr(self, name)
            if arr is not None:
                t = torch.from_numpy(np.asarray(arr))
                setattr(fwd, name, t)
                setattr(rev, name, t)
        return data
