r"""Mixed-relation importance neighbourhoods on a :class:`~pinsage.graph.HeteroGraph`: walks
item -> (node of relation :math:`r`) -> item with per-relation step probabilities (a metapath mix)."""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Mapping

import numpy as np
import torch

from pinsage._arrays import shrink_rows
from pinsage._io import InputError
from pinsage.graph.weights import walk_weights
from pinsage.sampling._kernels import walk_topk_range
from pinsage.sampling._metapath_kernels import metapath_topk_range, relation_tables
from pinsage.sampling.blocks import Neighborhoods
from pinsage.sampling.importance import SampledNeighborhoods, checked_seeds, stream_key

if TYPE_CHECKING:
    from pinsage.graph.hetero import HeteroGraph

__all__ = ["MetapathSampler"]


def _relation_probs(graph: HeteroGraph, relation_probs: Mapping[str, float] | None) -> np.ndarray:
    """``(R,)`` float64 probabilities in the graph's relation order (normalised; 0 for relations not named)."""
    if relation_probs is None:
        return np.full(graph.num_relations, 1.0 / graph.num_relations)
    if not isinstance(relation_probs, Mapping) or not relation_probs:
        raise InputError("relation_probs must be a non-empty mapping relation name -> probability")
    probs = np.zeros(graph.num_relations)
    for name, p in relation_probs.items():
        r = graph.relation_index(name)
        try:
            p = float(p)
        except (TypeError, ValueError):
            raise InputError(f"relation_probs[{name!r}] must be a number, got {p!r}") from None
        if not math.isfinite(p) or p < 0:
            raise InputError(f"relation_probs[{name!r}] must be a finite number >= 0, got {p!r}")
        probs[r] = p
    if probs.sum() <= 0:
        raise InputError(f"relation_probs gives every relation probability 0: {dict(relation_probs)}")
    return probs / probs.sum()


