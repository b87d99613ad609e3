"""The out-of-core builder of :class:`pinsage.graph.compressed.CompressedGraph` (``from_edge_files``).

Edges are read in chunks from ``.npy`` files of shape ``(E, 2)`` (memory-mapped), CSV or Parquet files
holding dense integer ``(group, item)`` indices. Two passes over them:

1. count the rows per group and per item (``bincount`` per chunk, summed): the degrees, duplicates
   included, which fix the renumbering and the row offsets of two scratch CSRs;
2. scatter every chunk, renumbered, into a group-major scratch CSR (a memory-mapped ``.npy`` file beside
   the output): the first counting sort, rows unsorted.

A counting-sort transpose of it gives the item-major scratch CSR with every row sorted (groups are
visited in order); duplicates are then adjacent and dropped in one linear pass, and a second transpose
gives the group-major CSR sorted and without duplicates: no comparison sort anywhere. Both directions are
encoded straight into memory-mapped output files. In memory: the degree and offset arrays (``O(num_items + num_groups)``), one chunk of edges
and the pages of the memory-mapped arrays being touched; never all edges as int64.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numba as nb
import numpy as np
import pandas as pd

from pinsage._io import InputError, atomic_dir
from pinsage.graph._csr import fill_transpose

if TYPE_CHECKING:
    from pinsage.graph.compressed import CompressedGraph

__all__ = ["build_from_edge_files", "iter_edge_chunks"]


def iter_edge_chunks(paths: Sequence[str | os.PathLike], group_col: str, item_col: str,
                     chunk_edges: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(groups, items)`` int64 arrays of at most ``chunk_edges`` rows each, file by file, in order.

    ``.npy``: an integer array of shape ``(E, 2)`` (columns group, item), memory-mapped; ``.csv`` /
    ``.csv.gz`` / ``.tsv``: read with pandas in chunks; ``.parquet`` / ``.pq``: read by record batches.
    Raises :class:`~pinsage.InputError` naming the file for a missing column, non-integer or negative
    indices, or a ``.npy`` file of another shape."""
    for path in paths:
        path = Path(path)
        name = path.name.lower()
        if name.endswith(".npy"):
            try:
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise InputError(f"{path}: unreadable .npy file: {exc}") from exc
            if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind not in "iu":
                raise InputError(f"{path}: expected an integer array of shape (E, 2) (group, item), "
                                 f"got {arr.dtype} {arr.shape}")
            for lo in range(0, len(arr), chunk_edges):
                block = np.asarray(arr[lo:lo + chunk_edges])
                yield _checked(path, block[:, 0], block[:, 1], lo)
        elif name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            missing = [c for c in (group_col, item_col) if c not in pf.schema_arrow.names]
            if missing:
                raise InputError(f"{path}: column(s) {missing} not found; columns are {pf.schema_arrow.names}")
            lo = 0
            for batch in pf.iter_batches(batch_size=chunk_edges, columns=[group_col, item_col]):
                g = batch.column(0).to_numpy(zero_copy_only=False)
                i = batch.column(1).to_numpy(zero_copy_only=False)
                yield _checked(path, g, i, lo)
                lo += len(g)
        elif name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")):
            sep = "\t" if ".tsv" in name else ","
            lo = 0
            try:
                reader = pd.read_csv(path, sep=sep, usecols=[group_col, item_col], chunksize=chunk_edges)
            except ValueError as exc:
                raise InputError(f"{path}: {exc}") from exc
            for df in reader:
                yield _checked(path, df[group_col].to_numpy(), df[item_col].to_numpy(), lo)
                lo += len(df)
        else:
            raise InputError(f"{path}: unsupported edge file (expected .npy, .csv, .tsv or .parquet)")


def _checked(path: Path, groups: np.ndarray, items: np.ndarray, lo: int) -> tuple[np.ndarray, np.ndarray]:
    for what, a in (("group", groups), ("item", items)):
        if a.dtype.kind not in "iu":
            raise InputError(f"{path}: {what} indices must be integers (dense indices), got {a.dtype}")
        if len(a) and a.min() < 0:
            row = lo + int(np.flatnonzero(a < 0)[0]) + 1
            raise InputError(f"{path}: negative {what} index in data row {row}")
    return groups.astype(np.int64, copy=False), items.astype(np.int64, copy=False)


