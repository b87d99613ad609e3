"""Tuning the baselines on the validation split, with stated grids.

A baseline left at arbitrary settings is not a fair anchor. :func:`tune_baselines` evaluates every
point of a grid on a *validation* split (:func:`pinsage.evaluation.leave_last_out` with
``validation=True``: each user's test target is removed, the test query becomes the validation
target), picks the best point by ``metric`` (ties broken by NDCG@k, then by grid order), and returns
the chosen settings, which are then evaluated once on the test split.

The grids (:data:`GRIDS`) cover the ranges of the tuned rows in ``docs/quality.md`` and reach past them
where a first search chose a point on an edge (RP3beta's alpha 0.25, item-kNN's shrink 100, the walk
counts' restart 0.1 and PureSVD's 256 factors on Gowalla):

==============  ==================================================================
method          grid
==============  ==================================================================
itemknn         neighbors in {10, 20, 50, 100, 200, 500, all} x shrink in {0, 2, 10, 50, 100, 200, 500}
rp3beta         alpha in {0.1, 0.25, 0.5, 0.75, 1.0} x beta in {0, 0.1, ..., 0.8}
rwc             max_steps (item -> user -> item hops) in {1, 2, 3, 4, 6} x restart in {0, 0.1, 0.3, 0.5, 0.7}
puresvd         factors in {16, 32, 64, 128, 256, 512}
ease            l2 in {50, 100, 200, 500, 1000, 2000, 4000, 8000, 16000}
popularity      (no settings)
contentknn      (no settings; needs ``features``)
==============  ==================================================================
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from pinsage.evaluation.baselines import make_baseline
from pinsage.evaluation.metrics import evaluate_scores
from pinsage.evaluation.split import Split

__all__ = ["GRIDS", "TUNED_METHODS", "TuneResult", "grid_points", "tune_baseline", "tune_baselines"]

#: method -> {setting: values}; the product of the value lists is the grid.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "popularity": {},
    "itemknn": {"neighbors": [10, 20, 50, 100, 200, 500, None],
                "shrink": [0.0, 2.0, 10.0, 50.0, 100.0, 200.0, 500.0]},
    "rp3beta": {"alpha": [0.1, 0.25, 0.5, 0.75, 1.0], "beta": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]},
    "rwc": {"max_steps": [1, 2, 3, 4, 6], "restart": [0.0, 0.1, 0.3, 0.5, 0.7]},
    "puresvd": {"factors": [16, 32, 64, 128, 256, 512]},
    "ease": {"l2": [50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0]},
    "contentknn": {},
}

#: The interaction baselines tuned by default, in the order of ``docs/quality.md``'s tables.
TUNED_METHODS: tuple[str, ...] = ("popularity", "itemknn", "rwc", "puresvd", "ease", "rp3beta")


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of a grid, in order (the last setting varies fastest); ``[{}]`` for an empty grid."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


@dataclass
class TuneResult:
    """One method's grid search: the chosen ``params``, their validation metrics, and every point.

    ``table``: one row per grid point with its settings, ``HR@k``, ``NDCG@k``, ``MRR``, ``seconds``.
    ``skipped``: why the method could not run on this split (e.g. EASE above its item limit), or None.
    """

    method: str
    params: dict[str, Any]
    validation: dict[str, float]
    table: pd.DataFrame = field(repr=False)
    metric: str = "HR@10"
    skipped: str | None = None
    grid: dict[str, list[Any]] = field(default_factory=dict)

    def grid_text(self) -> str:
        """The grid and the chosen point as one line, for reports."""
        if self.skipped:
            return f"{self.method}: skipped ({self.skipped})"
        return (f"{self.method}: grid {self.grid} -> {self.params} "
                f"({self.metric} {self.validation.get(self.metric, float('nan')):.4f} on validation)")


def tune_baseline(method: str, validation: Split, grid: Mapping[str, Sequence[Any]] | None = None,
                  metric: str = "HR@10", k: int = 10, fixed: Mapping[str, Any] | None = None,
                  batch_size: int = 256) -> TuneResult:
    """Grid search for one baseline on a validation split.

    Args:
        method: a name of :data:`pinsage.evaluation.baselines.BASELINES`.
        validation: the tuning split (``leave_last_out(..., validation=True)``); never the test split.
        grid: ``{setting: values}``; default :data:`GRIDS` ``[method]``.
        metric: the selection metric, ``HR@k``, ``NDCG@k`` or ``MRR`` (ties: NDCG@k, then grid order).
        fixed: constructor arguments used at every point (e.g. ``features`` for content-kNN).

    Returns:
        :class:`TuneResult`. A method that cannot run on the split (``ValueError`` from ``fit``, such
        as EASE's dense-matrix limit) comes back with ``skipped`` set and empty params.
    """
    key = method.lower()
    grid = GRIDS.get(key, {}) if grid is None else grid
    allowed = (f"HR@{k}", f"NDCG@{k}", "MRR")
    if metric not in allowed:
        raise ValueError(f"tune_baseline: metric must be one of {allowed}, got {metric!r}")
    X, _, ids = validation.interaction_matrix()
    rows = []
    for point in grid_points(grid):
        scorer = make_baseline(method, **{**dict(fixed or {}), **point})
        t0 = time.perf_counter()
        try:
            scorer.fit(X, item_ids=ids)
        except ValueError as exc:
            return TuneResult(method=key, params={}, validation={}, table=pd.DataFrame(), metric=metric,
                              skipped=str(exc), grid={n: list(v) for n, v in grid.items()})
        res = evaluate_scores(scorer.score, validation, k=k, batch_size=batch_size, item_ids=ids)
        rows.append({**point, f"HR@{k}": res[f"HR@{k}"], f"NDCG@{k}": res[f"NDCG@{k}"], "MRR": res["MRR"],
                     "seconds": time.perf_counter() - t0})
    table = pd.DataFrame(rows)
    scores = np.array([(r[metric], r[f"NDCG@{k}"]) for r in rows])
    order = np.lexsort((np.arange(len(rows)), -scores[:, 1], -scores[:, 0]))
    best = rows[int(order[0])]
    params = {name: best[name] for name in grid}  # from the row dicts: None stays None
    return TuneResult(method=key, params=params,
                      validation={m: float(best[m]) for m in allowed}, table=table, metric=metric,
                      grid={n: list(v) for n, v in grid.items()})


def tune_baselines(validation: Split, methods: Sequence[str] = TUNED_METHODS,
                   grids: Mapping[str, Mapping[str, Sequence[Any]]] | None = None, metric: str = "HR@10",
                   k: int = 10, fixed: Mapping[str, Mapping[str, Any]] | None = None,
                   verbose: bool = False) -> dict[str, TuneResult]:
    """:func:`tune_baseline` for each of ``methods``; ``grids`` and ``fixed`` map method -> grid / arguments.

    The chosen settings go straight into :func:`pinsage.evaluation.run_baselines`::

        tuned = tune_baselines(leave_last_out(df, "user", "item", validation=True))
        run_baselines(test_split, methods=list(tuned), params={m: t.params for m, t in tuned.items()})
    """
    grids = dict(grids or {})
    fixed = dict(fixed or {})
    out: dict[str, TuneResult] = {}
    for method in methods:
        t0 = time.perf_counter()
        res = tune_baseline(method, validation, grids.get(method), metric=metric, k=k, fixed=fixed.get(method))
        out[method] = res
        if verbose:
            print(f"  tuned {res.grid_text()} [{time.perf_counter() - t0:.0f} s]", flush=True)
    return out
