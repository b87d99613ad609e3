"""Personalised PageRank on the bipartite graph, for a batch of items, by sparse power iteration."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pinsage.graph import InteractionGraph

__all__ = ["personalized_pagerank", "ppr_rank_window"]


def personalized_pagerank(
    graph: InteractionGraph,
    items: np.ndarray,
    restart_prob: float = 0.15,
    tol: float = 1e-8,
    max_iter: int = 200,
) -> np.ndarray:
    r"""Personalised PageRank scores of every item for each seed item, ``(B, num_items)`` float64.

    The walk runs on the bipartite graph (items and groups are both nodes; each step follows one
    edge, uniformly): with :math:`A` the group x item adjacency, :math:`x` the item and :math:`y` the
    group mass (columns: one per seed :math:`s`),

    .. math::
        x' = \alpha e_s + (1-\alpha) A^\top D_G^{-1} y, \qquad y' = (1-\alpha) A D_I^{-1} x

    with :math:`\alpha` = ``restart_prob``; mass reaching a node without edges returns to the seed
    (networkx's convention with ``dangling=None``). This equals ``networkx.pagerank(G,
    alpha=1-restart_prob, personalization={s: 1})`` restricted to the item nodes, and costs
    ``O(iterations * num_edges * B)``; memory ``O((num_items + num_groups) * B)``, never items x items.
    Scores are returned for items only and are not renormalised.
    """
    items = np.asarray(items, dtype=np.int64)
    n_i, n_g = graph.num_items, graph.num_groups
    A = sp.csr_matrix((np.ones(graph.num_edges), np.asarray(graph.group_items), np.asarray(graph.group_indptr)),
                      shape=(n_g, n_i))
    AT = A.T.tocsr()
    deg_i = graph.item_degree.astype(np.float64)
    deg_g = graph.group_degree.astype(np.float64)
    inv_i = np.divide(1.0, deg_i, out=np.zeros_like(deg_i), where=deg_i > 0)[:, None]
    inv_g = np.divide(1.0, deg_g, out=np.zeros_like(deg_g), where=deg_g > 0)[:, None]
    dangling_i = (deg_i == 0)
    dangling_g = (deg_g == 0)
    B = len(items)
    cols = np.arange(B)
    total = n_i + n_g
    x = np.zeros((n_i, B))
    x[items, cols] = 1.0
    y = np.zeros((n_g, B))
    a = restart_prob
    for _ in range(max_iter):
        lost = x[dangling_i].sum(axis=0) + y[dangling_g].sum(axis=0)
        x_new = (1 - a) * (AT @ (y * inv_g))
        y_new = (1 - a) * (A @ (x * inv_i))
        x_new[items, cols] += a + (1 - a) * lost
        err = np.abs(x_new - x).sum(axis=0) + np.abs(y_new - y).sum(axis=0)
        x, y = x_new, y_new
        if (err < tol * total).all():
            break
    return x.T


def ppr_rank_window(
    graph: InteractionGraph,
    items: np.ndarray,
    start: int,
    stop: int,
    restart_prob: float = 0.15,
    chunk: int | None = None,
    **kwargs,
) -> np.ndarray:
    """Items ranked ``start..stop-1`` (0-based, seed excluded) by PPR from each seed: ``(B, stop-start)`` int64.

    The hard-negative window of PinSage (the paper: ranks 2000-5000). Ties are broken by smaller
    item index. Entries beyond the catalogue are -1. Seeds are processed in chunks so memory stays
    near ``chunk * (num_items + num_groups)`` floats (default: at most 256 seeds and 32M floats).
    """
    items = np.asarray(items, dtype=np.int64)
    n = graph.num_items
    if chunk is None:
        chunk = max(1, min(256, int(32_000_000 // max(n + graph.num_groups, 1))))
    width = stop - start
    out = np.full((len(items), width), -1, dtype=np.int64)
    for lo in range(0, len(items), chunk):
        seeds = items[lo:lo + chunk]
        scores = personalized_pagerank(graph, seeds, restart_prob=restart_prob, **kwargs)
        scores[np.arange(len(seeds)), seeds] = -np.inf
        # descending score, ascending index: lexsort on (index, -score)
        order = np.argsort(-scores, axis=1, kind="stable")
        got = order[:, start:min(stop, n - 1)]
        out[lo:lo + len(seeds), :got.shape[1]] = got
    return out
