"""Baseline item-to-item scorers for the related-item protocol (``docs/quality.md``).

Every scorer has ``fit(data)`` — a training DataFrame (with ``user_col``/``item_col``) or a binary
user x item CSR matrix ``X`` of shape (n_users, n_items) — and ``score(query_indices)`` returning a
dense float array of shape (B, n_items). Item-to-item similarity is computed per query batch with
sparse products; only :class:`EASE` builds a dense ``n_items x n_items`` matrix (by its nature).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from pinsage.evaluation.matrix import interaction_matrix

__all__ = [
    "interaction_matrix", "Scorer", "Popularity", "ItemKNN", "RP3beta", "RandomWalkCounts", "PureSVD", "EASE",
    "ContentKNN", "EmbeddingScorer", "make_baseline", "BASELINES",
]


class Scorer:
    """Base class: ``fit`` stores ``X`` (CSR, (n_users, n_items)); subclasses implement ``score``."""

    name = "scorer"
    X: sp.csr_matrix

    def fit(self, data: pd.DataFrame | sp.spmatrix, user_col: str | None = None,
            item_col: str | None = None, item_ids: np.ndarray | None = None) -> "Scorer":
        """Fit on a training DataFrame (needs ``user_col``, ``item_col``) or a user x item sparse matrix."""
        if isinstance(data, pd.DataFrame):
            if user_col is None or item_col is None:
                raise ValueError("fit(DataFrame) needs user_col and item_col")
            X, _, self.item_ids = interaction_matrix(data, user_col, item_col, item_ids)
        else:
            X = sp.csr_matrix(data, dtype=np.float32)
            X.data[:] = 1.0
            self.item_ids = None if item_ids is None else np.asarray(item_ids)
        self.X = X
        self._fit(X)
        return self

    def _fit(self, X: sp.csr_matrix) -> None:  # pragma: no cover - trivial
        pass

    @property
    def n_items(self) -> int:
        return self.X.shape[1]

    def score(self, query_indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, query_indices: np.ndarray) -> np.ndarray:
        return self.score(query_indices)


class Popularity(Scorer):
    """score(q, i) = deg(i), the number of training users of item i (same for every query)."""

    name = "popularity"

    def _fit(self, X: sp.csr_matrix) -> None:
        self.deg = np.asarray(X.sum(axis=0)).ravel().astype(np.float64)

    def score(self, query_indices: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.deg, (len(query_indices), self.n_items)).copy()


class ItemKNN(Scorer):
    """Item-kNN: shrunk cosine on co-occurrence, optionally kept to each item's nearest neighbours.

    With C = XᵀX (co-occurrence counts) and deg = diag(C):

        S[i, j] = C[i, j] / (sqrt(deg_i · deg_j) + shrink),   S[i, i] = 0,

    and, with ``neighbors = k``, S[i, j] is kept only where i is among the k largest entries of
    column j (every item j keeps its k most similar items, as in Dacrema et al.'s ItemKNNCF, where
    a user's score of j sums the column over the history); the rest become 0. A single-item query q
    scores s(q, j) = S[q, j]. ``neighbors=None`` keeps every co-occurring item (plain cosine when
    ``shrink=0``). Per batch: ``Xᵀ[q] @ X`` (sparse, (B, n_items)), densified; never
    ``n_items x n_items`` dense. The column thresholds (k-th largest entry of each item's row, S
    being symmetric) come from one pass over sparse row blocks at ``fit``.
    """

    name = "item-kNN"

    def __init__(self, neighbors: int | None = None, shrink: float = 0.0, block: int = 1024) -> None:
        if neighbors is not None and neighbors < 1:
            raise ValueError(f"ItemKNN: neighbors must be >= 1 or None, got {neighbors!r}")
        if shrink < 0:
            raise ValueError(f"ItemKNN: shrink must be >= 0, got {shrink!r}")
        self.neighbors, self.shrink, self.block = neighbors, float(shrink), int(block)

    def _fit(self, X: sp.csr_matrix) -> None:
        self.Xt = X.T.tocsr()
        self.sqrt_deg = np.sqrt(np.asarray(X.sum(axis=0)).ravel().astype(np.float64))
        self.threshold = None
        if self.neighbors is not None:
            self.threshold = np.zeros(X.shape[1])
            for start in range(0, X.shape[1], self.block):
                rows = np.arange(start, min(start + self.block, X.shape[1]))
                S = self._similarity_sparse(rows)
                self.threshold[rows] = _kth_largest_per_row(S, self.neighbors)

    def _similarity_sparse(self, rows: np.ndarray) -> sp.csr_matrix:
        """S[rows] as a sparse (len(rows), n_items) matrix with the diagonal removed."""
        C = (self.Xt[rows] @ self.X).tocoo()
        keep = C.col != rows[C.row]
        r, c, v = C.row[keep], C.col[keep], C.data[keep].astype(np.float64)
        v = v / (self.sqrt_deg[rows][r] * self.sqrt_deg[c] + self.shrink)
        return sp.csr_matrix((v, (r, c)), shape=(len(rows), self.X.shape[1]))

    def score(self, query_indices: np.ndarray) -> np.ndarray:
        q = np.asarray(query_indices, dtype=np.int64)
        S = self._similarity_sparse(q).toarray()  # (B, n_items)
        if self.threshold is not None:
            S[S < self.threshold[None, :]] = 0.0
        return S


def _kth_largest_per_row(S: sp.csr_matrix, k: int) -> np.ndarray:
    """The k-th largest stored value of each row of ``S`` (shape (n_rows,)); 0 where a row stores fewer."""
    n = S.shape[0]
    counts = np.diff(S.indptr)
    row = np.repeat(np.arange(n), counts)
    order = np.lexsort((-S.data, row))  # by row, then value descending
    out = np.zeros(n)
    has = counts >= k
    out[has] = S.data[order][S.indptr[:-1][has] + k - 1]
    return out


class RP3beta(Scorer):
    """RP3beta (Paudel et al. 2017; as in Dacrema et al., RecSys 2019): a 3-step walk, re-weighted.

    With ``P_ui`` the row-normalised user x item matrix and ``P_iu`` the row-normalised item x user
    matrix, powers taken element-wise,

        W = (P_iu^α) (P_ui^α),      s(q, j) = W[q, j] / deg(j)^β,

    deg(j) the number of training users of j. α < 1 flattens the transition probabilities; β > 0
    lowers popular items. For a binary X, ``P_iu^α[i, u] = deg(i)^-α`` and
    ``P_ui^α[u, j] = deg(u)^-α`` on the stored entries. Per batch: a (B, n_users) x
    (n_users, n_items) sparse product, densified; W is never formed.
    """

    name = "RP3beta"

    def __init__(self, alpha: float = 1.0, beta: float = 0.0) -> None:
        if alpha <= 0:
            raise ValueError(f"RP3beta: alpha must be > 0, got {alpha!r}")
        if beta < 0:
            raise ValueError(f"RP3beta: beta must be >= 0, got {beta!r}")
        self.alpha, self.beta = float(alpha), float(beta)

    def _fit(self, X: sp.csr_matrix) -> None:
        X = X.astype(np.float64)
        du = np.maximum(np.asarray(X.sum(axis=1)).ravel(), 1.0)
        di = np.maximum(np.asarray(X.sum(axis=0)).ravel(), 1.0)
        self.P_iu = (sp.diags(di ** -self.alpha) @ X.T).tocsr()   # (n_items, n_users)
        self.P_ui = (sp.diags(du ** -self.alpha) @ X).tocsr()     # (n_users, n_items)
        self.col_scale = di ** -self.beta

    def score(self, query_indices: np.ndarray) -> np.ndarray:
        q = np.asarray(query_indices, dtype=np.int64)
        return (self.P_iu[q] @ self.P_ui).toarray() * self.col_scale[None, :]


class ContentKNN(Scorer):
    """Cosine over item content features: s(q, j) = F_q · F_j / (|F_q| |F_j|).

    ``features``: (n_items, f) dense array, row i for column i of the interaction matrix (e.g.
    :meth:`pinsage.ItemFeatureEncoder.fit_transform` on the items' table with the split's item ids).
    It ignores the interactions, so it ranks items nobody has engaged with yet: the anchor for
    cold items. Items with an all-zero row score 0 against everything.
    """

    name = "content-kNN"

    def __init__(self, features: np.ndarray) -> None:
        F = np.asarray(features, dtype=np.float64)
        if F.ndim != 2:
            raise ValueError(f"ContentKNN: features must be 2-D (n_items, f), got shape {F.shape}")
        if not np.isfinite(F).all():
            raise ValueError("ContentKNN: features contain NaN or inf")
        self.features = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)

    def _fit(self, X: sp.csr_matrix) -> None:
        if X.shape[1] != self.features.shape[0]:
            raise ValueError(f"ContentKNN: {self.features.shape[0]} feature rows for {X.shape[1]} items")

    def score(self, query_indices: np.ndarray) -> np.ndarray:
        return self.features[np.asarray(query_indices)] @ self.features.T


class RandomWalkCounts(Scorer):
    """Expected visit counts of random walks with restart from the query item.

    One step is an item -> user -> item hop with uniform choices: the item-to-item transition
    matrix is ``P = D_I⁻¹ Xᵀ D_U⁻¹ X`` (D_I, D_U: item and user degree diagonals), never formed.
    Each walk, before every step, ends (and a fresh walk restarts at the query) with probability
    ``restart``; a walk takes at most ``max_steps`` steps (PinSage / DGL's PinSAGESampler
    convention: termination probability, ``num_traversals`` hops). The expected number of visits
    to item i per walk is

        s(q, ·) = Σ_{t=1..L} (1 - restart)^t · e_q Pᵗ,

    computed exactly with sparse matrix-vector products on a (B, n_items) block; the sum stops
    early once the remaining mass (1 - restart)^t falls under ``tol``. ``max_steps=None`` means
    "until the mass is below ``tol``" (a personalised-PageRank-like kernel).
    """

    name = "random-walk counts"

    def __init__(self, restart: float = 0.5, max_steps: int | None = 3, tol: float = 1e-6) -> None:
        if not 0.0 <= restart < 1.0:
            raise ValueError(f"RandomWalkCounts: restart must be in [0, 1), got {restart!r}")
        if max_steps is None and restart == 0.0:
            raise ValueError("RandomWalkCounts: restart 0 needs a finite max_steps (the sum would not end)")
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"RandomWalkCounts: max_steps must be >= 1 or None, got {max_steps!r}")
        self.restart, self.max_steps, self.tol = restart, max_steps, tol

    def _fit(self, X: sp.csr_matrix) -> None:
        X = X.astype(np.float64)
        du = np.asarray(X.sum(axis=1)).ravel()
        di = np.asarray(X.sum(axis=0)).ravel()
        # item -> user: row-stochastic (n_items, n_users); user -> item: (n_users, n_items)
        self.A = (sp.diags(1.0 / np.maximum(di, 1.0)) @ X.T).tocsr()
        self.Bm = (sp.diags(1.0 / np.maximum(du, 1.0)) @ X).tocsr()
        self.AT, self.BT = self.A.T.tocsr(), self.Bm.T.tocsr()

    def score(self, query_indices: np.ndarray) -> np.ndarray:
        q = np.asarray(query_indices, dtype=np.int64)
        v = np.zeros((self.n_items, len(q)))  # column b = distribution of walk b (transposed)
        v[q, np.arange(len(q))] = 1.0
        out = np.zeros_like(v)
        keep, t = 1.0, 0
        while True:
            t += 1
            keep *= 1.0 - self.restart
            if (self.max_steps is not None and t > self.max_steps) or keep < self.tol:
                break
            v = self.BT @ (self.AT @ v)  # v ← (v P)ᵀ : (n_items, B)
            out += keep * v
        return out.T


class PureSVD(Scorer):
    """PureSVD on the degree-normalised matrix ``X D⁻¹ᐟ²`` (D = item degree diagonal).

    ``X D⁻¹ᐟ² ≈ U S Vᵀ`` (truncated, ``factors`` singular triplets via ``scipy.sparse.linalg.svds``);
    item embeddings ``E = V S`` (n_items, factors), L2-normalised; s(q, i) = cos(E_q, E_i).
    """

    name = "PureSVD"

    def __init__(self, factors: int = 64, seed: int = 0) -> None:
        self.factors, self.seed = factors, seed

    def _fit(self, X: sp.csr_matrix) -> None:
        deg = np.asarray(X.sum(axis=0)).ravel().astype(np.float64)
        Xn = (X.astype(np.float64) @ sp.diags(1.0 / np.sqrt(np.maximum(deg, 1.0)))).tocsr()
        k = min(self.factors, min(Xn.shape) - 1)
        rng = np.random.default_rng(self.seed)
        v0 = rng.standard_normal(min(Xn.shape))
        _, s, vt = spla.svds(Xn, k=k, v0=v0)
        order = np.argsort(-s)
        E = vt[order].T * s[order]
        self.embeddings = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)

    def score(self, query_indices: np.ndarray) -> np.ndarray:
        return self.embeddings[np.asarray(query_indices)] @ self.embeddings.T


class EASE(Scorer):
    """EASE (Steck 2019), closed form, scored with the single query item as input.

    ``G = XᵀX + λI``, ``P = G⁻¹``, ``B = -P / diag(P)`` column-wise with ``diag(B) = 0``;
    s(q, ·) = B[q, :]. Dense (n_items, n_items): raises ``ValueError`` above ``max_items``.

    Default ``l2 = 10000``: chosen on the ML-100K *validation* split (λ in 30..30000; best 10000,
    HR@10 0.184 there). λ scales with the data (roughly with item degrees): tune it on
    ``leave_last_out(..., validation=True)`` for other data. An EASE row of HR@10 0.116 seen earlier
    matches λ ≈ 50 on the test split, i.e. an under-regularised EASE.
    """

    name = "EASE"

    def __init__(self, l2: float = 10000.0, max_items: int = 30000) -> None:
        self.l2, self.max_items = l2, max_items

    def _fit(self, X: sp.csr_matrix) -> None:
        n = X.shape[1]
        if n > self.max_items:
            raise ValueError(f"EASE needs a dense {n} x {n} matrix; n_items={n} exceeds max_items={self.max_items}")
        G = (X.T @ X).toarray().astype(np.float64)
        G[np.diag_indices(n)] += self.l2
        P = np.linalg.inv(G)
        B = P / (-np.diag(P))[None, :]
        B[np.diag_indices(n)] = 0.0
        self.B = B

    def score(self, query_indices: np.ndarray) -> np.ndarray:
        return self.B[np.asarray(query_indices)]


class EmbeddingScorer(Scorer):
    """Dot-product scores from item embeddings E (n_items, d): s(q, i) = E_q · E_i.

    This is how PinSage's output is evaluated. ``normalize=True`` uses cosine instead.
    ``fit`` is a no-op (accepted for interface symmetry).
    """

    name = "embeddings"

    def __init__(self, embeddings: np.ndarray, normalize: bool = False) -> None:
        E = np.asarray(embeddings, dtype=np.float32)
        if E.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (n_items, d), got shape {E.shape}")
        if normalize:
            E = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
        self.embeddings = E

    def fit(self, data=None, user_col=None, item_col=None, item_ids=None) -> "EmbeddingScorer":
        return self

    @property
    def n_items(self) -> int:
        return self.embeddings.shape[0]

    def score(self, query_indices: np.ndarray) -> np.ndarray:
        return self.embeddings[np.asarray(query_indices)] @ self.embeddings.T


BASELINES: dict[str, type[Scorer]] = {
    "popularity": Popularity,
    "itemknn": ItemKNN,
    "rp3beta": RP3beta,
    "rwc": RandomWalkCounts,
    "puresvd": PureSVD,
    "ease": EASE,
    "contentknn": ContentKNN,
}


def make_baseline(name: str, **kwargs) -> Scorer:
    """Build a baseline by name: one of ``BASELINES`` (case-insensitive, '-'/'_' ignored)."""
    key = name.lower().replace("-", "").replace("_", "")
    aliases = {"pop": "popularity", "knn": "itemknn", "randomwalk": "rwc", "randomwalkcounts": "rwc",
               "svd": "puresvd", "rp3": "rp3beta", "content": "contentknn"}
    key = aliases.get(key, key)
    if key not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    return BASELINES[key](**kwargs)
