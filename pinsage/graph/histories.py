"""Groups' histories: the items of each of a batch of groups (users, boards), oldest first, as CSR.

Recommendations for a user (:meth:`pinsage.ItemIndex.recommend`, :meth:`pinsage.PinSageEmbedder.recommend`,
``pinsage recommend --user``, the server's ``/recommend``) start from the user's items in the training
graph. :func:`group_histories` gathers them for many groups at once with a few vectorised numpy
operations (no Python loop per group or per item):

* with edge times (a ``--time-col``), each history is in time order, ties by item index, so its last
  item is the most recent one;
* without times the graph keeps no order of a group's items (duplicates were merged, and the CSR holds
  them by item index): the order is the item index and carries no recency (:func:`has_order` says which).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pinsage._io import InputError
from pinsage.graph.interaction import InteractionGraph
from pinsage.ids import coerce_ids, head, lookup_keys, py_scalar

__all__ = ["group_rows", "group_histories", "has_order", "items_aligned"]


def group_rows(graph: InteractionGraph, groups: Any, where: str = "user") -> np.ndarray:
    """Dense group indices of original group ids (typed-in strings are coerced to the ids' type).

    Args:
        graph: the interaction graph.
        groups: one group id or a 1-d list of them (``"42"`` finds the integer id 42).
        where: how messages name them.

    Returns:
        int64 group indices.

    Shapes:
        - **groups:** :math:`(q,)` or a scalar (:math:`q = 1`).
        - **output:** :math:`(q,)`.

    Raises:
        InputError: ids that are not groups of the graph (the message names the first few).
    """
    vals = np.asarray(groups, dtype=object).reshape(-1)
    conv, bad = coerce_ids(vals, graph.group_ids)
    rows = graph.group_index(lookup_keys(conv), missing="ignore")  # the graph's cached lookup
    rows[bad] = -1
    missing = rows < 0
    if missing.any():
        unknown = list(pd.unique(np.asarray([str(py_scalar(v)) for v in vals[missing]], dtype=object)))
        one = len(unknown) == 1
        shown = repr(unknown[0]) if one else head(unknown)
        raise InputError(f"unknown {where} id{'' if one else '(s)'} {shown}: not among the "
                         f"{graph.num_groups} {where}s of the run's graph")
    return rows


def has_order(graph: InteractionGraph) -> bool:
    """Whether the graph orders each group's items in time (it has edge times)."""
    return graph.edge_time is not None


def group_histories(graph: InteractionGraph, groups: np.ndarray,
                    max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The items of each group, oldest first, as CSR.

    Args:
        graph: the interaction graph.
        groups: dense group indices (see :func:`group_rows`).
        max_len: keep only the ``max_len`` most recent items of each group (all when None).

    Returns:
        indptr: int64 offsets; group ``u``'s items are ``items[indptr[u]:indptr[u + 1]]``.
        items: int64 dense item indices, in time order within each group when the graph has times
            (ties by item index), else by item index.

    Shapes:
        - **groups:** :math:`(q,)`.
        - **indptr:** :math:`(q + 1,)`.
        - **items:** :math:`(\\sum_u \\min(L_u, \\text{max\\_len}),)`, :math:`L_u` the group's degree.
    """
    groups = np.asarray(groups, dtype=np.int64).reshape(-1)
    starts = np.asarray(graph.group_indptr[groups], dtype=np.int64)
    lens = np.asarray(graph.group_indptr[groups + 1], dtype=np.int64) - starts
    q, total = len(groups), int(lens.sum())
    out_ptr = np.zeros(q + 1, dtype=np.int64)
    np.cumsum(lens, out=out_ptr[1:])
    owner = np.repeat(np.arange(q, dtype=np.int64), lens)
    edge = np.arange(total, dtype=np.int64) - out_ptr[owner] + starts[owner]  # edge positions, CSR order
    if graph.edge_time is not None and total:
        order = np.lexsort((np.asarray(graph.edge_time)[edge], owner))  # by owner, then time (stable)
        edge = edge[order]
    items = np.asarray(graph.group_items[edge], dtype=np.int64)
    if max_len is not None and total:
        back = out_ptr[owner + 1] - 1 - np.arange(total, dtype=np.int64)  # 0 for the most recent
        keep = back < int(max_len)
        items, owner = items[keep], owner[keep]
        out_ptr = np.zeros(q + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=q), out=out_ptr[1:])
    return out_ptr, items


def items_aligned(graph: InteractionGraph, ids: np.ndarray) -> bool:
    """Whether the graph's item ``j`` is row ``j`` of ``ids`` for every graph item (a run's
    ``item_ids.npy`` lists the graph's items first, catalogue items after them)."""
    n = graph.num_items
    if n > len(ids):
        return False
    a = np.asarray(graph.item_ids).astype(str)
    b = np.asarray(ids[:n]).astype(str)
    return bool(np.array_equal(a, b))
