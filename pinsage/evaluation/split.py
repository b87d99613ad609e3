"""Leave-last-out split for related-item retrieval (the protocol of ``docs/quality.md``).

Implicit feedback: every distinct ``(user, item)`` pair is one edge. For each user with at least
three distinct items, ordered by time (stable: file order breaks ties; a seeded random order
when there is no time column), the last item is the **target** and the one before it the
**query**; both rows leave the training graph. Everything is vectorised (sort + ``cumcount``);
there is no Python loop over users.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pinsage._io import InputError
from pinsage.evaluation.matrix import interaction_matrix
from pinsage.ids import sorted_unique as _sorted_unique

__all__ = ["Split", "leave_last_out", "MIN_ITEMS"]

#: A user needs this many distinct items to contribute a (query, target) pair.
MIN_ITEMS = 3

_U, _P, _R = "__ll_user_code", "__ll_file_pos", "__ll_rand_key"


@dataclass
class Split:
    """Result of :func:`leave_last_out`.

    Attributes:
        train: The remaining (deduplicated) interaction rows, original columns, in
            original file order.
        test: One row per evaluated user: columns ``user``, ``query``, ``target``
            (original ids).
        user_col: Column name of ``train`` (user / group).
        item_col: Column name of ``train`` (item).
        time_col: Column name of ``train`` (event time), or None.
        n_users: Distinct users in the (deduplicated) input.
        n_dropped_duplicates: Rows removed because the ``(user, item)`` pair had been seen
            already.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    user_col: str
    item_col: str
    time_col: str | None = None
    n_users: int = 0
    n_dropped_duplicates: int = 0
    _item_ids: np.ndarray | None = field(default=None, repr=False)

    @property
    def item_ids(self) -> np.ndarray:
        """Training items, sorted (when comparable): the default dense item index, shape (n_items,)."""
        if self._item_ids is None:
            self._item_ids = _sorted_unique(self.train[self.item_col].to_numpy())
        return self._item_ids

    @property
    def n_items(self) -> int:
        return int(len(self.item_ids))

    def item_index(self, items: np.ndarray | pd.Series, item_ids: np.ndarray | None = None) -> np.ndarray:
        """Map original item ids to positions in ``item_ids`` (default: :attr:`item_ids`); -1 when absent.

        Returns an int64 array with the shape of ``items``.
        """
        ids = self.item_ids if item_ids is None else np.asarray(item_ids)
        idx = pd.Index(ids).get_indexer(pd.Index(np.asarray(items)))
        return idx.astype(np.int64)

    def interaction_matrix(self, item_ids: np.ndarray | None = None):
        """Binary user x item CSR matrix of ``train``; see :func:`pinsage.evaluation.baselines.interaction_matrix`."""
        return interaction_matrix(self.train, self.user_col, self.item_col,
                                  self.item_ids if item_ids is None else item_ids)

    def summary(self) -> dict:
        """Counts: users, training rows/items/users, test users, test users with query and target in training."""
        ids = self.item_ids
        q = self.item_index(self.test["query"].to_numpy(), ids)
        t = self.item_index(self.test["target"].to_numpy(), ids)
        return {
            "users": self.n_users,
            "train_rows": int(len(self.train)),
            "train_users": int(self.train[self.user_col].nunique()),
            "train_items": self.n_items,
            "test_users": int(len(self.test)),
            "test_users_evaluable": int(((q >= 0) & (t >= 0)).sum()),
            "duplicates_dropped": self.n_dropped_duplicates,
        }


