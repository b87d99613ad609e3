"""PinSage's importance sampler: random-walk visit counts -> top-T neighbourhoods with weights."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from pinsage._arrays import shrink_rows
from pinsage.graph.time_index import TimeIndex, time_index
from pinsage.graph.weights import WalkWeights, walk_weights
from pinsage.sampling._kernels import walk_topk_range
from pinsage.sampling._time_kernels import walk_topk_before_range
from pinsage.sampling.blocks import Neighborhoods

if TYPE_CHECKING:
    from pinsage.config import SamplerConfig
    from pinsage.graph import InteractionGraph

__all__ = ["ImportanceSampler", "SampledNeighborhoods", "all_neighborhoods", "importance_neighborhoods",
           "stream_key"]


class SampledNeighborhoods(NamedTuple):
    """Per-seed neighbourhoods in CSR form for ``B`` seeds.

    * ``offsets``: ``(B + 1,)`` int64; seed ``b``'s neighbours are ``indices[offsets[b]:offsets[b+1]]``;
    * ``indices``: ``(nnz,)`` int64 dense item indices, by decreasing visit count (ties: smaller index);
    * ``weights``: ``(nnz,)`` float32, visit counts normalised to sum to 1 per seed;
    * ``counts``: ``(nnz,)`` int32 raw visit counts.
    """

    offsets: torch.Tensor
    indices: torch.Tensor
    weights: torch.Tensor
    counts: torch.Tensor


def checked_seeds(seeds: np.ndarray, stream_ids: np.ndarray | None,
                  num_items: int) -> tuple[np.ndarray, np.ndarray]:
    """``(seeds, stream_ids)`` as contiguous int64 ``(B,)`` arrays for the walk kernels, ``stream_ids``
    defaulting to ``arange(B)``; ValueError for a shape that is not ``(B,)``, IndexError for a seed outside
    ``[0, num_items)``."""
    seeds = np.ascontiguousarray(seeds, dtype=np.int64)
    if seeds.ndim != 1:
        raise ValueError(f"seeds must be 1-D, got shape {seeds.shape}")
    if stream_ids is None:
        stream_ids = np.arange(len(seeds), dtype=np.int64)
    stream_ids = np.ascontiguousarray(stream_ids, dtype=np.int64)
    if stream_ids.shape != seeds.shape:
        raise ValueError(f"stream_ids must have the shape of seeds {seeds.shape}, got {stream_ids.shape}")
    if len(seeds) and (seeds.min() < 0 or seeds.max() >= num_items):
        raise IndexError(f"seed indices must lie in [0, {num_items}), got range [{seeds.min()}, {seeds.max()}]")
    return seeds, stream_ids


def stream_key(seed: int, key: int) -> int:
    """One 63-bit random-stream key per ``(seed, key)`` for the compiled kernels (distinct odd
    multipliers, so seed s at key k + 1 is not seed s + 1 at key k)."""
    return (seed * 0x100000001B3 + int(key) * 0x9E3779B1 + 1) & 0x7FFFFFFFFFFFFFFF


class ImportanceSampler:
    r"""Random-walk importance neighbourhoods (PinSage, Ying et al. 2018, section 3.1).

    For each seed item :math:`s`, ``num_walks`` walks start at :math:`s`; each hop moves
    item :math:`\to` uniformly random group :math:`\to` uniformly random item, counts a visit to the
    item reached when it is not :math:`s`, then ends the walk with probability ``restart_prob``;
    a walk makes at most ``walk_length`` hops. With ``weighted=True`` each step instead takes an
    edge with probability proportional to its walk weight (the edge weight, optionally decayed with its
    age by ``weight_half_life``; :mod:`pinsage.graph.weights`): :math:`A` below holds those weights.
    The expected visits to item :math:`j` per walk are

    .. math::
        \mathbb{E}[c_{sj}] = \sum_{h=1}^{L} (1-r)^{h-1} (P^h)_{sj}, \qquad
        P = D_I^{-1} A^\top D_G^{-1} A

    with :math:`A` the group x item adjacency. The neighbourhood is the top ``num_neighbors``
    items by count (ties: smaller index) and the weights are the counts normalised to sum to 1.
    Isolated seeds get an empty neighbourhood.

    Time-respecting neighbourhoods: give ``before`` (a time per seed, or one for all) and every step uses
    only edges with time strictly before the seed's time (uniform steps; the graph needs edge times). The
    steps then read a :class:`~pinsage.graph.time_index.TimeIndex` (built on first use, kept in
    ``time_index``): a binary search per step finds the older edges of a node.

    Calls are reproducible: the random stream depends on ``seed`` and the ``key`` of the call
    (by default a counter of calls on this sampler), never on ``num_threads`` (the seeds are split
    over that many threads; the compiled kernel releases the GIL). Give an explicit ``key``
    (e.g. a batch number) when several processes sample.

    Example:
        >>> import pandas as pd, torch
        >>> from pinsage.graph import InteractionGraph
        >>> g = InteractionGraph.from_pandas(
        ...     pd.DataFrame({"u": [0, 0, 1, 1], "i": ["a", "b", "b", "c"]}), "u", "i")
        >>> sampler = ImportanceSampler(g, num_walks=100, walk_length=2, num_neighbors=2, seed=0)
        >>> nb = sampler(torch.tensor([0]))
        >>> nb.indices.tolist()  # 'b' is visited most from 'a', then 'c'
        [1, 2]
    """

    def __init__(
        self,
        graph: InteractionGraph,
        num_walks: int = 200,
        walk_length: int = 3,
        restart_prob: float = 0.5,
        num_neighbors: int = 50,
        seed: int = 0,
        num_threads: int | None = None,
        weighted: bool = False,
        weight_half_life: float | None = None,
    ) -> None:
        if num_walks < 1 or walk_length < 1 or num_neighbors < 1:
            raise ValueError("num_walks, walk_length and num_neighbors must be >= 1")
        if not 0.0 <= restart_prob <= 1.0:
            raise ValueError(f"restart_prob must lie in [0, 1], got {restart_prob}")
        self.graph = graph
        self.num_walks = int(num_walks)
        self.walk_length = int(walk_length)
        self.restart_prob = float(restart_prob)
        self.num_neighbors = int(num_neighbors)
        self.seed = int(seed)
        self._calls = 0
        self.num_threads = max(1, int(num_threads if num_threads is not None else min(os.cpu_count() or 1, 8)))
        self._pool: ThreadPoolExecutor | None = None
        self.weighted = bool(weighted)
        self.weight_half_life = weight_half_life or None
        if self.weight_half_life and not self.weighted:
            raise ValueError("weight_half_life decays the weights of weighted walks: set weighted=True")
        self.walk_weights: WalkWeights | None = (walk_weights(graph, self.weight_half_life)
                                                 if self.weighted else None)
        self.time_index: TimeIndex | None = None

    @classmethod
    def from_config(cls, graph: InteractionGraph, config: SamplerConfig, seed: int = 0) -> "ImportanceSampler":
        """The sampler a run's ``sampler`` settings describe (:class:`pinsage.config.SamplerConfig`)."""
        return cls(graph, config.num_walks, config.walk_length, config.restart_prob, config.num_neighbors,
                   seed=seed, weighted=config.weighted, weight_half_life=config.weight_half_life)

    def all_neighborhoods(self, chunk: int = 16384, key_base: int = 0) -> Neighborhoods:
        """Every item's neighbourhood, sampled once: :func:`all_neighborhoods` of this sampler."""
        return all_neighborhoods(self, chunk=chunk, key_base=key_base)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pool"] = None  # thread pools do not cross process boundaries (DataLoader workers)
        return state

    def __repr__(self) -> str:
        return (f"ImportanceSampler(num_walks={self.num_walks}, walk_length={self.walk_length}, "
                f"restart_prob={self.restart_prob}, num_neighbors={self.num_neighbors}, seed={self.seed}"
                + (f", weighted=True, weight_half_life={self.weight_half_life}" if self.weighted else "") + ")")

    def _key(self, key: int | None) -> int:
        if key is None:
            key = self._calls
            self._calls += 1
        return stream_key(self.seed, key)

    def sample_arrays(self, seeds: np.ndarray, key: int | None = None, stream_ids: np.ndarray | None = None,
                      before: np.ndarray | float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The padded kernel output: ``(nbr (B, T) int64 with -1 padding, counts (B, T) int32, n (B,))``.

        Row ``b``'s walks draw from the stream of ``(seed, key, stream_ids[b])``; ``stream_ids``
        ``(B,)`` defaults to ``arange(B)`` (streams by position in the call). Giving the seeds
        themselves makes a seed's neighbourhood independent of the other seeds of the call.
        ``before`` (``(B,)`` or one time, in the graph's time units): walk only edges older than it."""
        g = self.graph
        seeds, stream_ids = checked_seeds(seeds, stream_ids, g.num_items)
        B = len(seeds)
        nbr = np.full((B, self.num_neighbors), -1, dtype=np.int64)
        cnt = np.zeros((B, self.num_neighbors), dtype=np.int32)
        nout = np.zeros(B, dtype=np.int64)
        walk = (self.num_walks, self.walk_length, self.restart_prob, self._key(key), stream_ids, nbr, cnt, nout)
        if before is None:
            args = (seeds, g.item_indptr, g.item_groups, g.group_indptr, g.group_items, *self.kernel_weights(), *walk)
            self._run_rows(walk_topk_range, args, B)
        else:
            ti = self._time_index()
            args = (seeds, self._bounds(before, seeds.shape, ti), ti.cuts, ti.item_records, ti.item_groups,
                    ti.item_ranks, ti.group_records, ti.group_items, ti.group_ranks, *walk)
            self._run_rows(walk_topk_before_range, args, B)
        return nbr, cnt, nout

    def _time_index(self) -> TimeIndex:
        if self.weighted:
            raise ValueError("time-respecting walks take uniform steps: weighted walks with a time bound are not "
                             "supported (set weighted=False, or give no time bound)")
        if self.time_index is None:
            self.time_index = time_index(self.graph)
        return self.time_index

    @staticmethod
    def _bounds(before: np.ndarray | float, shape: tuple[int, ...], index: TimeIndex) -> np.ndarray:
        """``before`` as one rank bound per seed (:meth:`TimeIndex.rank_before`)."""
        b = np.asarray(before)
        if b.ndim > 1 or (b.ndim == 1 and b.shape != shape):
            raise ValueError(f"before must be one time or one per seed {shape}, got shape {b.shape}")
        if b.dtype.kind not in "iuf":
            raise ValueError(f"before must hold numeric times (the graph's units), got dtype {b.dtype}")
        if b.dtype.kind == "f" and np.isnan(b).any():
            raise ValueError("before must not hold NaN")
        return np.ascontiguousarray(np.broadcast_to(index.rank_before(b), shape))

    def _run_rows(self, kernel, args: tuple, num_rows: int) -> None:
        """``kernel(*args, start, stop)`` over rows ``0..num_rows-1``, split over the sampler's threads.

        The compiled kernels release the GIL; a small thread pool is cheap to dispatch and, unlike an
        OpenMP team, does not spin when the machine is oversubscribed. At most one part per 64 rows."""
        n_parts = min(self.num_threads, max(1, num_rows // 64))
        if n_parts == 1:
            kernel(*args, 0, num_rows)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.num_threads, thread_name_prefix="pinsage-walk")
        bounds = np.linspace(0, num_rows, n_parts + 1).astype(np.int64)
        futures = [self._pool.submit(kernel, *args, int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
        for f in futures:
            f.result()

    def kernel_weights(self) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """``(item_alias, group_alias, item_total)`` for the compiled kernels: the walk weights' alias tables,
        or three Nones for uniform steps (numba compiles that call without the weighted branch)."""
        if self.walk_weights is None:
            return None, None, None
        w = self.walk_weights
        return w.item_alias, w.group_alias, w.item_total

    def __call__(self, seeds: torch.Tensor | np.ndarray, key: int | None = None,
                 stream_ids: np.ndarray | None = None,
                 before: np.ndarray | float | None = None) -> SampledNeighborhoods:
        """Neighbourhoods of ``seeds`` (1-D dense item indices, ``(B,)``) as CSR; see the class doc and
        :meth:`sample_arrays` for ``stream_ids`` and ``before``."""
        seeds_np = seeds.cpu().numpy() if isinstance(seeds, torch.Tensor) else np.asarray(seeds)
        nbr, cnt, n = self.sample_arrays(seeds_np, key, stream_ids, before)
        valid = nbr >= 0
        indices = nbr[valid]
        counts = cnt[valid]
        totals = cnt.sum(axis=1, dtype=np.float64)
        row_total = np.repeat(totals, n)
        weights = (counts / np.maximum(row_total, 1)).astype(np.float32)
        offsets = np.zeros(len(n) + 1, dtype=np.int64)
        np.cumsum(n, out=offsets[1:])
        return SampledNeighborhoods(
            torch.from_numpy(offsets), torch.from_numpy(indices), torch.from_numpy(weights),
            torch.from_numpy(counts),
        )


def all_neighborhoods(sampler: ImportanceSampler, chunk: int = 16384, key_base: int = 0) -> Neighborhoods:
    """Importance neighbourhoods of every item, sampled once (chunk ``c`` uses key ``key_base + c``).

    Indices are stored as int32 (the catalogue fits): written chunk by chunk into arrays sized for
    ``num_items * num_neighbors`` entries, then shrunk in place, so the peak is the result's size
    (graph L: 0.8 GB instead of 2.4 GB for int64 parts plus their concatenation).
    """
    n = sampler.graph.num_items
    cap = n * sampler.num_neighbors
    index_dtype = np.int32 if n <= np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n + 1, dtype=np.int64)
    indices = np.empty(cap, dtype=index_dtype)
    weights = np.empty(cap, dtype=np.float32)
    total = 0
    for c, lo in enumerate(range(0, n, chunk)):
        hi = min(n, lo + chunk)
        nb = sampler(np.arange(lo, hi), key=key_base + c)
        k = len(nb.indices)
        indices[total:total + k] = nb.indices.numpy()
        weights[total:total + k] = nb.weights.numpy()
        indptr[lo + 1:hi + 1] = nb.offsets.numpy()[1:] + total
        total += k
    return Neighborhoods(indptr, shrink_rows(indices, total), shrink_rows(weights, total))


def importance_neighborhoods(graph: InteractionGraph, config: SamplerConfig, seed: int = 0,
                             key_base: int = 0) -> Neighborhoods:
    """Every item's importance neighbourhood as a run's ``sampler`` settings ask: Monte Carlo walk counts
    (``method: walks``, :func:`all_neighborhoods`), their exact expectation (``method: exact``,
    :func:`pinsage.sampling.exact.exact_neighborhoods`), or ``auto``: exact while
    :func:`~pinsage.sampling.exact.exact_is_affordable` (about a minute on 2 cores), walks above."""
    from pinsage.sampling.exact import exact_is_affordable, exact_neighborhoods

    method = config.method
    if method == "auto":
        method = "exact" if exact_is_affordable(graph.num_items, graph.num_edges) else "walks"
    if method == "exact":
        return exact_neighborhoods(graph, config.walk_length, config.restart_prob, config.num_neighbors,
                                   weighted=config.weighted, weight_half_life=config.weight_half_life)
    return ImportanceSampler.from_config(graph, config, seed=seed).all_neighborhoods(key_base=key_base)
