"""Baseline table: fit every baseline on ``split.train`` and evaluate on ``split.test``."""
from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from pinsage.evaluation.baselines import Scorer, make_baseline
from pinsage.evaluation.metrics import evaluate_scores
from pinsage.evaluation.split import Split

__all__ = ["run_baselines", "format_table", "DEFAULT_METHODS"]

DEFAULT_METHODS: tuple[str, ...] = ("popularity", "itemknn", "rwc", "ease", "puresvd", "rp3beta")


def run_baselines(split: Split, methods: Sequence[str | Scorer] = DEFAULT_METHODS, k: int = 10,
                  batch_size: int = 256, params: Mapping[str, dict] | None = None,
                  ties: str = "expected") -> pd.DataFrame:
    """Evaluate baselines side by side on one split.

    Args:
        split: From :func:`pinsage.evaluation.split.leave_last_out`; every baseline is fitted on
            ``split.train`` and evaluated on ``split.test``.
        methods: names (see :data:`pinsage.evaluation.baselines.BASELINES`) or unfitted Scorer
            objects.
        k: Cut-off of HR@k and NDCG@k.
        batch_size: Queries per scoring call (see :func:`pinsage.evaluation.metrics.evaluate_scores`).
        params: optional constructor kwargs per method name, e.g. ``{"ease": {"l2": 200.0}}``.
        ties: tie convention of :func:`pinsage.evaluation.metrics.evaluate_scores`.

    Returns:
        DataFrame, one row per method: ``method``, ``HR@k``, ``NDCG@k``, ``MRR``, ``MRR_scaled``,
            ``mean_rank``, ``n_evaluated``, ``n_skipped``, ``fit_s``, ``eval_s``.
    """
    params = dict(params or {})
    X, _, ids = split.interaction_matrix()
    rows = []
    for m in methods:
        scorer = make_baseline(m, **params.get(m, {})) if isinstance(m, str) else m
        t0 = time.perf_counter()
        scorer.fit(X, item_ids=ids)
        t1 = time.perf_counter()
        res = evaluate_scores(scorer.score, split, k=k, batch_size=batch_size, item_ids=ids, ties=ties)
        t2 = time.perf_counter()
        rows.append({"method": scorer.name, **res, "fit_s": t1 - t0, "eval_s": t2 - t1})
    return pd.DataFrame(rows)


def format_table(df: pd.DataFrame, columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """Markdown table of ``df`` (default columns: method, HR@k, NDCG@k, MRR); the best value per metric in bold."""
    if columns is None:
        columns = ["method"] + [c for c in df.columns if c.startswith(("HR@", "NDCG@"))] + ["MRR"]
    columns = [c for c in columns if c in df.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    best = {c: df[c].max() for c in columns if c != "method" and np.issubdtype(df[c].dtype, np.floating)
            and c not in ("mean_rank", "fit_s", "eval_s")}
    for _, r in df.iterrows():
        cells = []
        for c in columns:
            v = r[c]
            if isinstance(v, (float, np.floating)):
                s = f"{v:.{digits}f}"
                if c in best and len(df) > 1 and v == best[c]:
                    s = f"**{s}**"
            else:
                s = str(v)
            cells.append(s)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
