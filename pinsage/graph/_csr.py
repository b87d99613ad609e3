"""Compiled (numba) CSR helpers of the graph store: transposition by counting sort, of the adjacency and of
per-edge values."""
from __future__ import annotations

import numba as nb

__all__ = ["fill_transpose", "transpose_values"]


@nb.njit(cache=True, nogil=True)
def fill_transpose(src_indptr, src_indices, dst_indptr, dst_indices):
    """Fill ``dst_indices`` with the transpose of CSR ``(src_indptr, src_indices)``.

    ``dst_indptr`` must already hold the transposed offsets. Rows come out sorted because sources
    are visited in order. Linear time (a counting sort).
    """
    fill = dst_indptr[:-1].copy()
    n_src = len(src_indptr) - 1
    for s in range(n_src):
        for e in range(src_indptr[s], src_indptr[s + 1]):
            d = src_indices[e]
            dst_indices[fill[d]] = s
            fill[d] += 1


@nb.njit(cache=True, nogil=True)
def transpose_values(src_indptr, src_indices, dst_indptr, values, out):
    """Scatter per-edge ``values`` of CSR ``(src_indptr, src_indices)`` into the transposed CSR's edge order
    (the order :func:`fill_transpose` writes: sources in order within each row)."""
    fill = dst_indptr[:-1].copy()
    for s in range(len(src_indptr) - 1):
        for e in range(src_indptr[s], src_indptr[s + 1]):
            d = src_indices[e]
            out[fill[d]] = values[e]
            fill[d] += 1
