"""The binary user x item matrix of a training log, the input of every baseline."""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pinsage.ids import sorted_unique

__all__ = ["interaction_matrix"]


def interaction_matrix(train: pd.DataFrame, user_col: str, item_col: str,
                       item_ids: np.ndarray | None = None) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Binary user x item matrix of the training interactions.

    Args:
        train: a DataFrame with ``user_col`` and ``item_col``.
        user_col: the users' column.
        item_col: the items' column.
        item_ids: original ids of the columns; default: the training items, sorted. Rows whose item is
            not in ``item_ids`` are ignored.

    Returns:
        ``(X, user_ids, item_ids)``: ``X`` CSR float32 with ``X[u, i] = 1`` iff u interacted with i
        (duplicates count once); the users' original ids of the rows, sorted (when comparable); the
        items' original ids of the columns.

    Shapes:
        ``item_ids``: ``(n_items,)``; ``X``: ``(n_users, n_items)``; ``user_ids``: ``(n_users,)``.
    """
    items = train[item_col].to_numpy()
    users = train[user_col].to_numpy()
    if item_ids is None:
        item_ids = sorted_unique(items)
    item_ids = np.asarray(item_ids)
    user_ids = sorted_unique(users)
    ci = pd.Index(item_ids).get_indexer(pd.Index(items))
    ri = pd.Index(user_ids).get_indexer(pd.Index(users))
    keep = ci >= 0
    X = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (ri[keep], ci[keep])),
                      shape=(len(user_ids), len(item_ids)))
    X.sum_duplicates()
    X.data[:] = 1.0
    return X, user_ids, item_ids
