"""Spectral item inputs: the truncated SVD of the degree-normalised interaction matrix."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import pinsage.features.structural as spectral
from pinsage.datasets.synthetic import powerlaw_bipartite
from pinsage.graph import InteractionGraph
from pinsage.features.structural import spectral_item_features


def _graph(n_items: int, n_users: int, draws: int = 40_000) -> InteractionGraph:
    users, items = powerlaw_bipartite(n_items, n_users, draws, seed=0)
    return InteractionGraph.from_edges(users, items, num_groups=n_users, num_items=n_items)


def test_spectral_features_are_the_leading_item_factors():
    g = _graph(3000, 1500)
    E = spectral_item_features(g, 16, seed=0)
    assert E.shape == (3000, 16) and E.dtype == np.float32
    has = g.item_degree > 0
    assert np.allclose(np.linalg.norm(E[has], axis=1), 1, atol=1e-5)
    assert not E[~has].any()                                     # items without groups: zero rows
    assert np.array_equal(E, spectral_item_features(g, 16, seed=0))
    # row i is item i's row of V S (normalised), V S from a dense SVD of X D^-1/2 on this small graph
    X = sp.csr_matrix((np.ones(g.num_edges), g.group_items, g.group_indptr), shape=(1500, 3000)).toarray()
    Xn = X / np.sqrt(np.maximum(g.item_degree.astype(float), 1))
    _, s, vt = np.linalg.svd(Xn, full_matrices=False)
    ref = vt[:16].T * s[:16]
    ref[has] /= np.linalg.norm(ref[has], axis=1, keepdims=True)
    ref *= np.sign((ref * E).sum(0))                             # singular vectors' signs are arbitrary
    assert np.abs(E - ref).max() < 1e-3


@pytest.mark.parametrize("n_items,n_users", [(3000, 1500), (1500, 3000)])
def test_lean_path_matches_svds(monkeypatch, n_items, n_users):
    """The chunked k x k path for large catalogues gives svds' factors (to float32 rounding), with
    groups or items the smaller side, and with chunks smaller than the matrix."""
    g = _graph(n_items, n_users)
    reference = spectral_item_features(g, 16, seed=3)            # below LEAN_MIN_ITEMS: svds
    monkeypatch.setattr(spectral, "LEAN_MIN_ITEMS", 0)
    assert np.abs(spectral_item_features(g, 16, seed=3) - reference).max() < 1e-5
    real = spectral._item_factors_lean
    monkeypatch.setattr(spectral, "_item_factors_lean", lambda *a, **kw: real(*a, chunk=97))
    assert np.abs(spectral_item_features(g, 16, seed=3) - reference).max() < 1e-5
