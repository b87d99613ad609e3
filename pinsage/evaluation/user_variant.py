"""The protocol's user variant: recommending from a user's whole history (``docs/quality.md``).

The related-item protocol (:func:`~pinsage.evaluation.leave_last_out`) gives each test user a
**query** (the item before the last) and a **target** (the last item); both leave the training graph.
The user variant keeps that split and the training graph unchanged and changes only the query: it is
the user's whole history,

    history = the user's training items, in the split's order (time, file order breaking ties; the
    file order without time), then the query item, last (the most recent).

So the history is everything the user did before the target, and the same trained model serves both
variants. Every method scores the full catalogue (the training items) for the history; the history's
items are excluded from the ranking (the target never is: a user's items are distinct, and the target
is not among the training items or the query). HR@k, NDCG@k and MRR come per user
(:func:`evaluate_user_variant`), so :func:`~pinsage.evaluation.compare_per_user` pairs two methods on
``test_row``. A test user is evaluated when the target is in the catalogue and at least one history
item is (a query outside the catalogue just drops out of the history).

The baselines score a history as the **sum over its rows** of their item-to-item scores,
``s(u, j) = sum_{i in history(u)} s(i, j)``: a batch of histories as a sparse ``(B, n_items)``
indicator matrix ``H`` times the item-item matrix, never a Python loop over items
(:func:`history_scorer`):

==============  ======================================================================
popularity      ``L deg(j)``, ``L`` the history's length (ranked as ``deg(j)`` for every history)
item-kNN        ``H S``, ``S`` the (column-top-k, shrunk) cosine of :class:`~pinsage.evaluation.ItemKNN`, sparse
RP3beta         ``((H P_iu^a) P_ui^a) / deg^b``: the walk matrix W is never formed
EASE            ``H B`` (dense ``B``; only where ``n_items <= max_items``)
RWC             the random-walk sum started from ``H``'s rows (linear in the start vector)
PureSVD         ``(H E) Eᵀ``
==============  ======================================================================

and they are tuned on the validation split of this variant (:func:`tune_user_baselines`) over the
grids of :data:`~pinsage.evaluation.GRIDS` (widened at three edges: :data:`USER_GRIDS`), chosen as
:func:`~pinsage.evaluation.tune_baseline` chooses (by HR@10, ties by NDCG@10, then grid order). With
``half_life`` the rows are weighted by recency instead, ``2^(-steps back / h)`` as ``recommend()``
weighs its mean: a diagnostic beside the variant's plain sum.

PinSage is scored through its recommendations: :func:`embedding_history_fn` gives the full-catalogue
score of ``recommend(method="recency")`` (the recency-weighted mean of the history's embeddings, dot
the candidates), and :func:`index_recommend_fn` calls :meth:`pinsage.ItemIndex.recommend` itself (any
method, ``"interests"`` included), whose top-``k`` lists :func:`evaluate_user_lists` scores.

Example:
    >>> import pandas as pd
    >>> from pinsage.evaluation import leave_last_out
    >>> df = pd.DataFrame({"user": [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2],
    ...                    "item": [1, 2, 3, 4, 3, 4, 1, 4, 3, 2, 1],
    ...                    "ts":   [1, 2, 3, 4, 1, 2, 3, 1, 2, 3, 4]})
    >>> uh = user_histories(leave_last_out(df, "user", "item", time_col="ts"))
    >>> h = uh.histories
    >>> [uh.item_ids[h.rows[a:b]].tolist() for a, b in zip(h.indptr[:-1], h.indptr[1:])]  # the query last
    [[1, 2, 3], [3, 4], [4, 3, 2]]
    >>> uh.item_ids[uh.targets].tolist()
    [4, 1, 1]
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pinsage.evaluation.baselines import (
    EASE, ContentKNN, EmbeddingScorer, ItemKNN, Popularity, PureSVD, RandomWalkCounts, RP3beta, Scorer,
    make_baseline,
)
from pinsage.evaluation.metrics import per_user_values, rank_targets
from pinsage.evaluation.split import Split
from pinsage.evaluation.tuning import GRIDS, TUNED_METHODS, TuneResult, grid_points
from pinsage.index.histories import Histories, recency_weights, weighted_means

__all__ = [
    "UserHistories", "user_histories", "HistoryScoreFn", "HistoryListFn", "evaluate_user_variant",
    "evaluate_user_lists", "history_scorer", "sum_of_rows", "itemknn_similarity", "similarity_history_fn",
    "USER_GRIDS", "tune_user_baselines", "embedding_history_fn", "index_recommend_fn",
]

#: The item protocol's grids (:data:`~pinsage.evaluation.GRIDS`), widened once, before any test look, where
#: the user variant's first validation search on MovieLens-100K chose an edge (EASE lambda 50, RP3beta
#: alpha 0.1, PureSVD 512 factors): a sum over a long history wants less regularisation than one item.
#: (RP3beta then chose alpha 0.02, near its alpha -> 0 limit of plain co-occurrence counts, and PureSVD
#: 1024 factors, close to MovieLens' 1,676 items; both stay well below the best baseline.)
USER_GRIDS: dict[str, dict[str, list[Any]]] = {
    **{m: {k: list(v) for k, v in g.items()} for m, g in GRIDS.items()},
    "ease": {"l2": [5.0, 10.0, 20.0, *GRIDS["ease"]["l2"]]},
    "rp3beta": {"alpha": [0.02, 0.05, *GRIDS["rp3beta"]["alpha"]], "beta": list(GRIDS["rp3beta"]["beta"])},
    "puresvd": {"factors": [*GRIDS["puresvd"]["factors"], 1024]},
}

#: ``fn(histories) -> (B, n_items)`` scores, ``histories`` a batch of :class:`Histories` over catalogue columns
HistoryScoreFn = Callable[[Histories], np.ndarray]
#: ``fn(histories, k) -> (B, k)`` catalogue columns, best first, ``-1`` padding
HistoryListFn = Callable[[Histories, int], np.ndarray]


@dataclass(frozen=True)
class UserHistories:
    """The evaluable test users of a split, each with a history and a target (see the module docstring).

    Attributes:
        test_rows: the row of ``split.test`` of each user (pairs per-user tables across methods).
        users: the users' original ids.
        histories: each user's history as catalogue columns, oldest first (the query last).
        targets: each user's target as a catalogue column.
        item_ids: the catalogue: original item id of each column.
        n_skipped: test users left out (target, or every history item, outside the catalogue).

    Shapes:
        - **test_rows, users, targets:** :math:`(U,)`; **item_ids:** :math:`(n_{items},)`.
    """

    test_rows: np.ndarray
    users: np.ndarray
    histories: Histories
    targets: np.ndarray
    item_ids: np.ndarray
    n_skipped: int = 0

    def __len__(self) -> int:
        return int(len(self.targets))

    @property
    def n_items(self) -> int:
        return int(len(self.item_ids))

    def batch(self, start: int, stop: int) -> Histories:
        """The histories of users ``start:stop`` (a view of :attr:`histories`)."""
        stop = min(stop, len(self))
        ip = self.histories.indptr
        return Histories(ip[start:stop + 1] - ip[start], self.histories.rows[ip[start]:ip[stop]])

    def matrix(self, start: int = 0, stop: int | None = None) -> sp.csr_matrix:
        """Users ``start:stop`` as a binary ``(B, n_items)`` CSR history matrix."""
        return history_matrix(self.batch(start, len(self) if stop is None else stop), self.n_items)


def history_matrix(histories: Histories, n_items: int, half_life: float | None = None) -> sp.csr_matrix:
    """A batch of histories as a ``(B, n_items)`` CSR matrix: 1 per history item (an item counts once),
    or, with ``half_life``, the item's recency weight :math:`2^{-\text{steps back}/h}`
    (:func:`~pinsage.index.histories.recency_weights`, 1 for the most recent item)."""
    if half_life is None:
        values = np.ones(histories.rows.size)
    else:
        values = recency_weights(histories, half_life)
    H = sp.csr_matrix((values, histories.rows, histories.indptr), shape=(len(histories), n_items))
    H.sum_duplicates()
    if half_life is None:
        H.data[:] = 1.0
    return H


def user_histories(split: Split, item_ids: np.ndarray | None = None, include_query: bool = True) -> UserHistories:
    """Each evaluable test user's history and target (the user variant of the protocol).

    Args:
        split: from :func:`~pinsage.evaluation.leave_last_out` (the test or the validation split).
        item_ids: the catalogue, original id of each score column; default ``split.item_ids``.
        include_query: append the query item, as the most recent, to the training items (the
            variant's definition); False leaves the history at the training items.

    Returns:
        :class:`UserHistories`. The order within a history: ``split.time_col`` when the split has one
        (ties by file order), else file order; the query last. Everything is vectorised (one sort).
    """
    ids = split.item_ids if item_ids is None else np.asarray(item_ids)
    test, train = split.test, split.train
    n_test = len(test)
    col_index = pd.Index(ids)
    user_row = pd.Index(test["user"]).get_indexer(pd.Index(train[split.user_col]))
    cols = col_index.get_indexer(pd.Index(train[split.item_col]))
    if split.time_col is not None:
        tkey = pd.factorize(train[split.time_col], sort=True)[0].astype(np.int64)
    else:
        tkey = np.zeros(len(train), dtype=np.int64)
    pos = np.arange(len(train), dtype=np.int64)
    keep = (user_row >= 0) & (cols >= 0)
    u, t, p, c = user_row[keep], tkey[keep], pos[keep], cols[keep]
    if include_query:
        qcols = col_index.get_indexer(pd.Index(test["query"]))
        qk = qcols >= 0
        top = (int(tkey.max()) + 1) if len(tkey) else 0
        u = np.concatenate([u, np.flatnonzero(qk)])
        t = np.concatenate([t, np.full(int(qk.sum()), top, dtype=np.int64)])
        p = np.concatenate([p, len(train) + np.flatnonzero(qk)])
        c = np.concatenate([c, qcols[qk]])
    order = np.lexsort((p, t, u))
    u, c = u[order], c[order]
    counts = np.bincount(u, minlength=n_test)
    targets = col_index.get_indexer(pd.Index(test["target"]))
    ok = (targets >= 0) & (counts > 0)
    entry_ok = ok[u]
    indptr = np.zeros(int(ok.sum()) + 1, dtype=np.int64)
    np.cumsum(counts[ok], out=indptr[1:])
    rows = np.flatnonzero(ok)
    return UserHistories(test_rows=rows, users=test["user"].to_numpy()[rows],
                         histories=Histories(indptr, c[entry_ok].astype(np.int64)),
                         targets=targets[ok].astype(np.int64), item_ids=ids, n_skipped=int((~ok).sum()))


# ------------------------------------------------------------------------------------------- evaluation
def evaluate_user_variant(score_fn: HistoryScoreFn, uh: UserHistories, k: int = 10, batch_size: int = 256,
                          ties: str = "expected") -> pd.DataFrame:
    """Each user's metrics when ``score_fn`` ranks the full catalogue for the user's history.

    Args:
        score_fn: ``score_fn(histories)`` -> ``(B, n_items)`` scores, higher = better
            (:func:`history_scorer`, :func:`embedding_history_fn`).
        uh: from :func:`user_histories`.
        k: cut-off of HR@k and NDCG@k.
        batch_size: users per call; memory O(batch_size * n_items).
        ties: tie convention of :func:`~pinsage.evaluation.per_user_values` (default: the expectation).

    Returns:
        One row per user: ``test_row``, ``user``, ``HR@k``, ``NDCG@k``, ``MRR``, ``rank``. The history's
        items are not candidates; every other catalogue item is.

    Raises:
        ValueError: ``score_fn`` returned a shape other than ``(B, n_items)``.
    """
    highers, tiess = [], []
    for start in range(0, len(uh), batch_size):
        h = uh.batch(start, start + batch_size)
        scores = np.array(score_fn(h), dtype=np.float64, copy=True)
        if scores.shape != (len(h), uh.n_items):
            raise ValueError(f"score_fn returned shape {scores.shape}, expected {(len(h), uh.n_items)}")
        hi, ti = rank_targets(scores, uh.targets[start:start + batch_size], h.owner(), h.rows)
        highers.append(hi)
        tiess.append(ti)
    higher = np.concatenate(highers) if highers else np.zeros(0, np.int64)
    tie_counts = np.concatenate(tiess) if tiess else np.zeros(0, np.int64)
    values = per_user_values(higher, tie_counts, uh.n_items, k, tie_mode=ties)
    return pd.DataFrame({"test_row": uh.test_rows, "user": uh.users, f"HR@{k}": values[f"HR@{k}"],
                         f"NDCG@{k}": values[f"NDCG@{k}"], "MRR": values["MRR"], "rank": values["rank"]})


def evaluate_user_lists(list_fn: HistoryListFn, uh: UserHistories, k: int = 10,
                        batch_size: int = 256) -> pd.DataFrame:
    """Each user's metrics from a method that returns top-``k`` lists (e.g. ``recommend(method="interests")``).

    Args:
        list_fn: ``list_fn(histories, k)`` -> ``(B, k)`` catalogue columns, best first, ``-1`` padding;
            it must leave the history's items out (:func:`index_recommend_fn` does).
        uh: from :func:`user_histories`.
        k: the list length and cut-off.
        batch_size: users per call.

    Returns:
        One row per user: ``test_row``, ``user``, ``HR@k``, ``NDCG@k``, ``MRR@k`` (reciprocal rank, 0
        below rank ``k``: a list says nothing about deeper ranks), ``rank`` (NaN when not in the list).

    Raises:
        ValueError: a list of the wrong shape, or one that contains an item of its history (which
            would break the protocol).
    """
    pos_all = []
    n = uh.n_items
    for start in range(0, len(uh), batch_size):
        h = uh.batch(start, start + batch_size)
        rows = np.asarray(list_fn(h, k), dtype=np.int64)
        if rows.shape != (len(h), k):
            raise ValueError(f"list_fn returned shape {rows.shape}, expected {(len(h), k)}")
        valid = rows >= 0
        listed = (np.arange(len(h), dtype=np.int64)[:, None] * n + rows)[valid]
        if np.isin(listed, h.owner() * n + h.rows).any():
            raise ValueError("list_fn returned an item of the history; the protocol excludes them")
        hit = valid & (rows == uh.targets[start:start + batch_size, None])
        pos_all.append(np.where(hit.any(axis=1), np.argmax(hit, axis=1) + 1, 0))
    rank = np.concatenate(pos_all).astype(np.float64) if pos_all else np.zeros(0)
    found = rank > 0
    safe = np.where(found, rank, 1.0)
    return pd.DataFrame({"test_row": uh.test_rows, "user": uh.users, f"HR@{k}": found.astype(np.float64),
                         f"NDCG@{k}": np.where(found, 1.0 / np.log2(safe + 1.0), 0.0),
                         f"MRR@{k}": np.where(found, 1.0 / safe, 0.0), "rank": np.where(found, rank, np.nan)})


# ---------------------------------------------------------------------------------- baselines on histories
def sum_of_rows(scorer: Scorer, half_life: float | None = None, chunk: int = 4096) -> HistoryScoreFn:
    """The generic (slow) history scorer: ``scorer.score`` of every history item, summed per history
    (weighted by recency with ``half_life``, as :func:`history_matrix`).

    Memory O(chunk * n_items); a reference for :func:`history_scorer` and a fallback for other scorers.
    """
    def fn(h: Histories) -> np.ndarray:
        out = np.zeros((len(h), scorer.n_items))
        owner = h.owner()
        w = np.ones(h.rows.size) if half_life is None else recency_weights(h, half_life)
        for s in range(0, h.rows.size, chunk):
            block = np.asarray(scorer.score(h.rows[s:s + chunk]), dtype=np.float64) * w[s:s + chunk, None]
            np.add.at(out, owner[s:s + chunk], block)
        return out
    return fn


def itemknn_similarity(X: sp.spmatrix, neighbors: int | None = None, shrink: float = 0.0,
                       C: sp.csr_matrix | None = None, cache: dict | None = None) -> sp.csr_matrix:
    """:class:`~pinsage.evaluation.ItemKNN`'s similarity matrix ``S`` as one sparse ``(n_items, n_items)`` CSR.

    ``S[i, j] = C[i, j] / (sqrt(deg_i deg_j) + shrink)`` off the diagonal (``C = XᵀX``), and with
    ``neighbors = k`` only the entries with ``S[i, j] >=`` the k-th largest of column ``j`` are kept
    (exactly ``ItemKNN(neighbors, shrink).score``, row by row). ``C`` may be passed to share it across
    a grid, and ``cache`` (a dict) keeps the last shrink's matrix and its sorted rows, so a grid that
    varies ``neighbors`` at one shrink sorts once. Memory: O(nnz(XᵀX)).
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    X.data[:] = 1.0
    n = X.shape[1]
    if cache is not None and cache.get("shrink") == float(shrink):
        S, ranked = cache["S"], cache.get("ranked")
    else:
        if C is None:
            C = (X.T @ X).tocsr()
        C = sp.csr_matrix(C)
        sqrt_deg = np.sqrt(np.asarray(X.sum(axis=0)).ravel())
        row = np.repeat(np.arange(n), np.diff(C.indptr))
        off = C.indices != row
        r, c = row[off], C.indices[off]
        v = C.data[off].astype(np.float64) / (sqrt_deg[r] * sqrt_deg[c] + float(shrink))
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
        S, ranked = sp.csr_matrix((v, c, indptr), shape=(n, n)), None
        if cache is not None:
            cache.clear()
            cache.update(shrink=float(shrink), S=S)
    if neighbors is None:
        return S
    k = int(neighbors)
    counts = np.diff(S.indptr)
    row = np.repeat(np.arange(n), counts)
    if ranked is None:  # each row's values, descending
        ranked = S.data[np.lexsort((-S.data, row))]
        if cache is not None:
            cache["ranked"] = ranked
    thr = np.zeros(n)
    has = counts >= k
    thr[has] = ranked[S.indptr[:-1][has] + k - 1]  # S is symmetric: row j's k-th = column j's k-th
    kept = S.data >= thr[S.indices]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row[kept], minlength=n), out=indptr[1:])
    return sp.csr_matrix((S.data[kept], S.indices[kept], indptr), shape=(n, n))


