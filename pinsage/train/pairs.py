"""Positive pairs: items engaged together."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pinsage.graph import InteractionGraph

__all__ = ["time_window_pairs", "co_group_pairs", "positive_pairs"]


def _histories(graph: "InteractionGraph") -> tuple[np.ndarray, np.ndarray]:
    """Edges in group-CSR order re-sorted by (group, time): ``(group (E,), item (E,))``.

    Ties in time keep the CSR order (ascending item index).
    """
    groups = graph.edge_groups().astype(np.int64)
    items = np.asarray(graph.group_items, dtype=np.int64)
    order = np.lexsort((np.asarray(graph.edge_time), groups))
    return groups[order], items[order]


def time_window_pairs(graph: "InteractionGraph", window: int) -> np.ndarray:
    """Pairs of items at most ``window`` steps apart in a group's time-ordered history.

    Returns ``(P, 2)`` int64 ``(query, positive)`` pairs, both directions. Vectorised: one shifted
    comparison per offset ``d = 1..window``. Memory ``O(2 * window * E)``.
    """
    if graph.edge_time is None:
        raise ValueError("the graph has no edge times; use co_group_pairs")
    groups, items = _histories(graph)
    parts = []
    for d in range(1, max(1, window) + 1):
        same = groups[d:] == groups[:-d]
        if not same.any():
            break
        a, b = items[:-d][same], items[d:][same]
        parts.append(np.stack([a, b], 1))
        parts.append(np.stack([b, a], 1))
    return np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)


def co_group_pairs(graph: "InteractionGraph", rng: np.random.Generator, per_edge: int = 1) -> np.ndarray:
    """For every edge (g, i): ``per_edge`` random other items j of group g -> pairs (i, j).

    One item -> group -> item step. Groups with a single item yield no pair. ``(P, 2)`` int64.
    """
    deg = graph.group_degree
    groups = np.repeat(graph.edge_groups().astype(np.int64), per_edge)
    items = np.repeat(np.asarray(graph.group_items, dtype=np.int64), per_edge)
    gdeg = deg[groups]
    keep = gdeg > 1
    groups, items, gdeg = groups[keep], items[keep], gdeg[keep]
    other = np.asarray(graph.group_items, dtype=np.int64)[
        graph.group_indptr[groups] + rng.integers(0, gdeg)]
    ok = other != items
    return np.stack([items[ok], other[ok]], 1)


def positive_pairs(graph: "InteractionGraph", window: int, rng: np.random.Generator) -> np.ndarray:
    """Time-window pairs where the graph has time, else co-group pairs."""
    if graph.edge_time is not None:
        return time_window_pairs(graph, window)
    return co_group_pairs(graph, rng, per_edge=max(1, window // 2))