def _ordered(df: pd.DataFrame, user_col: str, item_col: str, time_col: str | None,
             seed: int) -> tuple[pd.DataFrame, int]:
    """Deduplicate and sort rows by (user, per-user order). Adds user code and file position columns.

    Ordering key per user: ``time_col`` then file position (a stable sort), or, without a time
    column, a seeded random permutation. Duplicated ``(user, item)`` pairs keep their first
    occurrence in this order: the earliest time (file order among equal times), or the first in
    file order when there is no time column.
    """
    for c in (user_col, item_col) + ((time_col,) if time_col is not None else ()):
        if c not in df.columns:
            raise InputError(f"leave_last_out: column {c!r} not in the frame (columns: {list(df.columns)})")
    d = df.copy()
    d[_U] = pd.factorize(d[user_col], use_na_sentinel=False)[0]
    d[_P] = np.arange(len(d), dtype=np.int64)
    if time_col is not None:
        d = d.sort_values([_U, time_col, _P], kind="mergesort")
        n0 = len(d)
        d = d.drop_duplicates([user_col, item_col], keep="first")
    else:
        n0 = len(d)
        d = d.drop_duplicates([user_col, item_col], keep="first")
        rng = np.random.default_rng(seed)
        d[_R] = rng.permutation(len(d))
        d = d.sort_values([_U, _R], kind="mergesort").drop(columns=_R)
    return d, n0 - len(d)


def _cut_last_two(d: pd.DataFrame, user_col: str, item_col: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """On a frame sorted by (user code, order): split off each eligible user's last two rows.

    Returns ``(rest, query_rows, target_rows)``; the query and target frames are aligned row by row
    (one row per user with >= MIN_ITEMS items, in user-code order).
    """
    g = d.groupby(_U, sort=False)
    pos = g.cumcount().to_numpy()
    size = g[_U].transform("size").to_numpy()
    eligible = size >= MIN_ITEMS
    is_target = eligible & (pos == size - 1)
    is_query = eligible & (pos == size - 2)
    return d[~(is_target | is_query)], d[is_query], d[is_target]


def leave_last_out(df: pd.DataFrame, user_col: str, item_col: str, time_col: str | None = None,
                   seed: int = 0, validation: bool = False) -> Split:
    """Leave-last-out split of an interaction log (the protocol of ``docs/quality.md``).

    Args:
        df: Interaction log, one row per event; only ``user_col``, ``item_col`` and
            ``time_col`` are read, every column is kept in ``Split.train``.
        user_col: Group (user / board) column.
        item_col: Item column.
        time_col: Event time; rows are ordered per user by a stable sort on it
            (file order breaks ties). Without it each user's distinct items are put in a random
            order drawn from ``seed``.
        seed: Seed of that random order (unused when ``time_col`` is given).
        validation: Build the tuning split instead: every user's test target is removed
            from the data entirely, then the same rule is applied to what is left, so the test
            query becomes the validation target and the item before it the validation query
            (users need >= 4 items). Users with exactly 3 items keep their first two items as
            training rows; no test target appears anywhere in the validation split.

    Returns:
        The split: ``train``: remaining rows (original columns, original file order, duplicates
            dropped); ``test``: columns ``user, query, target`` in original ids, one row per
            eligible user.

    Raises:
        InputError: ``user_col``, ``item_col`` or ``time_col`` is not a column of ``df``.

    Example:
        >>> df = pd.DataFrame({"user": ["a", "a", "a", "a", "b", "b"], "item": [1, 2, 3, 4, 1, 2],
        ...                    "ts": [10, 20, 30, 40, 10, 20]})
        >>> split = leave_last_out(df, "user", "item", time_col="ts")
        >>> split.test                  # "b" has fewer than 3 items: it only trains
          user  query  target
        0    a      3       4
        >>> split.train["item"].tolist(), split.item_ids.tolist()
        ([1, 2, 1, 2], [1, 2])
    """
    d, n_dup = _ordered(df, user_col, item_col, time_col, seed)
    n_users = int(d[_U].nunique())
    rest, q, t = _cut_last_two(d, user_col, item_col)
    if validation:
        # remove the test targets, keep the test queries: re-apply the rule to the remainder.
        d2 = d[~d[_P].isin(t[_P]).to_numpy()]
        rest, q, t = _cut_last_two(d2, user_col, item_col)
    test = pd.DataFrame({
        "user": q[user_col].to_numpy(),
        "query": q[item_col].to_numpy(),
        "target": t[item_col].to_numpy(),
    })
    train = rest.sort_values(_P, kind="mergesort").drop(columns=[_U, _P])
    return Split(train=train, test=test, user_col=user_col, item_col=item_col, time_col=time_col,
                 n_users=n_users, n_dropped_duplicates=int(n_dup))