def similarity_history_fn(S: sp.spmatrix | np.ndarray, half_life: float | None = None) -> HistoryScoreFn:
    """Score a history by ``H S``: the sum over the history's rows of ``S`` (recency-weighted with ``half_life``)."""
    sparse = sp.issparse(S)
    S = sp.csr_matrix(S) if sparse else np.asarray(S)

    def fn(h: Histories) -> np.ndarray:
        H = history_matrix(h, S.shape[0], half_life)
        return (H @ S).toarray() if sparse else np.asarray(H @ S)
    return fn


def history_scorer(scorer: Scorer, half_life: float | None = None) -> HistoryScoreFn:
    """The sum over a history's rows of a fitted baseline's item-to-item scores, as sparse products.

    Fast paths (module docstring) for :class:`~pinsage.evaluation.Popularity`, ItemKNN, RP3beta,
    EASE, RandomWalkCounts, PureSVD, ContentKNN and EmbeddingScorer; any other scorer falls back to
    :func:`sum_of_rows`. Each returns the same scores as :func:`sum_of_rows` (the tests hold them to it).
    ``half_life`` weighs each row by its recency (:func:`history_matrix`); None: every row alike (the
    variant's definition; the weighted sum is a diagnostic, see ``docs/quality.md``).
    """
    n = scorer.n_items

    def H(h: Histories) -> sp.csr_matrix:
        return history_matrix(h, n, half_life)
    if isinstance(scorer, Popularity):  # the sum of deg(j) over the rows: (sum of weights) deg(j), ranked as deg(j)
        return lambda h: np.outer(np.asarray(H(h).sum(axis=1)).ravel(), scorer.deg)
    if isinstance(scorer, ItemKNN):
        return similarity_history_fn(itemknn_similarity(scorer.X, scorer.neighbors, scorer.shrink), half_life)
    if isinstance(scorer, RP3beta):
        P_iu, P_ui_t = scorer.P_iu, scorer.P_ui.T.tocsr()

        def rp3(h: Histories) -> np.ndarray:
            walked = (H(h) @ P_iu).toarray()        # (B, n_users)
            return np.asarray(P_ui_t @ walked.T).T * scorer.col_scale[None, :]
        return rp3
    if isinstance(scorer, EASE):
        return lambda h: np.asarray(H(h) @ scorer.B)
    if isinstance(scorer, RandomWalkCounts):
        def rwc(h: Histories) -> np.ndarray:
            v = H(h).T.toarray()  # (n_items, B): the walks start on the history's items
            out = np.zeros_like(v)
            keep, t = 1.0, 0
            while True:
                t += 1
                keep *= 1.0 - scorer.restart
                if (scorer.max_steps is not None and t > scorer.max_steps) or keep < scorer.tol:
                    break
                v = scorer.BT @ (scorer.AT @ v)
                out += keep * v
            return out.T
        return rwc
    if isinstance(scorer, (PureSVD, EmbeddingScorer, ContentKNN)):
        E = scorer.features if isinstance(scorer, ContentKNN) else scorer.embeddings
        return lambda h: np.asarray(H(h) @ E) @ E.T
    return sum_of_rows(scorer, half_life)


