"""Full-catalogue ranking metrics for related-item retrieval (HR@k, NDCG@k, MRR, scaled MRR).

For each test user with query item ``q`` and target ``t`` (both among the training items), a scorer
gives every catalogue item a score; the query itself and the user's training items are excluded;
the target's rank among the remaining items is turned into metrics. Only ``(B, n_items)`` score
blocks are ever materialised (B = batch size), never an ``n_items x n_items`` matrix.

Ties. With ``h`` candidates scoring strictly higher than the target and ``e`` other candidates
scoring exactly the same, the target's rank under a uniformly random tie-break is uniform on
``{h+1, ..., h+e+1}``. Every metric reported is the exact **expectation** over that tie-break:

    E[f(rank)] = (F(h+e+1) - F(h)) / (e+1),   F(r) = sum_{s<=r} f(s),

so a constant scorer gets chance-level numbers (not 0, not 1) and no scorer profits from ties.
NaN scores count as -inf. With ``f``:

* HR@k:       f(r) = [r <= k]
* NDCG@k:     f(r) = [r <= k] / log2(r + 1)   (one relevant item, so IDCG = 1)
* MRR:        f(r) = 1 / r
* MRR_scaled: f(r) = 1 / ceil(r / 100)        (the PinSage paper's scaled MRR)

``mean_rank`` is the mean mid-rank ``h + 1 + e/2``.

``ties="optimistic"`` (rank = 1 + h: only strictly higher scores count) and
``ties="pessimistic"`` (rank = 1 + h + e) are available for comparison. On MovieLens-100K only
popularity has enough ties to notice: the popularity row of ``docs/quality.md``'s earlier tables (0.086 / 0.045 / 0.042) is the
optimistic convention; the expected one gives 0.084 / 0.044 / 0.041. Optimistic counting would
give a constant (collapsed) scorer HR = 1, which is why it is not the default.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import scipy.sparse as sp

from pinsage.evaluation.split import Split

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["evaluate_scores", "evaluate_embeddings", "evaluate_at_ks", "evaluate_per_user", "rank_targets",
           "metrics_from_ranks", "per_user_values", "ScoreFn"]

ScoreFn = Callable[[np.ndarray], np.ndarray]


def rank_targets(scores: np.ndarray, targets: np.ndarray, exclude_rows: np.ndarray,
                 exclude_cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Count higher and tied candidates for each row's target.

    Args:
        scores: float scores; modified in place (excluded entries become NaN).
        targets: int64 target column per row.
        exclude_rows: rows of the (row, column) pairs removed from the candidates.
        exclude_cols: columns of the (row, column) pairs removed from the candidates.

    Returns:
        higher: int64, number of candidates with score > target score.
        ties: int64, number of other candidates with score == target score.

    Shapes:
        - **scores:** :math:`(B, n)` float.
        - **targets:** :math:`(B,)` int64.
        - **exclude_rows, exclude_cols:** :math:`(m,)` int.
        - **higher, ties:** :math:`(B,)` int64.
    """
    s = scores
    if not np.issubdtype(s.dtype, np.floating):
        s = s.astype(np.float64)
    np.nan_to_num(s, copy=False, nan=-np.inf, posinf=np.inf, neginf=-np.inf)
    rows = np.arange(s.shape[0])
    t = s[rows, targets].copy()
    s[exclude_rows, exclude_cols] = np.nan  # NaN compares False with everything
    tc = t[:, None]
    higher = (s > tc).sum(axis=1).astype(np.int64)
    ties = (s == tc).sum(axis=1).astype(np.int64)
    # the target itself: counted once in ties unless it was excluded (then it is not a candidate)
    ties -= ~np.isnan(s[rows, targets])
    return higher, ties


def _prefix(f: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(f)])


