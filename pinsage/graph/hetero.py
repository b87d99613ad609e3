r"""Several relations over one item id space: :class:`HeteroGraph` (docs/graph_store.md, docs/heterogeneous.md).

Items are the one embedded node type; every relation is ``(name, other node type)`` (``click``: user-item,
``tag``: tag-item) stored as two CSRs over the shared items, item -> other and other -> item. Other nodes
live in one id space per node type, so two relations of one type (user clicks and user purchases) share
their users.

All relations are packed into flat arrays, so that a walk can switch relation at every hop with a few
additions (:mod:`pinsage.sampling.metapath`), and each relation is also an ordinary
:class:`~pinsage.graph.InteractionGraph` whose arrays are views of the packed ones (:meth:`HeteroGraph.relation`):

* ``item_indptr`` ``(N + 1, R)`` int64: column ``r`` is relation ``r``'s item-CSR offsets (local to the
  relation). Interleaved, so the ``R`` degrees of an item lie in one cache line for the walk's choice of
  relation;
* ``item_others`` ``(E,)`` int32 (int64 past 2^31 other nodes): the other-node ids (local to the node type)
  of every relation's item CSR, relation ``r`` at ``edge_base[r]:edge_base[r + 1]``;
* ``other_indptr`` ``(sum_r (G_r + 1),)`` int64: relation ``r``'s other-CSR offsets (local) at
  ``other_base[r]:other_base[r + 1]``;
* ``other_items`` ``(E,)`` int32: the items of every relation's other CSR, at ``edge_base[r]:edge_base[r + 1]``;
* per relation, optional ``edge_weight`` (float32) and ``edge_time`` (int64 or float64) in other-CSR order,
  as :class:`~pinsage.graph.InteractionGraph` keeps them.

With int32 indices that is ``8 + 16 N R / E + 8 sum_r G_r / E`` bytes per edge for both directions.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Hashable, Iterable, Mapping, NamedTuple

import numpy as np
import pandas as pd

from pinsage._io import InputError, atomic_dir, sha256_file
from pinsage.graph.interaction import InteractionGraph, _example_row

__all__ = ["HeteroGraph", "HETERO_FORMAT_VERSION", "RelationArrays"]

HETERO_FORMAT_VERSION = 1
_INT32_MAX = np.iinfo(np.int32).max
_MANIFEST = "hetero.json"


def _index_dtype(n: int) -> np.dtype:
    return np.dtype(np.int32) if n <= _INT32_MAX else np.dtype(np.int64)


class RelationArrays(NamedTuple):
    """The packed adjacency of all relations as the walk kernels read it (see the module doc)."""

    item_indptr: np.ndarray   # (N + 1, R) int64
    item_others: np.ndarray   # (E,)
    edge_base: np.ndarray     # (R + 1,) int64
    other_indptr: np.ndarray  # (sum_r (G_r + 1),) int64
    other_base: np.ndarray    # (R + 1,) int64
    other_items: np.ndarray   # (E,)


def _save_ids(directory: Path, stem: str, ids: np.ndarray) -> dict[str, str]:
    """Write an id map as ``stem.npy`` (Parquet for object ids, which ``.npy`` would pickle)."""
    ids = np.asarray(ids)
    if ids.dtype == object:
        pd.DataFrame({"id": ids}).to_parquet(directory / f"{stem}.parquet")
        return {"file": f"{stem}.parquet", "dtype": "object"}
    np.save(directory / f"{stem}.npy", ids, allow_pickle=False)
    return {"file": f"{stem}.npy", "dtype": str(ids.dtype)}


def _load_ids(directory: Path, entry: Mapping[str, str]) -> np.ndarray:
    f = directory / entry["file"]
    try:
        if f.suffix == ".parquet":
            return pd.read_parquet(f)["id"].to_numpy()
        return np.load(f, allow_pickle=False)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{f}: missing or unreadable: {exc}") from exc


def _per_relation(value: str | Mapping[str, str | None] | None, names: list[str], what: str,
                  required: bool) -> dict[str, str | None]:
    """A column option given once for all relations (a string or None) or per relation (a mapping)."""
    if value is None or isinstance(value, str):
        if required and value is None:
            raise InputError(f"{what} is required")
        return {n: value for n in names}
    if not isinstance(value, Mapping):
        raise InputError(f"{what} must be a column name or a mapping relation -> column name, "
                         f"got {type(value).__name__}")
    unknown = sorted(set(value) - set(names), key=str)
    if unknown:
        raise InputError(f"{what} names unknown relation(s) {unknown}; the relations are {names}")
    out = {n: value.get(n) for n in names}
    missing = [n for n, c in out.items() if c is None]
    if required and missing:
        raise InputError(f"{what} gives no column for relation(s) {missing}")
    return out


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise InputError(f"{what} must be a non-empty string, got {name!r}")
    return name


class HeteroGraph:
    """Items and several relations to other node types, each relation a CSR pair over the shared items.

    Build it with :meth:`from_pandas` (a dict of DataFrames, one per relation) or :meth:`from_graphs`
    (:class:`~pinsage.graph.InteractionGraph` s over one item id space); save and load with :meth:`save` /
    :meth:`load` (a directory of ``.npy`` files and a JSON manifest); export with :meth:`to_hetero_data`.

    Example:
        >>> import pandas as pd
        >>> clicks = pd.DataFrame({"user": ["u1", "u1", "u2"], "item": [10, 20, 20]})
        >>> tags = pd.DataFrame({"tag": ["red", "red", "blue"], "item": [20, 30, 30]})
        >>> g = HeteroGraph.from_pandas({"click": clicks, "tag": tags},
        ...                             other_col={"click": "user", "tag": "tag"}, item_col="item")
        >>> g.relations, g.num_items, g.item_ids.tolist()
        (('click', 'tag'), 3, [10, 20, 30])
        >>> g.node_types
        {'click': 'user', 'tag': 'tag'}
        >>> g.relation("tag").item_degree.tolist()   # item 10 has no tag
        [0, 1, 2]
    """

    def __init__(
        self,
        item_ids: np.ndarray,
        relations: Iterable[str],
        node_types: Mapping[str, str],
        node_ids: Mapping[str, np.ndarray],
        arrays: RelationArrays,
        edge_weight: Mapping[str, np.ndarray | None] | None = None,
        edge_time: Mapping[str, np.ndarray | None] | None = None,
    ) -> None:
        self.item_ids = item_ids
        self._relations = tuple(relations)
        self.node_types = {r: node_types[r] for r in self._relations}
        self.node_ids = dict(node_ids)
        self.arrays = arrays
        self.edge_weight = {r: (edge_weight or {}).get(r) for r in self._relations}
        self.edge_time = {r: (edge_time or {}).get(r) for r in self._relations}
        self._views: dict[str, InteractionGraph] = {}
        self._item_lookup: pd.Index | None = None

    # ------------------------------------------------------------------ sizes
    @property
    def relations(self) -> tuple[str, ...]:
        """The relation names, in storage order (the order of the mapping they were built from)."""
        return self._relations

    @property
    def num_relations(self) -> int:
        return len(self._relations)

    @property
    def num_items(self) -> int:
        return self.arrays.item_indptr.shape[0] - 1

    @property
    def num_edges(self) -> int:
        """Edges of all relations together."""
        return int(self.arrays.edge_base[-1])

    def num_nodes(self, node_type: str) -> int:
        """Nodes of a type: ``num_nodes("item")`` or one of the other node types."""
        if node_type == "item":
            return self.num_items
        if node_type not in self.node_ids:
            raise InputError(f"unknown node type {node_type!r}; the node types are "
                             f"{['item', *self.node_ids]}")
        return len(self.node_ids[node_type])

    def relation_index(self, name: str) -> int:
        """Position of relation ``name`` in :attr:`relations`; InputError naming the known ones."""
        try:
            return self._relations.index(name)
        except ValueError:
            raise InputError(f"unknown relation {name!r}; the relations are {list(self._relations)}") from None

    def relation_degree(self) -> np.ndarray:
        """``(num_items, R)`` int64: each item's distinct other nodes per relation."""
        return np.diff(self.arrays.item_indptr, axis=0)

    @property
    def item_degree(self) -> np.ndarray:
        """``(num_items,)`` int64: edges of each item over all relations (a one-relation graph: its degree)."""
        return self.relation_degree().sum(axis=1)

    @property
    def nbytes(self) -> int:
        """Bytes of the packed adjacency and the edge arrays; id maps excluded."""
        total = sum(int(np.asarray(a).nbytes) for a in self.arrays)
        for d in (self.edge_weight, self.edge_time):
            total += sum(int(a.nbytes) for a in d.values() if a is not None)
        return total

    def __repr__(self) -> str:
        rels = ", ".join(f"{r}: {self.node_types[r]}-item {self.relation(r).num_edges} edges"
                         for r in self._relations)
        return f"HeteroGraph(num_items={self.num_items}, relations=[{rels}])"

    # ------------------------------------------------------------------ views
    def relation(self, name: str) -> InteractionGraph:
        """Relation ``name`` as an :class:`~pinsage.graph.InteractionGraph` (groups = its other node type),
        whose arrays are views of the packed ones (the item offsets, interleaved in storage, are copied once
        and cached). Raises InputError for an unknown name."""
        view = self._views.get(name)
        if view is not None:
            return view
        r = self.relation_index(name)
        a = self.arrays
        e0, e1 = int(a.edge_base[r]), int(a.edge_base[r + 1])
        o0, o1 = int(a.other_base[r]), int(a.other_base[r + 1])
        view = InteractionGraph(
            item_ids=self.item_ids,
            group_ids=self.node_ids[self.node_types[name]],
            group_indptr=a.other_indptr[o0:o1],
            group_items=a.other_items[e0:e1],
            item_indptr=np.ascontiguousarray(a.item_indptr[:, r]),
            item_groups=a.item_others[e0:e1],
            edge_weight=self.edge_weight[name],
            edge_time=self.edge_time[name],
        )
        view._item_lookup = self._item_lookup
        self._views[name] = view
        return view

    def as_interaction_graph(self) -> InteractionGraph:
        """The one relation of a one-relation graph (InputError for several)."""
        if self.num_relations != 1:
            raise InputError(f"a graph of {self.num_relations} relations {list(self._relations)} is not one "
                             f"InteractionGraph; pick one with relation(name)")
        return self.relation(self._relations[0])

    def merged_graph(self) -> InteractionGraph:
        """Every relation in one :class:`~pinsage.graph.InteractionGraph` whose groups are the other nodes of
        every relation, kept apart per relation (group ids ``"relation:node id"`` strings): the structure
        behind a run's node inputs (log degree over all relations, the spectral inputs of the stacked
        ``(sum_r G_r, N)`` adjacency). Edge weights and times are left out. A one-relation graph returns its
        relation (:meth:`as_interaction_graph`), ids and all. Built once and cached."""
        if self.num_relations == 1:
            return self.as_interaction_graph()
        cached = self._views.get("\0merged")
        if cached is not None:
            return cached
        groups, items, ids, base = [], [], [], 0
        for n in self._relations:
            g = self.relation(n)
            groups.append(g.edge_groups().astype(np.int64) + base)
            items.append(np.asarray(g.group_items, dtype=np.int64))
            ids.append(np.array([f"{n}:{x}" for x in np.asarray(g.group_ids).tolist()], dtype=object))
            base += g.num_groups
        merged = InteractionGraph.from_edges(np.concatenate(groups), np.concatenate(items), num_groups=base,
                                             num_items=self.num_items, item_ids=self.item_ids,
                                             group_ids=np.concatenate(ids))
        self._views["\0merged"] = merged
        return merged

    def item_index(self, original_ids: Iterable[Hashable] | np.ndarray, missing: str = "raise") -> np.ndarray:
        """Dense indices ``(n,)`` int64 of original item ids (see :meth:`InteractionGraph.item_index`)."""
        if self._item_lookup is None:
            self._item_lookup = pd.Index(self.item_ids)
        return InteractionGraph._lookup(self._item_lookup, original_ids, "item", missing)

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_graphs(
        cls,
        graphs: Mapping[str, InteractionGraph],
        node_types: Mapping[str, str] | None = None,
    ) -> "HeteroGraph":
        """Pack :class:`~pinsage.graph.InteractionGraph` s over one item id space (equal ``item_ids``) into one
        graph. ``node_types`` maps each relation to its other node type (default: the relation's name);
        relations of one type must have equal group ids. The graphs' arrays are copied into the packed ones."""
        if not isinstance(graphs, Mapping) or not graphs:
            raise InputError("expected a non-empty mapping relation name -> InteractionGraph")
        names = [_check_name(n, "a relation name") for n in graphs]
        types = _per_relation(dict(node_types) if node_types is not None else None, names, "node_types", False)
        types = {n: _check_name(t if t is not None else n, f"relation {n!r}: the node type") for n, t in types.items()}
        for n, t in types.items():
            if t == "item":
                raise InputError(f"relation {n!r}: the other node type cannot be 'item' (items are the embedded "
                                 f"node type; a relation links them to another type)")
        first = graphs[names[0]]
        node_ids: dict[str, np.ndarray] = {}
        for n in names:
            g = graphs[n]
            if not isinstance(g, InteractionGraph):
                raise InputError(f"relation {n!r}: expected an InteractionGraph, got {type(g).__name__}")
            if g.num_items != first.num_items or not np.array_equal(g.item_ids, first.item_ids):
                raise InputError(f"relation {n!r}: its item ids differ from relation {names[0]!r}'s; build the "
                                 f"relations over one item id map (HeteroGraph.from_pandas does)")
            t = types[n]
            if t in node_ids:
                if len(node_ids[t]) != g.num_groups or not np.array_equal(node_ids[t], g.group_ids):
                    raise InputError(f"relation {n!r}: its {t!r} ids differ from those of another relation of "
                                     f"node type {t!r}")
            else:
                node_ids[t] = g.group_ids
        arrays = cls._pack([graphs[n] for n in names], first.num_items)
        return cls(first.item_ids, names, types, node_ids, arrays,
                   edge_weight={n: graphs[n].edge_weight for n in names},
                   edge_time={n: graphs[n].edge_time for n in names})

    @staticmethod
    def _pack(graphs: list[InteractionGraph], num_items: int) -> RelationArrays:
        """Concatenate the relations' CSRs into :class:`RelationArrays` (one pass per relation)."""
        R = len(graphs)
        edges = np.array([g.num_edges for g in graphs], dtype=np.int64)
        edge_base = np.zeros(R + 1, dtype=np.int64)
        np.cumsum(edges, out=edge_base[1:])
        other_base = np.zeros(R + 1, dtype=np.int64)
        np.cumsum([g.num_groups + 1 for g in graphs], out=other_base[1:])
        item_indptr = np.empty((num_items + 1, R), dtype=np.int64)
        item_others = np.empty(int(edge_base[-1]), dtype=_index_dtype(max(g.num_groups for g in graphs)))
        other_items = np.empty(int(edge_base[-1]), dtype=_index_dtype(num_items))
        other_indptr = np.empty(int(other_base[-1]), dtype=np.int64)
        for r, g in enumerate(graphs):
            e0, e1 = edge_base[r], edge_base[r + 1]
            item_indptr[:, r] = g.item_indptr
            item_others[e0:e1] = g.item_groups
            other_items[e0:e1] = g.group_items
            other_indptr[other_base[r]:other_base[r + 1]] = g.group_indptr
        return RelationArrays(item_indptr, item_others, edge_base, other_indptr, other_base, other_items)

    @classmethod
    def from_pandas(
        cls,
        frames: Mapping[str, pd.DataFrame],
        other_col: str | Mapping[str, str],
        item_col: str | Mapping[str, str] = "item",
        time_col: str | Mapping[str, str | None] | None = None,
        weight_col: str | Mapping[str, str | None] | None = None,
        node_types: Mapping[str, str] | None = None,
    ) -> "HeteroGraph":
        """Build from one DataFrame of ``(other, item[, time][, weight])`` rows per relation.

        Args:
            frames: relation name -> DataFrame, e.g. ``{"click": clicks, "tag": item_tags}``.
            other_col: the other node's column: one name for every relation, or a mapping relation -> name.
            item_col: the item column, likewise.
            time_col: the time column, likewise (may be left out per relation).
            weight_col: the weight column, likewise (may be left out per relation).
            node_types: relation -> other node type (default: the relation's other column name, so two
                relations with a ``user`` column share one user id space).

        Item ids are mapped to ``0..N-1`` over all relations together (sorted where they sort); each
        other node type's ids likewise over its relations. Duplicate rows of a relation are merged as
        :meth:`InteractionGraph.from_edges` merges them. Raises :class:`~pinsage.InputError` naming the
        relation, the column and the first offending row for a missing column, an empty relation, empty
        (null) ids, times or weights that are not valid (see :meth:`InteractionGraph.from_pandas`), item ids
        of different types in different relations, and for a column option naming an unknown relation.
        """
        if not isinstance(frames, Mapping) or not frames:
            raise InputError("expected a non-empty mapping relation name -> DataFrame of (other, item) rows")
        names = [_check_name(n, "a relation name") for n in frames]
        others = _per_relation(other_col, names, "other_col", True)
        items = _per_relation(item_col, names, "item_col", True)
        times = _per_relation(time_col, names, "time_col", False)
        weights = _per_relation(weight_col, names, "weight_col", False)
        types = _per_relation(dict(node_types) if node_types is not None else None, names, "node_types", False)
        types = {n: _check_name(types[n] if types[n] is not None else others[n],
                                f"relation {n!r}: the node type") for n in names}
        for n, t in types.items():
            if t == "item":
                raise InputError(f"relation {n!r}: the other node type cannot be 'item'; name it with node_types")
        item_cols, other_cols, time_of, weight_of = {}, {}, {}, {}
        for n in names:
            df, src = frames[n], f"relation {n!r}"
            if not isinstance(df, pd.DataFrame):
                raise InputError(f"{src}: expected a pandas DataFrame, got {type(df).__name__}")
            for role, col in (("other", others[n]), ("item", items[n]), ("time", times[n]), ("weight", weights[n])):
                if col is not None and col not in df.columns:
                    raise InputError(f"{src}: {role} column {col!r} not found; columns are {list(df.columns)}")
            if len(df) == 0:
                raise InputError(f"{src}: no rows; expected at least one ({others[n]}, {items[n]}) row")
            other_cols[n] = InteractionGraph._id_column(df, others[n], src)
            item_cols[n] = InteractionGraph._id_column(df, items[n], src)
            time_of[n] = InteractionGraph._numeric_time(df, times[n], src) if times[n] is not None else None
            weight_of[n] = cls._weights(df, weights[n], src) if weights[n] is not None else None
        item_codes, item_ids = cls._shared_codes(item_cols, names, "item")
        graphs: dict[str, InteractionGraph] = {}
        type_codes: dict[str, tuple[dict[str, np.ndarray], np.ndarray]] = {}
        for t in dict.fromkeys(types.values()):
            members = [n for n in names if types[n] == t]
            type_codes[t] = cls._shared_codes({n: other_cols[n] for n in members}, members, f"{t!r} node")
        for n in names:
            codes, ids = type_codes[types[n]]
            graphs[n] = InteractionGraph.from_edges(
                codes[n], item_codes[n], num_groups=len(ids), num_items=len(item_ids),
                weight=weight_of[n], time=time_of[n], item_ids=item_ids, group_ids=ids)
        return cls.from_graphs(graphs, types)

    @staticmethod
    def _weights(df: pd.DataFrame, col: str, source: str) -> np.ndarray:
        w = pd.to_numeric(df[col], errors="coerce")
        values = w.to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            raise InputError(f"{source}: column {col!r} must be a finite number (a weight on every row), "
                             f"e.g. {_example_row(df, bad)}")
        neg = values < 0
        if neg.any():
            raise InputError(f"{source}: column {col!r} has negative weights, e.g. {_example_row(df, neg)}")
        return values.astype(np.float64)

    @staticmethod
    def _shared_codes(cols: Mapping[str, pd.Series], names: list[str],
                      what: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Dense codes per relation over one id map of several relations' id columns."""
        kinds = {n: ("number" if pd.api.types.is_numeric_dtype(cols[n]) and not pd.api.types.is_bool_dtype(cols[n])
                     else pd.api.types.infer_dtype(cols[n], skipna=False)) for n in names}
        if len(set(kinds.values())) > 1:
            raise InputError(f"the {what} ids are of different types in different relations "
                             f"({', '.join(f'{n!r}: {k}' for n, k in kinds.items())}); convert them to one type "
                             f"(e.g. all strings) first")
        both = pd.concat([cols[n].reset_index(drop=True) for n in names], ignore_index=True) \
            if len(names) > 1 else cols[names[0]]
        codes, ids = InteractionGraph._factorize(both, f"relations {names}")
        bounds = np.cumsum([0] + [len(cols[n]) for n in names])
        return {n: codes[bounds[k]:bounds[k + 1]] for k, n in enumerate(names)}, ids

    # ------------------------------------------------------------------ persistence
    _PACKED = ("item_indptr", "item_others", "other_indptr", "other_items")

    def save(self, path: str | os.PathLike) -> None:
        """Write a directory: the packed arrays, the per-relation edge arrays and the id maps as ``.npy``
        (Parquet for object ids; nothing is pickled), and ``hetero.json`` (format, relations with their node
        types and sizes, and the SHA-256 of every file). Written beside ``path`` and renamed into place."""
        with atomic_dir(path) as tmp:
            files: dict[str, Any] = {}
            for name in self._PACKED:
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(self.arrays, name)), allow_pickle=False)
            rels = []
            for r, n in enumerate(self._relations):
                entry: dict[str, Any] = {"name": n, "node_type": self.node_types[n],
                                         "num_edges": int(self.arrays.edge_base[r + 1] - self.arrays.edge_base[r])}
                for kind, d in (("edge_weight", self.edge_weight), ("edge_time", self.edge_time)):
                    if d[n] is not None:
                        np.save(tmp / f"rel{r}_{kind}.npy", np.ascontiguousarray(d[n]), allow_pickle=False)
                        entry[kind] = f"rel{r}_{kind}.npy"
                rels.append(entry)
            ids = {"item": _save_ids(tmp, "item_ids", self.item_ids)}
            for k, t in enumerate(self.node_ids):
                ids[t] = _save_ids(tmp, f"node{k}_ids", self.node_ids[t])
                ids[t]["num_nodes"] = len(self.node_ids[t])
            for f in sorted(tmp.iterdir()):
                files[f.name] = sha256_file(f)
            manifest = {
                "format": "pinsage.HeteroGraph", "format_version": HETERO_FORMAT_VERSION,
                "num_items": self.num_items, "num_edges": self.num_edges, "relations": rels,
                "edge_base": self.arrays.edge_base.tolist(), "other_base": self.arrays.other_base.tolist(),
                "ids": ids, "sha256": files,
            }
            (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True, verify: bool = False) -> "HeteroGraph":
        """Load a graph written by :meth:`save`; ``mmap=True`` memory-maps the arrays; ``verify=True``
        checks every file's SHA-256 against the manifest first (reads every byte)."""
        path = Path(path)
        mf = path / _MANIFEST
        if not mf.exists():
            raise InputError(f"{path}: not a saved HeteroGraph (no {_MANIFEST})")
        try:
            m = json.loads(mf.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{mf}: not valid JSON: {exc}") from exc
        if m.get("format") != "pinsage.HeteroGraph" or m.get("format_version") != HETERO_FORMAT_VERSION:
            raise InputError(f"{mf}: format {m.get('format')!r} version {m.get('format_version')!r} is not "
                             f"pinsage.HeteroGraph version {HETERO_FORMAT_VERSION}")
        if verify:
            for name, digest in m["sha256"].items():
                f = path / name
                if not f.exists() or sha256_file(f) != digest:
                    raise InputError(f"{f}: missing or changed since it was saved (SHA-256 mismatch)")
        mode = "r" if mmap else None

        def arr(name: str) -> np.ndarray:
            f = path / name
            try:
                return np.load(f, mmap_mode=mode, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise InputError(f"{f}: unreadable or truncated: {exc}") from exc

        packed = {name: arr(f"{name}.npy") for name in cls._PACKED}
        arrays = RelationArrays(packed["item_indptr"], packed["item_others"], np.asarray(m["edge_base"], np.int64),
                                packed["other_indptr"], np.asarray(m["other_base"], np.int64), packed["other_items"])
        rels = m["relations"]
        names = [e["name"] for e in rels]
        types = {e["name"]: e["node_type"] for e in rels}
        ids = {t: _load_ids(path, entry) for t, entry in m["ids"].items()}
        item_ids = ids.pop("item")
        weight = {e["name"]: arr(e["edge_weight"]) if "edge_weight" in e else None for e in rels}
        time = {e["name"]: arr(e["edge_time"]) if "edge_time" in e else None for e in rels}
        g = cls(item_ids, names, types, ids, arrays, weight, time)
        R, E = len(names), int(arrays.edge_base[-1])
        ok = (arrays.item_indptr.shape == (m["num_items"] + 1, R) and len(item_ids) == m["num_items"]
              and len(arrays.item_others) == E and len(arrays.other_items) == E
              and len(arrays.other_indptr) == int(arrays.other_base[-1])
              and all(int(arrays.other_base[r + 1] - arrays.other_base[r]) == len(ids[types[n]]) + 1
                      for r, n in enumerate(names))
              and all(a is None or len(a) == e["num_edges"] for e in rels for a in (weight[e["name"]], time[e["name"]])))
        if not ok:
            raise InputError(f"{path}: array sizes do not match {_MANIFEST} (a truncated or mixed save)")
        return g

    # ------------------------------------------------------------------ exports
    def to_hetero_data(self):
        """A PyG ``HeteroData`` with node type ``item`` (``num_nodes = num_items``), one node type per other
        node type, and both directions of every relation: ``(other, name, 'item')`` and
        ``('item', 'rev_' + name, other)``, each ``edge_index`` ``(2, E_r)`` int64 in other-CSR order, with
        ``edge_weight`` / ``edge_time`` attributes where the relation has them."""
        import torch
        from torch_geometric.data import HeteroData

        data = HeteroData()
        data["item"].num_nodes = self.num_items
        for t, ids in self.node_ids.items():
            data[t].num_nodes = len(ids)
        for n in self._relations:
            g = self.relation(n)
            t = self.node_types[n]
            src = torch.from_numpy(g.edge_groups().astype(np.int64))
            dst = torch.from_numpy(np.asarray(g.group_items, dtype=np.int64))
            fwd, rev = data[t, n, "item"], data["item", f"rev_{n}", t]
            fwd.edge_index = torch.stack([src, dst])
            rev.edge_index = torch.stack([dst, src])
            for kind, d in (("edge_weight", self.edge_weight), ("edge_time", self.edge_time)):
                if d[n] is not None:
                    values = torch.from_numpy(np.array(d[n]))
                    setattr(fwd, kind, values)
                    setattr(rev, kind, values)
        return data

