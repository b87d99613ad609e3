"""Positive pairs: items engaged together."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pinsage._arrays import shrink_rows

if TYPE_CHECKING:
    from pinsage.graph import InteractionGraph

__all__ = ["time_window_pairs", "time_window_pair_times", "co_group_pairs", "walk_pairs", "positive_pairs", "GroupBalancedDraw"]


def _histories(graph: "InteractionGraph") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges in group-CSR order re-sorted by (group, time): ``(group (E,), item (E,), time (E,))``.

    Ties in time keep the CSR order (ascending item index).
    """
    groups = graph.edge_groups().astype(np.int64)
    items = np.asarray(graph.group_items, dtype=np.int64)
    times = np.asarray(graph.edge_time)
    order = np.lexsort((times, groups))
    return groups[order], items[order], times[order]


def _window_steps(graph: "InteractionGraph", window: int):
    """Per offset ``d = 1..window`` of the time-ordered histories: ``(earlier items, later items, their groups,
    the later items' times)`` of the item pairs ``d`` steps apart (one shifted comparison each)."""
    if graph.edge_time is None:
        raise ValueError("the graph has no edge times; use co_group_pairs")
    groups, items, times = _histories(graph)
    for d in range(1, max(1, window) + 1):
        same = groups[d:] == groups[:-d]
        if not same.any():
            break
        yield items[:-d][same], items[d:][same], groups[d:][same], times[d:][same]