def _pick(rows: list[dict], metric: str, k: int) -> int:
    """The index of the best row: by ``metric``, ties by NDCG@k, then the first (as tune_baseline)."""
    scores = np.array([(r[metric], r[f"NDCG@{k}"]) for r in rows])
    return int(np.lexsort((np.arange(len(rows)), -scores[:, 1], -scores[:, 0]))[0])


def tune_user_baselines(validation: Split, methods: Sequence[str] = TUNED_METHODS,
                        grids: Mapping[str, Mapping[str, Sequence[Any]]] | None = None, metric: str = "HR@10",
                        k: int = 10, batch_size: int = 256, verbose: bool = False,
                        uh: UserHistories | None = None, half_life: float | None = None) -> dict[str, TuneResult]:
    """Grid search of each baseline on the *validation* split of the user variant.

    Args:
        validation: ``leave_last_out(..., validation=True)``; never the test split.
        methods: baseline names (:data:`~pinsage.evaluation.BASELINES`).
        grids: method -> grid; default :data:`USER_GRIDS` (the item protocol's grids, widened at edges).
        metric: ``HR@k``, ``NDCG@k`` or ``MRR`` (ties by NDCG@k, then grid order).
        k: the cut-off.
        batch_size: users per scoring call.
        verbose: print each method's choice.
        uh: the validation users' histories (default: :func:`user_histories` of ``validation``).
        half_life: score recency-weighted histories (:func:`history_scorer`); None: the plain sum.

    Returns:
        method -> :class:`~pinsage.evaluation.TuneResult` (``skipped`` set where ``fit`` refuses the
        data, such as EASE above its dense-matrix limit). Item-kNN shares ``XᵀX`` across its grid.
    """
    allowed = (f"HR@{k}", f"NDCG@{k}", "MRR")
    if metric not in allowed:
        raise ValueError(f"tune_user_baselines: metric must be one of {allowed}, got {metric!r}")
    uh = user_histories(validation) if uh is None else uh
    X, _, ids = validation.interaction_matrix(uh.item_ids)
    grids = dict(grids or {})
    out: dict[str, TuneResult] = {}
    C = None
    for method in methods:
        key = method.lower()
        grid = {n: list(v) for n, v in (grids.get(method) if method in grids else USER_GRIDS.get(key, {})).items()}
        t_method = time.perf_counter()
        rows: list[dict] = []
        skipped = None
        points = grid_points(grid)
        order = range(len(points))
        if key == "itemknn":  # one shrink at a time, so its matrix and sorted rows are built once
            order = sorted(order, key=lambda i: points[i].get("shrink", 0.0))
            knn_cache: dict = {}
        done: dict[int, dict] = {}
        for i in order:
            point = points[i]
            t0 = time.perf_counter()
            if key == "itemknn":
                if C is None:
                    Xf = sp.csr_matrix(X, dtype=np.float64)
                    C = (Xf.T @ Xf).tocsr()
                S = itemknn_similarity(X, point.get("neighbors"), point.get("shrink", 0.0), C=C, cache=knn_cache)
                fn = similarity_history_fn(S, half_life)
            else:
                scorer = make_baseline(method, **point)
                try:
                    scorer.fit(X, item_ids=ids)
                except ValueError as exc:
                    skipped = str(exc)
                    break
                fn = history_scorer(scorer, half_life)
            table = evaluate_user_variant(fn, uh, k=k, batch_size=batch_size)
            done[i] = {**point, **{m: float(table[m].mean()) for m in allowed}, "seconds": time.perf_counter() - t0}
        rows = [done[i] for i in sorted(done)]  # grid order: the tie-break
        if skipped is not None:
            out[key] = TuneResult(method=key, params={}, validation={}, table=pd.DataFrame(), metric=metric,
                                  skipped=skipped, grid=grid)
        else:
            best = rows[_pick(rows, metric, k)]
            out[key] = TuneResult(method=key, params={name: best[name] for name in grid},
                                  validation={m: best[m] for m in allowed}, table=pd.DataFrame(rows), metric=metric,
                                  grid=grid)
        if verbose:
            print(f"  tuned (user variant) {out[key].grid_text()} [{time.perf_counter() - t_method:.0f} s]", flush=True)
    return out


