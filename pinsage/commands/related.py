"""``pinsage related``: the items most similar to given items, by the run's embeddings.

Uses the run's saved index (``DIR/index/``, from ``pinsage index``) when present, else an exact
index built on the fly. The query item itself is never returned.

One or a few items (``--item``, repeatable) print a readable table. ``--items FILE`` answers many
at once. FILE is either

* a plain text file with one item id per line (no header; a first line reading ``item`` is taken
  as a header and skipped; blank lines are ignored), or
* a CSV (first line holds a comma) or Parquet file with an ``item`` column (other columns ignored).

Results go to ``--output FILE.csv`` or ``FILE.json`` (written atomically), or to stdout as CSV when
``--items`` is given without ``--output``. CSV is long format: columns ``query``, ``rank``,
``item``, ``score`` (the index's similarity: dot product by default) and ``title``; JSON is a list of
``{"query": ID, "title": ..., "related": [{"rank", "item", "score", "title"}, ...]}``. Titles come from
the ``title`` column of the run's ``--item-features`` file (looked up by its ``--item-key``); they
are left out when the run had no features file, the file has no ``title`` column, or it has gone.

Ids typed on the command line or read from FILE are strings; they are converted to the type of the
run's ids (integer ids may be given as ``42``). Unknown ids are an error that names them.

Examples::

    pinsage related --run runs/pins --item pin_00042 --k 5
    pinsage related --run runs/pins --items queries.txt --k 20 --output related.csv
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from pinsage._io import InputError, atomic_path, read_table
from pinsage.commands.index import load_embeddings_and_ids, load_run_meta, open_index, require_run

ITEMS_COLUMN = "item"


# ---------------------------------------------------------------------------------------------
# id conversion and lookups (shared with ``pinsage evaluate``)
# ---------------------------------------------------------------------------------------------

def _head(values: Sequence[Any], limit: int = 5) -> str:
    vals = [v.item() if isinstance(v, np.generic) else v for v in list(values)[:limit]]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"{vals}{more}"


def coerce_ids(values: Sequence[Any], like: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Convert ``values`` (typically strings) to the dtype of the id array ``like``.

    Returns ``(converted, bad)``: ``bad`` lists the values that cannot be of that type (e.g. ``"abc"``
    for integer ids); ``converted`` holds a meaningless placeholder at their positions.
    """
    kind = like.dtype.kind
    vals = list(values)
    bad: list[Any] = []
    if kind in "iu":
        out = np.zeros(len(vals), dtype=np.int64)
        for j, v in enumerate(vals):
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                out[j] = int(v)
                continue
            s = str(v).strip()
            try:
                out[j] = int(s)
            except ValueError:
                try:
                    f = float(s)
                except ValueError:
                    f = math.nan
                if math.isfinite(f) and f.is_integer():
                    out[j] = int(f)
                else:
                    bad.append(v)
        return out, bad
    if kind == "f":
        out_f = np.zeros(len(vals), dtype=np.float64)
        for j, v in enumerate(vals):
            try:
                out_f[j] = float(str(v).strip())
            except ValueError:
                bad.append(v)
        return out_f, bad
    return np.asarray([v if isinstance(v, str) else str(v) for v in vals], dtype=object), bad


def lookup_rows(values: Sequence[Any], ids: np.ndarray, where: str) -> np.ndarray:
    """Row positions in ``ids`` of ``values`` (strings or ids); InputError naming unknown ones."""
    conv, bad = coerce_ids(values, ids)
    lookup = pd.Index(ids.astype(object) if ids.dtype.kind in "US" else ids)
    rows = np.asarray(lookup.get_indexer(conv), dtype=np.int64)
    if bad:
        bad_set = set(map(str, bad))
        rows[[str(v) in bad_set for v in values]] = -1
    missing = rows < 0
    if missing.any():
        unknown = list(pd.unique(np.asarray([str(v) for v in np.asarray(values, dtype=object)[missing]],
                                            dtype=object)))
        raise InputError(f"{where}: unknown item id(s) {_head(unknown)}: not among the run's {len(ids)} items")
    return rows


def resolve_run_path(path: str | None, run: Path) -> Path | None:
    """A path recorded in run.json: as given (absolute or relative to the current directory), else
    relative to the run directory or its parent. None when it cannot be found."""
    if not path:
        return None
    p = Path(path)
    candidates = [p] if p.is_absolute() else [p, run / p, run.parent / p]
    for c in candidates:
        if c.is_file():
            return c
    return None


def load_titles(run: Path, meta: dict, ids: np.ndarray) -> np.ndarray | None:
    """Titles of the run's items in ``ids`` order (object array, None where unknown), or None when the
    run's features file, its key column or a ``title`` column is missing."""
    path = resolve_run_path(meta.get("item_features"), run)
    key = meta.get("item_key")
    if path is None or not key:
        return None
    try:
        df = read_table(path)
    except InputError:
        return None
    if key not in df.columns or "title" not in df.columns:
        return None
    keys = df[key]
    titles = df["title"].where(df["title"].notna(), None).to_numpy(dtype=object)
    # compare as strings so int ids in the run match int-like keys read back in any dtype
    by_key = dict(zip([str(k) for k in keys.tolist()], titles.tolist()))
    return np.asarray([by_key.get(str(i)) for i in ids.tolist()], dtype=object)


# ---------------------------------------------------------------------------------------------
# reading --items
# ---------------------------------------------------------------------------------------------

