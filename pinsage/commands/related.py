"""``pinsage related``: the items most similar to given items, by the run's embeddings.

Uses the run's saved index (``DIR/index/``, from ``pinsage index``) when present, else an exact
index built on the fly. The query item itself is never returned.

One or a few items (``--item``, repeatable) print a readable table. ``--items FILE`` answers many
at once. FILE is either

* a plain text file with one item id per line (no header; a first line reading ``item`` is taken
  as a header and skipped; blank lines are ignored), or
* a CSV (first line holds a separator: ``,`` tab ``;`` or ``|``, as in ``pinsage train``'s input
  files) or Parquet file with an ``item`` column (other columns ignored).

``--items -`` reads FILE from standard input (text, CSV or Parquet bytes).

Results go to ``--output FILE.csv``, ``FILE.json`` or ``FILE.parquet`` (written atomically; ``--format
json|csv|parquet`` wins over the suffix), or to stdout: as CSV when ``--items`` is given, as
``--format csv|json`` says, else as a readable table. The table is long format: columns ``query``,
``rank``, ``item``, ``score`` (the index's similarity: dot product by default) and ``title``; JSON is a list of
``{"query": ID, "title": ..., "related": [{"rank", "item", "score", "title"}, ...]}``. Titles come from
the ``title`` column of the run's ``--item-features`` file (looked up by its ``--item-key``); they
are left out when the run had no features file, the file has no ``title`` column, or it has gone.

Ids typed on the command line or read from FILE are strings; they are converted to the type of the
run's ids (integer ids may be given as ``42``). Unknown ids are an error that names them.

Examples::

    pinsage related --run runs/pins --item pin_00042 --k 5
    pinsage related --run runs/pins --items queries.txt --k 20 --output related.csv
    cut -f1 queries.tsv | pinsage related --run runs/pins --items - --format json > related.json
"""
from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from pinsage._io import InputError, check_header, is_stdin, read_stdin, read_table, sniff_separator, stdin_label
from pinsage.ids import py_scalar as _py
from pinsage.ids import rows_of
from pinsage.results import add_output_options, emit_results, output_target, results_frame, title_lookup
from pinsage.run import RunDir

ITEMS_COLUMN = "item"
log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# reading --items
# ---------------------------------------------------------------------------------------------

def read_items_file(path: str | Path, data: bytes | None = None) -> list[str]:
    """Item ids (strings) from FILE: plain lines, or a CSV/Parquet file with an ``item`` column.

    ``path`` ``-`` reads standard input; ``data``, when given, holds its bytes already read. Raises
    :class:`~pinsage.InputError` naming ``--items FILE`` (and the column or row) when it cannot be used.
    """
    stdin = data is not None or is_stdin(path)
    if stdin:
        if data is None:
            data = read_stdin("--items -")
        where, name = stdin_label("--items"), (".parquet" if data.startswith(b"PAR1") else "")
    else:
        path = Path(path)
        where, name = f"--items {path}", path.name.lower()
        if not path.is_file():
            raise InputError(f"{where}: file not found")
    if name.endswith((".parquet", ".pq")):
        df = read_table(path, data=data, label=where) if stdin else read_table(path)
        if ITEMS_COLUMN not in df.columns:
            raise InputError(f"{where}: missing column {ITEMS_COLUMN!r}; the file has columns "
                             f"{list(df.columns)}")
        col = df[ITEMS_COLUMN]
        bad = col.isna().to_numpy()
        if bad.any():
            raise InputError(f"{where}: column {ITEMS_COLUMN!r} is empty in row {int(np.argmax(bad)) + 1}")
        return [str(v) for v in col.tolist()]
    try:
        raw = data if data is not None else Path(path).read_bytes()
        text = raw.decode("utf-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: could not be read as text: {exc}") from exc
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise InputError(f"{where}: no item ids (the file is empty)")
    sep = "\t" if ".tsv" in name else sniff_separator(first)
    if sep in first:
        check_header(where, first, sep)
        try:
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
        except Exception as exc:  # pandas raises several types on malformed CSV
            raise InputError(f"{where}: could not be read as CSV: {exc}") from exc
        df.columns = [str(c).strip() for c in df.columns]
        if ITEMS_COLUMN not in df.columns:
            raise InputError(f"{where}: missing column {ITEMS_COLUMN!r}; the file has columns "
                             f"{list(df.columns)} (give a CSV with an {ITEMS_COLUMN!r} column, or one id per line)")
        col = df[ITEMS_COLUMN].str.strip()
        empty = (col == "").to_numpy()
        if empty.any():
            raise InputError(f"{where}: column {ITEMS_COLUMN!r} is empty in data row {int(np.argmax(empty)) + 1}")
        out = col.tolist()
    else:
        out = [ln.strip() for ln in lines if ln.strip()]
        if out and out[0] == ITEMS_COLUMN:
            out = out[1:]
    if not out:
        raise InputError(f"{where}: no item ids")
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
                     help="file of item ids: one per line, or a CSV/Parquet file with an 'item' column "
                          "(- reads standard input)")
    p.add_argument("--k", type=int, default=10, help="related items per query (default 10)")
    add_output_options(p, default="a table (CSV with --items)")
    p.add_argument("--no-titles", action="store_true", help="do not look up titles")
    p.set_defaults(func=run)


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
    out_path, fmt = output_target(args.output, getattr(args, "format", None))
    run = RunDir.open(args.run)
    emb, ids = run.embeddings_and_ids()
    meta = run.meta()

    if args.items:
        raw = read_items_file(args.items)
        rows = rows_of(raw, ids, f"--items {args.items}")
    else:
        raw = list(args.item)
        rows = rows_of(raw, ids, "--item")
    queries = ids[rows]

    index = run.index(emb, ids)
    out_ids, scores = index.related(queries, k=args.k)

    id_title = title_lookup(ids, None if args.no_titles else run.titles(ids, meta))
    df = results_frame(queries, out_ids, scores, id_title)

    if out_path is not None or fmt is not None or args.items:
        emit_results(out_path, fmt or "csv", df, lambda: _to_json(df, queries, id_title))
        log.log(logging.INFO if out_path is not None else logging.DEBUG, "%d quer%s, k=%d, %s index; wrote %s",
                len(queries), "y" if len(queries) == 1 else "ies", args.k, index.kind,
                out_path if out_path is not None else f"{fmt or 'csv'} to stdout")
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