# ------------------------------------------------------------------------------------------- embeddings
def embedding_history_fn(embeddings: np.ndarray, half_life: float | None = None) -> HistoryScoreFn:
    """The full-catalogue score of ``recommend(method="recency")``: the recency-weighted mean of the
    history's embeddings (:func:`~pinsage.index.histories.weighted_means`), dot every item.

    ``embeddings``: ``(n_items, d)``, row ``i`` for catalogue column ``i``. ``half_life`` in items
    (``None``: every item alike, the plain mean; ranks then equal the sum of the dot products).
    """
    E = np.ascontiguousarray(embeddings, dtype=np.float32)

    def fn(h: Histories) -> np.ndarray:
        q = weighted_means(E[h.rows], h, recency_weights(h, half_life))
        return q @ E.T
    return fn


def index_recommend_fn(embeddings: np.ndarray, method: str = "recency", half_life: float | None = 10.0,
                       clusters: int = 3, max_history: int | None = None) -> HistoryListFn:
    """Top-``k`` lists from :meth:`pinsage.ItemIndex.recommend` over an exact index of ``embeddings``
    (what :meth:`pinsage.PinSageEmbedder.recommend` builds), the history's items left out.

    ``embeddings``: ``(n_items, d)``, row ``i`` for catalogue column ``i``; the other arguments are
    ``recommend``'s. Returns ``fn(histories, k) -> (B, k)`` catalogue columns, ``-1`` padding.
    """
    from pinsage.index import ItemIndex

    index = ItemIndex.build(np.ascontiguousarray(embeddings, dtype=np.float32), kind="exact")

    def fn(h: Histories, k: int) -> np.ndarray:
        ids, _ = index.recommend(h, N=k, method=method, half_life=half_life, clusters=clusters,
                                 max_history=max_history)
        return np.asarray(ids, dtype=np.int64).reshape(len(h), k)
    return fn
