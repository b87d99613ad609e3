"""Exact importance neighbourhoods: the expectation the Monte Carlo sampler estimates."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pinsage import PinSageConfig
from pinsage.graph import InteractionGraph
from pinsage.sampling import ImportanceSampler, exact_neighborhoods, importance_neighborhoods


def _graph(seed: int = 0, n_users: int = 40, n_items: int = 25) -> InteractionGraph:
    rng = np.random.default_rng(seed)
    rows = [(u, i) for u in range(n_users) for i in rng.choice(n_items, rng.integers(1, 6), replace=False)]
    return InteractionGraph.from_pandas(pd.DataFrame(rows, columns=["u", "i"]), "u", "i")


def _dense_expectation(g: InteractionGraph, L: int, r: float) -> np.ndarray:
    A = g.to_scipy().toarray().astype(np.float64)
    A[A > 0] = 1.0
    P = (A.T / A.sum(0)[:, None]) @ (A / A.sum(1)[:, None])
    out, M = np.zeros_like(P), np.eye(len(P))
    for h in range(L):
        M = M @ P
        out += (1 - r) ** h * M
    np.fill_diagonal(out, 0.0)
    return out


@pytest.mark.parametrize("L,r,T", [(3, 0.5, 5), (2, 0.0, 50), (4, 0.2, 3)])
def test_exact_neighborhoods_match_the_dense_expectation(L, r, T):
    g = _graph()
    E = _dense_expectation(g, L, r)
    nb = exact_neighborhoods(g, L, r, T, block=7)
    for s in range(g.num_items):
        idx = nb.indices[nb.indptr[s]:nb.indptr[s + 1]]
        w = nb.weights[nb.indptr[s]:nb.indptr[s + 1]]
        positive = np.flatnonzero(E[s] > 1e-12)
        k = min(T, len(positive))
        assert len(idx) == k
        expected = sorted(positive, key=lambda j: (-E[s, j], j))[:k]
        # the same top set (ties at the cut may swap by rounding), weights in decreasing order summing to 1
        np.testing.assert_allclose(np.sort(E[s, idx]), np.sort(E[s, expected]), rtol=1e-4)
        assert s not in idx and np.all(np.diff(w) <= 1e-7)
        if k:
            assert w.sum() == pytest.approx(1.0, rel=1e-5)
            np.testing.assert_allclose(w, E[s, idx] / E[s, idx].sum(), rtol=1e-4)


def test_monte_carlo_walks_converge_to_the_exact_neighbourhoods():
    g = _graph(seed=1)
    exact = exact_neighborhoods(g, 3, 0.5, 3)
    mc = ImportanceSampler(g, num_walks=20000, walk_length=3, restart_prob=0.5, num_neighbors=3, seed=0).all_neighborhoods()
    agree = [exact.indices[exact.indptr[s]] == mc.indices[mc.indptr[s]] for s in range(g.num_items)
             if exact.indptr[s + 1] > exact.indptr[s]]
    assert np.mean(agree) > 0.9


def test_the_config_chooses_the_method():
    g = _graph(seed=2)
    cfg = PinSageConfig().override(sampler__method="exact", sampler__num_neighbors=4)
    a = importance_neighborhoods(g, cfg.sampler)
    b = exact_neighborhoods(g, cfg.sampler.walk_length, cfg.sampler.restart_prob, 4)
    np.testing.assert_array_equal(a.indices, b.indices)
    auto = importance_neighborhoods(g, PinSageConfig().override(sampler__method="auto", sampler__num_neighbors=4).sampler)
    np.testing.assert_array_equal(auto.indices, b.indices)  # a small catalogue: exact
    walks = importance_neighborhoods(g, PinSageConfig().override(sampler__num_neighbors=4).sampler, seed=0)
    assert walks.indices.dtype == np.int32 and walks.num_nodes == g.num_items
