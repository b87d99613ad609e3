"""Structural item features from the interaction graph: a truncated SVD of the degree-normalised
group x item matrix (the PureSVD item factors), used as node inputs where content is scarce, its
fold-in for a changed catalogue, and the standardised log degree."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

if TYPE_CHECKING:
    from pinsage.graph import InteractionGraph

from typing import Any

__all__ = ["spectral_item_features", "fold_in_spectral", "log_degree_feature", "LEAN_MIN_ITEMS"]

#: from this many items on, the item factors come from a k x k eigenproblem formed chunk by chunk
#: instead of scipy's dense SVD of the ``(items, k)`` product (which holds about three float64 copies
#: of it at once: ~3 GB at graph L's 2M items, the peak of ``pinsage train`` there). Below it,
#: ``svds`` as is (so results on small catalogues do not move).
LEAN_MIN_ITEMS = 250_000


def spectral_item_features(graph: "InteractionGraph", dim: int = 64, seed: int = 0) -> np.ndarray:
    r"""``(num_items, dim)`` float32 unit rows of :math:`V S` where
    :math:`X D_I^{-1/2} \approx U S V^\top` (rank ``dim``, ``scipy.sparse.linalg.svds``; from
    :data:`LEAN_MIN_ITEMS` rows or columns on, the same Lanczos run with a chunked Ritz step, see
    ``_item_factors_lean``).

    :math:`X` is the binary group x item matrix and :math:`D_I` the item degrees: the
    normalisation keeps popular items from owning the leading factors. Items without groups get
    zero rows. Cost: a Lanczos run on the sparse matrix, ``O(iterations * (num_edges * dim))``;
    no dense matrix of the graph's size. Deterministic for a given ``seed``.
    """
    n_i, n_g = graph.num_items, graph.num_groups
    k = int(min(dim, min(n_i, n_g) - 1))
    if k < 1:
        return np.zeros((n_i, dim), dtype=np.float32)
    deg = graph.item_degree.astype(np.float64)
    scale = np.divide(1.0, np.sqrt(deg), out=np.zeros_like(deg), where=deg > 0)
    # X D^-1/2 built directly (entry (g, i) = deg_i^-1/2) on the graph's own index arrays: no binary
    # X and no product copy (graph L: ~0.9 GB less at the SVD's peak)
    items = np.asarray(graph.group_items)
    indptr = np.asarray(graph.group_indptr)
    if items.dtype == np.int32 and graph.num_edges <= np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    Xn = sp.csr_matrix((scale[items], items, indptr), shape=(n_g, n_i))
    v0 = np.random.default_rng(seed).standard_normal(min(Xn.shape))
    if max(n_i, n_g) >= LEAN_MIN_ITEMS:       # svds' Ritz step is a dense SVD of (larger side, k)
        E = _item_factors_lean(Xn, graph, scale, k, v0)
    else:
        _, s, vt = spla.svds(Xn, k=k, v0=v0)
        order = np.argsort(-s)
        E = (vt[order].T * s[order]).astype(np.float32)
    chunk = 1 << 18
    for a in range(0, n_i, chunk):              # unit rows, chunk by chunk (no N x k temporaries)
        rows = E[a:a + chunk]
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    E[deg == 0] = 0                             # no groups: zero rows (svds leaves rounding noise)
    # fix each factor's sign (svds' signs are arbitrary): largest-magnitude entry positive
    top = np.zeros(k)
    for a in range(0, n_i, chunk):
        rows = E[a:a + chunk]
        arg = np.abs(rows).argmax(0)
        val = rows[arg, np.arange(k)]
        better = np.abs(val) > np.abs(top)
        top[better] = val[better]
    signs = np.sign(top)
    E *= np.where(signs == 0, 1, signs).astype(np.float32)
    if k < dim:
        E = np.pad(E, ((0, 0), (0, dim - k)))
    return E


def _item_factors_lean(Xn: sp.csr_matrix, graph: "InteractionGraph", scale: np.ndarray, k: int,
                       v0: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    r"""``(num_items, k)`` float32 :math:`V S` of ``Xn`` (groups x items), largest singular value
    first, without dense temporaries of the larger side's size.

    The same Lanczos run as ``scipy.sparse.linalg.svds`` (``eigsh`` of the Gram operator on the
    smaller side, orthonormalised), then the Rayleigh-Ritz step that ``svds`` does by a dense SVD of
    the ``(larger side, k)`` product is done on its ``k x k`` Gram matrix instead, accumulated in
    chunks: with :math:`U` the group-side vectors, :math:`A = X^\top U`, :math:`A^\top A = W
    \Lambda W^\top` gives :math:`V S = A W`, :math:`S = \Lambda^{1/2}` (and symmetrically when items
    are the smaller side). Item rows of :math:`X^\top` come from the graph's item-side CSR.
    """
    n_g, n_i = Xn.shape
    if n_g < n_i:   # groups are the smaller side: U from X X^T, then A = X^T U, item rows in chunks
        op = spla.LinearOperator((n_g, n_g), matvec=lambda x: Xn @ (Xn.T @ x),
                                 matmat=lambda x: Xn @ (Xn.T @ x), dtype=np.float64)
        _, U = spla.eigsh(op, k=k, tol=0, which="LM", v0=v0)
        U, _ = np.linalg.qr(U)
        indptr, groups = np.asarray(graph.item_indptr), np.asarray(graph.item_groups)
        deg = np.diff(indptr)

        def item_rows(a: int, b: int) -> np.ndarray:
            lo, hi = int(indptr[a]), int(indptr[b])
            Xt = sp.csr_matrix((np.repeat(scale[a:b], deg[a:b]), groups[lo:hi], indptr[a:b + 1] - lo),
                               shape=(b - a, n_g))
            return Xt @ U

        G = np.zeros((k, k))
        for a in range(0, n_i, chunk):
            A = item_rows(a, min(a + chunk, n_i))
            G += A.T @ A
        _, W = _ritz(G)
        E = np.empty((n_i, k), dtype=np.float32)
        for a in range(0, n_i, chunk):
            b = min(a + chunk, n_i)
            E[a:b] = item_rows(a, b) @ W
    else:           # items are the smaller side: V from X^T X, then A = X V over group rows
        op = spla.LinearOperator((n_i, n_i), matvec=lambda x: Xn.T @ (Xn @ x),
                                 matmat=lambda x: Xn.T @ (Xn @ x), dtype=np.float64)
        _, V = spla.eigsh(op, k=k, tol=0, which="LM", v0=v0)
        V, _ = np.linalg.qr(V)
        G = np.zeros((k, k))
        for a in range(0, n_g, chunk):
            A = Xn[a:a + chunk] @ V
            G += A.T @ A
        lam, W = _ritz(G)
        W = W * np.sqrt(np.maximum(lam, 0))                             # V S = V W diag(s)
        E = np.empty((n_i, k), dtype=np.float32)
        for a in range(0, n_i, chunk):
            E[a:a + chunk] = V[a:a + chunk] @ W
    return E


def _ritz(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of the ``k x k`` Gram matrix ``G``, largest first."""
    lam, W = np.linalg.eigh(G)
    order = np.argsort(-lam, kind="stable")
    return lam[order], np.ascontiguousarray(W[:, order])


