"""Importance neighbourhoods of a graph of several relations, as a run's ``sampler`` settings ask
(``sampler.relation_probs``, ``sampler.merge_relations``, ``sampler.method``): the heterogeneous counterpart of
:func:`pinsage.sampling.importance_neighborhoods`, and the helpers that treat per-relation tables
(``{relation: Neighborhoods}``) like one table."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Union

import numpy as np
import scipy.sparse as sp

from pinsage.sampling.blocks import Neighborhoods
from pinsage.sampling.exact import exact_is_affordable, exact_mixed_neighborhoods
from pinsage.sampling.metapath import MetapathSampler

if TYPE_CHECKING:
    from pinsage.config import SamplerConfig
    from pinsage.graph import HeteroGraph

__all__ = ["RelationNeighborhoods", "mixed_sampler", "mixed_neighborhoods", "mixed_method", "merge_tables",
           "num_nodes_of", "with_isolated_rows"]

#: one table, or one per relation
RelationNeighborhoods = Union[Neighborhoods, Mapping[str, Neighborhoods]]


def mixed_method(graph: "HeteroGraph", config: "SamplerConfig") -> str:
    """``"exact"`` or ``"walks"``: ``sampler.method`` with ``auto`` resolved on all relations' edges together."""
    if config.method != "auto":
        return config.method
    return "exact" if exact_is_affordable(graph.num_items, graph.num_edges) else "walks"


def mixed_sampler(graph: "HeteroGraph", config: "SamplerConfig", relation_probs: Mapping[str, float],
                  seed: int = 0) -> MetapathSampler:
    """The :class:`~pinsage.sampling.MetapathSampler` of a run's sampler settings (``merge`` from
    ``sampler.merge_relations``)."""
    return MetapathSampler(graph, dict(relation_probs), num_walks=config.num_walks, walk_length=config.walk_length,
                           restart_prob=config.restart_prob, num_neighbors=config.num_neighbors, seed=seed,
                           merge=config.merge_relations, weighted=config.weighted,
                           weight_half_life=config.weight_half_life or None)


def mixed_neighborhoods(graph: "HeteroGraph", config: "SamplerConfig", relation_probs: Mapping[str, float],
                        seed: int = 0, key_base: int = 0) -> RelationNeighborhoods:
    """Every item's neighbourhood of the mixed-relation walk: merged (one :class:`Neighborhoods`) or per
    relation (a dict over the relations of positive probability), from the exact expected visits
    (:func:`~pinsage.sampling.exact.exact_mixed_neighborhoods`) or Monte Carlo walks
    (:meth:`MetapathSampler.all_neighborhoods`), as :func:`mixed_method` resolves ``sampler.method``."""
    if mixed_method(graph, config) == "exact":
        return exact_mixed_neighborhoods(graph, dict(relation_probs), config.walk_length, config.restart_prob,
                                         config.num_neighbors, merge=config.merge_relations,
                                         weighted=config.weighted, weight_half_life=config.weight_half_life or None)
    return mixed_sampler(graph, config, relation_probs, seed).all_neighborhoods(key_base=key_base)


def num_nodes_of(nb: RelationNeighborhoods) -> int:
    """Rows of one table, or of the per-relation tables (all the same)."""
    if isinstance(nb, Neighborhoods):
        return nb.num_nodes
    return next(iter(nb.values())).num_nodes


def _to_csr(nb: Neighborhoods) -> sp.csr_matrix:
    n = nb.num_nodes
    return sp.csr_matrix((np.asarray(nb.weights, np.float64), np.asarray(nb.indices), np.asarray(nb.indptr)),
                         shape=(n, n))


def merge_tables(tables: RelationNeighborhoods) -> Neighborhoods:
    """One table from per-relation tables: each item's neighbours in any relation, with the mean of the
    relations' weights over the relations in which the item has neighbours (so rows sum to 1); a single
    table is returned as it is. Rows sorted by decreasing weight (ties: smaller index). Shapes: every table
    ``(N, N)`` in CSR; the result as well, with ``nnz`` at most the sum of theirs."""
    if isinstance(tables, Neighborhoods):
        return tables
    tabs = list(tables.values())
    total = _to_csr(tabs[0])
    rows_with = (np.diff(np.asarray(tabs[0].indptr)) > 0).astype(np.float64)
    for t in tabs[1:]:
        total = total + _to_csr(t)
        rows_with += np.diff(np.asarray(t.indptr)) > 0
    total = (sp.diags(1.0 / np.maximum(rows_with, 1.0)) @ total).tocsr()
    total.sort_indices()
    n = total.shape[0]
    row = np.repeat(np.arange(n), np.diff(total.indptr))
    order = np.lexsort((total.indices, -total.data, row))
    dtype = np.asarray(tabs[0].indices).dtype
    return Neighborhoods(total.indptr.astype(np.int64), total.indices[order].astype(dtype),
                         total.data[order].astype(np.float32))


def with_isolated_rows(tables: RelationNeighborhoods, n_new: int) -> RelationNeighborhoods:
    """``tables`` (one or per relation) with ``n_new`` empty rows appended (items without edges)."""
    def grow(nb: Neighborhoods) -> Neighborhoods:
        indptr = np.asarray(nb.indptr)
        return Neighborhoods(np.concatenate([indptr, np.full(n_new, indptr[-1], dtype=indptr.dtype)]),
                             nb.indices, nb.weights)

    if isinstance(tables, Neighborhoods):
        return grow(tables)
    return {r: grow(t) for r, t in tables.items()}
