r"""Minibatch structures for K-hop PinSage convolutions.

A PinSage minibatch is a list of :class:`Block` objects (DGL calls them
"message flow graphs"), one per convolution layer, ordered **input -> output**:

* ``blocks[0].src_nodes`` are all items whose input representation
  :math:`\mathbf{h}^{(0)}` is needed (their content features are gathered for
  exactly these rows, in this order);
* ``blocks[i + 1].src_nodes == blocks[i].src_nodes[:blocks[i].n_dst]``: the
  outputs of layer :math:`i` are the inputs of layer :math:`i + 1`;
* ``blocks[-1]``'s destination nodes are the seed items, one output row each.

Inside a block, destination nodes always come **first** among the source nodes,
so a layer can take its own representation of a destination node as
``x_src[:n_dst]`` without a second lookup.

Neighbourhoods come either from a fixed CSR table (:class:`Neighborhoods`, for
example the importance neighbourhoods computed once for inference) or from a
sampler callable ``f(nodes: LongTensor) -> (offsets, indices, weights)`` that
returns the same CSR shape for the given nodes (the importance sampler).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["Block", "Neighborhoods", "NeighborSampler", "build_blocks", "one_hop_block"]

ArrayLike = Union[np.ndarray, Tensor]
#: ``f(nodes) -> (offsets (n+1,), indices (nnz,), weights (nnz,))``.
NeighborSampler = Callable[[Tensor], Tuple[ArrayLike, ArrayLike, ArrayLike]]


def _to_numpy(a: ArrayLike, dtype: np.dtype) -> np.ndarray:
    if isinstance(a, Tensor):
        a = a.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(a), dtype=dtype)


def _dtype_of(a: ArrayLike) -> np.dtype:
    """numpy dtype of an array or tensor."""
    return a.detach().cpu().numpy().dtype if isinstance(a, Tensor) else np.asarray(a).dtype


def _to_tensor(a: ArrayLike, dtype: torch.dtype) -> Tensor:
    if isinstance(a, Tensor):
        return a.to(dtype)
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)


@dataclass
class Block:
    r"""One hop of a K-hop sampled minibatch (a bipartite "message flow graph").

    Attributes:
        src_nodes: ``(n_src,)`` int64 global (dense) item indices. The first
            ``n_dst`` entries **are** the destination nodes, in order.
        n_dst: number of destination nodes.
        edge_index: ``(2, E)`` int64; row 0 is the local position of the
            neighbour in ``src_nodes``, row 1 the local position of the
            destination node (``< n_dst``). Messages flow row 0 -> row 1.
        edge_weight: ``(E,)`` float32 importance weights :math:`w_{uv}`; for
            each destination they sum to 1 (a destination may have no edges).
    """

    src_nodes: Tensor
    n_dst: int
    edge_index: Tensor
    edge_weight: Tensor

    @property
    def n_src(self) -> int:
        return int(self.src_nodes.numel())

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.size(1))

    @property
    def dst_nodes(self) -> Tensor:
        """``(n_dst,)`` global indices of the destination nodes."""
        return self.src_nodes[: self.n_dst]

    def to(self, device: Union[str, torch.device], non_blocking: bool = False) -> "Block":
        """Return a copy with all tensors on ``device``."""
        return Block(
            src_nodes=self.src_nodes.to(device, non_blocking=non_blocking),
            n_dst=self.n_dst,
            edge_index=self.edge_index.to(device, non_blocking=non_blocking),
            edge_weight=self.edge_weight.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> "Block":
        """Pinned-memory copy (DataLoader ``pin_memory=True`` calls this)."""
        return Block(
            src_nodes=self.src_nodes.pin_memory(),
            n_dst=self.n_dst,
            edge_index=self.edge_index.pin_memory(),
            edge_weight=self.edge_weight.pin_memory(),
        )


@dataclass
class Neighborhoods:
    r"""Fixed per-item neighbourhoods in CSR form.

    Item ``v``'s neighbours are ``indices[indptr[v]:indptr[v+1]]`` with weights
    ``weights[indptr[v]:indptr[v+1]]`` (normalised visit counts of the
    importance walks, summing to 1 per item with at least one neighbour).

    Attributes:
        indptr: ``(N + 1,)`` int64 offsets.
        indices: ``(nnz,)`` neighbour item indices: int32 when given as int32 (half the memory:
            graph L's 100M entries take 0.4 GB), else int64.
        weights: ``(nnz,)`` float32 neighbour weights.

    Tensors are accepted and converted to numpy arrays. The object is callable
    with the same contract as a sampler, so it can be passed wherever a
    :data:`NeighborSampler` is expected.
    """

    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        self.indptr = _to_numpy(self.indptr, np.int64)
        self.indices = _to_numpy(self.indices, np.int32 if _dtype_of(self.indices) == np.int32 else np.int64)
        self.weights = _to_numpy(self.weights, np.float32)
        if self.indptr.ndim != 1 or self.indptr.size < 1:
            raise ValueError("indptr must be a 1-D array of length N + 1")
        nnz = int(self.indptr[-1])
        if self.indices.shape != (nnz,) or self.weights.shape != (nnz,):
            raise ValueError(
                f"indices/weights must have indptr[-1] = {nnz} entries, got "
                f"{self.indices.shape} and {self.weights.shape}"
            )

    @property
    def num_nodes(self) -> int:
        return int(self.indptr.size - 1)

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def gather(self, nodes: ArrayLike) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""CSR sub-table for ``nodes`` (vectorised, duplicates allowed).

        Args:
            nodes: ``(n,)`` item indices.

        Returns:
            ``(indptr (n+1,) int64, indices (nnz',) int64 or int32 (as stored), weights (nnz',) float32)``
            where row ``i`` holds the neighbourhood of ``nodes[i]``.
        """
        nodes = _to_numpy(nodes, np.int64)
        starts = self.indptr[nodes]
        counts = self.indptr[nodes + 1] - starts
        out_ptr = np.zeros(nodes.size + 1, dtype=np.int64)
        np.cumsum(counts, out=out_ptr[1:])
        total = int(out_ptr[-1])
        # position k of the output maps to starts[row(k)] + (k - out_ptr[row(k)])
        pos = np.repeat(starts - out_ptr[:-1], counts) + np.arange(total, dtype=np.int64)
        return out_ptr, self.indices[pos], self.weights[pos]

    __call__ = gather

    @classmethod
    def from_lists(cls, neighbors: List[List[int]], weights: List[List[float]] | None = None) -> "Neighborhoods":
        """Build from Python lists (convenience for tests and small examples).

        Missing ``weights`` means uniform weights ``1 / deg``.
        """
        counts = np.array([len(n) for n in neighbors], dtype=np.int64)
        indptr = np.zeros(len(neighbors) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        indices = np.array([u for n in neighbors for u in n], dtype=np.int64)
        if weights is None:
            w = np.repeat(1.0 / np.maximum(counts, 1), counts)
        else:
            w = np.array([x for ws in weights for x in ws], dtype=np.float32)
        return cls(indptr, indices, w.astype(np.float32))


def one_hop_block(
    dst_nodes: Tensor,
    offsets: ArrayLike,
    indices: ArrayLike,
    weights: ArrayLike,
) -> Block:
    r"""Re-index one hop into a compact :class:`Block` (vectorised, sort-based).

    ``src_nodes = [dst_nodes, new neighbours in increasing id order]``; each
    neighbour occurrence is mapped to its local position (a neighbour that is
    also a destination node maps to its destination position, the first one if
    ``dst_nodes`` has duplicates). Increasing id order keeps the feature gather
    of the next hop memory-friendly. The re-indexing is one ``np.unique`` over
    ``[dst_nodes, neighbours]`` (numpy's sort is much faster than torch's on CPU).

    Args:
        dst_nodes: ``(n_dst,)`` global item indices (duplicates allowed).
        offsets: ``(n_dst + 1,)`` CSR offsets of the neighbourhoods of ``dst_nodes``.
        indices: ``(nnz,)`` global neighbour indices.
        weights: ``(nnz,)`` neighbour weights.
    """
    dst = _to_numpy(dst_nodes, np.int64).reshape(-1)
    offsets = _to_numpy(offsets, np.int64)
    n_dst = int(dst.size)
    if offsets.size != n_dst + 1:
        raise ValueError(f"offsets must have n_dst + 1 = {n_dst + 1} entries, got {offsets.size}")
    lo, hi = int(offsets[0]), int(offsets[-1])
    nbr = _to_numpy(indices, np.int64)[lo:hi]
    w = _to_tensor(weights, torch.float32)[lo:hi]
    counts = np.diff(offsets)
    dst_local = np.repeat(np.arange(n_dst, dtype=np.int64), counts)

    cand = np.concatenate([dst, nbr])
    # first[i]: first occurrence of uniq[i] in cand; inv: cand -> uniq position
    uniq, first, inv = np.unique(cand, return_index=True, return_inverse=True)
    is_new = first >= n_dst
    rank = np.cumsum(is_new) - 1
    pos = np.where(is_new, n_dst + rank, first)  # local position of every unique id
    src_local = pos[inv.reshape(-1)[n_dst:]]

    return Block(
        src_nodes=torch.from_numpy(np.concatenate([dst, uniq[is_new]])),
        n_dst=n_dst,
        edge_index=torch.from_numpy(np.stack([src_local, dst_local])),
        edge_weight=w.contiguous(),
    )


def build_blocks(
    seeds: ArrayLike,
    neighborhoods: Union[Neighborhoods, NeighborSampler],
    num_layers: int,
) -> List[Block]:
    r"""Build the K-hop minibatch for ``seeds`` (vectorised, no per-node loop).

    Starting from the seeds, each hop asks ``neighborhoods`` for the
    neighbourhoods of the current frontier (all source nodes of the hop above)
    and re-indexes them into a compact :class:`Block` with
    :func:`one_hop_block`, so that the destination nodes come first.

    Args:
        seeds: ``(B,)`` seed item indices (duplicates are kept: one output row each).
        neighborhoods: a :class:`Neighborhoods` table, or a sampler callable
            ``f(nodes: LongTensor) -> (offsets, indices, weights)``.
        num_layers: :math:`K`, the number of convolution layers (blocks).

    Returns:
        ``K`` blocks ordered input -> output; ``blocks[-1].dst_nodes == seeds``.
    """
    if num_layers < 1:
        raise ValueError("num_layers must be >= 1")
    sample = neighborhoods.gather if isinstance(neighborhoods, Neighborhoods) else neighborhoods
    nodes = _to_tensor(seeds, torch.long).reshape(-1).cpu()
    blocks: List[Block] = []
    for _ in range(num_layers):
        offsets, indices, weights = sample(nodes)
        block = one_hop_block(nodes, offsets, indices, weights)
        blocks.append(block)
        nodes = block.src_nodes
    blocks.reverse()
    return blocks