def fold_in_spectral(trained: np.ndarray, known_rows: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
                     weights: np.ndarray) -> np.ndarray:
    r"""Spectral inputs for a changed catalogue without a new SVD (whose basis would differ).

    ``trained``: ``(n_old, dim)`` rows from training; ``known_rows``: ``(n,)`` row of each new-graph
    item in ``trained`` or -1; ``(indptr, indices, weights)``: the new graph's importance
    neighbourhoods. Known items keep their rows; a new item gets the normalised importance-weighted
    mean :math:`\sum_j w_{ij} e_j` over its known neighbours (zeros when it has none).
    """
    n, dim = len(known_rows), trained.shape[1]
    out = np.zeros((n, dim), dtype=np.float32)
    known = known_rows >= 0
    out[known] = trained[known_rows[known]]
    rows = np.repeat(np.arange(n), np.diff(indptr))
    src = known_rows[indices]
    use = (~known[rows]) & (src >= 0)
    A = sp.csr_matrix((weights[use], (rows[use], src[use])), shape=(n, trained.shape[0]))
    mean = np.asarray(A @ trained, dtype=np.float32)
    norm = np.linalg.norm(mean, axis=1, keepdims=True)
    new = ~known
    out[new] = mean[new] / np.maximum(norm[new], 1e-12)
    return out


def log_degree_feature(degrees: Any, reference: Any = None) -> np.ndarray:
    """The log-degree node feature: ``log1p(degree)`` standardised to mean 0, std 1 over the items.

    ``degrees`` is the items' degree (interaction count) in the graph's item order. ``reference``: the
    degrees whose mean and standard deviation standardise (default ``degrees`` itself), so that items
    added later (a catalogue's items without interactions, degree 0) are placed on the training scale.
    Returns float32 of shape ``(n, 1)``. When every reference degree is equal the feature is all zeros.
    """
    d = np.asarray(degrees, dtype=np.float64).reshape(-1)
    r = d if reference is None else np.asarray(reference, dtype=np.float64).reshape(-1)
    for arr in (d, r):
        if len(arr) and (not np.all(np.isfinite(arr)) or arr.min() < 0):
            raise ValueError("degrees must be finite and non-negative")
    x = np.log1p(d)
    if len(x) == 0:
        return np.zeros((0, 1), dtype=np.float32)
    ref = np.log1p(r)
    mean = ref.mean() if len(ref) else 0.0
    std = ref.std() if len(ref) else 0.0
    x = (x - mean) / std if std > 1e-12 else np.zeros_like(x)
    return x.astype(np.float32).reshape(-1, 1)
