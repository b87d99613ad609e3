r"""Minibatch blocks with one edge set per relation, for :class:`pinsage.nn.RelationalPinSageConv`.

A :class:`RelationalBlock` is a :class:`~pinsage.sampling.Block` whose edges are split by relation: the
source nodes are shared (destination nodes first, then every relation's new neighbours in increasing id
order), and relation ``r``'s neighbourhoods are ``edge_index[r]`` / ``edge_weight[r]``. With one relation it
is exactly :func:`~pinsage.sampling.one_hop_block`'s block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from pinsage.sampling.blocks import ArrayLike, Block, Neighborhoods, _to_numpy, _to_tensor

__all__ = ["RelationalBlock", "relational_one_hop_block", "build_relational_blocks"]

#: ``f(nodes) -> {relation: (offsets (n+1,), indices (nnz,), weights (nnz,))}``
RelationalSampler = Callable[[Tensor], Mapping[str, Tuple[ArrayLike, ArrayLike, ArrayLike]]]


@dataclass
class RelationalBlock:
    r"""One hop of a K-hop minibatch with per-relation neighbourhoods.

    Attributes:
        src_nodes: ``(n_src,)`` int64 global item indices; the first ``n_dst`` are the destination nodes.
        n_dst: number of destination nodes.
        edge_index: relation -> ``(2, E_r)`` int64 local (source position, destination position) pairs.
        edge_weight: relation -> ``(E_r,)`` float32 weights, summing to 1 per destination with edges in ``r``.
    """

    src_nodes: Tensor
    n_dst: int
    edge_index: Dict[str, Tensor]
    edge_weight: Dict[str, Tensor]

    @property
    def n_src(self) -> int:
        return int(self.src_nodes.numel())

    @property
    def dst_nodes(self) -> Tensor:
        return self.src_nodes[: self.n_dst]

    @property
    def relations(self) -> Tuple[str, ...]:
        return tuple(self.edge_index)

    def relation_block(self, name: str) -> Block:
        """Relation ``name``'s edges as a plain :class:`~pinsage.sampling.Block` over the shared source nodes."""
        return Block(self.src_nodes, self.n_dst, self.edge_index[name], self.edge_weight[name])

    def to(self, device: Union[str, torch.device], non_blocking: bool = False) -> "RelationalBlock":
        return RelationalBlock(
            self.src_nodes.to(device, non_blocking=non_blocking), self.n_dst,
            {r: e.to(device, non_blocking=non_blocking) for r, e in self.edge_index.items()},
            {r: w.to(device, non_blocking=non_blocking) for r, w in self.edge_weight.items()},
        )


def relational_one_hop_block(
    dst_nodes: Tensor,
    neighborhoods: Mapping[str, Tuple[ArrayLike, ArrayLike, ArrayLike]],
) -> RelationalBlock:
    r"""Re-index one hop with per-relation neighbourhoods into a :class:`RelationalBlock` (one ``np.unique``
    over the destination nodes and every relation's neighbours, as :func:`~pinsage.sampling.one_hop_block`).

    Args:
        dst_nodes: ``(n_dst,)`` global item indices (duplicates allowed).
        neighborhoods: relation -> ``(offsets (n_dst + 1,), indices (nnz_r,), weights (nnz_r,))``, e.g. a
            :class:`~pinsage.sampling.MetapathSampler` ``merge=False`` result.
    """
    dst = _to_numpy(dst_nodes, np.int64).reshape(-1)
    n_dst = int(dst.size)
    names = list(neighborhoods)
    nbrs, dst_locals, weights = [], [], []
    for name in names:
        offsets, indices, w = neighborhoods[name][:3]
        offsets = _to_numpy(offsets, np.int64)
        if offsets.size != n_dst + 1:
            raise ValueError(f"relation {name!r}: offsets must have n_dst + 1 = {n_dst + 1} entries, "
                             f"got {offsets.size}")
        lo, hi = int(offsets[0]), int(offsets[-1])
        nbrs.append(_to_numpy(indices, np.int64)[lo:hi])
        weights.append(_to_tensor(w, torch.float32)[lo:hi].contiguous())
        dst_locals.append(np.repeat(np.arange(n_dst, dtype=np.int64), np.diff(offsets)))
    cand = np.concatenate([dst, *nbrs])
    uniq, first, inv = np.unique(cand, return_index=True, return_inverse=True)
    is_new = first >= n_dst
    rank = np.cumsum(is_new) - 1
    pos = np.where(is_new, n_dst + rank, first)
    src_all = pos[inv.reshape(-1)[n_dst:]]
    bounds = np.cumsum([0] + [len(n) for n in nbrs])
    edge_index = {name: torch.from_numpy(np.stack([src_all[bounds[k]:bounds[k + 1]], dst_locals[k]]))
                  for k, name in enumerate(names)}
    return RelationalBlock(torch.from_numpy(np.concatenate([dst, uniq[is_new]])), n_dst, edge_index,
                           dict(zip(names, weights)))


def build_relational_blocks(
    seeds: ArrayLike,
    neighborhoods: Union[Mapping[str, Neighborhoods], RelationalSampler],
    num_layers: int,
) -> List[RelationalBlock]:
    r"""The K-hop minibatch for ``seeds`` with per-relation neighbourhoods, ordered input -> output (as
    :func:`~pinsage.sampling.build_blocks`): each hop asks for the neighbourhoods of all source nodes of the
    hop above.

    Args:
        seeds: ``(B,)`` seed item indices.
        neighborhoods: relation -> :class:`~pinsage.sampling.Neighborhoods` (e.g.
            ``MetapathSampler(..., merge=False).all_neighborhoods()``), or a callable returning relation ->
            ``(offsets, indices, weights)`` for the nodes given (a ``merge=False`` :class:`MetapathSampler`).
        num_layers: :math:`K`.
    """
    if num_layers < 1:
        raise ValueError("num_layers must be >= 1")
    if isinstance(neighborhoods, Mapping):
        tables = dict(neighborhoods)

        def sample(nodes: Tensor) -> Dict[str, Tuple[ArrayLike, ArrayLike, ArrayLike]]:
            return {r: t.gather(nodes) for r, t in tables.items()}
    else:
        sample = neighborhoods
    nodes = _to_tensor(seeds, torch.long).reshape(-1).cpu()
    blocks: List[RelationalBlock] = []
    for _ in range(num_layers):
        block = relational_one_hop_block(nodes, sample(nodes))
        blocks.append(block)
        nodes = block.src_nodes
    blocks.reverse()
    return blocks
