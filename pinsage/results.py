"""Ranked results of ``pinsage related`` and ``pinsage recommend``: one table layout, written as CSV or
JSON through a temporary file and a rename."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from pinsage._io import InputError, atomic_path

__all__ = ["output_path", "title_lookup", "results_frame", "write_results"]


def output_path(arg: str | None) -> Path | None:
    """``--output`` as a path (None: print to the terminal); InputError unless it ends in .csv or .json."""
    if not arg:
        return None
    path = Path(arg)
    if path.suffix.lower() not in (".csv", ".json"):
        raise InputError(f"--output {path}: expected a name ending in .csv or .json")
    return path


def title_lookup(ids: np.ndarray, titles: np.ndarray | None) -> dict[str, Any] | None:
    """``{str(id): title}`` for the run's items, or None when the run has no titles."""
    if titles is None:
        return None
    return {str(i): t for i, t in zip(np.asarray(ids).tolist(), titles.tolist())}


def results_frame(queries: Any, out_ids: np.ndarray, scores: np.ndarray,
                  id_title: dict[str, Any] | None) -> pd.DataFrame:
    """One row per (query, rank): columns ``query``, ``rank`` (1-based), ``item``, ``score`` and, with
    titles, ``title``. ``out_ids`` and ``scores`` are ``(len(queries), k)``; padded slots (non-finite
    scores: fewer than ``k`` results) are dropped."""
    q_n, k = out_ids.shape
    df = pd.DataFrame({"query": np.repeat(np.asarray(queries, dtype=object), k),
                       "rank": np.tile(np.arange(1, k + 1), q_n),
                       "item": out_ids.astype(object).ravel(),
                       "score": scores.astype(np.float64).ravel()})
    df = df[np.isfinite(df["score"].to_numpy())].reset_index(drop=True)
    if id_title is not None:
        df["title"] = [id_title.get(str(i)) for i in df["item"].tolist()]
    return df


def write_results(path: Path, df: pd.DataFrame, json_doc: Callable[[], Any]) -> None:
    """``df`` as CSV, or ``json_doc()`` as JSON when ``path`` ends in .json, atomically."""
    import json

    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".json":
            Path(tmp).write_text(json.dumps(json_doc(), indent=1, default=str) + "\n", encoding="utf-8")
        else:
            df.to_csv(tmp, index=False)
