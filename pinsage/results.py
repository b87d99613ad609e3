"""Result tables of ``pinsage related``, ``recommend`` and ``evaluate``: one table layout, one output switch.

Every command that writes a result table takes ``--output FILE`` and ``--format json|csv|parquet``
(:func:`add_output_options`, :func:`output_target`):

* ``--format`` wins; without it the format follows ``--output``'s suffix (``.csv``, ``.json``,
  ``.parquet`` / ``.pq``); a suffix of another format than ``--format`` is an error naming both;
* without ``--output`` the table goes to stdout (CSV or JSON; Parquet is binary and is refused there);
  with neither option each command prints its readable table;
* files are written through a temporary file and a rename (:func:`pinsage._io.atomic_path`): a reader
  sees the old file or the complete new one.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np
import pandas as pd

from pinsage._io import InputError, atomic_path

__all__ = ["FORMATS", "SUFFIX_FORMATS", "add_output_options", "output_target", "output_path", "title_lookup",
           "results_frame", "write_results", "emit_results"]

#: the values of ``--format``
FORMATS = ("json", "csv", "parquet")
#: the ``--output`` suffixes that name a format
SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}


def add_output_options(parser: argparse.ArgumentParser, default: str = "a readable table") -> None:
    """Register ``--output FILE`` and ``--format json|csv|parquet`` on a command's parser."""
    parser.add_argument("--output", metavar="FILE",
                        help=f"write the results to FILE (.csv, .json or .parquet; default: {default} on stdout)")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="json, csv or parquet (default: from --output's suffix; parquet needs --output)")


def output_target(output: str | None, fmt: str | None) -> tuple[Path | None, str | None]:
    """``(path, format)`` of ``--output`` and ``--format``: path None for stdout, format None for the
    command's readable table (neither option given).

    Raises:
        InputError: an unknown ``--format``; ``--output`` whose suffix names no format while
            ``--format`` is absent; a suffix that names another format than ``--format``; Parquet
            asked for on stdout.
    """
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if not output:
        if fmt == "parquet":
            raise InputError("--format parquet: Parquet is binary and is not written to stdout; "
                             "give --output FILE.parquet")
        return None, fmt
    path = Path(output)
    suffix = path.suffix.lower()
    named = SUFFIX_FORMATS.get(suffix)
    if fmt is None:
        if named is None:
            raise InputError(f"--output {path}: expected a name ending in .csv, .json or .parquet "
                             "(or say which with --format json|csv|parquet)")
        return path, named
    if named is not None and named != fmt:
        raise InputError(f"--output {path} ends in {suffix} ({named}) but --format is {fmt}; "
                         f"make them agree (e.g. --output {path.with_suffix('.' + fmt)}), or leave --format out")
    return path, fmt


def output_path(arg: str | None) -> Path | None:
    """``--output`` as a path (None: print to the terminal); InputError unless it ends in .csv, .json or
    .parquet. (The format-less form of :func:`output_target`.)"""
    return output_target(arg, None)[0]


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


def _json_text(doc: Any) -> str:
    return json.dumps(doc, indent=1, default=str) + "\n"


def _parquet_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with object columns that mix types (ids of a run are one type; labels may not be) as text,
    which Parquet needs."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            kinds = {type(v) for v in out[c].tolist() if v is not None}
            if len(kinds) > 1:
                out[c] = [None if v is None else str(v) for v in out[c].tolist()]
    return out


def write_results(path: Path, df: pd.DataFrame, json_doc: Callable[[], Any], fmt: str | None = None) -> None:
    """Write the results into ``path`` atomically: ``df`` as CSV or Parquet, or ``json_doc()`` as JSON.

    ``fmt`` (``"csv"``, ``"json"``, ``"parquet"``) defaults to the one ``path``'s suffix names.
    """
    fmt = fmt or output_target(str(path), None)[1]
    with atomic_path(path) as tmp:
        if fmt == "json":
            Path(tmp).write_text(_json_text(json_doc()), encoding="utf-8")
        elif fmt == "parquet":
            _parquet_frame(df).to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)


def emit_results(path: Path | None, fmt: str, df: pd.DataFrame, json_doc: Callable[[], Any],
                 stdout: IO[str] | None = None) -> None:
    """The results in ``fmt``: into ``path`` (:func:`write_results`), or on ``stdout`` when ``path`` is None
    (CSV or JSON; :func:`output_target` has refused Parquet there)."""
    if path is not None:
        write_results(path, df, json_doc, fmt)
        return
    stream = sys.stdout if stdout is None else stdout
    if fmt == "json":
        stream.write(_json_text(json_doc()))
    elif fmt == "csv":
        df.to_csv(stream, index=False)
    else:
        raise InputError(f"--format {fmt}: not written to stdout; give --output FILE.{fmt}")
