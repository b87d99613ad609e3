"""Negatives: a shared pool of easy negatives, and hard negatives from a PPR rank window."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pinsage.sampling.ppr import ppr_rank_window

if TYPE_CHECKING:
    from pinsage.graph import InteractionGraph

__all__ = ["hard_negative_table", "curriculum_hard_count", "rank_window"]

#: hard-negative candidates kept per item (a random subset of the rank window when it is wider)
MAX_CANDIDATES = 64


def rank_window(num_items: int, fractions: tuple[float, float], minimum: tuple[int, int]) -> tuple[int, int]:
    """The PPR rank window ``[lo, hi)`` scaled to the catalogue: ``fractions`` of ``num_items``,
    at least ``minimum``, at most ``num_items - 1``. The paper's 2000-5000 of billions is a tiny
    fraction; on small catalogues the floor keeps the window away from the true positives."""
    lo = max(int(fractions[0] * num_items), minimum[0])
    hi = max(int(fractions[1] * num_items), minimum[1], lo + 1)
    hi = min(hi, num_items - 1)
    lo = min(lo, max(hi - 1, 0))
    return lo, hi


def hard_negative_table(
    graph: "InteractionGraph",
    window: tuple[int, int],
    rng: np.random.Generator,
    restart_prob: float = 0.15,
    max_candidates: int = MAX_CANDIDATES,
) -> np.ndarray:
    """``(num_items, C)`` int64 hard-negative candidates per item: items ranked ``window`` by
    personalised PageRank from it (``-1`` pads). Computed once, in chunks of seeds (see
    :func:`pinsage.sampling.ppr_rank_window`); ``C = min(hi - lo, max_candidates)``."""
    lo, hi = window
    items = np.arange(graph.num_items)
    table = ppr_rank_window(graph, items, lo, hi, restart_prob=restart_prob, tol=1e-6, max_iter=50)
    if table.shape[1] > max_candidates:
        cols = np.sort(rng.choice(table.shape[1], max_candidates, replace=False))
        table = table[:, cols]
    return table


def curriculum_hard_count(epoch: int, cap: int) -> int:
    """Hard negatives per pair at 1-based ``epoch``: ``min(epoch - 1, cap)`` (the paper's curriculum)."""
    return max(0, min(epoch - 1, cap))
