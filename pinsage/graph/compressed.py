r"""The compressed graph store (docs/graph_store.md, "compressed" encoding; docs/benchmarks/store.md).

:class:`CompressedGraph` holds the one relation of an :class:`~pinsage.graph.InteractionGraph` (items x
groups) in both directions, each a :class:`CompressedAdjacency`: blocks of 64 nodes with a block table
(the block index), a bit-packed per-block directory of degrees and adjacency offsets, and each
adjacency's sorted neighbour ids as chunks of ``C`` (16 by default) gaps bit-packed at the chunk's own
width, with a table of chunk entries (first id, cumulative width, which gives the chunk's position and
width) for adjacencies longer than one chunk (the layout is in :mod:`pinsage.graph._compressed_kernels`). Neighbour :math:`k` of a node is read
without decoding the adjacency from its start:

.. math::
    a_k = b_j + i + \sum_{t < i} g_{j,t}, \qquad j = \lfloor k / C \rfloor,\ i = k \bmod C,

with :math:`b_j` the first id of chunk :math:`j` and :math:`g_{j,t} = a_{jC+t+1} - a_{jC+t} - 1` its gaps:
one block-table row, one directory entry, at most one chunk entry and at most :math:`C - 1` fixed-width
fields. A chunk of :math:`C` gaps at width :math:`w = \lceil \log_2(1 + \max_t g_{j,t}) \rceil` costs
:math:`(C - 1) w` bits.

Renumbering (``order="degree"``, the default) gives items and groups internal ids by decreasing degree
(ties: smaller dense index), so popular nodes get small ids and the neighbour gaps of every adjacency
shrink. It is internal: every method takes and returns dense indices (``item_ids`` order, the
``item_ids.npy`` contract), and the permutations are kept (``item_order`` / ``group_order``: internal id
-> dense index) to map results back.

A store is a directory (format 2): the arrays as ``.npy`` files, memory-mapped on :meth:`load`, and
``graph.json`` with the sizes, the encoding and the SHA-256 of every file, written atomically.
:meth:`CompressedGraph.from_edge_files` builds one out of core from chunked edge files
(CSV, Parquet, ``.npy``): two passes over the edges (degrees, then a counting sort into memory-mapped
scratch arrays), never all edges as int64 in memory.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from pinsage._io import InputError, atomic_dir, sha256_file
from pinsage.graph import _compressed_kernels as K
from pinsage.graph._store_files import load_arrays, load_id_maps, save_id_maps
from pinsage.graph._csr import fill_transpose
from pinsage.graph.interaction import InteractionGraph

__all__ = ["CompressedAdjacency", "CompressedGraph", "COMPRESSED_FORMAT_VERSION", "ORDERS", "choose_encoding",
           "plain_nbytes"]

COMPRESSED_FORMAT_VERSION = 2
_FORMAT = "pinsage.CompressedGraph"
#: the renumberings a build may apply (internal only)
ORDERS = ("degree", "none")
_INT32_MAX = np.iinfo(np.int32).max


def _threads(num_threads: int | None) -> int:
    return max(1, int(num_threads if num_threads is not None else min(os.cpu_count() or 1, 8)))


def _ranges(n: int, parts: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, n, max(1, min(parts, n)) + 1).astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _run_parallel(fn: Callable[..., Any], n: int, num_threads: int, *args: Any) -> None:
    """``fn(*args, lo, hi)`` over ranges of ``0..n-1`` on a thread pool (the kernels release the GIL).
    Ranges are many more than threads, so uneven blocks (the popular nodes come first) balance."""
    parts = _ranges(n, num_threads * 8 if num_threads > 1 else 1)
    if len(parts) <= 1:
        for lo, hi in parts:
            fn(*args, lo, hi)
        return
    with ThreadPoolExecutor(num_threads, thread_name_prefix="pinsage-store") as pool:
        for f in [pool.submit(fn, *args, lo, hi) for lo, hi in parts]:
            f.result()


def _index_dtype(n: int) -> np.dtype:
    return np.dtype(np.int32) if n <= _INT32_MAX else np.dtype(np.int64)


def degree_order(degree: np.ndarray) -> np.ndarray:
    """``(n,)`` int64 internal id -> node: nodes by decreasing degree, ties by smaller index."""
    return np.argsort(-np.asarray(degree, dtype=np.int64), kind="stable")


def inverse_permutation(order: np.ndarray) -> np.ndarray:
    """``rank`` with ``rank[order[u]] = u`` (the dtype of ``order``)."""
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order), dtype=order.dtype)
    return rank


def plain_nbytes(num_items: int, num_groups: int, num_edges: int) -> int:
    """Bytes of the plain store's adjacency (``InteractionGraph.nbytes`` without weights or times): int64
    offsets per node and int32 indices per edge and direction (int64 past 2**31 nodes)."""
    idx = _index_dtype(num_items).itemsize + _index_dtype(num_groups).itemsize
    return int(8 * (num_items + num_groups + 2) + idx * num_edges)


def choose_encoding(num_items: int, num_groups: int, num_edges: int, memory_bytes: int | None = None,
                    fraction: float = 0.25) -> str:
    """``"plain"`` or ``"compressed"``: which store to sample from.

    The plain CSR is the faster one to walk and the one every other part of the project takes
    (docs/benchmarks/store.md: the compressed sampler runs at 0.81-0.92x its seeds/s on graph L with
    renumbering, about 1.0x without), so it is chosen whenever it fits: when :func:`plain_nbytes` is at most
    ``fraction`` of ``memory_bytes`` (default: the machine's physical memory), leaving the rest to
    training, features and the build (whose peak is several times the store). Otherwise the compressed
    store, about 2.3x smaller, memory-mapped from disk and buildable out of core
    (:meth:`CompressedGraph.from_edge_files`)."""
    if memory_bytes is None:
        try:
            memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
            memory_bytes = 8 << 30
    return "plain" if plain_nbytes(num_items, num_groups, num_edges) <= fraction * memory_bytes else "compressed"


class CompressedAdjacency:
    """One direction of a relation: ``num_nodes`` source nodes, each with its sorted, distinct target
    ids in ``[0, num_targets)``, compressed (layout: :mod:`pinsage.graph._compressed_kernels`).

    * ``blocks``: ``(ceil(num_nodes / 64), 4)`` int64, the block index: per block of 64 nodes the bit
      position of its directory in ``data``, the frame of reference of its adjacency positions, its
      minimum degree and its directory widths;
    * ``data``: ``(words,)`` uint64, the bit stream (block directories and adjacencies), one zero word
      of padding at the end;
    * ``chunk_shift``: ``log2`` of the gaps per chunk ``C``.

    All ids here are the store's internal ids.
    """

    def __init__(self, blocks: np.ndarray, data: np.ndarray, num_nodes: int, num_targets: int, num_edges: int,
                 chunk_shift: int) -> None:
        self.blocks = blocks
        self.data = data
        self.num_nodes = int(num_nodes)
        self.num_targets = int(num_targets)
        self.num_edges = int(num_edges)
        self.chunk_shift = int(chunk_shift)

    @property
    def nbytes(self) -> int:
        """Bytes of the block index and the bit stream (everything random access needs)."""
        return int(self.blocks.nbytes + self.data.nbytes)

    def __repr__(self) -> str:
        return (f"CompressedAdjacency(num_nodes={self.num_nodes}, num_edges={self.num_edges}, "
                f"chunk={1 << self.chunk_shift}, {self.nbytes / max(self.num_edges, 1):.2f} B/edge)")

    # ------------------------------------------------------------------ encoding
    @classmethod
    def encode(cls, indptr: np.ndarray, indices: np.ndarray, num_targets: int, chunk: int = 16,
               num_threads: int | None = None, allocate: Callable[[int], np.ndarray] | None = None
               ) -> "CompressedAdjacency":
        """Compress the CSR ``(indptr (n + 1,), indices (E,))`` whose rows are sorted and distinct.

        Two passes over the rows in blocks of 64 nodes (sizes, then writing in place), on
        ``num_threads`` threads; the input may be memory-mapped. ``allocate(words)`` returns the zeroed
        uint64 output (default: ``np.zeros``; a memory-mapped file for an out-of-core build).
        """
        if chunk < 2 or chunk & (chunk - 1) or chunk > 1024:
            raise ValueError(f"chunk must be a power of two in [2, 1024], got {chunk}")
        cs = int(chunk).bit_length() - 1
        n = len(indptr) - 1
        threads = _threads(num_threads)
        nblocks = (n + K.BLOCK - 1) >> K.BLOCK_SHIFT
        block_bits = np.zeros(nblocks, dtype=np.int64)
        dir_bits = np.zeros(nblocks, dtype=np.int64)
        blocks = np.zeros((nblocks, 4), dtype=np.int64)
        dmin = np.zeros(nblocks, dtype=np.int64)
        meta = np.zeros(nblocks, dtype=np.int64)
        bias = np.zeros(nblocks, dtype=np.int64)
        _run_parallel(K.size_blocks, nblocks, threads, indptr, indices, cs, block_bits, dir_bits, dmin, meta, bias)
        if nblocks:
            np.cumsum(block_bits[:-1], out=blocks[1:, 0])
        blocks[:, 1] = blocks[:, 0] + dir_bits - bias
        blocks[:, 2] = dmin
        blocks[:, 3] = meta
        words = int(block_bits.sum()) // 64 + 1  # one word of padding for the two-word reads
        data = np.zeros(words, dtype=np.uint64) if allocate is None else allocate(words)
        _run_parallel(K.write_blocks, nblocks, threads, indptr, indices, cs, blocks, data)
        return cls(blocks, data, n, num_targets, int(indptr[-1]), cs)

    # ------------------------------------------------------------------ reading
    def degree(self, nodes: np.ndarray | None = None) -> np.ndarray:
        """Degrees ``(len(nodes),)`` int64 of internal ``nodes`` (all nodes when None)."""
        if nodes is None:
            out = np.empty(self.num_nodes, dtype=np.int64)
            K.all_degrees(self.blocks, self.data, self.num_nodes, out)
            return out
        nodes = np.ascontiguousarray(nodes, dtype=np.int64)
        self._check(nodes)
        out = np.empty(len(nodes), dtype=np.int64)
        K.degrees(self.blocks, self.data, nodes, out)
        return out

    def neighbor(self, nodes: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """``(B,)`` int64: neighbour ``slots[b]`` (0-based, in id order) of internal node ``nodes[b]``.
        Random access; raises IndexError for a slot outside ``[0, degree)``."""
        nodes = np.ascontiguousarray(nodes, dtype=np.int64)
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        if nodes.shape != slots.shape:
            raise ValueError(f"nodes and slots must have one shape, got {nodes.shape} and {slots.shape}")
        deg = self.degree(nodes)
        if len(slots) and ((slots < 0) | (slots >= deg)).any():
            raise IndexError("slots must lie in [0, degree) of their node")
        out = np.empty(len(nodes), dtype=np.int64)
        K.neighbors_at(self.blocks, self.data, nodes, slots, self.chunk_shift, out)
        return out

    def neighbors(self, node: int) -> np.ndarray:
        """``(degree,)`` int64: the sorted neighbours of internal ``node``."""
        nodes = np.array([node], dtype=np.int64)
        out = np.empty(int(self.degree(nodes)[0]), dtype=np.int64)
        K.decode_node(self.blocks, self.data, self.chunk_shift, int(node), out)
        return out

    def to_csr(self, num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The whole direction decoded: ``(indptr (n + 1,) int64, indices (E,) int32 or int64)``."""
        indptr = np.zeros(self.num_nodes + 1, dtype=np.int64)
        np.cumsum(self.degree(), out=indptr[1:])
        out = np.empty(int(indptr[-1]), dtype=_index_dtype(self.num_targets))
        _run_parallel(K.decode_range, self.num_nodes, _threads(num_threads), self.blocks, self.data,
                      self.chunk_shift, indptr, out)
        return indptr, out

    def _check(self, nodes: np.ndarray) -> None:
        if len(nodes) and (nodes.min() < 0 or nodes.max() >= self.num_nodes):
            raise IndexError(f"node indices must lie in [0, {self.num_nodes}), got [{nodes.min()}, {nodes.max()}]")


class CompressedGraph:
    """An items x groups interaction graph in the compressed encoding, both directions, random access.

    Build with :meth:`from_graph` (from an :class:`~pinsage.graph.InteractionGraph`) or
    :meth:`from_edge_files` (out of core); :meth:`save` / :meth:`load` a memory-mapped directory.

    * ``items``: item -> groups, ``groups``: group -> items (:class:`CompressedAdjacency`, internal ids);
    * ``item_order`` / ``group_order``: ``(num_items,)`` / ``(num_groups,)`` internal id -> dense index
      (None: no renumbering), ``item_rank`` / ``group_rank`` their inverses;
    * ``item_ids`` / ``group_ids``: original ids by dense index, as in ``InteractionGraph``;
    * ``edge_weight`` / ``edge_time``: optional per-edge arrays in the order of the compressed group ->
      items adjacencies (group by internal id, items by internal id), reported apart from the adjacency.

    Example:
        >>> g = InteractionGraph.from_edges(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 1, 2]))
        >>> c = CompressedGraph.from_graph(g)
        >>> c.item_neighbors(1).tolist(), c.group_neighbors(2).tolist()
        ([0, 1, 2], [1, 2])
        >>> c.to_interaction_graph().group_items.tolist() == g.group_items.tolist()
        True
    """

    def __init__(self, items: CompressedAdjacency, groups: CompressedAdjacency, item_ids: np.ndarray,
                 group_ids: np.ndarray, item_order: np.ndarray | None = None, group_order: np.ndarray | None = None,
                 edge_weight: np.ndarray | None = None, edge_time: np.ndarray | None = None,
                 order: str = "degree") -> None:
        self.items = items
        self.groups = groups
        self.item_ids = item_ids
        self.group_ids = group_ids
        self.item_order = item_order
        self.group_order = group_order
        self.item_rank = None if item_order is None else inverse_permutation(np.asarray(item_order))
        self.group_rank = None if group_order is None else inverse_permutation(np.asarray(group_order))
        self.edge_weight = edge_weight
        self.edge_time = edge_time
        self.order = order

    # ------------------------------------------------------------------ sizes
    @property
    def num_items(self) -> int:
        return self.items.num_nodes

    @property
    def num_groups(self) -> int:
        return self.groups.num_nodes

    @property
    def num_edges(self) -> int:
        return self.groups.num_edges

    @property
    def chunk(self) -> int:
        return 1 << self.items.chunk_shift

    @property
    def nbytes(self) -> int:
        """Bytes of the adjacency in both directions, block indexes included (the figure
        ``InteractionGraph.nbytes`` gives without weights or times); permutations and per-edge arrays
        are :attr:`perm_nbytes` and :attr:`edge_nbytes`."""
        return self.items.nbytes + self.groups.nbytes

    @property
    def perm_nbytes(self) -> int:
        """Bytes of the renumbering permutations as stored (``item_order``, ``group_order``)."""
        return int(sum(a.nbytes for a in (self.item_order, self.group_order) if a is not None))

    @property
    def edge_nbytes(self) -> int:
        """Bytes of the optional per-edge arrays (weights, times)."""
        return int(sum(a.nbytes for a in (self.edge_weight, self.edge_time) if a is not None))

    @property
    def item_degree(self) -> np.ndarray:
        """``(num_items,)`` int64 by dense item index."""
        d = self.items.degree()
        return d if self.item_rank is None else d[self.item_rank]

    @property
    def group_degree(self) -> np.ndarray:
        """``(num_groups,)`` int64 by dense group index."""
        d = self.groups.degree()
        return d if self.group_rank is None else d[self.group_rank]

    def __repr__(self) -> str:
        return (f"CompressedGraph(num_items={self.num_items}, num_groups={self.num_groups}, "
                f"num_edges={self.num_edges}, order={self.order!r}, chunk={self.chunk}, "
                f"{self.nbytes / max(self.num_edges, 1):.2f} B/edge)")

    # ------------------------------------------------------------------ id mapping
    def internal_items(self, items: np.ndarray) -> np.ndarray:
        """Dense item indices -> internal ids (int64)."""
        items = np.asarray(items, dtype=np.int64)
        return items if self.item_rank is None else self.item_rank[items].astype(np.int64)

    def dense_items(self, internal: np.ndarray) -> np.ndarray:
        """Internal item ids -> dense indices (int64)."""
        internal = np.asarray(internal, dtype=np.int64)
        return internal if self.item_order is None else np.asarray(self.item_order)[internal].astype(np.int64)

    def internal_groups(self, groups: np.ndarray) -> np.ndarray:
        groups = np.asarray(groups, dtype=np.int64)
        return groups if self.group_rank is None else self.group_rank[groups].astype(np.int64)

    def dense_groups(self, internal: np.ndarray) -> np.ndarray:
        internal = np.asarray(internal, dtype=np.int64)
        return internal if self.group_order is None else np.asarray(self.group_order)[internal].astype(np.int64)

    def item_neighbors(self, item: int) -> np.ndarray:
        """Dense group indices of dense ``item``'s groups, sorted."""
        u = int(self.internal_items(np.array([item]))[0])
        return np.sort(self.dense_groups(self.items.neighbors(u)))

    def group_neighbors(self, group: int) -> np.ndarray:
        """Dense item indices of dense ``group``'s items, sorted."""
        u = int(self.internal_groups(np.array([group]))[0])
        return np.sort(self.dense_items(self.groups.neighbors(u)))

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_graph(cls, graph: InteractionGraph, order: str = "degree", chunk: int = 16,
                   num_threads: int | None = None) -> "CompressedGraph":
        """Compress ``graph`` (both directions; weights and times carried along in the new order).

        ``order``: ``"degree"`` renumbers items and groups by decreasing degree (internal only),
        ``"none"`` keeps the dense indices (then the compressed adjacencies list neighbours in the
        order of ``graph``'s CSR, and a walk's slot ``k`` is the same neighbour in both stores).
        ``chunk``: gaps per chunk (a power of two; 16 by default).
        """
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        _check_sorted(graph.group_indptr, graph.group_items, "group_items")
        _check_sorted(graph.item_indptr, graph.item_groups, "item_groups")
        item_order = group_order = item_rank = group_rank = None
        if order == "degree":
            it = _index_dtype(graph.num_items)
            gt = _index_dtype(graph.num_groups)
            item_order = degree_order(graph.item_degree).astype(it)
            group_order = degree_order(graph.group_degree).astype(gt)
            item_rank = inverse_permutation(item_order)
            group_rank = inverse_permutation(group_order)
        if order == "none":
            items = CompressedAdjacency.encode(graph.item_indptr, graph.item_groups, graph.num_groups, chunk=chunk,
                                               num_threads=num_threads)
            groups = CompressedAdjacency.encode(graph.group_indptr, graph.group_items, graph.num_items, chunk=chunk,
                                                num_threads=num_threads)
        else:
            items, groups = renumber_both(graph, item_order, item_rank, group_order, group_rank, chunk, num_threads)
        weight, time = graph.edge_weight, graph.edge_time
        if order != "none" and (weight is not None or time is not None):
            perm = np.empty(graph.num_edges, dtype=np.int64)
            K.edge_permutation(graph.group_indptr, graph.group_items, group_order, item_rank, perm)
            weight = None if weight is None else np.asarray(weight)[perm]
            time = None if time is None else np.asarray(time)[perm]
            del perm
        return cls(items, groups, np.asarray(graph.item_ids), np.asarray(graph.group_ids), item_order,
                   group_order, weight, time, order)

    def to_interaction_graph(self) -> InteractionGraph:
        """The same graph as an :class:`~pinsage.graph.InteractionGraph` (dense indices, CSR in id order,
        weights and times in its group-CSR order): the exact inverse of :meth:`from_graph`."""
        indptr, items = self.groups.to_csr()
        groups = np.repeat(np.arange(self.num_groups, dtype=np.int64), np.diff(indptr))
        return InteractionGraph.from_edges(
            self.dense_groups(groups), self.dense_items(items), num_groups=self.num_groups,
            num_items=self.num_items, weight=None if self.edge_weight is None else np.asarray(self.edge_weight),
            time=None if self.edge_time is None else np.asarray(self.edge_time),
            item_ids=self.item_ids, group_ids=self.group_ids)

    @classmethod
    def from_edge_files(cls, paths: str | os.PathLike | Sequence[str | os.PathLike], group_col: str = "group",
                        item_col: str = "item", order: str = "degree", chunk: int = 16,
                        out: str | os.PathLike | None = None, scratch: str | os.PathLike | None = None,
                        chunk_edges: int = 1 << 22, num_threads: int | None = None) -> "CompressedGraph":
        """Build out of core from edge files holding dense integer ``(group, item)`` indices.

        ``paths``: files read in order and in chunks of ``chunk_edges`` rows: ``.npy`` files of shape
        ``(E, 2)`` (columns group, item; memory-mapped), or CSV / Parquet files with the columns
        ``group_col`` and ``item_col``. Duplicate pairs are merged (no weights are kept).

        Pass 1 counts degrees in both directions (``(num_groups + num_items)`` int64 in memory) and fixes
        the renumbering; pass 2 scatters every chunk, renumbered, into two memory-mapped int32/int64
        scratch CSRs (a counting sort); each adjacency is then sorted and its duplicates dropped, and the
        scratch CSRs are encoded. Peak memory is the degree and offset arrays plus one chunk of edges
        and the pages of the memory-mapped arrays being touched, never all edges as int64.
        ``out``: the store directory to write (the result is then loaded from it, memory-mapped);
        ``scratch``: where scratch files go (default: beside ``out``, else the system temp dir).
        """
        from pinsage.graph._compressed_build import build_from_edge_files

        return build_from_edge_files(cls, paths, group_col, item_col, order, chunk, out, scratch, chunk_edges,
                                     _threads(num_threads))

    # ------------------------------------------------------------------ persistence
    _ARRAYS = ("item_blocks", "item_data", "group_blocks", "group_data", "item_order", "group_order",
               "edge_weight", "edge_time")

    def _array(self, name: str) -> np.ndarray | None:
        side, _, what = name.partition("_")
        if what in ("blocks", "data"):
            return getattr(getattr(self, "items" if side == "item" else "groups"), what)
        return getattr(self, name)

    def save(self, path: str | os.PathLike) -> None:
        """Write the store directory: one ``.npy`` per array, the id maps, and ``graph.json`` (format,
        sizes, encoding, the SHA-256 of every file). Written beside ``path`` and renamed into place."""
        with atomic_dir(path) as tmp:
            write_store(tmp, self._header(), {n: self._array(n) for n in self._ARRAYS}, self.item_ids,
                        self.group_ids)

    def _header(self) -> dict[str, Any]:
        return store_header(self.num_items, self.num_groups, self.num_edges, self.chunk, self.order)

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True, verify: bool = True) -> "CompressedGraph":
        """Open a store written by :meth:`save`; ``mmap=True`` memory-maps the arrays. ``verify=True``
        checks every file's SHA-256 against ``graph.json`` (it reads every file once); sizes are
        checked either way. Raises :class:`~pinsage.InputError` naming the file on any mismatch."""
        path = Path(path)
        header_file = path / "graph.json"
        if not header_file.exists():
            raise InputError(f"{path}: not a saved CompressedGraph (no graph.json)")
        try:
            header = json.loads(header_file.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{header_file}: not valid JSON: {exc}") from exc
        if header.get("format") != _FORMAT or header.get("format_version") != COMPRESSED_FORMAT_VERSION:
            raise InputError(f"{header_file}: not a {_FORMAT} store of format version {COMPRESSED_FORMAT_VERSION} "
                             f"(found {header.get('format')!r} version {header.get('format_version')!r})")
        files: dict[str, str] = header["files"]
        for fname, digest in files.items():
            f = path / fname
            if not f.exists():
                raise InputError(f"{f}: missing (listed in graph.json)")
            if verify and sha256_file(f) != digest:
                raise InputError(f"{f}: checksum mismatch (the file was changed or damaged after it was written)")
        arrays = load_arrays(path, cls._ARRAYS, {n for n in cls._ARRAYS if f"{n}.npy" in files}, mmap)
        ids = load_id_maps(path, header)
        ni, ng, ne = header["num_items"], header["num_groups"], header["num_edges"]
        cs = int(header["chunk"]).bit_length() - 1
        rel = header["relations"][0]
        items = CompressedAdjacency(arrays["item_blocks"], arrays["item_data"], ni, ng, ne, cs)
        groups = CompressedAdjacency(arrays["group_blocks"], arrays["group_data"], ng, ni, ne, cs)
        nblk = lambda n: (n + K.BLOCK - 1) >> K.BLOCK_SHIFT  # noqa: E731
        ok = (items.blocks.shape == (nblk(ni), 4) and groups.blocks.shape == (nblk(ng), 4)
              and len(ids["item_ids"]) == ni and len(ids["group_ids"]) == ng
              and rel["item_to_group"]["data_words"] == len(items.data)
              and rel["group_to_item"]["data_words"] == len(groups.data)
              and all(arrays[n] is None or len(arrays[n]) == m
                      for n, m in (("item_order", ni), ("group_order", ng), ("edge_weight", ne), ("edge_time", ne))))
        if not ok:
            raise InputError(f"{path}: array sizes do not match graph.json (a truncated or mixed save)")
        return cls(items, groups, ids["item_ids"], ids["group_ids"], arrays["item_order"], arrays["group_order"],
                   arrays["edge_weight"], arrays["edge_time"], header.get("order", "none"))


# ---------------------------------------------------------------------------------------------- helpers
def renumber_both(graph: InteractionGraph, item_order: np.ndarray, item_rank: np.ndarray, group_order: np.ndarray,
                  group_rank: np.ndarray, chunk: int, num_threads: int | None
                  ) -> tuple[CompressedAdjacency, CompressedAdjacency]:
    """Both directions of ``graph`` renumbered and encoded, without a sort: the group -> items rows are
    gathered in internal order with their items renumbered (unsorted), a counting-sort transpose gives
    the item -> groups CSR with sorted rows, a second one the group -> items CSR with sorted rows. Holds
    two ``(E,)`` index arrays at a time."""
    threads = _threads(num_threads)
    g_indptr = np.zeros(graph.num_groups + 1, dtype=np.int64)
    np.cumsum(graph.group_degree[group_order], out=g_indptr[1:])
    g_items = np.empty(graph.num_edges, dtype=item_rank.dtype)
    _run_parallel(K.renumber_range, graph.num_groups, threads, graph.group_indptr, graph.group_items, group_order,
                  item_rank, g_indptr, g_items)
    i_indptr = np.zeros(graph.num_items + 1, dtype=np.int64)
    np.cumsum(graph.item_degree[item_order], out=i_indptr[1:])
    i_groups = np.empty(graph.num_edges, dtype=group_rank.dtype)
    fill_transpose(g_indptr, g_items, i_indptr, i_groups)
    items = CompressedAdjacency.encode(i_indptr, i_groups, graph.num_groups, chunk=chunk, num_threads=threads)
    fill_transpose(i_indptr, i_groups, g_indptr, g_items)  # rows come out sorted
    del i_groups
    groups = CompressedAdjacency.encode(g_indptr, g_items, graph.num_items, chunk=chunk, num_threads=threads)
    return items, groups


def _check_sorted(indptr: np.ndarray, indices: np.ndarray, name: str) -> None:
    if not K.strictly_sorted(indptr, indices):
        raise InputError(f"{name}: every adjacency must list distinct neighbours in increasing order "
                         f"(as InteractionGraph builds them)")


def store_header(num_items: int, num_groups: int, num_edges: int, chunk: int, order: str) -> dict[str, Any]:
    """The ``graph.json`` of a store, without its ``files`` and direction sizes (filled on writing)."""
    return {
        "format": _FORMAT, "format_version": COMPRESSED_FORMAT_VERSION,
        "num_items": int(num_items), "num_groups": int(num_groups), "num_edges": int(num_edges),
        "node_types": {"item": int(num_items), "group": int(num_groups)},
        "encoding": "compressed", "block": K.BLOCK, "chunk": int(chunk), "order": order,
        "relations": [{"name": "interactions", "other": "group",
                       "item_to_group": {}, "group_to_item": {}}],
    }


def write_store(tmp: Path, header: dict[str, Any], arrays: dict[str, np.ndarray | None], item_ids: np.ndarray,
                group_ids: np.ndarray, written: Iterable[str] = ()) -> None:
    """Write ``arrays`` (None: absent) and the id maps into the directory ``tmp``, then ``graph.json``
    with every file's SHA-256. Names in ``written`` are already in ``tmp`` (memory-mapped outputs)."""
    written = set(written)
    files: list[str] = []
    for name, arr in arrays.items():
        if arr is None:
            continue
        if name not in written:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr))
        files.append(f"{name}.npy")
    files += save_id_maps(tmp, header, item_ids, group_ids)
    rel = header["relations"][0]
    for key, side in (("item_to_group", "item"), ("group_to_item", "group")):
        data = arrays[f"{side}_data"]
        rel[key] = {"encoding": "compressed", "data_words": int(len(data)),
                    "bytes": int(arrays[f"{side}_blocks"].nbytes + data.nbytes)}
    header["files"] = {f: sha256_file(tmp / f) for f in files}
    (tmp / "graph.json").write_text(json.dumps(header, indent=2))
