"""``pinsage recommend``: items for a user of the run's graph, or for a history of items.

``--user ID`` (repeatable) takes each user's items from the run's graph (``DIR/graph/``), in time order
when the run was trained with ``--time-col`` (without times the graph keeps no order, and every item
of the history weighs alike); ``--items a,b,c`` gives one history directly, oldest first (``c`` is the
most recent); ``--items -`` reads that history from standard input (ids separated by commas or
newlines, oldest first). The user's own items are left out of the results unless ``--keep-seen``.

Scores (``docs/serve.md``, "What recommend scores"): ``--method recency`` (default) queries the index
with the recency-weighted mean of the history's embeddings, an item ``s`` steps before the most recent
one weighing ``2 ** (-s / half_life)``; ``--method interests`` clusters the history into up to
``--clusters`` interests (PinnerSage), queries each cluster's medoid and merges the results by score,
each cluster owed a share of the ``--n`` results in proportion to its recency weight.

Uses the run's saved index (``DIR/index/``) when present, else an exact one. Output: a table per
query, or ``--output FILE.csv`` (columns ``query``, ``rank``, ``item``, ``score``, ``title``),
``FILE.json`` or ``FILE.parquet``; ``--format json|csv|parquet`` wins over the suffix, and without
``--output`` writes CSV or JSON to stdout.

Examples::

    pinsage recommend --run runs/ml --user 196 --n 10
    pinsage recommend --run runs/ml --items 50,172,181 --method interests --clusters 2
    pinsage recommend --run runs/ml --user 196 --format json > recs.json
"""
from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

from pinsage._io import InputError, is_stdin, read_stdin
from pinsage.graph.histories import group_histories, group_rows, has_order, items_aligned
from pinsage.ids import py_scalar as _py
from pinsage.ids import rows_of
from pinsage.results import add_output_options, emit_results, output_target, results_frame, title_lookup
from pinsage.run import RunDir

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recommend", help="items for a user's history (from the run's graph) or for given items",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="DIR", help="run directory written by `pinsage train`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--user", action="append", metavar="ID", help="user (group) id of the run's graph (repeatable)")
    src.add_argument("--items", metavar="A,B,C",
                     help="one history: item ids separated by commas, oldest first (- reads them from standard "
                          "input, separated by commas or newlines)")
    p.add_argument("--n", type=int, default=10, help="results per query (default 10)")
    p.add_argument("--method", default="recency", choices=["recency", "interests"],
                   help="recency-weighted mean (default) or PinnerSage-style interests")
    p.add_argument("--half-life", type=float, default=10.0, metavar="H",
                   help="recency half-life in items (default 10; 0 weighs all items alike)")
    p.add_argument("--clusters", type=int, default=3, help="the most interests per history (--method interests)")
    p.add_argument("--max-history", type=int, default=500, metavar="N",
                   help="use each user's N most recent items (default 500)")
    p.add_argument("--keep-seen", action="store_true", help="do not leave the history's own items out")
    add_output_options(p)
    p.add_argument("--no-titles", action="store_true", help="do not look up titles")
    p.set_defaults(func=run)


def history_ids(arg: str, data: bytes | None = None) -> list[str]:
    """The item ids of ``--items``: ``"a,b,c"``, or ``-`` for standard input (``data``: its bytes, when
    already read) holding ids separated by commas or newlines (blank lines and a UTF-8 byte-order mark
    skipped), oldest first."""
    where = "--items"
    if is_stdin(arg):
        where = "--items - (standard input)"
        raw_bytes = read_stdin("--items -") if data is None else data
        try:
            arg = raw_bytes.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"{where}: not UTF-8 text ({exc.reason}); expected item ids separated by commas "
                             "or newlines") from exc
    raw = [s.strip() for line in arg.splitlines() for s in line.split(",") if s.strip()]
    if not raw:
        raise InputError(f"{where}: give item ids separated by commas, e.g. --items 50,172,181")
    return raw


def _histories(args: argparse.Namespace, run: RunDir, ids: np.ndarray) -> tuple[Any, list[Any], bool]:
    """``(histories for ItemIndex.recommend, query labels, ordered)``."""
    from pinsage.index.histories import Histories

    if args.items is not None:
        raw = history_ids(args.items)
        rows = rows_of(raw, ids, "--items")
        return Histories(np.array([0, len(rows)]), rows), [",".join(raw)], True
    if not run.has("graph"):
        raise InputError(f"{run.what}: the run has no graph/ to look users up in; give --items instead")
    graph = run.graph()
    if not items_aligned(graph, ids):
        raise InputError(f"{run.what}: graph/ and item_ids.npy list different items; retrain the run")
    groups = group_rows(graph, args.user, where="--user")
    indptr, items = group_histories(graph, groups, args.max_history)
    return Histories(indptr, items), [_py(u) for u in graph.group_ids[groups]], has_order(graph)


def run(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise InputError(f"--n must be a positive integer, got {args.n}")
    if args.half_life < 0:
        raise InputError(f"--half-life must be >= 0 (0: all items alike), got {args.half_life}")
    if args.max_history < 1:
        raise InputError(f"--max-history must be a positive integer, got {args.max_history}")
    out_path, fmt = output_target(args.output, getattr(args, "format", None))
    run = RunDir.open(args.run)
    emb, ids = run.embeddings_and_ids()
    histories, labels, ordered = _histories(args, run, ids)
    index = run.index(emb, ids)
    half_life = args.half_life if (args.half_life > 0 and ordered) else None
    out_ids, scores = index.recommend(histories, N=args.n, filter_already_liked_items=not args.keep_seen,
                                      method=args.method, half_life=half_life, clusters=args.clusters)

    id_title = title_lookup(ids, None if args.no_titles else run.titles(ids, run.meta()))
    q = out_ids.shape[0]
    df = results_frame(labels, out_ids, scores, id_title)

    def json_doc() -> list[dict]:
        groups = {k: g for k, g in df.groupby("query", sort=False)}
        return [{"query": lab, "method": args.method,
                 "items": [] if lab not in groups else
                 [{k: (_py(v) if k != "score" else float(v)) for k, v in r.items() if k != "query"}
                  for r in groups[lab].to_dict("records")]} for lab in labels]

    if not ordered and args.user:
        log.info("the run's graph has no times; every item of a history weighs alike")
    if out_path is not None or fmt is not None:
        emit_results(out_path, fmt, df, json_doc)
        log.log(logging.INFO if out_path is not None else logging.DEBUG,
                "%d quer%s, n=%d, method=%s, %s index; wrote %s", q, "y" if q == 1 else "ies", args.n, args.method,
                index.kind, out_path if out_path is not None else f"{fmt} to stdout")
        return 0
    for lab in labels:
        print(f"{'user' if args.user else 'history'} {lab} ({args.method}):")
        table = df[df["query"] == lab][["rank", "item", "score"] + (["title"] if id_title is not None else [])].copy()
        table["score"] = table["score"].map(lambda s: f"{s:.4f}")
        print(table.to_string(index=False))
    return 0