class MetapathSampler:
    r"""Importance neighbourhoods from random walks that mix relations (heterogeneous PinSage).

    For each seed item :math:`s`, ``num_walks`` walks start at :math:`s`. At each hop from item :math:`i`
    the walk picks relation :math:`r` with probability

    .. math::
        q_r(i) = \frac{p_r \, [d_r(i) > 0]}{\sum_{r'} p_{r'} \, [d_{r'}(i) > 0]}

    (``relation_probs`` :math:`p_r` renormalised over the relations in which :math:`i` has edges; the walk
    ends where it has none), moves item :math:`\to` uniform node of :math:`r` :math:`\to` uniform item
    (``weighted=True``: each edge in proportion to its walk weight, as in
    :class:`~pinsage.sampling.ImportanceSampler`, per relation), counts a visit to the item reached when it
    is not :math:`s`, and stops with probability ``restart_prob``; at most ``walk_length`` hops. With
    :math:`P_r` the one-relation transition matrix of :math:`r` and :math:`P = \sum_r \mathrm{diag}(q_r) P_r`,
    the expected visits per walk are

    .. math::
        \mathbb{E}[c_{sj}] = \sum_{h=1}^{L} (1-r)^{h-1} (P^h)_{sj}, \qquad
        \mathbb{E}[c^{(r)}_{sj}] = \sum_{h=1}^{L} (1-r)^{h-1} (P^{h-1} \mathrm{diag}(q_r) P_r)_{sj}

    the second for the visits reached by a hop through :math:`r`.

    ``merge=True``: one neighbourhood per seed, the top ``num_neighbors`` items by all visits, as a
    :class:`~pinsage.sampling.SampledNeighborhoods` (the form :class:`~pinsage.sampling.ImportanceSampler`
    gives). ``merge=False``: a dict relation name -> :class:`~pinsage.sampling.SampledNeighborhoods`, each the
    top ``num_neighbors`` by the visits of that relation's hops (relations of probability 0 are left out).

    Calls are reproducible: the stream depends on ``seed``, the call's ``key`` (by default a counter of
    calls) and the row id only, never on ``num_threads`` or the other rows of the call. The hop and restart
    draws are :class:`~pinsage.sampling.ImportanceSampler`'s; each hop's relation is drawn from a second,
    counter-based stream keyed by (row, walk, hop) (:mod:`pinsage.sampling._metapath_kernels`). With one
    relation (or one relation of positive probability in every item's reach) the result is bit for bit
    :class:`~pinsage.sampling.ImportanceSampler`'s on that relation's graph with the same ``seed`` and ``key``.

    Example:
        >>> import pandas as pd, torch
        >>> from pinsage.graph import HeteroGraph
        >>> g = HeteroGraph.from_pandas(
        ...     {"click": pd.DataFrame({"user": [0, 0, 1, 1], "item": ["a", "b", "b", "c"]}),
        ...      "tag": pd.DataFrame({"tag": ["x", "x"], "item": ["a", "d"]})},
        ...     other_col={"click": "user", "tag": "tag"})
        >>> sampler = MetapathSampler(g, {"click": 0.5, "tag": 0.5}, num_walks=200, walk_length=1,
        ...                           num_neighbors=3, seed=0, merge=False)
        >>> nb = sampler(torch.tensor([0]))        # item 'a'
        >>> g.item_ids[nb["click"].indices.numpy()].tolist(), g.item_ids[nb["tag"].indices.numpy()].tolist()
        (['b'], ['d'])
    """

    def __init__(
        self,
        graph: HeteroGraph,
        relation_probs: Mapping[str, float] | None = None,
        num_walks: int = 200,
        walk_length: int = 3,
        restart_prob: float = 0.5,
        num_neighbors: int = 50,
        seed: int = 0,
        merge: bool = True,
        num_threads: int | None = None,
        weighted: bool = False,
        weight_half_life: float | None = None,
    ) -> None:
        if num_walks < 1 or walk_length < 1 or num_neighbors < 1:
            raise ValueError("num_walks, walk_length and num_neighbors must be >= 1")
        if not 0.0 <= restart_prob <= 1.0:
            raise ValueError(f"restart_prob must lie in [0, 1], got {restart_prob}")
        self.graph = graph
        self.probs = _relation_probs(graph, relation_probs)
        self._tables = relation_tables(self.probs)
        self.num_walks = int(num_walks)
        self.walk_length = int(walk_length)
        self.restart_prob = float(restart_prob)
        self.num_neighbors = int(num_neighbors)
        self.seed = int(seed)
        self.merge = bool(merge)
        self._calls = 0
        self.num_threads = max(1, int(num_threads if num_threads is not None else min(os.cpu_count() or 1, 8)))
        self._pool: ThreadPoolExecutor | None = None
        self.weighted = bool(weighted)
        self.weight_half_life = weight_half_life or None
        if self.weight_half_life and not self.weighted:
            raise ValueError("weight_half_life decays the weights of weighted walks: set weighted=True")
        self._alias = self._pack_alias() if self.weighted else (None, None, None)
        self._rel_alias: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @property
    def relation_probs(self) -> dict[str, float]:
        """The normalised step probabilities :math:`p_r`, by relation name."""
        return {n: float(p) for n, p in zip(self.graph.relations, self.probs)}

    @property
    def stepped_relations(self) -> tuple[str, ...]:
        """Relations of positive probability: the keys of a ``merge=False`` result."""
        return tuple(n for n, p in zip(self.graph.relations, self.probs) if p > 0)

    def _pack_alias(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every relation's alias tables (:func:`pinsage.graph.walk_weights`) packed like the relations'
        edges, and the item totals as ``(N, R)`` float32."""
        g = self.graph
        a = g.arrays
        E, R = g.num_edges, g.num_relations
        item_alias = np.empty((E, 2), dtype=np.uint64)
        other_alias = np.empty((E, 2), dtype=np.uint64)
        item_total = np.empty((g.num_items, R), dtype=np.float32)
        for r, name in enumerate(g.relations):
            w = walk_weights(g.relation(name), self.weight_half_life)
            e0, e1 = a.edge_base[r], a.edge_base[r + 1]
            item_alias[e0:e1] = w.item_alias
            other_alias[e0:e1] = w.group_alias
            item_total[:, r] = w.item_total
        return item_alias, other_alias, item_total

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pool"] = None
        return state

    def __repr__(self) -> str:
        mix = ", ".join(f"{n}: {p:.3g}" for n, p in self.relation_probs.items())
        return (f"MetapathSampler({{{mix}}}, num_walks={self.num_walks}, walk_length={self.walk_length}, "
                f"restart_prob={self.restart_prob}, num_neighbors={self.num_neighbors}, seed={self.seed}, "
                f"merge={self.merge}" + (f", weighted=True, weight_half_life={self.weight_half_life}"
                                         if self.weighted else "") + ")")

    def _key(self, key: int | None) -> int:
        if key is None:
            key = self._calls
            self._calls += 1
        return stream_key(self.seed, key)

    def sample_arrays(self, seeds: np.ndarray, key: int | None = None,
                      stream_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The padded kernel output ``(nbr (R', B, T) int64 with -1 padding, counts (R', B, T) int32,
        n (R', B) int64)``; ``R' = 1`` merged, else one row block per relation of the graph (in
        :attr:`HeteroGraph.relations` order; relations of probability 0 stay empty). ``stream_ids`` as in
        :meth:`ImportanceSampler.sample_arrays`."""
        g = self.graph
        seeds, stream_ids = checked_seeds(seeds, stream_ids, g.num_items)
        B, rows = len(seeds), (1 if self.merge else g.num_relations)
        nbr = np.full((rows, B, self.num_neighbors), -1, dtype=np.int64)
        cnt = np.zeros((rows, B, self.num_neighbors), dtype=np.int32)
        nout = np.zeros((rows, B), dtype=np.int64)
        stepped = np.flatnonzero(self.probs > 0)
        if len(stepped) == 1:
            # one relation: its walks are the single-relation sampler's, bit for bit (the mixed kernel's
            # relation draws come from a stream of their own and choose nothing here), so run that kernel on
            # the relation's own arrays
            r = int(stepped[0])
            rel = g.relation(g.relations[r])
            row = 0 if self.merge else r
            args = (seeds, rel.item_indptr, rel.item_groups, rel.group_indptr, rel.group_items,
                    *self._relation_alias(r), self.num_walks, self.walk_length, self.restart_prob,
                    self._key(key), stream_ids, nbr[row], cnt[row], nout[row])
            self._run_rows(walk_topk_range, args, B)
            return nbr, cnt, nout
        a = g.arrays
        args = (seeds, a.item_indptr, a.item_others, a.edge_base, a.other_indptr, a.other_base, a.other_items,
                *self._alias, *self._tables, self.num_walks, self.walk_length, self.restart_prob,
                self._key(key), stream_ids, nbr, cnt, nout)
        self._run_rows(metapath_topk_range, args, B)
        return nbr, cnt, nout

    def _relation_alias(self, r: int) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Relation ``r``'s ``(item_alias, group_alias, item_total)`` for the single-relation kernel (views
        of the packed tables; the totals copied once), or three Nones for uniform steps."""
        if not self.weighted:
            return None, None, None
        if r not in self._rel_alias:
            a = self.graph.arrays
            e0, e1 = a.edge_base[r], a.edge_base[r + 1]
            item_alias, other_alias, item_total = self._alias
            self._rel_alias[r] = (item_alias[e0:e1], other_alias[e0:e1], np.ascontiguousarray(item_total[:, r]))
        return self._rel_alias[r]

    def _run_rows(self, kernel, args: tuple, num_rows: int) -> None:
        """``kernel(*args, start, stop)`` over rows ``0..num_rows-1`` split over the threads (at most one part
        per 64 rows)."""
        n_parts = min(self.num_threads, max(1, num_rows // 64))
        if n_parts == 1:
            kernel(*args, 0, num_rows)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.num_threads, thread_name_prefix="pinsage-metapath")
        bounds = np.linspace(0, num_rows, n_parts + 1).astype(np.int64)
        futures = [self._pool.submit(kernel, *args, int(lo), int(hi))
                   for lo, hi in zip(bounds[:-1], bounds[1:])]
        for f in futures:
            f.result()

    @staticmethod
    def _csr(nbr: np.ndarray, cnt: np.ndarray, n: np.ndarray) -> SampledNeighborhoods:
        """One ``(B, T)`` padded block as :class:`SampledNeighborhoods` (as ImportanceSampler forms it)."""
        valid = nbr >= 0
        counts = cnt[valid]
        row_total = np.repeat(cnt.sum(axis=1, dtype=np.float64), n)
        weights = (counts / np.maximum(row_total, 1)).astype(np.float32)
        offsets = np.zeros(len(n) + 1, dtype=np.int64)
        np.cumsum(n, out=offsets[1:])
        return SampledNeighborhoods(torch.from_numpy(offsets), torch.from_numpy(nbr[valid]),
                                    torch.from_numpy(weights), torch.from_numpy(counts))

    def __call__(self, seeds: torch.Tensor | np.ndarray, key: int | None = None,
                 stream_ids: np.ndarray | None = None) -> SampledNeighborhoods | dict[str, SampledNeighborhoods]:
        """Neighbourhoods of ``seeds`` (``(B,)`` dense item indices): merged, or per relation (see the class doc)."""
        seeds_np = seeds.cpu().numpy() if isinstance(seeds, torch.Tensor) else np.asarray(seeds)
        nbr, cnt, n = self.sample_arrays(seeds_np, key, stream_ids)
        if self.merge:
            return self._csr(nbr[0], cnt[0], n[0])
        return {name: self._csr(nbr[r], cnt[r], n[r]) for r, name in enumerate(self.graph.relations)
                if self.probs[r] > 0}

    def all_neighborhoods(self, chunk: int = 16384, key_base: int = 0) -> Neighborhoods | dict[str, Neighborhoods]:
        """Every item's neighbourhood, sampled once (chunk ``c`` uses key ``key_base + c``): one
        :class:`~pinsage.sampling.Neighborhoods` merged, else one per stepped relation (int32 indices)."""
        n = self.graph.num_items
        names = [self.graph.relations[r] for r in range(self.graph.num_relations)] if not self.merge else [None]
        rows = [r for r in range(len(names)) if self.merge or self.probs[r] > 0]
        cap = n * self.num_neighbors
        index_dtype = np.int32 if n <= np.iinfo(np.int32).max else np.int64
        indptr = {r: np.zeros(n + 1, dtype=np.int64) for r in rows}
        indices = {r: np.empty(cap, dtype=index_dtype) for r in rows}
        weights = {r: np.empty(cap, dtype=np.float32) for r in rows}
        total = dict.fromkeys(rows, 0)
        for c, lo in enumerate(range(0, n, chunk)):
            hi = min(n, lo + chunk)
            nbr, cnt, k = self.sample_arrays(np.arange(lo, hi), key=key_base + c)
            for r in rows:
                nb = self._csr(nbr[r], cnt[r], k[r])
                m, t = len(nb.indices), total[r]
                indices[r][t:t + m] = nb.indices.numpy()
                weights[r][t:t + m] = nb.weights.numpy()
                indptr[r][lo + 1:hi + 1] = nb.offsets.numpy()[1:] + t
                total[r] = t + m
        out = {r: Neighborhoods(indptr[r], shrink_rows(indices[r], total[r]), shrink_rows(weights[r], total[r]))
               for r in rows}
        return out[0] if self.merge else {names[r]: out[r] for r in rows}