def per_user_values(higher: np.ndarray, ties: np.ndarray, n_items: int, k: int = 10,
                    tie_mode: str = "expected") -> dict[str, np.ndarray]:
    """Each user's metric values from rank counts; ``higher``/``ties`` shape (U,), every output (U,).

    Keys ``HR@k``, ``NDCG@k``, ``MRR``, ``MRR_scaled`` (expectations over the tie-break, see the module
    docstring) and ``rank`` (the mid-rank ``higher + 1 + ties / 2``). ``tie_mode``: "expected",
    "optimistic" (rank = 1 + higher) or "pessimistic" (rank = 1 + higher + ties).
    """
    higher = np.asarray(higher, dtype=np.int64)
    ties = np.asarray(ties, dtype=np.int64)
    if tie_mode == "optimistic":
        ties = np.zeros_like(ties)
    elif tie_mode == "pessimistic":
        higher, ties = higher + ties, np.zeros_like(ties)
    elif tie_mode != "expected":
        raise ValueError(f"ties must be 'expected', 'optimistic' or 'pessimistic', got {tie_mode!r}")
    r = np.arange(1, n_items + 2, dtype=np.float64)
    fs = {
        f"HR@{k}": (r <= k).astype(np.float64),
        f"NDCG@{k}": (r <= k) / np.log2(r + 1.0),
        "MRR": 1.0 / r,
        "MRR_scaled": 1.0 / np.ceil(r / 100.0),
    }
    out: dict[str, np.ndarray] = {}
    lo, hi = higher, higher + ties + 1
    for name, f in fs.items():
        F = _prefix(f)
        out[name] = (F[hi] - F[lo]) / (ties + 1)
    out["rank"] = higher + 1 + ties / 2.0
    return out


def metrics_from_ranks(higher: np.ndarray, ties: np.ndarray, n_items: int, k: int = 10,
                       tie_mode: str = "expected") -> dict[str, float]:
    """Metrics from rank counts: the means of :func:`per_user_values` (``rank`` reported as ``mean_rank``)."""
    values = per_user_values(higher, ties, n_items, k, tie_mode)
    empty = len(np.asarray(higher)) == 0
    out = {name: float("nan") if empty else float(np.mean(v)) for name, v in values.items() if name != "rank"}
    out["mean_rank"] = float("nan") if empty else float(np.mean(values["rank"]))
    return out


def evaluate_scores(score_fn: ScoreFn, split: Split, k: int = 10, batch_size: int = 256,
                    item_ids: np.ndarray | None = None, ties: str = "expected") -> dict[str, float]:
    """Evaluate a scorer on ``split.test`` with full-catalogue ranking.

    Args:
        score_fn: ``score_fn(query_indices)`` with ``query_indices`` an int64 array of shape (B,)
            returns scores of shape (B, n_items) (higher = more related) over the dense item index.
        split: From :func:`leave_last_out`.
        k: Cut-off of HR@k and NDCG@k.
        batch_size: Queries per ``score_fn`` call; memory is O(batch_size * n_items).
        item_ids: Original item id of each score column, shape (n_items,); default
            ``split.item_ids`` (the training items, sorted). Training rows with items outside it
            are ignored.
        ties: "expected" (default), "optimistic" or "pessimistic"; see the module docstring.

    Returns:
        dict with ``HR@k``, ``NDCG@k``, ``MRR``, ``MRR_scaled``, ``mean_rank`` (see module
            docstring), ``n_evaluated`` (test users whose query and target are both in
            ``item_ids``) and ``n_skipped`` (the other test users).

    Raises:
        ValueError: ``score_fn`` returns scores whose shape is not (B, n_items), or ``ties`` is
            not one of the three conventions.

    Shapes:
        - **score_fn input:** :math:`(B,)` int64 query indices.
        - **score_fn output:** :math:`(B, n_{items})` scores.
        - **item_ids:** :math:`(n_{items},)` *(optional)*.
    """
    higher, tie_counts, ok = _target_rank_counts(score_fn, split, batch_size, item_ids)
    n_items = len(split.item_ids if item_ids is None else item_ids)
    out = metrics_from_ranks(higher, tie_counts, n_items, k, tie_mode=ties)
    out["n_evaluated"] = int(ok.sum())
    out["n_skipped"] = int((~ok).sum())
    return out