def _add_counts(acc: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``acc`` plus the ``bincount`` of ``idx``, grown as needed."""
    if not len(idx):
        return acc
    c = np.bincount(idx)
    if len(c) > len(acc):
        acc = np.concatenate([acc, np.zeros(len(c) - len(acc), dtype=np.int64)])
    acc[:len(c)] += c
    return acc


@nb.njit(cache=True, nogil=True)
def _scatter_renumbered(groups, items, group_rank, item_rank, g_fill, g_items):
    """Append edge ``t``'s item (renumbered) to its group's row (renumbered) of the scratch CSR."""
    for t in range(len(groups)):
        g = group_rank[groups[t]]
        g_items[g_fill[g]] = item_rank[items[t]]
        g_fill[g] += 1


@nb.njit(cache=True, nogil=True)
def _dedup_sorted_rows(indptr, indices, counts):
    """Drop the repeats of every sorted row and compact the rows in place (rows only move towards the
    front); returns the new offsets and counts the surviving values per target in ``counts``."""
    n = len(indptr) - 1
    new_indptr = np.zeros(n + 1, dtype=np.int64)
    o = 0
    for u in range(n):
        a = indptr[u]
        b = indptr[u + 1]
        prev = -1
        for e in range(a, b):
            v = indices[e]
            if v != prev:
                indices[o] = v
                counts[v] += 1
                o += 1
                prev = v
        new_indptr[u + 1] = o
    return new_indptr


def _open(path: Path, dtype: Any, n: int) -> np.ndarray:
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(max(n, 0),))


def build_from_edge_files(cls: type[CompressedGraph], paths: str | os.PathLike | Sequence[str | os.PathLike],
                          group_col: str, item_col: str, order: str, chunk: int, out: str | os.PathLike | None,
                          scratch: str | os.PathLike | None, chunk_edges: int, threads: int) -> CompressedGraph:
    """See :meth:`pinsage.graph.compressed.CompressedGraph.from_edge_files`."""
    from pinsage.graph.compressed import (
        ORDERS, CompressedAdjacency, _index_dtype, degree_order, inverse_permutation, store_header, write_store,
    )

    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if out is None:
        raise ValueError("from_edge_files writes a store directory: give out=")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    chunk_edges = max(1, int(chunk_edges))
    # pass 1: degrees (duplicates included)
    g_deg = np.zeros(0, dtype=np.int64)
    i_deg = np.zeros(0, dtype=np.int64)
    rows = 0
    for groups, items in iter_edge_chunks(paths, group_col, item_col, chunk_edges):
        g_deg = _add_counts(g_deg, groups)
        i_deg = _add_counts(i_deg, items)
        rows += len(groups)
    if rows == 0:
        raise InputError(f"{', '.join(map(str, paths))}: no edges")
    ng, ni = len(g_deg), len(i_deg)
    it, gt = _index_dtype(ni), _index_dtype(ng)
    if order == "degree":
        item_order, group_order = degree_order(i_deg).astype(it), degree_order(g_deg).astype(gt)
    else:
        item_order, group_order = np.arange(ni, dtype=it), np.arange(ng, dtype=gt)
    item_rank, group_rank = inverse_permutation(item_order), inverse_permutation(group_order)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".pinsage-build.", dir=scratch if scratch is not None else out.parent))
    try:
        g_indptr = np.zeros(ng + 1, dtype=np.int64)
        np.cumsum(g_deg[group_order], out=g_indptr[1:])
        i_indptr = np.zeros(ni + 1, dtype=np.int64)
        np.cumsum(i_deg[item_order], out=i_indptr[1:])
        del g_deg, i_deg
        g_items = _open(work / "group_items.npy", it, rows)
        # pass 2: the counting sort into group-major rows (unsorted)
        g_fill = g_indptr[:-1].copy()
        for groups, items in iter_edge_chunks(paths, group_col, item_col, chunk_edges):
            _scatter_renumbered(groups, items, group_rank, item_rank, g_fill, g_items)
        del g_fill
        # transpose: item-major rows sorted by group, repeats adjacent; drop them; transpose back
        i_groups = _open(work / "item_groups.npy", gt, rows)
        fill_transpose(g_indptr, g_items, i_indptr, i_groups)
        g_deg = np.zeros(ng, dtype=np.int64)
        i_indptr = _dedup_sorted_rows(i_indptr, i_groups, g_deg)
        g_indptr = np.zeros(ng + 1, dtype=np.int64)
        np.cumsum(g_deg, out=g_indptr[1:])
        del g_deg
        fill_transpose(i_indptr, i_groups, g_indptr, g_items)
        num_edges = int(g_indptr[-1])
        with atomic_dir(out) as tmp:
            items_adj = CompressedAdjacency.encode(
                i_indptr, i_groups, ng, chunk=chunk, num_threads=threads,
                allocate=lambda words: _open(tmp / "item_data.npy", np.uint64, words))
            del i_groups
            groups_adj = CompressedAdjacency.encode(
                g_indptr, g_items, ni, chunk=chunk, num_threads=threads,
                allocate=lambda words: _open(tmp / "group_data.npy", np.uint64, words))
            del g_items
            for adj in (items_adj, groups_adj):
                adj.data.flush()
            perms = order == "degree"
            arrays = {"item_blocks": items_adj.blocks, "item_data": items_adj.data,
                      "group_blocks": groups_adj.blocks, "group_data": groups_adj.data,
                      "item_order": item_order if perms else None, "group_order": group_order if perms else None,
                      "edge_weight": None, "edge_time": None}
            write_store(tmp, store_header(ni, ng, num_edges, chunk, order), arrays, np.arange(ni), np.arange(ng),
                        written=("item_data", "group_data"))
            del items_adj, groups_adj, arrays
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cls.load(out, mmap=True, verify=False)
