"""Exact random-walk-with-restart visit expectations on small graphs (dense, test sizes only), and the
Monte Carlo check against them, shared by the uniform and the weighted sampler tests."""
from __future__ import annotations

import numpy as np


def dense_weights(g, w) -> np.ndarray:
    """``(groups, items)`` matrix of per-edge step weights ``w`` (group-CSR order; a scalar: every edge)."""
    A = np.zeros((g.num_groups, g.num_items))
    A[np.repeat(np.arange(g.num_groups), g.group_degree), g.group_items] = w
    return A


def exact_weighted_visits(A: np.ndarray, s: int, L: int, r: float) -> np.ndarray:
    """E[visits to j per walk] = sum_h (1-r)^(h-1) P^h[s, j] of the walk item -> group -> item stepping in
    proportion to A's entries; the seed itself not counted."""
    di, dg = A.sum(0), A.sum(1)
    Pig = np.divide(A.T, di[:, None], out=np.zeros_like(A.T), where=di[:, None] > 0)
    Pgi = np.divide(A, dg[:, None], out=np.zeros_like(A), where=dg[:, None] > 0)
    P = Pig @ Pgi
    x = np.zeros(A.shape[1])
    x[s] = 1
    out = np.zeros_like(x)
    for h in range(1, L + 1):
        x = x @ P
        out += (1 - r) ** (h - 1) * x
    out[s] = 0
    return out


def assert_visits_match(nb, seeds, expected_of, n_items: int, walks: int, L: int) -> None:
    """Each seed's visit frequencies (``nb``: SampledNeighborhoods of ``seeds`` with every visited item kept)
    within 6 sigma (per-walk visits lie in [0, L], so Var <= L * E) plus a small floor of
    ``expected_of(seed)``."""
    for b, s in enumerate(seeds):
        lo, hi = nb.offsets[b].item(), nb.offsets[b + 1].item()
        freq = np.zeros(n_items)
        freq[nb.indices[lo:hi].numpy()] = nb.counts[lo:hi].numpy() / walks
        expected = expected_of(s)
        tol = 6 * np.sqrt(L * expected / walks) + 1e-4
        assert (np.abs(freq - expected) <= tol).all(), (s, np.abs(freq - expected).max())