def _target_rank_counts(score_fn: ScoreFn, split: Split, batch_size: int = 256,
                        item_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(higher, ties, ok)``: :func:`rank_targets` over every evaluable test user (``ok`` marks them)."""
    ids = split.item_ids if item_ids is None else np.asarray(item_ids)
    n_items = len(ids)
    q = split.item_index(split.test["query"].to_numpy(), ids)
    t = split.item_index(split.test["target"].to_numpy(), ids)
    ok = (q >= 0) & (t >= 0)
    q, t = q[ok], t[ok]
    users = split.test["user"].to_numpy()[ok]
    X, user_ids, _ = split.interaction_matrix(ids)
    urow = split.item_index(users, user_ids)  # same lookup works for any id array
    X = sp.csr_matrix(X)
    indptr, indices = X.indptr, X.indices
    highers, tiess = [], []
    for start in range(0, len(q), batch_size):
        qb, tb = q[start:start + batch_size], t[start:start + batch_size]
        ub = urow[start:start + batch_size]
        scores = np.array(score_fn(qb), dtype=np.float64, copy=True)
        if scores.shape != (len(qb), n_items):
            raise ValueError(f"score_fn returned shape {scores.shape}, expected {(len(qb), n_items)}")
        # user's training items (rows absent from the matrix have none) plus the query itself
        has = ub >= 0
        row = np.clip(ub, 0, max(len(indptr) - 2, 0))  # safe index even with no training users
        starts = np.where(has, indptr[row], 0)
        lens = np.where(has, indptr[row + 1] - starts, 0) if len(indptr) > 1 else np.zeros_like(starts)
        rr = np.repeat(np.arange(len(qb)), lens)
        offs = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        cc = indices[np.repeat(starts, lens) + offs]
        ex_r = np.concatenate([rr, np.arange(len(qb))])
        ex_c = np.concatenate([cc, qb])
        h, e = rank_targets(scores, tb, ex_r, ex_c)
        highers.append(h)
        tiess.append(e)
    higher = np.concatenate(highers) if highers else np.zeros(0, np.int64)
    tie_counts = np.concatenate(tiess) if tiess else np.zeros(0, np.int64)
    return higher, tie_counts, ok


def evaluate_at_ks(score_fn: ScoreFn, split: Split, ks: Sequence[int] = (1, 5, 10, 20, 50, 100),
                   batch_size: int = 256, item_ids: np.ndarray | None = None,
                   ties: str = "expected") -> "pd.DataFrame":
    """HR@k and NDCG@k at several cut-offs from one ranking pass (same protocol as :func:`evaluate_scores`).

    Returns a DataFrame with one row per ``k`` (ascending) and columns ``k``, ``HR``, ``NDCG``,
    ``MRR`` (the same in every row) and ``n_evaluated``; :func:`pinsage.plot.plot_metric_at_k`
    draws it.
    """
    import pandas as pd

    higher, tie_counts, ok = _target_rank_counts(score_fn, split, batch_size, item_ids)
    n_items = len(split.item_ids if item_ids is None else item_ids)
    rows = []
    for k in sorted({int(k) for k in ks}):
        if k < 1:
            raise ValueError(f"every cut-off k must be >= 1, got {k}")
        m = metrics_from_ranks(higher, tie_counts, n_items, k, tie_mode=ties)
        rows.append({"k": k, "HR": m[f"HR@{k}"], "NDCG": m[f"NDCG@{k}"], "MRR": m["MRR"],
                     "n_evaluated": int(ok.sum())})
    return pd.DataFrame(rows, columns=["k", "HR", "NDCG", "MRR", "n_evaluated"])


def evaluate_per_user(score_fn: ScoreFn, split: Split, k: int = 10, batch_size: int = 256,
                      item_ids: np.ndarray | None = None, ties: str = "expected") -> "pd.DataFrame":
    """Each evaluable test user's metrics (same protocol as :func:`evaluate_scores`), for paired tests.

    Returns a DataFrame with one row per evaluable test user: ``test_row`` (the row of
    ``split.test``, so two methods' tables pair up on it even when their item sets differ),
    ``user``, ``HR@k``, ``NDCG@k``, ``MRR``, ``rank``. Its column means are the
    :func:`evaluate_scores` figures. :func:`pinsage.evaluation.paired_bootstrap` takes two of them.
    """
    import pandas as pd

    higher, tie_counts, ok = _target_rank_counts(score_fn, split, batch_size, item_ids)
    n_items = len(split.item_ids if item_ids is None else item_ids)
    values = per_user_values(higher, tie_counts, n_items, k, tie_mode=ties)
    rows = np.flatnonzero(ok)
    return pd.DataFrame({"test_row": rows, "user": split.test["user"].to_numpy()[rows],
                         f"HR@{k}": values[f"HR@{k}"], f"NDCG@{k}": values[f"NDCG@{k}"],
                         "MRR": values["MRR"], "rank": values["rank"]})


def evaluate_embeddings(embeddings: np.ndarray, split: Split, item_ids: np.ndarray | None = None,
                        k: int = 10, batch_size: int = 256, normalize: bool = False) -> dict[str, float]:
    """Evaluate item embeddings (e.g. PinSage's ``item_embeddings.npy``) by dot-product scores.

    ``embeddings``: (n_items, d), row i for ``item_ids[i]`` (e.g. ``item_ids.npy``; default
    ``split.item_ids``). ``normalize=True`` scores by cosine instead of dot product.
    """
    from pinsage.evaluation.baselines import EmbeddingScorer

    scorer = EmbeddingScorer(embeddings, normalize=normalize)
    return evaluate_scores(scorer.score, split, k=k, batch_size=batch_size, item_ids=item_ids)