def read_items_file(path: str | Path) -> list[str]:
    """Item ids (strings) from FILE: plain lines, or a CSV/Parquet file with an ``item`` column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--items {path}: file not found")
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        df = read_table(path)
        if ITEMS_COLUMN not in df.columns:
            raise InputError(f"--items {path}: missing column {ITEMS_COLUMN!r}; the file has columns "
                             f"{list(df.columns)}")
        col = df[ITEMS_COLUMN]
        bad = col.isna().to_numpy()
        if bad.any():
            raise InputError(f"--items {path}: column {ITEMS_COLUMN!r} is empty in row {int(np.argmax(bad)) + 1}")
        return [str(v) for v in col.tolist()]
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--items {path}: could not be read as text: {exc}") from exc
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise InputError(f"--items {path}: no item ids (the file is empty)")
    sep = "\t" if ".tsv" in name else ","
    if sep in first:
        try:
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
        except Exception as exc:  # pandas raises several types on malformed CSV
            raise InputError(f"--items {path}: could not be read as CSV: {exc}") from exc
        df.columns = [str(c).strip() for c in df.columns]
        if ITEMS_COLUMN not in df.columns:
            raise InputError(f"--items {path}: missing column {ITEMS_COLUMN!r}; the file has columns "
                             f"{list(df.columns)} (give a CSV with an {ITEMS_COLUMN!r} column, or one id per line)")
        col = df[ITEMS_COLUMN].str.strip()
        empty = (col == "").to_numpy()
        if empty.any():
            raise InputError(f"--items {path}: column {ITEMS_COLUMN!r} is empty in data row {int(np.argmax(empty)) + 1}")
        out = col.tolist()
    else:
        out = [ln.strip() for ln in lines if ln.strip()]
        if out and out[0] == ITEMS_COLUMN:
            out = out[1:]
    if not out:
        raise InputError(f"--items {path}: no item ids")
    return out


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------

def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("related", help="related items of given items (uses DIR/index/ when present)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="DIR", help="run directory written by `pinsage train`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--item", action="append", metavar="ID", help="item id to query (repeatable)")
    src.add_argument("--items", metavar="FILE",
                     help="file of item ids: one per line, or a CSV/Parquet file with an 'item' column")
    p.add_argument("--k", type=int, default=10, help="related items per query (default 10)")
    p.add_argument("--output", metavar="FILE", help="write results to FILE.csv or FILE.json (default: stdout)")
    p.add_argument("--no-titles", action="store_true", help="do not look up titles")
    p.set_defaults(func=run)


def _results_frame(queries: np.ndarray, out_ids: np.ndarray, scores: np.ndarray,
                   id_title: dict | None) -> pd.DataFrame:
    q_n, k = out_ids.shape
    rows = {"query": np.repeat(np.asarray(queries, dtype=object), k),
            "rank": np.tile(np.arange(1, k + 1), q_n),
            "item": out_ids.astype(object).ravel(),
            "score": scores.astype(np.float64).ravel()}
    df = pd.DataFrame(rows)
    df = df[np.isfinite(df["score"].to_numpy())].reset_index(drop=True)  # padding: catalogue < k + 1
    if id_title is not None:
        df["title"] = [id_title.get(str(i)) for i in df["item"].tolist()]
    return df


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _to_json(df: pd.DataFrame, queries: Sequence[Any], id_title: dict | None) -> list[dict]:
    out = []
    groups = {q: g for q, g in df.groupby("query", sort=False)} if len(df) else {}
    for q in queries:
        entry: dict[str, Any] = {"query": _py(q)}
        if id_title is not None:
            entry["title"] = id_title.get(str(q))
        g = groups.get(q)
        rel = []
        if g is not None:
            for r in g.itertuples(index=False):
                d = {"rank": int(r.rank), "item": _py(r.item), "score": float(r.score)}
                if id_title is not None:
                    d["title"] = r.title
                rel.append(d)
        entry["related"] = rel
        out.append(entry)
    return out


def run(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise InputError(f"--k must be a positive integer, got {args.k}")
    out_path = Path(args.output) if args.output else None
    if out_path is not None and out_path.suffix.lower() not in (".csv", ".json"):
        raise InputError(f"--output {out_path}: expected a name ending in .csv or .json")
    run_dir = require_run(args.run)
    emb, ids = load_embeddings_and_ids(run_dir)
    meta = load_run_meta(run_dir)

    if args.items:
        raw = read_items_file(args.items)
        rows = lookup_rows(raw, ids, f"--items {args.items}")
    else:
        raw = list(args.item)
        rows = lookup_rows(raw, ids, "--item")
    queries = ids[rows]

    index = open_index(run_dir, emb, ids, verbose_to=sys.stderr)
    out_ids, scores = index.related(queries, k=args.k)

    titles = None if args.no_titles else load_titles(run_dir, meta, ids)
    id_title = None if titles is None else {str(i): t for i, t in zip(ids.tolist(), titles.tolist())}
    df = _results_frame(queries, out_ids, scores, id_title)

    if out_path is not None:
        with atomic_path(out_path) as tmp:
            if out_path.suffix.lower() == ".json":
                Path(tmp).write_text(json.dumps(_to_json(df, queries, id_title), indent=1) + "\n", encoding="utf-8")
            else:
                df.to_csv(tmp, index=False)
        print(f"pinsage related: {len(queries)} quer{'y' if len(queries) == 1 else 'ies'}, "
              f"k={args.k}, {index.kind} index; wrote {out_path}", file=sys.stderr)
        return 0
    if args.items:
        df.to_csv(sys.stdout, index=False)
        return 0
    for q in queries:
        g = df[df["query"] == q]
        head = f"related to {_py(q)}"
        if id_title is not None and id_title.get(str(q)) is not None:
            head += f" ({id_title[str(q)]})"
        print(head + ":")
        table = g[["rank", "item", "score"] + (["title"] if id_title is not None else [])].copy()
        table["score"] = table["score"].map(lambda s: f"{s:.4f}")
        print(table.to_string(index=False))
    return 0