def time_window_pairs(graph: "InteractionGraph", window: int,
                      return_groups: bool = False, dtype: type = np.int64) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Pairs of items at most ``window`` steps apart in a group's time-ordered history.

    Returns ``(P, 2)`` int64 ``(query, positive)`` pairs, both directions (and, with
    ``return_groups``, the ``(P,)`` group index of each pair). Vectorised: one shifted comparison
    per offset ``d = 1..window``. Memory ``O(2 * window * E)``. :func:`time_window_pair_times` gives each
    pair's time, in the same order.
    """
    parts, owners = [], []
    for a, b, g, _ in _window_steps(graph, window):
        parts.append(np.stack([a, b], 1).astype(dtype, copy=False))
        parts.append(np.stack([b, a], 1).astype(dtype, copy=False))
        if return_groups:
            owners += [g, g]
    pairs = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=dtype)
    if not return_groups:
        return pairs
    return pairs, (np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64))


def time_window_pair_times(graph: "InteractionGraph", window: int) -> np.ndarray:
    """``(P,)`` the time of each pair of :func:`time_window_pairs` (same order): the time of its later
    interaction, when the pair came to be. Edges at or after it are the pair's future (time-respecting
    training, :mod:`pinsage.train.time_snapshots`)."""
    parts = []
    for _, _, _, t in _window_steps(graph, window):
        parts += [t, t]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.asarray(graph.edge_time).dtype)


def co_group_pairs(graph: "InteractionGraph", rng: np.random.Generator, per_edge: int = 1,
                   chunk: int = 1 << 20,
                   return_groups: bool = False, dtype: type = np.int64) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """For every edge (g, i): ``per_edge`` random other items j of group g -> pairs (i, j).

    One item -> group -> item step. Groups with a single item yield no pair. ``(P, 2)`` int64
    (and, with ``return_groups``, the ``(P,)`` int32 group of each pair).
    Built ``chunk`` edges at a time into one preallocated output (peak memory about the output's
    size: on graph L, 36.7M edges x 5, 2.9 GB instead of ~9 GB of whole-array temporaries); the
    random stream is consumed exactly as by one whole-array draw.
    """
    deg = graph.group_degree
    indptr = np.asarray(graph.group_indptr)
    members = np.asarray(graph.group_items)
    edge_groups = graph.edge_groups()
    out = np.empty((len(members) * per_edge, 2), dtype=dtype)
    owner = np.empty(len(members) * per_edge if return_groups else 0, dtype=np.int32)
    m = 0
    for lo in range(0, len(members), chunk):
        hi = min(lo + chunk, len(members))
        groups = np.repeat(edge_groups[lo:hi].astype(np.int64), per_edge)
        items = np.repeat(members[lo:hi].astype(np.int64), per_edge)
        gdeg = deg[groups]
        keep = gdeg > 1
        groups, items, gdeg = groups[keep], items[keep], gdeg[keep]
        other = members[indptr[groups] + rng.integers(0, gdeg)].astype(np.int64)
        ok = other != items
        k = int(ok.sum())
        out[m:m + k, 0] = items[ok]
        out[m:m + k, 1] = other[ok]
        if return_groups:
            owner[m:m + k] = groups[ok]
        m += k
    pairs = out[:m].copy() if m < len(out) // 2 else shrink_rows(out, m)
    return (pairs, owner[:m].copy()) if return_groups else pairs


def walk_pairs(graph: "InteractionGraph", indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray,
               rng: np.random.Generator, per_edge: int = 1, return_groups: bool = False,
               dtype: type = np.int64) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""For every edge (g, i): ``per_edge`` items j drawn from i's importance neighbourhood -> pairs (i, j).

    :math:`P(j \mid i) = w_{ij}`, the normalised walk visit counts (``(indptr, indices, weights)``: the
    items' neighbourhoods in CSR form), so a query is drawn in proportion to its degree and its
    positives in proportion to how often short walks from it reach them: the relatedness the random-walk
    baselines rank by, as a training signal. Items with an empty neighbourhood yield no pair. The group
    of the edge owns the pair (for the group-balanced draw). ``(P, 2)`` pairs; vectorised with one
    ``searchsorted`` over the cumulative weights.
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    members = np.asarray(graph.group_items, dtype=np.int64)
    owners = graph.edge_groups()
    q = np.repeat(members, per_edge)
    g = np.repeat(owners, per_edge)
    nnz = indptr[q + 1] - indptr[q]
    keep = nnz > 0
    q, g = q[keep], g[keep]
    cum = np.concatenate([[0.0], np.cumsum(weights)])
    lo, hi = cum[indptr[q]], cum[indptr[q + 1]]
    u = lo + rng.random(len(q)) * (hi - lo)
    pos = np.searchsorted(cum, u, side="right") - 1
    pos = np.clip(pos, indptr[q], indptr[q + 1] - 1)
    j = np.asarray(indices, dtype=np.int64)[pos]
    ok = j != q
    pairs = np.stack([q[ok], j[ok]], 1).astype(dtype, copy=False)
    return (pairs, g[ok].astype(np.int32)) if return_groups else pairs


#: ``group_partners: 0`` (auto) pairs each edge's item with this many co-members ...
AUTO_PARTNERS = 10
#: ... while the pool stays under this many pairs (past it, more partners add memory, not variety:
#: an epoch draws 200,000 pairs by default)
AUTO_PARTNER_POOL = 20_000_000


def group_partners_for(num_edges: int, partners: int = 0) -> int:
    """Co-members per edge for untimed pairs: ``partners`` when positive, else
    ``min(AUTO_PARTNERS, max(1, AUTO_PARTNER_POOL // num_edges))`` (10 on Gowalla-3k's 179k edges,
    1 on graph L's 36.7M)."""
    if partners > 0:
        return int(partners)
    return int(min(AUTO_PARTNERS, max(1, AUTO_PARTNER_POOL // max(int(num_edges), 1))))


def positive_pairs(graph: "InteractionGraph", window: int, rng: np.random.Generator,
                   return_groups: bool = False, dtype: type = np.int64,
                   partners: int = 0) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Time-window pairs where the graph has time, else co-group pairs (see those two) with
    :func:`group_partners_for` partners per edge. ``dtype``: of the pairs (int32 halves them)."""
    if graph.edge_time is not None:
        return time_window_pairs(graph, window, return_groups=return_groups, dtype=dtype)
    per_edge = group_partners_for(graph.num_edges, partners)
    return co_group_pairs(graph, rng, per_edge=per_edge, return_groups=return_groups, dtype=dtype)


class GroupBalancedDraw:
    r"""Draws pair indices so that every group's share follows ``balance`` (:math:`\beta`).

    A pair from group :math:`g` is drawn with probability :math:`\propto c_g^{-\beta}`, with
    :math:`c_g` the number of pairs of :math:`g`: 0 draws every pair alike (heavy users and big boards
    dominate), 1 gives every group the same share (as the related-item evaluation counts every user
    once). Drawn in two stages, without a per-pair weight table: a group :math:`g` with probability
    :math:`\propto c_g^{1-\beta}`, then one of its pairs uniformly.

    Memory: ``(G + 1)`` offsets and probabilities, plus a ``(P,)`` int32 permutation only when the
    pairs are not already stored group by group (co-group pairs are; time-window pairs are not).

    Args:
        pair_groups: ``(P,)`` group index of every pair (from ``positive_pairs(..., return_groups=True)``).
        balance: :math:`\beta` in ``[0, 1]``.
    """

    def __init__(self, pair_groups: np.ndarray, balance: float) -> None:
        pair_groups = np.asarray(pair_groups)
        counts = np.bincount(pair_groups).astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.counts = counts
        if len(pair_groups) > 1 and (pair_groups[1:] < pair_groups[:-1]).any():
            index_dtype = np.int32 if len(pair_groups) < 2 ** 31 else np.int64
            self.order: np.ndarray | None = np.argsort(pair_groups, kind="stable").astype(index_dtype)
        else:
            self.order = None
        w = np.zeros(len(counts))
        has = counts > 0
        w[has] = counts[has].astype(np.float64) ** (1.0 - float(balance))
        self.group_probs = w / w.sum()
        self.balance = float(balance)

    def __len__(self) -> int:
        """Number of pairs ``P``."""
        return int(self.offsets[-1])

    def pair_probabilities(self) -> np.ndarray:
        """``(P,)`` probability of each pair per draw (for tests and inspection; O(P) memory)."""
        per_group = np.zeros(len(self.counts))
        has = self.counts > 0
        per_group[has] = self.group_probs[has] / self.counts[has]
        probs_sorted = np.repeat(per_group, self.counts)
        if self.order is None:
            return probs_sorted
        out = np.empty_like(probs_sorted)
        out[self.order] = probs_sorted
        return out

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``(n,)`` int64 pair indices, drawn independently (with replacement)."""
        groups = rng.choice(len(self.counts), n, p=self.group_probs)
        idx = self.offsets[groups] + (rng.random(n) * self.counts[groups]).astype(np.int64)
        return idx if self.order is None else self.order[idx].astype(np.int64)
