r"""Embedding every item with a trained :class:`~pinsage.nn.PinSage` model.

:func:`embed_all` is the paper's MapReduce inference: instead of sampling a
K-hop tree per item (which recomputes the shared lower layers again and again),
it computes every node's representation **once per layer** over the whole graph,
with the fixed importance neighbourhoods:

.. math::
    \mathbf{H}^{(0)} &= \mathrm{encode}(\text{all items})

    \mathbf{M}^{(k)} &= \mathrm{ReLU}(\mathbf{Q}^{(k)} \mathbf{H}^{(k-1)} + \mathbf{q}^{(k)})
    \quad\text{(once per node)}

    \mathbf{H}^{(k)}_v &= \mathrm{combine}^{(k)}\big(\mathbf{H}^{(k-1)}_v,
    \textstyle\sum_u w_{uv} \mathbf{M}^{(k)}_u\big)

    \mathbf{Z} &= \mathrm{head}(\mathbf{H}^{(K)})

Cost per layer is :math:`O(N H^2 + \mathrm{nnz}\, H)` rather than
:math:`O(N T^K H^2)` for per-item sampled inference (:func:`embed_sampled`).

Sharded over ``world_size`` ranks, each rank computes a contiguous shard of rows
of every table; only the projected table :math:`\mathbf{M}^{(k)}` (which
neighbours read) and the final embeddings are all-gathered.

Larger than RAM: ``features`` may be a memory-mapped array (``np.load(...,
mmap_mode="r")``), ``out`` a memory-mapped output (``np.lib.format.open_memmap``)
and ``scratch_dir`` puts the per-layer tables into memory-mapped files, so the
resident memory is the model, the neighbourhoods and a few chunks.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable, Mapping, Optional, Union

import numpy as np
import torch
from torch import Tensor

from pinsage.sampling.blocks import Neighborhoods, NeighborSampler, build_blocks
from pinsage.nn.model import PinSage

__all__ = ["embed_all", "embed_sampled"]

Features = Optional[Union[np.ndarray, Tensor]]


def _rows(features: Features, idx: Union[slice, np.ndarray, Tensor], device: torch.device) -> Optional[Tensor]:
    """Gather content feature rows (numpy or tensor, possibly memory-mapped) onto ``device``."""
    if features is None:
        return None
    if isinstance(features, Tensor):
        if isinstance(idx, np.ndarray):
            idx = torch.from_numpy(idx)
        out = features[idx]
    else:
        if isinstance(idx, Tensor):
            idx = idx.cpu().numpy()
        rows = np.ascontiguousarray(features[idx])
        out = torch.from_numpy(rows if rows.flags.writeable else rows.copy())  # read-only memory map
    return out.to(device=device, dtype=torch.float32)


def _csr_range(nb: Neighborhoods, start: int, stop: int):
    """CSR rows ``start:stop`` of ``nb`` as views (no gather needed for a contiguous range)."""
    a, b = int(nb.indptr[start]), int(nb.indptr[stop])
    return nb.indptr[start: stop + 1] - a, nb.indices[a:b], nb.weights[a:b]


def _all_gather_rows(shard: Tensor, n_total: int, shard_size: int, world_size: int) -> Tensor:
    """All-gather equal-size (padded) row shards into the full ``(n_total, d)`` table."""
    import torch.distributed as dist

    padded = shard.new_zeros((shard_size, shard.size(1)))
    padded[: shard.size(0)] = shard
    parts = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat(parts, dim=0)[:n_total]


def _table(rows: int, cols: int, dtype: torch.dtype, device: torch.device, scratch: Optional[str],
           name: str) -> Tensor:
    """An uninitialised ``(rows, cols)`` table: in memory, or a memory-mapped file in ``scratch``."""
    if scratch is None:
        return torch.empty((rows, cols), dtype=dtype, device=device)
    arr = np.lib.format.open_memmap(os.path.join(scratch, f"{name}.npy"), mode="w+", dtype=np.float32,
                                    shape=(rows, cols))
    return torch.from_numpy(arr)


def _embed_all_relational(model: PinSage, tables: Mapping[str, Neighborhoods], features: Features, chunk_size: int,
                          device: torch.device, rank: int, world_size: int) -> Tensor:
    r""":func:`embed_all` for a model with per-relation layers (``model.relations``): per layer, every
    relation's :math:`\mathbf{M}^{(k)}_r` table once per node, then per chunk each relation's pooled update and
    their combination (:meth:`~pinsage.nn.RelationalPinSageConv.mix`). ``tables``: relation -> neighbourhoods
    of all ``N`` items (relations left out have no neighbours). Returns ``(N, out_channels)``."""
    unknown = set(tables) - set(model.relations)
    if unknown:
        raise ValueError(f"neighbourhoods of relations {sorted(unknown)} the model does not have {model.relations}")
    n = next(iter(tables.values())).num_nodes
    if features is not None and features.shape[0] != n:
        raise ValueError(f"features has {features.shape[0]} rows, neighbourhoods {n}")
    shard_size = -(-n // world_size)
    lo, hi = min(rank * shard_size, n), min((rank + 1) * shard_size, n)
    dtype = model.input_proj.weight.dtype
    h = torch.cat([model.encode(torch.arange(s, min(s + chunk_size, hi), device=device),
                                _rows(features, slice(s, min(s + chunk_size, hi)), device))
                   for s in range(lo, hi, chunk_size)]) if hi > lo else \
        torch.empty((0, model.hidden_channels), dtype=dtype, device=device)         # H^(0) of this shard
    for conv in model.layers:
        ms = []
        for r_conv in conv.convs:
            m = torch.cat([r_conv.project(h[s:s + chunk_size]) for s in range(0, hi - lo, chunk_size)]) \
                if hi > lo else torch.empty((0, r_conv.hidden_channels), dtype=dtype, device=device)
            ms.append(_all_gather_rows(m, n, shard_size, world_size) if world_size > 1 else m)
        h_next = torch.empty((hi - lo, conv.out_channels), dtype=dtype, device=device)
        for s in range(lo, hi, chunk_size):
            e = min(s + chunk_size, hi)
            zs, has = [], []
            for name, r_conv, m in zip(conv.relations, conv.convs, ms):
                if name in tables:
                    ptr, idx, w = _csr_range(tables[name], s, e)
                else:
                    ptr, idx, w = np.zeros(e - s + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
                counts = torch.from_numpy(np.diff(ptr))
                dst = torch.repeat_interleave(torch.arange(e - s), counts)
                edge_index = torch.stack([torch.from_numpy(np.asarray(idx)).long(), dst]).to(device)
                zs.append(r_conv.combine(m, h[s - lo:e - lo], edge_index, torch.from_numpy(np.asarray(w)).to(device)))
                has.append((counts > 0).to(device))
            h_next[s - lo:e - lo], _ = conv.mix(torch.stack(zs, dim=1), torch.stack(has, dim=1))
        h = h_next
    z = torch.cat([model.head(h[s:s + chunk_size]) for s in range(0, hi - lo, chunk_size)]) if hi > lo else \
        torch.empty((0, model.out_channels), dtype=dtype, device=device)
    return _all_gather_rows(z, n, shard_size, world_size) if world_size > 1 else z


@torch.no_grad()
def embed_all(
    model: PinSage,
    neighborhoods: Union[Neighborhoods, Mapping[str, Neighborhoods]],
    features: Features = None,
    chunk_size: int = 8192,
    device: Union[str, torch.device] = "cpu",
    rank: int = 0,
    world_size: int = 1,
    out: Optional[np.ndarray] = None,
    scratch_dir: Optional[Union[str, os.PathLike]] = None,
) -> Tensor:
    r"""Layer-wise full-graph inference: embeddings of all ``N`` items.

    Args:
        model: a trained :class:`~pinsage.nn.PinSage` (moved to ``device``; put
            in eval mode for the call, its training flag is restored after).
        neighborhoods: fixed neighbourhoods of all ``N`` items (CSR); for a model with per-relation layers
            (``model.relations``) a dict relation -> neighbourhoods (``out`` and ``scratch_dir`` unsupported there).
        features: ``(N, feature_dim)`` content features (numpy array, possibly
            memory-mapped, or tensor), or ``None`` if the model has none.
        chunk_size: rows processed at a time (bounds the working memory).
        device: compute device; the per-layer tables live there too.
        rank: this process's rank in an initialised :mod:`torch.distributed` group.
        world_size: shard the rows over ``world_size`` processes of that group;
            every rank returns the full table. With ``world_size == 1`` no
            distributed call is made.
        out: optional ``(N, out_channels)`` float32 numpy array (for example
            ``np.lib.format.open_memmap(path, "w+", np.float32, (N, out_channels))``)
            the embeddings are written into, chunk by chunk; the result is then
            a tensor sharing its memory.
        scratch_dir: optional directory (CPU, float32 model only) for the
            per-layer tables (``N * hidden_channels * 4`` bytes per layer, two at a time for
            K >= 2; H^(0) is recomputed, never stored), kept as
            memory-mapped files in a temporary sub-directory removed at the end,
            instead of in memory.

    Returns:
        ``(N, out_channels)`` float32 tensor on ``device`` (sharing ``out``'s memory when given).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    model.to(device)
    scratch_tmp = None
    if getattr(model, "relations", None) is not None:
        if out is not None or scratch_dir is not None:
            raise ValueError("embed_all: out and scratch_dir are not supported for per-relation models")
        if isinstance(neighborhoods, Neighborhoods):
            raise ValueError("embed_all: a model with per-relation layers needs a dict relation -> neighbourhoods")
        try:
            return _embed_all_relational(model, neighborhoods, features, chunk_size, device, rank, world_size)
        finally:
            model.train(was_training)
    try:
        n = neighborhoods.num_nodes
        if features is not None and features.shape[0] != n:
            raise ValueError(f"features has {features.shape[0]} rows, neighbourhoods {n}")
        if out is not None and (out.shape != (n, model.out_channels) or out.dtype != np.float32):
            raise ValueError(f"out must be a float32 array of shape {(n, model.out_channels)}, got "
                             f"{out.dtype} {out.shape}")
        shard_size = -(-n // world_size)
        lo, hi = min(rank * shard_size, n), min((rank + 1) * shard_size, n)
        dtype = model.input_proj.weight.dtype
        scratch = None
        if scratch_dir is not None:
            if device.type != "cpu" or dtype != torch.float32:
                raise ValueError("scratch_dir needs a float32 model on the CPU")
            scratch_tmp = tempfile.TemporaryDirectory(prefix="pinsage-embed-", dir=scratch_dir)
            scratch = scratch_tmp.name

        # H^(0) (id embedding + input projection) is cheap to recompute and is never stored; the
        # last layer feeds the head chunk by chunk. Tables of N rows: M^(k) for every layer, H^(k)
        # only between layers (K = 1: one N x hidden table instead of three).
        def h0(s: int, e: int) -> Tensor:
            return model.encode(torch.arange(s, e, device=device), _rows(features, slice(s, e), device))

        h_rows: Callable[[int, int], Tensor] = h0          # global rows s:e of H^(k-1)
        h: Optional[Tensor] = None                         # H^(k-1) as a table (None for k = 1)
        direct = out is not None and world_size == 1
        z = torch.empty((0 if direct else hi - lo, model.out_channels), dtype=dtype, device=device)
        num_layers = len(model.layers)
        for k, conv in enumerate(model.layers, start=1):
            # M^(k) = ReLU(Q H^(k-1)) once per node, then the full table.
            m = _table(hi - lo, conv.hidden_channels, dtype, device, scratch, f"m{k}")
            for s in range(lo, hi, chunk_size):
                e = min(s + chunk_size, hi)
                m[s - lo: e - lo] = conv.project(h_rows(s, e))
            if world_size > 1:
                m = _all_gather_rows(m, n, shard_size, world_size)  # (N, hidden)
            last = k == num_layers
            # a chunk's update reads only its own rows of H^(k-1) (and M^(k)), so H^(k) can overwrite
            # H^(k-1) in place when the widths agree
            h_next = None
            if not last:
                inplace = h is not None and conv.out_channels == h.size(1)
                h_next = h if inplace else _table(hi - lo, conv.out_channels, dtype, device, scratch, f"h{k}")
            for s in range(lo, hi, chunk_size):
                e = min(s + chunk_size, hi)
                ptr, idx, w = _csr_range(neighborhoods, s, e)
                counts = torch.from_numpy(np.diff(ptr))
                dst = torch.repeat_interleave(torch.arange(e - s), counts)
                edge_index = torch.stack([torch.from_numpy(idx).long(), dst]).to(device)
                hk = conv.combine(m, h_rows(s, e), edge_index, torch.from_numpy(w).to(device))
                if not last:
                    h_next[s - lo: e - lo] = hk
                    continue
                zc = model.head(hk)
                if direct:
                    out[s: e] = zc.float().cpu().numpy()
                else:
                    z[s - lo: e - lo] = zc
            del m
            if not last:
                h = h_next
                h_rows = lambda s, e, t=h_next: t[s - lo: e - lo]  # noqa: E731
        del h
        if direct:
            return torch.from_numpy(out)
        if world_size > 1:
            z = _all_gather_rows(z, n, shard_size, world_size)
        if out is not None:
            out[:] = z.float().cpu().numpy()
            return torch.from_numpy(out)
        return z
    finally:
        model.train(was_training)
        if scratch_tmp is not None:
            scratch_tmp.cleanup()


@torch.no_grad()
def embed_sampled(
    model: PinSage,
    items: Union[np.ndarray, Tensor],
    neighborhoods: Union[Neighborhoods, NeighborSampler],
    features: Features = None,
    batch_size: int = 1024,
    device: Union[str, torch.device] = "cpu",
) -> Tensor:
    r"""Per-item inference over freshly built K-hop blocks (the slow baseline).

    For every batch of ``items``, :func:`~pinsage.sampling.blocks.build_blocks` builds
    the K-hop computation graph, the content features of
    ``blocks[0].src_nodes`` are gathered, and the model is run. Lower layers are
    recomputed for every tree a node appears in.

    Args:
        model: a :class:`~pinsage.nn.PinSage`.
        items: ``(n,)`` item indices to embed.
        neighborhoods: fixed :class:`~pinsage.sampling.blocks.Neighborhoods` or a
            sampler ``f(nodes) -> (offsets, indices, weights)``.
        features: ``(N, feature_dim)`` content features, or ``None``.
        batch_size: seeds per minibatch.
        device: compute device.

    Returns:
        ``(n, out_channels)`` float32 tensor on ``device``.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    model.to(device)
    try:
        items_t = torch.as_tensor(np.asarray(items) if not isinstance(items, Tensor) else items).long().cpu()
        out = torch.empty((items_t.numel(), model.out_channels), device=device)
        for s in range(0, items_t.numel(), batch_size):
            seeds = items_t[s: s + batch_size]
            blocks = build_blocks(seeds, neighborhoods, model.num_layers)
            feats = _rows(features, blocks[0].src_nodes, device)
            blocks = [b.to(device) for b in blocks]
            out[s: s + seeds.numel()] = model(blocks, feats)
        return out
    finally:
        model.train(was_training)
